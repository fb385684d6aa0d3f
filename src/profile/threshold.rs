//! Thresholds in k6's spirit: `METRIC OP VALUE[UNIT]`, e.g. `e2e.p99 < 20ms`,
//! `produce.mb_per_sec > 100`, `consume.lost == 0`, `max_lag < 10000`, checked against a phase
//! summary (and the run's verification for loss counts). `fault.*` metrics (`fault.ack_gap_ms
//! < 5s`, `fault.acked_lost == 0`) are checked once per cell against its faults: the worst
//! fault's figure, and the read-back's counts. Parsing fails with what is allowed.

use std::fmt;

use anyhow::{anyhow, bail, Result};

use crate::measure::readback::Durability;
use crate::report::faults::FaultResult;
use crate::report::summary::{LatencySummary, PhaseSummary, Verification};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

/// A parsed threshold; latency values are kept in microseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub text: String,
    pub metric: String,
    pub op: Op,
    pub value: f64,
    /// Only this phase (by name, or the phase part after a matrix cell's `/`); all when None.
    pub phase: Option<String>,
}

const LATENCY_GROUPS: [&str; 7] = [
    "produce",
    "service",
    "send_delay",
    "e2e",
    "commit",
    "abort",
    "commit_pause",
];
const LATENCY_STATS: [&str; 7] = ["p50", "p90", "p99", "p999", "p9999", "max", "mean"];
const PLAIN: [&str; 19] = [
    "produce.records_per_sec",
    "produce.mb_per_sec",
    "produce.records",
    "produce.errors",
    "produce.late_sends",
    "consume.records_per_sec",
    "consume.mb_per_sec",
    "consume.records",
    "consume.lost",
    "consume.duplicated",
    "consume.reordered",
    "max_lag",
    "host.cpu_pct_avg",
    "txn.committed",
    "txn.aborted",
    "txn.failed",
    "txn.transactions_per_sec",
    "consume.aborted_seen",
    "max_lso_lag",
];

/// Fault figures that are times (given with a unit, like latencies).
const FAULT_TIMES: [&str; 7] = [
    "fault.ack_gap_ms",
    "fault.time_to_first_ack_ms",
    "fault.max_delivery_ms",
    "fault.recovery_ms",
    "fault.consume_gap_ms",
    "fault.revoke_to_assign_ms",
    "fault.handover_ms",
];
/// Fault figures that are counts.
const FAULT_COUNTS: [&str; 6] = [
    "fault.group_idle_seconds",
    "fault.failed",
    "fault.acked_lost",
    "fault.failed_but_present",
    "fault.duplicated",
    "fault.reordered",
];

fn is_fault_time(metric: &str) -> bool {
    FAULT_TIMES.contains(&metric)
}

fn is_latency(metric: &str) -> bool {
    if is_fault_time(metric) {
        return true;
    }
    metric
        .split_once('.')
        .is_some_and(|(g, s)| LATENCY_GROUPS.contains(&g) && LATENCY_STATS.contains(&s))
}

