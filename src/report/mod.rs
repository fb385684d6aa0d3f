//! Turning measurements into output: Kafka-compatible console lines, kbench tables,
//! `summary.json`, `timeseries.csv` and `latency.hlog`. Nothing here measures.

pub mod charts;
pub mod console;
pub mod faults;
pub mod hlog;
pub mod html;
pub mod live;
pub mod summary;
pub mod timeseries;
pub mod txn;
