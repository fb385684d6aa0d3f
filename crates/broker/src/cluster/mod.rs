//! The replicated cluster: N broker processes, each a voter of the metadata quorum (KRaft's
//! combined mode) and a replica of the partitions assigned to it.
//!
//! Single-node brokers do not use this module at all (`Broker::cluster` is `None`), so the
//! single-node paths stay as they were.
//!
//! # Layout
//! * `model` — the metadata (brokers, topics, partitions: replicas, leader, leader epoch,
//!   ISR) and the deterministic `apply` every node runs on committed commands.
//! * `config` — `--node-id`, `--controller-quorum` and the cluster's timeouts, validated.
//! * `events` — the per-node event log (JSON lines in the data dir).
//! * `local` — a controller applying commands in-process, for tests of the layers above it.
//! * `quorum` — the metadata quorum on openraft: storage, network, the active controller's
//!   duties (liveness, fencing), the node's own registration, heartbeats and controlled
//!   shutdown. Implements `Controller`.
//! * `coordinator` — group (and producer-id) coordination across nodes: which node
//!   coordinates a group, committed offsets in the replicated `__consumer_offsets`.
//! * `replica` — the data path between nodes: follower fetchers, the leader's view of its
//!   followers, the high watermark, ISR changes, reacting to leadership changes.
//!
//! How the parts meet: every node holds a `ClusterHandle`: its id, a `watch` of the latest
//! applied `ClusterMetadata`, and a `Controller` to propose commands (forwarded to the Raft
//! leader). The data path and the request handlers read the watch; nothing else changes the
//! metadata.

pub mod config;
pub mod coordinator;
pub mod events;
pub mod local;
pub mod model;
pub mod quorum;
pub mod replica;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;

pub use config::{ClusterConfig, Voter};
pub use events::EventLog;
pub use model::{ClusterMetadata, Command, NodeId, Reply};

/// A boxed future, so `Controller` stays object-safe.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Proposes commands to the metadata quorum. `submit` resolves once the command is committed
/// and applied on this node (so the watch already shows its effect), with the command's reply.
pub trait Controller: Send + Sync + std::fmt::Debug {
    fn submit(&self, cmd: Command) -> BoxFuture<anyhow::Result<Reply>>;
    /// The node of the active controller, when known (Metadata's `controller_id`).
    fn active_controller(&self) -> Option<NodeId> {
        None
    }
}

/// What a node's broker knows of its cluster.
#[derive(Debug, Clone)]
pub struct ClusterHandle {
    pub node_id: NodeId,
    pub config: ClusterConfig,
    pub metadata: watch::Receiver<Arc<ClusterMetadata>>,
    pub controller: Arc<dyn Controller>,
    pub events: EventLog,
}

impl ClusterHandle {
    /// The latest applied metadata (cheap: an `Arc` clone).
    pub fn current(&self) -> Arc<ClusterMetadata> {
        self.metadata.borrow().clone()
    }
}
