//! `summary.json`: the run's result as data, versioned and described by
//! `schema/summary.schema.json` (tests validate real output against it).
//!
//! Built from merged recorder stats; histograms are embedded whole (base64 of HdrHistogram's
//! V2+DEFLATE encoding) so results can be merged and re-analysed later. Rewritten after every
//! reporting interval, so a crash or Ctrl-C leaves what was measured.

use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::measure::host::{HostInfo, HostSummary};
use crate::measure::recorder::{ConsumeStats, ProduceStats};

pub const SCHEMA_VERSION: u32 = 1;

/// MB as Kafka's tools print it: MiB.
pub const MB: f64 = 1024.0 * 1024.0;

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub schema_version: u32,
    pub kbench_version: String,
    pub command: String,
    pub run_id: String,
    pub name: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// False while the run is going on, and for a run stopped by Ctrl-C or an error.
    pub complete: bool,
    pub interrupted: bool,
    /// open (latency from the intended send time) or closed (from the send call).
    pub latency_model: String,
    pub latency_note: String,
    pub config: serde_json::Value,
    pub host: HostInfo,
    pub phases: Vec<PhaseSummary>,
    /// Checks that decide exit code 1 (verification); empty when none applied.
    pub checks: Vec<Check>,
    /// Whole-run record verification (null without consumers).
    pub verification: Option<Verification>,
    /// `kbench run` with find_max_rate: the trials and the knee (null otherwise).
    pub max_rate_search: Option<serde_json::Value>,
    /// Fault steps of the run and what each cost (empty without faults).
    pub faults: Vec<crate::report::faults::FaultResult>,
    /// The read-back after a run with faults (or `--verify-readback`); null otherwise.
    pub durability: Option<crate::measure::readback::Durability>,
    /// Transactional producers: their ids and `init_transactions` times (null otherwise).
    pub transactions: Option<crate::report::txn::TxnRun>,
}

/// Whole-run verification from the record stamps.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// `acknowledged` (e2e: checked against the producers' acks) or `sequence_gaps` (consume).
    pub method: String,
    pub acknowledged: Option<u64>,
    pub consumed_distinct: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// The consumers' isolation.level.
    pub isolation_level: Option<String>,
    /// Records of aborted transactions the consumers saw (none may be seen with
    /// read_committed); lost, duplicated and reordered count committed records only.
    pub aborted_seen: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseSummary {
    pub name: String,
    /// The rate the phase asked for (records/s over all producers); null in the closed model.
    pub target_rate_per_sec: Option<f64>,
    /// Matrix parameters or ramp figures of the phase.
    pub params: std::collections::BTreeMap<String, String>,
    /// The phase's span: from its first intended send to the next phase's start, or for the
    /// last phase to the end of the run (produce: the last acknowledgement; consume and e2e:
    /// the last record consumed).
    pub duration_sec: f64,
    /// The window `produce` rates are over (null without producers): as `duration_sec`, but the
    /// last phase's ends at the last acknowledgement (the producers' flush), as Kafka's
    /// producer tool counts, not when an e2e run's consumers have drained.
    pub produce_window_sec: Option<f64>,
    /// The window `consume` rates are over (null without consumers): from the phase's first
    /// intended send (consume: the start) to the next phase's start or the last record
    /// consumed.
    pub consume_window_sec: Option<f64>,
    pub produce: Option<ProduceSummary>,
    pub consume: Option<ConsumeSummary>,
    pub host: HostSummary,
    pub histograms: Histograms,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProduceSummary {
    pub records: u64,
    pub bytes: u64,
    pub errors: u64,
    pub late_sends: u64,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
    pub latency_us: LatencySummary,
    pub service_latency_us: LatencySummary,
    pub send_delay_us: LatencySummary,
    /// Transactional producers only (null otherwise).
    pub transactions: Option<crate::report::txn::TxnSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsumeSummary {
    pub records: u64,
    pub bytes: u64,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
    pub unstamped: u64,
    pub errors: u64,
    pub e2e_latency_us: LatencySummary,
    /// Whole-run verification counts (null when records carried no stamp to check).
    pub lost: Option<u64>,
    pub duplicated: Option<u64>,
    pub reordered: Option<u64>,
    pub max_lag: Option<u64>,
    pub rebalance_time_ms: u64,
    /// Records of aborted transactions received (marked in their stamps).
    pub aborted_seen: u64,
    /// Largest high watermark minus last stable offset over the consumers' partitions
    /// (librdkafka statistics): how far open transactions hold back read_committed readers.
    pub max_lso_lag: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
}

impl LatencySummary {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let q = |p: f64| h.value_at_quantile(p);
        LatencySummary {
            count: h.len(),
            mean: (h.mean() * 10.0).round() / 10.0,
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p999: q(0.999),
            p9999: q(0.9999),
            max: h.max(),
        }
    }
}

/// base64 V2+DEFLATE histograms; absent metrics are null.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Histograms {
    pub produce_latency_us: Option<String>,
    pub service_latency_us: Option<String>,
    pub send_delay_us: Option<String>,
    pub e2e_latency_us: Option<String>,
    /// Transactional producers only.
    pub commit_latency_us: Option<String>,
    pub abort_latency_us: Option<String>,
    pub commit_pause_us: Option<String>,
}

