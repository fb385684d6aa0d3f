//! The reporter: once per interval it swaps every worker's recorders, merges them, prints the
//! interval lines, appends time-series rows and hlog intervals per phase, and keeps the phase
//! totals the summary is built from. The only place, with `report`, that formats during a run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Result;

use crate::load::consumer::ConsumerShared;
use crate::load::phase_starts::PhaseStarts;
use crate::load::producer::ProducerShared;
use crate::measure::clock;
use crate::measure::host::{HostSample, HostSummary};
use crate::measure::recorder::{ConsumeStats, ProduceStats, Stats};
use crate::plan::PhaseSpec;
use crate::report::console;
use crate::report::hlog::HlogWriter;
use crate::report::summary::{self, Histograms, PhaseSummary, Summary};
use crate::report::timeseries::{Row, TimeseriesWriter};
use crate::run::progress::Progress;

/// Result files of a run.
pub struct ResultFiles {
    pub dir: PathBuf,
    timeseries: TimeseriesWriter,
    hlog: HlogWriter,
}

impl ResultFiles {
    pub fn create(dir: &Path, base_ns: u64) -> Result<Self> {
        Ok(ResultFiles {
            dir: dir.to_path_buf(),
            timeseries: TimeseriesWriter::create(&dir.join("timeseries.csv"))?,
            hlog: HlogWriter::create(&dir.join("latency.hlog"), base_ns)?,
        })
    }
}

/// What one phase added up to.
#[derive(Default, Clone)]
pub struct PhaseTotals {
    pub produce: ProduceStats,
    pub consume: ConsumeStats,
    pub host: Vec<HostSample>,
    pub max_lag: Option<u64>,
    pub max_lso_lag: Option<u64>,
}

pub struct Reporter {
    pub producers: Vec<Arc<ProducerShared>>,
    pub consumers: Vec<Arc<ConsumerShared>>,
    /// The run's phases, in order, and when each began.
    pub phases: Vec<PhaseSpec>,
    pub starts: Arc<PhaseStarts>,
    pub start_ns: u64,
    pub files: Option<ResultFiles>,
    pub totals: Vec<PhaseTotals>,
    pub progress: Progress,
    /// Print `kafka-consumer-perf-test`'s detailed rows each interval.
    pub consumer_detailed_rows: bool,
    /// Print Kafka's "In steady state." once the warm-up records are done.
    pub warmup_records: Option<u64>,
    /// The closing call: its console line is skipped when nothing happened in it.
    pub last_interval: bool,
    last_ns: u64,
    spare_p: Vec<ProduceStats>,
    spare_c: Vec<ConsumeStats>,
    announced_steady: bool,
    /// The `--metrics-listen` gauges, set once per interval.
    pub live: Option<Arc<crate::report::live::LiveMetrics>>,
    /// Fault steps taken (clock ns, text) not yet written to the time series.
    pub fault_marks: Option<crate::fault::scheduler::FaultMarks>,
}

/// Adds every worker's interval stats into one set per phase.
fn collect<S: Stats>(
    sources: impl Iterator<Item = impl FnOnce(&mut Vec<S>)>,
    spare: &mut Vec<S>,
    phases: usize,
) -> Vec<S> {
    let mut out = vec![S::default(); phases];
    for swap in sources {
        swap(spare);
        for (o, s) in out.iter_mut().zip(spare.iter()) {
            o.add(s);
        }
    }
    out
}

impl Reporter {
    pub fn new(
        producers: Vec<Arc<ProducerShared>>,
        consumers: Vec<Arc<ConsumerShared>>,
        phases: Vec<PhaseSpec>,
        starts: Arc<PhaseStarts>,
        start_ns: u64,
        files: Option<ResultFiles>,
        progress: Progress,
    ) -> Self {
        let n = phases.len();
        Reporter {
            producers,
            consumers,
            phases,
            starts,
            start_ns,
            files,
            totals: vec![PhaseTotals::default(); n],
            progress,
            consumer_detailed_rows: false,
            warmup_records: None,
            last_interval: false,
            last_ns: start_ns,
            spare_p: Vec::new(),
            spare_c: Vec::new(),
            announced_steady: false,
            live: None,
            fault_marks: None,
        }
    }

