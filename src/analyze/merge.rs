//! `kbench merge DIR... --output-dir D`: combines the result folders of distributed workers
//! (`--workers N --worker-index I`) into one run folder, exactly where exactness is possible.
//!
//! Per phase (matched by name): histograms add (decode, `add`, re-encode) and every percentile
//! is recomputed from the merged histograms, so the merged p99 is the p99 of all records, not
//! an average of p99s. Counts and rates sum (the workers ran side by side), durations are the
//! maximum. Host figures come from different machines: CPU percentages are averaged, byte
//! rates summed, peaks maxed. Fields merge does not recompute are kept from the first input,
//! so the output stays valid against `schema/summary.schema.json`. `merge_series` does the
//! same for `timeseries.csv`. An input without measurements (no phases, or a time series
//! without rows: a worker that had nothing to do) is refused up front, naming its folder,
//! before anything is written. This module must not touch anything but result files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use super::{read_summary_json, RunPaths};
use crate::report::summary::{decode_histogram, encode_histogram, LatencySummary};

const AFTER_HELP: &str = "\
Exit codes:
  0  merged
  2  bad input: a missing or unreadable result folder, a folder without measurements (a worker
     that had nothing to do), runs of different commands";

/// Merges the result folders of distributed workers into one run folder.
#[derive(Debug, Clone, Args)]
#[command(after_help = AFTER_HELP)]
pub struct MergeArgs {
    /// Result folders of the workers (each with summary.json, optionally timeseries.csv).
    #[arg(value_name = "DIR", required = true, num_args = 1..)]
    pub dirs: Vec<PathBuf>,

    /// Where to write the merged run folder (created if missing).
    #[arg(long, value_name = "DIR")]
    pub output_dir: PathBuf,

