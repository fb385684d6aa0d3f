//! `kbench cluster` and `kbench broker --node-id` as people use them: bad configuration is a
//! clear error naming the flag before anything is written; the cluster prints its bootstrap
//! list, Ctrl-C stops every node; started again on its data dir it comes back on the same
//! ports with its data, and no leader epoch goes down; a replication factor above the live
//! nodes is a clear error in kbench.

mod cluster_support;
mod common;

use std::time::Duration;

use assert_cmd::Command;
use cluster_support::Cluster;

fn broker(args: &[&str]) -> (i32, String) {
    let out = Command::cargo_bin("kbench")
        .unwrap()
        .arg("broker")
        .args(args)
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn bad_cluster_flags_are_refused_naming_the_flag_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let d = data.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--node-id",
                "1",
                "--controller-quorum",
                "1@127.0.0.1",
                "--data-dir",
                d,
            ],
            "--controller-quorum",
        ),
        (
            &[
                "--node-id",
                "1",
                "--controller-quorum",
                "one@127.0.0.1:1",
                "--data-dir",
                d,
            ],
            "--controller-quorum",
        ),
        (
            &[
                "--node-id",
                "4",
                "--controller-quorum",
                "1@127.0.0.1:19091,2@127.0.0.1:19092",
                "--data-dir",
                d,
            ],
            "--node-id 4",
        ),
        (
            &["--node-id", "1", "--controller-quorum", "1@127.0.0.1:19091"],
            "--data-dir",
        ),
        (
            &[
                "--node-id",
                "1",
                "--controller-quorum",
                "1@127.0.0.1:19091,2@127.0.0.1:19092",
                "--data-dir",
                d,
                "--min-insync-replicas",
                "3",
            ],
            "--min-insync-replicas",
        ),
        (&["--controller-quorum", "1@127.0.0.1:19091"], "--node-id"),
    ];
    for (args, flag) in cases {
        let (code, stderr) = broker(args);
        assert_eq!(code, 2, "{args:?}: exit {code}\n{stderr}");
        assert!(
            stderr.contains(flag),
            "{args:?}: the error should name {flag}:\n{stderr}"
        );
        assert!(
            !data.exists(),
            "{args:?} wrote {} before refusing",
            data.display()
        );
    }
}

#[test]
fn a_data_dir_of_another_node_is_refused() {
    let cluster = Cluster::start(1, &[]);
    let node1 = cluster.node_dir(1);
    let (code, stderr) = broker(&[
        "--node-id",
        "2",
        "--controller-quorum",
        "1@127.0.0.1:1,2@127.0.0.1:2",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        node1.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--data-dir") && stderr.contains("node"),
        "{stderr}"
    );
}

#[test]
fn ctrl_c_stops_every_node_and_a_restart_keeps_data_ports_and_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("c");
    let mut cluster = Cluster::start_in(&data, 3, &[]);
    let bootstrap = cluster.bootstrap.clone();
    assert_eq!(bootstrap.split(',').count(), 3, "{bootstrap}");
    let out = tempfile::tempdir().unwrap();
    common::kbench(
        out.path(),
        &[
            "produce",
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            "kept",
            "--replication-factor",
            "3",
            "--num-records",
            "2000",
            "--throughput",
            "5000",
            "--record-size",
            "100",
            "--acks",
            "all",
        ],
    )
    .timeout(Duration::from_secs(60))
    .assert()
    .success();
    // One failover so that there is an epoch worth keeping.
    let before = cluster.partition("kept", 0).unwrap();
    cluster.kill9(before.leader);
    let moved = cluster.wait_for("kept", 0, Duration::from_secs(20), "a new leader", |p| {
        p.leader != before.leader && p.leader >= 0
    });
    let pids: Vec<i32> = (1..=3).map(|id| cluster.pid(id)).collect();
    cluster.stop();
    for pid in pids {
        assert!(
            !cluster_support::alive(pid),
            "node pid {pid} still runs after Ctrl-C"
        );
    }

    let cluster = Cluster::start_in(&data, 3, &[]);
    assert_eq!(cluster.bootstrap, bootstrap, "the same ports again");
    let again = cluster.wait_for(
        "kept",
        0,
        Duration::from_secs(30),
        "a leader after the full restart",
        |p| p.leader >= 0,
    );
    assert!(
        again.leader_epoch >= moved.leader_epoch,
        "epoch went down: {moved:?} then {again:?}"
    );
    let out = tempfile::tempdir().unwrap();
    let consumed = common::kbench(
        out.path(),
        &[
            "consume",
            "--bootstrap-server",
            &cluster.bootstrap,
            "--topic",
            "kept",
            "--num-records",
            "2000",
            "--timeout",
            "30000",
        ],
    )
    .timeout(Duration::from_secs(60))
    .output()
    .unwrap();
    assert!(
        consumed.status.success(),
        "{}",
        String::from_utf8_lossy(&consumed.stderr)
    );
}

#[test]
fn a_replication_factor_above_the_live_nodes_is_a_clear_error() {
    let cluster = Cluster::start(3, &[]);
    let out = tempfile::tempdir().unwrap();
    let o = common::kbench(
        out.path(),
        &[
            "produce",
            "--bootstrap-server",
            &cluster.bootstrap,
            "--topic",
            "toomany",
            "--replication-factor",
            "4",
            "--num-records",
            "10",
            "--throughput",
            "1000",
            "--record-size",
            "100",
        ],
    )
    .timeout(Duration::from_secs(60))
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains("replication factor 4") || stderr.contains("replication-factor"),
        "{stderr}"
    );

    let o = common::kbench(
        out.path(),
        &[
            "e2e",
            "--embedded",
            "cluster:3",
            "--replication-factor",
            "4",
            "--num-records",
            "10",
            "--throughput",
            "1000",
            "--record-size",
            "100",
        ],
    )
    .timeout(Duration::from_secs(30))
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("--replication-factor 4 is more than the 3 nodes"));
}

#[test]
fn e2e_on_an_embedded_cluster_starts_and_removes_it() {
    let out = tempfile::tempdir().unwrap();
    let o = common::kbench(
        out.path(),
        &[
            "e2e",
            "--embedded",
            "cluster:3",
            "--num-records",
            "3000",
            "--record-size",
            "100",
            "--throughput",
            "1000",
            "--acks",
            "all",
        ],
    )
    .timeout(Duration::from_secs(120))
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let s = common::summary(out.path());
    assert_eq!(
        s["config"]["target"]["embedded"], "cluster:3",
        "{}",
        s["config"]["target"]
    );
    assert_eq!(s["config"]["target"]["replication_factor"], 3);
    let file = stderr
        .lines()
        .find_map(|l| l.split("cluster file ").nth(1))
        .map(|f| f.trim_end_matches(')').to_string())
        .expect("the cluster file is named on stderr");
    assert!(!std::path::Path::new(&file).exists(), "{file} left behind");
}
