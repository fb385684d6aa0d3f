//! The faults of a run as results: each fault instance with what happened (t_f, t_h, the node,
//! hooks, errors) and what it cost (`measure::failover`'s figures, the consumers' gaps and
//! rebalance pause), the run's durability from the read-back; the console block that lists
//! them, and one table of them (from summary.json) for report.html and faults.md.

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
    /// The matrix cell the fault ran in: its parameters (empty without a matrix).
    pub cell: std::collections::BTreeMap<String, String>,
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

/// One row of the fault table, read from summary.json (so `kbench report` can redraw old runs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultRow {
    pub cell: String,
    pub fault: String,
    pub when_ms: String,
    pub cells: Vec<String>,
}

/// The table's value columns, with the summary.json path each reads.
const COLUMNS: &[(&str, &str)] = &[
    ("ack gap ms", "produce.ack_gap_ms"),
    ("first ack ms", "produce.time_to_first_ack_ms"),
    ("max delivery ms", "produce.max_delivery_ms"),
    ("recovery ms", "produce.recovery_ms"),
    ("failed", "produce.failed"),
    ("acked lost", "durability.acked_lost"),
    ("duplicated", "durability.duplicated"),
    ("consume gap ms", "consume.consume_gap_ms"),
    (
        "revoke→assign ms (ConsumerPerformance)",
        "consume.rebalance.revoke_to_assign_ms",
    ),
    ("handover ms", "consume.rebalance.handover_ms"),
    ("idle s", "consume.rebalance.group_idle_seconds"),
];

/// The table's rows and the columns that have a value in some row, from summary.json.
pub fn table(summary: &serde_json::Value) -> (Vec<&'static str>, Vec<FaultRow>) {
    let faults: Vec<&serde_json::Value> =
        summary["faults"].as_array().into_iter().flatten().collect();
    let used: Vec<usize> = (0..COLUMNS.len())
        .filter(|&c| faults.iter().any(|f| !pick(f, COLUMNS[c].1).is_null()))
        .collect();
    let rows = faults
        .iter()
        .map(|f| FaultRow {
            cell: f["cell"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            format!("{}={}", short_key(k), v.as_str().unwrap_or_default())
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default(),
            fault: format!(
                "{} {} {}{}",
                f["index"],
                f["action"].as_str().unwrap_or_default(),
                f["target"].as_str().unwrap_or_default(),
                f["node"]
                    .as_i64()
                    .map_or(String::new(), |n| format!(" (node {n})"))
            ),
            when_ms: match (f["t_f_ms"].as_u64(), f["t_h_ms"].as_u64()) {
                (Some(a), Some(b)) if a == b => format!("{a}"),
                (Some(a), Some(b)) => format!("{a} → {b}"),
                (Some(a), None) => format!("{a} →"),
                (None, _) => "not injected".into(),
            },
            cells: used
                .iter()
                .map(|&c| number(pick(f, COLUMNS[c].1)))
                .collect(),
        })
        .collect();
    (used.iter().map(|&c| COLUMNS[c].0).collect(), rows)
}

/// `producer_props.acks` → `acks`, as the matrix cells' phase names say it.
fn short_key(k: &str) -> &str {
    ["producer_props.", "consumer_props.", "workload.", "target."]
        .iter()
        .find_map(|p| k.strip_prefix(p))
        .unwrap_or(k)
}

fn pick<'v>(v: &'v serde_json::Value, path: &str) -> &'v serde_json::Value {
    path.split('.').fold(v, |v, k| &v[k])
}

fn number(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "–".into(),
        v => match (v.as_u64(), v.as_f64()) {
            (Some(n), _) => n.to_string(),
            (None, Some(x)) => format!("{x:.0}"),
            _ => v.to_string(),
        },
    }
}

/// The fault table as GitHub-flavoured Markdown (faults.md; the README's tables come from it).
pub fn markdown(summary: &serde_json::Value) -> Option<String> {
    let (columns, rows) = table(summary);
    if rows.is_empty() {
        return None;
    }
    let cells = rows.iter().any(|r| !r.cell.is_empty());
    let mut head: Vec<&str> = Vec::new();
    if cells {
        head.push("cell");
    }
    head.extend(["fault", "t_f → t_h ms"]);
    head.extend(&columns);
    let mut out = format!("| {} |\n|", head.join(" | "));
    for (i, _) in head.iter().enumerate() {
        out.push_str(if i < head.len() - columns.len() {
            " --- |"
        } else {
            " ---: |"
        });
    }
    out.push('\n');
    for r in &rows {
        let mut line: Vec<&str> = Vec::new();
        if cells {
            line.push(&r.cell);
        }
        line.extend([r.fault.as_str(), r.when_ms.as_str()]);
        line.extend(r.cells.iter().map(String::as_str));
        out.push_str(&format!("| {} |\n", line.join(" | ")));
    }
    Some(out)
}

