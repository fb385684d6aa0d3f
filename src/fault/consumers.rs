//! Faults on the run's consumers: `consumer-leave` makes a member stop polling and leave the
//! group cleanly (it unsubscribes, so the group rebalances at once). The rebalance that follows
//! shows in the fault's `consume_gap_ms` and the consumers' rebalance time.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};

use crate::fault::{Executor, Instance};
use crate::load::consumer::ConsumerShared;
use crate::plan::faults::{Action, Target};

pub struct ConsumerExecutor {
    pub consumers: Vec<Arc<ConsumerShared>>,
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
        match f.spec.action {
            Action::ConsumerLeave => {
                c.leave.store(true, Ordering::Relaxed);
                Ok(())
            }
            a => bail!("'{a}' is not carried out yet; use an exec hook"),
        }
    }

    fn heal(&mut self, _: &Instance, _: Option<i32>) -> Result<()> {
        Ok(())
    }
}
