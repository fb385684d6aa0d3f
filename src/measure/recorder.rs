//! Per-worker recorders: plain HDR histograms and counters, one set per phase of the run,
//! behind an uncontended mutex that only the reporter's once-per-interval swap
//! competes for.
//!
//! Latencies are in microseconds, 1 µs to 1 h at 3 significant digits, recorded with
//! `saturating_record` so an absurd value is clamped instead of panicking. This module records;
//! it never formats or prints.

use std::sync::{Mutex, MutexGuard};

use hdrhistogram::Histogram;

/// Largest latency a histogram tracks: one hour in microseconds.
pub const HIST_MAX_US: u64 = 3_600_000_000;

/// A fresh latency histogram (µs).
pub fn new_histogram() -> Histogram<u64> {
    // Bounds and precision are constants that the crate accepts; this cannot fail.
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("valid histogram bounds")
}

/// What a producer's delivery reports add up to.
#[derive(Debug, Clone)]
pub struct ProduceStats {
    /// From the intended send time (open model) or the send call (closed model).
    pub latency_us: Histogram<u64>,
    /// From the send call, as kafka-producer-perf-test measures.
    pub service_latency_us: Histogram<u64>,
    /// Actual send call minus intended send time (open model only).
    pub send_delay_us: Histogram<u64>,
    pub records: u64,
    pub bytes: u64,
    pub errors: u64,
    /// Records whose send call came more than `LATE_SEND_US` after their intended time.
    pub late_sends: u64,
    /// Transactions (all zero for a producer without them).
    pub txn: crate::measure::txn::TxnStats,
}

/// A send more than this late counts as "not sent on time".
pub const LATE_SEND_US: u64 = 1_000;

impl Default for ProduceStats {
    fn default() -> Self {
        ProduceStats {
            latency_us: new_histogram(),
            service_latency_us: new_histogram(),
            send_delay_us: new_histogram(),
            records: 0,
            bytes: 0,
            errors: 0,
            late_sends: 0,
            txn: Default::default(),
        }
    }
}

impl ProduceStats {
    pub fn add(&mut self, o: &ProduceStats) {
        // Same bounds everywhere, so `add` cannot fail.
        let _ = self.latency_us.add(&o.latency_us);
        let _ = self.service_latency_us.add(&o.service_latency_us);
        let _ = self.send_delay_us.add(&o.send_delay_us);
        self.records += o.records;
        self.bytes += o.bytes;
        self.errors += o.errors;
        self.late_sends += o.late_sends;
        self.txn.add(&o.txn);
    }

    pub fn reset(&mut self) {
        self.latency_us.reset();
        self.service_latency_us.reset();
        self.send_delay_us.reset();
        self.records = 0;
        self.bytes = 0;
        self.errors = 0;
        self.late_sends = 0;
        self.txn.reset();
    }
}

/// What a consumer's received records add up to.
#[derive(Debug, Clone)]
pub struct ConsumeStats {
    /// Intended send time (or send call, closed model) to receipt.
    pub e2e_latency_us: Histogram<u64>,
    pub records: u64,
    pub bytes: u64,
    /// Records without a kbench stamp, or from another run (`e2e` only).
    pub unstamped: u64,
    pub errors: u64,
    /// Records of transactions their producer aborted (marked in the stamp).
    pub aborted_seen: u64,
}

impl Default for ConsumeStats {
    fn default() -> Self {
        ConsumeStats {
            e2e_latency_us: new_histogram(),
            records: 0,
            bytes: 0,
            unstamped: 0,
            errors: 0,
            aborted_seen: 0,
        }
    }
}

impl ConsumeStats {
    pub fn add(&mut self, o: &ConsumeStats) {
        let _ = self.e2e_latency_us.add(&o.e2e_latency_us);
        self.records += o.records;
        self.bytes += o.bytes;
        self.unstamped += o.unstamped;
        self.errors += o.errors;
        self.aborted_seen += o.aborted_seen;
    }

    pub fn reset(&mut self) {
        self.e2e_latency_us.reset();
        self.records = 0;
        self.bytes = 0;
        self.unstamped = 0;
        self.errors = 0;
        self.aborted_seen = 0;
    }
}