    /// Name of the merged run (default: the first input's name).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

/// Histogram fields of a phase and the latency summary each one feeds.
const HISTOGRAMS: &[(&str, &str, &str)] = &[
    ("produce_latency_us", "produce", "latency_us"),
    ("service_latency_us", "produce", "service_latency_us"),
    ("send_delay_us", "produce", "send_delay_us"),
    ("e2e_latency_us", "consume", "e2e_latency_us"),
    (
        "commit_latency_us",
        "produce.transactions",
        "commit_latency_us",
    ),
    (
        "abort_latency_us",
        "produce.transactions",
        "abort_latency_us",
    ),
    ("commit_pause_us", "produce.transactions", "commit_pause_us"),
];

fn num(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn int(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Sums, maxima and means of the numeric fields of one object across workers.
fn fold(objs: &[&Value], sum: &[&str], max: &[&str], mean: &[&str]) -> Map<String, Value> {
    let mut out = objs[0].as_object().cloned().unwrap_or_default();
    let ints = |k: &str| objs.iter().all(|o| o.get(k).is_none_or(Value::is_u64));
    for &k in sum {
        out.insert(
            k.into(),
            if ints(k) {
                json!(objs.iter().map(|o| int(o, k)).sum::<u64>())
            } else {
                json!(objs.iter().map(|o| num(o, k)).sum::<f64>())
            },
        );
    }
    for &k in max {
        out.insert(
            k.into(),
            if ints(k) {
                json!(objs.iter().map(|o| int(o, k)).max().unwrap_or(0))
            } else {
                json!(objs.iter().map(|o| num(o, k)).fold(0.0, f64::max))
            },
        );
    }
    for &k in mean {
        let n = objs.len() as f64;
        out.insert(
            k.into(),
            json!(objs.iter().map(|o| num(o, k)).sum::<f64>() / n),
        );
    }
    out
}

/// Verification counts are null when a worker had nothing to check: null + null stays null.
fn sum_nullable(objs: &[&Value], key: &str) -> Value {
    let vals: Vec<u64> = objs.iter().filter_map(|o| o.get(key)?.as_u64()).collect();
    if vals.is_empty() {
        Value::Null
    } else {
        json!(vals.iter().sum::<u64>())
    }
}

fn merge_produce(objs: &[&Value]) -> Value {
    let sum = [
        "records",
        "bytes",
        "errors",
        "late_sends",
        "records_per_sec",
        "mb_per_sec",
    ];
    let mut out = fold(objs, &sum, &[], &[]);
    if out.contains_key("transactions") {
        out.insert(
            "transactions".into(),
            super::merge_txn::merge_phase_txn(objs),
        );
    }
    Value::Object(out)
}

fn merge_consume(objs: &[&Value]) -> Value {
    let sum = [
        "records",
        "bytes",
        "records_per_sec",
        "mb_per_sec",
        "unstamped",
        "errors",
    ];
    let mut out = fold(objs, &sum, &["rebalance_time_ms"], &[]);
    // Written since transactions; older summaries have neither.
    for k in ["aborted_seen", "max_lso_lag"] {
        if out.contains_key(k) {
            out.insert(k.into(), sum_nullable(objs, k));
        }
    }
    // Each worker's consumers own different partitions, so lost/duplicated/reordered add up;
    // lag too, though summing per-worker peaks is an upper bound (they need not coincide).
    for k in ["lost", "duplicated", "reordered", "max_lag"] {
        out.insert(k.into(), sum_nullable(objs, k));
    }
    Value::Object(out)
}

fn merge_host(objs: &[&Value]) -> Value {
    let sum = [
        "samples",
        "net_rx_bytes_per_sec",
        "net_tx_bytes_per_sec",
        "disk_read_bytes_per_sec",
        "disk_write_bytes_per_sec",
    ];
    let max = ["cpu_pct_max", "mem_used_bytes_max", "rss_bytes_max"];
    let mut out = fold(objs, &sum, &max, &["cpu_pct_avg", "process_cpu_pct_avg"]);
    // Per-core averages: element-wise mean over the workers that have that core.
    let cores: Vec<Vec<f64>> = objs
        .iter()
        .map(|o| {
            o.get("cpu_pct_per_core_avg")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default()
        })
        .collect();
    let n = cores.iter().map(Vec::len).max().unwrap_or(0);
    let per_core: Vec<f64> = (0..n)
        .map(|i| {
            let v: Vec<f64> = cores.iter().filter_map(|c| c.get(i).copied()).collect();
            v.iter().sum::<f64>() / v.len() as f64
        })
        .collect();
    out.insert("cpu_pct_per_core_avg".into(), json!(per_core));
    // Interfaces of different machines share names (lo, eth0): sum the rates per name.
    let mut ifaces: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for o in objs {
        for (name, v) in o
            .get("net_interfaces")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let e = ifaces.entry(name.clone()).or_default();
            e.0 += num(v, "rx_bytes_per_sec");
            e.1 += num(v, "tx_bytes_per_sec");
        }
    }
    let ifaces: Map<String, Value> = ifaces
        .into_iter()
        .map(|(k, (rx, tx))| (k, json!({"rx_bytes_per_sec": rx, "tx_bytes_per_sec": tx})))
        .collect();
    out.insert("net_interfaces".into(), Value::Object(ifaces));
    Value::Object(out)
}

/// Adds the workers' encoded histograms; `None` when no worker had one.
fn add_histograms(encoded: &[&str], what: &str) -> Result<Option<Histogram<u64>>> {
    let mut total: Option<Histogram<u64>> = None;
    for s in encoded {
        let h = decode_histogram(s).with_context(|| format!("{what}: cannot decode"))?;
        match &mut total {
            None => {
                let mut h = h;
                // Workers may have been built with other bounds: grow rather than fail.
                h.auto(true);
                total = Some(h);
            }
            Some(t) => t
                .add(&h)
                .map_err(|e| anyhow!("{what}: cannot add histograms: {e:?}"))?,
        }
    }
    Ok(total)
}

/// Merges one phase across the workers that have it.
fn merge_phase(name: &str, phases: &[&Value]) -> Result<Value> {
    let mut out = phases[0].as_object().cloned().unwrap_or_default();
    let dur = phases
        .iter()
        .map(|p| num(p, "duration_sec"))
        .fold(0.0, f64::max);
    out.insert("duration_sec".into(), json!(dur));
    // Each side's window, like the duration, is the longest worker's (absent in older files).
    for key in ["produce_window_sec", "consume_window_sec"] {
        let windows: Vec<f64> = phases.iter().filter_map(|p| p.get(key)?.as_f64()).collect();
        if !windows.is_empty() {
            out.insert(
                key.into(),
                json!(windows.iter().copied().fold(0.0, f64::max)),
            );
        }
    }
    let part = |key: &str| -> Vec<&Value> {
        phases
            .iter()
            .filter_map(|p| p.get(key))
            .filter(|v| !v.is_null())
            .collect()
    };
    let produce = part("produce");
    out.insert(
        "produce".into(),
        if produce.is_empty() {
            Value::Null
        } else {
            merge_produce(&produce)
        },
    );
    let consume = part("consume");
    out.insert(
        "consume".into(),
        if consume.is_empty() {
            Value::Null
        } else {
            merge_consume(&consume)
        },
    );
    let host = part("host");
    if !host.is_empty() {
        out.insert("host".into(), merge_host(&host));
    }
    let mut hists = Map::new();
    for &(field, section, summary) in HISTOGRAMS {
        let encoded: Vec<&str> = phases
            .iter()
            .filter_map(|p| p.get("histograms")?.get(field)?.as_str())
            .collect();
        let merged = add_histograms(&encoded, &format!("phase '{name}' histogram {field}"))?;
        hists.insert(
            field.into(),
            merged
                .as_ref()
                .map(encode_histogram)
                .map_or(Value::Null, Value::from),
        );
        if let (Some(h), Some(sec)) = (&merged, section_mut(&mut out, section)) {
            sec.insert(summary.into(), serde_json::to_value(LatencySummary::of(h))?);
        }
    }
    out.insert("histograms".into(), Value::Object(hists));
    Ok(Value::Object(out))
}

/// The object at a dotted path of a phase (`produce.transactions`), if it is one.
fn section_mut<'a>(
    phase: &'a mut Map<String, Value>,
    path: &str,
) -> Option<&'a mut Map<String, Value>> {
    let mut node = phase;
    for part in path.split('.') {
        node = node.get_mut(part)?.as_object_mut()?;
    }
    Some(node)
}

