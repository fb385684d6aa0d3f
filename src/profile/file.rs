//! Reading a profile: the TOML file, `--set` overrides and matrix cells applied to its tree,
//! then the typed form. Errors name the file, the field and what is allowed.
//!
//! Overrides and matrix keys are dotted paths into the file's tables: `workload.record_size`,
//! `target.partitions`, `phases.0.rate`. Under `producer_props` and `consumer_props` the rest
//! of the path is one property name, dots included: `producer_props.linger.ms`; under `matrix`
//! the rest is one matrix key: `matrix.producer_props.acks=["all"]`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use toml::Value;

/// The whole profile, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: Option<String>,
    pub description: Option<String>,
    /// `produce` (producers only) or `e2e` (producers and consumers).
    #[serde(default = "default_mode")]
    pub mode: String,
    #[serde(default)]
    pub target: TargetSection,
    #[serde(default)]
    pub workload: Workload,
    #[serde(default)]
    pub producer_props: BTreeMap<String, Value>,
    #[serde(default)]
    pub consumer_props: BTreeMap<String, Value>,
    /// A warm-up phase before each cell's phases, at the first phase's rate.
    pub warmup: Option<String>,
    #[serde(default)]
    pub phases: Vec<PhaseDef>,
    /// Property or field → values; the run is the cartesian product.
    #[serde(default)]
    pub matrix: BTreeMap<String, Vec<Value>>,
    #[serde(default)]
    pub thresholds: Vec<ThresholdDef>,
    pub find_max_rate: Option<MaxRateDef>,
    pub reporting_interval: Option<String>,
    /// Fault steps on the timeline of every cell (`plan::faults`).
    #[serde(default)]
    pub faults: Vec<crate::plan::faults::FaultDef>,
    /// Read every partition back after each cell (always on with faults).
    pub verify_readback: Option<bool>,
}

