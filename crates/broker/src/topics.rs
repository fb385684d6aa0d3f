//! The topic registry: topics and their partitions, each partition a `PartitionLog` on disk in
//! `<data dir>/<topic>-<partition>/` (Kafka's layout), found again at startup.
//!
//! Owns: creating, loading and deleting topic directories; the append notifier that wakes
//! long-polling fetches. Must not: speak the protocol (handlers map errors to codes).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::log::partition::PartitionLog;
use crate::log::LogConfig;

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
    }

    pub fn log_end_offset(&self) -> i64 {
        self.leo.load(Ordering::Acquire)
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start.load(Ordering::Acquire)
    }
    pub fn last_stable_offset(&self) -> i64 {
        self.lso.load(Ordering::Acquire)
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

    /// Fsyncs every partition (the `interval:MS` flush policy and clean shutdown).
    pub fn flush_all(&self) {
        for t in self.all() {
            for p in &t.partitions {
                if let Err(e) = p.log().flush() {
                    tracing::warn!(topic = %t.name, partition = p.index, "flush failed: {e}");
                }
            }
        }
    }

    pub fn config(&self) -> &LogConfig {
        &self.cfg
    }
}
