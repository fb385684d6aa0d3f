//! Group coordination across nodes: the coordinator of a group is the leader of its
//! `__consumer_offsets` partition (Kafka's `partitionFor`), and its committed offsets live in
//! that replicated partition, rebuilt from the log when leadership moves here.
//!
//! Owns: which node coordinates a group or transactional id, creating the internal topics on
//! first use, and this node's set of loaded offsets partitions (`Coordination`), kept in step
//! with the metadata by the task `spawn` starts. Must not: change group membership rules
//! (`group::Coordinator` does) or the metadata (only through the controller).
//!
//! # Layout
//! * `records` — commits as Kafka's OffsetCommitKey/Value records in a batch.
//! * `log` — reading a partition's commits back (the rebuild) and writing new ones.

pub mod log;
pub mod records;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::model::{ClusterMetadata, Command, Reply, NO_LEADER};
use crate::group::offsets::Committed;
use crate::group::{COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR};
use crate::state::Broker;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
pub const TRANSACTION_TOPIC: &str = "__transaction_state";

/// Kafka's `partitionFor`: `Utils.abs(key.hashCode()) % n`, with Java's `String.hashCode`
/// (over UTF-16 code units) and `Utils.abs` (which maps `i32::MIN` to 0).
pub fn partition_for(key: &str, n: usize) -> i32 {
    let h = key
        .encode_utf16()
        .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)));
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % (n.max(1) as i32)
}

/// The `__consumer_offsets` partitions this node leads and has loaded, with the leader epoch
/// it loaded them at (a new epoch means another leader may have written meanwhile: reload).
#[derive(Debug, Default)]
pub struct Coordination {
    loaded: Mutex<HashMap<i32, i32>>,
}

