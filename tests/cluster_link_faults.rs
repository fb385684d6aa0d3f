//! Link faults and a consumer leaving on the bundled cluster, as real clients see them:
//! `kbench cluster --nodes 3 --proxied` puts a client proxy and a peer proxy in front of every
//! node, and fault steps `side=client|peer` on the cluster file cut one or the other.
//!
//! * A blackhole of a partition leader's peer proxy ("leader isolated from its followers")
//!   under acks=all, RF 3, min ISR 2: the followers fall out of the ISR after the replica lag
//!   time, acks=all stalls (NOT_ENOUGH_REPLICAS, retried) until the heal, the ISR comes back,
//!   nothing acknowledged is lost.
//! * A blackhole of the leader's client proxy ("clients cut off"): no failover (the leader
//!   epoch stays), the ISR stays whole, clients stall and resume, nothing lost. The cluster
//!   file of a proxied cluster matches the schema, a restarted node keeps its proxies, and
//!   stopping the cluster stops every proxy.
//! * A consumer leaving its group (`kbench e2e --embedded cluster:3`): the rebalance pause
//!   reported three ways, nothing lost.
//!
//! The two proxied tests take turns (each starts its own cluster; a blackhole of one node
//! must not land in the other's run).

mod cluster_support;
mod common;

use std::sync::Mutex;
use std::time::Duration;

use cluster_support::{alive, Cluster};
use serde_json::Value;

/// Held by each test that starts a proxied cluster.
static TURN: Mutex<()> = Mutex::new(());

/// The replica lag time given to the nodes: a follower cut off this long leaves the ISR
/// (checked every half of it, as Kafka does).
const LAG_MS: f64 = 1500.0;

fn proxied_cluster() -> Cluster {
    Cluster::start_proxied(
        3,
        &[
            "--replica-lag-time-max-ms",
            "1500",
            "--min-insync-replicas",
            "2",
        ],
    )
}

/// `kbench produce` through the client proxies with fault steps on the cluster file.
fn produce(dir: &std::path::Path, cluster: &Cluster, topic: &str, fault: &str) -> (Value, String) {
    let file = cluster.cluster_file();
    let out = common::kbench(
        dir,
        &[
            "produce",
            "--bootstrap-server",
            &cluster.bootstrap,
            "--cluster-file",
            file.to_str().unwrap(),
            "--topic",
            topic,
            "--replication-factor",
            "3",
            "--record-size",
            "100",
            "--throughput",
            "200",
            "--acks",
            "all",
            "--idempotence",
            "--reporting-interval",
            "1s",
            "--duration",
            "10s",
            "--fault",
            fault,
        ],
    )
    .timeout(Duration::from_secs(120))
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "produce failed ({}):\n{stderr}\n{}",
        out.status,
        cluster.logs()
    );
    (common::summary(dir), stderr)
}

/// Nothing acknowledged lost, nothing duplicated, every partition read back.
fn assert_nothing_lost(s: &Value, stderr: &str) {
    let d = &s["durability"];
    assert_eq!(d["complete"], true, "{d}\n{stderr}");
    assert_eq!(d["acked_lost"], 0, "{d}\n{stderr}");
    assert_eq!(d["duplicated"], 0, "{d}\n{stderr}");
    assert!(d["acked"].as_u64().unwrap() > 1000, "{d}\n{stderr}");
}

/// The ISRs of `topic`/0 that node `id` recorded, as `(event, isr)` in order.
fn isr_events(cluster: &Cluster, id: i32, topic: &str) -> Vec<(String, Vec<i64>)> {
    cluster
        .events(id)
        .iter()
        .filter(|e| e["topic"] == topic && e["partition"] == 0 && e["logged_by"] == id)
        .filter(|e| e["event"] == "isr_shrink" || e["event"] == "isr_expand")
        .map(|e| {
            let isr = e["isr"].as_array().unwrap().iter();
            (
                e["event"].as_str().unwrap().to_string(),
                isr.map(|n| n.as_i64().unwrap()).collect(),
            )
        })
        .collect()
}

