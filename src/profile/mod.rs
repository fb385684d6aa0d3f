//! `kbench run PROFILE.toml`: a workload from one file — phases and ramps, a config matrix,
//! thresholds, and the search for the highest rate that holds them.
//!
//! Every matrix cell (or max-rate trial) becomes an ordinary plan, validated before anything
//! runs, and executed one after another into one run folder; each phase keeps its own
//! histograms, so a ramp shows the latency–throughput curve. This module plans and judges;
//! measuring is `run`'s.

pub mod file;
pub mod max_rate;
pub mod omb;
pub mod plans;
pub mod threshold;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use comfy_table::{presets::NOTHING, Table};

use crate::report::summary::{Check, PhaseSummary, Verification};
use crate::run::final_report::Frame;
use crate::run::{execute, open_target, Session, STOP};
use file::{parse_set, read_tree, set_path, typed};
use threshold::Threshold;

/// Flags of `kbench run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The profile (TOML); see profiles/ for ready ones.
    #[arg(
        value_name = "PROFILE.toml",
        required_unless_present = "omb",
        conflicts_with = "omb"
    )]
    pub profile: Option<PathBuf>,

    /// Run an OpenMessaging Benchmark workload file instead (its fields mapped to a profile;
    /// what cannot map is an error that names the field).
    #[arg(long, value_name = "WORKLOAD.yaml")]
    pub omb: Option<PathBuf>,

    /// An OMB Kafka driver file whose producer/consumer/common configs apply (with --omb).
    #[arg(long, value_name = "DRIVER.yaml", requires = "omb")]
    pub omb_driver: Option<PathBuf>,

    /// Override a field of the profile, e.g. --set workload.record_size=2048
    /// --set producer_props.linger.ms=5 --set target.bootstrap_server=host:9092.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,

    /// Directory under which the run's result folder is created.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub output_dir: PathBuf,

    /// Name of the run (default: the profile's name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Do not write result files.
    #[arg(long)]
    pub no_results: bool,

    /// Serve live figures in Prometheus text format at http://ADDR/metrics during the run.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl RunArgs {
    /// The file the profile comes from (the TOML profile or the OMB workload).
    pub fn source(&self) -> &std::path::Path {
        self.profile
            .as_deref()
            .or(self.omb.as_deref())
            .unwrap_or(std::path::Path::new("profile"))
    }
}

/// A phase's results and the verification of the cell it ran in.
struct Judged<'a> {
    phase: &'a PhaseSummary,
    verification: Option<&'a Verification>,
}

