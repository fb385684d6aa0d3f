//! Where the load goes: external bootstrap servers, the bundled broker started in-process, or
//! librdkafka's in-memory mock cluster (deterministic latency and outage injection for tests).
//!
//! Also owns the checks before any load starts: the bootstrap servers answer within a bounded
//! wait, and the topic exists (created when allowed). It must not produce or consume records.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use crate::cli::EmbeddedKind;
use crate::load::client::{client_config, explain_create_error};
use crate::plan::{props::Props, MockFaults};
use kbench_broker::{BrokerConfig, EmbeddedBroker};

/// A running target; dropping it stops whatever kbench started.
pub struct Target {
    pub bootstrap: String,
    pub kind: &'static str,
    broker: Option<EmbeddedBroker>,
    cluster: Option<EmbeddedCluster>,
    mock: Option<MockHandle>,
}

/// A bundled cluster kbench started (`--embedded cluster:N`): its node processes, stopped
/// first, then its temp dir.
struct EmbeddedCluster {
    nodes: kbench_broker::launcher::LocalCluster,
    _dir: tempfile::TempDir,
}

/// One change to the mock cluster, made by the fault scheduler (`fault::mock`).
#[derive(Debug, Clone)]
pub enum MockOp {
    BrokerDown(i32),
    BrokerUp(i32),
    /// Moves a partition's leadership to a broker.
    PartitionLeader {
        topic: String,
        partition: i32,
        broker: i32,
    },
    /// The next `count` Produce requests fail with `error`.
    ProduceErrors {
        error: rdkafka::types::RDKafkaRespErr,
        count: usize,
    },
    /// Round-trip time of a broker (zero: none).
    Rtt(i32, Duration),
}

/// Sends `MockOp`s to the mock cluster's thread; cheap to clone.
#[derive(Clone)]
pub struct MockControl {
    tx: mpsc::Sender<MockCmd>,
    pub brokers: i32,
    /// The RTT the cluster was started with, to heal a `delay` back to.
    pub base_rtt: Duration,
}

impl MockControl {
    /// Applies `op` and waits for the mock's answer.
    pub fn apply(&self, op: MockOp) -> Result<()> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(MockCmd::Op(op, tx))
            .map_err(|_| anyhow::anyhow!("the mock cluster has stopped"))?;
        rx.recv_timeout(Duration::from_secs(5))
            .context("the mock cluster did not answer")?
    }
}

impl Target {
    pub fn external(bootstrap: &str) -> Target {
        Target {
            bootstrap: bootstrap.to_string(),
            kind: "external",
            broker: None,
            cluster: None,
            mock: None,
        }
    }

    /// Starts the embedded target.
    pub fn embedded(
        kind: EmbeddedKind,
        num_partitions: i32,
        faults: &MockFaults,
    ) -> Result<Target> {
        match kind {
            EmbeddedKind::Broker => {
                let mut cfg = BrokerConfig::embedded();
                cfg.num_partitions = num_partitions;
                let broker = EmbeddedBroker::start(cfg).context("starting the bundled broker")?;
                Ok(Target {
                    bootstrap: broker.bootstrap_servers(),
                    kind: "embedded-broker",
                    broker: Some(broker),
                    cluster: None,
                    mock: None,
                })
            }
            EmbeddedKind::Cluster(n) => {
                let cluster = start_cluster(n, num_partitions)?;
                Ok(Target {
                    bootstrap: cluster.nodes.bootstrap()?,
                    kind: "embedded-cluster",
                    broker: None,
                    cluster: Some(cluster),
                    mock: None,
                })
            }
            EmbeddedKind::Mock => {
                let mock = MockHandle::start(faults.clone())?;
                Ok(Target {
                    bootstrap: mock.bootstrap.clone(),
                    kind: "embedded-mock",
                    broker: None,
                    cluster: None,
                    mock: Some(mock),
                })
            }
        }
    }

