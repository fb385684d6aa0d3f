//! What a fault costs the producers, measured from the delivery reports: the per-partition ack
//! gap, the time to the first ack of a record sent after the fault, the longest delivery
//! (intended send → ack, retries included), failed records by error code and librdkafka's
//! persisted class, latency per stage (before, during, recovery, after) with the recovery time,
//! and a 100 ms series around each fault.
//!
//! One `Failover` is shared by every producer of a run, behind one mutex taken once per batch
//! of delivery reports (`load::producer`); the fault scheduler marks injection and heal times
//! on it. Memory is bounded: per-partition running state, a few histograms per fault and a
//! capped series; never a list of records. Definitions: `reference/ha_failover.md`, C.

use std::collections::{BTreeMap, HashMap};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::measure::gaps::GapTracker;
use crate::measure::recorder::new_histogram;
use crate::measure::verify::SeqSet;
use crate::report::summary::LatencySummary;

/// The ack gap looks this far back before the injection.
pub const LOOKBACK_NS: u64 = 1_000_000_000;
const SECOND_NS: u64 = 1_000_000_000;
const BUCKET_NS: u64 = 100_000_000;
/// The 100 ms series starts this long before a fault and ends this long after its heal.
const SERIES_BEFORE_NS: u64 = 2_000_000_000;
const SERIES_AFTER_NS: u64 = 10_000_000_000;
/// At most this many 100 ms points per fault (ten minutes).
const SERIES_MAX_POINTS: usize = 6000;
/// A second is "recovered" when its p99 is under this many times the baseline p99.
const RECOVERED_FACTOR: u64 = 2;

/// librdkafka's verdict on a failed record (`rd_kafka_message_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persisted {
    Not,
    Possibly,
    Yes,
}

/// A fault's planned times, absolute ns.
#[derive(Debug, Clone, Copy)]
pub struct Planned {
    pub at_ns: u64,
    pub heal_ns: Option<u64>,
}

/// Failed records of one error code.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FailedCode {
    pub code: i32,
    pub name: String,
    pub records: u64,
    pub not_persisted: u64,
    pub possibly_persisted: u64,
    pub persisted: u64,
}

/// Latency per stage of a fault, µs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stages {
    pub before: LatencySummary,
    pub during: LatencySummary,
    pub recovery: LatencySummary,
    pub after: LatencySummary,
}

/// One 100 ms point.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesPoint {
    /// End of the 100 ms, ms on the run's clock.
    pub t_ms: u64,
    pub acks_per_sec: f64,
    pub errors_per_sec: f64,
    pub errors_by_code: BTreeMap<String, u64>,
    pub p99_us: u64,
}

/// What one fault cost the producers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProduceFigures {
    /// Longest interval between consecutive acks of a partition in [t_f − 1 s, end].
    pub ack_gap_ms: f64,
    pub ack_gap_ms_per_partition: Vec<f64>,
    /// First ack after t_f of a record first sent at or after t_f, minus t_f.
    pub time_to_first_ack_ms: Option<f64>,
    /// Longest intended send → ack of a record acknowledged in the fault's window.
    pub max_delivery_ms: f64,
    pub acked: u64,
    pub failed: u64,
    pub failed_by_code: Vec<FailedCode>,
    /// Records sent more than once in the fault's window: librdkafka's count of records
    /// transmitted (`txmsgs`, retries included) minus the records reported, between its
    /// statistics samples (once a second) in the window; to within the records in flight at
    /// the window's first and last sample.
    pub retries: u64,
    pub baseline_p99_us: Option<u64>,
    /// From the heal (or the injection, for a fault that does not heal) until the 1 s p99
    /// stays under 2x the baseline p99; null when it never did or there was no baseline.
    pub recovery_ms: Option<f64>,
    pub latency_us: Stages,
    pub series_100ms: Vec<SeriesPoint>,
}

/// Where an ack at a given time falls for one fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    None,
    Before,
    During,
    /// After the heal: recorded per second, then split into recovery and after.
    Healed,
}

