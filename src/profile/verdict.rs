//! Judging what a profile ran: every phase against the thresholds that apply to it (with its
//! own cell's verification), each cell's loss check, and the max-rate search's outcome, as the
//! checks of the run's summary; and the table of them on stdout.

use comfy_table::{presets::NOTHING, Table};

use crate::profile::cells::{CellFaults, Ran};
use crate::profile::max_rate::SearchResult;
use crate::profile::threshold::Threshold;
use crate::report::summary::{Check, PhaseSummary, Verification};
use crate::run::final_report::{aborted_check, loss_check, ABORTED_CHECK};

/// A phase's results and the verification of the cell it ran in.
pub struct Judged<'a> {
    pub phase: &'a PhaseSummary,
    pub verification: Option<&'a Verification>,
}

/// Every threshold that applies to the phase, as checks.
pub fn judge(thresholds: &[Threshold], j: &Judged) -> Vec<Check> {
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

/// The run's checks: the last cell's own checks but its loss check, then per cell its loss
/// check and (without a search, whose trials were judged as they ran) its phases against the
/// thresholds, then the search's outcome.
pub fn checks(ran: &Ran, thresholds: &[Threshold], search: Option<&SearchResult>) -> Vec<Check> {
    let mut checks: Vec<Check> = ran
        .summary
        .checks
        .iter()
        .filter(|c| {
            c.name != "no acknowledged record lost"
                && c.name != ABORTED_CHECK
                && !c.name.contains("read-back")
        })
        .cloned()
        .collect();
    let mut at = 0;
    for (cell, (own, v)) in ran.verifications.iter().enumerate() {
        if let Some(v) = v.as_ref().filter(|v| v.acknowledged.is_some()) {
            checks.push(loss_check(v.lost, v.acknowledged.unwrap_or(0)));
        }
        let phases = &ran.summary.phases[at..at + own];
        let transactional = phases
            .iter()
            .any(|p| p.produce.as_ref().is_some_and(|p| p.transactions.is_some()));
        checks.extend(v.as_ref().and_then(|v| aborted_check(transactional, v)));
        if let Some(f) = ran.faults.get(cell) {
            checks.extend(f.checks.iter().cloned());
            if search.is_none() {
                checks.extend(judge_faults(thresholds, f));
            }
        }
        for ph in &ran.summary.phases[at..at + own] {
            if search.is_none() {
                checks.extend(judge(
                    thresholds,
                    &Judged {
                        phase: ph,
                        verification: v.as_ref(),
                    },
                ));
            }
        }
        at += own;
    }
    checks.extend(search.map(search_check));
    checks
}

/// The `fault.*` thresholds against one cell's faults and read-back.
fn judge_faults(thresholds: &[Threshold], cell: &CellFaults) -> Vec<Check> {
    let label = cell
        .faults
        .iter()
        .find_map(|f| f.phase.as_deref())
        .map(|p| p.rsplit_once('/').map_or("", |(c, _)| c))
        .filter(|c| !c.is_empty())
        .map_or(String::new(), |c| format!(" [{c}]"));
    // A threshold scoped to a phase judges the cells whose faults fell in that phase (so
    // `phase = "acks=all/steady"` bounds the acks=all cell only).
    let phases: Vec<&str> = cell
        .faults
        .iter()
        .filter_map(|f| f.phase.as_deref())
        .collect();
    thresholds
        .iter()
        .filter(|t| phases.is_empty() || phases.iter().any(|p| t.applies_to(p)))
        .filter_map(|t| {
            t.check_faults(&cell.faults, cell.durability.as_ref())
                .map(|(passed, measured)| Check {
                    name: format!("{}{label}", t.text),
                    passed,
                    detail: format!(
                        "measured {} (worst of {} faults)",
                        t.show(measured),
                        cell.faults.len()
                    ),
                })
        })
        .collect()
}

fn search_check(s: &SearchResult) -> Check {
    Check {
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
    }
}

/// The checks as a table on stdout (nothing when there are none).
pub fn print_checks(checks: &[Check]) {
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
