//! Faults on the run's timeline. `nodes`: the processes and proxies of a cluster file, and what
//! can be done to them (signals, restart, link faults).

pub mod nodes;
