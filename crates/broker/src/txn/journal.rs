//! The transaction coordinator's journal (`<data dir>/__transaction_state.journal`), Kafka's
//! `__transaction_state` topic in miniature: every state change of a transactional id is
//! appended as a snapshot of its metadata, and every TxnOffsetCommit as a pending offset.
//! Replayed and compacted at startup, like the committed-offsets journal.
//!
//! Owns: that file and its record format. Must not: decide anything about transactions.
//!
//! Record: `u32 len | u32 crc32c(payload) | payload`, payload = `u8 kind | u16 len tid | ...`:
//! * kind 1, metadata: `i64 pid | i16 epoch | i32 timeout ms | u8 state | i64 start ms |
//!   u32 n (u16 len topic | i32 partition)* | u32 n (u16 len group)*`
//! * kind 2, pending offset: `u16 len group | u16 len topic | i32 partition | i64 offset |
//!   i32 leader epoch | i32 len (-1 = null) metadata`
//!
//! A torn or corrupt tail (crash mid-write) is dropped at replay.
//!
//! In a cluster (`Journal::outbox`) there is no file: the same payloads wait in an outbox
//! that `txn::cluster` drains into the replicated `__transaction_state` partition of the
//! id, and `replay_payloads` rebuilds the state from that partition's records.

use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;

use super::{PendingOffset, TxnMeta, TxnState};
use crate::group::offsets::Committed;
use crate::journal::{self as records, Cursor};

const KIND_META: u8 = 1;
const KIND_OFFSET: u8 = 2;

#[derive(Debug)]
enum Sink {
    File(Mutex<File>),
    /// Payloads written since the last `take_outbox` (cluster mode).
    Outbox(Mutex<Vec<Vec<u8>>>),
}

#[derive(Debug)]
pub struct Journal {
    sink: Sink,
}

fn put_str(p: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let n = b.len().min(u16::MAX as usize);
    p.extend_from_slice(&(n as u16).to_be_bytes());
    p.extend_from_slice(&b[..n]);
}

fn state_code(s: TxnState) -> u8 {
    match s {
        TxnState::Empty => 0,
        TxnState::Ongoing => 1,
        TxnState::PrepareCommit => 2,
        TxnState::PrepareAbort => 3,
        TxnState::CompleteCommit => 4,
        TxnState::CompleteAbort => 5,
    }
}

fn state_of(c: u8) -> Option<TxnState> {
    Some(match c {
        0 => TxnState::Empty,
        1 => TxnState::Ongoing,
        2 => TxnState::PrepareCommit,
        3 => TxnState::PrepareAbort,
        4 => TxnState::CompleteCommit,
        5 => TxnState::CompleteAbort,
        _ => return None,
    })
}

fn encode_meta(tid: &str, m: &TxnMeta) -> Vec<u8> {
    records::frame(&meta_payload(tid, m))
}

fn encode_offset(tid: &str, o: &PendingOffset) -> Vec<u8> {
    records::frame(&offset_payload(tid, o))
}

/// The payload of a metadata snapshot (kind 1).
pub fn meta_payload(tid: &str, m: &TxnMeta) -> Vec<u8> {
    let mut p = vec![KIND_META];
    put_str(&mut p, tid);
    p.extend_from_slice(&m.producer_id.to_be_bytes());
    p.extend_from_slice(&m.epoch.to_be_bytes());
    p.extend_from_slice(&m.timeout_ms.to_be_bytes());
    p.push(state_code(m.state));
    p.extend_from_slice(&m.start_ms.to_be_bytes());
    p.extend_from_slice(&(m.partitions.len() as u32).to_be_bytes());
    for (t, i) in &m.partitions {
        put_str(&mut p, t);
        p.extend_from_slice(&i.to_be_bytes());
    }
    p.extend_from_slice(&(m.groups.len() as u32).to_be_bytes());
    for g in &m.groups {
        put_str(&mut p, g);
    }
    p
}

