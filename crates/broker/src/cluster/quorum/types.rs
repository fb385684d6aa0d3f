//! The Raft type configuration of the metadata quorum and the aliases the other quorum
//! modules share: the log carries `model::Command`s, the state machine answers `Reply`s.
//!
//! Raft node ids are `u64` (openraft's default); the cluster's `NodeId` is a non-negative
//! `i32` (Kafka's `node.id`), converted at the edges with `raft_id` / `node_id`.

use std::io::Cursor;

use crate::cluster::model::{Command, NodeId, Reply};

openraft::declare_raft_types!(
    /// The quorum's types: commands in, replies out, a node named by its quorum address.
    pub TypeConfig:
        D = Command,
        R = Reply,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type RaftId = u64;
pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<RaftId>;
pub type Vote = openraft::Vote<RaftId>;
pub type StorageError = openraft::StorageError<RaftId>;
pub type StoredMembership = openraft::StoredMembership<RaftId, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<RaftId, openraft::BasicNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type RaftError<E = openraft::error::Infallible> = openraft::error::RaftError<RaftId, E>;

pub fn raft_id(id: NodeId) -> RaftId {
    u64::try_from(id).expect("node ids are validated non-negative")
}

pub fn node_id(id: RaftId) -> NodeId {
    NodeId::try_from(id).unwrap_or(-1)
}
