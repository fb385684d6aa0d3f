//! Follows the metadata: for every partition this node is a replica of, make sure its log
//! exists and that it plays the part the metadata gives it — leader at the new epoch (the
//! epoch's start noted in the epoch cache, the followers' state reset, Kafka's `makeLeader`)
//! or follower of the named leader (Kafka's `makeFollower`: the fetcher points at it).
//! Topics gone from the metadata are stopped and deleted here.
//!
//! Must not: run on the async workers (it opens files); `apply` runs in `spawn_blocking`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use crate::cluster::model::{ClusterMetadata, NodeId, PartitionRecord, TopicRecord};
use crate::cluster::ClusterHandle;
use crate::state::Broker;
use crate::topics::Partition;

use super::role::{FollowerState, LeaderState};
use super::Role;

/// The partitions this node follows, with their leader's id.
pub type Following = BTreeMap<(String, i32), NodeId>;

/// Brings every partition in line with `md` (`prev`: the metadata last applied, to tell
/// deleted topics apart from ones not yet known). Returns what to fetch from whom.
pub fn apply(
    broker: &Arc<Broker>,
    c: &ClusterHandle,
    prev: &ClusterMetadata,
    md: &ClusterMetadata,
    checkpoint: &HashMap<(String, i32), i64>,
) -> Following {
    let mut following = Following::new();
    // Gone, or deleted and created again under the same name (a new topic id): the old log
    // goes before anything is created.
    let gone = prev
        .topics
        .values()
        .filter(|t| md.topics.get(&t.name).is_none_or(|now| now.id != t.id));
    for t in gone {
        delete(broker, c, &t.name);
    }
    for topic in md.topics.values() {
        if !topic
            .partitions
            .iter()
            .any(|p| p.replicas.contains(&c.node_id))
        {
            continue;
        }
        let n = topic.partitions.len() as i32;
        let local = match broker.topics.create(&topic.name, n, true) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(topic = %topic.name, "cannot create the replica's log: {e}");
                continue;
            }
        };
        for (i, rec) in topic.partitions.iter().enumerate() {
            let Some(p) = local.partitions.get(i) else {
                continue;
            };
            if !rec.replicas.contains(&c.node_id) {
                *p.role() = Role::None;
                continue;
            }
            if !p.is_replicated() {
                let key = (topic.name.clone(), i as i32);
                p.set_replicated(checkpoint.get(&key).copied().unwrap_or(0));
            }
            if rec.leader == c.node_id {
                lead(broker, c, topic, p, rec);
            } else {
                follow(c, p, rec);
                if rec.leader >= 0 {
                    following.insert((topic.name.clone(), i as i32), rec.leader);
                }
            }
            p.changed.notify_waiters();
        }
    }
    following
}

fn lead(
    broker: &Broker,
    c: &ClusterHandle,
    topic: &TopicRecord,
    p: &Partition,
    rec: &PartitionRecord,
) {
    let same_epoch = matches!(&*p.role(), Role::Leader(l) if l.leader_epoch == rec.leader_epoch);
    if same_epoch {
        update_leader(p, topic, rec, c);
    } else {
        become_leader(c, topic, p, rec);
    }
    if super::high_watermark::maybe_advance(p) {
        broker.topics.appended.notify_waiters();
    }
}

/// A new leader epoch for this node: the epoch starts at our log end. Never at an epoch older
/// than one already in the log (metadata not yet caught up, e.g. replayed after a restart):
/// the log's epochs must not go down, so the node waits, leading nothing, for newer metadata.
fn become_leader(c: &ClusterHandle, topic: &TopicRecord, p: &Partition, rec: &PartitionRecord) {
    let start = {
        let mut log = p.log();
        if let Some(newer) = log.latest_epoch().filter(|e| *e > rec.leader_epoch) {
            log.become_follower();
            drop(log);
            c.events.record(
                Some("stale_leader_epoch"),
                &serde_json::json!({"topic": p.topic, "partition": p.index,
                    "leader_epoch": rec.leader_epoch, "log_leader_epoch": newer}),
            );
            *p.role() = Role::Follower {
                leader: crate::cluster::model::NO_LEADER,
                leader_epoch: rec.leader_epoch,
            };
            return;
        }
        if let Err(e) = log.become_leader(rec.leader_epoch) {
            tracing::error!(topic = %p.topic, partition = p.index, "cannot write the epoch cache: {e}");
        }
        log.log_end_offset()
    };
    let now = Instant::now();
    let lag = c.config.replica_lag_time_max;
    let followers = rec
        .replicas
        .iter()
        .filter(|r| **r != c.node_id)
        .map(|r| (*r, FollowerState::new(rec.isr.contains(r), now, lag)))
        .collect();
    *p.role() = Role::Leader(LeaderState {
        me: c.node_id,
        leader_epoch: rec.leader_epoch,
        partition_epoch: rec.partition_epoch,
        replicas: rec.replicas.clone(),
        isr: rec.isr.clone(),
        min_isr: topic.min_insync_replicas,
        epoch_start_offset: start,
        followers,
        alter_in_flight: false,
    });
    c.events.record(
        Some("became_leader"),
        &serde_json::json!({"topic": p.topic, "partition": p.index,
            "leader_epoch": rec.leader_epoch, "log_end_offset": start,
            "high_watermark": p.high_watermark(), "isr": rec.isr}),
    );
}

/// Same epoch, new ISR or partition epoch (an AlterPartition or a fenced follower).
fn update_leader(p: &Partition, topic: &TopicRecord, rec: &PartitionRecord, c: &ClusterHandle) {
    let mut role = p.role();
    let Some(l) = role.as_leader_mut() else {
        return;
    };
    if l.partition_epoch != rec.partition_epoch {
        l.alter_in_flight = false;
    }
    l.partition_epoch = rec.partition_epoch;
    l.isr = rec.isr.clone();
    l.min_isr = topic.min_insync_replicas;
    let now = Instant::now();
    for r in rec.replicas.iter().filter(|r| **r != c.node_id) {
        l.followers
            .entry(*r)
            .or_insert_with(|| FollowerState::new(false, now, c.config.replica_lag_time_max));
    }
    l.replicas = rec.replicas.clone();
}

fn follow(c: &ClusterHandle, p: &Partition, rec: &PartitionRecord) {
    let same = matches!(&*p.role(), Role::Follower { leader, leader_epoch }
        if *leader == rec.leader && *leader_epoch == rec.leader_epoch);
    if same {
        return;
    }
    p.log().become_follower();
    *p.role() = Role::Follower {
        leader: rec.leader,
        leader_epoch: rec.leader_epoch,
    };
    c.events.record(
        Some("became_follower"),
        &serde_json::json!({"topic": p.topic, "partition": p.index,
            "leader": rec.leader, "leader_epoch": rec.leader_epoch,
            "log_end_offset": p.log_end_offset()}),
    );
}

fn delete(broker: &Broker, c: &ClusterHandle, name: &str) {
    if let Some(t) = broker.topics.get(name) {
        for p in &t.partitions {
            *p.role() = Role::None;
            p.changed.notify_waiters();
        }
    }
    match broker.topics.delete(name) {
        Ok(true) => c
            .events
            .record(Some("replica_deleted"), &serde_json::json!({"topic": name})),
        Ok(false) => {}
        Err(e) => tracing::error!(topic = name, "cannot delete the replica's log: {e}"),
    }
}
