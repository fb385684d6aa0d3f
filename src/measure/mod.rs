//! Measuring: the clock, per-worker recorders, verification sets, the host sampler. Nothing
//! here formats or prints; `report` does.

pub mod clock;
pub mod failover;
pub mod gaps;
pub mod host;
pub mod readback;
pub mod rebalance;
pub mod recorder;
pub mod txn;
pub mod verify;
