//! Prometheus metrics of the broker and the `--metrics-listen` HTTP endpoint (text format).
//!
//! Owns: metric names (prefix `kbroker_`, see the brief §7) and the scrape endpoint. Counters
//! are bumped per request or per batch, never per record; offsets, lag and disk bytes are read
//! from the broker state at scrape time. Must not: hold locks of other modules while encoding.

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
            "Record bytes sent to consumers",
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
        m
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

    pub fn fetched(&self, topic: &str, bytes: u64) {
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
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!("metrics encoding failed: {e}");
        }
        out
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
