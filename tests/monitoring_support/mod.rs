//! Prometheus in tests (Debian's `prometheus`, see scripts/install-test-deps.sh): the rules
//! files of monitoring/, `promtool` runs, a copy of a rules file with short `for:` durations
//! (so an alert that waits minutes in production fires within a test's seconds), and a real
//! server (`server.rs`: `Prometheus`, `ScrapeJob`).
//!
//! Usage (scrape three broker nodes, fire the under-replicated alert):
//! ```ignore
//! let dir = tempfile::tempdir()?;
//! let rules = fast_rules(&rules_file("kbench-broker.rules.yml"), dir.path(), "1s");
//! let prom = Prometheus::start(&[ScrapeJob::new("kbench-broker", &node_metrics_addrs)], &[rules]);
//! prom.wait_for_query("up{job=\"kbench-broker\"} == 1", 3, Duration::from_secs(10));
//! // ... stop a node ...
//! let alert = prom.wait_for_alert("KbenchUnderReplicatedPartitions", Duration::from_secs(20));
//! ```
#![allow(dead_code)]

mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub use server::{Prometheus, ScrapeJob};

/// The repository's `monitoring/` directory.
pub fn monitoring_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("monitoring")
}

/// A rules file in `monitoring/`, e.g. `rules_file("kbench-live.rules.yml")`.
pub fn rules_file(name: &str) -> PathBuf {
    monitoring_dir().join(name)
}

fn answers(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `prometheus` and `promtool` are installed. Required under CI; elsewhere a missing
/// one skips the test loudly (the convention of the other peers).
pub fn require_prometheus() -> bool {
    if answers("promtool") && answers("prometheus") {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0") {
        panic!("prometheus and promtool are required under CI; run scripts/install-test-deps.sh");
    }
    eprintln!("\n!!!!!!!! SKIPPING: prometheus/promtool are not installed (run scripts/install-test-deps.sh) !!!!!!!!\n");
    false
}

/// Runs `promtool ARGS...` and returns its output (it exits within seconds on its own).
pub fn promtool(args: &[&std::ffi::OsStr]) -> Output {
    Command::new("promtool")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run promtool")
}

/// Output as text, stdout then stderr.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A copy of the rules file `src` in `dir` with every `for:` set to `for_` (a Prometheus
/// duration such as "1s"): expressions and thresholds stay those of the shipped file.
pub fn fast_rules(src: &Path, dir: &Path, for_: &str) -> PathBuf {
    let mut doc = read_yaml(src);
    for rule in rules_mut(&mut doc) {
        if rule.get("for").is_some() {
            rule["for"] = serde_norway::Value::String(for_.into());
        }
    }
    let dst = dir.join(src.file_name().expect("a file name"));
    write_yaml(&dst, &doc);
    dst
}

pub fn read_yaml(path: &Path) -> serde_norway::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn write_yaml(path: &Path, doc: &serde_norway::Value) {
    let text = serde_norway::to_string(doc).expect("yaml");
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Every rule of every group of a rules document.
pub fn rules_mut(doc: &mut serde_norway::Value) -> impl Iterator<Item = &mut serde_norway::Value> {
    doc["groups"]
        .as_sequence_mut()
        .expect("groups")
        .iter_mut()
        .flat_map(|g| g["rules"].as_sequence_mut().expect("rules").iter_mut())
}
