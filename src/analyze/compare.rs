//! `kbench compare BASE NEW`: per phase (matched by name) and metric, the change from BASE to
//! NEW and whether it is beyond noise, for gating CI on a regression.
//!
//! The headline values come from `summary.json` (exact, from the whole-phase histograms); the
//! noise judgement comes from the per-interval samples in `timeseries.csv` (Welch's t-test).
//! A regression is a change for the worse larger than `--max-regression` AND significant at
//! p < 0.05: a big but noisy change, or a significant but small one, does not fail the job.
//! A change for the worse beyond the limit that cannot be tested (too few intervals on a side)
//! is neither: it is `untested`, says what would make it testable, and fails the gate unless
//! `--accept-untested` lets it pass: a gate must not pass what it could not test.
//! When the runs asked for different workloads (`config_diff`), the comparison says so first.
//! This module decides; `compare_output` formats. It must not read anything but result files.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;

use super::{
    full_intervals, read_series, read_summary, PhaseView, RunPaths, SeriesRow, SummaryView,
};
use crate::analyze::config_diff::{differences, ConfigDifference};
use crate::analyze::stats::{welch, Welch, MIN_SAMPLES};

/// Significance level of the t-test.
pub const ALPHA: f64 = 0.05;

const AFTER_HELP: &str = "\
A change for the worse beyond --max-regression with fewer than 3 full reporting intervals per
run in its phase cannot be tested: it is UNTESTED and fails the gate unless --accept-untested.
When the runs asked for different workloads (rate, record size, acks, partitions, ...), the
differences are listed above the table: a change is then not a regression of the system.

Exit codes:
  0  no regression beyond --max-regression that is also significant (p < 0.05), and no change
     beyond it left untested (or --accept-untested)
  1  at least one regression, or an untested change for the worse beyond --max-regression
  2  bad input: a missing or unreadable file, or no phase in common";

/// Compares two runs: the change per phase and metric, and whether it is beyond noise.
#[derive(Debug, Clone, Args)]
#[command(after_help = AFTER_HELP)]
pub struct CompareArgs {
    /// The baseline: a run folder (results/<run>/) or its summary.json.
    #[arg(value_name = "BASE")]
    pub base: PathBuf,

    /// The run to judge against the baseline: a run folder or its summary.json.
    #[arg(value_name = "NEW")]
    pub new: PathBuf,

    /// Largest change for the worse that is tolerated, in percent (e.g. 5% or 5).
    #[arg(long, value_name = "PERCENT", default_value = "5%", value_parser = parse_percent)]
    pub max_regression: f64,

    /// Output format: a terminal table, a Markdown table (for a CI job summary) or JSON.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,

    /// Let a change for the worse beyond --max-regression pass when too few intervals (under 3
    /// per run) leave it untested. It is still shown as UNTESTED, with a warning on stderr.
    /// Without this flag such a change fails the gate (exit 1).
    #[arg(long)]
    pub accept_untested: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

/// Parses `5%`, `5` or `2.5 %` into 5.0 / 2.5 (percent).
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let t = s.trim().trim_end_matches('%').trim();
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!(
            "'{s}' is not a percentage: give a non-negative number such as 5% or 2.5"
        )),
    }
}

/// Which way is better for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    Higher,
    Lower,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Worse beyond the limit and significant.
    Regression,
    /// Better beyond the limit and significant.
    Improvement,
    /// Worse beyond the limit, but too few intervals to tell it from noise.
    Untested,
    /// Anything else: within the limit, or not distinguishable from noise.
    Unchanged,
}

/// One line of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct MetricChange {
    pub phase: String,
    pub metric: String,
    pub unit: String,
    pub better: Better,
    pub base: f64,
    pub new: f64,
    /// (new - base) / base in percent; null when base is 0.
    pub change_pct: Option<f64>,
    /// Two-sided Welch p-value; null with too few intervals on a side.
    pub p_value: Option<f64>,
    pub base_samples: usize,
    pub new_samples: usize,
    pub verdict: Verdict,
    /// Untested rows: why, and what would make the change testable; null otherwise.
    pub note: Option<String>,
}

