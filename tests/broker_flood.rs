//! A connection flood does not shut real clients out of `kbench broker`: thousands of idle and
//! half-open (slow-loris) connections stay open while `kbench e2e` connects, produces and
//! consumes through the CLI, and the broker's memory stays bounded.

mod broker_support;
mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use broker_support::*;

/// The flood: `n` connections, every other one having sent just a frame's length prefix.
fn flood(port: u16, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
            if i % 2 == 1 {
                let _ = s.write_all(&1000i32.to_be_bytes());
            }
            Some(s)
        })
        .collect()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

#[test]
fn a_real_client_round_trips_while_5000_idle_and_half_open_connections_stay_open() {
    let port = free_port();
    let data = tempfile::tempdir().expect("temp dir");
    let mut broker = spawn_broker_process(port, data.path(), &[]);
    let rss_before = rss_kib(broker.id());
    let started = Instant::now();
    let held = flood(port, 5000);
    assert!(
        held.len() >= 4900,
        "flood opened {} connections",
        held.len()
    );
    eprintln!(
        "flood of {} connections in {:?}",
        held.len(),
        started.elapsed()
    );

    let out_dir = tempfile::tempdir().expect("temp dir");
    let boot = format!("127.0.0.1:{port}");
    let out = common::kbench(
        out_dir.path(),
        &[
            "e2e",
            "--bootstrap-server",
            &boot,
            "--topic",
            "under-flood",
            "--num-records",
            "2000",
            "--throughput",
            "1000",
            "--record-size",
            "256",
            "--connect-timeout",
            "10s",
        ],
    )
    .timeout(Duration::from_secs(90))
    .output()
    .expect("kbench e2e runs");
    let rss_after = rss_kib(broker.id());
    drop(held);
    kill9(&mut broker);
    assert!(
        out.status.success(),
        "kbench e2e under a connection flood failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = common::summary(out_dir.path());
    let c = &s["phases"][0]["consume"];
    assert_eq!(c["records"], 2000, "{c}");
    assert_eq!(c["lost"], 0, "{c}");
    // Bounded memory: the broker holds at most --max-connections connections, each with
    // memory only for bytes that actually arrived.
    assert!(
        rss_after < rss_before + 200 * 1024,
        "broker RSS grew from {rss_before} KiB to {rss_after} KiB under the flood"
    );
}
