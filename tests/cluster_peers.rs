//! Real clients nobody here wrote against a 3-node bundled cluster (`kbench cluster`, one
//! process per node), topics with replication factor 3: librdkafka (rdkafka) with every codec,
//! kafka-python with acks=all, Kafka's own ProducerPerformance with acks=all and each codec
//! read back whole by ConsumerPerformance, and a consumer group whose coordinator's node is
//! killed: it keeps consuming and its committed offsets survive.

mod broker_support;
mod cluster_support;
mod common;
mod kafka_common;

use std::process::Command;
use std::time::Duration;

use broker_support::{assert_exactly_once, consume, produce, values};
use cluster_support::Cluster;

#[test]
fn rdkafka_produces_and_consumes_with_every_codec_at_replication_factor_3() {
    let cluster = Cluster::start(3, &["--min-insync-replicas", "2"]);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("rd-{codec}");
        let vals = values(&topic, 2_000);
        let (ok, failed) = produce(
            &cluster.bootstrap,
            &topic,
            &vals,
            &[("acks", "all"), ("compression.type", codec)],
        );
        assert_eq!((ok, failed), (2_000, 0), "{codec}\n{}", cluster.logs());
        let seen = consume(
            &cluster.bootstrap,
            &topic,
            &format!("g-{topic}"),
            2_000,
            Duration::from_secs(30),
            &[],
        );
        assert_exactly_once(&vals, &seen);
        let p = cluster.partition(&topic, 0).unwrap();
        assert_eq!((p.replicas.len(), p.isr.len()), (3, 3), "{codec}: {p:?}");
    }
}

#[test]
fn kafka_python_produces_with_acks_all_at_replication_factor_3() {
    if !broker_support::require_peer(
        broker_support::have_kafka_python(),
        "python3 with kafka-python",
    ) {
        return;
    }
    let cluster = Cluster::start(3, &["--min-insync-replicas", "2"]);
    let script = broker_support::peers_dir().join("kp_produce.py");
    let topic = "kp-cluster";
    let out = Command::new("python3")
        .args([
            script.to_str().unwrap(),
            &cluster.bootstrap,
            topic,
            "1000",
            "all",
            topic,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("acked 1000"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: Vec<String> = (0..1000).map(|i| format!("{topic}-{i:06}")).collect();
    let seen = consume(
        &cluster.bootstrap,
        topic,
        "g-kp",
        1000,
        Duration::from_secs(30),
        &[],
    );
    assert_exactly_once(&want, &seen);
}

#[test]
fn java_producer_perf_with_acks_all_and_each_codec_is_read_back_by_consumer_perf() {
    if !kafka_common::java_peers_available("java_producer_perf_on_a_bundled_cluster") {
        return;
    }
    kafka_common::fetch_kafka();
    let cluster = Cluster::start(3, &["--min-insync-replicas", "2"]);
    const N: u64 = 10_000;
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("java-{codec}");
        let mut cmd = kafka_common::java_tool("producer-perf");
        cmd.args(["--topic", &topic, "--num-records", &N.to_string()])
            .args([
                "--record-size",
                "100",
                "--throughput",
                "-1",
                "--bootstrap-server",
                &cluster.bootstrap,
            ])
            .args([
                "--command-property",
                "acks=all",
                &format!("compression.type={codec}"),
            ]);
        let out = kafka_common::run_bounded(
            &mut cmd,
            Duration::from_secs(120),
            "kafka-producer-perf-test",
        )
        .success("producer-perf");
        let total = common::lines_matching(out.stdout.as_bytes(), common::KAFKA_TOTAL_LINE);
        assert!(
            total
                .first()
                .is_some_and(|t| t.starts_with(&format!("{N} records sent, "))),
            "{codec}: {}",
            out.stdout
        );
        let p = cluster.partition(&topic, 0).unwrap();
        assert_eq!(
            p.replicas.len(),
            3,
            "auto-created with the cluster's default replication factor: {p:?}"
        );
        let mut cmd = kafka_common::java_tool("consumer-perf");
        cmd.args(["--bootstrap-server", &cluster.bootstrap, "--topic", &topic])
            .args(["--num-records", &N.to_string(), "--timeout", "30000"]);
        let out = kafka_common::run_bounded(
            &mut cmd,
            Duration::from_secs(120),
            "kafka-consumer-perf-test",
        )
        .success("consumer-perf");
        let header = out
            .stdout
            .lines()
            .find(|l| l.starts_with("start.time"))
            .expect("header");
        let column = header
            .split(", ")
            .position(|c| c == "data.consumed.in.nMsg")
            .unwrap();
        let row = out
            .stdout
            .lines()
            .skip_while(|l| !l.starts_with("start.time"))
            .nth(1)
            .expect("row");
        let n: u64 = row.split(", ").nth(column).unwrap().trim().parse().unwrap();
        assert_eq!(n, N, "{codec}");
    }
}

/// Java's String.hashCode, which Kafka uses to place a group on an offsets partition.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

#[test]
fn a_group_keeps_consuming_and_keeps_its_offsets_when_its_coordinator_node_is_killed() {
    let cluster = Cluster::start(3, &["--min-insync-replicas", "2"]);
    let topic = "grouped";
    let group = "g-survivor";
    let first = values("first", 1_000);
    assert_eq!(
        produce(&cluster.bootstrap, topic, &first, &[("acks", "all")]),
        (1_000, 0)
    );
    let seen = consume(
        &cluster.bootstrap,
        topic,
        group,
        1_000,
        Duration::from_secs(30),
        &[],
    );
    assert_exactly_once(&first, &seen);
    // The coordinator: the leader of the group's __consumer_offsets partition.
    let offsets = cluster_support::metadata(
        cluster.bootstrap.split(',').next().unwrap(),
        "__consumer_offsets",
    )
    .expect("metadata");
    let partitions = offsets.topics[0].partitions.len() as i32;
    assert!(
        partitions > 0,
        "no __consumer_offsets partitions: {offsets:?}"
    );
    // Kafka's Utils.abs: Math.abs, except that Integer.MIN_VALUE gives 0.
    let h = java_hash(group);
    let p = if h == i32::MIN { 0 } else { h.abs() } % partitions;
    let coordinator = cluster.partition("__consumer_offsets", p).unwrap().leader;
    cluster.kill9(coordinator);
    // Wait until the dead node is fenced and its offsets partition has a new leader: until then
    // the metadata still names it and librdkafka reports its refused connections to the
    // consumer as (transient) transport errors.
    cluster.wait_for(
        "__consumer_offsets",
        p,
        Duration::from_secs(20),
        "a new coordinator",
        |s| s.leader >= 0 && s.leader != coordinator,
    );
    // Offsets committed before the kill are where the group resumes: only the new records.
    let second = values("second", 1_000);
    let live: Vec<String> = (1..=3)
        .filter(|id| *id != coordinator)
        .map(|id| cluster.addr(id))
        .collect();
    let live = live.join(",");
    assert_eq!(
        produce(&live, topic, &second, &[("acks", "all")]),
        (1_000, 0),
        "{}",
        cluster.logs()
    );
    let seen = consume(&live, topic, group, 1_000, Duration::from_secs(45), &[]);
    assert_exactly_once(&second, &seen);
}
