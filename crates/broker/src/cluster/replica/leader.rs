//! The leader's side of a follower's Fetch (Kafka's `Partition.fetchRecords` for a replica):
//! is it a replica, does its log diverge from ours (`readRecords`), and what its fetch says
//! about it (log end, caught-up time), which may advance the high watermark or let it back
//! into the ISR.
//!
//! Must not: read segments (the Fetch handler does) or wait.

use std::sync::Arc;
use std::time::Instant;

use crate::cluster::model::NodeId;
use crate::log::partition::PartitionLog;
use crate::state::Broker;
use crate::topics::Partition;

use super::role::NOT_LEADER_OR_FOLLOWER;
use super::{isr, Role};

pub const OFFSET_OUT_OF_RANGE: i16 = 1;

/// The epoch check and the leader check, then: `replica_id` must be one of the replicas.
pub fn check_follower(
    p: &Partition,
    replica_id: NodeId,
    current_leader_epoch: i32,
) -> Result<(), i16> {
    let role = p.role();
    let l = role.check_leader(current_leader_epoch)?;
    if l.replicas.contains(&replica_id) && replica_id != l.me {
        Ok(())
    } else {
        Err(NOT_LEADER_OR_FOLLOWER)
    }
}

/// Kafka's divergence check from the follower's `LastFetchedEpoch`: `Ok(Some(epoch, end))`
/// means "no records, truncate to at most this" (DivergingEpoch); `Err` is
/// OFFSET_OUT_OF_RANGE (the epoch's end is unknown, or the offset is before the log start).
pub fn divergence(
    log: &PartitionLog,
    fetch_offset: i64,
    last_fetched_epoch: i32,
) -> Result<Option<(i32, i64)>, i16> {
    if last_fetched_epoch < 0 {
        return Ok(None);
    }
    let Some((epoch, end)) = log.end_offset_for_epoch(last_fetched_epoch) else {
        return Err(OFFSET_OUT_OF_RANGE);
    };
    if fetch_offset < log.log_start_offset() {
        return Err(OFFSET_OUT_OF_RANGE);
    }
    if epoch < last_fetched_epoch || end < fetch_offset {
        return Ok(Some((epoch, end)));
    }
    Ok(None)
}

/// Records a follower's fetch at `fetch_offset` while our log ended at `leader_end`
/// (Kafka's `updateFollowerFetchState`), then maybe advances the high watermark (waking
/// acks=all produces and consumers) and asks for the follower's return to the ISR.
pub fn on_follower_fetch(
    broker: &Arc<Broker>,
    p: &Arc<Partition>,
    replica_id: NodeId,
    fetch_offset: i64,
    leader_end: i64,
) {
    let now = Instant::now();
    let expand = {
        let mut role = p.role();
        let Some(l) = role.as_leader_mut() else {
            return;
        };
        let Some(f) = l.followers.get_mut(&replica_id) else {
            return;
        };
        f.update(fetch_offset, leader_end, now);
        // Kafka's isFollowerInSync: at the high watermark and past this epoch's start.
        !l.isr.contains(&replica_id)
            && fetch_offset >= p.high_watermark()
            && fetch_offset >= l.epoch_start_offset
            && !l.alter_in_flight
    };
    if super::high_watermark::maybe_advance(p) {
        broker.topics.appended.notify_waiters();
    }
    if expand {
        isr::request_expand(broker, p, replica_id);
    }
}

/// Whether this node leads `p` (for handlers choosing between paths).
pub fn is_leader(p: &Partition) -> bool {
    matches!(&*p.role(), Role::Leader(_))
}
