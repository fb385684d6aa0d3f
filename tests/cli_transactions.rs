//! Transactions through the CLI (issue 11): kbench's transactional produce and e2e against the
//! bundled broker (commit counts, aborts, read_committed and read_uncommitted consumers, one
//! transactional.id per producer), the profile fields and matrix, and bad input (exit 2).

mod common;
mod kafka_common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn run_ok(dir: &std::path::Path, args: &[&str]) -> (String, Value) {
    let out = kbench(dir, args)
        .timeout(Duration::from_secs(90))
        .assert()
        .success()
        .get_output()
        .clone();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        summary(dir),
    )
}

fn u64_at(v: &Value, path: &str) -> u64 {
    v.pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no unsigned number at {path} in {v:#}"))
}

#[test]
fn transactional_produce_commits_every_n_records_and_reports_commit_latency() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, s) = run_ok(
        dir.path(),
        &[
            "produce",
            "--num-records",
            "1000",
            "--record-size",
            "100",
            "--throughput",
            "4000",
            "--transactional-id",
            "kb-txn",
            "--transaction-records",
            "100",
        ],
    );
    let t = &s["phases"][0]["produce"]["transactions"];
    assert_eq!(t["committed"], 10, "{t:#}");
    assert_eq!(t["aborted"], 0, "{t:#}");
    assert_eq!(t["records_per_transaction"], 100.0, "{t:#}");
    assert_eq!(u64_at(t, "/commit_latency_us/count"), 10);
    assert!(u64_at(t, "/commit_latency_us/p50") > 0, "{t:#}");
    // The nine transactions after the first each say how long their start was held back.
    assert_eq!(u64_at(t, "/commit_pause_us/count"), 9);
    assert_eq!(s["phases"][0]["produce"]["records"], 1000);
    assert_eq!(s["transactions"]["transactional_ids"][0], "kb-txn");
    assert!(
        s["transactions"]["init_transactions_ms"][0]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert_eq!(s["config"]["producer"]["props"]["acks"], "all");
    assert!(s["phases"][0]["histograms"]["commit_latency_us"].is_string());
    assert!(
        stdout.contains("transactions: 10 committed, 0 aborted"),
        "{stdout}"
    );
    assert!(stdout.contains(" commit "), "{stdout}");
    let csv = std::fs::read_to_string(run_dir(dir.path()).join("timeseries.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "txn_committed").unwrap();
    let committed: u64 = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(col).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(committed, 10, "{csv}");
}

#[test]
fn the_transaction_duration_sets_how_many_records_a_transaction_holds() {
    let dir = tempfile::tempdir().unwrap();
    // 2000 records/s with a commit every 100 ms: 200 records a transaction, 10 of them.
    let (_, s) = run_ok(
        dir.path(),
        &[
            "produce",
            "--num-records",
            "2000",
            "--record-size",
            "100",
            "--throughput",
            "2000",
            "--transaction-duration-ms",
            "100",
        ],
    );
    let t = &s["phases"][0]["produce"]["transactions"];
    assert_eq!(t["committed"], 10, "{t:#}");
    assert_eq!(t["records_per_transaction"], 200.0, "{t:#}");
    let id = s["transactions"]["transactional_ids"][0].as_str().unwrap();
    assert!(id.starts_with("performance-producer-"), "{id}");
}

#[test]
fn aborted_transactions_stay_invisible_to_a_read_committed_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, s) = run_ok(
        dir.path(),
        &[
            "e2e",
            "--num-records",
            "3000",
            "--record-size",
            "100",
            "--throughput",
            "3000",
            "--transactional-id",
            "kb-abort",
            "--transaction-records",
            "50",
            "--transaction-abort-rate",
            "0.3",
            "--seed",
            "7",
            "--consumer-props",
            "statistics.interval.ms=200",
        ],
    );
    let t = &s["phases"][0]["produce"]["transactions"];
    let (committed, aborted) = (u64_at(t, "/committed"), u64_at(t, "/aborted"));
    assert_eq!(committed + aborted, 60, "{t:#}");
    assert!(aborted > 0 && committed > 0, "{t:#}");
    assert_eq!(u64_at(t, "/aborted_records"), aborted * 50);
    assert_eq!(u64_at(t, "/abort_latency_us/count"), aborted);
    let v = &s["verification"];
    assert_eq!(v["isolation_level"], "read_committed", "{v:#}");
    assert_eq!(v["aborted_seen"], 0, "{v:#}");
    assert_eq!(v["lost"], 0, "{v:#}");
    assert_eq!(v["duplicated"], 0, "{v:#}");
    // Exactly the committed records were consumed (and acknowledged as meant to be).
    assert_eq!(u64_at(v, "/acknowledged"), committed * 50);
    assert_eq!(u64_at(&s, "/phases/0/consume/records"), committed * 50);
    let check = s["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str().unwrap().contains("aborted transaction"))
        .expect("the aborted-records check");
    assert_eq!(check["passed"], true, "{check}");
    assert!(stdout.contains("produce-to-visible"), "{stdout}");
    assert!(
        stdout.contains("0 records of aborted transactions seen (read_committed"),
        "{stdout}"
    );
    assert!(s["phases"][0]["consume"]["max_lso_lag"].is_u64(), "{s:#}");
}

#[test]
fn the_abort_rate_draws_the_same_transactions_for_the_same_seed() {
    let aborted = |seed: &str| {
        let dir = tempfile::tempdir().unwrap();
        let (_, s) = run_ok(
            dir.path(),
            &[
                "produce",
                "--num-records",
                "1000",
                "--record-size",
                "100",
                "--throughput",
                "-1",
                "--transaction-records",
                "20",
                "--transaction-abort-rate",
                "0.5",
                "--seed",
                seed,
            ],
        );
        u64_at(&s, "/phases/0/produce/transactions/aborted")
    };
    let first = aborted("11");
    assert!(first > 0 && first < 50, "{first}");
    assert_eq!(aborted("11"), first);
}

#[test]
fn read_uncommitted_sees_the_aborted_records_and_reports_them_apart() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, s) = run_ok(
        dir.path(),
        &[
            "e2e",
            "--num-records",
            "2000",
            "--record-size",
            "100",
            "--throughput",
            "2000",
            "--transaction-records",
            "50",
            "--transaction-abort-rate",
            "0.3",
            "--seed",
            "7",
            "--isolation-level",
            "read_uncommitted",
        ],
    );
    let aborted_records = u64_at(&s, "/phases/0/produce/transactions/aborted_records");
    assert!(aborted_records > 0, "{s:#}");
    let v = &s["verification"];
    assert_eq!(v["isolation_level"], "read_uncommitted", "{v:#}");
    assert_eq!(u64_at(v, "/aborted_seen"), aborted_records, "{v:#}");
    // Every record was read; the committed ones are checked, the aborted ones counted apart.
    assert_eq!(u64_at(&s, "/phases/0/consume/records"), 2000);
    assert_eq!(u64_at(v, "/consumed_distinct"), 2000 - aborted_records);
    assert_eq!(v["lost"], 0, "{v:#}");
    assert_eq!(v["duplicated"], 0, "{v:#}");
    assert!(
        stdout.contains("read_uncommitted sees them; not an error"),
        "{stdout}"
    );
    assert!(stdout.contains("produce-to-fetch"), "{stdout}");
}

