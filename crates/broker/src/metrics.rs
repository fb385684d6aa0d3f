//! Prometheus metrics of the broker and the `--metrics-listen` HTTP endpoint (text format).
//!
//! Owns: metric names (prefix `kbroker_`, see the brief §7) and the scrape endpoint. Counters
//! are bumped per request or per batch, never per record; offsets, lag and disk bytes are read
//! from the broker state at scrape time. Must not: hold locks of other modules while encoding.
//!
//! The cluster metrics keep Apache Kafka's meanings (`UnderReplicatedPartitions`,
//! `OfflinePartitionsCount`, `ActiveControllerCount`, `IsrShrinksPerSec`, ...): the cluster code
//! sets them through the methods below; `monitoring/kbench-broker.rules.yml` alerts on them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::state::Broker;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabel {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabel {
    pub request: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabel {
    pub topic: String,
    pub partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupPartitionLabel {
    pub group: String,
    pub topic: String,
    pub partition: String,
}

/// `kind` of `kbroker_fetch_bytes`: Kafka counts follower fetches (FetchFollower) apart from
/// consumer fetches (FetchConsumer), so replication traffic does not look like consumption.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FetchKindLabel {
    pub kind: &'static str,
}

const CONSUMER: FetchKindLabel = FetchKindLabel { kind: "consumer" };
const FOLLOWER: FetchKindLabel = FetchKindLabel { kind: "follower" };

type HistogramFamily = Family<RequestLabel, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    messages_in: Family<TopicLabel, Counter>,
    bytes_in: Family<TopicLabel, Counter>,
    bytes_out: Family<TopicLabel, Counter>,
    requests: Family<RequestLabel, Counter>,
    request_seconds: HistogramFamily,
    pub connections: Gauge,
    pub connections_evicted: Counter,
    pub connections_idle_closed: Counter,
    log_end_offset: Family<PartitionLabel, Gauge>,
    log_start_offset: Family<PartitionLabel, Gauge>,
    partition_bytes: Family<PartitionLabel, Gauge>,
    disk_bytes: Gauge,
    committed: Family<GroupPartitionLabel, Gauge>,
    lag: Family<GroupPartitionLabel, Gauge>,
    last_stable_offset: Family<PartitionLabel, Gauge>,
    txn_begun: Counter,
    txn_committed: Counter,
    txn_aborted: Counter,
    txn_timed_out: Counter,
    txn_ongoing: Gauge,
    cluster: ClusterMetrics,
}