impl Threshold {
    pub fn parse(text: &str, phase: Option<String>) -> Result<Threshold> {
        let ops = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let (pos, sym, op) = ops
            .iter()
            .filter_map(|(sym, op)| text.find(sym).map(|p| (p, *sym, *op)))
            .min_by_key(|(p, sym, _)| (*p, std::cmp::Reverse(sym.len())))
            .ok_or_else(|| anyhow!("threshold '{text}': no comparison; write METRIC OP VALUE, e.g. 'e2e.p99 < 20ms' (OP is < <= > >= == !=)"))?;
        let metric = text[..pos].trim().to_string();
        let rhs = text[pos + sym.len()..].trim();
        if !is_latency(&metric)
            && !PLAIN.contains(&metric.as_str())
            && !FAULT_COUNTS.contains(&metric.as_str())
        {
            bail!(
                "threshold '{text}': unknown metric '{metric}'; latency metrics are {{{}}}.{{{}}}, fault metrics {} (times, with a unit) and {}, and the others are {}",
                LATENCY_GROUPS.join(","),
                LATENCY_STATS.join(","),
                FAULT_TIMES.join(", "),
                FAULT_COUNTS.join(", "),
                PLAIN.join(", ")
            );
        }
        let value = if is_latency(&metric) {
            let split = rhs
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| anyhow!("threshold '{text}': '{rhs}' needs a unit (us, ms or s)"))?;
            let n: f64 = rhs[..split]
                .parse()
                .map_err(|_| anyhow!("threshold '{text}': '{rhs}' is not a number with a unit"))?;
            n * match rhs[split..].trim() {
                "us" | "µs" => 1.0,
                "ms" => 1_000.0,
                "s" => 1_000_000.0,
                u => bail!("threshold '{text}': unit '{u}' is not us, ms or s"),
            }
        } else {
            rhs.parse()
                .map_err(|_| anyhow!("threshold '{text}': '{rhs}' is not a number"))?
        };
        Ok(Threshold {
            text: text.trim().to_string(),
            metric,
            op,
            value,
            phase,
        })
    }

    /// Does this threshold look at `phase_name`?
    pub fn applies_to(&self, phase_name: &str) -> bool {
        match &self.phase {
            None => true,
            Some(p) => phase_name == p || phase_name.rsplit('/').next() == Some(p.as_str()),
        }
    }

    /// The measured value in the phase (loss counts from the whole run's verification).
    pub fn measure(&self, ph: &PhaseSummary, v: Option<&Verification>) -> Option<f64> {
        let lat = |l: &LatencySummary, stat: &str| -> f64 {
            match stat {
                "p50" => l.p50 as f64,
                "p90" => l.p90 as f64,
                "p99" => l.p99 as f64,
                "p999" => l.p999 as f64,
                "p9999" => l.p9999 as f64,
                "max" => l.max as f64,
                _ => l.mean,
            }
        };
        let (group, stat) = self
            .metric
            .split_once('.')
            .unwrap_or((self.metric.as_str(), ""));
        let p = ph.produce.as_ref();
        let c = ph.consume.as_ref();
        let txn = p.and_then(|p| p.transactions.as_ref());
        match (group, stat) {
            ("produce", s) if is_latency(&self.metric) => p.map(|p| lat(&p.latency_us, s)),
            ("service", s) => p.map(|p| lat(&p.service_latency_us, s)),
            ("send_delay", s) => p.map(|p| lat(&p.send_delay_us, s)),
            ("e2e", s) => c.map(|c| lat(&c.e2e_latency_us, s)),
            ("commit", s) => txn.map(|t| lat(&t.commit_latency_us, s)),
            ("abort", s) => txn.map(|t| lat(&t.abort_latency_us, s)),
            ("commit_pause", s) => txn.map(|t| lat(&t.commit_pause_us, s)),
            ("txn", "committed") => txn.map(|t| t.committed as f64),
            ("txn", "aborted") => txn.map(|t| t.aborted as f64),
            ("txn", "failed") => txn.map(|t| t.failed as f64),
            ("txn", "transactions_per_sec") => txn.map(|t| t.transactions_per_sec),
            ("consume", "aborted_seen") => v.map(|v| v.aborted_seen as f64),
            ("max_lso_lag", _) => c.and_then(|c| c.max_lso_lag).map(|l| l as f64),
            ("produce", "records_per_sec") => p.map(|p| p.records_per_sec),
            ("produce", "mb_per_sec") => p.map(|p| p.mb_per_sec),
            ("produce", "records") => p.map(|p| p.records as f64),
            ("produce", "errors") => p.map(|p| p.errors as f64),
            ("produce", "late_sends") => p.map(|p| p.late_sends as f64),
            ("consume", "records_per_sec") => c.map(|c| c.records_per_sec),
            ("consume", "mb_per_sec") => c.map(|c| c.mb_per_sec),
            ("consume", "records") => c.map(|c| c.records as f64),
            ("consume", "lost") => v.map(|v| v.lost as f64),
            ("consume", "duplicated") => v.map(|v| v.duplicated as f64),
            ("consume", "reordered") => v.map(|v| v.reordered as f64),
            ("max_lag", _) => c.and_then(|c| c.max_lag).map(|l| l as f64),
            ("host", "cpu_pct_avg") => Some(ph.host.cpu_pct_avg),
            _ => None,
        }
    }

    /// Checks the phase; `None` when the metric does not exist there (no consumers, say, or
    /// a `fault.*` metric, which `check_faults` checks).
    pub fn check(&self, ph: &PhaseSummary, v: Option<&Verification>) -> Option<(bool, f64)> {
        if self.is_fault() {
            return None;
        }
        self.measure(ph, v)
            .map(|m| (self.op.holds(m, self.value), m))
    }

    /// A `fault.*` metric?
    pub fn is_fault(&self) -> bool {
        self.metric.starts_with("fault.")
    }

    /// Checks a `fault.*` metric against a cell's faults (the worst of them; times in µs like
    /// latencies) and its read-back; `None` when the cell has no such figure.
    pub fn check_faults(
        &self,
        faults: &[FaultResult],
        durability: Option<&Durability>,
    ) -> Option<(bool, f64)> {
        if !self.is_fault() || faults.is_empty() {
            return None;
        }
        let worst =
            |f: &dyn Fn(&FaultResult) -> Option<f64>| faults.iter().filter_map(f).reduce(f64::max);
        let m = match self.metric.as_str() {
            "fault.ack_gap_ms" => worst(&|f| f.produce.as_ref().map(|p| p.ack_gap_ms)),
            "fault.time_to_first_ack_ms" => {
                worst(&|f| f.produce.as_ref().and_then(|p| p.time_to_first_ack_ms))
            }
            "fault.max_delivery_ms" => worst(&|f| f.produce.as_ref().map(|p| p.max_delivery_ms)),
            // A fault that never recovered has no recovery time: it breaks any bound.
            "fault.recovery_ms" => worst(&|f| {
                f.produce
                    .as_ref()
                    .map(|p| p.recovery_ms.unwrap_or(f64::INFINITY))
            }),
            "fault.consume_gap_ms" => worst(&|f| f.consume.as_ref().map(|c| c.consume_gap_ms)),
            // The rebalance pause: (a), (b) (a fault without a handover has none), (c).
            "fault.revoke_to_assign_ms" => {
                worst(&|f| f.consume.as_ref().map(|c| c.rebalance.revoke_to_assign_ms))
            }
            "fault.handover_ms" => {
                worst(&|f| f.consume.as_ref().and_then(|c| c.rebalance.handover_ms))
            }
            "fault.group_idle_seconds" => worst(&|f| {
                f.consume
                    .as_ref()
                    .map(|c| c.rebalance.group_idle_seconds as f64)
            }),
            "fault.failed" => Some(
                faults
                    .iter()
                    .filter_map(|f| f.produce.as_ref().map(|p| p.failed as f64))
                    .sum(),
            ),
            "fault.acked_lost" => durability.map(|d| d.acked_lost as f64),
            "fault.failed_but_present" => durability.map(|d| d.failed_but_present as f64),
            "fault.duplicated" => durability.map(|d| d.duplicated as f64),
            "fault.reordered" => durability.map(|d| d.reordered as f64),
            _ => None,
        }?;
        // Figures in ms are compared with the threshold's µs.
        let m = if is_fault_time(&self.metric) {
            m * 1000.0
        } else {
            m
        };
        Some((self.op.holds(m, self.value), m))
    }

    /// The measured value with the threshold's unit, for messages.
    pub fn show(&self, measured: f64) -> String {
        if is_latency(&self.metric) {
            format!("{:.3} ms", measured / 1000.0)
        } else {
            format!("{measured:.2}")
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.phase {
            Some(p) => write!(f, "{} [phase {p}]", self.text),
            None => write!(f, "{}", self.text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_latency_with_units_and_plain_metrics() {
        let t = Threshold::parse("e2e.p99 < 20ms", None).unwrap();
        assert_eq!(
            (t.metric.as_str(), t.op, t.value),
            ("e2e.p99", Op::Lt, 20_000.0)
        );
        assert_eq!(
            Threshold::parse("produce.p999<=1.5s", None).unwrap().value,
            1_500_000.0
        );
        assert_eq!(
            Threshold::parse("service.max >= 250us", None).unwrap().op,
            Op::Ge
        );
        let t = Threshold::parse("consume.lost == 0", None).unwrap();
        assert_eq!((t.op, t.value), (Op::Eq, 0.0));
        assert_eq!(
            Threshold::parse("max_lag < 10000", None).unwrap().value,
            10_000.0
        );
        assert_eq!(
            Threshold::parse("produce.mb_per_sec > 100", None)
                .unwrap()
                .op,
            Op::Gt
        );
    }

    #[test]
    fn fails_with_what_is_allowed() {
        assert!(Threshold::parse("e2e.p99 < 20", None)
            .unwrap_err()
            .to_string()
            .contains("unit"));
        assert!(Threshold::parse("e2e.p42 < 20ms", None)
            .unwrap_err()
            .to_string()
            .contains("unknown metric"));
        assert!(Threshold::parse("e2e.p99 20ms", None)
            .unwrap_err()
            .to_string()
            .contains("no comparison"));
        assert!(Threshold::parse("e2e.p99 < 20 parsecs", None)
            .unwrap_err()
            .to_string()
            .contains("unit"));
    }

    #[test]
    fn fault_metrics_take_units_for_times_and_plain_counts() {
        let t = Threshold::parse("fault.ack_gap_ms < 5s", None).unwrap();
        assert_eq!((t.value, t.is_fault()), (5_000_000.0, true));
        assert_eq!(t.show(4_200_000.0), "4200.000 ms");
        let t = Threshold::parse("fault.acked_lost == 0", None).unwrap();
        assert_eq!(t.value, 0.0);
        assert!(Threshold::parse("fault.ack_gap_ms < 5", None)
            .unwrap_err()
            .to_string()
            .contains("unit"));
        assert!(Threshold::parse("fault.gap < 5s", None)
            .unwrap_err()
            .to_string()
            .contains("fault.ack_gap_ms"));
    }

    #[test]
    fn the_rebalance_pause_can_be_bounded_three_ways() {
        use crate::report::faults::{ConsumeFigures, RebalancePause};
        let fault = |handover_ms| FaultResult {
            record: crate::fault::FaultRecord {
                index: 0,
                action: "consumer-kill".into(),
                target: Some("consumer:0".into()),
                node: None,
                planned_at_ms: 2000,
                planned_for_ms: None,
                t_f_ms: Some(2000),
                t_h_ms: Some(2000),
                loss_expected: false,
                hooks: Vec::new(),
                errors: Vec::new(),
            },
            phase: None,
            cell: Default::default(),
            produce: None,
            consume: Some(ConsumeFigures {
                rebalance: RebalancePause {
                    revoke_to_assign_ms: 2.0,
                    handover_ms,
                    group_idle_seconds: 5,
                    ..Default::default()
                },
                ..Default::default()
            }),
            durability: None,
        };
        let check = |t: &str, f: &[FaultResult]| {
            Threshold::parse(t, None)
                .unwrap()
                .check_faults(f, None)
                .map(|(ok, _)| ok)
        };
        let killed = [fault(Some(6_100.0))];
        assert_eq!(check("fault.handover_ms < 5s", &killed), Some(false));
        assert_eq!(check("fault.handover_ms < 7s", &killed), Some(true));
        assert_eq!(
            check("fault.revoke_to_assign_ms < 5ms", &killed),
            Some(true)
        );
        assert_eq!(check("fault.group_idle_seconds <= 2", &killed), Some(false));
        // No partition changed owner: no handover figure to judge.
        assert_eq!(check("fault.handover_ms < 5s", &[fault(None)]), None);
    }

    #[test]
    fn phase_scope_matches_plain_and_cell_phase_names() {
        let t = Threshold::parse("e2e.p99 < 1ms", Some("steady".into())).unwrap();
        assert!(t.applies_to("steady") && t.applies_to("acks=1/steady"));
        assert!(!t.applies_to("ramp-1"));
    }
}
