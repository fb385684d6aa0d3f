//! The transaction coordinator (Kafka's "transaction protocol v1", KIP-98): per transactional
//! id a producer id and epoch, the transaction's state, the partitions and groups it touched,
//! and the offsets sent to it; fencing of older producer instances, and the transitions of
//! Kafka's `TransactionCoordinator.scala` / `TransactionMetadata.scala`.
//!
//! Owns: that state and its journal (`journal`). Decisions are returned as values; ending a
//! transaction (markers in the partitions, offsets into the group store) is `complete`'s job,
//! done without this module's lock held — so the lock order is always partition log, then
//! coordinator, never the reverse. Must not: touch partition logs or sockets.
//!
//! Single node: EndTxn writes its markers before it is answered (Kafka answers first and
//! writes them asynchronously), so a transaction is in PrepareCommit/PrepareAbort only while
//! its markers are being written; requests arriving then get CONCURRENT_TRANSACTIONS.

pub mod cluster;
pub mod complete;
pub mod journal;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use crate::group::offsets::Committed;

pub const NONE: i16 = 0;
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
pub const INVALID_TXN_STATE: i16 = 48;
pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
pub const CONCURRENT_TRANSACTIONS: i16 = 51;
pub const KAFKA_STORAGE_ERROR: i16 = 56;
pub const PRODUCER_FENCED: i16 = 90;

/// Kafka's `TransactionState` (without the TV2-only and expiry states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

/// An offset sent to a transaction (TxnOffsetCommit), applied to the group on commit only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOffset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub committed: Committed,
}

/// What the coordinator knows of one transactional id.
#[derive(Debug, Clone)]
pub struct TxnMeta {
    pub producer_id: i64,
    pub epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// Wall-clock ms when the transaction became Ongoing (its first AddPartitions/AddOffsets,
    /// as ProducerConfig's transaction.timeout.ms doc says); survives restarts in the journal.
    pub start_ms: i64,
    pub partitions: BTreeSet<(String, i32)>,
    pub groups: BTreeSet<String>,
    pub pending: Vec<PendingOffset>,
    /// Its markers are being written right now (not journaled).
    pub completing: bool,
}

/// Why a transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// EndTxn from its producer.
    Client,
    /// A new instance called InitProducerId while it was open.
    Fenced,
    /// It outlived its transaction.timeout.ms.
    TimedOut,
    /// Found in PrepareCommit/PrepareAbort at startup, or a marker write failed earlier.
    Resumed,
}

/// A transaction to end: write `commit`/abort markers with `epoch` to `partitions`.
#[derive(Debug, Clone)]
pub struct EndPlan {
    pub tid: String,
    pub producer_id: i64,
    pub epoch: i16,
    pub commit: bool,
    pub partitions: Vec<(String, i32)>,
    pub reason: EndReason,
}

/// The answer to InitProducerId.
#[derive(Debug)]
pub enum Init {
    Ready(i64, i16),
    /// The previous instance's open transaction must be aborted first; the client is then told
    /// CONCURRENT_TRANSACTIONS and retries (Kafka's `handleInitProducerId`, state Ongoing).
    AbortFirst(EndPlan),
    Error(i16),
}

/// The answer to EndTxn.
#[derive(Debug)]
pub enum End {
    Answer(i16),
    Write(EndPlan),
}

#[derive(Debug, Default)]
struct Inner {
    txns: HashMap<String, TxnMeta>,
    by_pid: HashMap<i64, String>,
    /// The epoch before a coordinator-side bump (fence or timeout), per id: a producer that
    /// presents it to InitProducerId (KIP-360) is recovering, not a zombie. Memory only.
    last_epoch: HashMap<String, i16>,
}

