//! A replicated bundled cluster for tests, started the way people start it: `kbench cluster
//! --nodes N --data-dir D -- FLAGS` as a child process. Node processes are signalled one pid
//! at a time (from the cluster file); never a group, never a negative pid. Dropping the
//! cluster SIGINTs `kbench cluster` (which stops its nodes) and, past a bounded wait, SIGKILLs
//! it and every node pid the cluster file names.
//!
//! Also: the partition state as the cluster reports it (a raw Metadata v12 request, for the
//! leader epoch that librdkafka's metadata API does not expose), and the segment bytes of a
//! replica for byte-for-byte comparisons.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, MetadataResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rustix::process::{Pid, Signal};
use serde_json::Value;

/// Timeouts short enough for tests on two cores, long enough not to flap: a silent broker is
/// fenced after 2 s, a follower behind for 3 s leaves the ISR.
pub const FAST_FAILOVER: &[&str] = &[
    "--broker-session-timeout-ms",
    "2000",
    "--broker-heartbeat-interval-ms",
    "250",
    "--replica-lag-time-max-ms",
    "3000",
    "--replica-fetch-wait-max-ms",
    "100",
    "--group-initial-rebalance-delay-ms",
    "0",
];

/// `FAST_FAILOVER` without the flags `extra` gives itself (a node takes each flag once), so a
/// test can set, say, a shorter `--replica-lag-time-max-ms`.
fn fast_failover_except(extra: &[&str]) -> Vec<&'static str> {
    FAST_FAILOVER
        .chunks(2)
        .filter(|pair| !extra.contains(&pair[0]))
        .flatten()
        .copied()
        .collect()
}

pub struct Cluster {
    supervisor: Option<Child>,
    pub bootstrap: String,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

/// One partition as the cluster's metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub error: i16,
}

impl Cluster {
    /// `kbench cluster --nodes N` in a fresh temp dir with `FAST_FAILOVER` and `extra` flags.
    pub fn start(nodes: i32, extra: &[&str]) -> Cluster {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().join("cluster");
        let mut c = Self::start_in(&dir, nodes, extra);
        c._temp = Some(temp);
        c
    }

    /// `kbench cluster --nodes N --proxied` in a fresh temp dir with `FAST_FAILOVER` and
    /// `extra` flags: a client proxy and a peer proxy in front of every node; `bootstrap` is
    /// the client proxies.
    pub fn start_proxied(nodes: i32, extra: &[&str]) -> Cluster {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().join("cluster");
        let mut c = Self::start_with(&dir, nodes, &["--proxied"], extra);
        c._temp = Some(temp);
        c
    }

    /// `kbench cluster --nodes N --data-dir DIR` (DIR may hold a cluster from before).
    pub fn start_in(dir: &Path, nodes: i32, extra: &[&str]) -> Cluster {
        Self::start_with(dir, nodes, &[], extra)
    }

    /// `start` with `kbench cluster --metrics`: every node serves Prometheus metrics.
    pub fn start_with_metrics(nodes: i32, extra: &[&str]) -> Cluster {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut c = Self::start_with(&temp.path().join("cluster"), nodes, &["--metrics"], extra);
        c._temp = Some(temp);
        c
    }