struct FaultTrack {
    planned: Planned,
    /// [planned − 1 s, next fault's planned − 1 s).
    window: (u64, u64),
    t_f: Option<u64>,
    t_h: Option<u64>,
    /// The next fault's injection: the end of this one's stages.
    next_t_f: Option<u64>,
    first_ack_ns: Option<u64>,
    max_delivery_ns: u64,
    acked: u64,
    failed: BTreeMap<i32, FailedCode>,
    /// Signed, so that records in flight at one sample and reported by the next cancel out.
    retries: i64,
    before: Histogram<u64>,
    during: Histogram<u64>,
    recovery: Histogram<u64>,
    /// Seconds since the last bad one (the "after" stage if nothing turns bad again).
    pending: Histogram<u64>,
    /// Start of the first second of the current good run.
    good_since_ns: Option<u64>,
    /// The stage this fault was in at the last batch.
    stage: Stage,
    series: Vec<SeriesPoint>,
}

/// The 100 ms bucket being filled.
struct Bucket {
    index: u64,
    acks: u64,
    errors: Vec<(i32, u64)>,
    hist: Histogram<u64>,
}

/// The running failover state of a run (shared by its producers).
pub struct Failover {
    start_ns: u64,
    faults: Vec<FaultTrack>,
    gaps: GapTracker,
    /// Records that failed, per producer, for the read-back.
    failed: HashMap<u32, SeqSet>,
    /// Names of the error codes seen, looked up once each.
    names: BTreeMap<i32, String>,
    /// Per producer: the last statistics sample's (`txmsgs`, records reported by then).
    tx_seen: HashMap<u32, (u64, u64)>,
    /// Records reported (acked or failed) per producer id.
    reported: Vec<u64>,
    second_index: u64,
    second: Histogram<u64>,
    bucket: Bucket,
    /// The stage of each fault for the current batch (computed once per batch).
    stages: Vec<Stage>,
}

impl Failover {
    /// `planned` must be sorted by `at_ns`.
    pub fn new(start_ns: u64, planned: &[Planned], partitions: usize) -> Self {
        let windows: Vec<(u64, u64)> = planned
            .iter()
            .enumerate()
            .map(|(k, p)| {
                let to = planned
                    .get(k + 1)
                    .map_or(u64::MAX, |n| n.at_ns.saturating_sub(LOOKBACK_NS));
                (p.at_ns.saturating_sub(LOOKBACK_NS), to)
            })
            .collect();
        let faults = planned
            .iter()
            .zip(&windows)
            .map(|(p, w)| FaultTrack {
                planned: *p,
                window: *w,
                t_f: None,
                t_h: None,
                next_t_f: None,
                first_ack_ns: None,
                max_delivery_ns: 0,
                acked: 0,
                failed: BTreeMap::new(),
                retries: 0,
                before: new_histogram(),
                during: new_histogram(),
                recovery: new_histogram(),
                pending: new_histogram(),
                good_since_ns: None,
                stage: Stage::None,
                series: Vec::new(),
            })
            .collect();
        Failover {
            start_ns,
            stages: vec![Stage::None; planned.len()],
            faults,
            gaps: GapTracker::new(windows, partitions),
            failed: HashMap::new(),
            names: BTreeMap::new(),
            tx_seen: HashMap::new(),
            reported: Vec::new(),
            second_index: 0,
            second: new_histogram(),
            bucket: Bucket {
                index: 0,
                acks: 0,
                errors: Vec::new(),
                hist: new_histogram(),
            },
        }
    }

    /// The scheduler injected fault `k` at `t_f`.
    pub fn injected(&mut self, k: usize, t_f: u64) {
        if let Some(f) = self.faults.get_mut(k) {
            f.t_f = Some(t_f);
        }
        if let Some(prev) = k.checked_sub(1).and_then(|p| self.faults.get_mut(p)) {
            prev.next_t_f = Some(t_f);
        }
    }

