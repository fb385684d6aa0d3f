//! The topic registry: topics and their partitions, each partition a `PartitionLog` on disk in
//! `<data dir>/<topic>-<partition>/` (Kafka's layout), found again at startup.
//!
//! Owns: creating, loading and deleting topic directories; the append notifier that wakes
//! long-polling fetches; each partition's high watermark (== the log end on a single node;
//! in a cluster set by replication, checkpointed in `replication-offset-checkpoint`). Must
//! not: speak the protocol (handlers map errors to codes).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::cluster::replica::Role;
use crate::log::partition::PartitionLog;
use crate::log::LogConfig;

/// Kafka's name for the file of every partition's high watermark, in the data dir.
pub const HW_CHECKPOINT_FILE: &str = "replication-offset-checkpoint";

/// One partition: its log behind a mutex held only for one append or lookup, plus atomics
/// that let fetch long-polls and metrics look at offsets without taking the lock.
#[derive(Debug)]
pub struct Partition {
    pub topic: String,
    pub index: i32,
    log: Mutex<PartitionLog>,
    leo: AtomicI64,
    lso: AtomicI64,
    log_start: AtomicI64,
    size_bytes: AtomicI64,
    /// Set once a cluster node holds this partition: the high watermark is then `hw`, kept
    /// apart from the log end. Unset (single node), the high watermark is the log end.
    replicated: AtomicBool,
    hw: AtomicI64,
    /// Woken when the high watermark advances or the partition's role or ISR changes
    /// (acks=all produces wait on it).
    pub changed: tokio::sync::Notify,
    /// This node's part in replicating the partition (cluster mode; see `cluster::replica`).
    role: Mutex<Role>,
}

impl Partition {
    /// Locks the log; a poisoned lock (a panic elsewhere) is recovered rather than spreading.
    pub fn log(&self) -> MutexGuard<'_, PartitionLog> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refreshes the lock-free copies of the offsets; call after changing the log.
    pub fn publish(&self, log: &PartitionLog) {
        self.leo.store(log.log_end_offset(), Ordering::Release);
        self.lso.store(log.last_stable_offset(), Ordering::Release);
        self.log_start
            .store(log.log_start_offset(), Ordering::Release);
        self.size_bytes
            .store(log.size_bytes() as i64, Ordering::Release);
        if self.is_replicated() {
            // A leader alone in its ISR commits at once; otherwise followers' fetches do.
            crate::cluster::replica::high_watermark::maybe_advance(self);
        }
    }

    pub fn log_end_offset(&self) -> i64 {
        self.leo.load(Ordering::Acquire)
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start.load(Ordering::Acquire)
    }
    /// The last stable offset, never beyond the high watermark.
    pub fn last_stable_offset(&self) -> i64 {
        let lso = self.lso.load(Ordering::Acquire);
        if self.is_replicated() {
            lso.min(self.hw.load(Ordering::Acquire))
        } else {
            lso
        }
    }

    /// Offsets below it are committed: consumers read up to here. The log end on a single
    /// node; in a cluster, min log end over the ISR (leader) or the leader's, capped at the
    /// own log end (follower).
    pub fn high_watermark(&self) -> i64 {
        if self.is_replicated() {
            self.hw.load(Ordering::Acquire)
        } else {
            self.log_end_offset()
        }
    }

    pub fn is_replicated(&self) -> bool {
        self.replicated.load(Ordering::Acquire)
    }

    /// Makes the high watermark independent of the log end, starting at `hw` (capped at it).
    pub fn set_replicated(&self, hw: i64) {
        self.hw
            .store(hw.clamp(0, self.log_end_offset()), Ordering::Release);
        self.replicated.store(true, Ordering::Release);
    }

    /// Raises the high watermark to `hw` if higher (it never moves back but on truncation);
    /// wakes the waiters. Returns whether it moved.
    pub fn raise_high_watermark(&self, hw: i64) -> bool {
        let moved = self.hw.fetch_max(hw, Ordering::AcqRel) < hw;
        if moved {
            self.changed.notify_waiters();
        }
        moved
    }

    /// After a truncation: the high watermark may not stay past the log end.
    pub fn cap_high_watermark(&self) {
        self.hw.fetch_min(self.log_end_offset(), Ordering::AcqRel);
    }

