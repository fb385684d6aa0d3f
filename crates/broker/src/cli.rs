//! `kbench broker`: the bundled broker in the foreground until Ctrl-C or SIGTERM.
//!
//! Owns: the flags of `kbench broker` and turning them into a `BrokerConfig`. Must not: hold
//! any broker logic.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{BrokerConfig, EmbeddedBroker, FlushPolicy};

/// Flags of `kbench broker`.
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerArgs {
    /// Address to listen on (port 0 = any free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub listen: SocketAddr,
    /// Directory for partition logs and committed offsets [default: a temp dir removed at exit].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// HOST:PORT that clients are told to connect to [default: the listen address].
    #[arg(long)]
    pub advertised_listener: Option<String>,
    /// Serve Prometheus metrics (text format) on this address, e.g. 127.0.0.1:9100.
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// Partitions of auto-created topics.
    #[arg(long, default_value_t = 1)]
    pub num_partitions: i32,
    /// Create unknown topics when clients ask for their metadata.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_create_topics: bool,
    /// When to fsync appended data: `messages:N` (fsync once N messages are appended, before
    /// acknowledging them; messages:1 = every batch), `interval:MS` (a background fsync every
    /// MS; acks do not wait) or `none`. Default: none — like Kafka, data is written to the OS
    /// page cache before the ack and survives a broker crash, but not a power loss.
    #[arg(long, default_value = "none")]
    pub flush: FlushPolicy,
    /// Roll to a new segment file when the active one would exceed this many bytes.
    #[arg(long, default_value_t = 1 << 30)]
    pub segment_bytes: u64,
    /// Delete the oldest segments while a partition is larger than this (-1 = no limit).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub retention_bytes: i64,
    /// Delete segments whose newest record is older than this (-1 = keep forever).
    #[arg(long, default_value_t = 7 * 24 * 3600 * 1000, allow_negative_numbers = true)]
    pub retention_ms: i64,
    /// Send fetched records with sendfile (true) or read+write (false), to measure the difference.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub zero_copy: bool,
    /// Largest request accepted; a larger one closes the connection.
    #[arg(long, default_value_t = 100 * 1024 * 1024)]
    pub max_request_bytes: usize,
    /// Most simultaneous client connections. When the table is full, a newcomer takes the place
    /// of the connection idle longest (one that never completed a request goes first), so a
    /// flood of idle or half-open connections cannot shut real clients out.
    #[arg(long, default_value_t = 1000)]
    pub max_connections: usize,
    /// Close a connection that sent no request for this long (Kafka's connections.max.idle.ms).
    #[arg(long, default_value_t = 600_000)]
    pub connections_max_idle_ms: u64,
    /// Close a connection whose request does not arrive whole within this long of its first
    /// byte (a slow-loris sender). Clients give up on a request after 30 s anyway.
    #[arg(long, default_value_t = 30_000)]
    pub request_arrival_timeout_ms: u64,
    /// How long an empty group waits for more members before its first rebalance completes
    /// (Kafka's group.initial.rebalance.delay.ms).
    #[arg(long, default_value_t = 3000)]
    pub group_initial_rebalance_delay_ms: u64,
    /// Longest transaction.timeout.ms a transactional producer may ask for; InitProducerId
    /// with a longer one fails with INVALID_TRANSACTION_TIMEOUT (Kafka's
    /// transaction.max.timeout.ms).
    #[arg(long, default_value_t = 900_000)]
    pub transaction_max_timeout_ms: u64,
    /// How often open transactions are checked against their timeout; those past it are
    /// aborted (Kafka's transaction.abort.timed.out.transaction.cleanup.interval.ms).
    #[arg(long, default_value_t = 10_000)]
    pub transaction_cleanup_interval_ms: u64,
    /// Worker threads of the broker.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Flags of a node of a replicated cluster (`kbench cluster` passes them for you). Names and
/// defaults are Kafka's (KRaft combined mode: every node is a voter and a broker).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Cluster (a node of a replicated cluster)")]
pub struct ClusterArgs {
    /// This node's id in the cluster (Kafka's node.id). Needs --controller-quorum and --data-dir.
    #[arg(long, value_name = "N", requires = "controller_quorum")]
    pub node_id: Option<i32>,
    /// Every node's metadata-quorum address, ID@HOST:PORT comma-separated, the same on every
    /// node (Kafka's controller.quorum.voters), e.g. 1@127.0.0.1:19091,2@127.0.0.1:19092,3@127.0.0.1:19093.
    #[arg(long, value_name = "ID@HOST:PORT,..", requires = "node_id")]
    pub controller_quorum: Option<String>,
    /// HOST:PORT that followers replicate from, when it is not the client one (a proxy in
    /// front of this node's peer traffic; Kafka's inter-broker listener)
    /// [default: --advertised-listener].
    #[arg(long, value_name = "HOST:PORT", requires = "node_id")]
    pub advertised_peer_listener: Option<String>,
    /// A broker without a heartbeat for this long is fenced: it leaves every ISR and its
    /// partitions get new leaders (Kafka's broker.session.timeout.ms).
    #[arg(long, value_name = "MS", default_value_t = 9000)]
    pub broker_session_timeout_ms: u64,
    /// How often a broker heartbeats the active controller (broker.heartbeat.interval.ms).
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub broker_heartbeat_interval_ms: u64,
    /// A follower not caught up for this long leaves the ISR (replica.lag.time.max.ms).
    #[arg(long, value_name = "MS", default_value_t = 30000)]
    pub replica_lag_time_max_ms: u64,
    /// How long a follower's fetch waits at the leader for new data (replica.fetch.wait.max.ms).
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub replica_fetch_wait_max_ms: u64,
    /// The broker default of min.insync.replicas: acks=all produces fail with
    /// NOT_ENOUGH_REPLICAS while a partition's ISR is smaller (a topic config overrides it).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub min_insync_replicas: i32,
    /// Replication factor of auto-created topics and of CreateTopics without one
    /// [default: the number of nodes, at most 3].
    #[arg(long, value_name = "N")]
    pub default_replication_factor: Option<i32>,
    /// Elect a leader outside the ISR when no ISR member is alive: the partition comes back
    /// sooner, but acknowledged records can be lost (unclean.leader.election.enable).
    #[arg(long)]
    pub unclean_leader_election_enable: bool,
}

impl ClusterArgs {
    /// The cluster settings, or `None` for a single-node broker. Errors name the flag.
    pub fn to_config(
        &self,
        data_dir: Option<&std::path::Path>,
    ) -> anyhow::Result<Option<crate::cluster::ClusterConfig>> {
        let (Some(node_id), Some(quorum)) = (self.node_id, self.controller_quorum.as_deref())
        else {
            return Ok(None);
        };
        if data_dir.is_none() {
            anyhow::bail!(
                "--node-id needs --data-dir: a cluster node keeps its log and its quorum state across restarts"
            );
        }
        let voters = crate::cluster::config::parse_quorum(quorum).map_err(anyhow::Error::msg)?;
        let mut c = crate::cluster::ClusterConfig::new(node_id, voters);
        for (flag, ms) in [
            (
                "--broker-session-timeout-ms",
                self.broker_session_timeout_ms,
            ),
            (
                "--broker-heartbeat-interval-ms",
                self.broker_heartbeat_interval_ms,
            ),
            ("--replica-lag-time-max-ms", self.replica_lag_time_max_ms),
            (
                "--replica-fetch-wait-max-ms",
                self.replica_fetch_wait_max_ms,
            ),
        ] {
            if ms < 1 {
                anyhow::bail!("{flag} must be at least 1");
            }
        }
        c.session_timeout = Duration::from_millis(self.broker_session_timeout_ms);
        c.heartbeat_interval = Duration::from_millis(self.broker_heartbeat_interval_ms);
        c.replica_lag_time_max = Duration::from_millis(self.replica_lag_time_max_ms);
        c.replica_fetch_wait_max = Duration::from_millis(self.replica_fetch_wait_max_ms);
        c.min_insync_replicas = self.min_insync_replicas;
        if let Some(rf) = self.default_replication_factor {
            c.default_replication_factor = rf;
        }
        c.unclean_leader_election = self.unclean_leader_election_enable;
        if let Some(peer) = &self.advertised_peer_listener {
            c.advertised_peer = Some(
                crate::cluster::config::parse_endpoint("--advertised-peer-listener", peer)
                    .map_err(anyhow::Error::msg)?,
            );
        }
        c.validate().map_err(anyhow::Error::msg)?;
        if let Some(dir) = data_dir {
            crate::cluster::quorum::check_data_dir(dir, &c).map_err(anyhow::Error::msg)?;
        }
        Ok(Some(c))
    }
}

impl BrokerArgs {
    /// The broker configuration these flags describe.
    pub fn to_config(&self) -> anyhow::Result<BrokerConfig> {
        if self.num_partitions < 1 {
            anyhow::bail!("--num-partitions must be at least 1");
        }
        if self.segment_bytes < 1024 {
            anyhow::bail!("--segment-bytes must be at least 1024");
        }
        if self.max_connections < 1 {
            anyhow::bail!("--max-connections must be at least 1");
        }
        if self.transaction_max_timeout_ms < 1 {
            anyhow::bail!(
                "--transaction-max-timeout-ms must be at least 1 (Kafka's default is 900000)"
            );
        }
        if self.transaction_cleanup_interval_ms < 1 {
            anyhow::bail!(
                "--transaction-cleanup-interval-ms must be at least 1 (Kafka's default is 10000)"
            );
        }
        if self.connections_max_idle_ms < 1 || self.request_arrival_timeout_ms < 1 {
            anyhow::bail!(
                "--connections-max-idle-ms and --request-arrival-timeout-ms must be at least 1"
            );
        }
        Ok(BrokerConfig {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            advertised_listener: self.advertised_listener.clone(),
            metrics_listen: self.metrics_listen,
            num_partitions: self.num_partitions,
            auto_create_topics: self.auto_create_topics,
            flush: self.flush,
            segment_bytes: self.segment_bytes,
            retention_bytes: u64::try_from(self.retention_bytes).ok(),
            retention_ms: u64::try_from(self.retention_ms).ok(),
            zero_copy: self.zero_copy,
            max_request_bytes: self.max_request_bytes,
            max_message_bytes: 1_048_588,
            max_connections: self.max_connections,
            connections_max_idle_ms: self.connections_max_idle_ms,
            request_arrival_timeout_ms: self.request_arrival_timeout_ms,
            group_initial_rebalance_delay_ms: self.group_initial_rebalance_delay_ms,
            transaction_max_timeout_ms: self.transaction_max_timeout_ms,
            transaction_cleanup_interval_ms: self.transaction_cleanup_interval_ms,
            threads: self.threads,
            cluster: self.cluster.to_config(self.data_dir.as_deref())?,
        })
    }
}

/// How long a SIGTERMed cluster node waits for its leaderships to move before it exits.
const CONTROLLED_SHUTDOWN_WAIT: Duration = Duration::from_secs(20);

/// Runs the broker until Ctrl-C or SIGTERM.
pub fn run(args: BrokerArgs) -> anyhow::Result<()> {
    let config = args.to_config()?;
    let broker = EmbeddedBroker::start(config)?;
    eprintln!("kbench broker listening on {}", broker.bootstrap_servers());
    if let Some(m) = broker.metrics_addr() {
        eprintln!("kbench broker metrics on http://{m}/metrics");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let terminated = rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => { r?; anyhow::Ok(false) }
            _ = term.recv() => Ok(true),
        }
    })?;
    eprintln!("kbench broker stopping");
    // SIGTERM on a cluster node is a controlled shutdown: its leaderships move first (Kafka's
    // controlled.shutdown.enable). Ctrl-C stops at once: a whole cluster stopping together
    // (Ctrl-C reaches every node of `kbench cluster`) has nobody to hand over to.
    if terminated {
        if let Err(e) = broker.controlled_shutdown(CONTROLLED_SHUTDOWN_WAIT) {
            eprintln!("kbench broker: controlled shutdown incomplete ({e:#}); stopping anyway");
        }
    }
    broker.shutdown();
    Ok(())
}
