//! Generating load: keys, payloads, the record stamp, the open-loop schedule, and the producer
//! and consumer workers on librdkafka. Workers record into `measure`; they never print.

pub mod client;
pub mod consumer;
pub mod delivery_reports;
pub mod fetch_queue;
pub mod group_member;
pub mod keys;
pub mod lso;
pub mod payload;
pub mod phase_starts;
pub mod producer;
pub mod receive;
pub mod schedule;
pub mod stamp;
pub mod timing;
pub mod topic_send;
pub mod txn_driver;
pub mod txn_end;