    fn out(&self, line: &str) {
        self.progress.println(line);
    }

    /// When phase `k` began and ended (the end is open while no later phase has begun).
    pub fn span(&self, k: usize) -> Option<(u64, Option<u64>)> {
        let lo = self.starts.get(k)?;
        let hi = (k + 1..self.phases.len()).find_map(|n| self.starts.get(n));
        Some((lo, hi))
    }

    /// Closes one interval ending now: collects, prints, records. `host` holds the samples
    /// taken during it.
    pub fn interval(&mut self, host: Vec<HostSample>) -> Result<()> {
        let now = clock::now_ns();
        let (from, to) = (self.last_ns, now);
        self.last_ns = now;
        let n = self.phases.len();
        let mut produce = collect(
            self.producers
                .iter()
                .map(|p| move |s: &mut Vec<ProduceStats>| p.stats.swap(s)),
            &mut self.spare_p,
            n,
        );
        // Closed model: the producers record latency from the send call once, as `latency_us`;
        // service latency is the same histogram.
        for (p, spec) in produce.iter_mut().zip(&self.phases) {
            if spec.rate.is_none() {
                p.service_latency_us = p.latency_us.clone();
            }
        }
        let consume = collect(
            self.consumers
                .iter()
                .map(|c| move |s: &mut Vec<ConsumeStats>| c.stats.swap(s)),
            &mut self.spare_c,
            n,
        );
        let lag = self.current_lag();
        let lso_lag = self.current_lso_lag();
        self.print_interval(&produce, &consume, (to - from) as f64 / 1e9, lag, to);
        let mut marks = self.take_fault_marks(to);

        for k in 0..n {
            let (p, c) = (&produce[k], &consume[k]);
            let active = p.records + p.errors + c.records > 0;
            // The part of this interval that belongs to phase k; acknowledgements that arrive
            // after a phase ended still count in it, over the whole interval.
            let (lo, hi) = match self.span(k) {
                Some((lo, hi)) => (from.max(lo), hi.map_or(to, |h| h.min(to))),
                None if active => (from, to),
                None => continue,
            };
            let (lo, hi) = if hi > lo {
                (lo, hi)
            } else if active {
                (from, to)
            } else {
                continue;
            };
            let hs: Vec<HostSample> = host
                .iter()
                .filter(|s| s.t_ns > lo && s.t_ns <= hi)
                .cloned()
                .collect();
            if let Some(f) = &mut self.files {
                let row = Row::new(
                    (hi.saturating_sub(self.start_ns)) as f64 / 1e9,
                    (hi - lo) as f64 / 1e9,
                    &self.phases[k].name,
                    (!self.producers.is_empty()).then_some(p),
                    (!self.consumers.is_empty()).then_some(c),
                    lag,
                    &HostSummary::of(&hs),
                );
                // The interval's fault steps go on its first row.
                let row = Row {
                    fault: std::mem::take(&mut marks),
                    lso_lag,
                    ..row
                };
                f.timeseries.write(&row)?;
                if !self.producers.is_empty() {
                    f.hlog.write("produce", lo, hi, &p.latency_us)?;
                    f.hlog.write("service", lo, hi, &p.service_latency_us)?;
                    f.hlog.write("send_delay", lo, hi, &p.send_delay_us)?;
                }
                if !self.consumers.is_empty() {
                    f.hlog.write("e2e", lo, hi, &c.e2e_latency_us)?;
                }
            }
            let t = &mut self.totals[k];
            t.produce.add(p);
            t.consume.add(c);
            t.host.extend(hs);
            if let Some(l) = lag.filter(|_| hi > lo) {
                t.max_lag = Some(t.max_lag.map_or(l, |m| m.max(l)));
            }
            if let Some(l) = lso_lag.filter(|_| hi > lo) {
                t.max_lso_lag = Some(t.max_lso_lag.map_or(l, |m| m.max(l)));
            }
        }
        if let Some(live) = &self.live {
            let current = (0..n)
                .rev()
                .find(|&k| self.starts.get(k).is_some_and(|s| s <= to))
                .unwrap_or(0);
            let totals_p = self.totals.iter().fold((0, 0), |(r, e), t| {
                (r + t.produce.records, e + t.produce.errors)
            });
            let total_c = self.totals.iter().map(|t| t.consume.records).sum();
            let (has_p, has_c) = (!self.producers.is_empty(), !self.consumers.is_empty());
            live.update(
                &self.phases[current].name,
                (to - from) as f64 / 1e9,
                has_p.then(|| sum(&produce)).as_ref(),
                totals_p,
                has_c.then(|| sum(&consume)).as_ref(),
                total_c,
                lag,
                &HostSummary::of(&host),
            );
        }
        Ok(())
    }