pub fn run(args: &RunArgs) -> Result<ExitCode> {
    let mut tree = match &args.omb {
        Some(w) => omb::omb_files_to_tree(w, args.omb_driver.as_deref())?,
        None => read_tree(args.source())?,
    };
    for s in &args.set {
        let (k, v) = parse_set(s)?;
        set_path(&mut tree, &k, v).with_context(|| format!("--set {s}"))?;
    }
    let profile = typed(tree.clone(), args.source())?;
    let thresholds = profile
        .thresholds
        .iter()
        .map(|t| match t {
            file::ThresholdDef::Expr(e) => Threshold::parse(e, None),
            file::ThresholdDef::Scoped { expr, phase } => Threshold::parse(expr, phase.clone()),
        })
        .collect::<Result<Vec<_>>>()
        .with_context(|| format!("profile '{}': thresholds", args.source().display()))?;
    let plans = plans::Plans::build(&profile, &tree, args)?;
    let config = serde_json::json!({ "profile": tree_json(&tree), "file": args.source().display().to_string(), "omb_driver": args.omb_driver, "set": args.set });

    let first = plans.first();
    let target = open_target(first)?;
    let mut session = Session::create(&first.output)?;
    let mut frame = Frame {
        command: Some("run".into()),
        config: Some(config),
        prior_phases: Vec::new(),
    };
    let mut verifications: Vec<(usize, Option<Verification>)> = Vec::new();
    let mut summary = None;

    let search = match &profile.find_max_rate {
        Some(cfg) => {
            if thresholds.is_empty() {
                bail!(
                    "profile '{}': find_max_rate needs thresholds to decide which rates hold",
                    args.source().display()
                );
            }
            let mut trial_no = 0;
            let result = max_rate::search(cfg, |rate| {
                trial_no += 1;
                let plan = plans.trial(trial_no, rate, cfg)?;
                let cell = execute(&plan, &target, &mut session, &frame);
                let cell = session.discard_if_empty(cell)?;
                let own = cell.summary.phases.len() - frame.prior_phases.len();
                let v = cell.summary.verification.clone();
                let passed = cell.summary.phases[frame.prior_phases.len()..]
                    .iter()
                    .all(|ph| {
                        judge(
                            &thresholds,
                            &Judged {
                                phase: ph,
                                verification: v.as_ref(),
                            },
                        )
                        .iter()
                        .all(|c| c.passed)
                    });
                verifications.push((own, v));
                frame.prior_phases = cell.summary.phases.clone();
                summary = Some(cell.summary);
                eprintln!(
                    "kbench: trial {trial_no} at {rate:.0} records/s: thresholds {}",
                    if passed { "held" } else { "broken" }
                );
                if STOP.load(std::sync::atomic::Ordering::Relaxed) {
                    bail!("interrupted during the max-rate search");
                }
                Ok(passed)
            })?;
            Some(result)
        }
        None => {
            for plan in plans.cells() {
                let cell = execute(plan, &target, &mut session, &frame);
                let cell = session.discard_if_empty(cell)?;
                let own = cell.summary.phases.len() - frame.prior_phases.len();
                verifications.push((own, cell.summary.verification.clone()));
                frame.prior_phases = cell.summary.phases.clone();
                summary = Some(cell.summary);
                if STOP.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
            }
            None
        }
    };
    let Some(mut summary) = summary else {
        bail!("the profile ran nothing")
    };

    // Judge every phase against the thresholds, with its own cell's verification.
    let mut checks: Vec<Check> = summary
        .checks
        .iter()
        .filter(|c| c.name != "no acknowledged record lost")
        .cloned()
        .collect();
    let mut at = 0;
    for (own, v) in &verifications {
        if let Some(v) = v.as_ref().filter(|v| v.acknowledged.is_some()) {
            checks.push(crate::run::final_report::loss_check(
                v.lost,
                v.acknowledged.unwrap_or(0),
            ));
        }
        for ph in &summary.phases[at..at + own] {
            if search.is_none() {
                checks.extend(judge(
                    &thresholds,
                    &Judged {
                        phase: ph,
                        verification: v.as_ref(),
                    },
                ));
            }
        }
        at += own;
    }
    if let Some(s) = &search {
        checks.push(Check {
            name: "find_max_rate".into(),
            passed: s.knee_records_per_sec.is_some(),
            detail: match s.knee_records_per_sec {
                Some(k) => format!(
                    "highest rate whose thresholds held: {k:.0} records/s ({} trials)",
                    s.trials.len()
                ),
                None => format!(
                    "the thresholds broke already at the start rate, {:.0} records/s",
                    s.trials[0].rate_per_sec
                ),
            },
        });
        summary.max_rate_search = serde_json::to_value(s).ok();
    }
    summary.checks = checks;
    summary.verification = None;
    print_checks(&summary.checks);
    if let Some(dir) = &session.dir {
        crate::report::summary::write(&summary, &dir.join("summary.json"))?;
        match crate::report::html::write_report(dir) {
            Ok(page) => eprintln!(
                "kbench: results in {} (report: {})",
                dir.display(),
                page.display()
            ),
            Err(e) => eprintln!(
                "kbench: results in {}; the HTML report could not be written: {e:#}",
                dir.display()
            ),
        }
    }
    Ok(crate::run::final_report::exit_code(&summary.checks))
}

/// Every threshold that applies to the phase, as checks.
fn judge(thresholds: &[Threshold], j: &Judged) -> Vec<Check> {
    thresholds
        .iter()
        .filter(|t| t.applies_to(&j.phase.name))
        .filter_map(|t| {
            t.check(j.phase, j.verification)
                .map(|(passed, measured)| Check {
                    name: format!("{} [{}]", t.text, j.phase.name),
                    passed,
                    detail: format!("measured {}", t.show(measured)),
                })
        })
        .collect()
}

fn print_checks(checks: &[Check]) {
    if checks.is_empty() {
        return;
    }
    let mut t = Table::new();
    t.load_preset(NOTHING);
    t.set_header(["", "check", "result"]);
    for c in checks {
        t.add_row([
            if c.passed { "ok" } else { "FAIL" },
            c.name.as_str(),
            c.detail.as_str(),
        ]);
    }
    crate::run::reporter::print_stdout(&format!("\nthresholds and checks:\n{t}"));
}

/// The profile as JSON for summary.json, with secret client properties redacted.
fn tree_json(tree: &toml::Value) -> serde_json::Value {
    let mut v = serde_json::to_value(tree).unwrap_or_default();
    for section in ["producer_props", "consumer_props"] {
        if let Some(props) = v.get_mut(section).and_then(|p| p.as_object_mut()) {
            for (k, val) in props.iter_mut() {
                if crate::plan::props::is_secret(k) {
                    *val = "[redacted]".into();
                }
            }
        }
    }
    v
}
