//! Ending transactions: the COMMIT/ABORT marker in every partition of the transaction, then
//! its pending offsets into the group store (commit only), then the completed state and the
//! metrics. Also the background sweep that aborts transactions past their timeout and resumes
//! ones left half-ended (at startup, or after a failed write).
//!
//! Owns: the order of those steps. Must not: hold the coordinator's lock while it takes a
//! partition's (see `txn`'s lock order).

use super::{EndPlan, EndReason, NONE};
use crate::handlers::code;
use crate::log::FlushPolicy;
use crate::protocol::batch::Marker;
use crate::state::Broker;

/// The coordinator epoch in every marker's value. Kafka puts the leader epoch of the
/// `__transaction_state` partition there; a single node's coordinator never moves.
const COORDINATOR_EPOCH: i32 = 0;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Writes the markers of `p`, applies its offsets and completes it. Returns the error code
/// for EndTxn: a failed marker write leaves the transaction in Prepare* for the sweep.
pub fn complete(broker: &Broker, p: &EndPlan) -> i16 {
    let marker = if p.commit {
        Marker::Commit
    } else {
        Marker::Abort
    };
    let ts = now_ms();
    for (topic, index) in &p.partitions {
        // A partition of a topic deleted meanwhile needs no marker.
        let Some(part) = broker.topics.partition(topic, *index) else {
            continue;
        };
        let mut log = part.log();
        // Resuming after a crash: partitions whose marker was already written are done.
        if p.reason == EndReason::Resumed && !log.has_open_transaction(p.producer_id) {
            continue;
        }
        let written = log.append_marker(p.producer_id, p.epoch, marker, COORDINATOR_EPOCH, ts);
        part.publish(&log);
        drop(log);
        if let Err(e) = written {
            tracing::error!(topic = %topic, partition = index, "transaction marker write failed: {e}");
            broker.txns.abandon(p);
            return code::KAFKA_STORAGE_ERROR;
        }
    }
    // The stable offsets moved: read_committed fetches waiting on them re-check.
    broker.topics.appended.notify_waiters();
    let offsets = broker.txns.finish(p);
    let entries: Vec<_> = offsets
        .into_iter()
        .map(|o| ((o.group, o.topic, o.partition), o.committed))
        .collect();
    if let Err(e) = broker.groups.offsets.commit(entries) {
        tracing::error!(transactional_id = %p.tid, "offset journal write failed: {e}");
    }
    broker
        .metrics
        .transaction_ended(p.commit, p.reason == EndReason::TimedOut);
    NONE
}

/// `complete`, off the async workers when markers may fsync (the `messages:N` flush policy),
/// as Produce does.
pub fn complete_in_handler(broker: &Broker, p: &EndPlan) -> i16 {
    let blocking = matches!(broker.cfg.flush, FlushPolicy::Messages(_))
        && tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if blocking {
        tokio::task::block_in_place(|| complete(broker, p))
    } else {
        complete(broker, p)
    }
}

/// Aborts transactions past their timeout and resumes half-ended ones; returns how many
/// transactions it ended.
pub fn sweep(broker: &Broker) -> usize {
    // A cluster node's coordinator has its own, asynchronous sweep (`txn::cluster`).
    if broker.cluster.is_some() {
        return 0;
    }
    let due = broker.txns.due(now_ms());
    for p in &due {
        if p.reason == EndReason::TimedOut {
            tracing::info!(
                transactional_id = %p.tid,
                producer_id = p.producer_id,
                "aborting a transaction that outlived its transaction.timeout.ms"
            );
        }
        complete(broker, p);
    }
    due.len()
}
