//! Faults through the binary against a 3-node Apache Kafka (`scripts/kafka.sh --nodes 3 start
//! --proxied`) and its cluster file: a SIGKILL of a partition's leader under an idempotent
//! acks=all producer (RF 3, min ISR 2) loses no acknowledged record, stalls the partition for
//! about the broker session timeout (6 s here) and no more than that plus a few seconds, and the
//! killed node is restarted after `for`.
//!
//! The test starts its own cluster on free loopback ports and a private state dir; a watchdog
//! stops it (every node and proxy, by pid) when the test binary exits. Without Java or Maven it
//! skips loudly, except under `CI`, where it fails.

mod common;
mod kafka_common;

use std::time::Duration;

use kafka_common::*;

#[test]
fn a_leader_sigkill_on_3_node_kafka_loses_no_acknowledged_record() {
    let test = "a_leader_sigkill_on_3_node_kafka_loses_no_acknowledged_record";
    if !java_peers_available(test) {
        return;
    }
    let cluster = start_three_node_kafka("faults");
    let dir = tempfile::tempdir().unwrap();
    let file = cluster.cluster_file.to_str().unwrap();
    let out = common::kbench(
        dir.path(),
        &[
            "produce",
            "--cluster-file",
            file,
            "--topic",
            "faults-kill",
            "--replication-factor",
            "3",
            "--record-size",
            "100",
            "--throughput",
            "300",
            "--acks",
            "all",
            "--idempotence",
            "--reporting-interval",
            "2s",
            "--duration",
            "35s",
            "--fault",
            "at=8s kill leader-of:faults-kill/0 for=10s",
        ],
    )
    .timeout(Duration::from_secs(400))
    .assert()
    .success()
    .get_output()
    .clone();
    let s = common::summary(dir.path());
    let f = &s["faults"][0];
    assert!(f["errors"].as_array().unwrap().is_empty(), "{f}");
    assert!(
        f["node"].as_i64().is_some_and(|n| (1..=3).contains(&n)),
        "{f}"
    );
    let gap = f["produce"]["ack_gap_ms"].as_f64().unwrap();
    // broker.session.timeout.ms is 6 s: the controller fences the dead leader after it.
    assert!(
        (1_000.0..=6_000.0 + 8_000.0).contains(&gap),
        "ack gap {gap} ms; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = &s["durability"];
    assert_eq!(d["acked_lost"], 0, "{d}");
    assert_eq!(d["duplicated"], 0, "{d}");
    assert_eq!(d["complete"], true, "{d}");
    assert!(d["acked"].as_u64().unwrap() > 5_000, "{d}");
    assert!(
        f["t_h_ms"].as_u64().is_some(),
        "the node was not restarted: {f}"
    );
}