/// The payload of a pending offset (kind 2).
pub fn offset_payload(tid: &str, o: &PendingOffset) -> Vec<u8> {
    let mut p = vec![KIND_OFFSET];
    put_str(&mut p, tid);
    put_str(&mut p, &o.group);
    put_str(&mut p, &o.topic);
    p.extend_from_slice(&o.partition.to_be_bytes());
    p.extend_from_slice(&o.committed.offset.to_be_bytes());
    p.extend_from_slice(&o.committed.leader_epoch.to_be_bytes());
    match &o.committed.metadata {
        None => p.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(m) => {
            p.extend_from_slice(&(m.len() as i32).to_be_bytes());
            p.extend_from_slice(m.as_bytes());
        }
    }
    p
}

enum Entry {
    Meta(String, TxnMeta),
    Offset(String, PendingOffset),
}

fn decode(p: &[u8]) -> Option<Entry> {
    let mut c = Cursor(p);
    let kind = c.u8()?;
    let tid = c.str16()?;
    if kind == KIND_OFFSET {
        let group = c.str16()?;
        let topic = c.str16()?;
        let partition = c.i32()?;
        let offset = c.i64()?;
        let leader_epoch = c.i32()?;
        let ml = c.i32()?;
        let metadata = match ml {
            n if n < 0 => None,
            n => Some(String::from_utf8_lossy(c.take(n as usize)?).into_owned()),
        };
        let committed = Committed {
            offset,
            leader_epoch,
            metadata,
        };
        return Some(Entry::Offset(
            tid,
            PendingOffset {
                group,
                topic,
                partition,
                committed,
            },
        ));
    }
    let mut m = TxnMeta {
        producer_id: c.i64()?,
        epoch: c.i16()?,
        timeout_ms: c.i32()?,
        state: state_of(c.u8()?)?,
        start_ms: c.i64()?,
        partitions: BTreeSet::new(),
        groups: BTreeSet::new(),
        pending: Vec::new(),
        completing: false,
    };
    for _ in 0..c.i32()? {
        let t = c.str16()?;
        m.partitions.insert((t, c.i32()?));
    }
    for _ in 0..c.i32()? {
        m.groups.insert(c.str16()?);
    }
    Some(Entry::Meta(tid, m))
}

/// The transactional id a payload is about.
pub fn payload_tid(p: &[u8]) -> Option<String> {
    let mut c = Cursor(p);
    c.u8()?;
    c.str16()
}

/// Replays the records of `bytes` up to the first torn or corrupt one.
fn replay(bytes: &[u8]) -> HashMap<String, TxnMeta> {
    replay_payloads(records::payloads(bytes))
}

/// Replays payloads in order, up to the first undecodable one.
pub fn replay_payloads<'a>(
    payloads: impl IntoIterator<Item = &'a [u8]>,
) -> HashMap<String, TxnMeta> {
    let mut map: HashMap<String, TxnMeta> = HashMap::new();
    for p in payloads {
        match decode(p) {
            Some(Entry::Meta(tid, mut m)) => {
                // Offsets stay pending until the transaction that holds them is decided.
                if matches!(
                    m.state,
                    TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort
                ) {
                    m.pending = map.remove(&tid).map(|old| old.pending).unwrap_or_default();
                }
                map.insert(tid, m);
            }
            Some(Entry::Offset(tid, o)) => {
                if let Some(m) = map.get_mut(&tid) {
                    m.pending.push(o);
                }
            }
            None => break,
        }
    }
    map
}

