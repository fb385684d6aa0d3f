//! Faults on the timeline, through the binary, on librdkafka's mock cluster: a leader switch,
//! a broker down for 3 s, a NOT_LEADER_OR_FOLLOWER burst, an exec hook (and, on the bundled
//! broker, consumers leaving, joining and killed, with the rebalance pause three ways); the
//! figures in
//! summary.json (validated against the schema), thresholds over them, and every bad fault spec
//! exiting 2 with the field named. Timing-sensitive runs go one at a time.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::*;
use serde_json::Value;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fixed-rate produce run on the mock cluster with the given extra arguments.
fn produce_on_mock(dir: &std::path::Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    let mut args = vec![
        "produce",
        "--embedded",
        "mock",
        "--record-size",
        "100",
        "--throughput",
        "500",
        "--acks",
        "all",
        "--linger-ms",
        "0",
        "--reporting-interval",
        "1s",
        "--producer-props",
        "reconnect.backoff.max.ms=100",
        "retry.backoff.max.ms=100",
    ];
    args.extend_from_slice(extra);
    kbench(dir, &args)
        .timeout(Duration::from_secs(120))
        .assert()
}

fn fault(s: &Value) -> &Value {
    let faults = s["faults"].as_array().expect("faults array");
    assert_eq!(faults.len(), 1, "{faults:?}");
    &faults[0]
}

fn f64_at(v: &Value, path: &[&str]) -> f64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number: {x}"))
}

#[test]
fn a_broker_down_for_3_s_gives_an_ack_gap_of_about_3_s() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    produce_on_mock(
        dir.path(),
        &["--duration", "8s", "--fault", "at=2s kill node:1 for=3s"],
    )
    .success();
    let s = summary(dir.path());
    let f = fault(&s);
    assert_eq!(f["node"], 1);
    let gap = f64_at(f, &["produce", "ack_gap_ms"]);
    assert!(
        (2900.0..=4200.0).contains(&gap),
        "ack gap {gap} ms for a 3 s outage"
    );
    let t_f = f64_at(f, &["t_f_ms"]);
    let t_h = f64_at(f, &["t_h_ms"]);
    assert!(
        (2000.0..2300.0).contains(&t_f) && (5000.0..5300.0).contains(&t_h),
        "{f}"
    );
    // Records sent during the outage waited: the longest delivery is about the outage.
    assert!(f64_at(f, &["produce", "max_delivery_ms"]) >= 2500.0);
    assert!(f64_at(f, &["produce", "time_to_first_ack_ms"]) >= 2500.0);
    let d = &s["durability"];
    assert_eq!(d["acked_lost"], 0, "{d}");
    assert_eq!(d["complete"], true, "{d}");
    assert!(d["acked"].as_u64().unwrap() > 3000);
    // The fault is marked in the time series.
    let csv = std::fs::read_to_string(run_dir(dir.path()).join("timeseries.csv")).unwrap();
    assert!(csv.contains("inject 0 kill node:1 (node 1)"), "{csv}");
    assert!(csv.contains("heal 0 @"), "{csv}");
}

#[test]
fn a_leader_switch_mid_run_loses_nothing_and_stalls_little() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    produce_on_mock(
        dir.path(),
        &[
            "--mock-brokers",
            "3",
            "--partitions",
            "2",
            "--duration",
            "6s",
            "--fault",
            "at=2s terminate leader-of:kbench/0",
        ],
    )
    .success();
    let s = summary(dir.path());
    let f = fault(&s);
    let gap = f64_at(f, &["produce", "ack_gap_ms"]);
    assert!(gap < 1500.0, "ack gap {gap} ms for a leader switch");
    assert_eq!(s["durability"]["acked_lost"], 0);
    assert_eq!(s["durability"]["duplicated"], 0);
    // One-shot: healed when done.
    assert_eq!(f["t_f_ms"], f["t_h_ms"]);
}

#[test]
fn injected_not_leader_errors_are_retried_without_loss() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    produce_on_mock(
        dir.path(),
        &[
            "--mock-brokers",
            "2",
            "--duration",
            "5s",
            "--fault",
            "at=2s terminate leader-of:kbench/0",
        ],
    )
    .success();
    let s = summary(dir.path());
    let f = fault(&s);
    // The burst was retried by the client: nothing failed, nothing lost, and the retries
    // show in librdkafka's counters recorded with the fault.
    assert_eq!(f64_at(f, &["produce", "failed"]), 0.0, "{f}");
    let retries = f64_at(f, &["produce", "retries"]);
    assert!(
        retries >= 1.0,
        "the NOT_LEADER answers were not retried: {f}"
    );
    assert_eq!(s["durability"]["acked_lost"], 0);
    assert_eq!(s["durability"]["failed"], 0);
    let produced = s["phases"][0]["produce"]["records"].as_u64().unwrap();
    assert!(produced >= 2400, "{produced}");
}