/// `kbench compare --format json`; schema: schema/compare.schema.json.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub schema_version: u32,
    pub base: String,
    pub new: String,
    pub max_regression_pct: f64,
    pub alpha: f64,
    /// Fields of the effective config that the runs set differently (empty: same workload).
    pub config_differences: Vec<ConfigDifference>,
    pub changes: Vec<MetricChange>,
    /// Phases present on one side only (not compared).
    pub unmatched_phases: Vec<String>,
    pub regressions: usize,
    /// Changes for the worse beyond the limit that could not be tested.
    pub untested: usize,
    /// Whether untested changes pass (`--accept-untested`).
    pub accept_untested: bool,
    /// The gate: no regression, and no untested change unless accepted.
    pub passed: bool,
}

/// A metric: where its headline value and its per-interval samples come from.
struct Metric {
    name: &'static str,
    unit: &'static str,
    better: Better,
    value: fn(&PhaseView) -> Option<f64>,
    sample: fn(&SeriesRow) -> Option<f64>,
}

fn lat(v: u64) -> f64 {
    v as f64 / 1000.0
}

/// Interval latencies count only when the interval had records (an empty one reads 0).
fn produced(r: &SeriesRow, v: u64) -> Option<f64> {
    (r.produce_records > 0).then_some(lat(v))
}
fn consumed(r: &SeriesRow, v: u64) -> Option<f64> {
    (r.consume_records > 0).then_some(lat(v))
}
/// An interval's commit latency counts only when a transaction committed in it.
fn committed(r: &SeriesRow, v: u64) -> Option<f64> {
    (r.txn_committed > 0).then_some(lat(v))
}
/// A phase's commit latency, for transactional producers.
fn commit_lat(p: &PhaseView) -> Option<&crate::analyze::LatencyView> {
    let t = p.produce.as_ref()?.transactions.as_ref()?;
    (t.commit_latency_us.count > 0).then_some(&t.commit_latency_us)
}

// One metric per entry reads better than rustfmt's expansion of these closures.
#[rustfmt::skip]
const METRICS: &[Metric] = &[
    Metric { name: "produce records/s", unit: "records/s", better: Better::Higher,
        value: |p| p.produce.as_ref().map(|t| t.records_per_sec),
        sample: |r| Some(r.produce_records_per_sec) },
    Metric { name: "produce MB/s", unit: "MB/s", better: Better::Higher,
        value: |p| p.produce.as_ref().map(|t| t.mb_per_sec),
        sample: |r| Some(r.produce_mb_per_sec) },
    Metric { name: "consume records/s", unit: "records/s", better: Better::Higher,
        value: |p| p.consume.as_ref().map(|c| c.records_per_sec),
        sample: |r| Some(r.consume_records_per_sec) },
    Metric { name: "consume MB/s", unit: "MB/s", better: Better::Higher,
        value: |p| p.consume.as_ref().map(|c| c.mb_per_sec),
        sample: |r| Some(r.consume_mb_per_sec) },
    Metric { name: "produce p50", unit: "ms", better: Better::Lower,
        value: |p| p.produce.as_ref().filter(|t| t.latency_us.count > 0).map(|t| lat(t.latency_us.p50)),
        sample: |r| produced(r, r.produce_p50_us) },
    Metric { name: "produce p99", unit: "ms", better: Better::Lower,
        value: |p| p.produce.as_ref().filter(|t| t.latency_us.count > 0).map(|t| lat(t.latency_us.p99)),
        sample: |r| produced(r, r.produce_p99_us) },
    Metric { name: "produce p99.9", unit: "ms", better: Better::Lower,
        value: |p| p.produce.as_ref().filter(|t| t.latency_us.count > 0).map(|t| lat(t.latency_us.p999)),
        sample: |r| produced(r, r.produce_p999_us) },
    Metric { name: "transactions/s", unit: "txn/s", better: Better::Higher,
        value: |p| p.produce.as_ref().and_then(|t| t.transactions.as_ref()).map(|x| x.transactions_per_sec),
        sample: |r| (r.txn_committed + r.txn_aborted + r.txn_failed > 0).then(|| (r.txn_committed + r.txn_aborted + r.txn_failed) as f64 / r.interval_sec.max(1e-9)) },
    Metric { name: "commit p50", unit: "ms", better: Better::Lower,
        value: |p| commit_lat(p).map(|l| lat(l.p50)),
        sample: |r| committed(r, r.commit_p50_us) },
    Metric { name: "commit p99", unit: "ms", better: Better::Lower,
        value: |p| commit_lat(p).map(|l| lat(l.p99)),
        sample: |r| committed(r, r.commit_p99_us) },
    Metric { name: "e2e p50", unit: "ms", better: Better::Lower,
        value: |p| p.consume.as_ref().filter(|c| c.e2e_latency_us.count > 0).map(|c| lat(c.e2e_latency_us.p50)),
        sample: |r| consumed(r, r.e2e_p50_us) },
    Metric { name: "e2e p99", unit: "ms", better: Better::Lower,
        value: |p| p.consume.as_ref().filter(|c| c.e2e_latency_us.count > 0).map(|c| lat(c.e2e_latency_us.p99)),
        sample: |r| consumed(r, r.e2e_p99_us) },
    Metric { name: "e2e p99.9", unit: "ms", better: Better::Lower,
        value: |p| p.consume.as_ref().filter(|c| c.e2e_latency_us.count > 0).map(|c| lat(c.e2e_latency_us.p999)),
        sample: |r| consumed(r, r.e2e_p999_us) },
];

