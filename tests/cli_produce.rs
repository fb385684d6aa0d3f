//! `kbench produce` through the command line: Kafka's lines, kbench's block, result files, and
//! what each producer flag does to the records (read back from a test-owned mock cluster).

mod common;

use std::time::Duration;

use common::*;
use kbench::load::stamp::{Stamp, STAMP_LEN};

#[test]
fn produces_the_requested_records_with_kafka_lines_and_result_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = kbench(
        dir.path(),
        &[
            "produce",
            "--num-records",
            "3000",
            "--record-size",
            "100",
            "--throughput",
            "1500",
            "--reporting-interval",
            "500ms",
        ],
    )
    .assert()
    .success()
    .get_output()
    .clone();
    assert!(
        !lines_matching(&out.stdout, KAFKA_INTERVAL_LINE).is_empty(),
        "no interval line:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(lines_matching(&out.stdout, KAFKA_TOTAL_LINE).len(), 1);
    assert!(lines_matching(&out.stdout, r"^3000 records sent, ").len() == 1);
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in ["p99.99", "send delay", "open model at 1500 records/s"] {
        assert!(text.contains(needle), "missing '{needle}' in:\n{text}");
    }
    let s = summary(dir.path());
    let p = &s["phases"][0]["produce"];
    assert_eq!(p["records"], 3000);
    assert_eq!(p["bytes"], 300_000);
    assert_eq!(s["latency_model"], "open");
    assert_eq!(p["latency_us"]["count"], 3000);
    assert!(p["latency_us"]["p99"].as_u64().unwrap() >= p["latency_us"]["p50"].as_u64().unwrap());
    assert_eq!(s["complete"], true);

    let run = run_dir(dir.path());
    let csv = std::fs::read_to_string(run.join("timeseries.csv")).unwrap();
    assert!(csv.lines().count() >= 3, "{csv}");
    assert!(csv.lines().next().unwrap().contains("produce_p99_us"));
    let hlog = std::fs::read(run.join("latency.hlog")).unwrap();
    let intervals = hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&hlog)
        .filter(|e| {
            matches!(
                e,
                Ok(hdrhistogram::serialization::interval_log::LogEntry::Interval(_))
            )
        })
        .count();
    assert!(intervals >= 3, "{intervals} hlog intervals");
}

#[test]
fn closed_model_measures_from_the_send_call_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = kbench(
        dir.path(),
        &[
            "produce",
            "--num-records",
            "5000",
            "--record-size",
            "64",
            "--throughput",
            "-1",
        ],
    )
    .assert()
    .success()
    .get_output()
    .clone();
    assert!(String::from_utf8_lossy(&out.stdout).contains("closed model (--throughput -1)"));
    let s = summary(dir.path());
    assert_eq!(s["latency_model"], "closed");
    assert_eq!(s["phases"][0]["produce"]["records"], 5000);
    assert_eq!(s["phases"][0]["produce"]["send_delay_us"]["count"], 0);
}

