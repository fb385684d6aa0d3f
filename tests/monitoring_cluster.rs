//! A real Prometheus server (Debian's `prometheus`) scrapes a running 3-node bundled cluster
//! (`kbench cluster --metrics`) with the shipped rules (their `for:` cut to 1 s): all quiet
//! while every node runs; with a follower killed, the leader reports its partitions
//! under-replicated and KbenchUnderReplicatedPartitions and KbenchBrokerDown fire; one
//! active controller throughout.

mod cluster_support;
mod common;
mod monitoring_support;

use std::time::Duration;

use cluster_support::Cluster;
use monitoring_support::*;

#[test]
fn a_real_prometheus_sees_a_cluster_node_down_as_under_replicated_partitions() {
    if !require_prometheus() {
        return;
    }
    let cluster = Cluster::start_with_metrics(3, &["--min-insync-replicas", "2"]);
    let out = tempfile::tempdir().unwrap();
    common::kbench(
        out.path(),
        &[
            "produce",
            "--bootstrap-server",
            &cluster.bootstrap,
            "--topic",
            "watched",
            "--replication-factor",
            "3",
            "--num-records",
            "500",
            "--throughput",
            "1000",
            "--record-size",
            "100",
        ],
    )
    .timeout(Duration::from_secs(60))
    .assert()
    .success();
    let targets: Vec<String> = (1..=3).map(|id| cluster.metrics_addr(id)).collect();
    let dir = tempfile::tempdir().unwrap();
    let rules = fast_rules(&rules_file("kbench-broker.rules.yml"), dir.path(), "1s");
    let prom = Prometheus::start(&[ScrapeJob::new("kbench-broker", &targets)], &[rules]);
    let within = Duration::from_secs(20);
    prom.wait_for_query("up{job=\"kbench-broker\"} == 1", 3, within);
    prom.wait_for_query("sum(kbroker_active_controller) == 1", 1, within);
    prom.wait_for_query("kbroker_leader_partitions > 0", 1, within);
    assert!(prom.firing("KbenchUnderReplicatedPartitions").is_empty());

    let p = cluster.partition("watched", 0).unwrap();
    let follower = *p.replicas.iter().find(|r| **r != p.leader).unwrap();
    cluster.kill9(follower);
    // Fenced after the 2 s session: the ISR shrinks and the leader counts the partition.
    let alert = prom.wait_for_alert("KbenchUnderReplicatedPartitions", Duration::from_secs(30));
    assert_eq!(alert["labels"]["severity"], "warning", "{alert}");
    prom.wait_for_alert("KbenchBrokerDown", Duration::from_secs(30));
    prom.wait_for_query("sum(kbroker_isr_shrinks_total) >= 1", 1, within);
    prom.wait_for_query("sum(kbroker_active_controller) == 1", 1, within);
}