#[derive(Debug)]
pub struct TxnCoordinator {
    journal: journal::Journal,
    inner: Mutex<Inner>,
    max_timeout_ms: i64,
    /// Cluster mode only: which `__transaction_state` partitions are loaded, the write lock,
    /// the connections to other nodes (see `cluster`).
    pub cluster: cluster::Shared,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn plan(tid: &str, m: &TxnMeta, commit: bool, reason: EndReason) -> EndPlan {
    EndPlan {
        tid: tid.to_string(),
        producer_id: m.producer_id,
        epoch: m.epoch,
        commit,
        partitions: m.partitions.iter().cloned().collect(),
        reason,
    }
}

/// Moves `m` to Prepare* and marks it completing: the caller writes the markers.
fn prepare(tid: &str, m: &mut TxnMeta, commit: bool, reason: EndReason) -> EndPlan {
    m.state = if commit {
        TxnState::PrepareCommit
    } else {
        TxnState::PrepareAbort
    };
    m.completing = true;
    plan(tid, m, commit, reason)
}

/// Checks the producer id and epoch a request presents against the id's current ones.
fn check_producer(m: &TxnMeta, pid: i64, epoch: i16) -> Result<(), i16> {
    if m.producer_id != pid {
        Err(INVALID_PRODUCER_ID_MAPPING)
    } else if m.epoch != epoch {
        Err(PRODUCER_FENCED)
    } else {
        Ok(())
    }
}

impl TxnCoordinator {
    /// Opens (replaying) the journal in `dir`; `max_timeout_ms` is Kafka's
    /// transaction.max.timeout.ms.
    pub fn open(dir: &Path, max_timeout_ms: u64) -> std::io::Result<Self> {
        let (journal, txns) = journal::Journal::open(dir)?;
        let by_pid = txns
            .iter()
            .map(|(tid, m)| (m.producer_id, tid.clone()))
            .collect();
        Ok(TxnCoordinator {
            journal,
            inner: Mutex::new(Inner {
                txns,
                by_pid,
                last_epoch: HashMap::new(),
            }),
            max_timeout_ms: i64::try_from(max_timeout_ms).unwrap_or(i64::MAX),
            cluster: cluster::Shared::default(),
        })
    }

    /// A cluster node's coordinator: no file, its journal records go to the replicated
    /// `__transaction_state` partitions (`cluster`), and it starts with no ids loaded.
    pub fn replicated(max_timeout_ms: u64) -> Self {
        TxnCoordinator {
            journal: journal::Journal::outbox(),
            inner: Mutex::new(Inner::default()),
            max_timeout_ms: i64::try_from(max_timeout_ms).unwrap_or(i64::MAX),
            cluster: cluster::Shared::default(),
        }
    }

    /// The journal payloads the calls since the last `take_journal` wrote (cluster mode).
    pub fn take_journal(&self) -> Vec<Vec<u8>> {
        self.journal.take_outbox()
    }

    /// Replaces the ids `mine` selects with `txns` (a `__transaction_state` partition loaded
    /// here, or, with an empty map, dropped when this node stops leading it).
    pub fn replace(&self, mine: impl Fn(&str) -> bool, txns: HashMap<String, TxnMeta>) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.txns.retain(|t, _| !mine(t));
        inner.by_pid.retain(|_, t| !mine(t));
        inner.last_epoch.retain(|t, _| !mine(t));
        for (tid, m) in txns {
            inner.by_pid.insert(m.producer_id, tid.clone());
            inner.txns.insert(tid, m);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn journal(&self, tid: &str, m: &TxnMeta) -> Result<(), i16> {
        self.journal.write_meta(tid, m).map_err(|e| {
            tracing::error!(
                transactional_id = tid,
                "transaction journal write failed: {e}"
            );
            KAFKA_STORAGE_ERROR
        })
    }

    /// InitProducerId with a transactional id. `expected` is the producer id and epoch a
    /// producer presents to recover (KIP-360, v3+); `alloc` hands out a new producer id.
    pub fn init(
        &self,
        tid: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        alloc: impl FnOnce() -> std::io::Result<i64>,
    ) -> Init {
        if timeout_ms <= 0 || i64::from(timeout_ms) > self.max_timeout_ms {
            return Init::Error(INVALID_TRANSACTION_TIMEOUT);
        }
        let mut inner = self.lock();
        let inner = &mut *inner;
        let Some(m) = inner.txns.get_mut(tid) else {
            let pid = match alloc() {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!("cannot allocate a producer id: {e}");
                    return Init::Error(KAFKA_STORAGE_ERROR);
                }
            };
            let m = TxnMeta {
                producer_id: pid,
                epoch: 0,
                timeout_ms,
                state: TxnState::Empty,
                start_ms: -1,
                partitions: BTreeSet::new(),
                groups: BTreeSet::new(),
                pending: Vec::new(),
                completing: false,
            };
            if let Err(c) = self.journal(tid, &m) {
                return Init::Error(c);
            }
            inner.by_pid.insert(pid, tid.to_string());
            inner.txns.insert(tid.to_string(), m);
            return Init::Ready(pid, 0);
        };
        if let Some((pid, epoch)) = expected {
            let recovering = inner.last_epoch.get(tid) == Some(&epoch);
            if pid != m.producer_id || (epoch != m.epoch && !recovering) {
                return Init::Error(PRODUCER_FENCED);
            }
        }
        match m.state {
            _ if m.completing => Init::Error(CONCURRENT_TRANSACTIONS),
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                Init::Error(CONCURRENT_TRANSACTIONS)
            }
            TxnState::Ongoing => {
                // Fence the old instance: abort with a bumped epoch, so its batches and
                // requests at the old epoch are refused from now on, and it cannot come back
                // through KIP-360 either.
                inner.last_epoch.remove(tid);
                m.epoch = m.epoch.saturating_add(1);
                let p = prepare(tid, m, false, EndReason::Fenced);
                match self.journal(tid, m) {
                    Ok(()) => Init::AbortFirst(p),
                    Err(c) => {
                        m.completing = false;
                        Init::Error(c)
                    }
                }
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                // Kafka rotates to a new producer id when the epoch is exhausted.
                if m.epoch >= i16::MAX - 1 {
                    let pid = match alloc() {
                        Ok(p) => p,
                        Err(_) => return Init::Error(KAFKA_STORAGE_ERROR),
                    };
                    inner.by_pid.remove(&m.producer_id);
                    inner.by_pid.insert(pid, tid.to_string());
                    m.producer_id = pid;
                    m.epoch = 0;
                } else {
                    m.epoch += 1;
                }
                m.timeout_ms = timeout_ms;
                m.state = TxnState::Empty;
                m.partitions.clear();
                m.groups.clear();
                m.pending.clear();
                if expected.is_none() {
                    inner.last_epoch.remove(tid);
                }
                match self.journal(tid, m) {
                    Ok(()) => Init::Ready(m.producer_id, m.epoch),
                    Err(c) => Init::Error(c),
                }
            }
        }
    }

