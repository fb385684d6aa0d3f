//! Helpers shared by the CLI tests: the kbench command with a temp results dir, reading the
//! run's summary, validating it against the committed schema, and a test-owned mock cluster
//! that several kbench processes (and the test itself) can reach.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use assert_cmd::Command;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::ClientConfig;
use serde_json::Value;

/// `kbench SUBCOMMAND ARGS... --output-dir DIR` with progress bars off.
pub fn kbench(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::cargo_bin("kbench").expect("kbench binary");
    c.env("KBENCH_NO_PROGRESS", "1")
        .env_remove("RUST_LOG")
        .args(args)
        .arg("--output-dir")
        .arg(dir);
    c
}

/// Lines of stdout that match `pattern`.
pub fn lines_matching(stdout: &[u8], pattern: &str) -> Vec<String> {
    let re = regex::Regex::new(pattern).unwrap();
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| re.is_match(l))
        .map(str::to_string)
        .collect()
}

/// The run folder kbench created under `dir` (exactly one expected).
pub fn run_dir(dir: &Path) -> PathBuf {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("output dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    runs.sort();
    assert_eq!(
        runs.len(),
        1,
        "expected one run folder in {}: {runs:?}",
        dir.display()
    );
    runs.pop().unwrap()
}

/// The run's summary.json, validated against schema/summary.schema.json.
pub fn summary(dir: &Path) -> Value {
    let path = run_dir(dir).join("summary.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).expect("summary.json is JSON");
    validate(&doc);
    doc
}

#[path = "../schema_check/mod.rs"]
mod schema_check;
#[allow(unused_imports)] // not every test crate validates
pub use schema_check::validate;

/// A mock cluster on its own thread (it is !Send), alive until dropped.
pub struct TestCluster {
    pub bootstrap: String,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestCluster {
    /// Starts a one-broker mock cluster with `topic` of `partitions` partitions.
    pub fn start(topic: &str, partitions: i32) -> TestCluster {
        let (tx, rx) = mpsc::channel::<String>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let topic = topic.to_string();
        let thread = std::thread::spawn(move || {
            let c: MockCluster<'static, DefaultProducerContext> =
                MockCluster::new(1).expect("mock cluster");
            c.create_topic(&topic, partitions, 1).expect("mock topic");
            tx.send(c.bootstrap_servers()).unwrap();
            let _ = stop_rx.recv();
        });
        TestCluster {
            bootstrap: rx.recv().unwrap(),
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads every record of `topic` (key, value) until `n` arrived or `timeout` passed.
pub fn read_all(
    bootstrap: &str,
    topic: &str,
    n: usize,
    timeout: Duration,
) -> Vec<(Option<Vec<u8>>, Vec<u8>, i32)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("test-reader-{}", rand::random::<u32>()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("test consumer");
    consumer.subscribe(&[topic]).unwrap();
    let deadline = std::time::Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push((
                m.key().map(<[u8]>::to_vec),
                m.payload().unwrap_or(&[]).to_vec(),
                m.partition(),
            ));
        }
    }
    out
}

/// Kafka's producer total line, as its ducktape parser splits it.
pub const KAFKA_TOTAL_LINE: &str = r"^\d+ records sent, \d+\.\d{6} records/sec \(\d+\.\d{2} MB/sec\), \d+\.\d{2} ms avg latency, \d+\.\d{2} ms max latency, \d+ ms 50th, \d+ ms 95th, \d+ ms 99th, \d+ ms 99\.9th\.$";
/// Kafka's producer interval line.
pub const KAFKA_INTERVAL_LINE: &str = r"^\d+ records sent, \d+\.\d records/sec \(\d+\.\d{2} MB/sec\), \d+\.\d ms avg latency, \d+\.\d ms max latency\.$";