/// Merges whole summaries (already read as JSON); `labels` name the inputs in errors.
pub fn merge_summaries(inputs: &[Value], labels: &[String], name: Option<&str>) -> Result<Value> {
    let first = inputs.first().ok_or_else(|| anyhow!("nothing to merge"))?;
    let command = first.get("command").cloned().unwrap_or(Value::Null);
    for (v, label) in inputs.iter().zip(labels) {
        if v.get("command") != Some(&command) {
            bail!(
                "'{label}' is a '{}' run, the first input a '{}' run: merge runs of one command",
                v.get("command").and_then(Value::as_str).unwrap_or("?"),
                command.as_str().unwrap_or("?")
            );
        }
    }
    // Phases in order of first appearance; a phase some worker lacks merges from the others.
    let mut order: Vec<String> = Vec::new();
    let mut by_name: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for (v, label) in inputs.iter().zip(labels) {
        let phases = v
            .get("phases")
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow!("'{label}' has no phases"))?;
        for p in phases {
            let pname = p
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("'{label}': a phase has no name"))?
                .to_string();
            if !by_name.contains_key(&pname) {
                order.push(pname.clone());
            }
            by_name.entry(pname).or_default().push(p);
        }
    }
    let phases = order
        .iter()
        .map(|n| merge_phase(n, &by_name[n]))
        .collect::<Result<Vec<_>>>()?;

    let mut out = first.as_object().cloned().unwrap_or_default();
    let strs = |k: &str| {
        inputs
            .iter()
            .filter_map(|v| v.get(k)?.as_str())
            .collect::<Vec<_>>()
    };
    if let Some(s) = strs("started_at").into_iter().min() {
        out.insert("started_at".into(), json!(s));
    }
    let ended = strs("ended_at");
    // Still running (null) anywhere means the merged run has no end either.
    let end = (ended.len() == inputs.len())
        .then(|| ended.into_iter().max())
        .flatten();
    out.insert("ended_at".into(), json!(end));
    let all = |k: &str| {
        inputs
            .iter()
            .all(|v| v.get(k).and_then(Value::as_bool).unwrap_or(false))
    };
    let any = |k: &str| {
        inputs
            .iter()
            .any(|v| v.get(k).and_then(Value::as_bool).unwrap_or(false))
    };
    out.insert("complete".into(), json!(all("complete")));
    out.insert("interrupted".into(), json!(any("interrupted")));
    out.insert("run_id".into(), json!(merged_run_id(&strs("run_id"))));
    if let Some(n) = name {
        out.insert("name".into(), json!(n));
    }
    out.insert("phases".into(), Value::Array(phases));
    out.insert("checks".into(), merge_checks(inputs));
    out.insert("verification".into(), merge_verification(inputs));
    if out.contains_key("transactions") {
        out.insert(
            "transactions".into(),
            super::merge_txn::merge_run_txn(inputs),
        );
    }
    if let Some(Value::Object(cfg)) = out.get_mut("config") {
        // The schema leaves config open: record where the merged run came from.
        cfg.insert("merged_from".into(), json!(labels));
    }
    Ok(Value::Object(out))
}

