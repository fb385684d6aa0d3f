//! The bundled Kafka-compatible broker: single node, disk-backed, zero-copy fetch, classic
//! consumer groups, transactions, Prometheus metrics.
//!
//! A crate of its own (`kbench-broker`, in `crates/broker/`); kbench uses only this surface:
//! * `EmbeddedBroker::start(BrokerConfig)` starts the broker in-process on its own runtime and
//!   returns once it accepts connections; `bootstrap_servers()` gives `host:port`; dropping the
//!   handle (or `shutdown()`) stops it and, for `BrokerConfig::embedded()`, removes its temp dir.
//! * `cli::BrokerArgs` / `cli::run` implement `kbench broker` in the foreground.
//!
//! Must not: depend on the load generator.
//!
//! # Layout
//! * `cluster` — the replicated cluster: metadata quorum, replication between nodes.
//! * `launcher`, `cli_cluster` — `kbench cluster`: N node processes on loopback, their cluster file.
//! * `server` — accept loop, per-connection framing and in-order responses, idle and arrival bounds.
//! * `connections` — the connection table: who is idle longest, room for newcomers.
//! * `zero_copy` — writing Fetch responses with sendfile (or read+write).
//! * `protocol` — the advertised version table, headers, batch header checks, Fetch framing.
//! * `handlers` — one module per API family.
//! * `log` — segmented partition logs on disk, recovery, retention, idempotence state.
//! * `topics` — the topic registry over `log`.
//! * `group` — the classic group coordinator and the committed-offset journal.
//! * `journal` — the record format (length, CRC-32C, fields) both journals share.
//! * `txn` — the transaction coordinator (KIP-98, TV1), its journal, markers and timeout sweep.
//! * `metrics` — Prometheus counters/gauges and the scrape endpoint.
//! * `state` — the shared `Broker` wiring these together.

mod alloc;
pub mod cli;
pub mod cli_cluster;
pub mod cluster;
pub mod connections;
pub mod fuzzing;
pub mod group;
pub mod handlers;
pub mod journal;
pub mod launcher;
pub mod log;
pub mod metrics;
pub mod protocol;
pub mod server;
pub mod state;
pub mod topics;
pub mod txn;
pub mod zero_copy;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use log::FlushPolicy;

/// Everything the broker needs to start.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Address to listen on; port 0 picks an ephemeral port.
    pub listen: SocketAddr,
    /// Where partitions are stored. `None` = a temp dir removed on shutdown.
    pub data_dir: Option<PathBuf>,
    /// `host:port` given to clients in Metadata; default: the bound address (127.0.0.1 when
    /// listening on an unspecified address).
    pub advertised_listener: Option<String>,
    /// Where to serve Prometheus metrics; `None` = not served.
    pub metrics_listen: Option<SocketAddr>,
    /// Partitions of auto-created topics (and CreateTopics with -1).
    pub num_partitions: i32,
    /// Create unknown topics on Metadata requests (Kafka's default: true).
    pub auto_create_topics: bool,
    pub flush: FlushPolicy,
    pub segment_bytes: u64,
    pub retention_bytes: Option<u64>,
    pub retention_ms: Option<u64>,
    /// Serve Fetch with sendfile (true) or read+write (false).
    pub zero_copy: bool,
    /// Largest request frame accepted; larger ones close the connection.
    pub max_request_bytes: usize,
    /// Largest record batch accepted (Kafka's `message.max.bytes`).
    pub max_message_bytes: usize,
    /// Most open connections; a newcomer to a full table takes the place of the longest idle.
    pub max_connections: usize,
    /// Kafka's `connections.max.idle.ms`: a connection without a request for this long closes.
    pub connections_max_idle_ms: u64,
    /// A request must arrive whole within this long of its first byte, or its connection
    /// closes (slow-loris senders). Kafka has no such bound; its clients give up at 30 s.
    pub request_arrival_timeout_ms: u64,
    /// Kafka's `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay_ms: u64,
    /// Kafka's `transaction.max.timeout.ms`: InitProducerId with a longer
    /// transaction.timeout.ms fails with INVALID_TRANSACTION_TIMEOUT.
    pub transaction_max_timeout_ms: u64,
    /// Kafka's `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often open
    /// transactions are checked against their timeout.
    pub transaction_cleanup_interval_ms: u64,
    /// Worker threads of the broker's runtime.
    pub threads: usize,
    /// This node's place in a replicated cluster; `None` = the single-node broker.
    pub cluster: Option<cluster::ClusterConfig>,
}

impl BrokerConfig {
    /// The embedded default: loopback, ephemeral port, temp data dir, no initial rebalance
    /// delay (consumers of a benchmark start together and should not wait 3 s).
    pub fn embedded() -> Self {
        BrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: None,
            advertised_listener: None,
            metrics_listen: None,
            num_partitions: 1,
            auto_create_topics: true,
            flush: FlushPolicy::None,
            segment_bytes: 1 << 30,
            retention_bytes: None,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            zero_copy: true,
            max_request_bytes: 100 * 1024 * 1024,
            max_message_bytes: 1_048_588,
            max_connections: 1000,
            connections_max_idle_ms: 600_000,
            request_arrival_timeout_ms: 30_000,
            group_initial_rebalance_delay_ms: 0,
            transaction_max_timeout_ms: 900_000,
            transaction_cleanup_interval_ms: 10_000,
            threads: 2,
            cluster: None,
        }
    }
}

