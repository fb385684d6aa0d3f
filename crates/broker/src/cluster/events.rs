//! The node's event log: one JSON object per line in `<data dir>/events.jsonl`, each with the
//! wall-clock time (`ts_ms`, Unix milliseconds), the node that wrote it (`logged_by`), the
//! node it is about (`node`, the writer unless the event names another) and an `event` name.
//!
//! Written: metadata changes as this node applied them (fenced, elected with leader and epoch,
//! ISR shrink/expand, ...) and what the node did itself (truncation, controlled-shutdown
//! steps, becoming leader or follower). Kept apart from tracing so tools can read it; a write
//! that fails is logged and dropped (the log must never stop the broker).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::model::NodeId;

#[derive(Debug, Clone)]
pub struct EventLog {
    node: NodeId,
    path: PathBuf,
    file: Arc<Mutex<Option<File>>>,
}

impl EventLog {
    pub const FILE: &'static str = "events.jsonl";

    pub fn open(data_dir: &Path, node: NodeId) -> std::io::Result<Self> {
        let path = data_dir.join(Self::FILE);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(EventLog {
            node,
            path,
            file: Arc::new(Mutex::new(Some(file))),
        })
    }

    /// A log that writes nothing (tests of other layers).
    pub fn disabled(node: NodeId) -> Self {
        EventLog {
            node,
            path: PathBuf::new(),
            file: Arc::new(Mutex::new(None)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `event` (a struct or enum serialising to a JSON object, with its own `event`
    /// field or given one by `name`) with the time and node.
    pub fn record<E: Serialize>(&self, name: Option<&str>, event: &E) {
        let mut value = match serde_json::to_value(event) {
            Ok(serde_json::Value::Object(m)) => m,
            Ok(other) => {
                let mut m = serde_json::Map::new();
                m.insert("detail".into(), other);
                m
            }
            Err(e) => {
                tracing::warn!("event not serialisable: {e}");
                return;
            }
        };
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        value.insert("ts_ms".into(), serde_json::json!(ts as u64));
        // `node` is whom the event is about (a fenced broker, say); it defaults to the writer.
        value.entry("node").or_insert(serde_json::json!(self.node));
        value.insert("logged_by".into(), serde_json::json!(self.node));
        if let Some(name) = name {
            value.insert("event".into(), serde_json::json!(name));
        }
        let mut line = serde_json::Value::Object(value).to_string();
        line.push('\n');
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = guard.as_mut() {
            if let Err(e) = f.write_all(line.as_bytes()) {
                tracing::warn!("cannot write the event log {}: {e}", self.path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::model::Change;

    #[test]
    fn events_are_json_lines_with_time_and_node() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path(), 2).unwrap();
        log.record(None, &Change::Fenced { node: 1, epoch: 3 });
        log.record(
            Some("truncated"),
            &serde_json::json!({"topic": "t", "partition": 0, "to": 5}),
        );
        let text = std::fs::read_to_string(dir.path().join(EventLog::FILE)).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["event"], "fenced");
        assert_eq!(lines[0]["node"], 1, "the fenced node");
        assert_eq!(lines[0]["logged_by"], 2);
        assert_eq!(lines[1]["node"], 2, "the writer by default");
        assert!(lines[0]["ts_ms"].as_u64().unwrap() > 1_600_000_000_000);
        assert_eq!(lines[1]["event"], "truncated");
        assert_eq!(lines[1]["to"], 5);
    }
}
