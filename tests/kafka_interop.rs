//! kbench against Apache Kafka itself (issue 5): `produce`, `consume` and `e2e` with every acks
//! setting and compression codec, the idempotent producer, a consumer group of three, and the
//! SASL_SSL (SCRAM) listener. Every run must lose and duplicate nothing, and kbench's counts
//! must equal the end offsets that Kafka reports.
//!
//! One Kafka broker serves the whole test binary: `scripts/kafka.sh start` on free loopback
//! ports and a private state dir, on first use; a watchdog stops it when the binary exits.
//! Without Java or Maven the tests skip loudly, except under `CI`, where they fail.

mod common;
mod kafka_common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_common::*;
use serde_json::Value;

/// Runs kbench to completion (bounded) in a fresh results dir; returns (exit code, stdout,
/// stderr, the validated summary.json if one was written).
fn run(args: &[&str]) -> (i32, String, String, Option<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let out = common::kbench(dir.path(), args)
        .timeout(Duration::from_secs(90))
        .output()
        .expect("kbench runs");
    let code = out.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // A run that failed early may leave a run folder without a summary.
    let has_summary = std::fs::read_dir(dir.path()).is_ok_and(|d| {
        d.flatten()
            .any(|run| run.path().join("summary.json").is_file())
    });
    let summary = has_summary.then(|| common::summary(dir.path()));
    (code, stdout, stderr, summary)
}

/// Runs kbench and requires exit 0 and a summary.
fn run_ok(what: &str, args: &[&str]) -> Value {
    let started = Instant::now();
    let (code, stdout, stderr, summary) = run(args);
    assert_eq!(
        code,
        0,
        "{what}: kbench {} exited {code}\n--- stdout\n{stdout}\n--- stderr\n{}",
        args.join(" "),
        tail(&stderr, 40)
    );
    eprintln!("{what}: {:.1} s", started.elapsed().as_secs_f64());
    summary.unwrap_or_else(|| panic!("{what}: no summary.json\n{stdout}"))
}

