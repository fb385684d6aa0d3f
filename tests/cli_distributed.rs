//! Distributed load: two kbench processes, each with its share of producers and rate, started
//! together with --start-at, and merged exactly with `kbench merge`.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn two_workers_share_the_plan_and_merge_into_the_whole() {
    let cluster = TestCluster::start("dist", 2);
    let dir = tempfile::tempdir().unwrap();
    let start_at = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 4.0)
        .to_string();
    let spawn = |index: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kbench"))
            .args([
                "produce",
                "--bootstrap-server",
                &cluster.bootstrap,
                "--topic",
                "dist",
                "--num-records",
                "2000",
                "--record-size",
                "100",
                "--throughput",
                "1000",
                "--producers",
                "2",
            ])
            .args([
                "--workers",
                "2",
                "--worker-index",
                index,
                "--start-at",
                &start_at,
                "--output-dir",
            ])
            .arg(dir.path())
            .env("KBENCH_NO_PROGRESS", "1")
            .output()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| spawn("0"));
        let b = s.spawn(|| spawn("1"));
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let mut runs: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    runs.sort();
    assert_eq!(runs.len(), 2);
    assert!(
        runs[0].to_str().unwrap().ends_with("-produce-w0")
            && runs[1].to_str().unwrap().ends_with("-produce-w1"),
        "{runs:?}"
    );
    for r in &runs {
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(r.join("summary.json")).unwrap())
                .unwrap();
        validate(&s);
        assert_eq!(
            s["phases"][0]["produce"]["records"], 1000,
            "each worker sends its half"
        );
    }
    // Both started at the given time: the records of the two producers interleave in time.
    let records = read_all(&cluster.bootstrap, "dist", 2000, Duration::from_secs(20));
    assert_eq!(records.len(), 2000);
    let producers: std::collections::BTreeSet<u32> = records
        .iter()
        .map(|(_, v, _)| kbench::load::stamp::Stamp::read(v).unwrap().producer_id)
        .collect();
    assert_eq!(producers.into_iter().collect::<Vec<_>>(), [0, 1]);

    let merged = dir.path().join("merged");
    assert_cmd::Command::cargo_bin("kbench")
        .unwrap()
        .args(["merge"])
        .args(&runs)
        .arg("--output-dir")
        .arg(&merged)
        .assert()
        .success();
    // The output dir is the merged run folder itself.
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(merged.join("summary.json")).unwrap())
            .unwrap();
    validate(&s);
    assert_eq!(s["phases"][0]["produce"]["records"], 2000);
    let rate = s["phases"][0]["produce"]["records_per_sec"]
        .as_f64()
        .unwrap();
    assert!(
        (900.0..1100.0).contains(&rate),
        "merged rate {rate} for 2 x 500/s"
    );
}

#[test]
fn worker_flags_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "produce",
            "--num-records",
            "10",
            "--record-size",
            "100",
            "--throughput",
            "-1",
        ];
        args.extend_from_slice(extra);
        kbench(dir.path(), &args)
            .assert()
            .code(2)
            .get_output()
            .stderr
            .clone()
    };
    assert!(String::from_utf8_lossy(&run(&["--workers", "2"])).contains("--start-at"));
    assert!(String::from_utf8_lossy(&run(&[
        "--workers",
        "2",
        "--worker-index",
        "2",
        "--start-at",
        "1"
    ]))
    .contains("--worker-index"));
    assert!(String::from_utf8_lossy(&run(&["--start-at", "yesterday"]))
        .contains("--start-at 'yesterday'"));
    assert!(String::from_utf8_lossy(&run(&["--start-at", "1000"])).contains("in the past"));
}
