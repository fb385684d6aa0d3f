//! The data path between nodes: follower fetchers, the leader's view of its followers, the
//! high watermark, ISR changes, and reacting to leadership changes in the metadata.

use std::sync::Arc;

use tokio::sync::watch;

use crate::state::Broker;

/// Starts this node's replication duties; they end when `shutdown` turns true.
pub fn spawn(_broker: Arc<Broker>, _shutdown: watch::Receiver<bool>) {}