fn u64_at(v: &Value, path: &str) -> u64 {
    v.pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no unsigned number at {path} in {v:#}"))
}

/// The consumer side of `summary` read exactly `n` records, each once and in order.
fn assert_consumed_exactly(what: &str, summary: &Value, n: u64) {
    let c = &summary["phases"][0]["consume"];
    for (field, want) in [
        ("records", n),
        ("lost", 0),
        ("duplicated", 0),
        ("reordered", 0),
        ("unstamped", 0),
        ("errors", 0),
    ] {
        assert_eq!(c[field], want, "{what}: consume.{field} in {c:#}");
    }
    assert_checks_pass(what, summary);
}

fn assert_checks_pass(what: &str, summary: &Value) {
    for check in summary["checks"].as_array().expect("checks") {
        assert_eq!(check["passed"], true, "{what}: check failed: {check}");
    }
}

fn assert_produced(what: &str, summary: &Value, n: u64, props: &[(&str, &str)]) {
    let p = &summary["phases"][0]["produce"];
    assert_eq!(p["records"], n, "{what}: produce.records in {p:#}");
    assert_eq!(p["errors"], 0, "{what}: produce.errors in {p:#}");
    let effective = &summary["config"]["producer"]["props"];
    for (k, v) in props {
        assert_eq!(
            effective[*k], *v,
            "{what}: effective producer {k} in {effective:#}"
        );
    }
}

/// Kafka's end offsets of `topic`, summed, equal `n`; returns them per partition.
fn assert_end_offsets(kafka: &Kafka, what: &str, topic: &str, n: u64) -> Vec<i64> {
    let ends = end_offsets(&kafka.bootstrap, topic);
    assert_eq!(
        ends.iter().sum::<i64>() as u64,
        n,
        "{what}: end offsets of {topic} per partition: {ends:?}"
    );
    ends
}

#[test]
fn produce_then_consume_with_acks_0_1_and_all_match_the_end_offsets() {
    let Some(kafka) = Kafka::shared("produce_then_consume_with_acks_0_1_and_all") else {
        return;
    };
    const N: u64 = 4000;
    for (acks, codec, idempotence) in [
        ("0", "none", false),
        ("1", "lz4", false),
        ("all", "zstd", true),
    ] {
        let what = format!("produce/consume acks={acks} {codec}");
        let topic = format!("interop-acks-{acks}");
        let n = N.to_string();
        let mut args = vec![
            "produce",
            "--bootstrap-server",
            &kafka.bootstrap,
            "--topic",
            &topic,
            "--partitions",
            "2",
            "--num-records",
            &n,
            "--record-size",
            "200",
            "--throughput",
            "-1",
            "--acks",
            acks,
            "--compression-type",
            codec,
        ];
        if idempotence {
            args.push("--idempotence");
        }
        let produced = run_ok(&format!("{what}: produce"), &args);
        let mut props = vec![("acks", acks), ("compression.type", codec)];
        if idempotence {
            props.push(("enable.idempotence", "true"));
        }
        assert_produced(&what, &produced, N, &props);
        let ends = assert_end_offsets(kafka, &what, &topic, N);
        assert_eq!(ends.len(), 2, "{what}: kbench created 2 partitions");

        let group = format!("interop-acks-{acks}-reader");
        let consumed = run_ok(
            &format!("{what}: consume"),
            &[
                "consume",
                "--bootstrap-server",
                &kafka.bootstrap,
                "--topic",
                &topic,
                "--group",
                &group,
                "--num-records",
                &n,
                "--timeout",
                "15000",
            ],
        );
        assert_consumed_exactly(&what, &consumed, N);
    }
}

#[test]
fn e2e_with_each_compression_codec_loses_and_duplicates_nothing() {
    let Some(kafka) = Kafka::shared("e2e_with_each_compression_codec") else {
        return;
    };
    const N: u64 = 3000;
    const RECORD_SIZE: u64 = 400;
    // acks 0 and 1 without idempotence, then the idempotent producer (it needs acks=all).
    for (codec, acks, idempotence) in [
        ("none", "0", false),
        ("gzip", "1", false),
        ("snappy", "all", true),
        ("lz4", "all", true),
        ("zstd", "all", true),
    ] {
        let what = format!("e2e {codec} acks={acks} idempotence={idempotence}");
        let topic = format!("interop-codec-{codec}");
        let (n, size) = (N.to_string(), RECORD_SIZE.to_string());
        let mut args = vec![
            "e2e",
            "--bootstrap-server",
            &kafka.bootstrap,
            "--topic",
            &topic,
            "--partitions",
            "2",
            "--num-records",
            &n,
            "--record-size",
            &size,
            // Mostly zeros, so a codec that really ran shrinks the log a lot.
            "--payload-random-ratio",
            "0.1",
            "--throughput",
            "6000",
            "--acks",
            acks,
            "--compression-type",
            codec,
        ];
        if idempotence {
            args.push("--idempotence");
        }
        let s = run_ok(&what, &args);
        let mut props = vec![("acks", acks), ("compression.type", codec)];
        if idempotence {
            props.push(("enable.idempotence", "true"));
        }
        assert_produced(&what, &s, N, &props);
        assert_consumed_exactly(&what, &s, N);
        assert_end_offsets(kafka, &what, &topic, N);

        // Kafka keeps the producer's batches as they came (compression.type=producer).
        let on_disk = kafka.log_bytes(&topic);
        let raw = N * RECORD_SIZE;
        assert!(
            on_disk > 0,
            "{what}: no log segment of {topic} under {:?}",
            kafka.state
        );
        if codec == "none" {
            assert!(
                on_disk >= raw,
                "{what}: {on_disk} log bytes < {raw} payload bytes"
            );
        } else {
            assert!(
                on_disk < raw / 2,
                "{what}: {on_disk} log bytes for {raw} payload bytes: not compressed?"
            );
        }
    }
}

#[test]
fn e2e_with_a_group_of_three_consumers_reads_every_record_once() {
    let Some(kafka) = Kafka::shared("e2e_with_a_group_of_three_consumers") else {
        return;
    };
    // Slow enough (about 6 s of load) that the watcher, which asks Kafka through a JVM tool
    // taking a second or two per call on a busy machine, sees the group while it is stable.
    const N: u64 = 9000;
    let (topic, group) = ("interop-group-of-3", "interop-kbench-group-of-3");

    // Watches the group from Kafka's side while kbench runs: did three members hold one
    // partition each?
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (done, bootstrap) = (done.clone(), kafka.bootstrap.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(120);
            while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                if let Some(g) = describe_group(&bootstrap, group) {
                    if g.one_partition_each(3) {
                        return (true, g);
                    }
                    seen.push(g);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            (
                false,
                seen.pop().unwrap_or(GroupSnapshot {
                    state: "never seen".into(),
                    protocol: String::new(),
                    assignments: Vec::new(),
                }),
            )
        })
    };
    let n = N.to_string();
    let s = run_ok(
        "e2e group of 3",
        &[
            "e2e",
            "--bootstrap-server",
            &kafka.bootstrap,
            "--topic",
            topic,
            "--partitions",
            "3",
            "--producers",
            "2",
            "--consumers",
            "3",
            "--group",
            group,
            "--keys",
            "uniform:300",
            "--num-records",
            &n,
            "--record-size",
            "100",
            "--throughput",
            "1500",
            "--acks",
            "all",
            "--idempotence",
            "--compression-type",
            "lz4",
        ],
    );
    done.store(true, Ordering::Relaxed);
    let (formed, last) = watcher.join().unwrap();
    assert!(
        formed,
        "Kafka never showed group {group} stable with 3 members of one partition each; last: {last:?}"
    );
    assert_eq!(s["config"]["consumer"]["consumers"], 3);
    assert_consumed_exactly("e2e group of 3", &s, N);
    let ends = assert_end_offsets(kafka, "e2e group of 3", topic, N);
    assert!(
        ends.len() == 3 && ends.iter().all(|&e| e > 0),
        "records on every partition: {ends:?}"
    );
}