#[test]
fn an_aborted_record_seen_by_a_read_committed_consumer_fails_the_run_with_exit_1() {
    // librdkafka's mock cluster answers the transaction calls but keeps no transaction state,
    // so its read_committed fetches hand out aborted records: exactly what kbench must catch.
    let dir = tempfile::tempdir().unwrap();
    let out = kbench(
        dir.path(),
        &[
            "e2e",
            "--embedded",
            "mock",
            "--num-records",
            "1000",
            "--record-size",
            "100",
            "--throughput",
            "2000",
            "--transaction-records",
            "100",
            "--transaction-abort-rate",
            "0.5",
            "--seed",
            "3",
            "--timeout",
            "2000",
        ],
    )
    .timeout(Duration::from_secs(90))
    .assert()
    .code(1)
    .get_output()
    .clone();
    let s = summary(dir.path());
    assert!(u64_at(&s, "/verification/aborted_seen") > 0, "{s:#}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("check failed: no record of an aborted transaction visible"),
        "{stderr}"
    );
}

#[test]
fn several_producers_each_get_their_own_transactional_id() {
    let dir = tempfile::tempdir().unwrap();
    let (_, s) = run_ok(
        dir.path(),
        &[
            "e2e",
            "--num-records",
            "2000",
            "--record-size",
            "100",
            "--throughput",
            "2000",
            "--producers",
            "2",
            "--partitions",
            "2",
            "--transactional-id",
            "kb-multi",
            "--transaction-duration-ms",
            "50",
        ],
    );
    assert_eq!(
        s["transactions"]["transactional_ids"],
        serde_json::json!(["kb-multi-0", "kb-multi-1"])
    );
    assert_eq!(s["verification"]["lost"], 0);
    assert_eq!(s["verification"]["duplicated"], 0);
    assert!(u64_at(&s, "/phases/0/produce/transactions/committed") >= 2 * 15);
}