    /// `kbench cluster --nodes N --data-dir DIR FLAGS -- FAST_FAILOVER EXTRA`.
    fn start_with(dir: &Path, nodes: i32, flags: &[&str], extra: &[&str]) -> Cluster {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("kbench"))
            .args(["cluster", "--nodes", &nodes.to_string(), "--data-dir"])
            .arg(dir)
            .args(flags)
            .arg("--")
            .args(fast_failover_except(extra))
            .args(extra)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kbench cluster");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let err = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(err).read_to_string(&mut text);
            eprint!("{text}");
        });
        let mut cluster = Cluster {
            supervisor: Some(child),
            bootstrap: String::new(),
            data_dir: dir.to_path_buf(),
            _temp: None,
        };
        match rx.recv_timeout(Duration::from_secs(90)) {
            Ok(line) => cluster.bootstrap = line.trim().to_string(),
            Err(_) => panic!(
                "kbench cluster did not print its bootstrap servers within 90 s:\n{}",
                cluster.logs()
            ),
        }
        cluster
    }

    pub fn cluster_file(&self) -> PathBuf {
        self.data_dir.join("cluster.json")
    }

    /// The cluster file, parsed.
    pub fn file(&self) -> Value {
        let text = std::fs::read_to_string(self.cluster_file()).expect("cluster file");
        serde_json::from_str(&text).expect("cluster file JSON")
    }

    /// Node `id`'s entry in the cluster file.
    pub fn node(&self, id: i32) -> Value {
        self.file()["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["id"] == id)
            .unwrap_or_else(|| panic!("no node {id}"))
            .clone()
    }

    pub fn pid(&self, id: i32) -> i32 {
        self.node(id)["pid"].as_i64().expect("pid") as i32
    }

    /// The node's client address (its own listener).
    pub fn addr(&self, id: i32) -> String {
        self.node(id)["direct"]
            .as_str()
            .expect("direct")
            .to_string()
    }

    /// The node's metrics address (`kbench cluster --metrics`).
    pub fn metrics_addr(&self, id: i32) -> String {
        self.node(id)["metrics"]
            .as_str()
            .expect("started with --metrics")
            .to_string()
    }

    pub fn node_dir(&self, id: i32) -> PathBuf {
        self.data_dir.join(format!("node-{id}"))
    }

    /// Every node's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for id in 1..=9 {
            let p = self.data_dir.join(format!("node-{id}.log"));
            if let Ok(t) = std::fs::read_to_string(&p) {
                let lines: Vec<&str> = t.lines().collect();
                out += &format!(
                    "--- node {id} (last lines)\n{}\n",
                    lines[lines.len().saturating_sub(30)..].join("\n")
                );
            }
        }
        out
    }

    /// The events node `id` logged (events.jsonl), parsed.
    pub fn events(&self, id: i32) -> Vec<Value> {
        let text =
            std::fs::read_to_string(self.node_dir(id).join("events.jsonl")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Sends `sig` to node `id`'s process (one pid; checked).
    pub fn signal(&self, id: i32, sig: Signal) {
        send(self.pid(id), sig);
    }

    /// SIGKILL and wait until the process is gone.
    pub fn kill9(&self, id: i32) {
        let pid = self.pid(id);
        send(pid, Signal::KILL);
        wait_gone(pid, Duration::from_secs(10));
    }

    /// Runs the node's restart argv from the cluster file (bounded).
    pub fn restart(&self, id: i32) {
        let argv: Vec<String> = self.node(id)["restart"]
            .as_array()
            .expect("restart argv")
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .spawn()
            .expect("restart");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "restart of node {id} failed ({status}):\n{}",
                    self.logs()
                );
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("restart of node {id} took over 90 s:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The partition's state from the metadata of any node that answers.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<PartitionState> {
        for addr in self.bootstrap.split(',') {
            if let Some(m) = metadata(addr, topic) {
                let t = m
                    .topics
                    .iter()
                    .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic))?;
                let p = t
                    .partitions
                    .iter()
                    .find(|p| p.partition_index == partition)?;
                return Some(PartitionState {
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                    error: p.error_code,
                });
            }
        }
        None
    }

    /// Waits (bounded) until `ok` holds for the partition's state; returns that state.
    pub fn wait_for(
        &self,
        topic: &str,
        partition: i32,
        timeout: Duration,
        what: &str,
        ok: impl Fn(&PartitionState) -> bool,
    ) -> PartitionState {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        while Instant::now() < deadline {
            if let Some(s) = self.partition(topic, partition) {
                if ok(&s) {
                    return s;
                }
                last = Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{what}: not within {timeout:?}; last state {last:?}\n{}",
            self.logs()
        );
    }

    /// Stops the cluster as a user would (Ctrl-C to `kbench cluster`), bounded.
    pub fn stop(&mut self) {
        let Some(mut child) = self.supervisor.take() else {
            return;
        };
        send(child.id() as i32, Signal::INT);
        let deadline = Instant::now() + Duration::from_secs(45);
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        if let Some(nodes) = self.file()["nodes"].as_array() {
            for n in nodes {
                send(n["pid"].as_i64().unwrap_or(0) as i32, Signal::KILL);
                for side in ["client_proxy", "peer_proxy"] {
                    if let Some(pid) = n[side]["pid"].as_i64() {
                        send(pid as i32, Signal::KILL);
                    }
                }
            }
        }
        panic!("kbench cluster did not stop within 45 s of SIGINT; killed it and its nodes");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Do not panic again while unwinding; still stop every process.
            if let Some(mut child) = self.supervisor.take() {
                send(child.id() as i32, Signal::INT);
                let deadline = Instant::now() + Duration::from_secs(45);
                while Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
            return;
        }
        self.stop();
    }
}

/// One signal to one process: never pid 0 or 1, never negative (a group), never ourselves.
pub fn send(pid: i32, sig: Signal) {
    assert!(
        pid > 1 && pid != std::process::id() as i32,
        "refusing to signal pid {pid}"
    );
    if let Some(p) = Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            stat.rsplit_once(')')
                .and_then(|(_, r)| r.trim_start().chars().next())
                != Some('Z')
        }
        Err(_) => false,
    }
}

pub fn wait_gone(pid: i32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "pid {pid} still runs {timeout:?} after SIGKILL"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A Metadata v12 request for `topic` to one node; `None` if it does not answer.
pub fn metadata(addr: &str, topic: &str) -> Option<MetadataResponse> {
    let mut req = MetadataRequest::default();
    let mut t = MetadataRequestTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(topic.to_string())));
    req.topics = Some(vec![t]);
    req.allow_auto_topic_creation = false;
    let mut body = request(addr, ApiKey::Metadata, 12, &req)?;
    MetadataResponse::decode(&mut body, 12).ok()
}

/// Sends one request and returns the response body (after its header).
pub fn request<M: Encodable>(addr: &str, key: ApiKey, version: i16, body: &M) -> Option<Bytes> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut header = RequestHeader::default();
    header.request_api_key = key as i16;
    header.request_api_version = version;
    header.correlation_id = 1;
    header.client_id = Some(StrBytes::from_static_str("cluster-test"));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, key.request_header_version(version))
        .ok()?;
    body.encode(&mut buf, version).ok()?;
    let n = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&n.to_be_bytes());
    s.write_all(&buf).ok()?;
    let mut size = [0u8; 4];
    s.read_exact(&mut size).ok()?;
    let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut frame).ok()?;
    let mut b = Bytes::from(frame);
    let _correlation = b.get_i32();
    if key.response_header_version(version) >= 1 {
        // Tagged fields of a flexible response header: none are sent (a single 0 byte).
        let _ = b.get_u8();
    }
    Some(b)
}

/// The bytes of a replica's log for `topic-partition` on a node, segments in order, cut at
/// `upto` bytes (for byte-for-byte comparisons up to the high watermark's position).
pub fn log_bytes(node_dir: &Path, topic: &str, partition: i32) -> Vec<u8> {
    let dir = node_dir.join(format!("{topic}-{partition}"));
    let mut segs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segs.sort();
    segs.iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect()
}
