//! `kbench compare`: exit codes (0 no regression, 1 regression, 2 bad input), noise handling
//! and the three output formats, on result folders made from known latencies.

mod result_fixtures;

use predicates::prelude::*;
use result_fixtures::{intervals, kbench, measured, write_run, Phase};

/// 20 one-second intervals of 200 records around `centre_us`.
fn steady(centre_us: f64, seed: u64) -> Vec<Phase> {
    vec![measured(intervals(20, 200, centre_us, 0.2, 0.03, seed))]
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn same_workload_twice_is_not_a_regression() {
    let dir = tempfile::tempdir().unwrap();
    let base = write_run(dir.path(), "base", "00000001", &steady(10_000.0, 1));
    let new = write_run(dir.path(), "new", "00000002", &steady(10_000.0, 2));
    kbench(&["compare", path(&base), path(&new)])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("produce p99"))
        .stdout(predicate::str::contains("no regression"));
}

#[test]
fn latency_thirty_percent_higher_is_a_regression_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let base = write_run(dir.path(), "base", "00000001", &steady(10_000.0, 1));
    let new = write_run(dir.path(), "new", "00000002", &steady(13_000.0, 2));
    kbench(&["compare", path(&base), path(&new)])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("REGRESSION"));
}

#[test]
fn a_regression_in_reverse_is_an_improvement() {
    let dir = tempfile::tempdir().unwrap();
    let base = write_run(dir.path(), "base", "00000001", &steady(13_000.0, 1));
    let new = write_run(dir.path(), "new", "00000002", &steady(10_000.0, 2));
    kbench(&["compare", path(&base), path(&new)])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("improvement"));
}

#[test]
fn a_small_significant_change_within_the_limit_passes() {
    let dir = tempfile::tempdir().unwrap();
    let base = write_run(dir.path(), "base", "00000001", &steady(10_000.0, 1));
    let new = write_run(dir.path(), "new", "00000002", &steady(10_300.0, 1));
    kbench(&["compare", path(&base), path(&new), "--max-regression", "5%"])
        .assert()
        .code(0);
    // The same change fails a tighter limit: it is significant, only small.
    kbench(&["compare", path(&base), path(&new), "--max-regression", "1"])
        .assert()
        .code(1);
}

