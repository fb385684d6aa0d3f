//! The faults of a run as results: each fault instance with what happened (t_f, t_h, the node,
//! hooks, errors) and what it cost (`measure::failover`'s figures, the consumers' gaps), the
//! run's durability from the read-back, and the console block that lists them.

use serde::Serialize;

use crate::fault::FaultRecord;
use crate::measure::failover::ProduceFigures;
use crate::measure::readback::Durability;

/// One fault in summary.json.
#[derive(Debug, Clone, Serialize)]
pub struct FaultResult {
    #[serde(flatten)]
    pub record: FaultRecord,
    /// The phase the fault was injected in.
    pub phase: Option<String>,
    pub produce: Option<ProduceFigures>,
    pub consume: Option<ConsumeFigures>,
    /// The read-back of the execution the fault ran in (the same for each of its faults).
    pub durability: Option<Durability>,
}

/// What a fault cost the consumers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConsumeFigures {
    /// Longest interval between consecutive records received from a partition in
    /// [t_f − 1 s, end].
    pub consume_gap_ms: f64,
    pub consume_gap_ms_per_partition: Vec<f64>,
}

impl ConsumeFigures {
    pub fn from_gaps_ns(gaps: Vec<u64>) -> Self {
        let per: Vec<f64> = gaps.into_iter().map(crate::measure::failover::ms).collect();
        ConsumeFigures {
            consume_gap_ms: per.iter().copied().fold(0.0, f64::max),
            consume_gap_ms_per_partition: per,
        }
    }
}

/// The console lines of the faults and the read-back.
pub fn lines(faults: &[FaultResult], durability: Option<&Durability>) -> Vec<String> {
    let mut out = Vec::new();
    if !faults.is_empty() {
        out.push("  faults (ms on the run's clock):".to_string());
    }
    for f in faults {
        let r = &f.record;
        let when = match (r.t_f_ms, r.t_h_ms) {
            (Some(a), Some(b)) if a == b => format!("at {a}"),
            (Some(a), Some(b)) => format!("{a} → {b}"),
            (Some(a), None) => format!("from {a}"),
            (None, _) => "not injected".to_string(),
        };
        let node = r.node.map_or(String::new(), |n| format!(" (node {n})"));
        let mut line = format!(
            "    {} {} {}{node}: {when}",
            r.index,
            r.action,
            r.target.as_deref().unwrap_or("")
        );
        if let Some(p) = &f.produce {
            line.push_str(&format!(
                "; ack gap {:.1} ms, first ack after {}, max delivery {:.1} ms, recovery {}, {} failed, {} retries",
                p.ack_gap_ms,
                p.time_to_first_ack_ms.map_or("-".into(), |t| format!("{t:.1} ms")),
                p.max_delivery_ms,
                p.recovery_ms.map_or("-".into(), |t| format!("{t:.0} ms")),
                p.failed,
                p.retries
            ));
        }
        if let Some(c) = &f.consume {
            line.push_str(&format!("; consume gap {:.1} ms", c.consume_gap_ms));
        }
        out.push(line);
        out.extend(r.errors.iter().map(|e| format!("      error: {e}")));
    }
    if let Some(d) = durability {
        out.push(format!(
            "  read-back: {} acknowledged, {} failed, {} in the log: {} acknowledged lost{}, {} failed but present, {} duplicated, {} reordered{}",
            d.acked,
            d.failed,
            d.read,
            d.acked_lost,
            if d.loss_expected { " (loss expected)" } else { "" },
            d.failed_but_present,
            d.duplicated,
            d.reordered,
            if d.complete { "" } else { " (INCOMPLETE: the end offsets were not reached)" }
        ));
        if d.log_start_offsets > 0 {
            out.push(format!(
                "  note: the partitions' logs start at offsets summing to {}: records below them are gone (retention; librdkafka's mock cluster keeps 5 MB per partition), and acknowledged ones among them count as lost",
                d.log_start_offsets
            ));
        }
    }
    out
}