    /// Fault `k` healed at `t_h` (a one-shot action: when it completed).
    pub fn healed(&mut self, k: usize, t_h: u64) {
        if let Some(f) = self.faults.get_mut(k) {
            f.t_h = Some(t_h);
        }
    }

    /// Starts a batch of reports served at `now`: closes finished seconds and 100 ms buckets
    /// and works out each fault's stage once for the whole batch.
    #[inline]
    pub fn begin_batch(&mut self, now: u64) {
        let rel = now.saturating_sub(self.start_ns);
        if rel / SECOND_NS != self.second_index {
            self.close_second();
            self.second_index = rel / SECOND_NS;
        }
        let bucket = rel / BUCKET_NS;
        if bucket != self.bucket.index {
            self.close_bucket();
            // The buckets in between saw nothing (an outage): zero points, so a chart drops to
            // zero instead of drawing a line across the silence.
            while self.bucket.index + 1 < bucket {
                self.bucket.index += 1;
                self.close_bucket();
            }
            self.bucket.index = bucket;
        }
        let mut prev_end = self.start_ns;
        for (k, f) in self.faults.iter_mut().enumerate() {
            let stage = match (f.t_f, f.t_h) {
                _ if f.next_t_f.is_some_and(|n| now >= n) => Stage::None,
                (None, _) => Stage::Before,
                (Some(t_f), _) if now < t_f => {
                    if now >= prev_end {
                        Stage::Before
                    } else {
                        Stage::None
                    }
                }
                (Some(_), Some(t_h)) if now >= t_h => Stage::Healed,
                (Some(_), _) => Stage::During,
            };
            // Stages of the next fault start where this one's heal (or injection) was.
            prev_end = f.t_h.or(f.t_f).unwrap_or(u64::MAX);
            f.stage = stage;
            self.stages[k] = stage;
        }
    }

    /// A record acknowledged at `now` (the batch's time) on `partition`.
    #[inline]
    pub fn acked(
        &mut self,
        now: u64,
        producer: u32,
        partition: i32,
        intended_ns: u64,
        latency_us: u64,
    ) {
        self.count_report(producer);
        self.gaps.observe(partition, now);
        let delivery = now.saturating_sub(intended_ns);
        let bucket_live = self.bucket_wanted();
        for f in &mut self.faults {
            if now >= f.window.0 && now < f.window.1 {
                f.acked += 1;
                f.max_delivery_ns = f.max_delivery_ns.max(delivery);
            }
            if let Some(t_f) = f.t_f {
                if f.first_ack_ns.is_none() && intended_ns >= t_f && now >= t_f {
                    f.first_ack_ns = Some(now);
                }
            }
            match f.stage {
                Stage::Before => f.before.saturating_record(latency_us),
                Stage::During => f.during.saturating_record(latency_us),
                Stage::Healed | Stage::None => {}
            }
        }
        self.second.saturating_record(latency_us);
        if bucket_live {
            self.bucket.acks += 1;
            self.bucket.hist.saturating_record(latency_us);
        }
    }

    /// A record that failed for good at `now`.
    pub fn failed(&mut self, now: u64, producer: u32, seq: u64, err: RespErr, status: Persisted) {
        self.count_report(producer);
        self.failed.entry(producer).or_default().insert(seq);
        let code = err as i32;
        let name = self
            .names
            .entry(code)
            .or_insert_with(|| error_name(err))
            .clone();
        for f in &mut self.faults {
            if now < f.window.0 || now >= f.window.1 {
                continue;
            }
            let e = f.failed.entry(code).or_insert_with(|| FailedCode {
                code,
                name: name.clone(),
                ..FailedCode::default()
            });
            e.records += 1;
            match status {
                Persisted::Not => e.not_persisted += 1,
                Persisted::Possibly => e.possibly_persisted += 1,
                Persisted::Yes => e.persisted += 1,
            }
        }
        if self.bucket_wanted() {
            match self.bucket.errors.iter_mut().find(|(c, _)| *c == code) {
                Some((_, n)) => *n += 1,
                None => self.bucket.errors.push((code, 1)),
            }
        }
    }