    /// Waits until the high watermark reaches `offset`, or `check` says to stop (it is asked
    /// at every change of the partition), or `deadline`. `Ok(())`: reached; `Err(Some(e))`:
    /// `check`'s error; `Err(None)`: timed out.
    pub async fn wait_high_watermark<E>(
        &self,
        offset: i64,
        deadline: tokio::time::Instant,
        mut check: impl FnMut(&Self) -> Result<(), E>,
    ) -> Result<(), Option<E>> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.high_watermark() >= offset {
                return Ok(());
            }
            check(self).map_err(Some)?;
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => return Err(None),
            }
        }
    }

    /// This node's replication role (cluster mode).
    pub fn role(&self) -> MutexGuard<'_, Role> {
        self.role.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn size_bytes(&self) -> i64 {
        self.size_bytes.load(Ordering::Acquire)
    }
}

#[derive(Debug)]
pub struct Topic {
    pub name: String,
    pub partitions: Vec<Arc<Partition>>,
}

/// Why a topic could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("topic already exists")]
    Exists,
    #[error("invalid topic name")]
    InvalidName,
    #[error("invalid number of partitions")]
    InvalidPartitions,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Kafka's rule: 1-249 of `[a-zA-Z0-9._-]`, not "." or "..".
pub fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

#[derive(Debug)]
pub struct Topics {
    dir: PathBuf,
    cfg: LogConfig,
    map: RwLock<HashMap<String, Arc<Topic>>>,
    /// Woken on every append so long-polling fetches re-check their partitions.
    pub appended: tokio::sync::Notify,
}

fn open_partition(
    dir: &Path,
    topic: &str,
    index: i32,
    cfg: &LogConfig,
) -> std::io::Result<Arc<Partition>> {
    let log = PartitionLog::open(&dir.join(format!("{topic}-{index}")), cfg.clone())?;
    if log.recovered_truncated_bytes > 0 {
        tracing::warn!(
            topic,
            partition = index,
            bytes = log.recovered_truncated_bytes,
            "truncated a torn log tail"
        );
    }
    let p = Partition {
        topic: topic.to_string(),
        index,
        leo: AtomicI64::new(0),
        lso: AtomicI64::new(0),
        log_start: AtomicI64::new(0),
        size_bytes: AtomicI64::new(0),
        replicated: AtomicBool::new(false),
        hw: AtomicI64::new(0),
        changed: tokio::sync::Notify::new(),
        role: Mutex::new(Role::None),
        log: Mutex::new(log),
    };
    p.publish(&p.log());
    Ok(Arc::new(p))
}

