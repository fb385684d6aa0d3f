//! Turning raw CLI flags into a validated, fully resolved plan.
//!
//! Every check on user input lives here and fails with a message that names the flag and says
//! what is allowed, before anything touches the network. The plan is also what `summary.json`
//! records as the effective `config`.

pub mod faults;
pub mod props;
pub mod timeline;
pub mod txn;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::cli::{
    AmountArgs, ConsumeArgs, ConsumerArgs, E2eArgs, OutputArgs, ProduceArgs, ProducerArgs,
    TargetArgs,
};
use crate::load::keys::KeySpec;
use crate::load::payload::{read_payload_file, PayloadSpec};
use crate::load::stamp::STAMP_LEN;
use props::Props;
pub use timeline::{PhaseSpec, Timeline};

/// Where the load goes.
#[derive(Debug, Clone, Serialize)]
pub struct TargetPlan {
    pub bootstrap_server: Option<String>,
    pub embedded: crate::cli::EmbeddedKind,
    pub topic: String,
    pub partitions: i32,
    pub replication_factor: i32,
    pub create_topic: bool,
    pub connect_timeout_ms: u64,
    /// Nodes kbench can fault (`--cluster-file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_file: Option<PathBuf>,
    #[serde(skip)]
    pub mock_faults: MockFaults,
}

/// What the embedded mock cluster is to inject (hidden test flags `--mock-rtt` and
/// `--mock-outage`, `--mock-brokers`): part of what the run is to do, so the plan holds it and
/// `target` applies it.
#[derive(Debug, Clone)]
pub struct MockFaults {
    pub rtt: Option<Duration>,
    /// Broker down at `.0` after the load starts, for `.1`.
    pub outage: Option<(Duration, Duration)>,
    /// Brokers in the mock cluster (ids 1..=brokers).
    pub brokers: i32,
}

