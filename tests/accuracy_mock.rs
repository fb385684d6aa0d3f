//! Accuracy against librdkafka's mock cluster, where the truth is known: an injected round-trip
//! time must show up as the produce latency, and a broker outage in a fixed-rate run must show
//! up in the corrected latency and the send-delay histogram (coordinated omission corrected).
//! Timing-sensitive, so the tests in this file run one at a time.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::*;

static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn injected_round_trip_time_is_the_measured_produce_latency() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    kbench(
        dir.path(),
        &[
            "produce",
            "--embedded",
            "mock",
            "--mock-rtt",
            "50ms",
            "--num-records",
            "1000",
            "--warmup-records",
            "100",
            "--record-size",
            "100",
            "--throughput",
            "200",
            "--acks",
            "1",
            "--linger-ms",
            "0",
        ],
    )
    .timeout(Duration::from_secs(60))
    .assert()
    .success();
    let s = summary(dir.path());
    let p50 = s["phases"][0]["produce"]["latency_us"]["p50"]
        .as_u64()
        .unwrap();
    assert!(
        (50_000..=60_000).contains(&p50),
        "p50 {p50} µs with a 50 ms RTT injected"
    );
}

#[test]
fn a_broker_outage_shows_in_corrected_latency_and_send_delay() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // A small client queue, so the stalled client pushes back on the sender as a full
    // buffer.memory does in the Java client: the schedule falls behind and that is recorded.
    kbench(
        dir.path(),
        &[
            "produce",
            "--embedded",
            "mock",
            "--mock-outage",
            "2s+1s",
            "--duration",
            "6s",
            "--record-size",
            "100",
            "--throughput",
            "500",
            "--acks",
            "1",
            "--producer-props",
            "queue.buffering.max.messages=100",
            "reconnect.backoff.max.ms=100",
        ],
    )
    .timeout(Duration::from_secs(90))
    .assert()
    .success();
    let s = summary(dir.path());
    let p = &s["phases"][0]["produce"];
    let p99 = p["latency_us"]["p99"].as_u64().unwrap();
    let delay_max = p["send_delay_us"]["max"].as_u64().unwrap();
    let p90 = p["latency_us"]["p90"].as_u64().unwrap();
    let service_p90 = p["service_latency_us"]["p90"].as_u64().unwrap();
    assert!(
        p99 >= 500_000,
        "corrected p99 {p99} µs must show the 1 s stall"
    );
    assert!(
        delay_max >= 500_000,
        "send delay max {delay_max} µs must record the stall"
    );
    assert!(p["late_sends"].as_u64().unwrap() > 100, "{p}");
    // Records queued behind the stall were sent late, so time from the send call hides most of
    // it: coordinated omission, which the intended-time latency corrects.
    assert!(
        service_p90 * 10 < p90,
        "service p90 {service_p90} µs vs corrected p90 {p90} µs"
    );
}