#[test]
fn an_exec_hook_runs_on_time_with_the_target_in_its_environment() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hook.txt");
    let hook = format!(
        "echo \"$KBENCH_FAULT_PHASE $KBENCH_FAULT_ACTION $KBENCH_FAULT_TARGET $KBENCH_FAULT_NODE $KBENCH_FAULT_TOPIC $KBENCH_FAULT_PARTITION $KBENCH_BOOTSTRAP\" >> {}",
        out.display()
    );
    let spec = format!("at=1500ms exec leader-of:kbench/0 exec='{hook}' heal_exec='{hook}' for=1s");
    produce_on_mock(dir.path(), &["--duration", "4s", "--fault", &spec]).success();
    let text = std::fs::read_to_string(&out).expect("the hook wrote its file");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("inject exec leader-of:kbench/0 1 kbench 0 "),
        "{text}"
    );
    assert!(
        lines[1].starts_with("heal exec leader-of:kbench/0 1 kbench 0 "),
        "{text}"
    );
    let s = summary(dir.path());
    let f = fault(&s);
    let hooks = f["hooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 2);
    assert_eq!(hooks[0]["exit_code"], 0);
    let started = hooks[0]["started_ms"].as_u64().unwrap();
    assert!(
        (1500..1700).contains(&started),
        "hook started at {started} ms"
    );
    let healed = hooks[1]["started_ms"].as_u64().unwrap();
    assert!(
        (2500..2700).contains(&healed),
        "heal hook started at {healed} ms"
    );
}

#[test]
fn a_failing_hook_is_recorded_and_warned_about() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let out = produce_on_mock(
        dir.path(),
        &["--duration", "3s", "--fault", "at=1s exec exec='exit 3'"],
    )
    .success();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.contains("WARNING: fault 0") && err.contains("exit 3"),
        "{err}"
    );
    let s = summary(dir.path());
    assert_eq!(fault(&s)["hooks"][0]["exit_code"], 3);
    assert!(!fault(&s)["errors"].as_array().unwrap().is_empty());
}

#[test]
fn a_threshold_on_the_ack_gap_fails_the_run_with_exit_1() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p.toml");
    std::fs::write(
        &profile,
        r#"
name = "gap"
mode = "produce"
thresholds = ["fault.ack_gap_ms < 1s", "fault.acked_lost == 0"]
[target]
embedded = "mock"
topic = "gap"
[workload]
record_size = 100
[producer_props]
"reconnect.backoff.max.ms" = 100
[[phases]]
name = "steady"
rate = 500
duration = "5s"
[[faults]]
at = "1s"
action = "kill"
target = "node:1"
for = "2s"
"#,
    )
    .unwrap();
    let out = kbench(dir.path(), &["run", profile.to_str().unwrap()])
        .timeout(Duration::from_secs(120))
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("FAIL") && stdout.contains("fault.ack_gap_ms < 1s"),
        "{stdout}"
    );
    assert!(
        lines_matching(&out.stdout, r"^\s*ok\s+fault.acked_lost == 0").len() == 1,
        "{stdout}"
    );
}

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
    // Rejected before any load: no result folder.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

fn bad_fault(spec: &str, needles: &[&str]) {
    fails_with(
        &[
            "e2e",
            "--embedded",
            "mock",
            "--mock-brokers",
            "3",
            "--record-size",
            "100",
            "--throughput",
            "100",
            "--duration",
            "10s",
            "--consumers",
            "2",
            "--fault",
            spec,
        ],
        needles,
    );
}

#[test]
fn bad_fault_specs_exit_2_naming_the_field() {
    bad_fault(
        "at=2s explode node:1",
        &["--fault", "unknown action 'explode'", "kill, stop"],
    );
    bad_fault(
        "at=2s kill rack:1",
        &["--fault", "rack:1", "node:N, leader-of:TOPIC/P"],
    );
    bad_fault("at=20s kill node:1", &["--fault.at", "run lasts 10000 ms"]);
    bad_fault(
        "at=2s kill node:4",
        &["--fault.target", "no node 4", "[1, 2, 3]"],
    );
    bad_fault(
        "at=2s consumer-leave consumer:2 exec=true",
        &["--fault.target", "there are 2 consumers"],
    );
    bad_fault(
        "at=2s restart node:1 for=3s",
        &["--fault.for", "cannot heal"],
    );
    bad_fault(
        "at=2s kill leader-of:other/0",
        &["--fault.target", "topic 'other'"],
    );
    bad_fault(
        "at=2s stop node:1",
        &["--fault.action", "mock cluster can do"],
    );
    bad_fault(
        "at=2s consumer-join consumer:3",
        &["--fault.target", "write consumer:2"],
    );
    bad_fault(
        "at=2s consumer-kill consumer:0 repeat=2x3s",
        &["--fault.repeat", "one fault step per member"],
    );
}

