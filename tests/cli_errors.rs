//! Bad input: every mistake exits 2 with a message that names the flag, file or property and
//! says what is allowed, before any load starts.

mod common;

use std::time::{Duration, Instant};

use common::*;
use predicates::prelude::*;

fn fails_with(args: &[&str], needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let out = kbench(dir.path(), args)
        .timeout(Duration::from_secs(60))
        .assert()
        .code(2)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    for n in needles {
        assert!(err.contains(n), "stderr of {args:?} lacks '{n}':\n{err}");
    }
}

#[test]
fn fails_with_an_unknown_flag() {
    fails_with(
        &[
            "produce",
            "--record-size",
            "100",
            "--throughput",
            "1",
            "--no-such-flag",
        ],
        &["--no-such-flag"],
    );
}

#[test]
fn fails_with_an_unknown_property_naming_it_and_its_flag() {
    fails_with(
        &[
            "produce",
            "--num-records",
            "1",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--producer-props",
            "no.such.property=1",
        ],
        &["no.such.property", "--producer-props"],
    );
}

#[test]
fn fails_with_an_invalid_property_value() {
    fails_with(
        &[
            "produce",
            "--num-records",
            "1",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--producer-props",
            "linger.ms=banana",
        ],
        &["linger.ms", "--producer-props"],
    );
}

#[test]
fn fails_with_an_invalid_consumer_property_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.properties");
    std::fs::write(&f, "fetch.wait.max.ms=soon\n").unwrap();
    fails_with(
        &[
            "e2e",
            "--num-records",
            "1",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--consumer.config",
            f.to_str().unwrap(),
        ],
        &["fetch.wait.max.ms", "--consumer.config"],
    );
}

#[test]
fn fails_with_impossible_values() {
    let base = ["produce", "--num-records", "10", "--throughput", "-1"];
    let cases: &[(&[&str], &[&str])] = &[
        (&["--record-size", "10"], &["--record-size", "36"]),
        (&["--record-size", "ten"], &["--record-size"]),
        (
            &["--record-size", "100", "--keys", "zipf:0:1"],
            &["--keys", "round-robin:N"],
        ),
        (
            &["--record-size", "100", "--acks", "2"],
            &["--acks", "0, 1 or all"],
        ),
        (
            &["--record-size", "100", "--compression-type", "brotli"],
            &["--compression-type"],
        ),
        (
            &["--record-size", "100", "--payload-random-ratio", "1.5"],
            &["--payload-random-ratio"],
        ),
        (
            &["--record-size", "100", "--warmup-records", "10"],
            &["--warmup-records", "--num-records"],
        ),
        (
            &["--record-size", "100", "--producers", "0"],
            &["--producers"],
        ),
        (
            &["--record-size", "100", "--partitions", "0"],
            &["--partitions"],
        ),
        (
            &["--record-size", "100", "--topic", "bad topic"],
            &["--topic"],
        ),
        (
            &["--record-size", "100", "--bootstrap-server", "nohostport"],
            &["--bootstrap-server", "HOST:PORT"],
        ),
        (
            &["--record-size", "100", "--producer-props", "lingerms"],
            &["--producer-props", "KEY=VALUE"],
        ),
        (
            &["--record-size", "100", "--reporting-interval", "10ms"],
            &["--reporting-interval"],
        ),
        (
            &["--payload-file", "/definitely/not/here"],
            &["--payload-file"],
        ),
        (&[], &["--record-size", "--payload-file"]),
    ];
    for (extra, needles) in cases {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        fails_with(&args, needles);
    }
    fails_with(
        &[
            "produce",
            "--num-records",
            "10",
            "--record-size",
            "100",
            "--throughput",
            "0",
        ],
        &["--throughput"],
    );
}

#[test]
fn fails_within_the_connect_timeout_when_the_bootstrap_is_unreachable() {
    let started = Instant::now();
    fails_with(
        &[
            "produce",
            "--bootstrap-server",
            "127.0.0.1:1",
            "--connect-timeout",
            "2s",
            "--num-records",
            "1",
            "--record-size",
            "100",
            "--throughput",
            "-1",
        ],
        &["cannot reach", "127.0.0.1:1", "--connect-timeout"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_run_that_could_not_start_leaves_no_result_folder() {
    let dir = tempfile::tempdir().unwrap();
    kbench(
        dir.path(),
        &[
            "produce",
            "--bootstrap-server",
            "127.0.0.1:1",
            "--connect-timeout",
            "1s",
            "--num-records",
            "1",
            "--record-size",
            "100",
            "--throughput",
            "-1",
        ],
    )
    .assert()
    .code(2);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn fails_when_the_topic_is_missing_and_creation_is_off() {
    let cluster = TestCluster::start("present", 1);
    fails_with(
        &[
            "produce",
            "--bootstrap-server",
            &cluster.bootstrap,
            "--topic",
            "absent",
            "--create-topic",
            "false",
            "--num-records",
            "1",
            "--record-size",
            "100",
            "--throughput",
            "-1",
        ],
        &["'absent' does not exist", "--create-topic"],
    );
}

#[test]
fn consume_needs_a_bootstrap_server() {
    fails_with(&["consume", "--num-records", "10"], &["--bootstrap-server"]);
}

#[test]
fn help_documents_the_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let _ = dir;
    assert_cmd::Command::cargo_bin("kbench")
        .unwrap()
        .args(["produce", "--help"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("Exit codes:").and(predicate::str::contains("2  bad input")),
        );
}