#[test]
fn transactional_id_in_the_producer_properties_turns_transactions_on() {
    let dir = tempfile::tempdir().unwrap();
    let (_, s) = run_ok(
        dir.path(),
        &[
            "produce",
            "--num-records",
            "500",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--producer-props",
            "transactional.id=from-props",
        ],
    );
    assert_eq!(s["transactions"]["transactional_ids"][0], "from-props");
    // The default duration (3000 ms) outlasts the run: one transaction, committed at the end.
    assert_eq!(s["phases"][0]["produce"]["transactions"]["committed"], 1);
    assert_eq!(s["config"]["producer"]["transactions"]["duration_ms"], 3000);
}

#[test]
fn a_plain_producer_reports_no_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, s) = run_ok(
        dir.path(),
        &[
            "produce",
            "--num-records",
            "200",
            "--record-size",
            "100",
            "--throughput",
            "-1",
        ],
    );
    assert!(s["transactions"].is_null());
    assert!(s["phases"][0]["produce"]["transactions"].is_null());
    assert!(!stdout.contains("transactions:"), "{stdout}");
}

#[test]
fn a_commit_latency_threshold_gates_a_profile() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("txn.toml");
    std::fs::write(
        &profile,
        r#"
name = "txn-gate"
mode = "produce"
thresholds = ["commit.p99 < 1us", "txn.committed > 0"]
[workload]
record_size = 100
transaction_duration_ms = 50
[[phases]]
duration = "1s"
rate = 1000
"#,
    )
    .unwrap();
    let out = kbench(dir.path(), &["run", profile.to_str().unwrap()])
        .timeout(Duration::from_secs(60))
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        lines_matching(&out.stdout, r"^ FAIL +commit\.p99 < 1us").len() == 1,
        "{stdout}"
    );
    assert!(
        lines_matching(&out.stdout, r"^ ok +txn\.committed > 0").len() == 1,
        "{stdout}"
    );
}

#[test]
fn the_overhead_profile_runs_plain_idempotent_and_three_transaction_durations() {
    let dir = tempfile::tempdir().unwrap();
    let profile = format!("{}/profiles/txn-overhead.toml", env!("CARGO_MANIFEST_DIR"));
    let out = kbench(
        dir.path(),
        &[
            "run",
            &profile,
            "--set",
            "phases.0.duration=1s",
            "--set",
            "warmup=500ms",
            "--set",
            "phases.0.rate=1000",
        ],
    )
    .timeout(Duration::from_secs(120))
    .assert()
    .success()
    .get_output()
    .clone();
    let s = summary(dir.path());
    let names: Vec<&str> = s["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "idempotence=false/steady",
            "idempotence=true/steady",
            "transaction_duration_ms=10/steady",
            "transaction_duration_ms=100/steady",
            "transaction_duration_ms=1000/steady",
        ]
    );
    let txn = |i: usize| &s["phases"][i]["produce"]["transactions"];
    assert!(txn(0).is_null() && txn(1).is_null());
    // A commit every 10 ms at 1000 records/s: about 10 records a transaction.
    let per = txn(2)["records_per_transaction"].as_f64().unwrap();
    assert!((8.0..=12.0).contains(&per), "{per}");
    assert_eq!(s["config"]["profile"]["producer_props"]["acks"], "all");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("transactions (latency in µs):"), "{stdout}");
}