#[test]
fn a_leader_cut_off_from_its_followers_stalls_acks_all_shrinks_the_isr_and_loses_nothing() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let cluster = proxied_cluster();
    let dir = tempfile::tempdir().unwrap();
    let (s, stderr) = produce(
        dir.path(),
        &cluster,
        "isolated",
        "at=2s blackhole leader-of:isolated/0 side=peer for=5s",
    );
    let f = &s["faults"][0];
    assert!(f["errors"].as_array().unwrap().is_empty(), "{f}");
    assert!(f["t_h_ms"].as_u64().is_some(), "not healed: {f}");
    let leader = f["node"].as_i64().unwrap() as i32;
    let p = &f["produce"];
    let gap = p["ack_gap_ms"].as_f64().unwrap();
    // The leader keeps acking until its followers are out of the ISR (the lag time), then
    // min ISR 2 refuses acks=all until the heal: at least the lag time, at most the
    // blackhole plus a few seconds to catch up.
    assert!(
        (LAG_MS * 0.8..=5_000.0 + 5_000.0).contains(&gap),
        "ack gap {gap} ms: {p}\n{stderr}"
    );
    assert!(
        p["latency_us"]["after"]["count"].as_u64().unwrap() > 100,
        "the producer did not carry on after the heal: {p}\n{stderr}"
    );
    assert_nothing_lost(&s, &stderr);
    // The leader dropped both followers from the ISR, then took them back.
    let isr = isr_events(&cluster, leader, "isolated");
    let shrunk = isr
        .iter()
        .position(|(e, isr)| e == "isr_shrink" && isr == &vec![leader as i64]);
    let all = || -> Vec<Value> {
        (1..=3)
            .flat_map(|id| cluster.events(id))
            .filter(|e| e["topic"] == "isolated")
            .collect()
    };
    assert!(
        shrunk.is_some(),
        "no shrink to [{leader}]: {isr:?}\n{:#?}\n{stderr}",
        all()
    );
    assert!(
        isr[shrunk.unwrap()..]
            .iter()
            .any(|(e, isr)| e == "isr_expand" && isr.len() == 3),
        "the ISR did not come back to 3: {isr:?}"
    );
    let state = cluster.wait_for(
        "isolated",
        0,
        Duration::from_secs(10),
        "the ISR back to 3",
        |s| s.isr.len() == 3,
    );
    assert_eq!(state.leader, leader, "no failover was expected: {state:?}");
}

#[test]
fn clients_cut_off_from_a_leader_stall_and_resume_without_a_failover() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let mut cluster = proxied_cluster();
    let file = validated_cluster_file(&cluster);
    check_proxied_entries(&file);
    let dir = tempfile::tempdir().unwrap();
    let (s, stderr) = produce(
        dir.path(),
        &cluster,
        "cutoff",
        "at=2s blackhole leader-of:cutoff/0 side=client for=4s",
    );
    let f = &s["faults"][0];
    assert!(f["errors"].as_array().unwrap().is_empty(), "{f}");
    let leader = f["node"].as_i64().unwrap() as i32;
    let p = &f["produce"];
    let gap = p["ack_gap_ms"].as_f64().unwrap();
    assert!(
        (3_000.0..=4_000.0 + 4_000.0).contains(&gap),
        "clients should stall for about the 4 s blackhole: ack gap {gap} ms\n{stderr}"
    );
    assert!(
        p["latency_us"]["after"]["count"].as_u64().unwrap() > 100,
        "the producer did not resume: {p}\n{stderr}"
    );
    assert_nothing_lost(&s, &stderr);
    // No failover: the quorum and the followers never lost the leader, whose epoch is the
    // one it was elected with when the topic was created.
    let state = cluster.partition("cutoff", 0).expect("metadata");
    let elections: Vec<Value> = (1..=3)
        .flat_map(|id| cluster.events(id))
        .filter(|e| e["event"] == "became_leader" && e["topic"] == "cutoff" && e["partition"] == 0)
        .collect();
    assert_eq!(elections.len(), 1, "{elections:?}");
    assert_eq!(
        (state.leader, i64::from(state.leader_epoch), state.isr.len()),
        (leader, elections[0]["leader_epoch"].as_i64().unwrap(), 3),
        "{state:?}"
    );
    assert!(
        isr_events(&cluster, leader, "cutoff").is_empty(),
        "the ISR changed under a client-side fault"
    );
    restart_keeps_the_proxies_and_stop_ends_them(&mut cluster, leader);
}

/// A restarted node keeps its proxies (same pids, still forwarding); stopping the cluster
/// stops every node and every proxy.
fn restart_keeps_the_proxies_and_stop_ends_them(cluster: &mut Cluster, id: i32) {
    let before = cluster.node(id);
    cluster.restart(id);
    let after = cluster.node(id);
    assert_ne!(before["pid"], after["pid"], "the node was not restarted");
    for side in ["client_proxy", "peer_proxy"] {
        assert_eq!(before[side], after[side], "{side} changed on restart");
        assert!(alive(after[side]["pid"].as_i64().unwrap() as i32), "{side}");
    }
    // Clients reach the restarted node through its client proxy again.
    let addr = after["bootstrap"].as_str().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while cluster_support::metadata(addr, "cutoff").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "node {id} does not answer through its client proxy {addr} after a restart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let file = cluster.file();
    let mut pids = Vec::new();
    for n in file["nodes"].as_array().unwrap() {
        pids.push(n["pid"].as_i64().unwrap() as i32);
        for side in ["client_proxy", "peer_proxy"] {
            pids.push(n[side]["pid"].as_i64().unwrap() as i32);
        }
    }
    cluster.stop();
    for pid in pids {
        cluster_support::wait_gone(pid, Duration::from_secs(5));
    }
}

