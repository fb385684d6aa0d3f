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

/// `kbench ARGS --workers N --start-at (in 5 s)`: exit code and stderr, bounded in time (a plan
/// that is not refused would run, and must not hang the test).
fn refused(args: &[&str], workers: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let start_at = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 5)
    .to_string();
    let mut all = args.to_vec();
    all.extend_from_slice(&["--workers", workers, "--worker-index", "0"]);
    all.extend_from_slice(&["--start-at", &start_at]);
    let out = kbench(dir.path(), &all)
        .timeout(Duration::from_secs(60))
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "a refused plan leaves no result folder"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_names(err: &str, needles: &[&str]) {
    for n in needles {
        assert!(err.contains(n), "stderr lacks '{n}':\n{err}");
    }
}

#[test]
fn a_plan_that_leaves_a_worker_without_a_producer_is_refused_up_front() {
    // The report of issue 8: --workers 2 with the default --producers 1 left worker 1 idle.
    let produce = [
        "produce",
        "--record-size",
        "100",
        "--throughput",
        "1000",
        "--duration",
        "1s",
    ];
    let err = refused(&produce, "2");
    assert_names(
        &err,
        &[
            "--workers 2 with --producers 1",
            "worker 1 would own no producer",
            "set --producers to at least 2",
        ],
    );
    let e2e = [
        "e2e",
        "--record-size",
        "100",
        "--throughput",
        "1000",
        "--duration",
        "1s",
        "--producers",
        "2",
        "--consumers",
        "4",
    ];
    assert_names(
        &refused(&e2e, "4"),
        &[
            "--workers 4 with --producers 2",
            "workers 2..3 would own no producer",
        ],
    );
}

#[test]
fn a_plan_that_leaves_a_worker_without_a_consumer_is_refused_up_front() {
    let consume = [
        "consume",
        "--bootstrap-server",
        "127.0.0.1:9",
        "--num-records",
        "10",
        "--consumers",
        "2",
    ];
    assert_names(
        &refused(&consume, "3"),
        &[
            "--workers 3 with --consumers 2",
            "worker 2 would own no consumer",
            "set --consumers to at least 3",
        ],
    );
    let e2e = [
        "e2e",
        "--record-size",
        "100",
        "--throughput",
        "1000",
        "--duration",
        "1s",
        "--producers",
        "2",
    ];
    assert_names(
        &refused(&e2e, "2"),
        &[
            "--workers 2 with --consumers 1",
            "worker 1 would own no consumer",
        ],
    );
}