fn fails_with(args: &[&str], needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = kbench(dir.path(), args)
        .timeout(Duration::from_secs(30))
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(needle), "{needle} not in: {stderr}");
}

const BASE: [&str; 7] = [
    "produce",
    "--num-records",
    "10",
    "--record-size",
    "100",
    "--throughput",
    "-1",
];

fn with(extra: &[&'static str]) -> Vec<&'static str> {
    BASE.iter().copied().chain(extra.iter().copied()).collect()
}

#[test]
fn fails_with_an_abort_rate_outside_0_to_1() {
    fails_with(
        &with(&["--transactional-id", "t", "--transaction-abort-rate", "1.5"]),
        "--transaction-abort-rate must be between 0 and 1 (got 1.5)",
    );
}

#[test]
fn fails_with_a_transaction_duration_of_zero() {
    fails_with(
        &with(&["--transaction-duration-ms", "0"]),
        "--transaction-duration-ms should be greater than zero",
    );
}

#[test]
fn fails_with_transactions_and_acks_other_than_all() {
    fails_with(
        &with(&["--transactional-id", "t", "--acks", "1"]),
        "transactions need acks=all, but acks=1 (set by --acks)",
    );
    fails_with(
        &with(&["--transactional-id", "t", "--producer-props", "acks=0"]),
        "acks=0 (set by --producer-props)",
    );
}

#[test]
fn fails_with_transaction_records_of_zero() {
    fails_with(
        &with(&["--transaction-records", "0"]),
        "--transaction-records must be at least 1 (got 0)",
    );
}

#[test]
fn fails_with_an_unknown_isolation_level() {
    let dir = tempfile::tempdir().unwrap();
    let out = kbench(
        dir.path(),
        &[
            "e2e",
            "--num-records",
            "10",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--isolation-level",
            "serializable",
        ],
    )
    .assert()
    .code(2)
    .get_output()
    .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--isolation-level") && stderr.contains("read_committed"),
        "{stderr}"
    );
}

#[test]
fn merging_transactional_runs_adds_their_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, id: &str| {
        let sub = dir.path().join(name);
        run_ok(
            &sub,
            &[
                "produce",
                "--num-records",
                "600",
                "--record-size",
                "100",
                "--throughput",
                "-1",
                "--transactional-id",
                id,
                "--transaction-records",
                "100",
            ],
        );
        run_dir(&sub)
    };
    let (a, b) = (run("a", "kb-a"), run("b", "kb-b"));
    // The merged folder is where `--output-dir` (added last by `kbench`) says.
    let out = dir.path().join("merged");
    kbench(&out, &["merge", a.to_str().unwrap(), b.to_str().unwrap()])
        .assert()
        .success();
    let text = std::fs::read_to_string(out.join("summary.json")).unwrap();
    let m: Value = serde_json::from_str(&text).unwrap();
    validate(&m);
    let t = &m["phases"][0]["produce"]["transactions"];
    assert_eq!(t["committed"], 12, "{t:#}");
    assert_eq!(t["records_per_transaction"], 100.0, "{t:#}");
    assert_eq!(u64_at(t, "/commit_latency_us/count"), 12);
    assert_eq!(
        m["transactions"]["transactional_ids"],
        serde_json::json!(["kb-a", "kb-b"])
    );
}

#[test]
fn the_effective_isolation_level_is_printed_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let out = kbench(
        dir.path(),
        &[
            "e2e",
            "--num-records",
            "200",
            "--record-size",
            "100",
            "--throughput",
            "-1",
        ],
    )
    .timeout(Duration::from_secs(60))
    .assert()
    .success()
    .get_output()
    .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("isolation.level=read_committed (librdkafka's default"),
        "{stderr}"
    );
    let s = summary(dir.path());
    assert_eq!(s["config"]["consumer"]["isolation_level"], "read_committed");
    assert_eq!(s["verification"]["isolation_level"], "read_committed");
}

#[test]
fn fails_with_exit_2_when_init_transactions_is_refused() {
    // A transaction timeout above the broker's transaction.max.timeout.ms (15 minutes).
    fails_with(
        &with(&[
            "--transactional-id",
            "kb-too-long",
            "--producer-props",
            "transaction.timeout.ms=3600000",
        ]),
        "init_transactions for transactional.id 'kb-too-long' failed",
    );
}