#[test]
fn sasl_ssl_with_scram_works_with_the_properties_file_and_fails_without_it() {
    let Some(kafka) = Kafka::shared("sasl_ssl_with_scram") else {
        return;
    };
    let props = kafka.var("KBENCH_KAFKA_LIBRDKAFKA_PROPERTIES").to_string();
    let password = kafka.var("KBENCH_KAFKA_SCRAM_PASSWORD").to_string();
    let properties = std::fs::read_to_string(&props).expect("librdkafka properties file");
    assert!(
        properties.contains("security.protocol=SASL_SSL")
            && properties.contains("sasl.mechanisms=SCRAM-SHA-256"),
        "{props}:\n{properties}"
    );
    const N: u64 = 3000;
    let topic = "interop-sasl-ssl";
    let n = N.to_string();
    let s = run_ok(
        "e2e over SASL_SSL",
        &[
            "e2e",
            "--bootstrap-server",
            &kafka.sasl_ssl_bootstrap,
            "--producer.config",
            &props,
            "--consumer.config",
            &props,
            "--topic",
            topic,
            "--partitions",
            "2",
            "--num-records",
            &n,
            "--record-size",
            "200",
            "--throughput",
            "6000",
            "--acks",
            "all",
            "--idempotence",
            "--compression-type",
            "zstd",
        ],
    );
    assert_produced("SASL_SSL", &s, N, &[("security.protocol", "SASL_SSL")]);
    assert_eq!(
        s["config"]["consumer"]["props"]["security.protocol"], "SASL_SSL",
        "{:#}",
        s["config"]
    );
    assert_consumed_exactly("SASL_SSL", &s, N);
    assert_end_offsets(kafka, "SASL_SSL", topic, N);
    assert!(
        !s.to_string().contains(&password),
        "summary.json carries the SASL password"
    );

    // The same listener refuses a client without credentials, and one with a wrong password:
    // kbench must say so with exit code 2 within its connect timeout, not hang.
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong-password.properties");
    std::fs::write(
        &wrong,
        properties.replace(&format!("sasl.password={password}"), "sasl.password=not-it"),
    )
    .unwrap();
    let wrong = wrong.to_string_lossy().into_owned();
    for (what, extra) in [
        ("no credentials", vec![]),
        ("wrong password", vec!["--producer.config", wrong.as_str()]),
    ] {
        let started = Instant::now();
        let mut args = vec![
            "produce",
            "--bootstrap-server",
            &kafka.sasl_ssl_bootstrap,
            "--connect-timeout",
            "3s",
            "--topic",
            "interop-sasl-refused",
            "--num-records",
            "10",
            "--record-size",
            "100",
            "--throughput",
            "-1",
        ];
        args.extend(extra);
        let (code, stdout, stderr, _) = run(&args);
        assert_eq!(code, 2, "SASL_SSL with {what}:\n{stdout}\n{stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "SASL_SSL with {what} took {:?}",
            started.elapsed()
        );
        assert!(stderr.contains("error"), "{what}: {stderr}");
    }
}

