//! `kbench merge`: merging the results of two workers that each saw half the records gives
//! exactly the result of one run that saw them all (histograms add, counts and rates sum).

mod result_fixtures;

use kbench::report::summary::decode_histogram;
use predicates::prelude::*;
use result_fixtures::{intervals, kbench, read_json, validate, write_run, Interval, Phase};
use serde_json::Value;

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// The whole run: a warm-up (time series only) and two phases with different latencies.
fn whole() -> Vec<Phase> {
    let phase = |name: &str, ivs| Phase {
        name: name.into(),
        params: None,
        target_rate: None,
        intervals: ivs,
    };
    vec![
        phase("warmup", intervals(2, 100, 30_000.0, 0.5, 0.1, 9)),
        phase("measured", intervals(8, 301, 10_000.0, 0.6, 0.2, 1)),
        phase("step-2", intervals(5, 200, 40_000.0, 0.9, 0.3, 2)),
    ]
}

/// Worker `w` of 2: every other record of every interval, and its share of the lag.
fn half(phases: &[Phase], w: usize) -> Vec<Phase> {
    let pick = |v: &Vec<u64>| v.iter().skip(w).step_by(2).copied().collect();
    phases
        .iter()
        .map(|p| Phase {
            intervals: p
                .intervals
                .iter()
                .map(|i| Interval {
                    secs: i.secs,
                    produce_us: pick(&i.produce_us),
                    e2e_us: pick(&i.e2e_us),
                    lag: i.lag / 2,
                })
                .collect(),
            ..p.clone()
        })
        .collect()
}

fn phase<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap()
}

fn close(a: &Value, b: &Value, what: &str) {
    let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
    assert!(
        (a - b).abs() <= 1e-9 * b.abs().max(1.0),
        "{what}: merged {a} != whole {b}"
    );
}

#[test]
fn merging_two_halves_equals_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let all = whole();
    let whole_dir = write_run(dir.path(), "whole", "0000000a", &all);
    let a = write_run(dir.path(), "worker-0", "0000000b", &half(&all, 0));
    let b = write_run(dir.path(), "worker-1", "0000000c", &half(&all, 1));
    let out = dir.path().join("merged");
    kbench(&[
        "merge",
        path(&a),
        path(&b),
        "--output-dir",
        path(&out),
        "--name",
        "merged",
    ])
    .assert()
    .code(0);

    let merged = read_json(&out.join("summary.json"));
    validate(&merged);
    let expected = read_json(&whole_dir.join("summary.json"));
    assert_eq!(merged["name"], "merged");
    assert_eq!(merged["verification"], expected["verification"]);
    for name in ["measured", "step-2"] {
        let (m, w) = (phase(&merged, name), phase(&expected, name));
        for h in ["produce_latency_us", "service_latency_us", "e2e_latency_us"] {
            let mh = decode_histogram(m["histograms"][h].as_str().unwrap()).unwrap();
            let wh = decode_histogram(w["histograms"][h].as_str().unwrap()).unwrap();
            assert!(
                mh == wh,
                "{name} {h}: merged histogram differs from the whole"
            );
        }
        assert!(m["histograms"]["send_delay_us"].is_null());
        // Every percentile is recomputed from the added histograms, so all of them match.
        assert_eq!(
            m["produce"]["latency_us"], w["produce"]["latency_us"],
            "{name}"
        );
        assert_eq!(
            m["consume"]["e2e_latency_us"], w["consume"]["e2e_latency_us"],
            "{name}"
        );
        for k in ["records", "bytes", "errors"] {
            assert_eq!(m["produce"][k], w["produce"][k], "{name} produce.{k}");
        }
        for k in ["records", "bytes", "lost", "max_lag"] {
            assert_eq!(m["consume"][k], w["consume"][k], "{name} consume.{k}");
        }
        close(&m["duration_sec"], &w["duration_sec"], "duration_sec");
        for k in ["records_per_sec", "mb_per_sec"] {
            close(&m["produce"][k], &w["produce"][k], k);
            close(&m["consume"][k], &w["consume"][k], k);
        }
    }
}

#[test]
fn merged_timeseries_aligns_intervals_and_sums_rates() {
    let dir = tempfile::tempdir().unwrap();
    let all = whole();
    let whole_dir = write_run(dir.path(), "whole", "0000000a", &all);
    let a = write_run(dir.path(), "worker-0", "0000000b", &half(&all, 0));
    let b = write_run(dir.path(), "worker-1", "0000000c", &half(&all, 1));
    let out = dir.path().join("merged");
    kbench(&["merge", path(&a), path(&b), "--output-dir", path(&out)])
        .assert()
        .code(0);

    let read = |p: &std::path::Path| -> Vec<csv::StringRecord> {
        csv::Reader::from_path(p)
            .unwrap()
            .records()
            .map(Result::unwrap)
            .collect()
    };
    let merged = read(&out.join("timeseries.csv"));
    let expected = read(&whole_dir.join("timeseries.csv"));
    assert_eq!(merged.len(), expected.len());
    let header = csv::Reader::from_path(out.join("timeseries.csv"))
        .unwrap()
        .headers()
        .unwrap()
        .clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    for (m, w) in merged.iter().zip(&expected) {
        assert_eq!(m[col("phase")], w[col("phase")]);
        assert_eq!(m[col("produce_records")], w[col("produce_records")]);
        assert_eq!(m[col("lag")], w[col("lag")]);
        let f = |r: &csv::StringRecord, c: &str| r[col(c)].parse::<f64>().unwrap();
        assert!((f(m, "produce_records_per_sec") - f(w, "produce_records_per_sec")).abs() < 1e-6);
        // Per-interval percentiles are the worst worker's: never below the true value's half.
        assert!(f(m, "produce_p99_us") > 0.0);
    }
}