#[test]
fn records_due_during_a_commit_wait_and_are_charged_from_their_intended_time() {
    // The mock cluster with a 20 ms round trip: each commit takes a few round trips, while a
    // record falls due every millisecond.
    let dir = tempfile::tempdir().unwrap();
    let (_, s) = run_ok(
        dir.path(),
        &[
            "produce",
            "--embedded",
            "mock",
            "--mock-rtt",
            "20ms",
            "--num-records",
            "2000",
            "--record-size",
            "100",
            "--throughput",
            "1000",
            "--transaction-duration-ms",
            "200",
        ],
    );
    let p = &s["phases"][0]["produce"];
    let t = &p["transactions"];
    assert_eq!(t["committed"], 10, "{t:#}");
    let pause_max = u64_at(t, "/commit_pause_us/max");
    assert!(u64_at(t, "/commit_latency_us/p50") >= 20_000, "{t:#}");
    assert!(u64_at(t, "/commit_pause_us/p50") >= 20_000, "{t:#}");
    // The first record after a commit was sent that much late, and its latency from the
    // intended time carries the wait on top of its own round trip.
    assert!(
        u64_at(p, "/send_delay_us/max") * 10 >= pause_max * 9,
        "{p:#}"
    );
    assert!(u64_at(p, "/latency_us/max") >= pause_max + 20_000, "{p:#}");
    // The schedule held: no catch-up burst made up for lost time, none was lost.
    let rate = p["records_per_sec"].as_f64().unwrap();
    assert!((900.0..=1010.0).contains(&rate), "{rate}");
}

#[test]
fn compare_lists_transactions_per_second_and_commit_latency() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        let sub = dir.path().join(name);
        run_ok(
            &sub,
            &[
                "produce",
                "--num-records",
                "3000",
                "--record-size",
                "100",
                "--throughput",
                "1000",
                "--transaction-duration-ms",
                "100",
                "--reporting-interval",
                "500ms",
            ],
        );
        run_dir(&sub)
    };
    let (a, b) = (run("a"), run("b"));
    let out = assert_cmd::Command::cargo_bin("kbench")
        .unwrap()
        .args(["compare", a.to_str().unwrap(), b.to_str().unwrap()])
        .args(["--format", "json", "--max-regression", "1000%"])
        .timeout(Duration::from_secs(30))
        .assert()
        .success()
        .get_output()
        .clone();
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let metrics: Vec<&str> = doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["metric"].as_str().unwrap())
        .collect();
    for m in ["transactions/s", "commit p50", "commit p99"] {
        assert!(metrics.contains(&m), "{m} not in {metrics:?}");
    }
    let tps = doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metric"] == "transactions/s")
        .unwrap();
    assert!(tps["base"].as_f64().unwrap() > 8.0, "{tps}");
    assert!(tps["base_samples"].as_u64().unwrap() >= 3, "{tps}");
}

