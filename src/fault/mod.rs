//! Faults on the run's timeline: the scheduler that injects and heals each step of the plan on
//! the run's clock (driven by `tick(now_ns)` from the run loop), and the executors that carry a
//! step out: librdkafka's mock cluster, shell hooks for clusters kbench did not start, and (with
//! `--cluster-file`) the node processes and proxies of a cluster it did.
//!
//! This module acts; it does not measure (`measure::failover` does, from the delivery
//! reports) and it does not validate input (`plan::faults` did, before the run).

pub mod consumers;
pub mod hooks;
pub mod mock;
pub mod node_exec;
pub mod nodes;
pub mod resolve;
pub mod scheduler;
pub mod session;

pub use scheduler::{FaultRecord, Scheduler};

use anyhow::Result;

use crate::plan::faults::FaultSpec;

/// One occurrence of a fault step (a `repeat` makes several), with its times.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Index among the run's instances, in order of `at`.
    pub index: usize,
    pub spec: FaultSpec,
    /// Absolute clock ns.
    pub at_ns: u64,
    pub heal_ns: Option<u64>,
}

/// Carries fault steps out on some kind of target.
pub trait Executor {
    /// Injects the fault on `node` (resolved from the target at injection time, if it names
    /// one).
    fn inject(&mut self, f: &Instance, node: Option<i32>) -> Result<()>;
    /// Undoes it (after `for`).
    fn heal(&mut self, f: &Instance, node: Option<i32>) -> Result<()>;
}