impl Journal {
    /// Replays the journal in `dir`, then rewrites it compacted (one snapshot per id).
    pub fn open(dir: &Path) -> io::Result<(Self, HashMap<String, TxnMeta>)> {
        let path = dir.join("__transaction_state.journal");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let map = replay(&bytes);
        let tmp = dir.join("__transaction_state.journal.tmp");
        {
            let mut all = Vec::new();
            for (tid, m) in &map {
                all.extend_from_slice(&encode_meta(tid, m));
                for o in &m.pending {
                    all.extend_from_slice(&encode_offset(tid, o));
                }
            }
            let mut f = File::create(&tmp)?;
            f.write_all(&all)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok((
            Journal {
                sink: Sink::File(Mutex::new(file)),
            },
            map,
        ))
    }

    /// A journal without a file, for a cluster node (see the module header).
    pub fn outbox() -> Self {
        Journal {
            sink: Sink::Outbox(Mutex::new(Vec::new())),
        }
    }

    /// The payloads written since the last call (always empty for a file journal).
    pub fn take_outbox(&self) -> Vec<Vec<u8>> {
        match &self.sink {
            Sink::File(_) => Vec::new(),
            Sink::Outbox(o) => std::mem::take(&mut *o.lock().unwrap_or_else(|p| p.into_inner())),
        }
    }

    /// Appends a snapshot of `tid`'s metadata (one write, before the change is answered).
    pub fn write_meta(&self, tid: &str, m: &TxnMeta) -> io::Result<()> {
        if let Sink::Outbox(o) = &self.sink {
            o.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(meta_payload(tid, m));
            return Ok(());
        }
        self.write(&encode_meta(tid, m))
    }

    /// Appends offsets sent to `tid`'s open transaction.
    pub fn write_offsets(&self, tid: &str, offsets: &[PendingOffset]) -> io::Result<()> {
        if let Sink::Outbox(o) = &self.sink {
            let mut o = o.lock().unwrap_or_else(|p| p.into_inner());
            o.extend(offsets.iter().map(|x| offset_payload(tid, x)));
            return Ok(());
        }
        let mut buf = Vec::new();
        for o in offsets {
            buf.extend_from_slice(&encode_offset(tid, o));
        }
        self.write(&buf)
    }

    fn write(&self, buf: &[u8]) -> io::Result<()> {
        match &self.sink {
            Sink::File(f) => f.lock().unwrap_or_else(|p| p.into_inner()).write_all(buf),
            Sink::Outbox(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(state: TxnState) -> TxnMeta {
        TxnMeta {
            producer_id: 1000,
            epoch: 3,
            timeout_ms: 60_000,
            state,
            start_ms: 1_700_000_000_000,
            partitions: [("t".to_string(), 1)].into_iter().collect(),
            groups: ["g".to_string()].into_iter().collect(),
            pending: Vec::new(),
            completing: false,
        }
    }

    fn offset(o: i64) -> PendingOffset {
        PendingOffset {
            group: "g".into(),
            topic: "t".into(),
            partition: 1,
            committed: Committed {
                offset: o,
                leader_epoch: -1,
                metadata: Some("m".into()),
            },
        }
    }

    #[test]
    fn the_last_snapshot_wins_pending_offsets_follow_their_transaction_and_a_torn_tail_goes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (j, map) = Journal::open(dir.path()).unwrap();
            assert!(map.is_empty());
            j.write_meta("a", &meta(TxnState::CompleteCommit)).unwrap();
            j.write_meta("a", &meta(TxnState::Ongoing)).unwrap();
            j.write_offsets("a", &[offset(5), offset(7)]).unwrap();
            j.write_meta("a", &meta(TxnState::PrepareCommit)).unwrap();
            j.write_meta("b", &meta(TxnState::Ongoing)).unwrap();
            j.write_offsets("b", &[offset(9)]).unwrap();
            j.write_meta("b", &meta(TxnState::CompleteAbort)).unwrap();
        }
        let path = dir.path().join("__transaction_state.journal");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 0, 50, 1, 2, 3]).unwrap();
        drop(f);
        for _ in 0..2 {
            // Twice: the compacted rewrite replays to the same state.
            let (_, map) = Journal::open(dir.path()).unwrap();
            let a = &map["a"];
            assert_eq!(a.state, TxnState::PrepareCommit);
            assert_eq!(a.pending.len(), 2);
            assert_eq!(a.pending[1].committed.offset, 7);
            assert_eq!(a.partitions.len(), 1);
            assert!(a.groups.contains("g"));
            assert_eq!(map["b"].state, TxnState::CompleteAbort);
            assert!(map["b"].pending.is_empty());
        }
    }
}