#[test]
fn consume_counts_records_of_the_java_producer_as_unstamped() {
    let Some(kafka) = Kafka::shared("consume_counts_records_of_the_java_producer") else {
        return;
    };
    const N: u64 = 5000;
    let topic = "interop-java-written";
    let n = N.to_string();
    let started = Instant::now();
    let out = run_bounded(
        java_tool("producer-perf")
            .args([
                "--topic",
                topic,
                "--num-records",
                &n,
                "--record-size",
                "100",
            ])
            .args(["--throughput", "-1", "--bootstrap-server", &kafka.bootstrap]),
        Duration::from_secs(120),
        "kafka-producer-perf-test",
    )
    .success("kafka-producer-perf-test");
    assert!(
        out.stdout.contains(&format!("{N} records sent")),
        "{}",
        out.stdout
    );
    eprintln!(
        "kafka-producer-perf-test: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_end_offsets(kafka, "Java producer", topic, N);

    let s = run_ok(
        "consume of Java-written records",
        &[
            "consume",
            "--bootstrap-server",
            &kafka.bootstrap,
            "--topic",
            topic,
            "--num-records",
            &n,
            "--timeout",
            "15000",
        ],
    );
    let c = &s["phases"][0]["consume"];
    assert_eq!(c["records"], N, "{c:#}");
    assert_eq!(c["unstamped"], N, "{c:#}");
    assert_eq!(u64_at(&s, "/phases/0/consume/bytes"), N * 100, "{c:#}");
    assert_eq!(c["errors"], 0, "{c:#}");
}

#[test]
fn transactional_e2e_with_aborts_matches_kafkas_end_offsets_and_shows_no_aborted_record() {
    let Some(kafka) = Kafka::shared("transactional_e2e_with_aborts") else {
        return;
    };
    const N: u64 = 3000;
    const PER_TXN: u64 = 100;
    let what = "transactional e2e";
    let topic = "interop-txn";
    let n = N.to_string();
    let s = run_ok(
        what,
        &[
            "e2e",
            "--bootstrap-server",
            &kafka.bootstrap,
            "--topic",
            topic,
            "--num-records",
            &n,
            "--record-size",
            "200",
            "--throughput",
            "3000",
            "--transactional-id",
            "kbench-interop-txn",
            "--transaction-records",
            "100",
            "--transaction-abort-rate",
            "0.3",
            "--seed",
            "5",
        ],
    );
    let committed = u64_at(&s, "/phases/0/produce/transactions/committed");
    let aborted = u64_at(&s, "/phases/0/produce/transactions/aborted");
    assert_eq!(committed + aborted, N / PER_TXN, "{what}: transactions");
    assert!(aborted > 0, "{what}: no transaction aborted at rate 0.3");
    assert_eq!(u64_at(&s, "/phases/0/produce/records"), N, "{what}");
    assert_eq!(u64_at(&s, "/phases/0/consume/records"), committed * PER_TXN);
    for (field, want) in [
        ("aborted_seen", 0),
        ("lost", 0),
        ("duplicated", 0),
        ("reordered", 0),
    ] {
        assert_eq!(
            u64_at(&s, &format!("/verification/{field}")),
            want,
            "{what}: {field}"
        );
    }
    assert_checks_pass(what, &s);
    // Every record takes an offset, aborted ones too, and each transaction ends with one
    // control record (the topic has one partition).
    assert_end_offsets(kafka, what, topic, N + committed + aborted);

    // A standalone read_uncommitted consumer sees every record, the aborted ones counted apart;
    // a read_committed one sees exactly the committed ones.
    let all = run_ok(
        "consume read_uncommitted",
        &[
            "consume",
            "--bootstrap-server",
            &kafka.bootstrap,
            "--topic",
            topic,
            "--num-records",
            &n,
            "--isolation-level",
            "read_uncommitted",
            "--timeout",
            "15000",
        ],
    );
    assert_eq!(u64_at(&all, "/phases/0/consume/records"), N);
    assert_eq!(
        u64_at(&all, "/verification/aborted_seen"),
        aborted * PER_TXN
    );
    let committed_n = (committed * PER_TXN).to_string();
    let visible = run_ok(
        "consume read_committed",
        &[
            "consume",
            "--bootstrap-server",
            &kafka.bootstrap,
            "--topic",
            topic,
            "--num-records",
            &committed_n,
            "--isolation-level",
            "read_committed",
            "--timeout",
            "15000",
        ],
    );
    assert_eq!(
        u64_at(&visible, "/phases/0/consume/records"),
        committed * PER_TXN
    );
    assert_eq!(u64_at(&visible, "/verification/aborted_seen"), 0);
    // Aborted records are numbered apart, so the committed ones have no sequence gaps.
    for v in [&all, &visible] {
        assert_eq!(
            u64_at(v, "/verification/lost"),
            0,
            "{:#}",
            v["verification"]
        );
        assert_eq!(u64_at(v, "/verification/duplicated"), 0);
    }
    assert_checks_pass("consume read_committed", &visible);
}