impl Default for MockFaults {
    fn default() -> Self {
        MockFaults {
            rtt: None,
            outage: None,
            brokers: 1,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProducerPlan {
    pub timeline: Timeline,
    pub payload: PayloadSpec,
    #[serde(skip)]
    pub payload_parts: Vec<Vec<u8>>,
    pub keys: KeySpec,
    pub producers: u32,
    pub seed: u64,
    pub props: Props,
    /// Transactions (`None`: a plain or idempotent producer).
    pub transactions: Option<txn::TxnPlan>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsumerPlan {
    pub group: String,
    pub consumers: u32,
    pub timeout_ms: u64,
    pub props: Props,
    /// The effective isolation.level (librdkafka's default is read_committed).
    pub isolation_level: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutputPlan {
    pub reporting_interval_ms: u64,
    pub metrics_listen: Option<std::net::SocketAddr>,
    pub output_dir: Option<PathBuf>,
    pub name: String,
}

/// This process's share of a distributed plan.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerPlan {
    pub workers: u32,
    pub index: u32,
    /// When the load starts (clock ns); now when absent.
    pub start_at_ns: Option<u64>,
}

impl WorkerPlan {
    pub fn single() -> Self {
        WorkerPlan {
            workers: 1,
            index: 0,
            start_at_ns: None,
        }
    }

    /// Does this process run the `i`th of the plan's producers (or consumers)?
    pub fn owns(&self, i: u32) -> bool {
        i % self.workers == self.index
    }
}

fn worker_plan(w: &crate::cli::WorkerArgs) -> Result<WorkerPlan> {
    if w.workers == 0 {
        bail!("--workers must be at least 1");
    }
    if w.worker_index >= w.workers {
        bail!(
            "--worker-index must be below --workers ({}), got {}",
            w.workers,
            w.worker_index
        );
    }
    let start_at_ns = w.start_at.as_deref().map(parse_start_at).transpose()?;
    if w.workers > 1 && start_at_ns.is_none() {
        bail!("--workers {} needs --start-at TIME so that the workers start together (e.g. --start-at $(date -d '+30 seconds' +%s))", w.workers);
    }
    Ok(WorkerPlan {
        workers: w.workers,
        index: w.worker_index,
        start_at_ns,
    })
}

/// Refuses a distributed plan in which some worker would own none of the clients of a kind:
/// workers take every Nth client (`WorkerPlan::owns`), so with fewer clients than workers the
/// last ones would run nothing, report nothing and break `kbench merge`.
fn check_every_worker_has_work(w: &WorkerPlan, clients: u32, flag: &str, kind: &str) -> Result<()> {
    // Zero clients is refused on its own, naming the flag alone.
    if clients == 0 || clients >= w.workers {
        return Ok(());
    }
    let workers = w.workers;
    let idle = if clients + 1 == workers {
        format!("worker {clients}")
    } else {
        format!("workers {clients}..{}", workers - 1)
    };
    bail!(
        "--workers {workers} with {flag} {clients}: {idle} would own no {kind} and do nothing \
         (worker i runs {kind}s i, i+{workers}, ...): set {flag} to at least {workers} \
         (a multiple of {workers} shares the load evenly), or --workers to at most {clients}"
    )
}

/// RFC 3339 or Unix seconds (fractions allowed), as clock nanoseconds.
fn parse_start_at(text: &str) -> Result<u64> {
    if let Ok(secs) = text.trim().parse::<f64>() {
        if secs > 0.0 {
            return Ok((secs * 1e9) as u64);
        }
    }
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp_nanos_opt().unwrap_or(0).max(0) as u64)
        .map_err(|e| anyhow::anyhow!("--start-at '{text}' is neither RFC 3339 (2026-11-24T10:00:00Z) nor Unix seconds: {e}"))
}

/// Which command, with its resolved parts.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub command: String,
    pub target: TargetPlan,
    pub producer: Option<ProducerPlan>,
    pub consumer: Option<ConsumerPlan>,
    /// `consume`: how many records to read.
    pub consume_records: Option<u64>,
    pub show_detailed_stats: bool,
    pub output: OutputPlan,
    pub worker: WorkerPlan,
    /// Fault steps on the timeline (produce and e2e), validated against the run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<faults::FaultSpec>,
    /// Read every partition back after the run (on with faults, or `--verify-readback`).
    pub verify_readback: bool,
}

impl Plan {
    pub fn produce(a: &ProduceArgs) -> Result<Plan> {
        let worker = worker_plan(&a.worker)?;
        check_every_worker_has_work(&worker, a.producer.producers, "--producers", "producer")?;
        Ok(Plan {
            command: "produce".into(),
            target: target_plan(&a.target)?,
            producer: Some(producer_plan(&a.producer)?),
            consumer: None,
            consume_records: None,
            show_detailed_stats: false,
            output: output_plan(&a.output, "produce")?,
            worker,
            faults: fault_flags(&a.faults.faults)?,
            verify_readback: a.faults.verify_readback,
        })
    }

    pub fn consume(a: &ConsumeArgs) -> Result<Plan> {
        if a.num_records == 0 {
            bail!("--num-records must be at least 1");
        }
        let worker = worker_plan(&a.worker)?;
        check_every_worker_has_work(&worker, a.consumer.consumers, "--consumers", "consumer")?;
        let mut consumer = consumer_plan(&a.consumer, "perf-consumer")?;
        consumer.props.set_default(
            "auto.offset.reset",
            if a.from_latest { "latest" } else { "earliest" },
        );
        if a.from_latest {
            consumer
                .props
                .set("auto.offset.reset", "latest", "--from-latest");
        }
        Ok(Plan {
            command: "consume".into(),
            target: target_plan(&a.target)?,
            producer: None,
            consumer: Some(consumer),
            consume_records: Some(a.num_records),
            show_detailed_stats: a.show_detailed_stats,
            output: output_plan(&a.output, "consume")?,
            worker,
            faults: Vec::new(),
            verify_readback: false,
        })
    }

    pub fn e2e(a: &E2eArgs) -> Result<Plan> {
        let worker = worker_plan(&a.worker)?;
        check_every_worker_has_work(&worker, a.producer.producers, "--producers", "producer")?;
        check_every_worker_has_work(&worker, a.consumer.consumers, "--consumers", "consumer")?;
        let mut consumer = consumer_plan(&a.consumer, "kbench-e2e")?;
        consumer.props.set_default("auto.offset.reset", "earliest");
        Ok(Plan {
            command: "e2e".into(),
            target: target_plan(&a.target)?,
            producer: Some(producer_plan(&a.producer)?),
            consumer: Some(consumer),
            consume_records: None,
            show_detailed_stats: false,
            output: output_plan(&a.output, "e2e")?,
            worker,
            faults: fault_flags(&a.faults.faults)?,
            verify_readback: a.faults.verify_readback,
        })
    }

    /// Checks the faults against the run (its length, consumers, topic and target) and turns
    /// the read-back on when there are any.
    fn with_faults_checked(mut self) -> Result<Plan> {
        if self.faults.is_empty() {
            return Ok(self);
        }
        if self.worker.workers > 1 {
            bail!("{}: faults apply to a single kbench process, not to a worker of a distributed run (--workers)", self.faults[0].field);
        }
        self.verify_readback = true;
        // librdkafka's statistics once a second: the retries each fault caused.
        if let Some(p) = self.producer.as_mut() {
            p.props.set_default("statistics.interval.ms", "1000");
        }
        let t = &self.target;
        let (executor, node_ids) = match (&t.bootstrap_server, &t.cluster_file) {
            (_, Some(f)) => (
                faults::ExecutorKind::Nodes,
                Some(
                    crate::fault::nodes::NodeSet::from_cluster_file(f)
                        .map_err(|e| anyhow::anyhow!("--cluster-file: {e:#}"))?
                        .node_ids(),
                ),
            ),
            (None, None) if t.embedded == crate::cli::EmbeddedKind::Mock => (
                faults::ExecutorKind::Mock,
                Some((1..=t.mock_faults.brokers).collect()),
            ),
            // The bundled cluster's nodes, through the cluster file it writes when it starts.
            (None, None) if matches!(t.embedded, crate::cli::EmbeddedKind::Cluster(_)) => {
                let crate::cli::EmbeddedKind::Cluster(n) = t.embedded else {
                    unreachable!()
                };
                (faults::ExecutorKind::Nodes, Some((1..=n).collect()))
            }
            _ => (faults::ExecutorKind::HooksOnly, None),
        };
        let length_ms = self.producer.as_ref().and_then(|p| {
            let t = &p.timeline;
            t.total_ms().or_else(|| {
                let rate = t.phases.first()?.rate?;
                Some((t.max_records? as f64 / rate * 1000.0) as u64)
            })
        });
        let shape = faults::RunShape {
            length_ms,
            consumers: self.consumer.as_ref().map_or(0, |c| c.consumers),
            topic: &t.topic,
            partitions: t.partitions,
            node_ids,
            executor,
        };
        faults::validate(&self.faults, &shape)?;
        Ok(self)
    }

    /// Without --bootstrap-server, a `bootstrap.servers` in the client properties (a
    /// --producer.config file, say) names the cluster, as in Kafka's tools; only without either
    /// does kbench start its embedded broker.
    pub fn with_bootstrap_from_props(mut self) -> Result<Plan> {
        // Consumers of transactional producers report the LSO lag, from their statistics.
        let txn = self
            .producer
            .as_ref()
            .is_some_and(|p| p.transactions.is_some());
        if let (true, Some(c)) = (txn, self.consumer.as_mut()) {
            c.props.set_default("statistics.interval.ms", "1000");
        }
        // A worker's results get their own folder, for `kbench merge` to combine.
        if self.worker.workers > 1 {
            self.output.name = format!("{}-w{}", self.output.name, self.worker.index);
        }
        if let (None, Some(f)) = (&self.target.bootstrap_server, &self.target.cluster_file) {
            self.target.bootstrap_server = Some(cluster_file_bootstrap(f)?);
        }
        if self.target.bootstrap_server.is_none() {
            let from_props = [
                self.producer.as_ref().map(|p| &p.props),
                self.consumer.as_ref().map(|c| &c.props),
            ]
            .into_iter()
            .flatten()
            .find_map(|p| {
                p.get("bootstrap.servers")
                    .map(|b| (b.to_string(), p.source("bootstrap.servers").to_string()))
            });
            if let Some((b, source)) = from_props {
                validate_bootstrap(&b)
                    .with_context(|| format!("bootstrap.servers (set by {source})"))?;
                self.target.bootstrap_server = Some(b);
            }
        }
        self.with_faults_checked()
    }
}

pub(crate) fn target_plan(t: &TargetArgs) -> Result<TargetPlan> {
    if t.topic.trim().is_empty() {
        bail!("--topic must not be empty");
    }
    if t.topic.len() > 249
        || !t
            .topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        bail!(
            "--topic '{}' is not a valid Kafka topic name: use up to 249 of a-z A-Z 0-9 . _ -",
            t.topic
        );
    }
    if t.partitions < 1 {
        bail!("--partitions must be at least 1 (got {})", t.partitions);
    }
    let cluster_nodes = match (&t.bootstrap_server, t.embedded) {
        (None, crate::cli::EmbeddedKind::Cluster(n)) => Some(n),
        _ => None,
    };
    let replication_factor = t
        .replication_factor
        .unwrap_or_else(|| cluster_nodes.map_or(1, |n| n.min(3)));
    if replication_factor < 1 {
        bail!("--replication-factor must be at least 1 (got {replication_factor})");
    }
    if let Some(n) = cluster_nodes.filter(|n| replication_factor > *n) {
        bail!(
            "--replication-factor {replication_factor} is more than the {n} nodes of --embedded cluster:{n}: use at most {n}, or more nodes"
        );
    }
    if let Some(b) = &t.bootstrap_server {
        validate_bootstrap(b).context("--bootstrap-server")?;
    }
    if !(1..=16).contains(&t.mock_brokers) {
        bail!("--mock-brokers must be 1 to 16 (got {})", t.mock_brokers);
    }
    let mut mock_faults = MockFaults {
        rtt: t.mock_rtt.map(Into::into),
        outage: None,
        brokers: t.mock_brokers,
    };
    if let Some(o) = &t.mock_outage {
        let parsed = o.split_once('+').and_then(|(a, b)| {
            Some((
                humantime::parse_duration(a).ok()?,
                humantime::parse_duration(b).ok()?,
            ))
        });
        match parsed {
            Some(p) => mock_faults.outage = Some(p),
            None => bail!("--mock-outage '{o}' is not START+LENGTH (e.g. 2s+1s)"),
        }
    }
    let mock_flags = t.mock_rtt.is_some() || t.mock_outage.is_some() || t.mock_brokers != 1;
    if t.bootstrap_server.is_some() && mock_flags {
        bail!("--mock-rtt/--mock-outage/--mock-brokers apply to the embedded mock cluster only; drop --bootstrap-server");
    }
    if let Some(f) = &t.cluster_file {
        if !f.is_file() {
            bail!(
                "--cluster-file '{}' does not exist; scripts/kafka.sh --nodes 3 writes one",
                f.display()
            );
        }
    }
    Ok(TargetPlan {
        bootstrap_server: t.bootstrap_server.clone(),
        embedded: if mock_flags {
            crate::cli::EmbeddedKind::Mock
        } else {
            t.embedded
        },
        topic: t.topic.clone(),
        partitions: t.partitions,
        replication_factor,
        create_topic: t.create_topic,
        connect_timeout_ms: duration_ms(t.connect_timeout.into(), "--connect-timeout")?,
        cluster_file: t.cluster_file.clone(),
        mock_faults,
    })
}

/// The `bootstrap` a cluster file names (the address clients use: its proxies when proxied).
fn cluster_file_bootstrap(path: &std::path::Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--cluster-file: cannot read '{}'", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("--cluster-file '{}' is not JSON", path.display()))?;
    let b = v["bootstrap"].as_str().ok_or_else(|| {
        anyhow::anyhow!(
            "--cluster-file '{}' has no \"bootstrap\"; give --bootstrap-server",
            path.display()
        )
    })?;
    validate_bootstrap(b)
        .with_context(|| format!("--cluster-file '{}': bootstrap", path.display()))?;
    Ok(b.to_string())
}

/// Every `--fault` flag, parsed (each names itself `--fault` in errors, with its number when
/// there are several).
fn fault_flags(flags: &[String]) -> Result<Vec<faults::FaultSpec>> {
    flags
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let field = if flags.len() > 1 {
                format!("--fault #{}", i + 1)
            } else {
                "--fault".to_string()
            };
            faults::FaultDef::from_flag(text)
                .map_err(|e| anyhow::anyhow!("{field} '{text}': {e}"))?
                .parse(&field)
        })
        .collect()
}