impl Topics {
    /// Loads every `<topic>-<n>` directory under `dir`, recovering each log.
    pub fn open(dir: &Path, cfg: LogConfig) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut found: HashMap<String, Vec<i32>> = HashMap::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some((topic, n)) = name.rsplit_once('-') {
                if let (true, Ok(n)) = (valid_topic_name(topic), n.parse::<i32>()) {
                    found.entry(topic.to_string()).or_default().push(n);
                }
            }
        }
        let mut map = HashMap::new();
        for (topic, mut parts) in found {
            parts.sort_unstable();
            // Partitions must be 0..n; a gap means a half-deleted topic: keep the prefix.
            let n = parts
                .iter()
                .enumerate()
                .take_while(|(i, p)| *i as i32 == **p)
                .count() as i32;
            let partitions = (0..n)
                .map(|i| open_partition(dir, &topic, i, &cfg))
                .collect::<Result<Vec<_>, _>>()?;
            map.insert(
                topic.clone(),
                Arc::new(Topic {
                    name: topic,
                    partitions,
                }),
            );
        }
        Ok(Topics {
            dir: dir.to_path_buf(),
            cfg,
            map: RwLock::new(map),
            appended: tokio::sync::Notify::new(),
        })
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        let t = self.get(topic)?;
        usize::try_from(index)
            .ok()
            .and_then(|i| t.partitions.get(i).cloned())
    }

    pub fn all(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<_> = self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Creates a topic with `partitions` partitions (or returns the existing one if `exist_ok`).
    pub fn create(
        &self,
        name: &str,
        partitions: i32,
        exist_ok: bool,
    ) -> Result<Arc<Topic>, CreateError> {
        if !valid_topic_name(name) {
            return Err(CreateError::InvalidName);
        }
        if !(1..=10_000).contains(&partitions) {
            return Err(CreateError::InvalidPartitions);
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = map.get(name) {
            return if exist_ok {
                Ok(t.clone())
            } else {
                Err(CreateError::Exists)
            };
        }
        let parts = (0..partitions)
            .map(|i| open_partition(&self.dir, name, i, &self.cfg))
            .collect::<Result<Vec<_>, _>>()?;
        let t = Arc::new(Topic {
            name: name.to_string(),
            partitions: parts,
        });
        map.insert(name.to_string(), t.clone());
        Ok(t)
    }

    /// Deletes a topic and its files. Returns false if it did not exist.
    pub fn delete(&self, name: &str) -> std::io::Result<bool> {
        let Some(t) = self
            .map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
        else {
            return Ok(false);
        };
        // Highest partition first, so a crash midway leaves a loadable 0..k prefix.
        for p in t.partitions.iter().rev() {
            let d = self.dir.join(format!("{}-{}", name, p.index));
            std::fs::remove_dir_all(&d)?;
        }
        Ok(true)
    }

    /// Runs retention on every partition; returns bytes deleted.
    pub fn apply_retention(&self, now_ms: i64) -> u64 {
        let mut total = 0;
        for t in self.all() {
            for p in &t.partitions {
                let mut log = p.log();
                match log.apply_retention(now_ms) {
                    Ok(n) => total += n,
                    Err(e) => {
                        tracing::warn!(topic = %t.name, partition = p.index, "retention failed: {e}")
                    }
                }
                p.publish(&log);
            }
        }
        total
    }

    /// Fsyncs every partition (the `interval:MS` flush policy and clean shutdown), and in a
    /// cluster writes the high-watermark checkpoint.
    pub fn flush_all(&self) {
        for t in self.all() {
            for p in &t.partitions {
                if let Err(e) = p.log().flush() {
                    tracing::warn!(topic = %t.name, partition = p.index, "flush failed: {e}");
                }
            }
        }
        if self
            .all()
            .iter()
            .any(|t| t.partitions.iter().any(|p| p.is_replicated()))
        {
            if let Err(e) = self.checkpoint_high_watermarks() {
                tracing::warn!("cannot write {HW_CHECKPOINT_FILE}: {e}");
            }
        }
    }

    /// Writes every replicated partition's high watermark in Kafka's checkpoint format
    /// (version 0, the count, then `topic partition offset` lines), by temp file and rename.
    pub fn checkpoint_high_watermarks(&self) -> std::io::Result<()> {
        let mut lines = Vec::new();
        for t in self.all() {
            for p in t.partitions.iter().filter(|p| p.is_replicated()) {
                lines.push(format!("{} {} {}", t.name, p.index, p.high_watermark()));
            }
        }
        let text = format!("0\n{}\n{}", lines.len(), lines.join("\n"));
        let path = self.dir.join(HW_CHECKPOINT_FILE);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text + "\n")?;
        std::fs::rename(&tmp, &path)
    }

    /// The checkpointed high watermarks, by (topic, partition); empty when there is none.
    pub fn load_high_watermarks(&self) -> HashMap<(String, i32), i64> {
        let text = std::fs::read_to_string(self.dir.join(HW_CHECKPOINT_FILE)).unwrap_or_default();
        text.lines()
            .skip(2)
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                let (t, p, o) = (
                    it.next()?,
                    it.next()?.parse().ok()?,
                    it.next()?.parse().ok()?,
                );
                Some(((t.to_string(), p), o))
            })
            .collect()
    }

    pub fn config(&self) -> &LogConfig {
        &self.cfg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::batch::{build_test_batch, validate_all};

    fn append(p: &Partition) {
        let b = build_test_batch(&[b"v"], None);
        let (h, _) = validate_all(&b).unwrap()[0];
        let mut log = p.log();
        log.append(&b, &h).unwrap();
        p.publish(&log);
    }

    #[test]
    fn the_high_watermark_is_the_log_end_until_replicated_and_is_checkpointed() {
        let dir = tempfile::tempdir().unwrap();
        let topics = Topics::open(dir.path(), LogConfig::default()).unwrap();
        let t = topics.create("t", 2, false).unwrap();
        let (p0, p1) = (&t.partitions[0], &t.partitions[1]);
        append(p0);
        append(p0);
        assert_eq!(p0.high_watermark(), 2, "single node: the log end");
        p0.set_replicated(1);
        append(p0);
        assert_eq!((p0.high_watermark(), p0.log_end_offset()), (1, 3));
        assert_eq!(p0.last_stable_offset(), 1, "never past the high watermark");
        assert!(p0.raise_high_watermark(3));
        assert!(!p0.raise_high_watermark(2), "never backwards");
        p1.set_replicated(7);
        assert_eq!(p1.high_watermark(), 0, "capped at the log end");
        topics.flush_all();
        let text = std::fs::read_to_string(dir.path().join(HW_CHECKPOINT_FILE)).unwrap();
        assert_eq!(text, "0\n2\nt 0 3\nt 1 0\n");
        let loaded = topics.load_high_watermarks();
        assert_eq!(loaded[&("t".to_string(), 0)], 3);
        assert_eq!(loaded.len(), 2);
    }
}
