//! The Java client, Kafka's reference implementation, against kbench's bundled broker
//! (`kbench broker`, run as a child process): the official `ProducerPerformance`
//! (kafka-producer-perf-test) with the Java producer's defaults (idempotence on, acks=all) and
//! with each codec, `ConsumerPerformance` (kafka-consumer-perf-test) reading it all back, and a
//! consumer group of three Java consumers (tests/peers/java/GroupConsumer.java).
//!
//! The jars come from `scripts/kafka.sh fetch`. Without Java or Maven the tests skip loudly,
//! except under `CI`, where they fail.

mod common;
mod kafka_common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kafka_common::*;
use serde_json::Value;

const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// `kafka-producer-perf-test` against `bootstrap`; returns its stdout. `props` go through
/// `--command-property`.
fn producer_perf(bootstrap: &str, topic: &str, n: u64, props: &[&str]) -> String {
    producer_perf_with(bootstrap, topic, n, &[], props)
}

/// `producer_perf` with extra tool arguments (`args`) before the properties.
fn producer_perf_with(
    bootstrap: &str,
    topic: &str,
    n: u64,
    args: &[&str],
    props: &[&str],
) -> String {
    let started = Instant::now();
    let mut cmd = java_tool("producer-perf");
    cmd.args(["--topic", topic, "--num-records", &n.to_string()])
        .args(["--record-size", "100", "--throughput", "-1"])
        .args(["--bootstrap-server", bootstrap, "--print-metrics"])
        .args(args);
    if !props.is_empty() {
        cmd.arg("--command-property").args(props);
    }
    let what = format!(
        "kafka-producer-perf-test {} {}",
        args.join(" "),
        props.join(" ")
    );
    let out = run_bounded(&mut cmd, TOOL_TIMEOUT, &what).success(&what);
    eprintln!("{what}: {:.1} s", started.elapsed().as_secs_f64());

    let total = common::lines_matching(out.stdout.as_bytes(), common::KAFKA_TOTAL_LINE);
    assert_eq!(total.len(), 1, "{what}: one total line in\n{}", out.stdout);
    assert!(
        total[0].starts_with(&format!("{n} records sent, ")),
        "{what}: {}",
        total[0]
    );
    // Every record acknowledged at the first attempt: no errors, no retries, no split batches.
    for metric in [
        "producer-metrics:record-error-total:",
        "producer-metrics:record-retry-total:",
        "producer-metrics:batch-split-total:",
    ] {
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(metric))
            .unwrap_or_else(|| panic!("{what}: no {metric} in\n{}", out.stdout));
        let value: f64 = line
            .rsplit(':')
            .next()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{what}: {line}"));
        assert_eq!(value, 0.0, "{what}: {line}");
    }
    out.stdout
}

/// `kafka-consumer-perf-test` reading `n` records of `topic`; returns the records it counted.
fn consumer_perf(bootstrap: &str, topic: &str, n: u64) -> u64 {
    consumer_perf_with(bootstrap, topic, n, &[])
}

/// `consumer_perf` with consumer properties (`--command-property`).
fn consumer_perf_with(bootstrap: &str, topic: &str, n: u64, props: &[&str]) -> u64 {
    let started = Instant::now();
    let mut cmd = java_tool("consumer-perf");
    cmd.args(["--bootstrap-server", bootstrap, "--topic", topic])
        .args(["--num-records", &n.to_string(), "--timeout", "30000"]);
    if !props.is_empty() {
        cmd.arg("--command-property").args(props);
    }
    let out = run_bounded(&mut cmd, TOOL_TIMEOUT, "kafka-consumer-perf-test")
        .success("kafka-consumer-perf-test");
    eprintln!(
        "kafka-consumer-perf-test: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, ...
    let mut lines = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("start.time"));
    let header = lines
        .next()
        .unwrap_or_else(|| panic!("no header in\n{}", out.stdout));
    let column = header
        .split(", ")
        .position(|c| c == "data.consumed.in.nMsg")
        .unwrap_or_else(|| panic!("no data.consumed.in.nMsg in {header}"));
    let row = lines
        .next()
        .unwrap_or_else(|| panic!("no data row in\n{}", out.stdout));
    row.split(", ")
        .nth(column)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no record count in {row}"))
}

#[test]
fn java_producer_perf_with_its_defaults_is_read_back_whole_by_consumer_perf() {
    if !java_peers_available("java_producer_perf_with_its_defaults") {
        return;
    }
    fetch_kafka();
    let broker = BundledBroker::start(&[]);
    const N: u64 = 20_000;
    let topic = "java-perf-defaults";
    // No producer settings: the Java producer's own defaults, idempotence on and acks=all.
    producer_perf(&broker.bootstrap, topic, N, &[]);
    let ends = end_offsets(&broker.bootstrap, topic);
    assert_eq!(ends, vec![N as i64], "end offsets of {topic}");
    assert_eq!(consumer_perf(&broker.bootstrap, topic, N), N);
}

/// The value of a `--print-metrics` line (`group:name:{tags} : value` or `group:name: value`).
fn printed_metric(stdout: &str, prefix: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{stdout}"));
    line.rsplit(':')
        .next()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{line}"))
}

