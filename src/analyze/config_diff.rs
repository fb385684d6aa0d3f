//! What two runs asked for, side by side: the fields of their effective configs (`config` in
//! summary.json) that differ, for `compare` to state above its table. A throughput change
//! between runs that asked for different rates, record sizes or client settings comes from the
//! workload, not from the system.
//!
//! Each config is flattened into dotted paths (`producer.props.acks`,
//! `producer.timeline.phases[measured].rate`: array items that have a `name` are keyed by it, so
//! phases match by name) and compared leaf by leaf; a null counts as not set. Left out are the
//! fields that say where the load went or where results went, not what load was asked for: the
//! system under test (bootstrap servers, target kind: comparing systems is what compare is
//! for), the topic name and its creation, the connect timeout, result paths and names, the
//! reporting interval (it changes the samples, not the load), the random default group id, a
//! worker's index and start time, and a profile's file path, description and thresholds.
//! This module only compares JSON values; it reads no files.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// One field that the two runs set differently.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigDifference {
    /// Dotted path in `config` (or `command` when the runs are of different commands).
    pub field: String,
    /// BASE's value; null when BASE does not set it.
    pub base: Value,
    /// NEW's value; null when NEW does not set it.
    pub new: Value,
}

/// Paths (and everything below them) that do not describe the load asked for.
const NOT_THE_WORKLOAD: &[&str] = &[
    // produce / consume / e2e: the resolved plan
    "command",
    "bootstrap_servers",
    "target_kind",
    "target.bootstrap_server",
    "target.embedded",
    "target.topic",
    "target.create_topic",
    "target.connect_timeout_ms",
    "output",
    "show_detailed_stats",
    "consumer.group",
    "consumer.props.group.id",
    "consumer.props.bootstrap.servers",
    "producer.props.bootstrap.servers",
    "worker.index",
    "worker.start_at_ns",
    "merged_from",
    // run: the profile with its overrides applied (so `set` itself is already in `profile`)
    "file",
    "set",
    "omb_driver",
    "profile.name",
    "profile.description",
    "profile.thresholds",
    "profile.reporting_interval",
    "profile.target.bootstrap_server",
    "profile.target.topic",
    "profile.target.create_topic",
    "profile.target.connect_timeout",
    "profile.workload.group",
    "profile.producer_props.bootstrap.servers",
    "profile.consumer_props.bootstrap.servers",
    "profile.consumer_props.group.id",
];

fn is_workload(path: &str) -> bool {
    !NOT_THE_WORKLOAD.iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    })
}

/// Leaves of `v` by path; nulls are left out (not set).
fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Null => {}
        Value::Object(m) => m.iter().for_each(|(k, v)| flatten(&join(k), v, out)),
        Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                let key = item
                    .get("name")
                    .and_then(Value::as_str)
                    .map_or_else(|| i.to_string(), str::to_string);
                flatten(&format!("{prefix}[{key}]"), item, out);
            }
        }
        // Lists of plain values (a matrix axis, say) compare as a whole.
        leaf => {
            out.insert(prefix.to_string(), leaf.clone());
        }
    }
}

/// The workload fields in which NEW differs from BASE, in path order. Runs of different
/// commands differ in everything: that one difference is reported alone. A side without a
/// config (an old result folder) gives no differences rather than a list of everything.
pub fn differences(
    base_command: &str,
    base: &Value,
    new_command: &str,
    new: &Value,
) -> Vec<ConfigDifference> {
    if base_command != new_command {
        return vec![ConfigDifference {
            field: "command".into(),
            base: base_command.into(),
            new: new_command.into(),
        }];
    }
    if !base.is_object() || !new.is_object() {
        return Vec::new();
    }
    let (mut b, mut n) = (BTreeMap::new(), BTreeMap::new());
    flatten("", base, &mut b);
    flatten("", new, &mut n);
    let mut fields: Vec<&String> = b.keys().chain(n.keys()).collect();
    fields.sort();
    fields.dedup();
    fields
        .into_iter()
        .filter(|f| is_workload(f) && b.get(*f) != n.get(*f))
        .map(|f| ConfigDifference {
            field: f.clone(),
            base: b.get(f).cloned().unwrap_or(Value::Null),
            new: n.get(f).cloned().unwrap_or(Value::Null),
        })
        .collect()
}

/// A value as a person reads it: strings bare, whole floats without `.0`, null as not set.
pub fn show(v: &Value) -> String {
    match v {
        Value::Null => "(not set)".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(rate: f64, acks: &str, group: &str, port: u16) -> Value {
        json!({
            "command": "produce",
            "bootstrap_servers": format!("127.0.0.1:{port}"),
            "target": {"topic": "t", "partitions": 1},
            "consumer": {"group": group, "props": {"group.id": group}},
            "producer": {"props": {"acks": acks}, "timeline": {"phases": [
                {"name": "warmup", "rate": rate}, {"name": "measured", "rate": rate}
            ]}},
            "output": {"name": "x", "reporting_interval_ms": 5000},
            "worker": {"index": 0, "workers": 1, "start_at_ns": null}
        })
    }

    #[test]
    fn identical_workloads_on_other_ports_and_groups_do_not_differ() {
        let a = plan(1000.0, "1", "kbench-e2e-1", 1000);
        let b = plan(1000.0, "1", "kbench-e2e-2", 2000);
        assert_eq!(differences("produce", &a, "produce", &b), vec![]);
    }

    #[test]
    fn rate_and_acks_differ_by_path_with_phases_keyed_by_name() {
        let a = plan(30000.0, "1", "g", 1);
        let b = plan(8000.0, "all", "g", 1);
        let d = differences("produce", &a, "produce", &b);
        let fields: Vec<&str> = d.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "producer.props.acks",
                "producer.timeline.phases[measured].rate",
                "producer.timeline.phases[warmup].rate"
            ]
        );
        assert_eq!(show(&d[1].base), "30000");
        assert_eq!(show(&d[0].new), "all");
    }

    #[test]
    fn a_field_set_on_one_side_only_reads_not_set_on_the_other() {
        let a = json!({"producer": {"props": {}}});
        let b = json!({"producer": {"props": {"linger.ms": "5"}}});
        let d = differences("e2e", &a, "e2e", &b);
        assert_eq!(d.len(), 1);
        assert_eq!(show(&d[0].base), "(not set)");
    }

    #[test]
    fn profiles_compare_by_their_tree_not_their_path_or_overrides() {
        let run = |file: &str, set: &[&str], rate: u64| {
            json!({"file": file, "set": set, "omb_driver": null, "profile": {
                "name": "q", "mode": "e2e", "reporting_interval": "1s",
                "thresholds": ["e2e.p99 < 50ms"],
                "phases": [{"name": "steady", "duration": "30s", "rate": rate}]
            }})
        };
        let a = run("main/profiles/q.toml", &[], 5000);
        let same = run("branch/profiles/q.toml", &["phases.0.rate=5000"], 5000);
        assert_eq!(differences("run", &a, "run", &same), vec![]);
        let faster = run("q.toml", &[], 9000);
        let d = differences("run", &a, "run", &faster);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].field, "profile.phases[steady].rate");
    }

    #[test]
    fn runs_of_different_commands_differ_in_the_command_alone() {
        let d = differences("produce", &json!({"a": 1}), "run", &json!({"b": 2}));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].field, "command");
    }
}