/// Encodes a histogram as base64 V2+DEFLATE.
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    // Serializing into a Vec cannot fail for a valid histogram.
    let _ = V2DeflateSerializer::new().serialize(h, &mut buf);
    base64::engine::general_purpose::STANDARD.encode(buf)
}

/// Decodes `encode_histogram`'s output.
pub fn decode_histogram(s: &str) -> Result<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(s)?;
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| anyhow::anyhow!("bad histogram: {e:?}"))
}

pub fn produce_summary(p: &ProduceStats, secs: f64) -> ProduceSummary {
    ProduceSummary {
        records: p.records,
        bytes: p.bytes,
        errors: p.errors,
        late_sends: p.late_sends,
        records_per_sec: per_sec(p.records as f64, secs),
        mb_per_sec: per_sec(p.bytes as f64 / MB, secs),
        latency_us: LatencySummary::of(&p.latency_us),
        service_latency_us: LatencySummary::of(&p.service_latency_us),
        send_delay_us: LatencySummary::of(&p.send_delay_us),
        transactions: None,
    }
}

pub fn consume_summary(c: &ConsumeStats, secs: f64) -> ConsumeSummary {
    ConsumeSummary {
        records: c.records,
        bytes: c.bytes,
        records_per_sec: per_sec(c.records as f64, secs),
        mb_per_sec: per_sec(c.bytes as f64 / MB, secs),
        unstamped: c.unstamped,
        errors: c.errors,
        e2e_latency_us: LatencySummary::of(&c.e2e_latency_us),
        lost: None,
        duplicated: None,
        reordered: None,
        max_lag: None,
        rebalance_time_ms: 0,
        aborted_seen: c.aborted_seen,
        max_lso_lag: None,
    }
}

pub fn per_sec(amount: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        amount / secs
    } else {
        0.0
    }
}

/// Writes the summary atomically (temp file + rename), so a reader never sees half a file.
pub fn write(summary: &Summary, path: &Path) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(summary)?;
    std::fs::write(&tmp, text).with_context(|| format!("cannot write '{}'", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write '{}'", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_survive_encoding() {
        let mut h = crate::measure::recorder::new_histogram();
        (1..=500).for_each(|v| h.saturating_record(v));
        let back = decode_histogram(&encode_histogram(&h)).unwrap();
        assert_eq!(back.len(), 500);
        assert_eq!(back.value_at_quantile(0.99), h.value_at_quantile(0.99));
    }

    #[test]
    fn empty_histogram_summarises_to_zeros() {
        let s = LatencySummary::of(&crate::measure::recorder::new_histogram());
        assert_eq!((s.count, s.p99, s.max), (0, 0, 0));
    }
}
