//! A consumer group on a 3-node in-process cluster with librdkafka (the rdkafka crate): its
//! committed offsets survive the loss of the group coordinator's node, because they are
//! records of the replicated `__consumer_offsets` and the new leader rebuilds them.
//! (In tests/, not the broker crate: the broker crate builds without librdkafka.)

mod broker_support;

use std::time::Duration;

use broker_support::*;
use kbench_broker::cluster::coordinator::{partition_for, OFFSETS_TOPIC};
use kbench_broker::cluster::local::start_nodes;
use kbench_broker::cluster::Command;
use kbench_broker::BrokerConfig;

fn bootstrap(nodes: &[kbench_broker::EmbeddedBroker]) -> String {
    nodes
        .iter()
        .map(|n| n.bootstrap_servers())
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn a_group_resumes_from_its_commits_after_the_coordinators_node_is_lost() {
    let base = BrokerConfig {
        num_partitions: 3,
        ..BrokerConfig::embedded()
    };
    let (controller, mut nodes) = start_nodes(3, base).expect("cluster");
    let vals = values("ha", 600);
    let boot = bootstrap(&nodes);
    assert_eq!(
        produce(&boot, "ha", &vals[..300], &[("acks", "all")]),
        (300, 0)
    );
    let seen = consume(&boot, "ha", "ha-g", 300, Duration::from_secs(60), &[]);
    assert_exactly_once(&vals[..300], &seen);

    // The coordinator: the leader of the group's __consumer_offsets partition.
    let meta = nodes[0].state().cluster.as_ref().unwrap().current();
    let t = &meta.topics[OFFSETS_TOPIC];
    let coordinator = t.partitions[partition_for("ha-g", t.partitions.len()) as usize].leader;
    let epoch = meta.brokers[&coordinator].epoch;
    let lost = nodes.remove((coordinator - 1) as usize);
    lost.shutdown();
    controller.apply(&Command::FenceBroker {
        id: coordinator,
        epoch,
    });

    let boot = bootstrap(&nodes);
    assert_eq!(
        produce(&boot, "ha", &vals[300..], &[("acks", "all")]),
        (300, 0)
    );
    // Offsets lost would mean starting from the earliest again and re-reading the first 300.
    let seen = consume_until(
        &boot,
        "ha",
        "ha-g",
        Duration::from_secs(60),
        &[],
        |seen, _| vals[300..].iter().all(|v| seen.contains_key(v)),
    );
    assert_exactly_once(&vals[300..], &seen);
}