/// A running in-process broker.
pub struct EmbeddedBroker {
    bootstrap: String,
    metrics_addr: Option<SocketAddr>,
    broker: Arc<state::Broker>,
    shutdown_tx: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// This node's metadata-quorum voter, when it is a node of a cluster it started itself.
    quorum: Option<Arc<cluster::quorum::Quorum>>,
    runtime: tokio::runtime::Handle,
    // Dropped last: removes the temp data dir of `BrokerConfig::embedded()`.
    _temp_dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("bootstrap", &self.bootstrap)
            .finish()
    }
}

impl EmbeddedBroker {
    /// Starts the broker and waits until it accepts connections.
    pub fn start(config: BrokerConfig) -> anyhow::Result<Self> {
        Self::start_node(config, None)
    }

    /// Starts one node of a cluster, with its handle on the metadata quorum (`None`: the
    /// single-node broker). The cluster's background duties (replication, coordinators)
    /// start with it.
    pub fn start_node(
        config: BrokerConfig,
        cluster: Option<cluster::ClusterHandle>,
    ) -> anyhow::Result<Self> {
        let (temp_dir, data_dir) = data_dir_of(&config)?;
        // Bound now (a taken port fails before any work, and port 0 gets its number), but
        // listening only once recovery is done: a client that connects earlier is refused
        // rather than queued, so "accepts connections" means "ready".
        let socket = server::bind_socket(config.listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {} (--listen): {e}", config.listen))?;
        let (host, port) = advertised(&config, server::local_addr(&socket)?)?;
        let metrics_listener = match config.metrics_listen {
            Some(a) => Some(
                metrics::bind(a)
                    .map_err(|e| anyhow::anyhow!("cannot listen on {a} (--metrics-listen): {e}"))?,
            ),
            None => None,
        };
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads.max(1))
            .thread_name("kbench-broker")
            .enable_all()
            .build()?;
        // A node of a cluster it joins itself (`kbench broker --node-id`): its voter first, so
        // that it is registered (with the address clients will be told) before it serves.
        let (quorum, cluster) = match (&config.cluster, cluster) {
            (Some(cfg), None) => {
                let q = runtime.block_on(start_quorum(cfg, &data_dir, &host, port))?;
                let handle = q.handle();
                (Some(q), Some(handle))
            }
            (_, given) => (None, given),
        };
        let broker = Arc::new(match cluster {
            None => state::Broker::open(config.clone(), &data_dir, host.clone(), port)?,
            Some(c) => {
                state::Broker::open_clustered(config.clone(), &data_dir, host.clone(), port, c)?
            }
        });
        // Transactions left half-ended by a crash get their markers before anyone reads.
        txn::complete::sweep(&broker);
        let listener = server::listen(socket)?;
        listener.set_nonblocking(true)?;
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let runtime_handle = runtime.handle().clone();
        let node = Serving {
            broker: broker.clone(),
            quorum: quorum.clone(),
            listener,
            metrics_listener,
            shutdown: shutdown_rx,
        };
        let thread = std::thread::Builder::new()
            .name("kbench-broker-main".into())
            .spawn(move || {
                runtime.block_on(node.run());
                runtime.shutdown_timeout(Duration::from_secs(2));
            })?;
        let bootstrap = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(EmbeddedBroker {
            bootstrap,
            metrics_addr,
            broker,
            shutdown_tx,
            thread: Some(thread),
            quorum,
            runtime: runtime_handle,
            _temp_dir: temp_dir,
        })
    }

    /// SIGTERM on a node of a cluster: moves its leaderships to other ISR members and waits
    /// (bounded) until the metadata shows it leads nothing, so that clients move in
    /// milliseconds, not a session timeout. Nothing to do on a single node.
    pub fn controlled_shutdown(&self, timeout: Duration) -> anyhow::Result<()> {
        let Some(q) = &self.quorum else { return Ok(()) };
        let me = q.handle().node_id;
        let md = q.metadata();
        if !md
            .brokers
            .keys()
            .any(|id| *id != me && md.is_available(*id))
        {
            // Nobody to hand over to (the last node of a stopping cluster): waiting for a
            // quorum that is leaving too would only delay the exit.
            tracing::info!("controlled shutdown skipped: no other live broker");
            return Ok(());
        }
        let report = self.runtime.block_on(q.controlled_shutdown(timeout))?;
        tracing::info!("controlled shutdown: {report:?}");
        Ok(())
    }

    /// The running broker's state, for tests that look inside a node (its logs, its groups).
    pub fn state(&self) -> &Arc<state::Broker> {
        &self.broker
    }

    /// `host:port` for clients.
    pub fn bootstrap_servers(&self) -> String {
        self.bootstrap.clone()
    }

