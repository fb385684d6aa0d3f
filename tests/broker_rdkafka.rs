//! The bundled broker with librdkafka (the rdkafka crate): every compression codec, acks
//! 0/1/all, idempotence, consumer groups, and zero-copy vs copying fetch.

mod broker_support;

use std::time::Duration;

use broker_support::*;

#[test]
fn every_codec_round_trips_exactly_once_with_idempotence() {
    let b = start_with(|c| c.num_partitions = 3);
    let boot = b.bootstrap_servers();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        let vals = values(codec, 3000);
        let (ok, failed) = produce(
            &boot,
            &topic,
            &vals,
            &[
                ("compression.type", codec),
                ("enable.idempotence", "true"),
                ("acks", "all"),
            ],
        );
        assert_eq!((ok, failed), (vals.len(), 0), "{codec}: delivery reports");
        let seen = consume(
            &boot,
            &topic,
            &format!("g-{codec}"),
            vals.len(),
            Duration::from_secs(30),
            &[],
        );
        assert_exactly_once(&vals, &seen);
    }
}

#[test]
fn acks_zero_one_and_all_all_deliver() {
    let b = start_with(|c| c.num_partitions = 2);
    let boot = b.bootstrap_servers();
    for acks in ["0", "1", "all"] {
        let topic = format!("acks-{acks}");
        let vals = values(&topic, 2000);
        let (ok, failed) = produce(&boot, &topic, &vals, &[("acks", acks)]);
        assert_eq!((ok, failed), (vals.len(), 0), "acks={acks}");
        let seen = consume(
            &boot,
            &topic,
            &format!("g-{topic}"),
            vals.len(),
            Duration::from_secs(30),
            &[],
        );
        assert_exactly_once(&vals, &seen);
    }
}

#[test]
fn fetched_bytes_equal_produced_bytes_with_and_without_zero_copy() {
    for zero_copy in [true, false] {
        let b = start_with(|c| {
            c.zero_copy = zero_copy;
            c.num_partitions = 2;
            // Small segments: fetches cross segment boundaries.
            c.segment_bytes = 64 * 1024;
        });
        let boot = b.bootstrap_servers();
        let vals: Vec<String> = (0..4000)
            .map(|i| format!("{i:08}:{}", "payload".repeat(1 + i % 50)))
            .collect();
        let (ok, _) = produce(
            &boot,
            "bytes",
            &vals,
            &[("compression.type", "none"), ("batch.size", "16384")],
        );
        assert_eq!(ok, vals.len());
        let seen = consume(
            &boot,
            "bytes",
            "g-bytes",
            vals.len(),
            Duration::from_secs(30),
            &[
                ("fetch.max.bytes", "100000"),
                ("message.max.bytes", "60000"),
                ("max.partition.fetch.bytes", "30000"),
            ],
        );
        assert_exactly_once(&vals, &seen);
        let metrics = b.metrics_text();
        assert!(
            metrics.contains("kbroker_bytes_out_total{topic=\"bytes\"}"),
            "bytes out counted"
        );
        // A consumer's fetch is counted as kind=consumer, the same bytes as bytes_out; no
        // follower bytes on a single node.
        let value = |series: &str| {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(series)?.trim().parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
        };
        let out = value("kbroker_bytes_out_total{topic=\"bytes\"}");
        assert!(out > 0);
        assert_eq!(value("kbroker_fetch_bytes_total{kind=\"consumer\"}"), out);
        assert_eq!(value("kbroker_fetch_bytes_total{kind=\"follower\"}"), 0);
    }
}

#[test]
fn a_group_resumes_from_committed_offsets() {
    let b = start();
    let boot = b.bootstrap_servers();
    let first = values("first", 500);
    produce(&boot, "resume", &first, &[]);
    let seen = consume(
        &boot,
        "resume",
        "g-resume",
        first.len(),
        Duration::from_secs(30),
        &[],
    );
    assert_exactly_once(&first, &seen);
    let second = values("second", 300);
    produce(&boot, "resume", &second, &[]);
    let seen = consume(
        &boot,
        "resume",
        "g-resume",
        second.len(),
        Duration::from_secs(30),
        &[],
    );
    assert_exactly_once(&second, &seen);
    let m = b.metrics_text();
    assert!(
        m.contains(
            "kbroker_consumer_group_lag{group=\"g-resume\",topic=\"resume\",partition=\"0\"} 0"
        ),
        "lag metric:\n{m}"
    );
}

#[test]
fn every_assignor_works() {
    let b = start_with(|c| c.num_partitions = 4);
    let boot = b.bootstrap_servers();
    for strategy in ["range", "roundrobin", "cooperative-sticky"] {
        let topic = format!("assign-{strategy}");
        let vals = values(&topic, 400);
        produce(&boot, &topic, &vals, &[]);
        let seen = consume(
            &boot,
            &topic,
            &format!("g-{strategy}"),
            vals.len(),
            Duration::from_secs(30),
            &[("partition.assignment.strategy", strategy)],
        );
        assert_exactly_once(&vals, &seen);
    }
}
