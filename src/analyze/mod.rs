//! Reading finished runs back: `summary.json` and `timeseries.csv` of a result folder, for the
//! commands that work on result files only (`compare`, `merge`, `report`).
//!
//! The views here are deliberately lenient: unknown fields are ignored and fields that newer
//! runs add (a phase's `target_rate_per_sec`, matrix `params`, extra CSV columns) are optional,
//! so older and newer result folders can be read side by side. Nothing here measures, and
//! nothing here writes; every error names the file it is about.

pub mod compare;
mod compare_output;
mod config_diff;
pub mod merge;
mod merge_series;
mod merge_txn;
mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The two files of one run, found from a run folder or a `summary.json` path.
#[derive(Debug, Clone)]
pub struct RunPaths {
    pub summary: PathBuf,
    pub timeseries: PathBuf,
}

impl RunPaths {
    /// `path` is a run folder or the `summary.json` inside one.
    pub fn resolve(path: &Path) -> Result<RunPaths> {
        // Anything but an existing file is taken as a folder, so the error names the file.
        let summary = if path.is_file() {
            path.to_path_buf()
        } else {
            path.join("summary.json")
        };
        if !summary.is_file() {
            bail!(
                "'{}' not found: give a run folder (results/<run>/) or its summary.json",
                summary.display()
            );
        }
        let dir = summary.parent().unwrap_or(Path::new("."));
        Ok(RunPaths {
            timeseries: dir.join("timeseries.csv"),
            summary,
        })
    }
}

/// What the analysis needs of `summary.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct SummaryView {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub run_id: String,
    #[serde(default)]
    pub command: String,
    #[serde(default)]
    pub started_at: String,
    #[serde(default)]
    pub latency_model: String,
    /// The effective configuration (the resolved plan, or the profile of a `run`).
    #[serde(default)]
    pub config: serde_json::Value,
    pub phases: Vec<PhaseView>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PhaseView {
    pub name: String,
    #[serde(default)]
    pub duration_sec: f64,
    /// Set by ramps and rate searches.
    #[serde(default)]
    pub target_rate_per_sec: Option<f64>,
    /// Matrix parameters of this cell (values may be strings, numbers or booleans).
    #[serde(default)]
    pub params: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub produce: Option<ThroughputView>,
    #[serde(default)]
    pub consume: Option<ConsumeView>,
    #[serde(default)]
    pub histograms: HistogramsView,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ThroughputView {
    #[serde(default)]
    pub records: u64,
    #[serde(default)]
    pub records_per_sec: f64,
    #[serde(default)]
    pub mb_per_sec: f64,
    #[serde(default)]
    pub latency_us: LatencyView,
    /// Transactional producers only.
    #[serde(default)]
    pub transactions: Option<TxnView>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TxnView {
    #[serde(default)]
    pub transactions_per_sec: f64,
    #[serde(default)]
    pub commit_latency_us: LatencyView,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ConsumeView {
    #[serde(default)]
    pub records: u64,
    #[serde(default)]
    pub records_per_sec: f64,
    #[serde(default)]
    pub mb_per_sec: f64,
    #[serde(default)]
    pub e2e_latency_us: LatencyView,
    #[serde(default)]
    pub lost: Option<u64>,
    #[serde(default)]
    pub max_lag: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct LatencyView {
    #[serde(default)]
    pub count: u64,
    #[serde(default)]
    pub p50: u64,
    #[serde(default)]
    pub p99: u64,
    #[serde(default)]
    pub p999: u64,
    #[serde(default)]
    pub max: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct HistogramsView {
    #[serde(default)]
    pub produce_latency_us: Option<String>,
    #[serde(default)]
    pub e2e_latency_us: Option<String>,
}

impl SummaryView {
    pub fn phase(&self, name: &str) -> Option<&PhaseView> {
        self.phases.iter().find(|p| p.name == name)
    }
}

impl PhaseView {
    /// Matrix parameters as `k=v, k=v` (empty without a matrix).
    pub fn params_label(&self) -> String {
        let Some(params) = self.params.as_ref().filter(|p| !p.is_empty()) else {
            return String::new();
        };
        params
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Reads `summary.json` as raw JSON (merge keeps every field it does not recompute).
pub fn read_summary_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read '{}'", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("'{}' is not valid JSON", path.display()))?;
    Ok(value)
}

/// Reads `summary.json` into the lenient view.
pub fn read_summary(path: &Path) -> Result<SummaryView> {
    let value = read_summary_json(path)?;
    let view: SummaryView = serde_json::from_value(value)
        .with_context(|| format!("'{}' is not a kbench summary", path.display()))?;
    if view.phases.is_empty() {
        bail!("'{}' has no phases", path.display());
    }
    Ok(view)
}

/// One `timeseries.csv` row as the reporter wrote it.
pub use crate::report::timeseries::Row as SeriesRow;

/// Reads every row of a `timeseries.csv`.
pub fn read_series(path: &Path) -> Result<Vec<SeriesRow>> {
    let mut r = csv::Reader::from_path(path)
        .with_context(|| format!("cannot read '{}'", path.display()))?;
    let mut rows = Vec::new();
    for (i, row) in r.deserialize().enumerate() {
        // Line i + 2: one for the header, one because lines count from 1.
        let row: SeriesRow =
            row.with_context(|| format!("'{}' line {}: bad row", path.display(), i + 2))?;
        rows.push(row);
    }
    Ok(rows)
}

/// Drops the short tail interval a run ends with (a fraction of an interval, whose rate is
/// meaningless) by keeping intervals at least half the median length.
pub fn full_intervals(rows: Vec<SeriesRow>) -> Vec<SeriesRow> {
    let mut lens: Vec<f64> = rows.iter().map(|r| r.interval_sec).collect();
    lens.sort_by(f64::total_cmp);
    let Some(median) = lens.get(lens.len() / 2).copied() else {
        return rows;
    };
    rows.into_iter()
        .filter(|r| r.interval_sec >= median / 2.0)
        .collect()
}