/// Whole-run verification: each worker checked its own producers' records, so the counts add;
/// `acknowledged` is unknown (null) if any worker did not know it. Null when no worker had one.
fn merge_verification(inputs: &[Value]) -> Value {
    let parts: Vec<&Value> = inputs
        .iter()
        .filter_map(|v| v.get("verification"))
        .filter(|v| v.is_object())
        .collect();
    let Some(first) = parts.first() else {
        return Value::Null;
    };
    let sum = ["consumed_distinct", "lost", "duplicated", "reordered"];
    let mut out = fold(&parts, &sum, &[], &[]);
    // Written since transactions; older summaries have none.
    if out.contains_key("aborted_seen") {
        out.insert("aborted_seen".into(), sum_nullable(&parts, "aborted_seen"));
    }
    let acked: Option<Vec<u64>> = parts
        .iter()
        .map(|p| p.get("acknowledged")?.as_u64())
        .collect();
    out.insert(
        "acknowledged".into(),
        json!(acked.map(|a| a.iter().sum::<u64>())),
    );
    out.insert(
        "method".into(),
        first.get("method").cloned().unwrap_or(Value::Null),
    );
    Value::Object(out)
}

/// A check passes only if it passed on every worker; the details are kept side by side.
fn merge_checks(inputs: &[Value]) -> Value {
    let mut order: Vec<String> = Vec::new();
    let mut acc: BTreeMap<String, (bool, Vec<String>)> = BTreeMap::new();
    for (i, v) in inputs.iter().enumerate() {
        for c in v
            .get("checks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            let e = acc.entry(name.clone()).or_insert_with(|| {
                order.push(name.clone());
                (true, Vec::new())
            });
            e.0 &= c.get("passed").and_then(Value::as_bool).unwrap_or(false);
            e.1.push(format!(
                "worker {i}: {}",
                c.get("detail").and_then(Value::as_str).unwrap_or("")
            ));
        }
    }
    Value::Array(
        order
            .iter()
            .map(|n| {
                let (passed, details) = &acc[n];
                json!({"name": n, "passed": passed, "detail": details.join("; ")})
            })
            .collect(),
    )
}

/// A stable 8-hex id from the inputs' ids (FNV-1a), so merging the same inputs twice agrees.
fn merged_run_id(ids: &[&str]) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in ids
        .iter()
        .flat_map(|s| s.bytes().chain(std::iter::once(b',')))
    {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// Why a result folder holds no measurements, or `None` when it holds some.
fn without_measurements(summary: &Value, paths: &RunPaths) -> Result<Option<&'static str>> {
    let no_phases = summary
        .get("phases")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty);
    if no_phases {
        return Ok(Some("its summary.json has no phases"));
    }
    if paths.timeseries.is_file() && !super::merge_series::has_rows(&paths.timeseries)? {
        return Ok(Some("its timeseries.csv has no rows"));
    }
    Ok(None)
}

/// Refuses inputs without measurements, naming the folder, rather than failing later on a
/// file's shape (an empty timeseries.csv has no 'phase' column).
fn check_measured(inputs: &[Value], paths: &[RunPaths], labels: &[String]) -> Result<()> {
    for ((summary, p), label) in inputs.iter().zip(paths).zip(labels) {
        if let Some(why) = without_measurements(summary, p)? {
            bail!(
                "'{label}' holds no measurements: {why} (a worker that owned no producer or \
                 consumer, or a run that stopped before its first reporting interval); leave \
                 that folder out of the merge"
            );
        }
    }
    Ok(())
}

/// Runs `kbench merge`: writes summary.json (and timeseries.csv when every input has one)
/// into `--output-dir`. `Err` (exit 2) for bad input.
pub fn run(args: MergeArgs) -> Result<ExitCode> {
    let paths = args
        .dirs
        .iter()
        .map(|d| RunPaths::resolve(d))
        .collect::<Result<Vec<_>>>()?;
    let labels: Vec<String> = args.dirs.iter().map(|d| d.display().to_string()).collect();
    let inputs = paths
        .iter()
        .map(|p| read_summary_json(&p.summary))
        .collect::<Result<Vec<_>>>()?;
    check_measured(&inputs, &paths, &labels)?;
    let merged = merge_summaries(&inputs, &labels, args.name.as_deref())?;
    let out = &args.output_dir;
    std::fs::create_dir_all(out)
        .with_context(|| format!("--output-dir: cannot create '{}'", out.display()))?;
    write_json(&merged, &out.join("summary.json"))?;
    let series: Vec<&Path> = paths.iter().map(|p| p.timeseries.as_path()).collect();
    if series.iter().all(|p| p.is_file()) {
        super::merge_series::merge_files(&series, &out.join("timeseries.csv"))?;
    } else {
        eprintln!("kbench merge: warning: not every input has a timeseries.csv; none written");
    }
    eprintln!(
        "kbench merge: {} runs merged into {}",
        inputs.len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write_json(v: &Value, path: &Path) -> Result<()> {
    let text = serde_json::to_string_pretty(v)?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write '{}'", path.display()))
}
