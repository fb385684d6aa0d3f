//! Faults through the binary against a 3-node Apache Kafka (`scripts/kafka.sh --nodes 3 start
//! --proxied`) and its cluster file: a SIGKILL of a partition's leader under an idempotent
//! acks=all producer (RF 3, min ISR 2) loses no acknowledged record, stalls the partition for
//! about the broker session timeout (6 s here) and no more than that plus a few seconds, and the
//! killed node is restarted after `for`.
//!
//! The test starts its own cluster on free loopback ports and a private state dir; a watchdog
//! stops it (every node and proxy, by pid) when the test binary exits. Without Java or Maven it
//! skips loudly, except under `CI`, where it fails.

mod common;
mod kafka_common;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use kafka_common::*;

struct Cluster {
    cluster_file: PathBuf,
    _watchdog: std::process::Child,
}

fn start_cluster() -> Cluster {
    fetch_kafka();
    let state = std::env::temp_dir().join(format!("kbench-faults-{}", std::process::id()));
    let kafka_sh = script("kafka.sh");
    // Before the start, so even a half-started cluster goes away with this process.
    let watchdog = Command::new("sh")
        .arg("-c")
        .arg(
            r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done
               "$2" --nodes 3 --state "$3" stop >/dev/null 2>&1; rm -rf "$3""#,
        )
        .arg("kbench-faults-watchdog")
        .arg(std::process::id().to_string())
        .arg(&kafka_sh)
        .arg(&state)
        .env("KBENCH_STOP_TIMEOUT", "10")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start the cluster watchdog (sh)");
    let done = run_bounded(
        Command::new(&kafka_sh)
            .args(["--nodes", "3", "--state"])
            .arg(&state)
            .args([
                "start",
                "--proxied",
                "--base-port",
                &free_base_port().to_string(),
            ])
            .arg("--kbench")
            .arg(assert_cmd::cargo::cargo_bin("kbench"))
            .env(
                "KBENCH_KAFKA_JVM_OPTS",
                "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
            )
            .env("KBENCH_START_TIMEOUT", "150")
            .env("KBENCH_STOP_TIMEOUT", "10"),
        Duration::from_secs(420),
        "scripts/kafka.sh --nodes 3 start",
    )
    .success("scripts/kafka.sh --nodes 3 start");
    let file = done
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("cluster_file="))
        .unwrap_or_else(|| panic!("no cluster_file= in {}", done.stdout));
    Cluster {
        cluster_file: PathBuf::from(file),
        _watchdog: watchdog,
    }
}

/// A base port whose 3 nodes' 7 ports each are all free now.
fn free_base_port() -> u16 {
    let seed = std::process::id() as u16;
    for attempt in 0..200u16 {
        let base = 20_000 + (seed.wrapping_add(attempt.wrapping_mul(41)) % 200) * 100;
        let all_free = (0..3u16)
            .flat_map(|i| (0..7).map(move |k| base + 10 * i + k))
            .all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no free block of ports found in 20000..40000");
}

#[test]
fn a_leader_sigkill_on_3_node_kafka_loses_no_acknowledged_record() {
    let test = "a_leader_sigkill_on_3_node_kafka_loses_no_acknowledged_record";
    if !java_peers_available(test) {
        return;
    }
    let cluster = start_cluster();
    let dir = tempfile::tempdir().unwrap();
    let file = cluster.cluster_file.to_str().unwrap();
    let out = common::kbench(
        dir.path(),
        &[
            "produce",
            "--cluster-file",
            file,
            "--topic",
            "faults-kill",
            "--replication-factor",
            "3",
            "--record-size",
            "100",
            "--throughput",
            "300",
            "--acks",
            "all",
            "--idempotence",
            "--reporting-interval",
            "2s",
            "--duration",
            "35s",
            "--fault",
            "at=8s kill leader-of:faults-kill/0 for=10s",
        ],
    )
    .timeout(Duration::from_secs(400))
    .assert()
    .success()
    .get_output()
    .clone();
    let s = common::summary(dir.path());
    let f = &s["faults"][0];
    assert!(f["errors"].as_array().unwrap().is_empty(), "{f}");
    assert!(
        f["node"].as_i64().is_some_and(|n| (1..=3).contains(&n)),
        "{f}"
    );
    let gap = f["produce"]["ack_gap_ms"].as_f64().unwrap();
    // broker.session.timeout.ms is 6 s: the controller fences the dead leader after it.
    assert!(
        (1_000.0..=6_000.0 + 8_000.0).contains(&gap),
        "ack gap {gap} ms; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = &s["durability"];
    assert_eq!(d["acked_lost"], 0, "{d}");
    assert_eq!(d["duplicated"], 0, "{d}");
    assert_eq!(d["complete"], true, "{d}");
    assert!(d["acked"].as_u64().unwrap() > 5_000, "{d}");
    assert!(
        f["t_h_ms"].as_u64().is_some(),
        "the node was not restarted: {f}"
    );
}
