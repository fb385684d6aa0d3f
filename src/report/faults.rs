//! The faults of a run as results: each fault instance with what happened (t_f, t_h, the node,
//! hooks, errors) and what it cost (`measure::failover`'s figures, the consumers' gaps), the
//! run's durability from the read-back, and the console block that lists them.

use serde::Serialize;

use crate::fault::FaultRecord;
use crate::measure::failover::{ms, ProduceFigures};
use crate::measure::readback::Durability;
use crate::measure::rebalance::GroupWatch;

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
    /// The group's rebalance pause, three ways.
    pub rebalance: RebalancePause,
}

/// The rebalance pause of one fault three ways (`measure::rebalance`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RebalancePause {
    /// (a) ConsumerPerformance-compatible: per member, revoke (or join) → assign of the
    /// rebalances completed in the fault's window, summed as kafka-consumer-perf-test sums its
    /// `rebalance.time.ms`; the longest member's.
    pub revoke_to_assign_ms: f64,
    pub revoke_to_assign_ms_per_member: Vec<f64>,
    pub rebalances: u64,
    /// (b) Per partition that changed owner: the last record received by the old owner → the
    /// first received by the new one; the longest (null: no partition changed owner).
    pub handover_ms: Option<f64>,
    pub handover_ms_per_partition: Vec<Option<f64>>,
    /// (c) Whole seconds of the run after the fault in which the whole group consumed nothing,
    /// and which (seconds from the run's start).
    pub group_idle_seconds: u64,
    pub group_idle_seconds_at_s: Vec<u64>,
}

impl ConsumeFigures {
    /// Fault `k`'s figures from the group's watch.
    pub fn from_watch(
        w: &GroupWatch,
        k: usize,
        t_f_ns: Option<u64>,
        end_ns: u64,
        members: usize,
    ) -> Self {
        let per: Vec<f64> = w
            .gaps
            .window_gaps_ns(k, end_ns)
            .into_iter()
            .map(ms)
            .collect();
        let pause = t_f_ns
            .map(|t| w.pause(k, t, end_ns, members))
            .unwrap_or_default();
        let handover: Vec<Option<f64>> = pause.handover_ns.iter().map(|h| h.map(ms)).collect();
        let assign: Vec<f64> = pause.revoke_to_assign_ns.iter().copied().map(ms).collect();
        ConsumeFigures {
            consume_gap_ms: per.iter().copied().fold(0.0, f64::max),
            consume_gap_ms_per_partition: per,
            rebalance: RebalancePause {
                revoke_to_assign_ms: assign.iter().copied().fold(0.0, f64::max),
                revoke_to_assign_ms_per_member: assign,
                rebalances: pause.rebalances,
                handover_ms: handover.iter().flatten().copied().reduce(f64::max),
                handover_ms_per_partition: handover,
                group_idle_seconds: pause.idle_seconds.len() as u64,
                group_idle_seconds_at_s: pause.idle_seconds,
            },
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
        out.extend(f.consume.as_ref().map(|c| rebalance_line(&c.rebalance)));
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

/// The rebalance pause three ways, on a line of its own under its fault.
fn rebalance_line(r: &RebalancePause) -> String {
    format!(
        "      rebalance pause: revoke → assign {:.0} ms (ConsumerPerformance-compatible, {} rebalances), handover {}, {} s with nothing consumed",
        r.revoke_to_assign_ms,
        r.rebalances,
        r.handover_ms
            .map_or("- (no partition changed owner)".into(), |h| format!("{h:.0} ms")),
        r.group_idle_seconds
    )
}