/// The replication and controller metrics (all 0 on a single node until the cluster sets them).
#[derive(Default)]
struct ClusterMetrics {
    under_replicated: Gauge,
    offline_partitions: Gauge,
    active_controller: Gauge,
    leader_partitions: Gauge,
    fenced_brokers: Gauge,
    isr_shrinks: Counter,
    isr_expands: Counter,
    leader_elections: Counter,
    unclean_leader_elections: Counter,
    fetch_bytes: Family<FetchKindLabel, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~1.6 s
    Histogram::new(exponential_buckets(0.00005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut m = Metrics {
            registry: Registry::default(),
            messages_in: Family::default(),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            connections: Gauge::default(),
            connections_evicted: Counter::default(),
            connections_idle_closed: Counter::default(),
            log_end_offset: Family::default(),
            log_start_offset: Family::default(),
            partition_bytes: Family::default(),
            disk_bytes: Gauge::default(),
            committed: Family::default(),
            lag: Family::default(),
            last_stable_offset: Family::default(),
            txn_begun: Counter::default(),
            txn_committed: Counter::default(),
            txn_aborted: Counter::default(),
            txn_timed_out: Counter::default(),
            txn_ongoing: Gauge::default(),
            cluster: ClusterMetrics::default(),
        };
        let r = &mut m.registry;
        r.register(
            "kbroker_messages_in",
            "Records appended",
            m.messages_in.clone(),
        );
        r.register(
            "kbroker_bytes_in",
            "Record-batch bytes appended",
            m.bytes_in.clone(),
        );
        r.register(
            "kbroker_bytes_out",
            "Record bytes sent to consumers (follower fetches are in kbroker_fetch_bytes{kind=\"follower\"})",
            m.bytes_out.clone(),
        );
        r.register(
            "kbroker_requests",
            "Requests handled, per API",
            m.requests.clone(),
        );
        r.register(
            "kbroker_request_duration_seconds",
            "Request handling time, per API",
            m.request_seconds.clone(),
        );
        r.register(
            "kbroker_connections",
            "Open client connections",
            m.connections.clone(),
        );
        r.register(
            "kbroker_connections_evicted",
            "Connections closed to make room for a newcomer when the table was full (longest idle first)",
            m.connections_evicted.clone(),
        );
        r.register(
            "kbroker_connections_idle_closed",
            "Connections closed after connections.max.idle.ms without a request",
            m.connections_idle_closed.clone(),
        );
        r.register(
            "kbroker_partition_log_end_offset",
            "Log end offset per partition",
            m.log_end_offset.clone(),
        );
        r.register(
            "kbroker_partition_log_start_offset",
            "Log start offset per partition",
            m.log_start_offset.clone(),
        );
        r.register(
            "kbroker_partition_size_bytes",
            "Bytes on disk per partition",
            m.partition_bytes.clone(),
        );
        r.register(
            "kbroker_disk_bytes",
            "Bytes of all partition logs on disk",
            m.disk_bytes.clone(),
        );
        r.register(
            "kbroker_consumer_group_committed_offset",
            "Committed offset per group and partition",
            m.committed.clone(),
        );
        r.register(
            "kbroker_consumer_group_lag",
            "Log end offset minus committed offset",
            m.lag.clone(),
        );
        r.register(
            "kbroker_partition_last_stable_offset",
            "Last stable offset per partition (first offset of the earliest open transaction, else the high watermark)",
            m.last_stable_offset.clone(),
        );
        r.register(
            "kbroker_transactions_begun",
            "Transactions begun (their first AddPartitionsToTxn or AddOffsetsToTxn)",
            m.txn_begun.clone(),
        );
        r.register(
            "kbroker_transactions_committed",
            "Transactions committed (markers written)",
            m.txn_committed.clone(),
        );
        r.register(
            "kbroker_transactions_aborted",
            "Transactions aborted: by their producer, by fencing, or past their timeout",
            m.txn_aborted.clone(),
        );
        r.register(
            "kbroker_transactions_timed_out",
            "Transactions the broker aborted because they outlived transaction.timeout.ms (also counted as aborted)",
            m.txn_timed_out.clone(),
        );
        r.register(
            "kbroker_transactions_ongoing",
            "Transactions open now",
            m.txn_ongoing.clone(),
        );
        m.cluster.register(r);
        m
    }

    /// Partitions this node leads whose ISR is smaller than their replica set (Kafka's
    /// `UnderReplicatedPartitions`); set by the leader side after every ISR change.
    pub fn set_under_replicated(&self, n: i64) {
        self.cluster.under_replicated.set(n);
    }

    /// Partitions with no live leader (Kafka's `OfflinePartitionsCount`): set by the active
    /// controller; every other node keeps it at 0 so a sum over the cluster counts each once.
    pub fn set_offline_partitions(&self, n: i64) {
        self.cluster.offline_partitions.set(n);
    }

    /// Whether this node is the Raft leader of the metadata quorum (Kafka's
    /// `ActiveControllerCount`): exactly one node of a healthy cluster reports 1.
    pub fn set_active_controller(&self, active: bool) {
        self.cluster.active_controller.set(i64::from(active));
    }

    /// Partitions this node leads now (Kafka's `LeaderCount`).
    pub fn set_leader_partitions(&self, n: i64) {
        self.cluster.leader_partitions.set(n);
    }

    /// Brokers the active controller holds fenced (Kafka's `FencedBrokerCount`); 0 elsewhere.
    pub fn set_fenced_brokers(&self, n: i64) {
        self.cluster.fenced_brokers.set(n);
    }

    /// The leader removed a follower from a partition's ISR (Kafka's `IsrShrinksPerSec`).
    pub fn isr_shrunk(&self) {
        self.cluster.isr_shrinks.inc();
    }

    /// The leader added a caught-up follower back to a partition's ISR (`IsrExpandsPerSec`).
    pub fn isr_expanded(&self) {
        self.cluster.isr_expands.inc();
    }

    /// The active controller gave a partition a new leader (one count per partition, Kafka's
    /// `LeaderElectionRateAndTimeMs` count); an unclean election also calls `unclean_leader_elected`.
    pub fn leader_elected(&self) {
        self.cluster.leader_elections.inc();
    }

    /// The new leader came from outside the ISR (only with unclean election on): records the old
    /// leader acknowledged may be lost (Kafka's `UncleanLeaderElectionsPerSec`).
    pub fn unclean_leader_elected(&self) {
        self.cluster.unclean_leader_elections.inc();
    }

    /// Record bytes sent by Fetch, counted by who fetched: a follower replicating (`follower`)
    /// or a consumer (`consumer`). Follower fetches call this only; consumer fetches go through
    /// [`Metrics::fetched`], which calls it too and keeps `kbroker_bytes_out` consumer-only.
    pub fn fetch_bytes(&self, follower: bool, n: u64) {
        let kind = if follower { &FOLLOWER } else { &CONSUMER };
        self.cluster.fetch_bytes.get_or_create(kind).inc_by(n);
    }

    pub fn transaction_begun(&self) {
        self.txn_begun.inc();
    }

    /// A transaction's markers are written: committed or aborted (and why).
    pub fn transaction_ended(&self, committed: bool, timed_out: bool) {
        if committed {
            self.txn_committed.inc();
        } else {
            self.txn_aborted.inc();
        }
        if timed_out {
            self.txn_timed_out.inc();
        }
    }

    pub fn produced(&self, topic: &str, messages: u64, bytes: u64) {
        let l = TopicLabel {
            topic: topic.to_string(),
        };
        self.messages_in.get_or_create(&l).inc_by(messages);
        self.bytes_in.get_or_create(&l).inc_by(bytes);
    }

    /// Record bytes a consumer fetched from `topic` (not a follower: see `fetch_bytes`).
    pub fn fetched(&self, topic: &str, bytes: u64) {
        self.fetch_bytes(false, bytes);
        self.bytes_out
            .get_or_create(&TopicLabel {
                topic: topic.to_string(),
            })
            .inc_by(bytes);
    }

    pub fn request(&self, api: &'static str, elapsed: Duration) {
        let l = RequestLabel {
            request: api.to_string(),
        };
        self.requests.get_or_create(&l).inc();
        self.request_seconds
            .get_or_create(&l)
            .observe(elapsed.as_secs_f64());
    }

    /// Renders every metric, refreshing the state-derived gauges first.
    pub fn render(&self, broker: &Broker) -> String {
        self.log_end_offset.clear();
        self.log_start_offset.clear();
        self.partition_bytes.clear();
        self.committed.clear();
        self.lag.clear();
        self.last_stable_offset.clear();
        self.txn_ongoing.set(broker.txns.ongoing() as i64);
        let mut disk = 0i64;
        for t in broker.topics.all() {
            for p in &t.partitions {
                let l = PartitionLabel {
                    topic: t.name.clone(),
                    partition: p.index.to_string(),
                };
                self.log_end_offset
                    .get_or_create(&l)
                    .set(p.log_end_offset());
                self.log_start_offset
                    .get_or_create(&l)
                    .set(p.log_start_offset());
                self.partition_bytes.get_or_create(&l).set(p.size_bytes());
                self.last_stable_offset
                    .get_or_create(&l)
                    .set(p.last_stable_offset());
                disk += p.size_bytes();
            }
        }
        self.disk_bytes.set(disk);
        for (group, topic, partition, offset) in broker.groups.offsets.all() {
            let l = GroupPartitionLabel {
                group,
                topic: topic.clone(),
                partition: partition.to_string(),
            };
            self.committed.get_or_create(&l).set(offset);
            if let Some(p) = broker.topics.partition(&topic, partition) {
                self.lag
                    .get_or_create(&l)
                    .set((p.log_end_offset() - offset).max(0));
            }
        }
        self.encode()
    }

    /// The text exposition of the registry as it stands.
    fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!("metrics encoding failed: {e}");
        }
        out
    }
}