impl Coordination {
    fn get(&self, partition: i32) -> Option<i32> {
        self.lock().get(&partition).copied()
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, i32>> {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether this node coordinates `group` now: `Ok(partition)` (of `__consumer_offsets`), or
/// the error a group request gets: NOT_COORDINATOR elsewhere (also before the topic exists:
/// the client asks FindCoordinator again, which creates it), COORDINATOR_LOAD_IN_PROGRESS
/// while the partition is being rebuilt here. A single node coordinates everything.
pub fn owner(broker: &Broker, group: &str) -> Result<i32, i16> {
    let Some(c) = &broker.cluster else {
        return Ok(0);
    };
    let meta = c.current();
    let Some(t) = meta.topics.get(OFFSETS_TOPIC) else {
        return Err(NOT_COORDINATOR);
    };
    let index = partition_for(group, t.partitions.len());
    let p = &t.partitions[index as usize];
    if p.leader != c.node_id {
        return Err(NOT_COORDINATOR);
    }
    match broker.coordination.get(index) {
        Some(epoch) if epoch == p.leader_epoch => Ok(index),
        _ => Err(COORDINATOR_LOAD_IN_PROGRESS),
    }
}

/// FindCoordinator's answer on a cluster node: the node id, host and port of the leader of
/// the key's partition of the internal topic (`__consumer_offsets` for groups,
/// `__transaction_state` for transactional ids), created on first use; or an error code.
pub async fn find(
    broker: &Broker,
    key: &str,
    transaction: bool,
) -> Result<(i32, String, i32), i16> {
    let c = broker.cluster.as_ref().ok_or(COORDINATOR_NOT_AVAILABLE)?;
    let topic = if transaction {
        TRANSACTION_TOPIC
    } else {
        OFFSETS_TOPIC
    };
    let mut meta = c.current();
    if !meta.topics.contains_key(topic) {
        create_internal_topic(broker, topic).await?;
        meta = c.current();
    }
    locate(&meta, topic, key)
}

fn locate(meta: &ClusterMetadata, topic: &str, key: &str) -> Result<(i32, String, i32), i16> {
    let t = meta.topics.get(topic).ok_or(COORDINATOR_NOT_AVAILABLE)?;
    let p = &t.partitions[partition_for(key, t.partitions.len()) as usize];
    if p.leader == NO_LEADER {
        return Err(COORDINATOR_NOT_AVAILABLE);
    }
    match meta.brokers.get(&p.leader) {
        Some(b) if !b.fenced => Ok((b.id, b.host.clone(), b.port)),
        _ => Err(COORDINATOR_NOT_AVAILABLE),
    }
}

/// Creates an internal topic as Kafka does on first use (`offsets.topic.replication.factor`
/// 3, here capped at the live brokers so a smaller cluster still gets one; min.insync.replicas
/// min(2, RF)), compacted. Another node creating it at the same time is fine.
async fn create_internal_topic(broker: &Broker, topic: &str) -> Result<(), i16> {
    let c = broker.cluster.as_ref().ok_or(COORDINATOR_NOT_AVAILABLE)?;
    let meta = c.current();
    let live = meta
        .brokers
        .values()
        .filter(|b| meta.is_available(b.id))
        .count() as i32;
    let rf = live.min(3);
    if rf < 1 {
        return Err(COORDINATOR_NOT_AVAILABLE);
    }
    let cmd = Command::CreateTopic {
        name: topic.to_string(),
        partitions: c.config.offsets_topic_num_partitions,
        replication_factor: rf,
        min_insync_replicas: rf.min(2),
        configs: BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]),
    };
    match c.controller.submit(cmd).await {
        Ok(Reply::Ok) => {
            tracing::info!(topic, rf, "created the internal topic");
            Ok(())
        }
        Ok(Reply::Error(code, _)) if code == super::model::code::TOPIC_ALREADY_EXISTS => Ok(()),
        Ok(other) => {
            tracing::warn!(topic, "cannot create the internal topic: {other:?}");
            Err(COORDINATOR_NOT_AVAILABLE)
        }
        Err(e) => {
            tracing::warn!(topic, "cannot create the internal topic: {e}");
            Err(COORDINATOR_NOT_AVAILABLE)
        }
    }
}

/// Starts this node's coordinator duties; they end when `shutdown` turns true: on every
/// metadata change, load the offsets partitions this node now leads and drop the ones it
/// no longer leads.
pub fn spawn(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let Some(c) = broker.cluster.clone() else {
        return;
    };
    let mut rx = c.metadata.clone();
    tokio::spawn(async move {
        let mut prev = Arc::new(ClusterMetadata::default());
        loop {
            let meta = rx.borrow_and_update().clone();
            reconcile(&broker, &meta).await;
            for topic in prev.topics.keys().filter(|t| !meta.topics.contains_key(*t)) {
                tokio::spawn(forget_topic(broker.clone(), topic.clone()));
            }
            prev = meta;
            tokio::select! {
                r = rx.changed() => if r.is_err() { break },
                _ = shutdown.changed() => break,
            }
        }
    });
}

/// (partition, leader epoch) of every `__consumer_offsets` partition `node` leads.
/// The partitions of internal `topic` that `node` leads, with their leader epochs, and the
/// topic's partition count (0 while it does not exist).
pub(crate) fn led_by(meta: &ClusterMetadata, topic: &str, node: i32) -> (HashMap<i32, i32>, usize) {
    let Some(t) = meta.topics.get(topic) else {
        return (HashMap::new(), 0);
    };
    let led = t
        .partitions
        .iter()
        .enumerate()
        .filter(|(_, p)| p.leader == node)
        .map(|(i, p)| (i as i32, p.leader_epoch))
        .collect();
    (led, t.partitions.len())
}

/// What a coordinator must do to match what it leads: the partitions to drop (lost, or led at
/// another epoch) and those to load (led now at an epoch not loaded).
pub(crate) fn leadership_changes(
    led: &HashMap<i32, i32>,
    loaded: &HashMap<i32, i32>,
) -> (Vec<i32>, Vec<(i32, i32)>) {
    let drop = loaded
        .iter()
        .filter(|(p, e)| led.get(p) != Some(e))
        .map(|(p, _)| *p)
        .collect();
    let load = led
        .iter()
        .filter(|(p, e)| loaded.get(p) != Some(e))
        .map(|(p, e)| (*p, *e))
        .collect();
    (drop, load)
}

async fn reconcile(broker: &Arc<Broker>, meta: &ClusterMetadata) {
    let Some(c) = &broker.cluster else { return };
    let (led, n) = led_by(meta, OFFSETS_TOPIC, c.node_id);
    let loaded = broker.coordination.lock().clone();
    let (drop, load_now) = leadership_changes(&led, &loaded);
    for p in drop {
        unload(broker, p, n);
    }
    for (p, epoch) in load_now {
        // Checked again: a load may have happened meanwhile.
        if broker.coordination.get(p) != Some(epoch) {
            load(broker, p, epoch, n).await;
        }
    }
}

/// A deleted topic's committed offsets go, as Kafka's coordinator removes them: tombstones in
/// the offsets partitions this node leads (so a new leader does not bring them back), then
/// out of memory (so a topic created again with that name starts afresh).
async fn forget_topic(broker: Arc<Broker>, topic: String) {
    let Some(c) = &broker.cluster else { return };
    let Some(n) = c
        .current()
        .topics
        .get(OFFSETS_TOPIC)
        .map(|t| t.partitions.len())
    else {
        return;
    };
    let mut by_partition: BTreeMap<i32, Vec<(records::Key, Committed)>> = BTreeMap::new();
    for (group, t, part, _) in broker.groups.offsets.all() {
        if t == topic {
            let tomb = Committed {
                offset: -1,
                leader_epoch: -1,
                metadata: None,
            };
            by_partition
                .entry(partition_for(&group, n))
                .or_default()
                .push(((group, t, part), tomb));
        }
    }
    for (p, tombs) in by_partition {
        let e = log::append_commits(&broker, p, n, &tombs).await;
        if e != 0 {
            tracing::warn!(topic = %topic, partition = p, error = e, "offsets of a deleted topic not tombstoned");
        }
    }
    let _ = broker.groups.offsets.forget_topic(&topic);
}

/// Stops coordinating the groups of partition `p`: their members rejoin at the new
/// coordinator, which serves their offsets from the replicated log.
fn unload(broker: &Broker, p: i32, n: usize) {
    broker.coordination.lock().remove(&p);
    let mine = |g: &str| partition_for(g, n) == p;
    let groups = broker.groups.drop_groups(mine);
    broker.groups.offsets.replace_groups(mine, Vec::new());
    tracing::info!(
        partition = p,
        groups,
        "no longer the coordinator of __consumer_offsets-{p}"
    );
}

/// Rebuilds the committed offsets of partition `p` from its log, then serves its groups;
/// first waits for the data path to lead the partition at this epoch (it follows the same
/// metadata), so that the first commits are not refused as from a non-leader.
async fn load(broker: &Arc<Broker>, p: i32, epoch: i32, n: usize) {
    if !log::wait_leader_role(broker, p, epoch).await {
        tracing::warn!(
            partition = p,
            epoch,
            "__consumer_offsets-{p}: not its leader at epoch {epoch} after all"
        );
        return;
    }
    let b = broker.clone();
    let read = tokio::task::spawn_blocking(move || log::read_commits(&b, p, n)).await;
    match read {
        Ok(Ok(entries)) => {
            let count = entries.len();
            let mine = |g: &str| partition_for(g, n) == p;
            broker.groups.drop_groups(mine);
            broker.groups.offsets.replace_groups(mine, entries);
            broker.coordination.lock().insert(p, epoch);
            tracing::info!(
                partition = p,
                epoch,
                records = count,
                "coordinator of __consumer_offsets-{p}"
            );
        }
        Ok(Err(e)) => tracing::error!(partition = p, "cannot load __consumer_offsets-{p}: {e}"),
        Err(e) => tracing::error!(
            partition = p,
            "the load of __consumer_offsets-{p} failed: {e}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_for_is_kafkas_java_string_hash() {
        // "a".hashCode() = 97; "group".hashCode() = 98629247.
        assert_eq!(partition_for("a", 50), 97 % 50);
        assert_eq!(partition_for("group", 50), 98_629_247 % 50);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE: Utils.abs gives 0.
        assert_eq!(partition_for("polygenelubricants", 7), 0);
        // Negative hashes are folded to positive: "Aa\u{0}zzzz..." style keys stay in range.
        for k in [
            "x",
            "consumer-group-1",
            "ééé",
            "a much longer group id than usual",
        ] {
            assert!((0..5).contains(&partition_for(k, 5)));
        }
    }
}
