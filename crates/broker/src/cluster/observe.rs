//! The cluster's Prometheus metrics, from the metadata this node applies: each new version is
//! compared with the one before it.
//!
//! Counted once per cluster, where Kafka counts them, so that the alert rules can sum over
//! nodes: leader elections (and unclean ones) by the active controller; ISR shrinks and
//! expands by the partition's leader (the node that asked for them). Gauges: partitions this
//! node leads and those of them under-replicated; offline partitions and fenced brokers on the
//! active controller only (0 elsewhere).

use std::sync::Arc;

use tokio::sync::watch;

use super::model::{ClusterMetadata, NodeId, PartitionRecord};
use crate::metrics::Metrics;
use crate::state::Broker;

/// Whether this node is the active controller right now.
pub type IsActive = Arc<dyn Fn() -> bool + Send + Sync>;

/// Keeps the metrics current until `shutdown` turns true.
pub async fn run(broker: Arc<Broker>, is_active: IsActive, mut shutdown: watch::Receiver<bool>) {
    let Some(cluster) = &broker.cluster else {
        return;
    };
    let (node, mut metadata, metrics) =
        (cluster.node_id, cluster.metadata.clone(), &broker.metrics);
    let mut before = metadata.borrow_and_update().clone();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            r = metadata.changed() => {
                if r.is_err() {
                    return;
                }
                let now = metadata.borrow_and_update().clone();
                count_changes(node, &before, &now, metrics, is_active());
                before = now;
            }
            // The active controller can change without a metadata change.
            _ = tick.tick() => {}
        }
        set_gauges(node, &before, metrics, is_active());
    }
}

fn partitions(m: &ClusterMetadata) -> impl Iterator<Item = ((&str, usize), &PartitionRecord)> {
    m.topics.values().flat_map(|t| {
        t.partitions
            .iter()
            .enumerate()
            .map(move |(i, p)| ((t.name.as_str(), i), p))
    })
}

/// Elections and ISR changes between two applied versions.
fn count_changes(
    node: NodeId,
    before: &ClusterMetadata,
    now: &ClusterMetadata,
    metrics: &Metrics,
    active: bool,
) {
    for ((topic, i), p) in partitions(now) {
        let Some(old) = before.topics.get(topic).and_then(|t| t.partitions.get(i)) else {
            continue;
        };
        if active && p.leader_epoch > old.leader_epoch {
            metrics.leader_elected();
            // Unclean: the new leader was not in the ISR before.
            if p.leader >= 0 && !old.isr.contains(&p.leader) {
                metrics.unclean_leader_elected();
            }
        }
        if p.leader == node && p.leader_epoch == old.leader_epoch {
            if old.isr.iter().any(|r| !p.isr.contains(r)) {
                metrics.isr_shrunk();
            }
            if p.isr.iter().any(|r| !old.isr.contains(r)) {
                metrics.isr_expanded();
            }
        }
    }
}

fn set_gauges(node: NodeId, m: &ClusterMetadata, metrics: &Metrics, active: bool) {
    let led: Vec<&PartitionRecord> = partitions(m)
        .map(|(_, p)| p)
        .filter(|p| p.leader == node)
        .collect();
    metrics.set_leader_partitions(led.len() as i64);
    metrics.set_under_replicated(led.iter().filter(|p| p.under_replicated()).count() as i64);
    metrics.set_active_controller(active);
    let (offline, fenced) = if active {
        (
            partitions(m).filter(|(_, p)| p.is_offline()).count() as i64,
            m.brokers.values().filter(|b| b.fenced).count() as i64,
        )
    } else {
        (0, 0)
    };
    metrics.set_offline_partitions(offline);
    metrics.set_fenced_brokers(fenced);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::model::Command;

    fn cluster() -> ClusterMetadata {
        let mut m = ClusterMetadata::default();
        for id in 1..=3 {
            m.apply(&Command::RegisterBroker {
                id,
                host: "h".into(),
                port: id,
                peer: None,
            });
        }
        m.apply(&Command::CreateTopic {
            name: "t".into(),
            partitions: 1,
            replication_factor: 3,
            min_insync_replicas: 1,
            configs: Default::default(),
        });
        m
    }

    #[test]
    fn elections_count_on_the_controller_and_isr_changes_on_the_leader() {
        let before = cluster();
        let mut now = before.clone();
        now.apply(&Command::FenceBroker { id: 1, epoch: 1 });
        let metrics = Metrics::new();
        count_changes(2, &before, &now, &metrics, true);
        set_gauges(2, &now, &metrics, true);
        let text = metrics.encode();
        assert!(text.contains("kbroker_leader_elections_total 1"), "{text}");
        assert!(text.contains("kbroker_leader_partitions 1"), "{text}");
        assert!(
            text.contains("kbroker_under_replicated_partitions 1"),
            "{text}"
        );
        assert!(text.contains("kbroker_fenced_brokers 1"), "{text}");
        // The ISR shrank in the same change that elected node 2: not counted as a shrink by
        // it (it was not the leader that asked). A later shrink by node 2 is.
        let mut later = now.clone();
        later.apply(&Command::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader: 2,
            leader_epoch: 1,
            partition_epoch: now.partition("t", 0).unwrap().partition_epoch,
            isr: vec![2],
        });
        count_changes(2, &now, &later, &metrics, false);
        assert!(metrics.encode().contains("kbroker_isr_shrinks_total 1"));
    }
}
