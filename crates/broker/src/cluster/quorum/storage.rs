//! The Raft log store on disk, in `<data dir>/__cluster_metadata/`:
//! * `log.bin` — the log entries, each a journal record (`u32 len | u32 crc32c | JSON`, the
//!   format of `crate::journal`), appended and fsynced before openraft is told they are
//!   durable. A torn or corrupt tail (a crash mid-append) is cut at open.
//! * `state.json` — the vote, the committed log id and the last purged log id, replaced
//!   atomically and fsynced on every change: a vote (and so a term) never goes back across
//!   a restart, which keeps leader terms, and the partition leader epochs decided under
//!   them, monotonic.
//!
//! Entries are also kept in memory (the metadata log is small and purged after snapshots).
//! Owns: log and vote durability. Must not: interpret commands (the state machine does).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageIOError};
use serde::{Deserialize, Serialize};

use super::files;
use super::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use crate::journal;

const LOG_FILE: &str = "log.bin";
const STATE_FILE: &str = "state.json";

/// What must survive a restart besides the entries.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct HardState {
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    file: File,
    file_len: u64,
    /// index → (entry, offset of its record in `log.bin`).
    entries: BTreeMap<u64, (Entry, u64)>,
    state: HardState,
}

/// The log store; clones share it (openraft reads through a clone while it appends).
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

fn io_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_logs(openraft::AnyError::new(&e)).into()
}

impl LogStore {
    /// Opens (creating) the store in `dir`, cutting a torn tail of the log.
    pub fn open(dir: &Path) -> std::io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let state: HardState = match files::read_optional(&dir.join(STATE_FILE))? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", dir.join(STATE_FILE).display()),
                )
            })?,
            None => HardState::default(),
        };
        let path = dir.join(LOG_FILE);
        let bytes = files::read_optional(&path)?.unwrap_or_default();
        let (entries, valid_len) = parse_log(&bytes, state.last_purged.map(|l| l.index));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if (valid_len as usize) < bytes.len() {
            tracing::warn!(
                "{}: cut a torn or corrupt tail of {} bytes at offset {valid_len}",
                path.display(),
                bytes.len() - valid_len as usize
            );
            file.set_len(valid_len)?;
            file.sync_all()?;
        }
        files::sync_dir(dir)?;
        Ok(LogStore {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_path_buf(),
                file,
                file_len: valid_len,
                entries,
                state,
            })),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The committed log id read at open (entries up to it are replayed into the state
    /// machine at start).
    pub fn committed(&self) -> Option<LogId> {
        self.lock().state.committed
    }
}

/// The entries of a log file (those after `purged`), contiguous, and the length of its
/// valid prefix: a record that is torn, corrupt, undecodable or out of sequence ends it.
fn parse_log(bytes: &[u8], purged: Option<u64>) -> (BTreeMap<u64, (Entry, u64)>, u64) {
    let mut entries = BTreeMap::new();
    let mut valid = 0u64;
    let mut prev: Option<u64> = None;
    for payload in journal::payloads(bytes) {
        let offset = (payload.as_ptr() as usize - bytes.as_ptr() as usize - 8) as u64;
        let Ok(entry) = serde_json::from_slice::<Entry>(payload) else {
            break;
        };
        let index = entry.log_id.index;
        if prev.is_some_and(|p| index != p + 1) {
            break;
        }
        prev = Some(index);
        valid = offset + 8 + payload.len() as u64;
        if purged.is_none_or(|p| index > p) {
            entries.insert(index, (entry, offset));
        }
    }
    (entries, valid)
}

