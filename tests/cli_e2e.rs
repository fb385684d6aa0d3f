//! `kbench e2e` and `kbench consume`: end-to-end latency, verification of every record, lag,
//! and Kafka's consumer lines.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn e2e_verifies_every_record_across_producers_consumers_and_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let out = kbench(
        dir.path(),
        &[
            "e2e",
            "--num-records",
            "6000",
            "--record-size",
            "200",
            "--throughput",
            "3000",
            "--producers",
            "2",
            "--consumers",
            "2",
            "--partitions",
            "4",
            "--keys",
            "uniform:100",
            "--reporting-interval",
            "500ms",
        ],
    )
    .timeout(Duration::from_secs(120))
    .assert()
    .success()
    .get_output()
    .clone();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("end-to-end"), "{text}");
    assert!(text.contains("verification (whole run): 0 lost"), "{text}");
    assert!(
        !lines_matching(
            &out.stdout,
            r"^\d+ records consumed, .* e2e .* p99, .* lag \d+\.$"
        )
        .is_empty(),
        "{text}"
    );
    let s = summary(dir.path());
    let c = &s["phases"][0]["consume"];
    assert_eq!(c["records"], 6000);
    assert_eq!(c["lost"], 0);
    assert_eq!(c["duplicated"], 0);
    assert_eq!(c["reordered"], 0);
    assert_eq!(c["e2e_latency_us"]["count"], 6000);
    assert!(c["max_lag"].is_u64(), "{c}");
    let e2e_p50 = c["e2e_latency_us"]["p50"].as_u64().unwrap();
    let produce_p50 = s["phases"][0]["produce"]["latency_us"]["p50"]
        .as_u64()
        .unwrap();
    assert!(e2e_p50 > 0 && produce_p50 > 0);
    assert_eq!(s["checks"][0]["passed"], true);
}

#[test]
fn e2e_with_a_warmup_keeps_warmup_records_out_of_the_consumer_summary() {
    let dir = tempfile::tempdir().unwrap();
    kbench(
        dir.path(),
        &[
            "e2e",
            "--num-records",
            "1000",
            "--warmup-records",
            "400",
            "--record-size",
            "100",
            "--throughput",
            "2000",
        ],
    )
    .timeout(Duration::from_secs(120))
    .assert()
    .success();
    let s = summary(dir.path());
    assert_eq!(s["phases"][0]["produce"]["records"], 600);
    assert_eq!(s["phases"][0]["consume"]["records"], 600);
    assert_eq!(
        s["phases"][0]["consume"]["lost"], 0,
        "verification covers warm-up records too"
    );
}

#[test]
fn consume_reads_what_produce_wrote_with_kafka_lines_and_e2e_latency() {
    let cluster = TestCluster::start("pc", 3);
    let dir = tempfile::tempdir().unwrap();
    kbench(
        dir.path(),
        &[
            "produce",
            "--bootstrap-server",
            &cluster.bootstrap,
            "--topic",
            "pc",
            "--num-records",
            "3000",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--producers",
            "2",
        ],
    )
    .assert()
    .success();

    let dir = tempfile::tempdir().unwrap();
    let out = kbench(
        dir.path(),
        &[
            "consume",
            "--bootstrap-server",
            &cluster.bootstrap,
            "--topic",
            "pc",
            "--num-records",
            "3000",
            "--consumers",
            "2",
            "--group",
            "g1",
            "--timeout",
            "15000",
        ],
    )
    .timeout(Duration::from_secs(90))
    .assert()
    .success()
    .get_output()
    .clone();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l == "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec"), "{text}");
    let rows = lines_matching(
        &out.stdout,
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3}, \d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3}, \d+\.\d{4}, \d+\.\d{4}, 3000, \d+\.\d{4}, \d+, \d+, \d+\.\d{4}, \d+\.\d{4}$",
    );
    assert_eq!(rows.len(), 1, "{text}");
    let s = summary(dir.path());
    let c = &s["phases"][0]["consume"];
    assert_eq!(c["records"], 3000);
    assert_eq!(c["e2e_latency_us"]["count"], 3000);
    assert_eq!(c["lost"], 0, "no gaps in the producers' sequences");
    assert_eq!(c["duplicated"], 0);
    assert_eq!(s["config"]["consumer"]["group"], "g1");

    // --from-latest with nothing new: Kafka's timeout warning, and a detailed header.
    let dir = tempfile::tempdir().unwrap();
    let out = kbench(
        dir.path(),
        &[
            "consume",
            "--bootstrap-server",
            &cluster.bootstrap,
            "--topic",
            "pc",
            "--num-records",
            "10",
            "--from-latest",
            "--timeout",
            "3000",
            "--show-detailed-stats",
            "--reporting-interval",
            "1s",
        ],
    )
    .timeout(Duration::from_secs(60))
    .assert()
    .success()
    .get_output()
    .clone();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("time, threadId, data.consumed.in.MB"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("WARNING: Exiting before consuming the expected number of messages: timeout (3000 ms) exceeded."));
    assert_eq!(summary(dir.path())["phases"][0]["consume"]["records"], 0);
}