/// `HOST:PORT[,HOST:PORT...]`.
fn validate_bootstrap(list: &str) -> Result<()> {
    for server in list.split(',') {
        let ok = server
            .trim()
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !ok {
            bail!("'{server}' is not HOST:PORT (e.g. localhost:9092)");
        }
    }
    Ok(())
}

fn duration_ms(d: Duration, flag: &str) -> Result<u64> {
    if d.is_zero() {
        bail!("{flag} must be longer than zero");
    }
    Ok(d.as_millis() as u64)
}

/// Kafka-style flags as a timeline: an optional warm-up phase, then the measured phase.
/// `--num-records` counts the warm-up records too (as Kafka's tool does); `--duration` is the
/// measured time after the warm-up.
fn timeline_from_flags(a: &AmountArgs, rate: Option<f64>) -> Result<Timeline> {
    let max_records = match a.num_records {
        Some(0) => bail!("--num-records must be at least 1"),
        n => n,
    };
    let measured_ms = a
        .duration
        .map(|d| duration_ms(d.into(), "--duration"))
        .transpose()?;
    let measured = PhaseSpec::new("measured", rate, measured_ms);
    let (phases, warmup_records) = match (a.warmup_records, a.warmup) {
        (Some(w), _) => {
            if let Some(n) = max_records {
                if w >= n {
                    bail!("--warmup-records ({w}) must be less than --num-records ({n})");
                }
            }
            if measured_ms.is_some() {
                bail!("--warmup-records goes with --num-records; with --duration, give the warm-up as a time (--warmup 10s)");
            }
            (vec![PhaseSpec::warmup(rate, None), measured], Some(w))
        }
        (None, Some(d)) => (
            vec![
                PhaseSpec::warmup(rate, Some(duration_ms(d.into(), "--warmup")?)),
                measured,
            ],
            None,
        ),
        (None, None) => (vec![measured], None),
    };
    let t = Timeline {
        phases,
        warmup_records,
        max_records,
    };
    t.validate()?;
    Ok(t)
}

