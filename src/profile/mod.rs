//! `kbench run PROFILE.toml`: a workload from one file — phases and ramps, a config matrix,
//! thresholds, and the search for the highest rate that holds them.
//!
//! Every matrix cell (or max-rate trial) becomes an ordinary plan, validated before anything
//! runs, and executed one after another into one run folder; each phase keeps its own
//! histograms, so a ramp shows the latency–throughput curve. This module plans and judges;
//! measuring is `run`'s.

pub mod cells;
pub mod file;
pub mod max_rate;
pub mod omb;
pub mod plans;
pub mod threshold;
pub mod verdict;

use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::cli::RunArgs;
use crate::report::summary::Summary;
use crate::run::final_report::Frame;
use crate::run::{open_target, Session};
use cells::Cells;
use file::{parse_set, read_tree, set_path, typed};
use threshold::Threshold;

pub fn run(args: &RunArgs) -> Result<ExitCode> {
    let loaded = load(args)?;
    let plans = plans::Plans::build(&loaded.profile, &loaded.tree, args)?;
    let target = open_target(plans.first())?;
    let mut session = Session::create(&plans.first().output)?;
    let frame = Frame {
        command: Some("run".into()),
        config: Some(loaded.config(args)),
        prior_phases: Vec::new(),
    };
    let mut cells = Cells::new(&target, &mut session, frame);
    let search = match &loaded.profile.find_max_rate {
        Some(cfg) => Some(cells.search_max_rate(&plans, cfg, &loaded.thresholds, args.source())?),
        None => {
            cells.run_all(&plans)?;
            None
        }
    };
    let ran = cells.ran()?;
    let checks = verdict::checks(&ran, &loaded.thresholds, search.as_ref());
    let cells_run = ran.faults.len();
    let mut summary = ran.summary;
    if let Some(s) = &search {
        summary.max_rate_search = serde_json::to_value(s).ok();
    }
    summary.checks = checks;
    // Each cell's verification is in its loss check; the last cell's alone would mislead (a
    // cell's read-back stays with each of its faults).
    summary.verification = None;
    if cells_run > 1 {
        summary.durability = None;
    }
    // Cells side by side when some are transactional (each cell printed only its own).
    if cells_run > 1 {
        if let Some(t) = crate::report::txn::phase_table(&summary.phases) {
            crate::run::reporter::print_stdout(&format!("\n{t}"));
        }
    }
    verdict::print_checks(&summary.checks);
    write_results(&summary, &session)?;
    Ok(crate::run::final_report::exit_code(&summary.checks))
}

/// A profile read and checked: the file (or OMB workload) with `--set` applied, typed, and
/// its thresholds parsed.
struct Loaded {
    tree: toml::Value,
    profile: file::Profile,
    thresholds: Vec<Threshold>,
}

fn load(args: &RunArgs) -> Result<Loaded> {
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
    Ok(Loaded {
        tree,
        profile,
        thresholds,
    })
}

impl Loaded {
    /// The run's `config` in summary.json: the profile as given and where it came from.
    fn config(&self, args: &RunArgs) -> serde_json::Value {
        serde_json::json!({ "profile": tree_json(&self.tree), "file": args.source().display().to_string(), "omb_driver": args.omb_driver, "set": args.set })
    }
}

/// The final summary over every cell, and the HTML report beside it.
fn write_results(summary: &Summary, session: &Session) -> Result<()> {
    let Some(dir) = &session.dir else {
        return Ok(());
    };
    crate::report::summary::write(summary, &dir.join("summary.json"))?;
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
    Ok(())
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