#[test]
fn merging_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let all = whole();
    let a = write_run(dir.path(), "worker-0", "0000000b", &half(&all, 0));
    let b = write_run(dir.path(), "worker-1", "0000000c", &half(&all, 1));
    let (o1, o2) = (dir.path().join("m1"), dir.path().join("m2"));
    kbench(&["merge", path(&a), path(&b), "--output-dir", path(&o1)])
        .assert()
        .code(0);
    kbench(&["merge", path(&a), path(&b), "--output-dir", path(&o2)])
        .assert()
        .code(0);
    assert_eq!(
        read_json(&o1.join("summary.json")),
        read_json(&o2.join("summary.json"))
    );
}

#[test]
fn fails_with_exit_2_naming_a_missing_input() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_run(dir.path(), "worker-0", "0000000b", &half(&whole(), 0));
    let missing = dir.path().join("worker-9");
    let out = dir.path().join("merged");
    kbench(&[
        "merge",
        path(&a),
        path(&missing),
        "--output-dir",
        path(&out),
    ])
    .assert()
    .code(2)
    .stderr(predicate::str::contains("worker-9/summary.json"));
}

#[test]
fn fails_with_exit_2_on_runs_of_different_commands() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_run(dir.path(), "worker-0", "0000000b", &half(&whole(), 0));
    let b = write_run(dir.path(), "worker-1", "0000000c", &half(&whole(), 1));
    let mut doc = read_json(&b.join("summary.json"));
    doc["command"] = "produce".into();
    std::fs::write(b.join("summary.json"), doc.to_string()).unwrap();
    let out = dir.path().join("merged");
    kbench(&["merge", path(&a), path(&b), "--output-dir", path(&out)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("worker-1"))
        .stderr(predicate::str::contains("'produce' run"));
}

/// Merges a good worker folder with `empty`; exit 2 naming `empty`, nothing written.
fn refuses_a_folder_without_measurements(spoil: impl Fn(&std::path::Path), why: &str) {
    let dir = tempfile::tempdir().unwrap();
    let a = write_run(dir.path(), "worker-0", "0000000b", &half(&whole(), 0));
    let b = write_run(dir.path(), "worker-1", "0000000c", &half(&whole(), 1));
    spoil(&b);
    let out = dir.path().join("merged");
    kbench(&["merge", path(&a), path(&b), "--output-dir", path(&out)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "'{}' holds no measurements: {why}",
            b.display()
        )))
        .stderr(predicate::str::contains(
            "leave that folder out of the merge",
        ))
        .stderr(predicate::str::contains("'phase' column").not());
    assert!(!out.join("summary.json").exists(), "nothing is written");
}

#[test]
fn a_worker_folder_with_an_empty_timeseries_is_named_as_holding_no_measurements() {
    // What an idle worker left (issue 8): merge failed with "has no 'phase' column".
    refuses_a_folder_without_measurements(
        |b| std::fs::write(b.join("timeseries.csv"), "").unwrap(),
        "its timeseries.csv has no rows",
    );
}

#[test]
fn a_worker_folder_with_a_header_only_timeseries_is_named_as_holding_no_measurements() {
    refuses_a_folder_without_measurements(
        |b| {
            let csv = std::fs::read_to_string(b.join("timeseries.csv")).unwrap();
            let header = csv.lines().next().unwrap();
            std::fs::write(b.join("timeseries.csv"), format!("{header}\n")).unwrap();
        },
        "its timeseries.csv has no rows",
    );
}

#[test]
fn a_worker_folder_whose_summary_has_no_phases_is_named_as_holding_no_measurements() {
    refuses_a_folder_without_measurements(
        |b| {
            let mut doc = read_json(&b.join("summary.json"));
            doc["phases"] = serde_json::json!([]);
            std::fs::write(b.join("summary.json"), doc.to_string()).unwrap();
            std::fs::write(b.join("timeseries.csv"), "").unwrap();
        },
        "its summary.json has no phases",
    );
}

/// Sets each phase's produce and consume windows in a written run's summary.json.
fn set_windows(run: &std::path::Path, produce: f64, consume: f64) {
    let file = run.join("summary.json");
    let mut doc = read_json(&file);
    for ph in doc["phases"].as_array_mut().unwrap() {
        ph["produce_window_sec"] = produce.into();
        ph["consume_window_sec"] = consume.into();
    }
    std::fs::write(&file, serde_json::to_string(&doc).unwrap()).unwrap();
}

#[test]
fn merged_windows_are_the_longest_workers() {
    let dir = tempfile::tempdir().unwrap();
    let all = whole();
    let a = write_run(dir.path(), "worker-0", "0000000b", &half(&all, 0));
    let b = write_run(dir.path(), "worker-1", "0000000c", &half(&all, 1));
    set_windows(&a, 4.1, 4.9);
    set_windows(&b, 4.2, 4.6);
    let out = dir.path().join("merged");
    kbench(&["merge", path(&a), path(&b), "--output-dir", path(&out)])
        .assert()
        .code(0);
    let merged = read_json(&out.join("summary.json"));
    validate(&merged);
    for name in ["measured", "step-2"] {
        let m = phase(&merged, name);
        assert_eq!(m["produce_window_sec"], 4.2, "{name}");
        assert_eq!(m["consume_window_sec"], 4.9, "{name}");
    }
}