/// Anything a worker records per phase and the reporter collects.
pub trait Stats: Default + Clone {
    fn add(&mut self, other: &Self);
    fn reset(&mut self);
}

impl Stats for ProduceStats {
    fn add(&mut self, o: &Self) {
        ProduceStats::add(self, o)
    }
    fn reset(&mut self) {
        ProduceStats::reset(self)
    }
}

impl Stats for ConsumeStats {
    fn add(&mut self, o: &Self) {
        ConsumeStats::add(self, o)
    }
    fn reset(&mut self) {
        ConsumeStats::reset(self)
    }
}

/// One worker's stats, one set per phase, shared with the reporter.
#[derive(Debug)]
pub struct PhaseStats<S> {
    inner: Mutex<Vec<S>>,
}

impl<S: Stats> PhaseStats<S> {
    pub fn new(phases: usize) -> Self {
        PhaseStats {
            inner: Mutex::new(vec![S::default(); phases.max(1)]),
        }
    }

    /// Runs `f` on the stats of phase `phase` (the worker's side). An index beyond the run's
    /// phases (a record from another run) counts in the last phase.
    #[inline]
    pub fn with<R>(&self, phase: usize, f: impl FnOnce(&mut S) -> R) -> R {
        f(self.lock().phase(phase))
    }

    /// Holds the lock for several records (a batch of delivery reports).
    #[inline]
    pub fn lock(&self) -> PhaseGuard<'_, S> {
        PhaseGuard(self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Swaps the recorded stats with `spare` (reset beforehand, outside the lock), so the
    /// worker waits only for a pointer swap. `spare` then holds the interval, one set per phase.
    pub fn swap(&self, spare: &mut Vec<S>) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let n = g.len();
        drop(g);
        spare.resize(n, S::default());
        for s in spare.iter_mut() {
            s.reset();
        }
        g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut *g, spare);
    }
}

/// The worker's stats, locked (see `PhaseStats::lock`).
pub struct PhaseGuard<'a, S>(MutexGuard<'a, Vec<S>>);

impl<S> PhaseGuard<'_, S> {
    /// The stats of phase `phase`; an index beyond the run's phases (a record from another
    /// run) counts in the last phase.
    #[inline]
    pub fn phase(&mut self, phase: usize) -> &mut S {
        let last = self.0.len() - 1;
        &mut self.0[phase.min(last)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_hands_over_the_interval_and_starts_fresh() {
        let s: PhaseStats<ProduceStats> = PhaseStats::new(2);
        s.with(1, |p| {
            p.records += 3;
            p.latency_us.saturating_record(5_000);
        });
        let mut spare = Vec::new();
        s.swap(&mut spare);
        assert_eq!(spare.len(), 2);
        assert_eq!(spare[1].records, 3);
        assert_eq!(spare[1].latency_us.len(), 1);
        s.swap(&mut spare);
        assert_eq!(spare[1].records, 0);
        // Out-of-range phases count in the last one.
        s.with(9, |p| p.records += 1);
        s.swap(&mut spare);
        assert_eq!(spare[1].records, 1);
    }

    #[test]
    fn out_of_range_latency_is_clamped_not_a_panic() {
        let mut h = new_histogram();
        h.saturating_record(u64::MAX);
        h.saturating_record(0);
        assert_eq!(h.len(), 2);
        assert!(h.max() >= HIST_MAX_US);
    }

    #[test]
    fn merged_histograms_equal_the_whole() {
        let mut a = ProduceStats::default();
        let mut b = ProduceStats::default();
        let mut whole = ProduceStats::default();
        for v in 1..=1000u64 {
            let target = if v % 2 == 0 { &mut a } else { &mut b };
            target.latency_us.saturating_record(v * 10);
            whole.latency_us.saturating_record(v * 10);
        }
        a.add(&b);
        assert_eq!(
            a.latency_us.value_at_quantile(0.99),
            whole.latency_us.value_at_quantile(0.99)
        );
        assert_eq!(a.latency_us.len(), 1000);
    }
}