#[test]
fn node_faults_without_a_cluster_kbench_can_reach_need_a_cluster_file_or_hooks() {
    fails_with(
        &[
            "produce",
            "--bootstrap-server",
            "127.0.0.1:1",
            "--record-size",
            "100",
            "--throughput",
            "100",
            "--duration",
            "5s",
            "--fault",
            "at=1s kill node:1 for=1s",
        ],
        &["--fault", "--cluster-file", "exec"],
    );
}

#[test]
fn bad_profile_faults_name_their_index() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p.toml");
    std::fs::write(
        &profile,
        "mode = \"produce\"\n[target]\nembedded = \"mock\"\n[workload]\nrecord_size = 100\n[[phases]]\nrate = 10\nduration = \"5s\"\n[[faults]]\nat = \"1s\"\naction = \"kill\"\ntarget = \"node:1\"\n[[faults]]\nat = \"2s\"\naction = \"kill\"\ntarget = \"nodes:1\"\n",
    )
    .unwrap();
    let out = kbench(dir.path(), &["run", profile.to_str().unwrap()])
        .timeout(Duration::from_secs(60))
        .assert()
        .code(2)
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("faults[1].target") && err.contains("nodes:1"),
        "{err}"
    );
}

#[test]
fn a_consumer_leaving_the_group_mid_run_loses_nothing_and_shows_its_gap() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    kbench(
        dir.path(),
        // The bundled broker: librdkafka's mock group coordinator never hands the leaver's
        // partitions to the remaining member within a run this short.
        &[
            "e2e",
            "--partitions",
            "2",
            "--consumers",
            "2",
            "--record-size",
            "100",
            "--throughput",
            "300",
            "--duration",
            "6s",
            "--reporting-interval",
            "1s",
            "--fault",
            "at=2s consumer-leave consumer:1",
        ],
    )
    .timeout(Duration::from_secs(120))
    .assert()
    .success();
    let s = summary(dir.path());
    let f = fault(&s);
    assert!(f["errors"].as_array().unwrap().is_empty(), "{f}");
    assert_eq!(f["t_f_ms"], f["t_h_ms"], "one-shot: {f}");
    let gaps = f["consume"]["consume_gap_ms_per_partition"]
        .as_array()
        .unwrap();
    assert_eq!(gaps.len(), 2, "{f}");
    // The remaining member took the leaver's partition over: every record was consumed.
    assert_eq!(s["verification"]["lost"], 0, "{}", s["verification"]);
    assert_eq!(s["durability"]["acked_lost"], 0);
    // The pause three ways: the remaining member's revoke → assign; the leaver's partition,
    // if it held one yet (the group may still have been settling at 2 s), handed over
    // without waiting for its session; and no whole second without a record.
    let r = &f["consume"]["rebalance"];
    assert!(r["rebalances"].as_u64().unwrap() >= 1, "{r}");
    assert_eq!(
        r["revoke_to_assign_ms_per_member"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    if let Some(handover) = r["handover_ms"].as_f64() {
        assert!(handover < 4_000.0, "{r}");
    }
    assert_eq!(r["group_idle_seconds"], 0, "{r}");
}

/// An e2e run on the bundled broker with consumer faults; returns the summary.
fn e2e_with_consumer_faults(dir: &std::path::Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "e2e",
        "--record-size",
        "100",
        "--throughput",
        "300",
        "--reporting-interval",
        "1s",
    ];
    args.extend_from_slice(extra);
    kbench(dir, &args)
        .timeout(Duration::from_secs(120))
        .assert()
        .success();
    summary(dir)
}

#[test]
fn a_consumer_joining_mid_run_is_measured_and_takes_a_partition_over() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let s = e2e_with_consumer_faults(
        dir.path(),
        &[
            "--partitions",
            "2",
            "--consumers",
            "1",
            "--duration",
            "7s",
            "--fault",
            "at=2s consumer-join consumer:1",
        ],
    );
    let f = fault(&s);
    assert!(f["errors"].as_array().unwrap().is_empty(), "{f}");
    let r = &f["consume"]["rebalance"];
    // Two members now: the first revoked and got one partition back, the new one joined and
    // got the other; both rebalances completed after the fault.
    let per_member = r["revoke_to_assign_ms_per_member"].as_array().unwrap();
    assert_eq!(per_member.len(), 2, "{r}");
    assert!(per_member[1].as_f64().unwrap() > 0.0, "the joiner: {r}");
    assert!(r["rebalances"].as_u64().unwrap() >= 2, "{r}");
    // Exactly one partition changed owner: its records reached the new member.
    let handovers = r["handover_ms_per_partition"].as_array().unwrap();
    assert_eq!(handovers.iter().filter(|h| !h.is_null()).count(), 1, "{r}");
    assert!(r["handover_ms"].as_f64().is_some(), "{r}");
    assert_eq!(s["verification"]["lost"], 0, "{}", s["verification"]);
    assert_eq!(s["durability"]["acked_lost"], 0);
    // The three ways in the report's fault table and in faults.md.
    let run = run_dir(dir.path());
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        html.contains("<h2>Faults</h2>"),
        "no fault table in report.html"
    );
    let md = std::fs::read_to_string(run.join("faults.md")).unwrap();
    let head = md.lines().next().unwrap();
    for col in [
        "revoke→assign ms (ConsumerPerformance)",
        "handover ms",
        "idle s",
    ] {
        assert!(head.contains(col), "{md}");
    }
    assert!(
        md.lines()
            .nth(2)
            .unwrap()
            .contains("consumer-join consumer:1"),
        "{md}"
    );
}