#[test]
fn a_large_change_within_the_noise_is_not_a_regression() {
    let dir = tempfile::tempdir().unwrap();
    // Intervals that swing by ±90%: 20% higher latency (same draws, scaled) is within the noise.
    let base = vec![measured(intervals(6, 200, 10_000.0, 0.05, 0.9, 7))];
    let new = vec![measured(intervals(6, 200, 12_000.0, 0.05, 0.9, 7))];
    let base = write_run(dir.path(), "base", "00000001", &base);
    let new = write_run(dir.path(), "new", "00000002", &new);
    let out = kbench(&["compare", path(&base), path(&new), "--format", "json"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let p99 = doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metric"] == "produce p99")
        .unwrap();
    assert!(p99["change_pct"].as_f64().unwrap() > 5.0, "{p99}");
    assert!(p99["p_value"].as_f64().unwrap() >= 0.05, "{p99}");
    assert_eq!(p99["verdict"], "unchanged");
}

#[test]
fn markdown_output_is_a_table_with_marks() {
    let dir = tempfile::tempdir().unwrap();
    let base = write_run(dir.path(), "base", "00000001", &steady(10_000.0, 1));
    let new = write_run(dir.path(), "new", "00000002", &steady(13_000.0, 2));
    kbench(&["compare", path(&base), path(&new), "--format", "markdown"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("|---|"))
        .stdout(predicate::str::contains(
            "| ❌ | measured | produce p99 (ms) |",
        ))
        .stdout(predicate::str::contains(
            "| ✅ | measured | produce records/s",
        ));
}

#[test]
fn accepts_summary_json_paths_as_well_as_folders() {
    let dir = tempfile::tempdir().unwrap();
    let base = write_run(dir.path(), "base", "00000001", &steady(10_000.0, 1));
    let new = write_run(dir.path(), "new", "00000002", &steady(10_000.0, 2));
    let summary = new.join("summary.json");
    kbench(&["compare", path(&base), path(&summary)])
        .assert()
        .code(0);
}

#[test]
fn fails_with_exit_2_naming_a_missing_summary() {
    let dir = tempfile::tempdir().unwrap();
    let base = write_run(dir.path(), "base", "00000001", &steady(10_000.0, 1));
    let missing = dir.path().join("nope");
    kbench(&["compare", path(&base), path(&missing)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nope/summary.json"));
}

#[test]
fn fails_with_exit_2_naming_a_missing_timeseries() {
    let dir = tempfile::tempdir().unwrap();
    let base = write_run(dir.path(), "base", "00000001", &steady(10_000.0, 1));
    let new = write_run(dir.path(), "new", "00000002", &steady(10_000.0, 2));
    std::fs::remove_file(new.join("timeseries.csv")).unwrap();
    kbench(&["compare", path(&base), path(&new)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("new/timeseries.csv"));
}

#[test]
fn fails_with_exit_2_when_no_phase_is_in_common() {
    let dir = tempfile::tempdir().unwrap();
    let base = write_run(dir.path(), "base", "00000001", &steady(10_000.0, 1));
    let mut other = steady(10_000.0, 2);
    other[0].name = "step-1".into();
    let new = write_run(dir.path(), "new", "00000002", &other);
    kbench(&["compare", path(&base), path(&new)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no phase"))
        .stderr(predicate::str::contains("step-1"));
}

#[test]
fn fails_with_exit_2_on_a_bad_percentage() {
    let dir = tempfile::tempdir().unwrap();
    let base = write_run(dir.path(), "base", "00000001", &steady(10_000.0, 1));
    kbench(&[
        "compare",
        path(&base),
        path(&base),
        "--max-regression",
        "lots",
    ])
    .assert()
    .code(2)
    .stderr(predicate::str::contains("--max-regression"));
}

#[test]
fn phases_are_matched_by_name_not_position() {
    let dir = tempfile::tempdir().unwrap();
    let phase = |name: &str, centre: f64, seed| Phase {
        name: name.into(),
        params: None,
        target_rate: Some(1000.0),
        intervals: intervals(10, 200, centre, 0.2, 0.03, seed),
    };
    let base = vec![phase("step-1", 5_000.0, 1), phase("step-2", 20_000.0, 2)];
    let new = vec![phase("step-2", 20_000.0, 3), phase("step-1", 5_000.0, 4)];
    let base = write_run(dir.path(), "base", "00000001", &base);
    let new = write_run(dir.path(), "new", "00000002", &new);
    kbench(&["compare", path(&base), path(&new)])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("step-2"));
}

/// Sets `config.<pointer>` (a JSON pointer below `config`) in a run's summary.json.
fn set_config(run: &std::path::Path, pointer: &str, value: serde_json::Value) {
    let file = run.join("summary.json");
    let mut doc = result_fixtures::read_json(&file);
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
    let slot = doc["config"]
        .pointer_mut(parent)
        .and_then(|p| p.as_object_mut())
        .unwrap_or_else(|| panic!("no config{parent} in {}", file.display()));
    slot.insert(key.to_string(), value);
    std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

fn json_of(out: &[u8]) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_slice(out).expect("JSON on stdout");
    result_fixtures::validate_compare(&doc);
    doc
}

fn row<'a>(doc: &'a serde_json::Value, metric: &str) -> &'a serde_json::Value {
    doc["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metric"] == metric)
        .unwrap_or_else(|| panic!("no {metric} row in {doc}"))
}

/// Two intervals a side: too few for the t-test.
fn short(centre_us: f64, seed: u64) -> Vec<Phase> {
    vec![measured(intervals(2, 200, centre_us, 0.2, 0.03, seed))]
}

#[test]
fn a_73_percent_drop_between_two_short_real_runs_fails_the_gate() {
    // The report of issue 8: one 5 s reporting interval per run, 30,000 vs 8,000 records/s.
    let dir = tempfile::tempdir().unwrap();
    let produce = |rate: &str, name: &str| {
        let out = dir.path().join(name);
        kbench(&[
            "produce",
            "--throughput",
            rate,
            "--record-size",
            "100",
            "--duration",
            "5s",
            "--output-dir",
            path(&out),
        ])
        .env("KBENCH_NO_PROGRESS", "1")
        .assert()
        .code(0);
        let runs: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
        assert_eq!(runs.len(), 1, "one run folder in {}", out.display());
        runs.into_iter().next().unwrap().unwrap().path()
    };
    let base = produce("30000", "base");
    let new = produce("8000", "new");
    let args = ["compare", path(&base), path(&new), "--max-regression", "5%"];

    let text = kbench(&args).assert().code(1).get_output().stdout.clone();
    let text = String::from_utf8(text).unwrap();
    let table = text.find("produce records/s").expect("a throughput row");
    let difference = text
        .find("producer.timeline.phases[measured].rate: 30000 → 8000")
        .unwrap_or_else(|| panic!("the rate difference is not stated:\n{text}"));
    assert!(
        difference < table,
        "differences go above the table:\n{text}"
    );
    let throughput_row = text[table..].lines().next().unwrap();
    assert!(throughput_row.contains("UNTESTED"), "{text}");
    assert!(
        text.contains("--reporting-interval 1s or shorter"),
        "{text}"
    );
    assert!(text.contains("FAILED"), "{text}");

    let md = kbench(&[&args[..], &["--format", "markdown"]].concat())
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let md = String::from_utf8(md).unwrap();
    assert!(md.starts_with("### ❌ kbench compare"), "{md}");
    assert!(md.contains("> - `producer.timeline.phases[measured].rate: 30000 → 8000`"));
    assert!(
        md.contains("| ❌ untested | measured | produce records/s"),
        "{md}"
    );

    let out = kbench(&[&args[..], &["--format", "json"]].concat())
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let doc = json_of(&out);
    assert_eq!(doc["passed"], false);
    assert_eq!(
        doc["config_differences"],
        serde_json::json!([{"field": "producer.timeline.phases[measured].rate", "base": 30000.0, "new": 8000.0}])
    );
    let rate = row(&doc, "produce records/s");
    assert_eq!(rate["verdict"], "untested", "{rate}");
    assert!(rate["change_pct"].as_f64().unwrap() < -50.0, "{rate}");
    assert!(rate["note"]
        .as_str()
        .unwrap()
        .contains("1+1 full intervals"));

    // Accepted on request, visibly.
    kbench(&[&args[..], &["--accept-untested"]].concat())
        .assert()
        .code(0)
        .stdout(predicate::str::contains("UNTESTED"))
        .stdout(predicate::str::contains("accepted with --accept-untested"))
        .stderr(predicate::str::contains("warning"))
        .stderr(predicate::str::contains("--accept-untested"));
}

#[test]
fn an_untested_latency_rise_beyond_the_limit_fails_unless_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let base = write_run(dir.path(), "base", "00000001", &short(10_000.0, 1));
    let new = write_run(dir.path(), "new", "00000002", &short(13_000.0, 2));
    let out = kbench(&["compare", path(&base), path(&new), "--format", "json"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let doc = json_of(&out);
    let p99 = row(&doc, "produce p99");
    assert_eq!(p99["verdict"], "untested", "{p99}");
    assert!(p99["p_value"].is_null());
    let note = p99["note"].as_str().unwrap();
    assert!(
        note.contains("2+2 full intervals") && note.contains("3 per run"),
        "{note}"
    );
    // Two 1 s intervals make 2 s phases: 500ms intervals give 4, one to spare.
    assert!(
        note.contains("--reporting-interval 500ms or shorter"),
        "{note}"
    );
    assert!(doc["untested"].as_u64().unwrap() > 0);
    assert_eq!(doc["regressions"], 0);
    // Throughput did not change: not untested, just ok.
    assert_eq!(row(&doc, "produce records/s")["verdict"], "unchanged");

    let out = kbench(&[
        "compare",
        path(&base),
        path(&new),
        "--format",
        "json",
        "--accept-untested",
    ])
    .assert()
    .code(0)
    .stderr(predicate::str::contains(
        "pass only because of --accept-untested",
    ))
    .get_output()
    .stdout
    .clone();
    let doc = json_of(&out);
    assert_eq!(doc["passed"], true);
    assert_eq!(doc["accept_untested"], true);
    assert_eq!(row(&doc, "produce p99")["verdict"], "untested");
}

#[test]
fn a_change_within_the_limit_with_too_few_intervals_stays_ok() {
    let dir = tempfile::tempdir().unwrap();
    let base = write_run(dir.path(), "base", "00000001", &short(10_000.0, 1));
    let new = write_run(dir.path(), "new", "00000002", &short(10_000.0, 1));
    kbench(&["compare", path(&base), path(&new)])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("n/a (2+2 intervals)"))
        .stdout(predicate::str::contains("UNTESTED").not())
        .stdout(predicate::str::contains("no regression ("));
}

#[test]
fn differences_in_what_the_runs_asked_for_are_listed_above_the_table_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let base = write_run(dir.path(), "base", "00000001", &steady(10_000.0, 1));
    let new = write_run(dir.path(), "new", "00000002", &steady(10_000.0, 2));
    set_config(
        &base,
        "/producer",
        serde_json::json!({"props": {"acks": "1"}}),
    );
    set_config(
        &new,
        "/producer",
        serde_json::json!({"props": {"acks": "all"}}),
    );
    set_config(&new, "/target/partitions", serde_json::json!(4));
    // Where the runs went and where their results went is not the workload.
    set_config(
        &new,
        "/bootstrap_servers",
        serde_json::json!("127.0.0.1:9999"),
    );
    set_config(&new, "/output/name", serde_json::json!("other"));

    let text = kbench(&["compare", path(&base), path(&new)])
        .assert()
        .code(0)
        .stderr(predicate::str::contains("2 field(s) differ"))
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(text).unwrap();
    let header = text.find("┆ metric").expect("a table");
    for d in ["producer.props.acks: 1 → all", "target.partitions: 1 → 4"] {
        let at = text
            .find(d)
            .unwrap_or_else(|| panic!("'{d}' missing:\n{text}"));
        assert!(at < header, "'{d}' is not above the table:\n{text}");
    }
    assert!(text.contains("different workloads"), "{text}");
    assert!(!text.contains("bootstrap_servers") && !text.contains("output.name"));

    kbench(&["compare", path(&base), path(&new), "--format", "markdown"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "different workloads, so a change below may come from that, not from the system:\n>\n> - `producer.props.acks: 1 → all`\n> - `target.partitions: 1 → 4`\n\n| | phase",
        ));

    let out = kbench(&["compare", path(&base), path(&new), "--format", "json"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    assert_eq!(
        json_of(&out)["config_differences"],
        serde_json::json!([
            {"field": "producer.props.acks", "base": "1", "new": "all"},
            {"field": "target.partitions", "base": 1, "new": 4}
        ])
    );
}

#[test]
fn runs_that_asked_for_the_same_workload_state_no_difference() {
    let dir = tempfile::tempdir().unwrap();
    let base = write_run(dir.path(), "base", "00000001", &steady(10_000.0, 1));
    let new = write_run(dir.path(), "new", "00000002", &steady(10_000.0, 2));
    for format in ["text", "markdown"] {
        kbench(&["compare", path(&base), path(&new), "--format", format])
            .assert()
            .code(0)
            .stdout(predicate::str::contains("different workloads").not())
            .stderr(predicate::str::contains("different workloads").not());
    }
    let out = kbench(&["compare", path(&base), path(&new), "--format", "json"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    assert_eq!(json_of(&out)["config_differences"], serde_json::json!([]));
}

#[test]
fn help_documents_accept_untested_and_its_exit_code() {
    kbench(&["compare", "--help"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("--accept-untested"))
        .stdout(predicate::str::contains("UNTESTED"))
        .stdout(predicate::str::contains("untested change for the worse"));
}