fn default_mode() -> String {
    "e2e".into()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSection {
    pub bootstrap_server: Option<String>,
    pub topic: Option<String>,
    pub partitions: Option<i32>,
    pub replication_factor: Option<i32>,
    pub create_topic: Option<bool>,
    pub connect_timeout: Option<String>,
    /// Nodes kbench can fault (written by scripts/kafka.sh --nodes 3).
    pub cluster_file: Option<String>,
    /// Without a bootstrap server: `"broker"` (the bundled broker, the default) or `"mock"`
    /// (librdkafka's mock cluster, for fault profiles that run anywhere).
    pub embedded: Option<String>,
    /// Nodes of the bundled cluster kbench starts without a bootstrap server (`3`: the same
    /// as `embedded = "cluster:3"`; 1, the default, is the single in-process broker).
    pub nodes: Option<i32>,
    /// Brokers of the mock cluster (`embedded = "mock"`).
    pub mock_brokers: Option<i32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub record_size: Option<Value>,
    pub payload_file: Option<String>,
    pub payload_delimiter: Option<String>,
    pub payload_random_ratio: Option<f64>,
    pub keys: Option<String>,
    pub producers: Option<u32>,
    pub consumers: Option<u32>,
    pub group: Option<String>,
    pub seed: Option<u64>,
    /// Consumers stop when nothing arrived for this long after producing ended.
    pub drain_timeout: Option<String>,
    /// `--idempotence`: enable.idempotence=true.
    pub idempotence: Option<bool>,
    /// `--transactional-id`, `--transaction-duration-ms`, `--transaction-records` and
    /// `--transaction-abort-rate`, with the flags' meaning.
    pub transactional_id: Option<String>,
    pub transaction_duration_ms: Option<u64>,
    pub transaction_records: Option<u64>,
    pub transaction_abort_rate: Option<f64>,
    /// `--isolation-level` of the consumers.
    pub isolation_level: Option<String>,
}

/// A phase: a steady `rate` for `duration`, or a `ramp` that expands into steps.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseDef {
    pub name: Option<String>,
    pub duration: Option<String>,
    /// Records/s over all producers; -1 = closed model.
    pub rate: Option<f64>,
    pub ramp: Option<RampDef>,
    /// `"paused"` stops the consumers fetching for the phase (a backlog builds up);
    /// `"running"` (the default) keeps them going.
    pub consumers: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RampDef {
    pub start: f64,
    pub end: f64,
    pub step: f64,
    pub step_duration: String,
}

/// `"e2e.p99 < 20ms"`, or a table that limits it to one phase.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ThresholdDef {
    Expr(String),
    Scoped { expr: String, phase: Option<String> },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxRateDef {
    pub start: f64,
    pub max: f64,
    #[serde(default = "default_factor")]
    pub factor: f64,
    pub step_duration: String,
    #[serde(default = "default_trials")]
    pub max_trials: u32,
    /// Stop bisecting when the bracket is this narrow, relative to the last good rate.
    #[serde(default = "default_precision")]
    pub precision: f64,
}

fn default_factor() -> f64 {
    2.0
}
fn default_trials() -> u32 {
    12
}
fn default_precision() -> f64 {
    0.05
}

/// Reads and parses the file into a tree (overrides apply to the tree, then it is typed).
pub fn read_tree(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read profile '{}'", path.display()))?;
    text.parse::<toml::Table>()
        .map(Value::Table)
        .map_err(|e| anyhow!("profile '{}': {e}", path.display()))
}

/// Parses `key=value` (`--set`); the value is TOML when it parses as TOML, else a string.
pub fn parse_set(arg: &str) -> Result<(String, Value)> {
    let (k, v) = arg.split_once('=').ok_or_else(|| {
        anyhow!("--set '{arg}' is not KEY=VALUE (e.g. --set workload.record_size=1024)")
    })?;
    Ok((k.trim().to_string(), parse_value(v.trim())))
}

/// A matrix or `--set` value as TOML would read it on the right of `x = `.
pub fn parse_value(v: &str) -> Value {
    format!("x = {v}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("x"))
        .unwrap_or_else(|| Value::String(v.to_string()))
}

/// Sets `path` in the tree, creating tables on the way.
pub fn set_path(tree: &mut Value, path: &str, value: Value) -> Result<()> {
    let parts = split_path(path);
    let mut node = tree;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        node = match node {
            Value::Table(t) => {
                if last {
                    match (t.get_mut(part), value) {
                        // A table given for a table adds its entries (a matrix cell that sets
                        // several workload fields at once keeps the others).
                        (Some(Value::Table(old)), Value::Table(new)) => old.extend(new),
                        (_, value) => {
                            t.insert(part.clone(), value);
                        }
                    }
                    return Ok(());
                }
                t.entry(part.clone())
                    .or_insert_with(|| Value::Table(Default::default()))
            }
            Value::Array(a) => {
                let idx: usize = part
                    .parse()
                    .map_err(|_| anyhow!("'{path}': '{part}' is not an index into a list"))?;
                let len = a.len();
                let slot = a.get_mut(idx).ok_or_else(|| {
                    anyhow!("'{path}': index {idx} is past the {len} entries of the list")
                })?;
                if last {
                    *slot = value;
                    return Ok(());
                }
                slot
            }
            _ => bail!("'{path}': '{part}' is inside a value that is not a table"),
        };
    }
    Ok(())
}

/// `producer_props.linger.ms` → [producer_props, linger.ms]; other paths split on every dot.
fn split_path(path: &str) -> Vec<String> {
    if let Some(rest) = path.strip_prefix("matrix.") {
        return vec!["matrix".into(), rest.to_string()];
    }
    for section in ["producer_props.", "consumer_props."] {
        if let Some(rest) = path.strip_prefix(section) {
            return vec![section.trim_end_matches('.').to_string(), rest.to_string()];
        }
    }
    path.split('.').map(str::to_string).collect()
}

/// The typed profile from a tree; unknown or mistyped fields are named.
pub fn typed(tree: Value, file: &Path) -> Result<Profile> {
    Profile::deserialize(tree).map_err(|e| anyhow!("profile '{}': {e}", file.display()))
}

/// A value as a client property or label: strings without quotes; a table as its entries,
/// `k=v,k=v` (`default` when empty).
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Table(t) if t.is_empty() => "default".into(),
        Value::Table(t) => t
            .iter()
            .map(|(k, v)| format!("{k}={}", value_text(v)))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_paths_keep_the_dots_of_the_property_name() {
        let mut tree = Value::Table(Default::default());
        set_path(&mut tree, "producer_props.linger.ms", parse_value("5")).unwrap();
        set_path(&mut tree, "workload.record_size", parse_value("1024")).unwrap();
        set_path(&mut tree, "workload.keys", parse_value("uniform:10")).unwrap();
        let p = typed(tree, Path::new("t.toml")).unwrap();
        assert_eq!(p.producer_props["linger.ms"], Value::Integer(5));
        assert_eq!(p.workload.record_size, Some(Value::Integer(1024)));
        assert_eq!(p.workload.keys.as_deref(), Some("uniform:10"));
    }

    #[test]
    fn indexes_reach_into_phase_lists() {
        let mut tree: Value = Value::Table(
            "[[phases]]\nrate = 10.0\nduration = \"1s\"\n"
                .parse()
                .unwrap(),
        );
        set_path(&mut tree, "phases.0.rate", parse_value("20.0")).unwrap();
        assert_eq!(
            typed(tree.clone(), Path::new("t")).unwrap().phases[0].rate,
            Some(20.0)
        );
        assert!(set_path(&mut tree, "phases.3.rate", parse_value("1"))
            .unwrap_err()
            .to_string()
            .contains("index 3"));
    }

    #[test]
    fn a_table_value_adds_its_entries_to_the_table_it_names() {
        let mut tree = Value::Table(
            "[workload]\nrecord_size = 100\nidempotence = true\n"
                .parse()
                .unwrap(),
        );
        let cell = parse_value("{ transaction_duration_ms = 10, idempotence = false }");
        assert_eq!(
            value_text(&cell),
            "idempotence=false,transaction_duration_ms=10"
        );
        set_path(&mut tree, "workload", cell).unwrap();
        let p = typed(tree, Path::new("t.toml")).unwrap();
        assert_eq!(p.workload.record_size, Some(Value::Integer(100)));
        assert_eq!(p.workload.transaction_duration_ms, Some(10));
        assert_eq!(p.workload.idempotence, Some(false));
    }

    #[test]
    fn unknown_fields_are_named() {
        let tree = Value::Table("[workload]\nrecord_sise = 10\n".parse().unwrap());
        let err = typed(tree, Path::new("p.toml")).unwrap_err().to_string();
        assert!(
            err.contains("p.toml") && err.contains("record_sise"),
            "{err}"
        );
    }
}