impl Inner {
    fn save_state(&self) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(&self.state)?;
        files::replace(&self.dir.join(STATE_FILE), &bytes)
    }

    fn append(&mut self, entries: Vec<Entry>) -> std::io::Result<()> {
        let mut buf = Vec::new();
        let mut placed = Vec::with_capacity(entries.len());
        for e in entries {
            let offset = self.file_len + buf.len() as u64;
            buf.extend_from_slice(&journal::frame(&serde_json::to_vec(&e)?));
            placed.push((e, offset));
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.file_len += buf.len() as u64;
        for (e, offset) in placed {
            self.entries.insert(e.log_id.index, (e, offset));
        }
        Ok(())
    }

    /// Removes the entries from `index` on, from memory and from the file.
    fn truncate(&mut self, index: u64) -> std::io::Result<()> {
        let removed = self.entries.split_off(&index);
        if let Some((_, offset)) = removed.values().next() {
            self.file.set_len(*offset)?;
            self.file.sync_all()?;
            self.file_len = *offset;
        }
        Ok(())
    }

    /// Drops the entries up to `log_id` (already in a snapshot) and rewrites the log file
    /// without them. The purge point is saved first, so a crash mid-rewrite only leaves
    /// entries that the next open skips.
    fn purge(&mut self, log_id: LogId) -> std::io::Result<()> {
        self.state.last_purged = Some(log_id);
        self.save_state()?;
        self.entries = self.entries.split_off(&(log_id.index + 1));
        let mut buf = Vec::new();
        for (e, offset) in self.entries.values_mut() {
            *offset = buf.len() as u64;
            buf.extend_from_slice(&journal::frame(&serde_json::to_vec(e)?));
        }
        let path = self.dir.join(LOG_FILE);
        files::replace(&path, &buf)?;
        self.file = OpenOptions::new().append(true).open(&path)?;
        self.file_len = buf.len() as u64;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let inner = self.lock();
        Ok(inner
            .entries
            .range(range)
            .map(|(_, (e, _))| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = self.lock();
        let last_purged_log_id = inner.state.last_purged;
        let last_log_id = inner
            .entries
            .values()
            .next_back()
            .map(|(e, _)| e.log_id)
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner.state.vote = Some(*vote);
        inner
            .save_state()
            .map_err(|e| StorageIOError::write_vote(openraft::AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().state.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let mut inner = self.lock();
        if inner.state.committed == committed {
            return Ok(());
        }
        inner.state.committed = committed;
        inner.save_state().map_err(io_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.lock().state.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let result = self.lock().append(entries.into_iter().collect());
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let err = io_err(std::io::Error::new(e.kind(), e.to_string()));
                callback.log_io_completed(Err(e));
                Err(err)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.lock().truncate(log_id.index).map_err(io_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.lock().purge(log_id).map_err(io_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::model::Command;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(Command::AllocateProducerIds {
                count: index as i64,
            }),
        }
    }

    fn indices(store: &LogStore) -> Vec<u64> {
        store.lock().entries.keys().copied().collect()
    }

    #[test]
    fn entries_and_vote_survive_a_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        {
            let mut inner = store.lock();
            inner
                .append(vec![entry(1, 1), entry(1, 2), entry(2, 3)])
                .unwrap();
            inner.state.vote = Some(Vote::new_committed(2, 1));
            inner.save_state().unwrap();
        }
        drop(store);
        // A crash mid-append: half a record at the tail.
        let rec = journal::frame(&serde_json::to_vec(&entry(2, 4)).unwrap());
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG_FILE))
            .unwrap();
        f.write_all(&rec[..rec.len() / 2]).unwrap();
        drop(f);
        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indices(&store), vec![1, 2, 3]);
        assert_eq!(store.lock().state.vote, Some(Vote::new_committed(2, 1)));
        // The cut tail makes room for the real entry 4.
        store.lock().append(vec![entry(2, 4)]).unwrap();
        drop(store);
        assert_eq!(
            indices(&LogStore::open(dir.path()).unwrap()),
            vec![1, 2, 3, 4]
        );
    }

    #[test]
    fn truncate_and_purge_are_durable() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        {
            let mut inner = store.lock();
            inner
                .append((1..=6).map(|i| entry(1, i)).collect())
                .unwrap();
            inner.truncate(5).unwrap();
            inner.append(vec![entry(3, 5)]).unwrap();
            inner
                .purge(LogId::new(CommittedLeaderId::new(1, 1), 2))
                .unwrap();
        }
        drop(store);
        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(indices(&store), vec![3, 4, 5]);
        assert_eq!(store.lock().entries[&5].0.log_id.leader_id.term, 3);
        assert_eq!(store.lock().state.last_purged.unwrap().index, 2);
    }
}
