//! A partition leader writing a transaction marker (the broker side of WriteTxnMarkers,
//! Kafka's `ReplicaManager.appendRecords` with the coordinator as origin): the control batch
//! appended to the leader's log with its leader epoch stamped, then, acks=all, answered once
//! the high watermark covers it. The log updates the LSO and the aborted-transaction index
//! as it does on a single node.
//!
//! Must not: hold the log or role lock while waiting; take the role lock inside the log's.

use std::sync::Arc;
use std::time::Duration;

use crate::cluster::replica::Role;
use crate::protocol::batch::Marker;
use crate::state::Broker;
use crate::topics::Partition;

pub const NONE: i16 = 0;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
pub const REQUEST_TIMED_OUT: i16 = 7;

/// One marker to write: the transaction's producer, its result and the coordinator epoch.
#[derive(Debug, Clone, Copy)]
pub struct MarkerSpec {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// A marker appended locally, waiting for the ISR.
#[derive(Debug)]
pub struct Pending {
    p: Arc<Partition>,
    leader_epoch: i32,
    end: i64,
    deadline: tokio::time::Instant,
}

fn leader_epoch(p: &Partition) -> Option<i32> {
    match &*p.role() {
        Role::Leader(l) => Some(l.leader_epoch),
        _ => None,
    }
}

/// Appends the marker to `topic`-`index` if this node leads it. `Ok(code)`: the answer
/// (an error); `Err(pending)`: appended, `wait` for the ISR.
pub fn begin(
    broker: &Broker,
    topic: &str,
    index: i32,
    m: MarkerSpec,
    timeout: Duration,
) -> Result<i16, Pending> {
    let Some(p) = broker.topics.partition(topic, index) else {
        return Ok(UNKNOWN_TOPIC_OR_PARTITION);
    };
    let Some(epoch) = leader_epoch(&p) else {
        return Ok(NOT_LEADER_OR_FOLLOWER);
    };
    let marker = if m.commit {
        Marker::Commit
    } else {
        Marker::Abort
    };
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let written = {
        let mut log = p.log();
        let r = log.append_marker(
            m.producer_id,
            m.producer_epoch,
            marker,
            m.coordinator_epoch,
            ts,
        );
        p.publish(&log);
        r
    };
    let offset = match written {
        Ok(o) => o,
        Err(e) => {
            // The log turned follower between the role check and the append.
            tracing::warn!(topic, partition = index, "marker not written: {e}");
            return Ok(NOT_LEADER_OR_FOLLOWER);
        }
    };
    // Followers long-poll on appends; read_committed fetches re-check the stable offset.
    broker.topics.appended.notify_waiters();
    Err(Pending {
        p,
        leader_epoch: epoch,
        end: offset + 1,
        deadline: tokio::time::Instant::now() + timeout,
    })
}

/// Waits until the high watermark covers the marker, the leadership is lost, or the deadline.
pub async fn wait(pending: Pending) -> i16 {
    let Pending {
        p,
        leader_epoch: epoch,
        end,
        deadline,
    } = pending;
    let waited = p
        .wait_high_watermark(end, deadline, |p| match leader_epoch(p) {
            Some(e) if e == epoch => Ok(()),
            _ => Err(NOT_LEADER_OR_FOLLOWER),
        })
        .await;
    match waited {
        Ok(()) => NONE,
        Err(Some(e)) => e,
        Err(None) => REQUEST_TIMED_OUT,
    }
}
