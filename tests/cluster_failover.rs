//! A 3-node bundled cluster (`kbench cluster`, one process per node) keeps its promises when
//! a node dies, as real clients see it: kbench's librdkafka producer with fault steps on the
//! cluster file, and read-back of every partition from the earliest offset.
//!
//! * SIGKILL of a partition's leader under an idempotent acks=all producer with
//!   min.insync.replicas=2: no acknowledged record lost, none duplicated, a higher leader
//!   epoch; the killed node restarts, rejoins the ISR and its replica is byte-identical.
//! * acks=1 loses acknowledged records when the leader dies with both followers stopped (and
//!   the read-back shows them), the old leader truncates its divergent suffix when it rejoins;
//!   acks=all in the same scenario loses nothing.
//! * SIGTERM of a leader is a controlled shutdown: the producer's longest ack gap stays under
//!   a second.

mod cluster_support;
mod common;

use std::time::Duration;

use cluster_support::{log_bytes, Cluster};
use serde_json::Value;

fn produce(dir: &std::path::Path, cluster: &Cluster, args: &[&str]) -> (Value, String) {
    let file = cluster.cluster_file();
    let mut all = vec![
        "produce",
        "--bootstrap-server",
        &cluster.bootstrap,
        "--cluster-file",
        file.to_str().unwrap(),
        "--replication-factor",
        "3",
        "--record-size",
        "100",
        "--reporting-interval",
        "1s",
    ];
    all.extend_from_slice(args);
    let out = common::kbench(dir, &all)
        .timeout(Duration::from_secs(180))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "kbench produce failed ({}):\n{stderr}\n{}",
        out.status,
        cluster.logs()
    );
    (common::summary(dir), stderr)
}

#[test]
fn a_leader_sigkill_loses_no_acknowledged_record_and_the_node_rejoins() {
    let cluster = Cluster::start(3, &["--min-insync-replicas", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let (s, stderr) = produce(
        dir.path(),
        &cluster,
        &[
            "--topic",
            "failover",
            "--throughput",
            "500",
            "--acks",
            "all",
            "--idempotence",
            "--duration",
            "12s",
            "--fault",
            "at=4s kill leader-of:failover/0",
        ],
    );
    let f = &s["faults"][0];
    assert!(f["errors"].as_array().unwrap().is_empty(), "{f}\n{stderr}");
    let killed = f["node"].as_i64().expect("the step names its node") as i32;
    let d = &s["durability"];
    assert_eq!(d["acked_lost"], 0, "{d}\n{stderr}");
    assert_eq!(d["duplicated"], 0, "{d}");
    assert_eq!(d["complete"], true, "{d}");
    assert!(d["acked"].as_u64().unwrap() > 4_000, "{d}");
    // Fenced after the 2 s session timeout, a new leader elected, clients follow within ~1 s.
    let gap = f["produce"]["ack_gap_ms"].as_f64().unwrap();
    assert!(gap < 2_000.0 + 4_000.0, "ack gap {gap} ms\n{stderr}");

    let after = cluster.partition("failover", 0).expect("metadata");
    assert_ne!(after.leader, killed);
    assert!(after.leader_epoch >= 1, "{after:?}");
    assert!(!after.isr.contains(&killed), "{after:?}");

    cluster.restart(killed);
    let back = cluster.wait_for(
        "failover",
        0,
        Duration::from_secs(30),
        "the restarted node rejoins the ISR",
        |p| p.isr.len() == 3,
    );
    assert!(
        back.leader_epoch >= after.leader_epoch,
        "epochs never go down: {after:?} then {back:?}"
    );
    let leader_log = log_bytes(&cluster.node_dir(back.leader), "failover", 0);
    for id in 1..=3 {
        assert!(
            log_bytes(&cluster.node_dir(id), "failover", 0) == leader_log,
            "node {id}'s replica differs from the leader's ({} bytes)",
            leader_log.len()
        );
    }
    let events: Vec<Value> = (1..=3).flat_map(|id| cluster.events(id)).collect();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "fenced" && e["node"].is_number()),
        "no fenced event"
    );
    assert!(
        events.iter().any(|e| e["event"] == "elected"),
        "no elected event"
    );
}