#[test]
fn the_lso_lag_shows_what_a_long_transaction_holds_back() {
    // Transactions of 1.5 s outlast the consumer's fetch.wait.max.ms (500 ms), so fetch
    // responses come while one is open: the high watermark runs ahead of the last stable offset.
    let dir = tempfile::tempdir().unwrap();
    let (stdout, s) = run_ok(
        dir.path(),
        &[
            "e2e",
            "--duration",
            "3s",
            "--record-size",
            "100",
            "--throughput",
            "1000",
            "--transaction-duration-ms",
            "1500",
            "--consumer-props",
            "statistics.interval.ms=200",
            "--reporting-interval",
            "500ms",
        ],
    );
    let lag = u64_at(&s, "/phases/0/consume/max_lso_lag");
    assert!((100..=3000).contains(&lag), "max LSO lag {lag}");
    assert!(stdout.contains("max LSO lag"), "{stdout}");
    // Produce-to-visible: a record waits for the rest of its transaction.
    assert!(u64_at(&s, "/phases/0/consume/e2e_latency_us/p50") > 400_000);
    let csv = std::fs::read_to_string(run_dir(dir.path()).join("timeseries.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "lso_lag").unwrap();
    let most: u64 = csv
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(col)?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    assert!(most > 0, "{csv}");
}

#[test]
fn live_metrics_serve_transactions_per_second_and_commit_latency() {
    use std::io::{Read, Write};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_kbench"))
        .args(["produce", "--duration", "4s", "--record-size", "100"])
        .args(["--throughput", "1000", "--transaction-duration-ms", "100"])
        .args(["--reporting-interval", "500ms", "--metrics-listen", &addr])
        .arg("--output-dir")
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
    let rate_of = |t: &str| -> f64 {
        t.lines()
            .find_map(|l| l.strip_prefix("kbench_transactions_per_sec "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut seen = None;
    while std::time::Instant::now() < deadline && seen.is_none() {
        seen = scrape().filter(|t| rate_of(t) > 0.0);
        std::thread::sleep(Duration::from_millis(300));
    }
    // Bounded: the run is 4 s long.
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = seen.expect("no scrape with transactions during the run");
    let rate = rate_of(&text);
    assert!((4.0..=16.0).contains(&rate), "live transactions/s {rate}");
    assert!(
        text.contains("kbench_commit_latency_us{quantile=\"0.99\"}"),
        "{text}"
    );
}

#[test]
fn a_standalone_consumer_checks_committed_records_only() {
    // `kbench consume` knows nothing of the producers: the committed records' sequence must
    // have no gaps where transactions aborted, or it would report the aborted ones as lost.
    let broker = kafka_common::BundledBroker::start(&[]);
    let b = broker.bootstrap.as_str();
    let dir = tempfile::tempdir().unwrap();
    let (_, s) = run_ok(
        &dir.path().join("p"),
        &[
            "produce",
            "--bootstrap-server",
            b,
            "--topic",
            "sc",
            "--num-records",
            "2000",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--transaction-records",
            "100",
            "--transaction-abort-rate",
            "0.4",
            "--seed",
            "9",
        ],
    );
    let aborted = u64_at(&s, "/phases/0/produce/transactions/aborted_records");
    assert!(aborted > 0 && aborted < 2000, "{aborted}");
    let committed = (2000 - aborted).to_string();
    let (_, rc) = run_ok(
        &dir.path().join("rc"),
        &[
            "consume",
            "--bootstrap-server",
            b,
            "--topic",
            "sc",
            "--num-records",
            &committed,
            "--isolation-level",
            "read_committed",
            "--timeout",
            "5000",
        ],
    );
    let v = &rc["verification"];
    assert_eq!(v["method"], "sequence_gaps", "{v:#}");
    assert_eq!(u64_at(v, "/consumed_distinct"), 2000 - aborted, "{v:#}");
    assert_eq!(
        (v["lost"].as_u64(), v["aborted_seen"].as_u64()),
        (Some(0), Some(0)),
        "{v:#}"
    );
    let (_, ru) = run_ok(
        &dir.path().join("ru"),
        &[
            "consume",
            "--bootstrap-server",
            b,
            "--topic",
            "sc",
            "--num-records",
            "2000",
            "--isolation-level",
            "read_uncommitted",
            "--timeout",
            "5000",
        ],
    );
    let v = &ru["verification"];
    assert_eq!(u64_at(v, "/aborted_seen"), aborted, "{v:#}");
    assert_eq!(
        (v["lost"].as_u64(), v["duplicated"].as_u64()),
        (Some(0), Some(0)),
        "{v:#}"
    );
}

#[test]
fn with_a_duration_and_a_record_count_whichever_comes_first_ends_a_transaction() {
    let per_txn = |records: &str| {
        let dir = tempfile::tempdir().unwrap();
        let (_, s) = run_ok(
            dir.path(),
            &[
                "produce",
                "--num-records",
                "1000",
                "--record-size",
                "100",
                "--throughput",
                "2000",
                "--transaction-duration-ms",
                "100",
                "--transaction-records",
                records,
            ],
        );
        s["phases"][0]["produce"]["transactions"]["records_per_transaction"]
            .as_f64()
            .unwrap()
    };
    // 2000 records/s: 100 ms is 200 records (201 with the one that crosses it).
    assert_eq!(per_txn("50"), 50.0);
    let by_time = per_txn("500");
    assert!((190.0..=202.0).contains(&by_time), "{by_time}");
}