fn parse_bytes(text: &str, flag: &str) -> Result<u64> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| {
            anyhow::anyhow!("{flag}: '{text}' is not a size in bytes (e.g. 1024, 16KiB, 1MB): {e}")
        })
}

pub(crate) fn producer_plan(p: &ProducerArgs) -> Result<ProducerPlan> {
    // Any negative rate means unthrottled, as in Kafka's tool; 0 would never send.
    let rate = if p.throughput < 0.0 {
        None
    } else if p.throughput > 0.0 && p.throughput.is_finite() {
        Some(p.throughput)
    } else {
        bail!(
            "--throughput must be a rate > 0 records/s, or -1 for unthrottled (got {})",
            p.throughput
        );
    };
    if p.producers == 0 {
        bail!("--producers must be at least 1");
    }
    if !(0.0..=1.0).contains(&p.payload_random_ratio) {
        bail!(
            "--payload-random-ratio must be between 0 and 1 (got {})",
            p.payload_random_ratio
        );
    }
    let (payload, payload_parts) = match (&p.record_size, &p.payload_file) {
        (Some(size), None) => {
            let n = parse_bytes(size, "--record-size")? as usize;
            if n < STAMP_LEN {
                bail!("--record-size must be at least {STAMP_LEN} bytes: every value starts with the {STAMP_LEN}-byte kbench stamp (got {n})");
            }
            if n > 100 << 20 {
                bail!("--record-size {n} is over 100 MiB; Kafka's default message.max.bytes is about 1 MiB");
            }
            (
                PayloadSpec::Generated {
                    record_size: n,
                    random_ratio: p.payload_random_ratio,
                },
                Vec::new(),
            )
        }
        (None, Some(path)) => {
            let parts = read_payload_file(path, &p.payload_delimiter)?;
            (
                PayloadSpec::File {
                    path: path.display().to_string(),
                    parts: parts.len(),
                },
                parts,
            )
        }
        (None, None) => bail!("give --record-size BYTES or --payload-file FILE"),
        (Some(_), Some(_)) => bail!("--record-size and --payload-file exclude each other"),
    };
    let timeline = timeline_from_flags(&p.amount, rate)?;
    let keys: KeySpec = p.keys.parse().map_err(|e| anyhow::anyhow!("--keys {e}"))?;

    let mut props = Props::default();
    if let Some(f) = &p.producer_config {
        props.apply_file(f, "--producer.config")?;
    }
    if let Some(acks) = &p.acks {
        match acks.as_str() {
            "0" | "1" | "all" | "-1" => props.set("acks", acks, "--acks"),
            _ => bail!("--acks must be 0, 1 or all (got '{acks}')"),
        }
    }
    if let Some(b) = &p.batch_size {
        props.set(
            "batch.size",
            &parse_bytes(b, "--batch-size")?.to_string(),
            "--batch-size",
        );
    }
    if let Some(l) = p.linger_ms {
        props.set("linger.ms", &l.to_string(), "--linger-ms");
    }
    if let Some(c) = &p.compression_type {
        match c.as_str() {
            "none" | "gzip" | "snappy" | "lz4" | "zstd" => {
                props.set("compression.type", c, "--compression-type")
            }
            _ => bail!("--compression-type must be none, gzip, snappy, lz4 or zstd (got '{c}')"),
        }
    }
    if p.idempotence {
        props.set("enable.idempotence", "true", "--idempotence");
    }
    props.apply_kv_args(&p.producer_props, "--producer-props")?;
    let transactions = txn::txn_plan(&p.transactions, &mut props)?;
    Ok(ProducerPlan {
        timeline,
        payload,
        payload_parts,
        keys,
        producers: p.producers,
        seed: p.seed,
        props,
        transactions,
    })
}