/// Stops both followers of `topic/0`, produces for a few seconds, kills the leader, resumes
/// the followers: what did the read-back find?
fn leader_dies_while_followers_are_stopped(acks: &str) -> (Value, Cluster, i32) {
    let cluster = Cluster::start(3, &[]);
    let topic = format!("divergence-{acks}");
    let dir = tempfile::tempdir().unwrap();
    // Create the topic and learn its leader before the faults are planned.
    produce(
        dir.path(),
        &cluster,
        &[
            "--topic",
            &topic,
            "--num-records",
            "100",
            "--throughput",
            "500",
            "--acks",
            "all",
        ],
    );
    let p = cluster.wait_for(
        &topic,
        0,
        Duration::from_secs(10),
        "all replicas in sync",
        |p| p.isr.len() == 3,
    );
    let followers: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| *r != p.leader)
        .collect();
    let steps = [
        format!("at=1s stop node:{} for=4s", followers[0]),
        format!("at=1s stop node:{} for=4s", followers[1]),
        format!("at=4s kill node:{} for=3s loss_expected=true", p.leader),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--topic",
        &topic,
        "--throughput",
        "500",
        "--acks",
        acks,
        "--duration",
        "14s",
    ];
    for s in &steps {
        args.extend(["--fault", s.as_str()]);
    }
    let (s, _) = produce(dir.path(), &cluster, &args);
    (s, cluster, p.leader)
}

#[test]
fn acks_1_loses_acknowledged_records_when_the_leader_dies_and_the_old_leader_truncates() {
    let (s, cluster, old_leader) = leader_dies_while_followers_are_stopped("1");
    let d = &s["durability"];
    assert!(
        d["acked_lost"].as_u64().unwrap() > 100,
        "acks=1 should lose what only the leader had: {d}"
    );
    // The restarted old leader fetches from the new one and cuts the suffix nobody else has.
    let topic = "divergence-1";
    cluster.wait_for(
        topic,
        0,
        Duration::from_secs(30),
        "the old leader rejoins the ISR",
        |p| p.isr.contains(&old_leader),
    );
    let truncated = cluster
        .events(old_leader)
        .into_iter()
        .any(|e| e["event"] == "truncated" && e["topic"] == topic);
    assert!(
        truncated,
        "node {old_leader} logged no truncation:\n{:?}",
        cluster.events(old_leader)
    );
}

#[test]
fn acks_all_loses_nothing_when_the_leader_dies_and_followers_were_stopped() {
    let (s, _cluster, _) = leader_dies_while_followers_are_stopped("all");
    let d = &s["durability"];
    assert_eq!(d["acked_lost"], 0, "{d}");
    assert!(d["acked"].as_u64().unwrap() > 1_000, "{d}");
}

#[test]
fn a_leader_sigterm_moves_leadership_within_a_second() {
    let cluster = Cluster::start(3, &["--min-insync-replicas", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let (s, stderr) = produce(
        dir.path(),
        &cluster,
        &[
            "--topic",
            "rolling",
            "--throughput",
            "500",
            "--acks",
            "all",
            "--idempotence",
            "--duration",
            "8s",
            "--fault",
            "at=3s terminate leader-of:rolling/0",
        ],
    );
    let f = &s["faults"][0];
    assert!(f["errors"].as_array().unwrap().is_empty(), "{f}\n{stderr}");
    let gap = f["produce"]["ack_gap_ms"].as_f64().unwrap();
    assert!(
        gap < 1_000.0,
        "a controlled shutdown should cost under a second, not {gap} ms\n{stderr}\n{}\n{:#?}",
        cluster.logs(),
        (1..=3).map(|id| cluster.events(id)).collect::<Vec<_>>()
    );
    assert_eq!(s["durability"]["acked_lost"], 0);
    let node = f["node"].as_i64().unwrap() as i32;
    let steps: Vec<Value> = cluster
        .events(node)
        .into_iter()
        .filter(|e| {
            e["event"]
                .as_str()
                .is_some_and(|n| n.starts_with("controlled_shutdown"))
        })
        .collect();
    assert!(
        !steps.is_empty(),
        "node {node} logged no controlled shutdown steps"
    );
}