impl ClusterMetrics {
    fn register(&self, r: &mut Registry) {
        // Both kinds exist from the start, so rate() over them works before the first fetch.
        let _ = self.fetch_bytes.get_or_create(&CONSUMER);
        let _ = self.fetch_bytes.get_or_create(&FOLLOWER);
        let gauges = [
            ("kbroker_under_replicated_partitions", "Partitions this node leads whose ISR is smaller than their replica set", &self.under_replicated),
            ("kbroker_offline_partitions", "Partitions without a live leader (reported by the active controller, 0 on other nodes)", &self.offline_partitions),
            ("kbroker_active_controller", "1 on the node that is the Raft leader of the metadata quorum, else 0", &self.active_controller),
            ("kbroker_leader_partitions", "Partitions this node leads", &self.leader_partitions),
            ("kbroker_fenced_brokers", "Brokers fenced for missing heartbeats (reported by the active controller, 0 on other nodes)", &self.fenced_brokers),
        ];
        for (name, help, g) in gauges {
            r.register(name, help, g.clone());
        }
        let counters = [
            ("kbroker_isr_shrinks", "Followers removed from the ISR of a partition this node leads", &self.isr_shrinks),
            ("kbroker_isr_expands", "Followers added back to the ISR of a partition this node leads", &self.isr_expands),
            ("kbroker_leader_elections", "Partition leader changes made by the active controller (one per partition)", &self.leader_elections),
            ("kbroker_unclean_leader_elections", "Leader elections that picked a replica outside the ISR (acknowledged records may be lost)", &self.unclean_leader_elections),
        ];
        for (name, help, c) in counters {
            r.register(name, help, c.clone());
        }
        r.register(
            "kbroker_fetch_bytes",
            "Record bytes sent by Fetch, by kind: consumer or follower (replication)",
            self.fetch_bytes.clone(),
        );
    }
}

