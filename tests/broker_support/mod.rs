//! Shared helpers of the broker integration tests: start a broker, produce and consume with
//! rdkafka (librdkafka), find peers (kcat, python3 + kafka-python), run the broker as a process.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kbench_broker::{BrokerConfig, EmbeddedBroker};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};

pub fn start() -> EmbeddedBroker {
    EmbeddedBroker::start(BrokerConfig::embedded()).expect("broker starts")
}

pub fn start_with(f: impl FnOnce(&mut BrokerConfig)) -> EmbeddedBroker {
    let mut c = BrokerConfig::embedded();
    f(&mut c);
    EmbeddedBroker::start(c).expect("broker starts")
}

/// Counts delivery reports so a test knows every record was acknowledged.
#[derive(Default, Clone)]
pub struct Counting {
    pub ok: Arc<AtomicUsize>,
    pub failed: Arc<AtomicUsize>,
}
impl ClientContext for Counting {}
impl ProducerContext for Counting {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(_) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// Produces `values` to `topic` with extra producer settings; returns (acked, failed).
pub fn produce(
    bootstrap: &str,
    topic: &str,
    values: &[String],
    settings: &[(&str, &str)],
) -> (usize, usize) {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    for (k, v) in settings {
        cfg.set(*k, *v);
    }
    let ctx = Counting::default();
    let p: BaseProducer<Counting> = cfg.create_with_context(ctx.clone()).expect("producer");
    let deadline = Instant::now() + Duration::from_secs(60);
    for (i, v) in values.iter().enumerate() {
        let key = format!("k{i}");
        let mut rec = BaseRecord::to(topic)
            .payload(v.as_bytes())
            .key(key.as_bytes());
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, r)) => {
                    assert!(Instant::now() < deadline, "producer queue stayed full");
                    rec = r;
                    p.poll(Duration::from_millis(10));
                }
            }
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60)).expect("flush");
    (
        ctx.ok.load(Ordering::Relaxed),
        ctx.failed.load(Ordering::Relaxed),
    )
}

pub fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix}-{i:06}-{}", "x".repeat(i % 97)))
        .collect()
}

/// Consumes from `topic` in `group` until `n` records arrived or `timeout` passed.
/// Returns values by count (so duplicates show up as counts > 1).
pub fn consume(
    bootstrap: &str,
    topic: &str,
    group: &str,
    n: usize,
    timeout: Duration,
    settings: &[(&str, &str)],
) -> HashMap<String, usize> {
    consume_until(bootstrap, topic, group, timeout, settings, |_, total| {
        total >= n
    })
}

/// Consumes until `done(seen, total)` holds or `timeout` passed.
pub fn consume_until(
    bootstrap: &str,
    topic: &str,
    group: &str,
    timeout: Duration,
    settings: &[(&str, &str)],
    done: impl Fn(&HashMap<String, usize>, usize) -> bool,
) -> HashMap<String, usize> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "200")
        .set("session.timeout.ms", "6000")
        .set("fetch.wait.max.ms", "100");
    for (k, v) in settings {
        cfg.set(*k, *v);
    }
    let c: BaseConsumer = cfg.create().expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut total = 0;
    let deadline = Instant::now() + timeout;
    while !done(&seen, total) && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.expect("no consumer error");
            let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            *seen.entry(v).or_default() += 1;
            total += 1;
        }
    }
    let _ = c.commit_consumer_state(rdkafka::consumer::CommitMode::Sync);
    seen
}

/// Asserts that `seen` holds every value exactly once.
pub fn assert_exactly_once(values: &[String], seen: &HashMap<String, usize>) {
    let missing = values.iter().filter(|v| !seen.contains_key(*v)).count();
    let dups: usize = seen.values().filter(|&&c| c > 1).count();
    let extra = seen.keys().filter(|k| !values.contains(k)).count();
    assert_eq!(
        (missing, dups, extra),
        (0, 0, 0),
        "missing/duplicated/unexpected records"
    );
}

/// A peer program is required under CI; elsewhere a missing one skips the test loudly.
pub fn require_peer(ok: bool, what: &str) -> bool {
    if ok {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0") {
        panic!("{what} is required under CI; run scripts/install-test-deps.sh");
    }
    eprintln!("\n!!!!!!!! SKIPPING: {what} is not installed (run scripts/install-test-deps.sh) !!!!!!!!\n");
    false
}

pub fn have_kcat() -> bool {
    Command::new("kcat")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn have_kafka_python() -> bool {
    Command::new("python3")
        .args(["-c", "import kafka"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

/// The `kbench` binary built for these tests.
pub fn kbench_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kbench"))
}

/// A free loopback port (bound then released; good enough on a quiet test machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Runs `kbench broker` as a child process on `port` with `data_dir`; waits until it listens.
pub fn spawn_broker_process(port: u16, data_dir: &std::path::Path, extra: &[&str]) -> Child {
    let mut child = Command::new(kbench_bin())
        .arg("broker")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kbench broker");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("kbench broker exited early: {st}");
        }
        assert!(
            Instant::now() < deadline,
            "kbench broker did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// A broker child killed (SIGKILL, by pid) and reaped when dropped — also when an assertion
/// panics first, so a failing test leaves no broker behind.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        kill9(&mut self.0);
    }
}

/// Kills a child with SIGKILL and reaps it.
pub fn kill9(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status();
    let _ = child.wait();
}
