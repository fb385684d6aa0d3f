//! The produce path of a partition leader in a cluster (Kafka's `appendRecordsToLeader` and
//! `DelayedProduce`): leader check, min.insync.replicas before the append, the append with
//! this leader's epoch stamped, and for acks=all the wait until the high watermark covers it.
//!
//! Must not: hold the log or role lock while waiting.

use std::sync::Arc;
use std::time::Duration;

use crate::state::Broker;
use crate::topics::Partition;

use super::role::NOT_LEADER_OR_FOLLOWER;
use super::Role;

pub const REQUEST_TIMED_OUT: i16 = 7;
pub const NOT_ENOUGH_REPLICAS: i16 = 19;
pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;

/// What one partition's append came to (a Produce response partition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub error: i16,
    pub base_offset: i64,
    pub log_start: i64,
}

impl AppendOutcome {
    pub fn failed(error: i16) -> Self {
        AppendOutcome {
            error,
            base_offset: -1,
            log_start: -1,
        }
    }
}

/// The leader epoch and whether the ISR is big enough for acks=all, if this node leads.
fn leading(p: &Partition) -> Result<(i32, bool), i16> {
    match &*p.role() {
        Role::Leader(l) => Ok((l.leader_epoch, l.isr.len() as i32 >= l.min_isr)),
        _ => Err(NOT_LEADER_OR_FOLLOWER),
    }
}

/// An acks=all append done locally, waiting for the high watermark to pass `end`.
#[derive(Debug)]
pub struct Pending {
    p: Arc<Partition>,
    epoch: i32,
    end: i64,
    deadline: tokio::time::Instant,
    outcome: AppendOutcome,
}

/// Appends `records` (client batches) to `p` as its leader. acks=0/1 answer after the local
/// append; acks=-1 waits until the high watermark passes the append, at most `timeout`.
pub async fn append_as_leader(
    broker: &Arc<Broker>,
    p: &Arc<Partition>,
    records: &[u8],
    acks: i16,
    timeout: Duration,
) -> AppendOutcome {
    match begin(broker, p, records, acks, timeout) {
        Ok(done) => done,
        Err(pending) => wait(pending).await,
    }
}

/// The first half of `append_as_leader`: checks and the local append. `Ok`: the answer;
/// `Err`: an acks=all append to wait for (`wait`), so that a request's partitions are all
/// appended before any waits (Kafka's one DelayedProduce per request).
pub fn begin(
    broker: &Arc<Broker>,
    p: &Arc<Partition>,
    records: &[u8],
    acks: i16,
    timeout: Duration,
) -> Result<AppendOutcome, Pending> {
    let (epoch, enough) = match leading(p) {
        Ok(v) => v,
        Err(e) => return Ok(AppendOutcome::failed(e)),
    };
    if acks == -1 && !enough {
        return Ok(AppendOutcome::failed(NOT_ENOUGH_REPLICAS));
    }
    let (outcome, end) = crate::handlers::produce::append_local(broker, p, records);
    if outcome.error != 0 {
        return Ok(outcome);
    }
    // Followers and consumers long-poll on appends.
    broker.topics.appended.notify_waiters();
    if acks != -1 {
        return Ok(outcome);
    }
    Err(Pending {
        p: p.clone(),
        epoch,
        end,
        deadline: tokio::time::Instant::now() + timeout,
        outcome,
    })
}

/// The second half: waits until the high watermark covers the append, the leadership or the
/// ISR is lost, or the request's timeout passes.
pub async fn wait(pending: Pending) -> AppendOutcome {
    let Pending {
        p,
        epoch,
        end,
        deadline,
        outcome,
    } = pending;
    let waited = p
        .wait_high_watermark(end, deadline, |p| match leading(p) {
            Ok((e, _)) if e != epoch => Err(NOT_LEADER_OR_FOLLOWER),
            Ok((_, false)) => Err(NOT_ENOUGH_REPLICAS_AFTER_APPEND),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        })
        .await;
    let error = match waited {
        // Kafka's checkEnoughReplicasReachOffset: reached, but by a shrunken ISR.
        Ok(()) => match leading(&p) {
            Ok((_, true)) => 0,
            Ok((_, false)) => NOT_ENOUGH_REPLICAS_AFTER_APPEND,
            Err(e) => e,
        },
        Err(Some(e)) => e,
        Err(None) => REQUEST_TIMED_OUT,
    };
    AppendOutcome { error, ..outcome }
}