    /// The fault steps taken up to `to`, as the time series' `fault` column.
    fn take_fault_marks(&self, to: u64) -> String {
        let Some(m) = &self.fault_marks else {
            return String::new();
        };
        let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
        let (now, later): (Vec<_>, Vec<_>) = m.drain(..).partition(|(t, _)| *t <= to);
        *m = later;
        now.into_iter()
            .map(|(_, text)| text)
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The console lines of an interval: all phases together, as Kafka's tool prints them.
    fn print_interval(
        &mut self,
        produce: &[ProduceStats],
        consume: &[ConsumeStats],
        secs: f64,
        lag: Option<u64>,
        to: u64,
    ) {
        if !self.producers.is_empty() {
            let all = sum(produce);
            let steady: u64 = produce
                .iter()
                .zip(&self.phases)
                .filter(|(_, ph)| !ph.excluded)
                .map(|(p, _)| p.records)
                .sum();
            if !self.announced_steady && self.warmup_records.is_some() && steady > 0 {
                self.announced_steady = true;
                self.out("In steady state.");
            }
            if !(self.last_interval && all.records + all.errors == 0) {
                self.out(&console::kafka_producer_interval(&all, secs));
            }
        }
        if !self.consumers.is_empty() {
            let all = sum(consume);
            if self.consumer_detailed_rows {
                let row = console::ConsumerRow {
                    bytes: all.bytes,
                    records: all.records,
                    elapsed_ms: (secs * 1000.0) as u64,
                    rebalance_ms: 0,
                };
                self.out(&console::kafka_consumer_row(
                    &console::kafka_date(to),
                    None,
                    &row,
                ));
            } else if !(self.producers.is_empty() || self.last_interval && all.records == 0) {
                self.out(&console::e2e_interval_line(&all, secs, lag));
            }
        }
    }

    /// Total lag over all consumers, if any consumer knows its lag.
    pub fn current_lag(&self) -> Option<u64> {
        let known: Vec<i64> = self
            .consumers
            .iter()
            .map(|c| c.lag.load(Ordering::Relaxed))
            .filter(|&l| l >= 0)
            .collect();
        (!known.is_empty()).then(|| known.iter().sum::<i64>() as u64)
    }

    /// Total LSO lag over all consumers, if any consumer knows it (`load::lso`).
    pub fn current_lso_lag(&self) -> Option<u64> {
        let known: Vec<i64> = self
            .consumers
            .iter()
            .map(|c| c.lso_lag.load(Ordering::Relaxed))
            .filter(|&l| l >= 0)
            .collect();
        (!known.is_empty()).then(|| known.iter().sum::<i64>() as u64)
    }

    /// Seconds phase `k` lasted, given the run's end.
    pub fn phase_secs(&self, k: usize, end_ns: u64) -> f64 {
        match self.span(k) {
            Some((lo, hi)) => {
                hi.unwrap_or(end_ns).min(end_ns.max(lo)).saturating_sub(lo) as f64 / 1e9
            }
            None => 0.0,
        }
    }

    /// The phases the summary reports (not the warm-up).
    pub fn reported_phases(&self, end_ns: u64) -> Vec<PhaseSummary> {
        (0..self.phases.len())
            .filter(|&k| !self.phases[k].excluded)
            .map(|k| self.phase_summary(k, end_ns))
            .collect()
    }

    /// Where the producing window ends, given the run's end: the producers' last
    /// acknowledgement (the end of their flush) once every producer is done, as Kafka's tool
    /// stops its clock after `close()`; the run's end while they are still sending. In e2e the
    /// run goes on until the consumers have drained, which is not the producers' time.
    pub fn produce_end_ns(&self, end_ns: u64) -> u64 {
        let done = !self.producers.is_empty()
            && self
                .producers
                .iter()
                .all(|p| p.done.load(Ordering::Acquire));
        if !done {
            return end_ns;
        }
        let last = self
            .producers
            .iter()
            .map(|p| p.done_ns.load(Ordering::Relaxed));
        last.max().unwrap_or(end_ns)
    }

    /// Phase `k`'s summary as of the run's end `end_ns`. Each side's rates are over its own
    /// window: produce up to the producing end (`produce_end_ns`), consume up to the run's end
    /// (for consume and e2e, the last record consumed); a phase followed by another ends where
    /// the next begins, for both.
    fn phase_summary(&self, k: usize, end_ns: u64) -> PhaseSummary {
        let secs = self.phase_secs(k, end_ns);
        let t = &self.totals[k];
        let (has_p, has_c) = (!self.producers.is_empty(), !self.consumers.is_empty());
        let produce_secs = self.phase_secs(k, self.produce_end_ns(end_ns));
        let consume_secs = secs;
        let mut consume = has_c.then(|| summary::consume_summary(&t.consume, consume_secs));
        if let Some(cs) = &mut consume {
            cs.max_lag = t.max_lag;
            cs.max_lso_lag = t.max_lso_lag;
            cs.rebalance_time_ms = self.rebalance_ms();
        }
        let spec = &self.phases[k];
        let txn = self.producers.iter().any(|p| p.transactional_id.is_some());
        PhaseSummary {
            name: spec.name.clone(),
            target_rate_per_sec: spec.rate,
            params: spec.params.clone(),
            duration_sec: millis(secs),
            produce_window_sec: has_p.then(|| millis(produce_secs)),
            consume_window_sec: has_c.then(|| millis(consume_secs)),
            produce: has_p.then(|| summary::ProduceSummary {
                transactions: crate::report::txn::txn_summary(&t.produce.txn, txn, produce_secs),
                ..summary::produce_summary(&t.produce, produce_secs)
            }),
            consume,
            host: HostSummary::of(&t.host),
            histograms: Histograms {
                produce_latency_us: has_p.then(|| summary::encode_histogram(&t.produce.latency_us)),
                service_latency_us: has_p
                    .then(|| summary::encode_histogram(&t.produce.service_latency_us)),
                send_delay_us: has_p.then(|| summary::encode_histogram(&t.produce.send_delay_us)),
                e2e_latency_us: has_c.then(|| summary::encode_histogram(&t.consume.e2e_latency_us)),
                commit_latency_us: txn
                    .then(|| summary::encode_histogram(&t.produce.txn.commit_latency_us)),
                abort_latency_us: txn
                    .then(|| summary::encode_histogram(&t.produce.txn.abort_latency_us)),
                commit_pause_us: txn
                    .then(|| summary::encode_histogram(&t.produce.txn.commit_pause_us)),
            },
        }
    }

    /// Longest time any member spent joining or rebalancing.
    pub fn rebalance_ms(&self) -> u64 {
        self.consumers
            .iter()
            .map(|c| c.rebalance_ns.load(Ordering::Relaxed) / 1_000_000)
            .max()
            .unwrap_or(0)
    }

    /// Rewrites summary.json (no-op without result files).
    pub fn write_summary(&self, s: &Summary) -> Result<()> {
        if let Some(f) = &self.files {
            summary::write(s, &f.dir.join("summary.json"))?;
        }
        Ok(())
    }
}

/// Seconds rounded to the millisecond, as the summary states durations.
fn millis(secs: f64) -> f64 {
    (secs * 1000.0).round() / 1000.0
}

/// All phases added up.
pub fn sum<S: Stats>(per_phase: &[S]) -> S {
    let mut all = S::default();
    for s in per_phase {
        all.add(s);
    }
    all
}

/// Writes to stdout, treating a closed pipe as "nobody is reading" rather than an error.
pub fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}