    /// Makes sure `topic` exists (creating it when allowed) and returns its partition count.
    pub fn ensure_topic(
        &self,
        props: &Props,
        topic: &str,
        partitions: i32,
        rf: i32,
        create: bool,
        timeout: Duration,
    ) -> Result<i32> {
        if let Some(mock) = &self.mock {
            // The mock cluster has no CreateTopics API; it creates topics directly.
            return mock.create_topic(topic, partitions, rf);
        }
        let admin: AdminClient<ProbeContext> = client_config(&self.bootstrap, props)
            .create_with_context(ProbeContext::default())
            .map_err(|e| explain_create_error(e, props, "client"))?;
        let existing = topic_partitions(&admin, topic, timeout, &self.bootstrap)?;
        if let Some(n) = existing {
            if n != partitions && partitions != 1 {
                tracing::warn!("topic '{topic}' already exists with {n} partitions; --partitions {partitions} applies only to new topics");
            }
            return Ok(n);
        }
        if !create {
            bail!("topic '{topic}' does not exist on {} and --create-topic is false: create it first, or drop --create-topic false", self.bootstrap);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(rf));
        let opts = AdminOptions::new().operation_timeout(Some(timeout));
        let results = rt
            .block_on(admin.create_topics([&new], &opts))
            .with_context(|| format!("creating topic '{topic}'"))?;
        for r in results {
            if let Err((name, code)) = r {
                if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                    bail!("cannot create topic '{name}' ({partitions} partitions, replication factor {rf}): {code}; check --partitions/--replication-factor against the cluster, or create the topic yourself");
                }
            }
        }
        // Wait until the metadata shows the new topic with its leaders.
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(n) = topic_partitions(&admin, topic, timeout, &self.bootstrap)? {
                return Ok(n);
            }
            if std::time::Instant::now() > deadline {
                bail!("topic '{topic}' was created but does not appear in the metadata after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The cluster file of the bundled cluster kbench started, for node faults.
    pub fn cluster_file(&self) -> Option<&std::path::Path> {
        self.cluster.as_ref().map(|c| c.nodes.cluster_file())
    }

    /// The mock cluster's control, for the fault scheduler (mock targets only).
    pub fn mock_control(&self) -> Option<MockControl> {
        self.mock.as_ref().map(|m| MockControl {
            tx: m.tx.clone(),
            brokers: m.brokers,
            base_rtt: m.base_rtt,
        })
    }

    /// Starts the timed faults (mock only), relative to now.
    pub fn start_faults(&self) {
        if let Some(m) = &self.mock {
            m.start_faults();
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(b) = self.broker.take() {
            b.shutdown();
        }
        if let Some(mut c) = self.cluster.take() {
            c.nodes.stop();
        }
    }
}

/// Starts `--embedded cluster:N`: N `kbench broker` processes (this binary) in a temp dir.
fn start_cluster(nodes: i32, num_partitions: i32) -> Result<EmbeddedCluster> {
    let dir = tempfile::Builder::new()
        .prefix("kbench-cluster-")
        .tempdir()?;
    let spec = kbench_broker::launcher::ClusterSpec {
        nodes,
        data_dir: dir.path().to_path_buf(),
        program: std::env::current_exe().context("finding the kbench binary to start the nodes")?,
        program_args: vec!["broker".into()],
        broker_args: vec!["--num-partitions".into(), num_partitions.to_string()],
        metrics: false,
        proxied: false,
    };
    let nodes = kbench_broker::launcher::LocalCluster::start(&spec).with_context(|| {
        format!("starting the bundled cluster of {nodes} nodes (--embedded cluster:{nodes})")
    })?;
    eprintln!(
        "kbench: bundled cluster of {} nodes up (cluster file {})",
        spec.nodes,
        nodes.cluster_file().display()
    );
    Ok(EmbeddedCluster { nodes, _dir: dir })
}

/// Partitions of `topic` with a leader each, or `None` when it does not exist. Fails when the
/// bootstrap servers do not answer within `timeout`.
fn topic_partitions(
    admin: &AdminClient<ProbeContext>,
    topic: &str,
    timeout: Duration,
    bootstrap: &str,
) -> Result<Option<i32>> {
    // All topics, not just ours: asking for one topic can auto-create it on some brokers.
    let md = admin.inner().fetch_metadata(None, timeout).map_err(|e| {
        let wait = humantime::format_duration(timeout);
        match admin.inner().context().last_error() {
            // An authentication or TLS failure is not a network problem: say what it was.
            Some(why) if is_security_failure(&why) => anyhow::anyhow!(
                "the bootstrap servers '{bootstrap}' refused the connection: {why}. Check the security properties (security.protocol, sasl.mechanisms, sasl.username, sasl.password, ssl.ca.location)"
            ),
            Some(why) => anyhow::anyhow!(
                "cannot reach the bootstrap servers '{bootstrap}' within {wait}: {e} ({why}). Check --bootstrap-server, that the brokers are up, and the security properties if the cluster is secured; --connect-timeout sets the wait"
            ),
            None => anyhow::anyhow!(
                "cannot reach the bootstrap servers '{bootstrap}' within {wait}: {e}. Check --bootstrap-server, that the brokers are up, and the security properties (security.protocol, sasl.*, ssl.*) if the cluster is secured; --connect-timeout sets the wait"
            ),
        }
    })?;
    Ok(md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .and_then(|t| {
            let ready = !t.partitions().is_empty()
                && t.error().is_none()
                && t.partitions().iter().all(|p| p.leader() >= 0);
            ready.then_some(t.partitions().len() as i32)
        }))
}

/// Keeps librdkafka's last error report, which says why a connection failed (refused,
/// authentication, TLS) where the metadata call only says that it timed out.
#[derive(Default)]
struct ProbeContext {
    last: std::sync::Mutex<Option<String>>,
}

impl ProbeContext {
    fn last_error(&self) -> Option<String> {
        self.last.lock().ok().and_then(|l| l.clone())
    }
}

impl ClientContext for ProbeContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let text = if reason.is_empty() {
            error.to_string()
        } else {
            reason.to_string()
        };
        // Keep the most telling report: an authentication failure beats a later disconnect.
        if let Ok(mut last) = self.last.lock() {
            if !last.as_deref().is_some_and(is_security_failure) {
                *last = Some(text);
            }
        }
    }
}

fn is_security_failure(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    ["authentication", "sasl", "ssl", "certificate", "handshake"]
        .iter()
        .any(|w| t.contains(w))
}

enum MockCmd {
    CreateTopic(String, i32, i32, mpsc::Sender<Result<i32>>),
    StartFaults,
    Op(MockOp, mpsc::Sender<Result<()>>),
    Stop,
}

/// The mock cluster lives on its own thread: `MockCluster` is neither `Send` nor `Sync`.
struct MockHandle {
    bootstrap: String,
    tx: mpsc::Sender<MockCmd>,
    thread: Option<JoinHandle<()>>,
    brokers: i32,
    base_rtt: Duration,
}

impl MockHandle {
    fn start(faults: MockFaults) -> Result<MockHandle> {
        let (tx, rx) = mpsc::channel::<MockCmd>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String>>();
        let (brokers, base_rtt) = (faults.brokers, faults.rtt.unwrap_or_default());
        let thread = std::thread::Builder::new()
            .name("kbench-mock".into())
            .spawn(move || {
                let cluster = match MockCluster::new(faults.brokers) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::anyhow!(
                            "cannot start librdkafka's mock cluster: {e}"
                        )));
                        return;
                    }
                };
                if let Some(rtt) = faults.rtt {
                    for b in 1..=faults.brokers {
                        let _ = cluster.broker_round_trip_time(b, rtt);
                    }
                }
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                mock_loop(&cluster, &rx, &faults);
            })?;
        let bootstrap = ready_rx.recv().context("mock cluster thread ended")??;
        Ok(MockHandle {
            bootstrap,
            tx,
            thread: Some(thread),
            brokers,
            base_rtt,
        })
    }

    fn create_topic(&self, topic: &str, partitions: i32, rf: i32) -> Result<i32> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(MockCmd::CreateTopic(topic.into(), partitions, rf, tx))
            .ok();
        rx.recv().context("mock cluster thread ended")?
    }

    fn start_faults(&self) {
        self.tx.send(MockCmd::StartFaults).ok();
    }
}

