//! The `__consumer_offsets` log seen from the coordinator: reading a partition's commits
//! back (the rebuild when this node becomes its leader) and appending new ones.
//!
//! Owns: the local log of the offsets partitions (opened on first use) and the mapping of
//! append errors to the codes OffsetCommit answers with. Must not: decide who coordinates.

use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use super::records::{decode_batches, encode_batch, Key};
use super::OFFSETS_TOPIC;
use crate::cluster::replica::Role;
use crate::group::offsets::Committed;
use crate::log::partition::ReadResult;
use crate::state::Broker;
use crate::topics::Partition;

/// Kafka's `offsets.commit.timeout.ms`: how long a commit waits for the ISR.
pub const COMMIT_TIMEOUT: Duration = Duration::from_millis(5000);
/// How long a new leader's coordinator waits for its data path to take the lead.
const ROLE_WAIT: Duration = Duration::from_secs(10);
/// How much log one read step of the rebuild takes.
const READ_STEP_BYTES: usize = 1 << 20;

/// This node's copy of offsets partition `p` (of `n`), opened if it is not yet.
pub fn partition(broker: &Broker, p: i32, n: usize) -> std::io::Result<Arc<Partition>> {
    if let Some(part) = broker.topics.partition(OFFSETS_TOPIC, p) {
        return Ok(part);
    }
    let t = broker
        .topics
        .create(OFFSETS_TOPIC, n as i32, true)
        .map_err(std::io::Error::other)?;
    t.partitions
        .get(p as usize)
        .cloned()
        .ok_or_else(|| std::io::Error::other(format!("{OFFSETS_TOPIC} has no partition {p}")))
}

/// Waits (at most `ROLE_WAIT`) until this node's data path leads offsets partition `p` at
/// `epoch`; false if it does not, or if the metadata moved on meanwhile.
pub async fn wait_leader_role(broker: &Broker, p: i32, epoch: i32) -> bool {
    let Some(c) = &broker.cluster else {
        return true;
    };
    let deadline = tokio::time::Instant::now() + ROLE_WAIT;
    loop {
        // A partition may not be open yet: the data path opens it from the same metadata.
        if let Some(part) = broker.topics.partition(OFFSETS_TOPIC, p) {
            let changed = part.changed.notified();
            if matches!(&*part.role(), Role::Leader(l) if l.leader_epoch == epoch) {
                return true;
            }
            let still = c
                .current()
                .partition(OFFSETS_TOPIC, p)
                .is_some_and(|r| r.leader == c.node_id && r.leader_epoch == epoch);
            if !still || tokio::time::Instant::now() >= deadline {
                return false;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), changed).await;
        } else {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Every commit in partition `p`, from its log start to its log end, in log order.
///
/// To the log end, not the high watermark: what this leader holds past its HW was in the
/// ISR's logs or is kept by the followers truncating to this leader, so it becomes
/// committed; Kafka's coordinator loads to the log end as well (and the commits past the
/// HW were never acknowledged to anyone, so serving them early breaks no promise).
pub fn read_commits(broker: &Broker, p: i32, n: usize) -> std::io::Result<Vec<(Key, Committed)>> {
    read_all(&*partition(broker, p, n)?, decode_batches)
}

/// What `decode` finds in every batch of `part`, from its log start to its log end, in log
/// order. `decode` gets a run of whole batches (a trailing partial one is fine) and returns
/// what it found and the offset after the last whole batch, where the next read starts.
pub fn read_all<T>(
    part: &Partition,
    decode: impl Fn(&[u8]) -> (Vec<T>, Option<i64>),
) -> std::io::Result<Vec<T>> {
    let end = part.log_end_offset();
    let mut offset = part.log_start_offset();
    let mut out = Vec::new();
    while offset < end {
        let slice = match part.log().read(offset, READ_STEP_BYTES)? {
            ReadResult::Data(s) => s,
            ReadResult::Empty | ReadResult::OutOfRange => break,
        };
        let mut buf = vec![0u8; slice.len];
        slice.file.read_exact_at(&mut buf, slice.pos)?;
        let (entries, next) = decode(&buf);
        out.extend(entries);
        match next {
            Some(n) if n > offset => offset = n,
            _ => break,
        }
    }
    Ok(out)
}

/// Appends one batch of commits to partition `p` as its leader and waits until the ISR has
/// it (acks=all); the error code for OffsetCommit (Kafka's mapping in
/// `GroupMetadataManager.storeOffsets`), NONE when stored.
pub async fn append_commits(
    broker: &Arc<Broker>,
    p: i32,
    n: usize,
    entries: &[(Key, Committed)],
) -> i16 {
    let part = match partition(broker, p, n) {
        Ok(part) => part,
        Err(e) => {
            tracing::error!(partition = p, "cannot open {OFFSETS_TOPIC}-{p}: {e}");
            return code::NOT_COORDINATOR;
        }
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let batch = match encode_batch(entries, now_ms) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!("cannot encode an offset commit: {e}");
            return code::UNKNOWN_SERVER_ERROR;
        }
    };
    map_append_error(append(broker, &part, &batch).await)
}

/// Kafka's mapping of a failed `__consumer_offsets` append to an OffsetCommit error.
fn map_append_error(error: i16) -> i16 {
    match error {
        code::UNKNOWN_TOPIC_OR_PARTITION
        | code::NOT_ENOUGH_REPLICAS
        | code::NOT_ENOUGH_REPLICAS_AFTER_APPEND => code::COORDINATOR_NOT_AVAILABLE,
        code::NOT_LEADER_OR_FOLLOWER | code::KAFKA_STORAGE_ERROR => code::NOT_COORDINATOR,
        code::MESSAGE_TOO_LARGE | code::RECORD_LIST_TOO_LARGE => code::INVALID_COMMIT_OFFSET_SIZE,
        other => other,
    }
}

/// The append itself: the replicated produce path of a leader, acks=all (the commit is
/// answered only once the ISR has it, as Kafka's `offsets.commit.required.acks` -1).
async fn append(broker: &Arc<Broker>, part: &Arc<Partition>, batch: &[u8]) -> i16 {
    crate::cluster::replica::append_as_leader(broker, part, batch, -1, COMMIT_TIMEOUT)
        .await
        .error
}

/// The Kafka error codes of this module.
mod code {
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const RECORD_LIST_TOO_LARGE: i16 = 18;
    pub const NOT_ENOUGH_REPLICAS: i16 = 19;
    pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
    pub const INVALID_COMMIT_OFFSET_SIZE: i16 = 28;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
}
