//! Committed consumer-group offsets, persisted in an append-only journal
//! (`<data dir>/__consumer_offsets.journal`) that is replayed and compacted at startup.
//! A node of a cluster keeps them in memory only (`in_memory`): there the replicated
//! `__consumer_offsets` partition is the record, and `cluster::coordinator` fills the map
//! from it.
//!
//! Owns: that file and the in-memory map of committed offsets. Must not: validate group
//! membership (the coordinator does) or know about the wire protocol.
//!
//! Record: `u32 len | u32 crc32c(payload) | payload`, payload = `u16 len group | u16 len topic |
//! i32 partition | i64 offset | i32 leader epoch | i32 len (-1 = null) metadata`. A torn or corrupt
//! tail (crash mid-write) is dropped at replay.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::journal::{self as records, Cursor};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// (group, topic, partition)
pub type Key = (String, String, i32);

#[derive(Debug)]
pub struct OffsetStore {
    path: PathBuf,
    /// `None`: in memory only (a cluster node; the log is elsewhere).
    file: Option<Mutex<File>>,
    map: Mutex<HashMap<Key, Committed>>,
}

fn encode(k: &Key, c: &Committed) -> Vec<u8> {
    let mut p = Vec::with_capacity(64);
    for s in [&k.0, &k.1] {
        let b = s.as_bytes();
        let n = b.len().min(u16::MAX as usize);
        p.extend_from_slice(&(n as u16).to_be_bytes());
        p.extend_from_slice(&b[..n]);
    }
    p.extend_from_slice(&k.2.to_be_bytes());
    p.extend_from_slice(&c.offset.to_be_bytes());
    p.extend_from_slice(&c.leader_epoch.to_be_bytes());
    match &c.metadata {
        None => p.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(m) => {
            p.extend_from_slice(&(m.len() as i32).to_be_bytes());
            p.extend_from_slice(m.as_bytes());
        }
    }
    records::frame(&p)
}

fn decode(p: &[u8]) -> Option<(Key, Committed)> {
    let mut c = Cursor(p);
    let gl = c.u16()? as usize;
    let g = c.string(gl)?;
    let tl = c.u16()? as usize;
    let t = c.string(tl)?;
    let part = c.i32()?;
    let offset = c.i64()?;
    let leader_epoch = c.i32()?;
    let ml = c.i32()?;
    let metadata = if ml < 0 {
        None
    } else {
        Some(c.string(ml as usize)?)
    };
    Some((
        (g, t, part),
        Committed {
            offset,
            leader_epoch,
            metadata,
        },
    ))
}