/// The Java producer in transactions against the bundled broker (issue 11): Java 4.x reads no
/// `transaction.version` feature from ApiVersions, so it runs the classic flow
/// (AddPartitionsToTxn, EndTxn), committing every 200 ms.
#[test]
fn java_producer_perf_with_a_transactional_id_commits_records_a_read_committed_consumer_reads() {
    if !java_peers_available("java_producer_perf_with_a_transactional_id") {
        return;
    }
    fetch_kafka();
    // No initial rebalance delay: one consumer, nothing to wait for.
    let broker = BundledBroker::start(&["--group-initial-rebalance-delay-ms", "0"]);
    const N: u64 = 10_000;
    let topic = "java-perf-txn";
    create_topic(&broker.bootstrap, topic, 2);
    let txn = [
        "--transactional-id",
        "java-perf-txn",
        "--transaction-duration-ms",
        "200",
    ];
    let out = producer_perf_with(&broker.bootstrap, topic, N, &txn, &[]);
    assert!(
        printed_metric(&out, "producer-metrics:txn-commit-time-ns-total:") > 0.0,
        "the producer committed transactions"
    );
    // Every commit left a COMMIT marker in each partition it wrote to: offsets beyond the
    // records, which no consumer receives.
    let ends: i64 = end_offsets(&broker.bootstrap, topic).iter().sum();
    assert!(ends > N as i64, "records plus markers: {ends}");
    let read = consumer_perf_with(
        &broker.bootstrap,
        topic,
        N,
        &["isolation.level=read_committed"],
    );
    assert_eq!(read, N, "read_committed records");
}

#[test]
fn java_producer_perf_with_each_codec_is_read_back_whole_by_consumer_perf() {
    if !java_peers_available("java_producer_perf_with_each_codec") {
        return;
    }
    fetch_kafka();
    let broker = BundledBroker::start(&[]);
    const N: u64 = 3000;
    let topic = "java-perf-codecs";
    create_topic(&broker.bootstrap, topic, 2);
    let codecs = ["gzip", "snappy", "lz4", "zstd"];
    for codec in codecs {
        let codec_prop = format!("compression.type={codec}");
        producer_perf(&broker.bootstrap, topic, N, &[&codec_prop, "linger.ms=5"]);
    }
    let total = N * codecs.len() as u64;
    let ends = end_offsets(&broker.bootstrap, topic);
    assert_eq!(
        ends.iter().sum::<i64>() as u64,
        total,
        "end offsets of {topic}: {ends:?}"
    );
    assert_eq!(consumer_perf(&broker.bootstrap, topic, total), total);
}

#[test]
fn java_consumer_group_of_three_splits_the_partitions_and_reads_each_record_once() {
    if !java_peers_available("java_consumer_group_of_three") {
        return;
    }
    fetch_kafka();
    let broker = BundledBroker::start(&["--group-initial-rebalance-delay-ms", "1000"]);
    let (topic, group) = ("java-group-of-3", "java-group-of-3");
    const N: u64 = 9000;
    create_topic(&broker.bootstrap, topic, 3);

    let started = Instant::now();
    let members: Vec<Bounded> = (0..3)
        .map(|i| {
            Bounded::spawn(
                java_tool("tests/peers/java/GroupConsumer.java")
                    .args(["--bootstrap-server", &broker.bootstrap])
                    .args(["--topic", topic, "--group", group])
                    .args(["--idle-ms", "5000", "--timeout-ms", "120000"]),
                &format!("GroupConsumer {i}"),
            )
        })
        .collect();

    // Produce only once the group is stable with one partition each, or the first member to
    // join could read everything before the others arrive.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = None;
    loop {
        last = describe_group(&broker.bootstrap, group).or(last);
        if last.as_ref().is_some_and(|g| g.one_partition_each(3)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bundled broker never showed {group} stable with 3 members of one partition \
             each within 90 s; last: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "group of three stable after {:.1} s: {last:?}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        last.unwrap().protocol,
        "range",
        "the Java consumer's first assignor"
    );

    let dir = tempfile::tempdir().unwrap();
    let n = N.to_string();
    common::kbench(
        dir.path(),
        &[
            "produce",
            "--bootstrap-server",
            &broker.bootstrap,
            "--topic",
            topic,
            "--num-records",
            &n,
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--keys",
            "round-robin:300",
            "--no-results",
        ],
    )
    .timeout(Duration::from_secs(60))
    .assert()
    .success();
    let ends = end_offsets(&broker.bootstrap, topic);
    assert_eq!(ends.iter().sum::<i64>() as u64, N, "end offsets {ends:?}");
    assert!(
        ends.iter().all(|&e| e > 0),
        "every partition got records: {ends:?}"
    );

    let reports: Vec<Value> = members
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let what = format!("GroupConsumer {i}");
            let out = m.wait(Duration::from_secs(90)).success(&what);
            let line = out.stdout.lines().last().unwrap_or_default();
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{what}: {e}: {line}\n{}", out.stderr))
        })
        .collect();
    eprintln!(
        "group of three done after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut owned = BTreeSet::new();
    let mut records = 0;
    for r in &reports {
        assert_eq!(r["error"], Value::Null, "{r}");
        let ever: Vec<i64> = r["ever_assigned_partitions"]
            .as_array()
            .expect("ever_assigned_partitions")
            .iter()
            .filter_map(Value::as_i64)
            .collect();
        assert_eq!(ever.len(), 1, "one partition per member, no reshuffle: {r}");
        let p = ever[0];
        assert!(
            owned.insert(p),
            "partition {p} went to two members: {reports:?}"
        );
        let end = ends[p as usize];
        let stats = &r["partitions"][p.to_string()];
        assert_eq!(stats["records"], end, "{r}");
        assert_eq!(stats["first_offset"], 0, "{r}");
        assert_eq!(stats["last_offset"], end - 1, "{r}");
        assert_eq!(stats["redelivered"], 0, "{r}");
        assert_eq!(stats["committed_offset"], end, "{r}");
        records += r["records"].as_u64().expect("records");
    }
    assert_eq!(owned, BTreeSet::from([0, 1, 2]));
    assert_eq!(records, N);
    // What the members committed is what the broker hands back (OffsetFetch).
    assert_eq!(committed_offsets(&broker.bootstrap, group, topic, 3), ends);
}