#[test]
fn a_matrix_of_faulted_cells_names_each_fault_s_cell_in_the_fault_table() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p.toml");
    std::fs::write(
        &profile,
        r#"
name = "cells"
mode = "produce"
# Scoped to one cell: only the acks=1 cell is judged (and fails).
thresholds = [{ expr = "fault.ack_gap_ms < 1ms", phase = "acks=1/steady" }]
[target]
embedded = "mock"
topic = "cells"
[workload]
record_size = 100
[producer_props]
"reconnect.backoff.max.ms" = 100
"retry.backoff.max.ms" = 100
[matrix]
"producer_props.acks" = ["1", "all"]
[[phases]]
name = "steady"
rate = 300
duration = "4s"
[[faults]]
at = "1s"
action = "kill"
target = "node:1"
for = "1s"
"#,
    )
    .unwrap();
    let out = kbench(dir.path(), &["run", profile.to_str().unwrap()])
        .timeout(Duration::from_secs(120))
        .assert()
        .code(1)
        .get_output()
        .clone();
    let fails = lines_matching(&out.stdout, r"FAIL.*fault.ack_gap_ms < 1ms");
    assert_eq!(fails.len(), 1, "{}", String::from_utf8_lossy(&out.stdout));
    assert!(fails[0].contains("[acks=1]"), "{fails:?}");
    let s = summary(dir.path());
    let faults = s["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 2, "{faults:?}");
    let cells: Vec<String> = faults.iter().map(|f| f["cell"].to_string()).collect();
    assert!(
        cells[0].contains("\"1\"") && cells[1].contains("\"all\""),
        "{cells:?}"
    );
    let md = std::fs::read_to_string(run_dir(dir.path()).join("faults.md")).unwrap();
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(lines.len(), 4, "{md}");
    assert!(lines[0].starts_with("| cell | fault |"), "{md}");
    assert!(
        lines[2].contains("acks=1 |") && lines[3].contains("acks=all |"),
        "{md}"
    );
    assert!(lines[0].contains("acked lost"), "{md}");
}

#[test]
fn a_killed_consumer_holds_its_partition_until_its_session_expires() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    // One partition, its only member killed at 2 s (no LeaveGroup), a new member joining at
    // 2.5 s: the coordinator waits for the dead member's session (6 s, heartbeats every 1 s)
    // before the new member gets the partition, and meanwhile the group consumes nothing. A
    // member that left instead would hand over within a second (the leave test).
    let s = e2e_with_consumer_faults(
        dir.path(),
        &[
            "--partitions",
            "1",
            "--consumers",
            "1",
            "--duration",
            "12s",
            "--consumer-props",
            "session.timeout.ms=6000",
            "heartbeat.interval.ms=1000",
            "--fault",
            "at=2s consumer-kill consumer:0",
            "--fault",
            "at=2500ms consumer-join consumer:1",
        ],
    );
    let faults = s["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 2, "{faults:?}");
    for f in faults {
        assert!(f["errors"].as_array().unwrap().is_empty(), "{f}");
    }
    // The join's window holds the takeover (the kill's ends 1 s before the join).
    let r = &faults[1]["consume"]["rebalance"];
    let handover = r["handover_ms"].as_f64().unwrap();
    assert!(
        (4_500.0..=9_000.0).contains(&handover),
        "handover {handover} ms for a 6 s session: {r}"
    );
    let idle = r["group_idle_seconds"].as_u64().unwrap();
    assert!((3..=8).contains(&idle), "{idle} idle seconds: {r}");
    // The new member waited in the join until the dead one was dropped.
    let joiner = r["revoke_to_assign_ms_per_member"][1].as_f64().unwrap();
    assert!(joiner >= 3_000.0, "{r}");
    // Nothing acknowledged was lost; what the dead member had not committed came again.
    assert_eq!(s["verification"]["lost"], 0, "{}", s["verification"]);
    assert_eq!(s["durability"]["acked_lost"], 0);
}