/// Serves `GET <anything>` with the metrics text until `shutdown` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    broker: Arc<Broker>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let Ok((mut sock, _)) = accepted else {
            continue;
        };
        let broker = broker.clone();
        tokio::spawn(async move {
            let mut req = Vec::with_capacity(1024);
            let mut buf = [0u8; 1024];
            // Read the request head (bounded in size and time); its content does not matter.
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16 * 1024 {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
            });
            if read.await.is_err() {
                return;
            }
            let body = broker.metrics.render(&broker);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

/// Binds the metrics listener (so a bad address fails at startup, not later).
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::Metrics;

    fn assert_series(m: &Metrics, series: &[&str]) {
        let text = m.encode();
        for s in series {
            assert!(text.lines().any(|l| l == *s), "missing `{s}` in\n{text}");
        }
    }

    #[test]
    fn cluster_metrics_start_at_zero() {
        assert_series(
            &Metrics::new(),
            &[
                "kbroker_under_replicated_partitions 0",
                "kbroker_offline_partitions 0",
                "kbroker_active_controller 0",
                "kbroker_leader_partitions 0",
                "kbroker_fenced_brokers 0",
                "kbroker_isr_shrinks_total 0",
                "kbroker_isr_expands_total 0",
                "kbroker_leader_elections_total 0",
                "kbroker_unclean_leader_elections_total 0",
                "kbroker_fetch_bytes_total{kind=\"consumer\"} 0",
                "kbroker_fetch_bytes_total{kind=\"follower\"} 0",
            ],
        );
    }

    #[test]
    fn cluster_gauges_show_what_was_set() {
        let m = Metrics::new();
        m.set_under_replicated(3);
        m.set_offline_partitions(2);
        m.set_active_controller(true);
        m.set_leader_partitions(7);
        m.set_fenced_brokers(1);
        assert_series(
            &m,
            &[
                "kbroker_under_replicated_partitions 3",
                "kbroker_offline_partitions 2",
                "kbroker_active_controller 1",
                "kbroker_leader_partitions 7",
                "kbroker_fenced_brokers 1",
            ],
        );
        m.set_active_controller(false);
        m.set_under_replicated(0);
        assert_series(
            &m,
            &[
                "kbroker_active_controller 0",
                "kbroker_under_replicated_partitions 0",
            ],
        );
    }

    #[test]
    fn cluster_counters_count_each_call() {
        let m = Metrics::new();
        m.isr_shrunk();
        m.isr_shrunk();
        m.isr_expanded();
        (0..3).for_each(|_| m.leader_elected());
        m.unclean_leader_elected();
        assert_series(
            &m,
            &[
                "kbroker_isr_shrinks_total 2",
                "kbroker_isr_expands_total 1",
                "kbroker_leader_elections_total 3",
                "kbroker_unclean_leader_elections_total 1",
            ],
        );
    }

    #[test]
    fn follower_fetch_bytes_are_apart_from_consumer_bytes() {
        let m = Metrics::new();
        m.fetched("t", 100);
        m.fetch_bytes(true, 40);
        m.fetch_bytes(true, 2);
        assert_series(
            &m,
            &[
                "kbroker_fetch_bytes_total{kind=\"consumer\"} 100",
                "kbroker_fetch_bytes_total{kind=\"follower\"} 42",
                // bytes_out stays consumer bytes only, as before
                "kbroker_bytes_out_total{topic=\"t\"} 100",
            ],
        );
    }
}