#[test]
fn warmup_records_are_left_out_of_the_summary_but_kept_in_the_time_series() {
    let dir = tempfile::tempdir().unwrap();
    let out = kbench(
        dir.path(),
        &[
            "produce",
            "--num-records",
            "2000",
            "--warmup-records",
            "500",
            "--record-size",
            "100",
            "--throughput",
            "2000",
            "--reporting-interval",
            "200ms",
        ],
    )
    .assert()
    .success()
    .get_output()
    .clone();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Warmup first 500 records. Steady state results will print after the complete test summary."));
    assert_eq!(
        lines_matching(&out.stdout, r"^2000 records sent, ").len(),
        1,
        "{text}"
    );
    assert_eq!(
        lines_matching(&out.stdout, r"^1500 steady state records sent, ").len(),
        1,
        "{text}"
    );
    let s = summary(dir.path());
    assert_eq!(s["phases"][0]["produce"]["records"], 1500);
    let csv = std::fs::read_to_string(run_dir(dir.path()).join("timeseries.csv")).unwrap();
    let warm: u64 = csv
        .lines()
        .filter(|l| l.contains(",warmup,"))
        .map(|l| l.split(',').nth(3).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(warm, 500, "{csv}");
}

#[test]
fn duration_and_warmup_time_bound_the_run() {
    let dir = tempfile::tempdir().unwrap();
    kbench(
        dir.path(),
        &[
            "produce",
            "--duration",
            "2s",
            "--warmup",
            "1s",
            "--record-size",
            "100",
            "--throughput",
            "500",
        ],
    )
    .assert()
    .success();
    let s = summary(dir.path());
    let records = s["phases"][0]["produce"]["records"].as_u64().unwrap();
    assert!(
        (990..=1010).contains(&records),
        "2 s at 500/s after the warm-up gave {records}"
    );
    let secs = s["phases"][0]["duration_sec"].as_f64().unwrap();
    assert!((1.9..3.0).contains(&secs), "measured phase {secs} s");
}

#[test]
fn record_size_random_ratio_and_keys_shape_the_records() {
    let cluster = TestCluster::start("shape", 4);
    let dir = tempfile::tempdir().unwrap();
    kbench(
        dir.path(),
        &[
            "produce",
            "--bootstrap-server",
            &cluster.bootstrap,
            "--topic",
            "shape",
            "--num-records",
            "400",
            "--record-size",
            "200",
            "--payload-random-ratio",
            "0",
            "--throughput",
            "-1",
            "--keys",
            "round-robin:4",
        ],
    )
    .assert()
    .success();
    let records = read_all(&cluster.bootstrap, "shape", 400, Duration::from_secs(20));
    assert_eq!(records.len(), 400);
    let mut keys = std::collections::BTreeSet::new();
    for (key, value, _) in &records {
        assert_eq!(value.len(), 200);
        assert!(
            value[STAMP_LEN..].iter().all(|&b| b == 0),
            "ratio 0 means zeros after the stamp"
        );
        let stamp = Stamp::read(value).expect("stamped");
        assert_eq!(stamp.producer_id, 0);
        keys.insert(String::from_utf8(key.clone().expect("keyed")).unwrap());
    }
    assert_eq!(keys.into_iter().collect::<Vec<_>>(), ["0", "1", "2", "3"]);
}

#[test]
fn null_keys_sequential_keys_and_payload_files() {
    let cluster = TestCluster::start("files", 2);
    let dir = tempfile::tempdir().unwrap();
    let payloads = dir.path().join("payloads.txt");
    std::fs::write(&payloads, "alpha|beta|gamma").unwrap();
    kbench(
        dir.path(),
        &[
            "produce",
            "--bootstrap-server",
            &cluster.bootstrap,
            "--topic",
            "files",
            "--num-records",
            "90",
            "--payload-file",
            payloads.to_str().unwrap(),
            "--payload-delimiter",
            "|",
            "--throughput",
            "-1",
            "--keys",
            "sequential",
            "--producers",
            "3",
        ],
    )
    .assert()
    .success();
    let records = read_all(&cluster.bootstrap, "files", 90, Duration::from_secs(20));
    assert_eq!(records.len(), 90);
    let mut producers = std::collections::BTreeSet::new();
    for (key, value, _) in &records {
        let body = std::str::from_utf8(&value[STAMP_LEN..]).unwrap();
        assert!(["alpha", "beta", "gamma"].contains(&body), "{body}");
        let stamp = Stamp::read(value).unwrap();
        producers.insert(stamp.producer_id);
        assert_eq!(key.as_deref(), Some(stamp.seq.to_string().as_bytes()));
    }
    assert_eq!(producers.len(), 3, "three producers each sent a share");

    let cluster2 = TestCluster::start("nulls", 1);
    let dir2 = tempfile::tempdir().unwrap();
    kbench(
        dir2.path(),
        &[
            "produce",
            "--bootstrap-server",
            &cluster2.bootstrap,
            "--topic",
            "nulls",
            "--num-records",
            "10",
            "--record-size",
            "50",
            "--throughput",
            "-1",
        ],
    )
    .assert()
    .success();
    let records = read_all(&cluster2.bootstrap, "nulls", 10, Duration::from_secs(20));
    assert_eq!(records.len(), 10);
    assert!(
        records.iter().all(|(k, _, _)| k.is_none()),
        "--keys none gives null keys"
    );
}

#[test]
fn records_the_broker_refuses_are_errors_in_both_latency_models() {
    // The client allows 3 MB records and the bundled broker 1 MiB: librdkafka sends each record
    // and the broker refuses it, so every delivery report carries the error. The closed model
    // reads the reports a batch at a time off the client's queue, the open model one by one
    // through rdkafka: both must count them, keep the summary, and fail naming the error.
    for throughput in ["-1", "50"] {
        let dir = tempfile::tempdir().unwrap();
        let out = kbench(
            dir.path(),
            &[
                "produce",
                "--num-records",
                "5",
                "--record-size",
                "1100000",
                "--throughput",
                throughput,
                "--producer-props",
                "message.max.bytes=3000000",
            ],
        )
        .timeout(Duration::from_secs(60))
        .assert()
        .code(2)
        .get_output()
        .clone();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no record was acknowledged (5 failed; last error: Message production error: MessageSizeTooLarge"),
            "--throughput {throughput}: {err}"
        );
        let s = summary(dir.path());
        let p = &s["phases"][0]["produce"];
        assert_eq!(p["errors"], 5, "--throughput {throughput}: {p}");
        assert_eq!(p["records"], 0, "--throughput {throughput}: {p}");
    }
}

#[test]
fn client_properties_from_flags_and_files_reach_librdkafka() {
    let dir = tempfile::tempdir().unwrap();
    let props = dir.path().join("producer.properties");
    // A limit below the record size: every send must fail, proving the file was applied.
    std::fs::write(&props, "# test\nmessage.max.bytes=1000\n").unwrap();
    let out = kbench(
        dir.path(),
        &[
            "produce",
            "--num-records",
            "10",
            "--record-size",
            "2000",
            "--throughput",
            "-1",
            "--producer.config",
            props.to_str().unwrap(),
        ],
    )
    .assert()
    .code(2)
    .get_output()
    .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no record was acknowledged"), "{err}");

    // The convenience flags and --producer-props are applied and recorded in the summary.
    let dir = tempfile::tempdir().unwrap();
    kbench(
        dir.path(),
        &[
            "produce",
            "--num-records",
            "200",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--acks",
            "all",
            "--batch-size",
            "16KiB",
            "--linger-ms",
            "2",
            "--compression-type",
            "lz4",
            "--idempotence",
            "--producer-props",
            "client.id=kbench-test",
            "queue.buffering.max.messages=5000",
        ],
    )
    .assert()
    .success();
    let s = summary(dir.path());
    let props = &s["config"]["producer"]["props"];
    assert_eq!(props["acks"], "all");
    assert_eq!(props["batch.size"], "16384");
    assert_eq!(props["linger.ms"], "2");
    assert_eq!(props["compression.type"], "lz4");
    assert_eq!(props["enable.idempotence"], "true");
    assert_eq!(props["client.id"], "kbench-test");
    assert_eq!(s["phases"][0]["produce"]["records"], 200);
}

#[test]
fn every_compression_codec_and_acks_level_produces() {
    for (codec, acks) in [
        ("none", "0"),
        ("gzip", "1"),
        ("snappy", "all"),
        ("lz4", "1"),
        ("zstd", "all"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        kbench(
            dir.path(),
            &[
                "produce",
                "--num-records",
                "300",
                "--record-size",
                "512",
                "--payload-random-ratio",
                "0.3",
                "--throughput",
                "-1",
                "--compression-type",
                codec,
                "--acks",
                acks,
            ],
        )
        .assert()
        .success();
        let s = summary(dir.path());
        assert_eq!(
            s["phases"][0]["produce"]["records"], 300,
            "{codec} acks={acks}"
        );
        assert_eq!(
            s["phases"][0]["produce"]["errors"], 0,
            "{codec} acks={acks}"
        );
    }
}

#[test]
fn host_figures_are_sampled_during_the_run() {
    let dir = tempfile::tempdir().unwrap();
    kbench(
        dir.path(),
        &[
            "produce",
            "--duration",
            "3s",
            "--record-size",
            "1000",
            "--throughput",
            "2000",
            "--name",
            "hosty",
        ],
    )
    .assert()
    .success();
    assert!(run_dir(dir.path())
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .ends_with("-hosty"));
    let s = summary(dir.path());
    let h = &s["phases"][0]["host"];
    assert!(h["samples"].as_u64().unwrap() >= 2, "{h}");
    assert!(h["rss_bytes_max"].as_u64().unwrap() > 0);
    assert!(
        h["net_interfaces"]["lo"]["rx_bytes_per_sec"]
            .as_f64()
            .unwrap()
            > 0.0,
        "loopback traffic: {h}"
    );
    assert!(!h["cpu_pct_per_core_avg"].as_array().unwrap().is_empty());
}

#[test]
fn the_same_seed_gives_the_same_keys() {
    let keys_of = |seed: &str| {
        let cluster = TestCluster::start("seeded", 1);
        let dir = tempfile::tempdir().unwrap();
        kbench(
            dir.path(),
            &[
                "produce",
                "--bootstrap-server",
                &cluster.bootstrap,
                "--topic",
                "seeded",
                "--num-records",
                "50",
                "--record-size",
                "40",
                "--throughput",
                "-1",
                "--keys",
                "uniform:1000000",
                "--seed",
                seed,
            ],
        )
        .assert()
        .success();
        read_all(&cluster.bootstrap, "seeded", 50, Duration::from_secs(20))
            .into_iter()
            .map(|(k, _, _)| k.unwrap())
            .collect::<Vec<_>>()
    };
    let a = keys_of("7");
    assert_eq!(a.len(), 50);
    assert_eq!(a, keys_of("7"));
    assert_ne!(a, keys_of("8"));
}

#[test]
fn fails_with_a_replication_factor_the_cluster_cannot_meet() {
    let dir = tempfile::tempdir().unwrap();
    let out = kbench(
        dir.path(),
        &[
            "produce",
            "--topic",
            "rf3",
            "--replication-factor",
            "3",
            "--num-records",
            "1",
            "--record-size",
            "100",
            "--throughput",
            "-1",
        ],
    )
    .assert()
    .code(2)
    .get_output()
    .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot create topic 'rf3'") && err.contains("--replication-factor"),
        "{err}"
    );
}

#[test]
fn bootstrap_servers_from_a_properties_file_name_the_cluster() {
    let cluster = TestCluster::start("fromfile", 1);
    let dir = tempfile::tempdir().unwrap();
    let props = dir.path().join("client.properties");
    std::fs::write(&props, format!("bootstrap.servers={}\n", cluster.bootstrap)).unwrap();
    let out_dir = dir.path().join("out");
    kbench(
        &out_dir,
        &[
            "produce",
            "--topic",
            "fromfile",
            "--num-records",
            "20",
            "--record-size",
            "50",
            "--throughput",
            "-1",
            "--producer.config",
            props.to_str().unwrap(),
        ],
    )
    .assert()
    .success();
    let s = summary(&out_dir);
    assert_eq!(s["config"]["target_kind"], "external");
    assert_eq!(s["config"]["bootstrap_servers"], cluster.bootstrap.as_str());
    assert!(
        s["config"]["target"].get("embedded").is_none(),
        "no embedded kind for an external target"
    );
    assert_eq!(
        read_all(&cluster.bootstrap, "fromfile", 20, Duration::from_secs(20)).len(),
        20
    );
}
