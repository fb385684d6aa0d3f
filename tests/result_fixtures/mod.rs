//! Result folders made from known latencies, for the tests of the commands that read results
//! (compare, merge, report): every per-interval row and every summary figure is derived from
//! the latencies given here, so tests can state exactly what to expect.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use hdrhistogram::Histogram;
use kbench::report::summary::{encode_histogram, LatencySummary};
use serde_json::{json, Value};

pub const RECORD_BYTES: u64 = 100;
const MB: f64 = 1024.0 * 1024.0;

/// One reporting interval: its length and the latencies recorded in it (one per record).
#[derive(Clone)]
pub struct Interval {
    pub secs: f64,
    pub produce_us: Vec<u64>,
    pub e2e_us: Vec<u64>,
    pub lag: u64,
}

#[derive(Clone)]
pub struct Phase {
    pub name: String,
    pub params: Option<Value>,
    pub target_rate: Option<f64>,
    pub intervals: Vec<Interval>,
}

/// A deterministic generator (an LCG), so "noise" is the same on every run.
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Self {
        Noise(seed.wrapping_mul(6364136223846793005).wrapping_add(1))
    }
    /// Uniform in [0, 1).
    pub fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` intervals of `records` latencies each around `centre_us`, spread by `spread` (0.2 = ±20%),
/// plus an interval-level wobble of `wobble` so intervals differ from one another.
pub fn intervals(
    n: usize,
    records: usize,
    centre_us: f64,
    spread: f64,
    wobble: f64,
    seed: u64,
) -> Vec<Interval> {
    let mut rng = Noise::new(seed);
    (0..n)
        .map(|_| {
            let c = centre_us * (1.0 + wobble * (rng.next() * 2.0 - 1.0));
            let draw =
                |rng: &mut Noise| (c * (1.0 + spread * (rng.next() * 2.0 - 1.0))).max(1.0) as u64;
            let produce_us: Vec<u64> = (0..records).map(|_| draw(&mut rng)).collect();
            let e2e_us: Vec<u64> = produce_us.iter().map(|v| v + 500).collect();
            Interval {
                secs: 1.0,
                produce_us,
                e2e_us,
                lag: 10,
            }
        })
        .collect()
}

pub fn hist(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    for v in values {
        h.saturating_record(v);
    }
    h
}

fn q(h: &Histogram<u64>, p: f64) -> u64 {
    if h.is_empty() {
        0
    } else {
        h.value_at_quantile(p)
    }
}

const HEADER: &str = "elapsed_sec,interval_sec,phase,produce_records,produce_records_per_sec,\
produce_mb_per_sec,produce_p50_us,produce_p99_us,produce_p999_us,produce_max_us,consume_records,\
consume_records_per_sec,consume_mb_per_sec,e2e_p50_us,e2e_p99_us,e2e_p999_us,e2e_max_us,lag,\
cpu_pct,process_cpu_pct,net_rx_bytes_per_sec,net_tx_bytes_per_sec,disk_read_bytes_per_sec,\
disk_write_bytes_per_sec";

fn latency(h: &Histogram<u64>) -> Value {
    serde_json::to_value(LatencySummary::of(h)).expect("serializes")
}

fn host() -> Value {
    json!({
        "samples": 4, "cpu_pct_avg": 40.0, "cpu_pct_max": 60.0, "cpu_pct_per_core_avg": [40.0, 40.0],
        "process_cpu_pct_avg": 10.0, "mem_used_bytes_max": 1000, "rss_bytes_max": 100,
        "net_rx_bytes_per_sec": 1000.0, "net_tx_bytes_per_sec": 1000.0,
        "disk_read_bytes_per_sec": 0.0, "disk_write_bytes_per_sec": 500.0,
        "net_interfaces": {"lo": {"rx_bytes_per_sec": 1000.0, "tx_bytes_per_sec": 1000.0}}
    })
}

/// The summary of a phase, exactly as kbench derives it from its records.
pub fn phase_summary(p: &Phase) -> Value {
    let prod = hist(
        p.intervals
            .iter()
            .flat_map(|i| i.produce_us.iter().copied()),
    );
    let e2e = hist(p.intervals.iter().flat_map(|i| i.e2e_us.iter().copied()));
    let secs: f64 = p.intervals.iter().map(|i| i.secs).sum();
    let records = prod.len();
    let mut v = json!({
        "name": p.name,
        "duration_sec": secs,
        "produce": {
            "records": records, "bytes": records * RECORD_BYTES, "errors": 0, "late_sends": 0,
            "records_per_sec": records as f64 / secs, "mb_per_sec": (records * RECORD_BYTES) as f64 / MB / secs,
            "latency_us": latency(&prod), "service_latency_us": latency(&prod), "send_delay_us": latency(&hist([]))
        },
        "consume": {
            "records": e2e.len(), "bytes": e2e.len() * RECORD_BYTES,
            "records_per_sec": e2e.len() as f64 / secs, "mb_per_sec": (e2e.len() * RECORD_BYTES) as f64 / MB / secs,
            "unstamped": 0, "errors": 0, "e2e_latency_us": latency(&e2e),
            "lost": 0, "duplicated": 0, "reordered": 0,
            "max_lag": p.intervals.iter().map(|i| i.lag).max().unwrap_or(0), "rebalance_time_ms": 20
        },
        "host": host(),
        "histograms": {
            "produce_latency_us": encode_histogram(&prod), "service_latency_us": encode_histogram(&prod),
            "send_delay_us": null, "e2e_latency_us": encode_histogram(&e2e)
        }
    });
    v["params"] = p.params.clone().unwrap_or_else(|| json!({}));
    v["target_rate_per_sec"] = json!(p.target_rate);
    v
}

pub fn summary(run_id: &str, phases: &[Phase]) -> Value {
    let records: usize = phases
        .iter()
        .flat_map(|p| &p.intervals)
        .map(|i| i.produce_us.len())
        .sum();
    json!({
        "schema_version": 1, "kbench_version": "0.1.0", "command": "e2e", "run_id": run_id,
        "name": "fixture", "started_at": "2026-01-01T00:00:00+00:00",
        "ended_at": "2026-01-01T00:01:00+00:00", "complete": true, "interrupted": false,
        "latency_model": "open", "latency_note": "fixture: latencies are made up",
        "config": {"command": "e2e", "target": {"topic": "t", "partitions": 1, "replication_factor": 1},
            "output": {}, "bootstrap_servers": "embedded", "target_kind": "embedded"},
        "host": {"hostname": "h", "os": "linux", "kernel": "6", "cpu_model": "cpu", "logical_cpus": 2, "memory_bytes": 1000},
        "phases": phases.iter().filter(|p| p.name != "warmup").map(phase_summary).collect::<Vec<_>>(),
        "checks": [{"name": "no acknowledged record lost", "passed": true, "detail": "0 lost"}],
        "verification": {"method": "acknowledged", "acknowledged": records, "consumed_distinct": records,
            "lost": 0, "duplicated": 0, "reordered": 0},
        "max_rate_search": null
    })
}

/// The time-series rows of the phases, in order (a phase named "warmup" is in the CSV only).
pub fn timeseries(phases: &[Phase]) -> String {
    let mut out = String::from(HEADER);
    out.push('\n');
    let mut t = 0.0;
    for p in phases {
        for i in &p.intervals {
            t += i.secs;
            let ph = hist(i.produce_us.iter().copied());
            let eh = hist(i.e2e_us.iter().copied());
            let n = ph.len() as f64;
            let m = eh.len() as f64;
            out.push_str(&format!(
                "{t},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                i.secs,
                p.name,
                ph.len(),
                n / i.secs,
                n * RECORD_BYTES as f64 / MB / i.secs,
                q(&ph, 0.5),
                q(&ph, 0.99),
                q(&ph, 0.999),
                ph.max(),
                eh.len(),
                m / i.secs,
                m * RECORD_BYTES as f64 / MB / i.secs,
                q(&eh, 0.5),
                q(&eh, 0.99),
                q(&eh, 0.999),
                eh.max(),
                i.lag,
                30.0 + t,
                10.0,
                1000.0 * t,
                900.0 * t,
                0.0,
                400.0
            ));
        }
    }
    out
}

/// Writes `dir/<name>/summary.json` and `timeseries.csv`; returns the run folder.
pub fn write_run(dir: &Path, name: &str, run_id: &str, phases: &[Phase]) -> PathBuf {
    let run = dir.join(name);
    std::fs::create_dir_all(&run).expect("mkdir");
    let s = serde_json::to_string_pretty(&summary(run_id, phases)).expect("json");
    std::fs::write(run.join("summary.json"), s).expect("write summary");
    std::fs::write(run.join("timeseries.csv"), timeseries(phases)).expect("write csv");
    run
}

pub fn measured(intervals: Vec<Interval>) -> Phase {
    Phase {
        name: "measured".into(),
        params: None,
        target_rate: None,
        intervals,
    }
}

pub fn kbench(args: &[&str]) -> Command {
    let mut c = Command::cargo_bin("kbench").expect("kbench binary");
    c.env_remove("RUST_LOG").args(args);
    c
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("JSON")
}

#[path = "../schema_check/mod.rs"]
mod schema_check;
#[allow(unused_imports)] // not every test crate validates
pub use schema_check::{validate, validate_compare};
