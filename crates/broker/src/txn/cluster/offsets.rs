//! TxnOffsetCommit on a cluster node, the group coordinator's side (Kafka's pending
//! transactional offsets in `GroupMetadata`): the offsets wait here, per producer id, until
//! the transaction's marker for the group's `__consumer_offsets` partition arrives; a commit
//! then appends them through the group coordinator's own path (`append_commits`, acks=all)
//! and only then shows them in OffsetFetch; an abort drops them.
//!
//! Owns: those pending offsets (memory only: a group coordinator failover before the
//! marker loses them, see the report). Must not: write `__consumer_offsets` other than
//! through `coordinator::log`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::leader::{MarkerSpec, NONE, NOT_LEADER_OR_FOLLOWER};
use crate::cluster::coordinator::{log, partition_for, OFFSETS_TOPIC};
use crate::state::Broker;
use crate::txn::PendingOffset;

#[derive(Debug, Default)]
pub struct Pending(Mutex<HashMap<i64, Vec<PendingOffset>>>);

impl Pending {
    fn lock(&self) -> MutexGuard<'_, HashMap<i64, Vec<PendingOffset>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Offsets a producer sent in its open transaction (a later one for the same partition
    /// replaces the earlier).
    pub fn add(&self, producer_id: i64, offsets: Vec<PendingOffset>) {
        let mut all = self.lock();
        let mine = all.entry(producer_id).or_default();
        for o in offsets {
            mine.retain(|p| {
                !(p.group == o.group && p.topic == o.topic && p.partition == o.partition)
            });
            mine.push(o);
        }
    }

    /// Takes the offsets of `producer_id` whose group `mine` selects.
    fn take(&self, producer_id: i64, mine: impl Fn(&str) -> bool) -> Vec<PendingOffset> {
        let mut all = self.lock();
        let Some(list) = all.get_mut(&producer_id) else {
            return Vec::new();
        };
        let (taken, kept): (Vec<_>, Vec<_>) = list.drain(..).partition(|o| mine(&o.group));
        if kept.is_empty() {
            all.remove(&producer_id);
        } else {
            *list = kept;
        }
        taken
    }

    /// True while an undecided transaction holds an offset for this group partition.
    pub fn has(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.lock()
            .values()
            .flatten()
            .any(|o| o.partition == partition && o.group == group && o.topic == topic)
    }
}

/// The marker of a transaction for `__consumer_offsets`-`index`, on its leader: a commit
/// stores the producer's pending offsets of the groups of that partition.
pub async fn on_marker(broker: &Arc<Broker>, index: i32, m: MarkerSpec) -> i16 {
    let Some(c) = &broker.cluster else {
        return NONE;
    };
    let meta = c.current();
    let Some(t) = meta.topics.get(OFFSETS_TOPIC) else {
        return NOT_LEADER_OR_FOLLOWER;
    };
    let n = t.partitions.len();
    if t.partitions.get(index as usize).map(|p| p.leader) != Some(c.node_id) {
        return NOT_LEADER_OR_FOLLOWER;
    }
    let pending = &broker.txns.cluster.offsets;
    let taken = pending.take(m.producer_id, |g| partition_for(g, n) == index);
    if !m.commit || taken.is_empty() {
        return NONE;
    }
    let entries: Vec<_> = taken
        .iter()
        .map(|o| {
            (
                (o.group.clone(), o.topic.clone(), o.partition),
                o.committed.clone(),
            )
        })
        .collect();
    let e = log::append_commits(broker, index, n, &entries).await;
    if e != NONE {
        // Kept for the coordinator's retry.
        pending.add(m.producer_id, taken);
        return NOT_LEADER_OR_FOLLOWER;
    }
    // In memory only on a cluster node: it cannot fail.
    let _ = broker.groups.offsets.commit(entries);
    NONE
}
