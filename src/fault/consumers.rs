//! Faults on the run's consumers, each by one flag the member's own thread acts on within a
//! poll wait (50 ms):
//! - `consumer-leave`: the member stops polling and leaves the group cleanly (it unsubscribes,
//!   so the group rebalances at once);
//! - `consumer-join`: a member created for it at the start (after the others, not subscribed)
//!   subscribes and consumes, measured like the others until the run ends;
//! - `consumer-kill`: the member stops and its client is destroyed without leaving the group,
//!   so the coordinator hands its partitions over only once its session times out.
//!
//! The rebalance that follows shows in the fault's consume figures (`measure::rebalance`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};

use crate::fault::{Executor, Instance};
use crate::load::consumer::ConsumerShared;
use crate::plan::faults::{Action, FaultSpec, Target};

pub struct ConsumerExecutor {
    /// Every member by index, the late ones (for `consumer-join`) last.
    pub consumers: Vec<Arc<ConsumerShared>>,
}

/// How many members `consumer-join` faults add (each adds one: `validate` refuses a repeat).
pub fn joins(faults: &[FaultSpec]) -> u32 {
    faults
        .iter()
        .filter(|f| f.action == Action::ConsumerJoin)
        .count() as u32
}

impl Executor for ConsumerExecutor {
    fn inject(&mut self, f: &Instance, _: Option<i32>) -> Result<()> {
        let Some(Target::Consumer { index }) = f.spec.target else {
            bail!("'{}' needs a consumer:I target", f.spec.action);
        };
        let c = self
            .consumers
            .get(index as usize)
            .ok_or_else(|| anyhow!("there is no consumer {index}"))?;
        let flag = |flag: &AtomicBool| {
            flag.store(true, Ordering::Relaxed);
            Ok(())
        };
        match f.spec.action {
            Action::ConsumerLeave => flag(&c.leave),
            Action::ConsumerKill => flag(&c.kill),
            Action::ConsumerJoin if c.late => flag(&c.join),
            Action::ConsumerJoin => bail!("consumer {index} is already a member"),
            a => bail!("'{a}' is not a consumer fault"),
        }
    }

    fn heal(&mut self, _: &Instance, _: Option<i32>) -> Result<()> {
        Ok(())
    }
}