/// A run as compare needs it: its summary and its full-length intervals.
struct Loaded {
    label: String,
    summary: SummaryView,
    rows: Vec<SeriesRow>,
}

fn load(path: &std::path::Path) -> Result<Loaded> {
    let paths = RunPaths::resolve(path)?;
    let summary = read_summary(&paths.summary)?;
    if !paths.timeseries.is_file() {
        bail!(
            "'{}' not found: compare needs the per-interval samples next to '{}'",
            paths.timeseries.display(),
            paths.summary.display()
        );
    }
    let rows = full_intervals(read_series(&paths.timeseries)?);
    Ok(Loaded {
        label: path.display().to_string(),
        summary,
        rows,
    })
}

fn samples(rows: &[SeriesRow], phase: &str, m: &Metric) -> Vec<f64> {
    rows.iter()
        .filter(|r| r.phase == phase)
        .filter_map(m.sample)
        .collect()
}

fn verdict(change_pct: Option<f64>, better: Better, test: Option<Welch>, limit: f64) -> Verdict {
    let Some(change) = change_pct else {
        return Verdict::Unchanged;
    };
    let worse_pct = match better {
        Better::Higher => -change,
        Better::Lower => change,
    };
    let Some(test) = test else {
        // Within the limit it passes whatever the noise; beyond it, nothing can be said.
        return if worse_pct > limit {
            Verdict::Untested
        } else {
            Verdict::Unchanged
        };
    };
    if test.p >= ALPHA {
        return Verdict::Unchanged;
    }
    if worse_pct > limit {
        Verdict::Regression
    } else if -worse_pct > limit {
        Verdict::Improvement
    } else {
        Verdict::Unchanged
    }
}

/// A reporting interval short enough for a phase of `secs` to give the test its intervals,
/// with one to spare (a phase's first and last intervals are often partial).
fn interval_advice(secs: f64, command: &str) -> String {
    const NICE_MS: [u64; 9] = [100, 200, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000];
    if secs <= 0.0 {
        // An older summary without the phase's length: no interval to suggest.
        return "rerun both with a shorter --reporting-interval, or for longer".to_string();
    }
    let most_ms = secs * 1000.0 / (MIN_SAMPLES as f64 + 1.0);
    let Some(&ms) = NICE_MS.iter().rev().find(|&&ms| ms as f64 <= most_ms) else {
        return format!("rerun both for longer: {secs:.1} s is too short for {MIN_SAMPLES} intervals even at the 100ms minimum --reporting-interval");
    };
    let every = humantime::format_duration(Duration::from_millis(ms));
    let how = if command == "run" {
        format!(
            "reporting_interval = \"{every}\" in the profile (or --set reporting_interval={every})"
        )
    } else {
        format!("--reporting-interval {every}")
    };
    format!("rerun both with {how} or shorter, or for longer")
}