impl OffsetStore {
    /// Replays the journal, drops a torn tail, and rewrites it compacted.
    pub fn open(dir: &Path) -> io::Result<Self> {
        let path = dir.join("__consumer_offsets.journal");
        let bytes = std::fs::read(&path).or_else(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Ok(Vec::new())
            } else {
                Err(e)
            }
        })?;
        let mut map = HashMap::new();
        for p in records::payloads(&bytes) {
            let Some((k, c)) = decode(p) else { break };
            if c.offset < 0 {
                map.remove(&k); // tombstone of a deleted topic
            } else {
                map.insert(k, c);
            }
        }
        // Compact: write the live map to a temp file and rename it over the journal.
        let tmp = dir.join("__consumer_offsets.journal.tmp");
        {
            let mut f = File::create(&tmp)?;
            let mut all = Vec::new();
            for (k, c) in &map {
                all.extend_from_slice(&encode(k, c));
            }
            f.write_all(&all)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok(OffsetStore {
            path,
            file: Some(Mutex::new(file)),
            map: Mutex::new(map),
        })
    }

    /// A store without a journal, for a cluster node (its offsets live in the replicated log).
    pub fn in_memory() -> Self {
        OffsetStore {
            path: PathBuf::new(),
            file: None,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn write(&self, buf: &[u8]) -> io::Result<()> {
        match &self.file {
            Some(f) => f.lock().unwrap_or_else(|p| p.into_inner()).write_all(buf),
            None => Ok(()),
        }
    }

    /// Replaces the offsets of the groups `owned` names with `entries` (a rebuild from the
    /// log of the partition they hash to); a negative offset is a tombstone.
    pub fn replace_groups(&self, owned: impl Fn(&str) -> bool, entries: Vec<(Key, Committed)>) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|k, _| !owned(&k.0));
        for (k, c) in entries {
            if c.offset < 0 {
                map.remove(&k);
            } else {
                map.insert(k, c);
            }
        }
    }

    /// Records a commit: journal first (one write per call), then the map.
    pub fn commit(&self, entries: Vec<(Key, Committed)>) -> io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        if self.file.is_some() {
            let mut buf = Vec::new();
            for (k, c) in &entries {
                buf.extend_from_slice(&encode(k, c));
            }
            self.write(&buf)?;
        }
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        for (k, c) in entries {
            map.insert(k, c);
        }
        Ok(())
    }

    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<Committed> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(group.to_string(), topic.to_string(), partition))
            .cloned()
    }

    /// Every committed (topic, partition) of a group, sorted.
    pub fn for_group(&self, group: &str) -> Vec<(String, i32, Committed)> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = map
            .iter()
            .filter(|(k, _)| k.0 == group)
            .map(|(k, c)| (k.1.clone(), k.2, c.clone()))
            .collect();
        v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        v
    }

    /// Every (group, topic, partition, offset), for metrics and ListGroups.
    pub fn all(&self) -> Vec<(String, String, i32, i64)> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .map(|(k, c)| (k.0.clone(), k.1.clone(), k.2, c.offset))
            .collect()
    }

    /// Forgets the offsets of a deleted topic (journal keeps them until the next compaction,
    /// which happens at startup — replay still sees them, so write tombstones as offset -1).
    pub fn forget_topic(&self, topic: &str) -> io::Result<()> {
        let keys: Vec<Key> = {
            let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.keys().filter(|k| k.1 == topic).cloned().collect()
        };
        let mut buf = Vec::new();
        let tomb = Committed {
            offset: -1,
            leader_epoch: -1,
            metadata: None,
        };
        for k in &keys {
            buf.extend_from_slice(&encode(k, &tomb));
        }
        self.write(&buf)?;
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        for k in keys {
            map.remove(&k);
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_survive_reopen_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let k = |p| ("g".to_string(), "t".to_string(), p);
        let c = |o| Committed {
            offset: o,
            leader_epoch: -1,
            metadata: Some("m".into()),
        };
        {
            let s = OffsetStore::open(dir.path()).unwrap();
            s.commit(vec![(k(0), c(5)), (k(1), c(7))]).unwrap();
            s.commit(vec![(k(0), c(9))]).unwrap();
        }
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join("__consumer_offsets.journal"))
            .unwrap();
        f.write_all(&[0, 0, 0, 40, 1, 2]).unwrap();
        drop(f);
        let s = OffsetStore::open(dir.path()).unwrap();
        assert_eq!(s.get("g", "t", 0), Some(c(9)));
        assert_eq!(s.get("g", "t", 1), Some(c(7)));
        assert_eq!(s.for_group("g").len(), 2);
    }

    #[test]
    fn an_in_memory_store_writes_no_journal_and_replaces_a_partitions_groups() {
        let c = |o| Committed {
            offset: o,
            leader_epoch: -1,
            metadata: None,
        };
        let k = |g: &str, p| (g.to_string(), "t".to_string(), p);
        let s = OffsetStore::in_memory();
        s.commit(vec![(k("a", 0), c(1)), (k("b", 0), c(2))])
            .unwrap();
        // A rebuild of the partition holding "a": its offsets replaced, "b" untouched, a
        // tombstone in the log removes the entry.
        s.replace_groups(
            |g| g == "a",
            vec![(k("a", 1), c(5)), (k("a", 1), c(-1)), (k("a", 2), c(7))],
        );
        assert_eq!(s.get("a", "t", 0), None);
        assert_eq!(s.get("a", "t", 1), None);
        assert_eq!(s.get("a", "t", 2), Some(c(7)));
        assert_eq!(s.get("b", "t", 0), Some(c(2)));
        assert_eq!(s.path(), Path::new(""));
    }
}