fn mock_loop(
    cluster: &MockCluster<'static, DefaultProducerContext>,
    rx: &mpsc::Receiver<MockCmd>,
    faults: &MockFaults,
) {
    // Pending fault events as (when, down?).
    let mut events: Vec<(std::time::Instant, bool)> = Vec::new();
    loop {
        let wait = events
            .first()
            .map(|(t, _)| t.saturating_duration_since(std::time::Instant::now()));
        let cmd = match wait {
            Some(w) => rx.recv_timeout(w),
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match cmd {
            Ok(MockCmd::CreateTopic(name, p, rf, reply)) => {
                let r = cluster.create_topic(&name, p, rf).map(|_| p).map_err(|e| {
                    anyhow::anyhow!("mock cluster: cannot create topic '{name}': {e}")
                });
                let _ = reply.send(r);
            }
            Ok(MockCmd::StartFaults) => {
                if let Some((at, len)) = faults.outage {
                    let now = std::time::Instant::now();
                    events = vec![(now + at, true), (now + at + len, false)];
                }
            }
            Ok(MockCmd::Op(op, reply)) => {
                let _ = reply.send(apply_op(cluster, &op));
            }
            Ok(MockCmd::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let (_, down) = events.remove(0);
                let _ = if down {
                    cluster.broker_down(1)
                } else {
                    cluster.broker_up(1)
                };
            }
        }
    }
}

fn apply_op(cluster: &MockCluster<'static, DefaultProducerContext>, op: &MockOp) -> Result<()> {
    let r = match op {
        MockOp::BrokerDown(b) => cluster.broker_down(*b),
        MockOp::BrokerUp(b) => cluster.broker_up(*b),
        MockOp::PartitionLeader {
            topic,
            partition,
            broker,
        } => cluster.partition_leader(topic, *partition, Some(*broker)),
        MockOp::ProduceErrors { error, count } => {
            let errors = vec![*error; *count];
            cluster.request_errors(rdkafka::types::RDKafkaApiKey::Produce, &errors);
            Ok(())
        }
        MockOp::Rtt(b, d) => cluster.broker_round_trip_time(*b, *d),
    };
    r.map_err(|e| anyhow::anyhow!("mock cluster: {op:?} failed: {e}"))
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        let _ = self.tx.send(MockCmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