    /// Adds partitions and/or a group to the transaction of `tid`; an Empty or completed one
    /// becomes Ongoing. Returns the error code, and whether a transaction began.
    pub fn add(
        &self,
        tid: &str,
        pid: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        group: Option<&str>,
    ) -> (i16, bool) {
        let mut inner = self.lock();
        let Some(m) = inner.txns.get_mut(tid) else {
            return (INVALID_PRODUCER_ID_MAPPING, false);
        };
        if let Err(c) = check_producer(m, pid, epoch) {
            return (c, false);
        }
        if m.completing || matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            return (CONCURRENT_TRANSACTIONS, false);
        }
        let known = partitions.iter().all(|p| m.partitions.contains(p))
            && group.is_none_or(|g| m.groups.contains(g));
        if m.state == TxnState::Ongoing && known {
            return (NONE, false);
        }
        let begins = m.state != TxnState::Ongoing;
        let before = m.clone();
        if begins {
            m.state = TxnState::Ongoing;
            m.start_ms = now_ms();
            m.partitions.clear();
            m.groups.clear();
            m.pending.clear();
        }
        m.partitions.extend(partitions.iter().cloned());
        m.groups.extend(group.map(str::to_string));
        if let Err(c) = self.journal(tid, m) {
            *m = before;
            return (c, false);
        }
        (NONE, begins)
    }

    /// TxnOffsetCommit: offsets of a group that AddOffsetsToTxn added to the open transaction.
    pub fn add_offsets(
        &self,
        tid: &str,
        pid: i64,
        epoch: i16,
        group: &str,
        offsets: Vec<PendingOffset>,
    ) -> i16 {
        let mut inner = self.lock();
        let Some(m) = inner.txns.get_mut(tid) else {
            return INVALID_PRODUCER_ID_MAPPING;
        };
        if let Err(c) = check_producer(m, pid, epoch) {
            return c;
        }
        if m.completing || m.state != TxnState::Ongoing || !m.groups.contains(group) {
            return INVALID_TXN_STATE;
        }
        if let Err(e) = self.journal.write_offsets(tid, &offsets) {
            tracing::error!(
                transactional_id = tid,
                "transaction journal write failed: {e}"
            );
            return KAFKA_STORAGE_ERROR;
        }
        for o in offsets {
            let same = |p: &PendingOffset| {
                p.group == o.group && p.topic == o.topic && p.partition == o.partition
            };
            m.pending.retain(|p| !same(p));
            m.pending.push(o);
        }
        NONE
    }

    /// EndTxn (TV1 rules of Kafka's `handleEndTransaction`).
    pub fn end(&self, tid: &str, pid: i64, epoch: i16, commit: bool) -> End {
        let mut inner = self.lock();
        let Some(m) = inner.txns.get_mut(tid) else {
            return End::Answer(INVALID_PRODUCER_ID_MAPPING);
        };
        if let Err(c) = check_producer(m, pid, epoch) {
            return End::Answer(c);
        }
        let code = match (m.state, commit) {
            (TxnState::Ongoing, _) if !m.completing => {
                let p = prepare(tid, m, commit, EndReason::Client);
                return match self.journal(tid, m) {
                    Ok(()) => End::Write(p),
                    Err(c) => {
                        m.state = TxnState::Ongoing;
                        m.completing = false;
                        End::Answer(c)
                    }
                };
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                CONCURRENT_TRANSACTIONS
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => NONE,
            (TxnState::Ongoing, _) => CONCURRENT_TRANSACTIONS,
            _ => INVALID_TXN_STATE,
        };
        End::Answer(code)
    }

    /// The markers of `p` are written: the transaction is complete. Returns the offsets to
    /// apply to the groups (none for an abort).
    pub fn finish(&self, p: &EndPlan) -> Vec<PendingOffset> {
        let mut inner = self.lock();
        let Some(m) = inner.txns.get_mut(&p.tid) else {
            return Vec::new();
        };
        m.state = if p.commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        m.completing = false;
        m.partitions.clear();
        m.groups.clear();
        let pending = std::mem::take(&mut m.pending);
        // A failed write here is repaired at startup: Prepare* is completed again.
        let _ = self.journal(&p.tid, m);
        if p.commit {
            pending
        } else {
            Vec::new()
        }
    }

    /// A marker write of `p` failed: it stays in Prepare*, and `due` offers it again.
    pub fn abandon(&self, p: &EndPlan) {
        if let Some(m) = self.lock().txns.get_mut(&p.tid) {
            m.completing = false;
        }
    }

    /// Transactions to end now: open ones past their timeout (fenced with a bumped epoch and
    /// aborted, as Kafka's `abortTimedOutTransactions` does), and Prepare* ones not being
    /// completed (found at startup, or left by a failed marker write).
    pub fn due(&self, now_ms: i64) -> Vec<EndPlan> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let mut out = Vec::new();
        for (tid, m) in inner.txns.iter_mut() {
            if m.completing {
                continue;
            }
            match m.state {
                TxnState::Ongoing if m.start_ms + i64::from(m.timeout_ms) <= now_ms => {
                    inner.last_epoch.insert(tid.clone(), m.epoch);
                    m.epoch = m.epoch.saturating_add(1);
                    let p = prepare(tid, m, false, EndReason::TimedOut);
                    if self.journal(tid, m).is_ok() {
                        out.push(p);
                    } else {
                        m.completing = false;
                    }
                }
                TxnState::PrepareCommit | TxnState::PrepareAbort => {
                    let commit = m.state == TxnState::PrepareCommit;
                    out.push(prepare(tid, m, commit, EndReason::Resumed));
                }
                _ => {}
            }
        }
        out
    }

    /// Produce of a transactional batch: its producer must be at the current epoch of an
    /// Ongoing transaction that holds the partition (KIP-890 part 1's partition verification,
    /// which a single node can do against its own state).
    pub fn verify(&self, pid: i64, epoch: i16, topic: &str, partition: i32) -> Result<(), i16> {
        let inner = self.lock();
        let Some(m) = inner.by_pid.get(&pid).and_then(|t| inner.txns.get(t)) else {
            return Err(INVALID_TXN_STATE);
        };
        if m.epoch != epoch {
            return Err(INVALID_PRODUCER_EPOCH);
        }
        let added = m
            .partitions
            .iter()
            .any(|(t, p)| *p == partition && t == topic);
        if m.state == TxnState::Ongoing && !m.completing && added {
            Ok(())
        } else {
            Err(INVALID_TXN_STATE)
        }
    }

    /// True while an undecided transaction holds an offset for this group partition (OffsetFetch
    /// with require_stable answers UNSTABLE_OFFSET_COMMIT then, KIP-447).
    pub fn has_pending_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.lock().txns.values().any(|m| {
            m.pending
                .iter()
                .any(|o| o.partition == partition && o.group == group && o.topic == topic)
        })
    }

    /// Transactions open right now (a gauge).
    pub fn ongoing(&self) -> usize {
        self.lock()
            .txns
            .values()
            .filter(|m| m.state == TxnState::Ongoing)
            .count()
    }
}

#[cfg(test)]
mod tests;
