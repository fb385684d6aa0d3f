//! `kbench report`: a self-contained report.html with every chart, and that page rendered by
//! headless Chromium without console errors and with something on screen.

mod result_fixtures;

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use result_fixtures::{intervals, kbench, write_run, Phase};
use serde_json::json;

/// A ramp with matrix parameters: warm-up, then three steps whose latency climbs with rate.
fn ramp() -> Vec<Phase> {
    let step = |i: u64, rate: f64, centre: f64| Phase {
        name: format!("step-{i}"),
        params: Some(json!({"acks": "all", "linger.ms": (i * 5).to_string()})),
        target_rate: Some(rate),
        intervals: intervals(6, (rate / 10.0) as usize, centre, 0.5, 0.2, i),
    };
    vec![
        Phase {
            name: "warmup".into(),
            params: None,
            target_rate: None,
            intervals: intervals(3, 100, 30_000.0, 0.5, 0.2, 9),
        },
        step(1, 1000.0, 4_000.0),
        step(2, 2000.0, 6_000.0),
        step(3, 4000.0, 25_000.0),
    ]
}

fn report(dir: &Path) -> PathBuf {
    let run = write_run(dir, "ramp", "0000abcd", &ramp());
    kbench(&["report", run.to_str().unwrap()]).assert().code(0);
    run
}

#[test]
fn writes_a_self_contained_report_with_every_chart() {
    let dir = tempfile::tempdir().unwrap();
    let run = report(dir.path());
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    for svg in [
        "throughput.svg",
        "latency.svg",
        "spectrum.svg",
        "latency-vs-throughput.svg",
        "cells.svg",
        "host-cpu.svg",
        "host-io.svg",
        "lag.svg",
    ] {
        let text = std::fs::read_to_string(run.join(svg)).unwrap_or_else(|e| panic!("{svg}: {e}"));
        assert!(
            text.starts_with("<svg") && text.trim_end().ends_with("</svg>"),
            "{svg}"
        );
        assert!(html.contains(&text), "{svg} is not inlined in report.html");
    }
    assert_eq!(html.matches("<svg").count(), 8);
    // Nothing to fetch: no script, no stylesheet link, no image or font URL.
    for needle in ["<script", "<link", "src=", "url(", "https://", "@import"] {
        assert!(!html.contains(needle), "report.html contains {needle}");
    }
    // The matrix parameters key the cells, the target rates are shown, warm-up is marked.
    assert!(html.contains("acks=all, linger.ms=10"));
    assert!(html.contains("<td>2000</td>"));
    assert!(html.contains("3 warm-up interval(s)"));
}

#[test]
fn a_missing_run_folder_fails_with_exit_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    kbench(&["report", dir.path().join("nope").to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("nope/summary.json"));
}

#[test]
fn report_renders_in_headless_chromium_without_console_errors() {
    let found = ["chromium", "chromium-browser"].iter().any(|b| {
        Process::new("sh")
            .args(["-c", &format!("command -v {b}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !found {
        // On a developer machine a missing browser skips; in CI it is a failure.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no chromium: run scripts/install-test-deps.sh"
        );
        eprintln!("skipped: no chromium (scripts/install-test-deps.sh installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = report(dir.path());
    // Kept after the test, for a person to look at.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshot.png");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check-report-in-chromium.sh");
    let out = Process::new("bash")
        .arg(&script)
        .arg(run.join("report.html"))
        .arg(&shot)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
