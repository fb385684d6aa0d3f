//! ISR changes a leader asks the controller for (Kafka's AlterPartition): shrink, from a
//! periodic check of followers not caught up for `replica.lag.time.max.ms`; expand, when a
//! follower outside the ISR catches up (from its fetch). One request at a time per partition;
//! the new ISR arrives through the metadata (reconcile), a stale reply just waits for it.
//!
//! Also the periodic high-watermark checkpoint, run by the same ticker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::cluster::model::{Command, NodeId, Reply};
use crate::state::Broker;
use crate::topics::Partition;

/// How often the high watermarks are checkpointed (Kafka: `replica.high.watermark.checkpoint.interval.ms`, 5000).
const HW_CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

/// Runs the shrink check every `replica.lag.time.max.ms / 2` (as Kafka schedules
/// `maybeShrinkIsr`) and the checkpoint, until shutdown.
pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let Some(c) = broker.cluster.clone() else {
        return;
    };
    let every = (c.config.replica_lag_time_max / 2).max(Duration::from_millis(50));
    let mut tick = tokio::time::interval(every.min(HW_CHECKPOINT_EVERY));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut last_shrink, mut last_checkpoint) = (Instant::now(), Instant::now());
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = Instant::now();
        if now.duration_since(last_shrink) >= every {
            last_shrink = now;
            shrink_all(&broker, c.config.replica_lag_time_max);
        }
        if now.duration_since(last_checkpoint) >= HW_CHECKPOINT_EVERY {
            last_checkpoint = now;
            let b = broker.clone();
            let _ =
                tokio::task::spawn_blocking(move || b.topics.checkpoint_high_watermarks()).await;
        }
    }
}

fn shrink_all(broker: &Arc<Broker>, lag_max: Duration) {
    let now = Instant::now();
    for t in broker.topics.all() {
        for p in &t.partitions {
            let proposal = {
                let mut role = p.role();
                let Some(l) = role.as_leader_mut() else {
                    continue;
                };
                let out = l.out_of_sync(p.log_end_offset(), now, lag_max);
                if out.is_empty() || l.alter_in_flight {
                    continue;
                }
                l.alter_in_flight = true;
                let isr: Vec<NodeId> = l.isr.iter().copied().filter(|r| !out.contains(r)).collect();
                (isr, out, l.leader_epoch, l.partition_epoch)
            };
            let (isr, out, leader_epoch, partition_epoch) = proposal;
            if let Some(c) = &broker.cluster {
                c.events.record(
                    Some("isr_shrink_requested"),
                    &serde_json::json!({"topic": p.topic, "partition": p.index, "isr": isr,
                        "out_of_sync": out, "leader_epoch": leader_epoch}),
                );
            }
            submit(broker, p, isr, leader_epoch, partition_epoch);
        }
    }
}

/// Asks for `follower` to join the ISR of `p` (it caught up).
pub fn request_expand(broker: &Arc<Broker>, p: &Arc<Partition>, follower: NodeId) {
    let Some(c) = &broker.cluster else {
        return;
    };
    if !c.current().is_available(follower) {
        return; // Kafka's isReplicaIsrEligible: fenced or shutting down brokers stay out.
    }
    let proposal = {
        let mut role = p.role();
        let Some(l) = role.as_leader_mut() else {
            return;
        };
        if l.alter_in_flight || l.isr.contains(&follower) {
            return;
        }
        l.alter_in_flight = true;
        let mut isr = l.isr.clone();
        isr.push(follower);
        (isr, l.leader_epoch, l.partition_epoch)
    };
    let (isr, leader_epoch, partition_epoch) = proposal;
    c.events.record(
        Some("isr_expand_requested"),
        &serde_json::json!({"topic": p.topic, "partition": p.index, "isr": isr,
            "follower": follower, "leader_epoch": leader_epoch}),
    );
    submit(broker, p, isr, leader_epoch, partition_epoch);
}

/// Sends the AlterPartition; on a refusal (stale epochs: the metadata moved on) the flag is
/// cleared so the next check can try again with what reconcile installed.
fn submit(
    broker: &Arc<Broker>,
    p: &Partition,
    isr: Vec<NodeId>,
    leader_epoch: i32,
    partition_epoch: i32,
) {
    let Some(c) = broker.cluster.clone() else {
        return;
    };
    let cmd = Command::AlterPartition {
        topic: p.topic.clone(),
        partition: p.index,
        leader: c.node_id,
        leader_epoch,
        partition_epoch,
        isr,
    };
    let Some(p) = broker.topics.partition(&p.topic, p.index) else {
        return;
    };
    tokio::spawn(async move {
        let reply = c.controller.submit(cmd).await;
        let refused = !matches!(reply, Ok(Reply::Ok) | Ok(Reply::PartitionEpoch(_)));
        if refused {
            tracing::debug!(topic = %p.topic, partition = p.index, "AlterPartition refused: {reply:?}");
        }
        let mut role = p.role();
        if let Some(l) = role.as_leader_mut() {
            // Accepted: reconcile installs the new ISR (and clears the flag) from the metadata.
            if refused || l.partition_epoch != partition_epoch {
                l.alter_in_flight = false;
            }
        }
    });
}
