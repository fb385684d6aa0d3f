//! On-disk storage: per partition, a segmented log of raw record batches.
//!
//! Owns: files under the data directory (segments), offset assignment, recovery, retention,
//! flushing, and per partition the idempotence, transaction and leader-epoch state rebuilt from
//! the batches. Must not: know about the wire protocol beyond the batch header, or about groups.

pub mod epochs;
pub mod index;
pub mod partition;
pub mod producers;
pub mod segment;
pub mod txn_index;

/// When appended data is fsynced (fdatasync) to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Fsync after at least N messages were appended to a partition (N=1: every batch),
    /// before the produce is acknowledged.
    Messages(u64),
    /// A background task fsyncs every partition each interval (ms); acks do not wait.
    IntervalMs(u64),
    /// Never fsync explicitly: the OS writes pages back (Kafka's default). Acknowledged data
    /// survives a broker crash but not a power loss.
    None,
}

impl std::str::FromStr for FlushPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("invalid flush policy {s:?}: expected messages:N, interval:MS or none");
        if s == "none" {
            return Ok(FlushPolicy::None);
        }
        let (kind, n) = s.split_once(':').ok_or_else(bad)?;
        let n: u64 = n.parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(bad());
        }
        match kind {
            "messages" => Ok(FlushPolicy::Messages(n)),
            "interval" => Ok(FlushPolicy::IntervalMs(n)),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for FlushPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlushPolicy::Messages(n) => write!(f, "messages:{n}"),
            FlushPolicy::IntervalMs(n) => write!(f, "interval:{n}"),
            FlushPolicy::None => write!(f, "none"),
        }
    }
}

/// Per-log settings.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub retention_bytes: Option<u64>,
    pub retention_ms: Option<u64>,
    pub flush: FlushPolicy,
    /// Bytes between sparse index entries (Kafka's `index.interval.bytes`).
    pub index_interval_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            retention_bytes: None,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            flush: FlushPolicy::None,
            index_interval_bytes: 4096,
        }
    }
}