/// The cluster file, validated against schema/cluster.schema.json.
fn validated_cluster_file(cluster: &Cluster) -> Value {
    let file = cluster.file();
    let schema: Value =
        serde_json::from_str(include_str!("../schema/cluster.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&file)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{file:#}\ndoes not match the schema:\n{}",
        errors.join("\n")
    );
    file
}

/// Each node: clients bootstrap from its client proxy, peers from its peer proxy, both
/// forwarding to its own listener; the node advertises its client proxy in Metadata.
fn check_proxied_entries(file: &Value) {
    let nodes = file["nodes"].as_array().unwrap();
    let client_proxies: Vec<&str> = nodes
        .iter()
        .map(|n| n["client_proxy"]["listen"].as_str().unwrap())
        .collect();
    assert_eq!(file["bootstrap"], client_proxies.join(","), "{file:#}");
    for n in nodes {
        assert_eq!(n["bootstrap"], n["client_proxy"]["listen"], "{n}");
        assert_eq!(n["peer"], n["peer_proxy"]["listen"], "{n}");
        assert_eq!(n["peer_direct"], n["direct"], "{n}");
        assert_ne!(n["bootstrap"], n["direct"], "{n}");
        for side in ["client_proxy", "peer_proxy"] {
            assert!(alive(n[side]["pid"].as_i64().unwrap() as i32), "{n}");
        }
        // Asked directly, the node names the client proxies as the brokers' addresses.
        let md = cluster_support::metadata(n["direct"].as_str().unwrap(), "cutoff")
            .expect("the node answers on its own listener");
        let mut advertised: Vec<String> = md
            .brokers
            .iter()
            .map(|b| format!("{}:{}", b.host, b.port))
            .collect();
        advertised.sort();
        let mut expected: Vec<String> = client_proxies.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(advertised, expected, "{n}");
    }
}

#[test]
fn a_consumer_leaving_on_the_bundled_cluster_reports_the_rebalance_pause_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::kbench(
        dir.path(),
        &[
            "e2e",
            "--embedded",
            "cluster:3",
            "--consumers",
            "3",
            "--partitions",
            "3",
            "--throughput",
            "300",
            "--record-size",
            "100",
            "--reporting-interval",
            "1s",
            "--duration",
            "9s",
            "--fault",
            "at=3s consumer-leave consumer:1",
        ],
    )
    .timeout(Duration::from_secs(120))
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{}\n{stderr}", out.status);
    let s = common::summary(dir.path());
    let f = &s["faults"][0];
    assert!(f["errors"].as_array().unwrap().is_empty(), "{f}");
    let r = &f["consume"]["rebalance"];
    // Three ways: revoke → assign (ConsumerPerformance's), old owner's last record → new
    // owner's first per partition, and the seconds with nothing consumed.
    assert!(r["rebalances"].as_u64().unwrap() >= 1, "{r}\n{stderr}");
    let revoke = r["revoke_to_assign_ms"]
        .as_f64()
        .expect("revoke_to_assign_ms");
    assert!((0.0..10_000.0).contains(&revoke), "{r}");
    let handed: Vec<f64> = r["handover_ms_per_partition"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    assert!(
        !handed.is_empty(),
        "the leaver's partition was not handed over: {r}\n{stderr}"
    );
    let handover = r["handover_ms"].as_f64().unwrap();
    assert!((0.0..8_000.0).contains(&handover), "{r}");
    assert!(r["group_idle_seconds"].as_u64().is_some(), "{r}");
    let d = &s["durability"];
    assert_eq!(d["complete"], true, "{d}");
    assert_eq!(d["acked_lost"], 0, "{d}");
    assert!(d["acked"].as_u64().unwrap() > 1000, "{d}");
}

#[test]
fn a_bad_advertised_peer_listener_is_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let d = data.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--node-id",
                "1",
                "--controller-quorum",
                "1@127.0.0.1:19091",
                "--data-dir",
                d,
                "--advertised-peer-listener",
                "127.0.0.1",
            ],
            "--advertised-peer-listener",
        ),
        // Only a node of a cluster has peers.
        (&["--advertised-peer-listener", "127.0.0.1:1"], "--node-id"),
    ];
    for (args, flag) in cases {
        let out = assert_cmd::Command::cargo_bin("kbench")
            .unwrap()
            .arg("broker")
            .args(*args)
            .timeout(Duration::from_secs(20))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(flag),
            "{args:?} should name {flag}: {stderr}"
        );
        assert!(
            !data.exists(),
            "{args:?} wrote the data dir before refusing"
        );
    }
}