    /// A producer's records transmitted so far (`txmsgs` of its statistics) at `now`: what
    /// it transmitted since its last sample beyond what was reported counts as retried in the
    /// faults whose window holds `now`.
    pub fn transmitted(&mut self, producer: u32, now: u64, txmsgs: u64) {
        let reported = self.reported.get(producer as usize).copied().unwrap_or(0);
        let (tx0, rep0) = self
            .tx_seen
            .insert(producer, (txmsgs, reported))
            .unwrap_or((0, 0));
        let delta = txmsgs as i64 - tx0 as i64 - (reported as i64 - rep0 as i64);
        for f in &mut self.faults {
            if now >= f.window.0 && now < f.window.1 {
                f.retries += delta;
            }
        }
    }

    #[inline]
    fn count_report(&mut self, producer: u32) {
        let p = producer as usize;
        if p >= self.reported.len() {
            self.reported.resize(p + 1, 0);
        }
        self.reported[p] += 1;
    }

    /// The records that failed, per producer (for the read-back).
    pub fn failed_sets(&self) -> &HashMap<u32, SeqSet> {
        &self.failed
    }

    /// Is the current 100 ms bucket inside some fault's series range?
    fn bucket_wanted(&self) -> bool {
        let t = self.start_ns + self.bucket.index * BUCKET_NS;
        self.faults
            .iter()
            .any(|f| series_range(f).is_some_and(|(a, b)| t >= a && t < b))
    }

    /// Hands the finished second to every healed fault: a bad second (p99 over 2x the
    /// baseline) moves everything since the last bad one into recovery.
    fn close_second(&mut self) {
        if self.second.is_empty() {
            return;
        }
        let sec_start = self.start_ns + self.second_index * SECOND_NS;
        let p99 = self.second.value_at_quantile(0.99);
        for f in &mut self.faults {
            if f.stage != Stage::Healed {
                continue;
            }
            let baseline = (!f.before.is_empty()).then(|| f.before.value_at_quantile(0.99));
            let good = baseline.is_some_and(|b| p99 < b.max(1) * RECOVERED_FACTOR);
            let _ = f.pending.add(&self.second);
            if good {
                f.good_since_ns.get_or_insert(sec_start);
            } else {
                let _ = f.recovery.add(&f.pending);
                f.pending.reset();
                f.good_since_ns = None;
            }
        }
        self.second.reset();
    }

    fn close_bucket(&mut self) {
        let t = self.start_ns + self.bucket.index * BUCKET_NS;
        let b = &mut self.bucket;
        let names = &self.names;
        let any = b.acks > 0 || !b.errors.is_empty();
        for f in &mut self.faults {
            let Some((from, to)) = series_range(f) else {
                continue;
            };
            if t < from || t >= to || f.series.len() >= SERIES_MAX_POINTS {
                continue;
            }
            let per_sec = 1e9 / BUCKET_NS as f64;
            f.series.push(SeriesPoint {
                t_ms: (t + BUCKET_NS - self.start_ns) / 1_000_000,
                acks_per_sec: b.acks as f64 * per_sec,
                errors_per_sec: b.errors.iter().map(|(_, n)| *n).sum::<u64>() as f64 * per_sec,
                errors_by_code: b
                    .errors
                    .iter()
                    .map(|(c, n)| (names.get(c).cloned().unwrap_or_else(|| c.to_string()), *n))
                    .collect(),
                p99_us: if b.hist.is_empty() {
                    0
                } else {
                    b.hist.value_at_quantile(0.99)
                },
            });
        }
        if any {
            b.acks = 0;
            b.errors.clear();
            b.hist.reset();
        }
    }