/// Why an untested change is not judged, and what would let it be.
fn untested_note(c: &MetricChange, limit: f64, phase_secs: f64, command: &str) -> String {
    let why = if c.base_samples < MIN_SAMPLES || c.new_samples < MIN_SAMPLES {
        format!(
            "{}+{} full intervals are too few for the significance test ({MIN_SAMPLES} per run needed)",
            c.base_samples, c.new_samples
        )
    } else {
        "the significance test could not be computed on these intervals".to_string()
    };
    format!(
        "{:+.1}% is beyond the {limit}% limit but untested: {why}; {}",
        c.change_pct.unwrap_or(0.0),
        interval_advice(phase_secs, command)
    )
}

/// Compares two loaded runs; an error when they share no phase.
fn compare_loaded(base: &Loaded, new: &Loaded, limit: f64, accept: bool) -> Result<Comparison> {
    let mut changes = Vec::new();
    let mut unmatched = Vec::new();
    for bp in &base.summary.phases {
        let Some(np) = new.summary.phase(&bp.name) else {
            unmatched.push(format!("{} (only in BASE)", bp.name));
            continue;
        };
        for m in METRICS {
            let (Some(b), Some(n)) = ((m.value)(bp), (m.value)(np)) else {
                continue;
            };
            let bs = samples(&base.rows, &bp.name, m);
            let ns = samples(&new.rows, &np.name, m);
            let test = welch(&bs, &ns);
            let change_pct = (b != 0.0).then(|| (n - b) / b * 100.0);
            let mut change = MetricChange {
                phase: bp.name.clone(),
                metric: m.name.to_string(),
                unit: m.unit.to_string(),
                better: m.better,
                base: b,
                new: n,
                change_pct,
                p_value: test.map(|t| t.p),
                base_samples: bs.len(),
                new_samples: ns.len(),
                verdict: verdict(change_pct, m.better, test, limit),
                note: None,
            };
            if change.verdict == Verdict::Untested {
                let secs = bp.duration_sec.min(np.duration_sec);
                change.note = Some(untested_note(&change, limit, secs, &new.summary.command));
            }
            changes.push(change);
        }
    }
    for np in &new.summary.phases {
        if base.summary.phase(&np.name).is_none() {
            unmatched.push(format!("{} (only in NEW)", np.name));
        }
    }
    if changes.is_empty() {
        let names = |s: &SummaryView| {
            s.phases
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        bail!(
            "'{}' (phases: {}) and '{}' (phases: {}) have no phase with a metric in common",
            base.label,
            names(&base.summary),
            new.label,
            names(&new.summary)
        );
    }
    let count = |v: Verdict| changes.iter().filter(|c| c.verdict == v).count();
    let (regressions, untested) = (count(Verdict::Regression), count(Verdict::Untested));
    let (b, n) = (&base.summary, &new.summary);
    Ok(Comparison {
        schema_version: 1,
        base: base.label.clone(),
        new: new.label.clone(),
        max_regression_pct: limit,
        alpha: ALPHA,
        config_differences: differences(&b.command, &b.config, &n.command, &n.config),
        changes,
        unmatched_phases: unmatched,
        regressions,
        untested,
        accept_untested: accept,
        passed: regressions == 0 && (untested == 0 || accept),
    })
}

/// Compares the two runs of `args`.
pub fn compare(args: &CompareArgs) -> Result<Comparison> {
    let base = load(&args.base).context("BASE")?;
    let new = load(&args.new).context("NEW")?;
    compare_loaded(&base, &new, args.max_regression, args.accept_untested)
}

/// Runs `kbench compare`: prints the comparison to stdout; exit 1 on a regression.
/// `Err` (exit 2) for bad input.
pub fn run(args: CompareArgs) -> Result<ExitCode> {
    let cmp = compare(&args)?;
    for u in &cmp.unmatched_phases {
        eprintln!("kbench compare: warning: phase {u} is not compared");
    }
    // Also on stderr: with --format markdown >> $GITHUB_STEP_SUMMARY, stdout is not in the log.
    if !cmp.config_differences.is_empty() {
        eprintln!(
            "kbench compare: warning: the runs asked for different workloads ({} field(s) differ, listed above the table)",
            cmp.config_differences.len()
        );
    }
    if cmp.accept_untested && cmp.untested > 0 {
        eprintln!(
            "kbench compare: warning: {} change(s) for the worse beyond the {}% limit were not tested (too few intervals) and pass only because of --accept-untested",
            cmp.untested, cmp.max_regression_pct
        );
    }
    let text = match args.format {
        Format::Text => super::compare_output::text(&cmp),
        Format::Markdown => super::compare_output::markdown(&cmp),
        Format::Json => serde_json::to_string_pretty(&cmp)? + "\n",
    };
    print!("{text}");
    Ok(if cmp.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_parse_with_or_without_the_sign() {
        assert_eq!(parse_percent("5%"), Ok(5.0));
        assert_eq!(parse_percent(" 2.5 "), Ok(2.5));
        assert!(parse_percent("five").is_err());
        assert!(parse_percent("-1%").is_err());
    }

    #[test]
    fn a_significant_slowdown_beyond_the_limit_is_a_regression() {
        let sig = Some(Welch {
            t: 5.0,
            df: 10.0,
            p: 0.001,
        });
        assert_eq!(
            verdict(Some(10.0), Better::Lower, sig, 5.0),
            Verdict::Regression
        );
        assert_eq!(
            verdict(Some(-10.0), Better::Higher, sig, 5.0),
            Verdict::Regression
        );
        assert_eq!(
            verdict(Some(-10.0), Better::Lower, sig, 5.0),
            Verdict::Improvement
        );
        assert_eq!(
            verdict(Some(3.0), Better::Lower, sig, 5.0),
            Verdict::Unchanged
        );
    }

    #[test]
    fn a_large_but_noisy_change_is_not_a_regression() {
        let noisy = Some(Welch {
            t: 1.0,
            df: 10.0,
            p: 0.3,
        });
        assert_eq!(
            verdict(Some(50.0), Better::Lower, noisy, 5.0),
            Verdict::Unchanged
        );
    }

    #[test]
    fn an_untestable_change_beyond_the_limit_is_untested_and_within_it_ok() {
        assert_eq!(
            verdict(Some(50.0), Better::Lower, None, 5.0),
            Verdict::Untested
        );
        assert_eq!(
            verdict(Some(-73.0), Better::Higher, None, 5.0),
            Verdict::Untested
        );
        assert_eq!(
            verdict(Some(3.0), Better::Lower, None, 5.0),
            Verdict::Unchanged
        );
        // Better beyond the limit but untested: nothing to gate on, and no improvement claimed.
        assert_eq!(
            verdict(Some(-50.0), Better::Lower, None, 5.0),
            Verdict::Unchanged
        );
    }

    #[test]
    fn the_advice_names_an_interval_that_gives_enough_samples() {
        assert!(interval_advice(5.0, "produce").contains("--reporting-interval 1s or shorter"));
        assert!(interval_advice(60.0, "e2e").contains("--reporting-interval 10s"));
        assert!(interval_advice(0.2, "produce").contains("too short"));
        assert!(interval_advice(0.0, "produce").contains("a shorter --reporting-interval"));
        assert!(interval_advice(5.0, "run").contains("--set reporting_interval=1s"));
    }

    #[test]
    fn the_short_tail_interval_is_dropped() {
        let row = |len| SeriesRow {
            interval_sec: len,
            ..Default::default()
        };
        let rows = full_intervals(vec![row(1.0), row(1.02), row(0.98), row(0.2)]);
        assert_eq!(rows.len(), 3);
    }
}
