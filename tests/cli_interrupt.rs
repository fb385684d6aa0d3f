//! Ctrl-C: the run stops promptly, prints its totals, and leaves valid partial results.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn ctrl_c_leaves_the_results_measured_so_far() {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_kbench"))
        .args([
            "e2e",
            "--duration",
            "60s",
            "--record-size",
            "100",
            "--throughput",
            "1000",
            "--reporting-interval",
            "500ms",
            "--output-dir",
        ])
        .arg(dir.path())
        .env("KBENCH_NO_PROGRESS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let stopped = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        stopped.elapsed() < Duration::from_secs(15),
        "took {:?} to stop",
        stopped.elapsed()
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    assert_eq!(
        lines_matching(&out.stdout, KAFKA_TOTAL_LINE).len(),
        1,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let s = summary(dir.path());
    assert_eq!(s["interrupted"], true);
    assert_eq!(s["complete"], false);
    let records = s["phases"][0]["produce"]["records"].as_u64().unwrap();
    assert!(records > 500, "{records} records before Ctrl-C");
    assert!(s["phases"][0]["consume"]["records"].as_u64().unwrap() > 500);
    let csv = std::fs::read_to_string(run_dir(dir.path()).join("timeseries.csv")).unwrap();
    assert!(csv.lines().count() >= 3, "{csv}");
}
