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