    /// The figures of every fault, the run having ended at `end_ns`.
    pub fn finish(&mut self, end_ns: u64) -> Vec<ProduceFigures> {
        self.close_second();
        // Points for the buckets that saw nothing since the last batch (an outage to the end).
        let last = end_ns.saturating_sub(self.start_ns) / BUCKET_NS;
        while self.bucket.index <= last {
            self.close_bucket();
            self.bucket.index += 1;
        }
        (0..self.faults.len())
            .map(|k| self.figures(k, end_ns))
            .collect()
    }

    fn figures(&self, k: usize, end_ns: u64) -> ProduceFigures {
        let f = &self.faults[k];
        let gaps: Vec<f64> = self
            .gaps
            .window_gaps_ns(k, end_ns)
            .into_iter()
            .map(ms)
            .collect();
        let baseline = (!f.before.is_empty()).then(|| f.before.value_at_quantile(0.99));
        let from = f.t_h.or(f.t_f);
        let recovery_ms = match (baseline, from, f.good_since_ns) {
            (Some(_), Some(from), Some(good)) => Some(ms(good.saturating_sub(from))),
            _ => None,
        };
        ProduceFigures {
            ack_gap_ms: gaps.iter().copied().fold(0.0, f64::max),
            ack_gap_ms_per_partition: gaps,
            time_to_first_ack_ms: f
                .t_f
                .zip(f.first_ack_ns)
                .map(|(t_f, a)| ms(a.saturating_sub(t_f))),
            max_delivery_ms: ms(f.max_delivery_ns),
            acked: f.acked,
            failed: f.failed.values().map(|c| c.records).sum(),
            failed_by_code: f.failed.values().cloned().collect(),
            retries: f.retries.max(0) as u64,
            baseline_p99_us: baseline,
            recovery_ms,
            latency_us: Stages {
                before: LatencySummary::of(&f.before),
                during: LatencySummary::of(&f.during),
                recovery: LatencySummary::of(&f.recovery),
                after: LatencySummary::of(&f.pending),
            },
            series_100ms: f.series.clone(),
        }
    }
}

/// Records transmitted (retries included), `txmsgs` of librdkafka's statistics JSON.
pub fn tx_msgs(json: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Top {
        txmsgs: u64,
    }
    serde_json::from_slice::<Top>(json).ok().map(|t| t.txmsgs)
}

/// The span a fault's 100 ms series covers, absolute ns.
fn series_range(f: &FaultTrack) -> Option<(u64, u64)> {
    let from = f.planned.at_ns.saturating_sub(SERIES_BEFORE_NS);
    let end = f.t_h.or(f.planned.heal_ns).unwrap_or(f.planned.at_ns);
    Some((
        from,
        (end + SERIES_AFTER_NS).min(f.window.1.saturating_add(LOOKBACK_NS)),
    ))
}

/// ns → ms, to 0.1 ms.
pub fn ms(ns: u64) -> f64 {
    (ns as f64 / 100_000.0).round() / 10.0
}

/// librdkafka's name of an error code (NOT_LEADER_FOR_PARTITION, _MSG_TIMED_OUT, ...).
pub fn error_name(err: RespErr) -> String {
    // SAFETY: rd_kafka_err2name returns a static, NUL-terminated string for any code.
    let name = unsafe { std::ffi::CStr::from_ptr(rdkafka::bindings::rd_kafka_err2name(err)) };
    name.to_string_lossy().into_owned()
}

