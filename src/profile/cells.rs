//! Executing a profile's plans one after another into one run folder: every matrix cell in
//! order, or the max-rate search's trials. Each cell's summary carries the phases of the cells
//! before it, so the last summary holds them all; each cell's own verification is kept aside
//! for judging.
//!
//! Measuring is `run::execute`'s; judging is `verdict`'s.

use std::path::Path;
use std::sync::atomic::Ordering;

use anyhow::{bail, Result};

use crate::plan::Plan;
use crate::profile::file::MaxRateDef;
use crate::profile::max_rate::{self, SearchResult};
use crate::profile::plans::Plans;
use crate::profile::threshold::Threshold;
use crate::profile::verdict::{judge, Judged};
use crate::report::summary::{PhaseSummary, Summary, Verification};
use crate::run::final_report::{CellResult, Frame};
use crate::run::{execute, Session, STOP};
use crate::target::Target;

/// The cells run so far.
pub struct Cells<'a> {
    target: &'a Target,
    session: &'a mut Session,
    frame: Frame,
    /// Per cell: how many phases it reported, and its verification.
    verifications: Vec<(usize, Option<Verification>)>,
    /// Per cell: its faults, read-back and read-back checks.
    faults: Vec<CellFaults>,
    summary: Option<Summary>,
}

/// One cell's faults, for the fault thresholds and the run's list of faults.
#[derive(Debug, Clone, Default)]
pub struct CellFaults {
    pub faults: Vec<crate::report::faults::FaultResult>,
    pub durability: Option<crate::measure::readback::Durability>,
    /// The cell's read-back checks (the run's summary keeps only the last cell's checks).
    pub checks: Vec<crate::report::summary::Check>,
}

/// What the profile ran: the last cell's summary (every cell's phases) and each cell's
/// phase count and verification, in order.
pub struct Ran {
    pub summary: Summary,
    pub verifications: Vec<(usize, Option<Verification>)>,
    pub faults: Vec<CellFaults>,
}

impl<'a> Cells<'a> {
    pub fn new(target: &'a Target, session: &'a mut Session, frame: Frame) -> Self {
        Cells {
            target,
            session,
            frame,
            verifications: Vec::new(),
            faults: Vec::new(),
            summary: None,
        }
    }

    /// Runs every matrix cell in order, stopping early on Ctrl-C.
    pub fn run_all(&mut self, plans: &Plans) -> Result<()> {
        for plan in plans.cells() {
            let cell = self.execute(plan)?;
            self.record(cell);
            if STOP.load(Ordering::Relaxed) {
                break;
            }
        }
        Ok(())
    }

    /// Searches for the highest rate whose thresholds hold, one trial per rate.
    pub fn search_max_rate(
        &mut self,
        plans: &Plans,
        cfg: &MaxRateDef,
        thresholds: &[Threshold],
        source: &Path,
    ) -> Result<SearchResult> {
        if thresholds.is_empty() {
            bail!(
                "profile '{}': find_max_rate needs thresholds to decide which rates hold",
                source.display()
            );
        }
        let mut trial_no = 0;
        max_rate::search(cfg, |rate| {
            trial_no += 1;
            let plan = plans.trial(trial_no, rate, cfg)?;
            let cell = self.execute(&plan)?;
            let v = cell.summary.verification.clone();
            let passed = self.own_phases(&cell).iter().all(|ph| {
                judge(
                    thresholds,
                    &Judged {
                        phase: ph,
                        verification: v.as_ref(),
                    },
                )
                .iter()
                .all(|c| c.passed)
            });
            self.record(cell);
            eprintln!(
                "kbench: trial {trial_no} at {rate:.0} records/s: thresholds {}",
                if passed { "held" } else { "broken" }
            );
            if STOP.load(Ordering::Relaxed) {
                bail!("interrupted during the max-rate search");
            }
            Ok(passed)
        })
    }

    /// What ran; an error when nothing did.
    pub fn ran(self) -> Result<Ran> {
        match self.summary {
            Some(mut summary) => {
                // Every cell's faults, in order (a cell's summary has its own only).
                summary.faults = self.faults.iter().flat_map(|c| c.faults.clone()).collect();
                Ok(Ran {
                    summary,
                    verifications: self.verifications,
                    faults: self.faults,
                })
            }
            None => bail!("the profile ran nothing"),
        }
    }

    fn execute(&mut self, plan: &Plan) -> Result<CellResult> {
        let cell = execute(plan, self.target, self.session, &self.frame);
        self.session.discard_if_empty(cell)
    }

    /// The phases the cell itself ran (its summary lists the earlier cells' first).
    fn own_phases<'c>(&self, cell: &'c CellResult) -> &'c [PhaseSummary] {
        &cell.summary.phases[self.frame.prior_phases.len()..]
    }

    fn record(&mut self, cell: CellResult) {
        let own = self.own_phases(&cell).len();
        self.verifications
            .push((own, cell.summary.verification.clone()));
        // Each fault names its cell: the cell's matrix parameters.
        let params = self.own_phases(&cell).first().map(|p| p.params.clone());
        let mut faults = cell.summary.faults.clone();
        for f in &mut faults {
            f.cell = params.clone().unwrap_or_default();
        }
        self.faults.push(CellFaults {
            faults,
            durability: cell.summary.durability.clone(),
            checks: cell
                .summary
                .checks
                .iter()
                .filter(|c| c.name.contains("read-back"))
                .cloned()
                .collect(),
        });
        self.frame.prior_phases = cell.summary.phases.clone();
        self.summary = Some(cell.summary);
    }
}