pub(crate) fn consumer_plan(c: &ConsumerArgs, group_prefix: &str) -> Result<ConsumerPlan> {
    if c.consumers == 0 {
        bail!("--consumers must be at least 1");
    }
    if c.timeout == 0 {
        bail!("--timeout must be at least 1 ms");
    }
    let mut props = Props::default();
    if let Some(f) = &c.consumer_config {
        props.apply_file(f, "--consumer.config")?;
    }
    props.apply_kv_args(&c.consumer_props, "--consumer-props")?;
    if let Some(level) = &c.isolation_level {
        props.set("isolation.level", level, "--isolation-level");
        // The statistics carry the LSO lag (`load::lso`).
        props.set_default("statistics.interval.ms", "1000");
    }
    let isolation_level = props
        .get("isolation.level")
        .unwrap_or("read_committed")
        .to_string();
    if isolation_level != "read_committed" && isolation_level != "read_uncommitted" {
        bail!(
            "isolation.level={isolation_level} (set by {}) must be read_committed or read_uncommitted",
            props.source("isolation.level")
        );
    }
    let group = match (&c.group, props.get("group.id")) {
        (Some(g), _) => g.clone(),
        (None, Some(g)) => g.to_string(),
        // Kafka's tool picks perf-consumer-<random>; a fresh group reads from the start.
        (None, None) => format!("{group_prefix}-{}", rand::random::<u32>() % 100_000),
    };
    if group.is_empty() {
        bail!("--group must not be empty");
    }
    props.set(
        "group.id",
        &group,
        if c.group.is_some() {
            "--group"
        } else {
            "kbench default"
        },
    );
    Ok(ConsumerPlan {
        group,
        consumers: c.consumers,
        timeout_ms: c.timeout,
        props,
        isolation_level,
    })
}

pub(crate) fn output_plan(o: &OutputArgs, command: &str) -> Result<OutputPlan> {
    let interval = duration_ms(o.reporting_interval.into(), "--reporting-interval")?;
    if interval < 100 {
        bail!("--reporting-interval must be at least 100ms");
    }
    let name = o.name.clone().unwrap_or_else(|| command.to_string());
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        bail!(
            "--name '{name}' must be a plain folder-name part (no slashes, not starting with '.')"
        );
    }
    Ok(OutputPlan {
        reporting_interval_ms: interval,
        metrics_listen: o.metrics_listen,
        output_dir: if o.no_results {
            None
        } else {
            Some(o.output_dir.clone())
        },
        name,
    })
}

/// Creates `<output-dir>/<timestamp>-<name>/`.
pub fn create_run_dir(output: &OutputPlan) -> Result<Option<PathBuf>> {
    let Some(base) = &output.output_dir else {
        return Ok(None);
    };
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let mut dir = base.join(format!("{stamp}-{}", output.name));
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = base.join(format!("{stamp}-{}-{n}", output.name));
    }
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("--output-dir: cannot create '{}'", dir.display()))?;
    Ok(Some(dir))
}