/// The fault table for report.html (`esc` escapes text for HTML).
pub fn html(summary: &serde_json::Value, esc: fn(&str) -> String) -> Option<String> {
    let (columns, rows) = table(summary);
    if rows.is_empty() {
        return None;
    }
    let cells = rows.iter().any(|r| !r.cell.is_empty());
    let mut h = String::from("<h2>Faults</h2>\n<table><tr>");
    if cells {
        h.push_str("<th class=\"l\">cell</th>");
    }
    h.push_str("<th class=\"l\">fault</th><th class=\"l\">t_f → t_h ms</th>");
    for c in &columns {
        h.push_str(&format!("<th>{}</th>", esc(c)));
    }
    h.push_str("</tr>\n");
    for r in &rows {
        h.push_str("<tr>");
        if cells {
            h.push_str(&format!("<td class=\"l\">{}</td>", esc(&r.cell)));
        }
        h.push_str(&format!(
            "<td class=\"l\">{}</td><td class=\"l\">{}</td>",
            esc(&r.fault),
            esc(&r.when_ms)
        ));
        for v in &r.cells {
            h.push_str(&format!("<td>{}</td>", esc(v)));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n<p class=\"note\">");
    if columns.contains(&"ack gap ms") {
        h.push_str(
            "ack gap: the longest interval between consecutive acks of a partition from 1 s \
             before the fault. ",
        );
    }
    if columns.contains(&"handover ms") || columns.contains(&"idle s") {
        h.push_str(
            "revoke→assign: kafka-consumer-perf-test's rebalance time \
             (ConsumerPerformance-compatible); handover: a partition's last record at its old \
             owner → first at the new one; idle s: whole seconds in which the group consumed \
             nothing.",
        );
    }
    h.push_str("</p>\n");
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_the_columns_some_fault_has() {
        let s = serde_json::json!({"faults": [
            {"index": 0, "action": "kill", "target": "leader-of:t-0/0", "node": 2, "t_f_ms": 8000,
             "t_h_ms": 18000, "cell": {"producer_props.acks": "1"},
             "produce": {"ack_gap_ms": 7012.4, "time_to_first_ack_ms": 6500.0, "max_delivery_ms": 7100.2,
                         "recovery_ms": null, "failed": 0},
             "durability": {"acked_lost": 812, "duplicated": 0}, "consume": null},
            {"index": 0, "action": "kill", "target": "leader-of:t-1/0", "node": 3, "t_f_ms": 8001,
             "t_h_ms": 18001, "cell": {"acks": "all"},
             "produce": {"ack_gap_ms": 7500.0, "time_to_first_ack_ms": null, "max_delivery_ms": 7600.0,
                         "recovery_ms": 1000.0, "failed": 0},
             "durability": {"acked_lost": 0, "duplicated": 0}, "consume": null}
        ]});
        let md = markdown(&s).unwrap();
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines.len(), 4, "{md}");
        assert!(
            lines[0].starts_with("| cell | fault | t_f → t_h ms | ack gap ms |"),
            "{md}"
        );
        assert!(
            !lines[0].contains("consume gap"),
            "no consumer column without consumers: {md}"
        );
        assert_eq!(
            lines[2],
            "| acks=1 | 0 kill leader-of:t-0/0 (node 2) | 8000 → 18000 | 7012 | 6500 | 7100 | – | 0 | 812 | 0 |"
        );
        assert!(lines[3].contains("| 0 | 0 |"), "{md}");
        let h = html(&s, |t| t.replace('<', "&lt;")).unwrap();
        assert!(h.contains("<td>812</td>") && h.contains("acks=all"), "{h}");
        assert!(h.contains("ack gap: ") && !h.contains("handover:"), "{h}");
        assert!(markdown(&serde_json::json!({"faults": []})).is_none());
    }
}