    /// The bound metrics address, when `metrics_listen` was set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The metrics text a scrape would return (no HTTP needed in-process).
    pub fn metrics_text(&self) -> String {
        self.broker.metrics.render(&self.broker)
    }

    /// Stops the broker and waits for it to finish.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The data dir: the configured one, or a temp dir removed when the broker stops.
fn data_dir_of(config: &BrokerConfig) -> anyhow::Result<(Option<tempfile::TempDir>, PathBuf)> {
    Ok(match &config.data_dir {
        Some(d) => (None, d.clone()),
        None => {
            let t = tempfile::Builder::new()
                .prefix("kbench-broker-")
                .tempdir()?;
            let path = t.path().to_path_buf();
            (Some(t), path)
        }
    })
}

/// The host and port clients are told: `--advertised-listener`, else the bound address
/// (127.0.0.1 when listening on an unspecified address).
fn advertised(config: &BrokerConfig, local: SocketAddr) -> anyhow::Result<(String, i32)> {
    match &config.advertised_listener {
        Some(a) => a
            .rsplit_once(':')
            .and_then(|(h, p)| {
                p.parse::<i32>()
                    .ok()
                    .map(|p| (h.trim_matches(['[', ']']).to_string(), p))
            })
            .ok_or_else(|| anyhow::anyhow!("--advertised-listener {a:?} is not HOST:PORT")),
        None if local.ip().is_unspecified() => {
            Ok(("127.0.0.1".to_string(), i32::from(local.port())))
        }
        None => Ok((local.ip().to_string(), i32::from(local.port()))),
    }
}

/// What the broker's main thread runs: its listeners and background duties until shutdown.
struct Serving {
    broker: Arc<state::Broker>,
    quorum: Option<Arc<cluster::quorum::Quorum>>,
    listener: std::net::TcpListener,
    metrics_listener: Option<std::net::TcpListener>,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl Serving {
    async fn run(self) {
        let (b, rx) = (self.broker, self.shutdown);
        let listener = match tokio::net::TcpListener::from_std(self.listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("cannot register the listener: {e}");
                return;
            }
        };
        if let Some(ml) = self
            .metrics_listener
            .and_then(|l| tokio::net::TcpListener::from_std(l).ok())
        {
            tokio::spawn(metrics::serve(ml, b.clone(), rx.clone()));
        }
        tokio::spawn(housekeeping(b.clone(), rx.clone()));
        if b.cluster.is_some() {
            cluster::replica::spawn(b.clone(), rx.clone());
            cluster::coordinator::spawn(b.clone(), rx.clone());
            txn::cluster::spawn(b.clone(), rx.clone());
        }
        if let Some(q) = &self.quorum {
            let q2 = q.clone();
            let active: cluster::observe::IsActive = Arc::new(move || q2.is_active_controller());
            tokio::spawn(cluster::observe::run(b.clone(), active, rx.clone()));
        }
        server::run(listener, b.clone(), rx).await;
        b.topics.flush_all();
        if let Some(q) = self.quorum {
            q.shutdown().await;
        }
    }
}

/// Checks the data dir is this node's (before anything is written there), opens its event
/// log and starts its metadata-quorum voter.
async fn start_quorum(
    cfg: &cluster::ClusterConfig,
    data_dir: &std::path::Path,
    host: &str,
    port: i32,
) -> anyhow::Result<Arc<cluster::quorum::Quorum>> {
    cluster::quorum::check_data_dir(data_dir, cfg).map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create --data-dir {}: {e}", data_dir.display()))?;
    let events = cluster::EventLog::open(data_dir, cfg.node_id)
        .map_err(|e| anyhow::anyhow!("cannot open the event log in {}: {e}", data_dir.display()))?;
    cluster::quorum::Quorum::start(cfg, data_dir, host.to_string(), port, events).await
}

/// Background duties: group timeouts (100 ms), transaction timeouts (every
/// `transaction_cleanup_interval_ms`), retention (every 5 s), interval flushes.
async fn housekeeping(
    broker: Arc<state::Broker>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_retention = Instant::now();
    let mut last_flush = Instant::now();
    let mut last_txn_sweep = Instant::now();
    let txn_sweep = Duration::from_millis(broker.cfg.transaction_cleanup_interval_ms.max(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = Instant::now();
        broker.groups.tick(now);
        if now.duration_since(last_txn_sweep) >= txn_sweep {
            last_txn_sweep = now;
            let b = broker.clone();
            let _ = tokio::task::spawn_blocking(move || txn::complete::sweep(&b)).await;
        }
        if now.duration_since(last_retention) >= Duration::from_secs(5) {
            last_retention = now;
            let b = broker.clone();
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let _ = tokio::task::spawn_blocking(move || b.topics.apply_retention(now_ms)).await;
        }
        if let FlushPolicy::IntervalMs(ms) = broker.cfg.flush {
            if now.duration_since(last_flush) >= Duration::from_millis(ms) {
                last_flush = now;
                let b = broker.clone();
                let _ = tokio::task::spawn_blocking(move || b.topics.flush_all()).await;
            }
        }
    }
}
