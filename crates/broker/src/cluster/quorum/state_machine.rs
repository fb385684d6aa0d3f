//! The quorum's state machine: committed commands go through `ClusterMetadata::apply`, each
//! resulting `Change` goes to the node's event log, and the new metadata is published on the
//! watch channel that the node's `ClusterHandle` reads. Snapshots are the serialised
//! `ClusterMetadata` in `__cluster_metadata/snapshot.json` (replaced atomically).
//!
//! The metadata itself lives in memory: at a restart it is the snapshot plus the committed
//! log entries openraft replays. Replayed entries up to the committed index read at open
//! are not written to the event log again (they were when first applied).
//! Owns: applying and snapshotting. Must not: decide anything (the model does).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::files;
use super::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::cluster::model::{ClusterMetadata, Reply};
use crate::cluster::EventLog;

const SNAPSHOT_FILE: &str = "snapshot.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: ClusterMetadata,
}

#[derive(Debug)]
struct Inner {
    metadata: ClusterMetadata,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    snapshot: Option<StoredSnapshot>,
    snapshots_built: u64,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    inner: Mutex<Inner>,
    tx: watch::Sender<Arc<ClusterMetadata>>,
    events: EventLog,
    /// Entries up to this index are replays of what this node applied before a restart.
    quiet_until: Option<u64>,
}

/// The state machine; clones share it (the snapshot builder is a clone).
#[derive(Debug, Clone)]
pub struct StateMachine {
    shared: Arc<Shared>,
}

fn sm_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_state_machine(openraft::AnyError::new(&e)).into()
}

impl StateMachine {
    /// Opens the state machine in `dir` from its snapshot, if any.
    pub fn open(dir: &Path, events: EventLog, quiet_until: Option<u64>) -> std::io::Result<Self> {
        let path = dir.join(SNAPSHOT_FILE);
        let snapshot: Option<StoredSnapshot> = match files::read_optional(&path)? {
            Some(b) => Some(serde_json::from_slice(&b).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?),
            None => None,
        };
        let (metadata, last_applied, membership) = match &snapshot {
            Some(s) => (
                s.data.clone(),
                s.meta.last_log_id,
                s.meta.last_membership.clone(),
            ),
            None => (
                ClusterMetadata::default(),
                None,
                StoredMembership::default(),
            ),
        };
        let (tx, _) = watch::channel(Arc::new(metadata.clone()));
        Ok(StateMachine {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                inner: Mutex::new(Inner {
                    metadata,
                    last_applied,
                    membership,
                    snapshot,
                    snapshots_built: 0,
                }),
                tx,
                events,
                quiet_until,
            }),
        })
    }

    /// A receiver of every applied metadata.
    pub fn watch(&self) -> watch::Receiver<Arc<ClusterMetadata>> {
        self.shared.tx.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn apply_one(&self, inner: &mut Inner, entry: Entry) -> Reply {
        inner.last_applied = Some(entry.log_id);
        match entry.payload {
            EntryPayload::Blank => Reply::Ok,
            EntryPayload::Membership(m) => {
                inner.membership = StoredMembership::new(Some(entry.log_id), m);
                Reply::Ok
            }
            EntryPayload::Normal(cmd) => {
                let (reply, changes) = inner.metadata.apply(&cmd);
                let replay = self
                    .shared
                    .quiet_until
                    .is_some_and(|q| entry.log_id.index <= q);
                if !replay {
                    for c in &changes {
                        self.shared.events.record(None, c);
                    }
                }
                reply
            }
        }
    }

    fn save(&self, snapshot: &StoredSnapshot) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(snapshot).map_err(sm_err)?;
        files::replace(&self.shared.dir.join(SNAPSHOT_FILE), &bytes).map_err(|e| {
            StorageIOError::write_snapshot(
                Some(snapshot.meta.signature()),
                openraft::AnyError::new(&e),
            )
            .into()
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let stored = {
            let mut inner = self.lock();
            inner.snapshots_built += 1;
            let last = inner.last_applied;
            let snapshot_id = match last {
                Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, inner.snapshots_built),
                None => format!("0-0-{}", inner.snapshots_built),
            };
            StoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: last,
                    last_membership: inner.membership.clone(),
                    snapshot_id,
                },
                data: inner.metadata.clone(),
            }
        };
        self.save(&stored)?;
        let data = serde_json::to_vec(&stored.data).map_err(sm_err)?;
        let meta = stored.meta.clone();
        self.lock().snapshot = Some(stored);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let inner = self.lock();
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Reply>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.lock();
        let replies: Vec<Reply> = entries
            .into_iter()
            .map(|e| self.apply_one(&mut inner, e))
            .collect();
        self.shared
            .tx
            .send_replace(Arc::new(inner.metadata.clone()));
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data: ClusterMetadata =
            serde_json::from_slice(snapshot.get_ref()).map_err(|e| -> StorageError {
                StorageIOError::read_snapshot(Some(meta.signature()), openraft::AnyError::new(&e))
                    .into()
            })?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        self.save(&stored)?;
        let mut inner = self.lock();
        inner.metadata = stored.data.clone();
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.snapshot = Some(stored);
        self.shared
            .tx
            .send_replace(Arc::new(inner.metadata.clone()));
        self.shared.events.record(
            Some("metadata_snapshot_installed"),
            &serde_json::json!({ "last_index": meta.last_log_id.map(|l| l.index) }),
        );
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let inner = self.lock();
        let Some(s) = &inner.snapshot else {
            return Ok(None);
        };
        let data = serde_json::to_vec(&s.data).map_err(sm_err)?;
        Ok(Some(Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