/// librdkafka's error code type.
pub type RespErr = rdkafka::bindings::rd_kafka_resp_err_t;

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Acks every 10 ms at 1 ms latency on two partitions, none on partition 0 during the
    /// outage, slow ones for two seconds after the heal.
    fn run_with_outage() -> Vec<ProduceFigures> {
        let start = 1_000 * SECOND_NS;
        let at = start + 5 * SECOND_NS;
        let heal = at + 3 * SECOND_NS;
        let mut fo = Failover::new(
            start,
            &[Planned {
                at_ns: at,
                heal_ns: Some(heal),
            }],
            2,
        );
        let mut t = start;
        let end = start + 15 * SECOND_NS;
        while t < end {
            if t >= at && fo.faults[0].t_f.is_none() {
                fo.injected(0, at);
            }
            if t >= heal && fo.faults[0].t_h.is_none() {
                fo.healed(0, heal);
            }
            fo.begin_batch(t);
            let down = t >= at && t < heal;
            let slow = t >= heal && t < heal + 2 * SECOND_NS;
            let latency = if slow { 50_000 } else { 1_000 };
            if !down {
                fo.acked(t, 0, 0, t - latency * 1000, latency);
            } else {
                fo.failed(
                    t,
                    0,
                    t / MS,
                    RespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                    Persisted::Possibly,
                );
            }
            fo.acked(t, 0, 1, t - latency * 1000, latency);
            t += 10 * MS;
        }
        fo.finish(end)
    }

    #[test]
    fn an_outage_shows_as_the_ack_gap_of_its_partition() {
        let f = &run_with_outage()[0];
        assert!((3000.0..=3010.0).contains(&f.ack_gap_ms), "{f:?}");
        assert!(f.ack_gap_ms_per_partition[1] <= 10.0);
        let ttfa = f.time_to_first_ack_ms.unwrap();
        assert!(ttfa < 100.0, "partition 1 kept acking: {ttfa}");
        assert_eq!(f.failed_by_code[0].code, 7);
        assert_eq!(f.failed, f.failed_by_code[0].possibly_persisted);
        assert!(f.failed > 250);
    }

    #[test]
    fn recovery_ends_when_the_p99_stays_under_twice_the_baseline() {
        let f = &run_with_outage()[0];
        assert_eq!(f.baseline_p99_us, Some(1000));
        // Two slow seconds after the heal.
        let r = f.recovery_ms.unwrap();
        assert!((1900.0..=3000.0).contains(&r), "recovery {r}");
        assert!(f.latency_us.recovery.p99 >= 40_000);
        assert!(f.latency_us.after.p99 <= 1_100);
        assert_eq!(f.latency_us.before.count, 1000);
    }

    #[test]
    fn the_series_covers_the_fault_at_100_ms() {
        let f = &run_with_outage()[0];
        let first = f.series_100ms.first().unwrap().t_ms;
        assert_eq!(first, 3100);
        let during: Vec<&SeriesPoint> = f
            .series_100ms
            .iter()
            .filter(|p| (6000..8000).contains(&p.t_ms))
            .collect();
        assert!(during
            .iter()
            .all(|p| p.errors_per_sec > 0.0 && p.errors_by_code.len() == 1));
        assert!(during.iter().all(|p| (p.acks_per_sec - 100.0).abs() < 1.0));
    }

    #[test]
    fn a_silence_between_batches_is_a_run_of_zero_points() {
        let start = 1_000 * SECOND_NS;
        let at = start + 5 * SECOND_NS;
        let mut fo = Failover::new(
            start,
            &[Planned {
                at_ns: at,
                heal_ns: None,
            }],
            1,
        );
        // Acks every 10 ms, none from 5 s to 8 s (no batch at all meanwhile), then again.
        let mut t = start;
        while t < start + 10 * SECOND_NS {
            if t >= at && fo.faults[0].t_f.is_none() {
                fo.injected(0, at);
            }
            if !(at..at + 3 * SECOND_NS).contains(&t) {
                fo.begin_batch(t);
                fo.acked(t, 0, 0, t - MS, 1_000);
            }
            t += 10 * MS;
        }
        let f = &fo.finish(t)[0];
        let silent: Vec<&SeriesPoint> = f
            .series_100ms
            .iter()
            .filter(|p| (5100..=8000).contains(&p.t_ms))
            .collect();
        // One point per 100 ms of the silence, every one at zero.
        assert_eq!(silent.len(), 30, "{:?}", f.series_100ms);
        assert!(silent.iter().all(|p| p.acks_per_sec == 0.0));
        let ts: Vec<u64> = f.series_100ms.iter().map(|p| p.t_ms).collect();
        assert!(ts.windows(2).all(|w| w[1] == w[0] + 100), "{ts:?}");
    }
}