#[test]
fn live_metrics_are_served_while_the_run_goes_on() {
    use std::io::{Read, Write};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_kbench"))
        .args([
            "e2e",
            "--duration",
            "6s",
            "--record-size",
            "100",
            "--throughput",
            "1000",
            "--reporting-interval",
            "500ms",
            "--metrics-listen",
            &addr,
            "--output-dir",
        ])
        .arg(dir.path())
        .env("KBENCH_NO_PROGRESS", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let scrape = || -> Option<String> {
        let mut c = std::net::TcpStream::connect(&addr).ok()?;
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: kbench\r\n\r\n")
            .ok()?;
        let mut text = String::new();
        c.read_to_string(&mut text).ok()?;
        Some(text)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut seen = None;
    while std::time::Instant::now() < deadline {
        if let Some(t) = scrape().filter(|t| {
            t.contains("kbench_consume_records_per_sec")
                && !t.contains("kbench_produce_records 0.0")
        }) {
            seen = Some(t);
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = seen.expect("no scrape with figures during the run");
    for name in [
        "kbench_produce_records_per_sec",
        "kbench_produce_latency_us{quantile=\"0.99\"}",
        "kbench_e2e_latency_us{quantile=\"0.5\"}",
        "kbench_consumer_lag",
        "kbench_host_cpu_pct",
        "kbench_phase{phase=\"measured\"} 1.0",
    ] {
        assert!(text.contains(name), "missing {name}:\n{text}");
    }
    let rate: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("kbench_produce_records_per_sec "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((500.0..1500.0).contains(&rate), "live produce rate {rate}");
}

/// Stamped records as a producer would write them, but with their sequence numbers chosen by
/// the test; each record's intended send time is 20 ms after the previous one's.
fn produce_stamped(bootstrap: &str, topic: &str, seqs: &[u64], first_intended_ns: u64) {
    use kbench::load::stamp::{Stamp, STAMP_LEN};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // One produce request for all of them, so one fetch brings them back together.
        .set("linger.ms", "200")
        .create()
        .unwrap();
    let mut last = None;
    for (i, &seq) in seqs.iter().enumerate() {
        // A duplicate is the same record again: same stamp.
        let at = match last {
            Some((s, t)) if s == seq => t,
            _ => first_intended_ns + i as u64 * 20_000_000,
        };
        last = Some((seq, at));
        let mut value = vec![0u8; STAMP_LEN + 64];
        Stamp {
            run_id: 77,
            producer_id: 5,
            seq,
            intended_ns: at,
            sent_ns: at,
            phase: 0,
            excluded: false,
            aborting: false,
        }
        .write(&mut value);
        producer
            .send(BaseRecord::<(), _>::to(topic).payload(&value).partition(0))
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
}

#[test]
fn consume_gives_every_record_of_a_fetch_its_own_latency_and_verifies_inside_it() {
    let cluster = TestCluster::start("batch", 1);
    // 3 is missing, 4 comes twice, 5 comes after 6: all inside what one fetch brings.
    let mut seqs = vec![0, 1, 2, 4, 4, 6, 5];
    seqs.extend(7..40);
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    produce_stamped(&cluster.bootstrap, "batch", &seqs, now_ns - 5_000_000_000);

    let dir = tempfile::tempdir().unwrap();
    let out = kbench(
        dir.path(),
        &[
            "consume",
            "--bootstrap-server",
            &cluster.bootstrap,
            "--topic",
            "batch",
            "--num-records",
            &seqs.len().to_string(),
            "--timeout",
            "15000",
        ],
    )
    .timeout(Duration::from_secs(90))
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // A standalone consume reports what it found; only e2e fails on lost records.
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("1 missing (sequence gaps), 1 duplicated, 1 reordered"),
        "{text}"
    );
    let s = summary(dir.path());
    let ph = &s["phases"][0];
    let c = &ph["consume"];
    assert_eq!(c["records"], 40);
    assert_eq!(
        (&c["lost"], &c["duplicated"], &c["reordered"]),
        (&1.into(), &1.into(), &1.into())
    );
    // Each record its own latency, 20 ms apart (the duplicate shares its original's): 39
    // distinct values, not one per batch.
    let h = kbench::report::summary::decode_histogram(
        ph["histograms"]["e2e_latency_us"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(h.len(), 40);
    assert_eq!(
        h.iter_recorded().count(),
        39,
        "one value per record, not per batch"
    );
    let spread_us = h.max() - h.min();
    assert!(
        (760_000..=800_000).contains(&spread_us),
        "39 intervals of 20 ms between the first and last intended times: {spread_us} µs"
    );
}
