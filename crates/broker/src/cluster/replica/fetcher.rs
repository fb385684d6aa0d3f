//! Follower fetchers (Kafka's `ReplicaFetcherThread`): one task per leader node, fetching all
//! partitions this node follows from it with Fetch v12 (topic names, `replica_id` = this
//! node, `last_fetched_epoch` = the newest epoch of the local log). Records are appended as
//! the leader wrote them; the follower's high watermark is min(leader's, own log end); a
//! DivergingEpoch truncates the local log and refetches.
//!
//! Errors: FENCED_LEADER_EPOCH waits for newer metadata; NOT_LEADER_OR_FOLLOWER,
//! UNKNOWN_LEADER_EPOCH and LEADER_NOT_AVAILABLE retry after a short back-off (the leader may
//! not have applied the metadata yet); a connection error backs off 100-500 ms and
//! reconnects. Disk work (appends, truncation) runs in `spawn_blocking`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::watch;

use crate::cluster::model::NodeId;
use crate::cluster::ClusterHandle;
use crate::state::Broker;
use crate::topics::Partition;

use super::role::{
    FENCED_LEADER_EPOCH, LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER, UNKNOWN_LEADER_EPOCH,
};
use super::Role;

/// The Fetch version followers send: the newest without topic ids.
const FETCH_VERSION: i16 = 12;
/// Kafka's `replica.fetch.max.bytes` and `replica.fetch.response.max.bytes`.
const PARTITION_MAX_BYTES: i32 = 1 << 20;
const RESPONSE_MAX_BYTES: i32 = 10 << 20;
const OFFSET_OUT_OF_RANGE: i16 = 1;

type Key = (String, i32);

/// The fetcher tasks, by leader node, each told which partitions to fetch.
#[derive(Debug)]
pub struct Fetchers {
    broker: Arc<Broker>,
    shutdown: watch::Receiver<bool>,
    tasks: HashMap<NodeId, watch::Sender<Vec<Key>>>,
}

impl Fetchers {
    pub fn new(broker: Arc<Broker>, shutdown: watch::Receiver<bool>) -> Self {
        Fetchers {
            broker,
            shutdown,
            tasks: HashMap::new(),
        }
    }

    /// Points each leader's task at its partitions (starting tasks for new leaders).
    pub fn assign(&mut self, following: &super::reconcile::Following) {
        let mut by_leader: HashMap<NodeId, Vec<Key>> = HashMap::new();
        for (key, leader) in following {
            by_leader.entry(*leader).or_default().push(key.clone());
        }
        for (leader, tx) in &self.tasks {
            if !by_leader.contains_key(leader) {
                tx.send_replace(Vec::new());
            }
        }
        for (leader, keys) in by_leader {
            match self.tasks.get(&leader) {
                Some(tx) => {
                    tx.send_if_modified(|old| {
                        let changed = *old != keys;
                        *old = keys;
                        changed
                    });
                }
                None => {
                    let (tx, rx) = watch::channel(keys);
                    tokio::spawn(run(self.broker.clone(), leader, rx, self.shutdown.clone()));
                    self.tasks.insert(leader, tx);
                }
            }
        }
    }
}

/// Partitions held back: until the partition's epoch changes, or until a time passes.
type Held = HashMap<Key, (i32, Option<Instant>)>;

async fn run(
    broker: Arc<Broker>,
    leader: NodeId,
    mut keys: watch::Receiver<Vec<Key>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(c) = broker.cluster.clone() else {
        return;
    };
    let mut conn: Option<super::wire::Conn> = None;
    let mut held = Held::new();
    let mut backoff = Duration::from_millis(100);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let parts = fetchable(&broker, leader, &keys.borrow(), &mut held);
        if parts.is_empty() {
            conn = None;
            tokio::select! {
                _ = keys.changed() => {}
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            continue;
        }
        if conn.is_none() {
            conn = connect(&c, leader).await;
            if conn.is_none() {
                sleep_or_shutdown(backoff, &mut shutdown).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
                continue;
            }
        }
        let req = request(&c, &parts);
        let wait = c.config.replica_fetch_wait_max + Duration::from_secs(5);
        let call = conn
            .as_mut()
            .expect("connected")
            .call(ApiKey::Fetch, FETCH_VERSION, &req);
        let resp: FetchResponse = tokio::select! {
            r = tokio::time::timeout(wait, call) => match r {
                Ok(Ok(resp)) => resp,
                other => {
                    tracing::debug!(leader, "fetch from the leader failed: {other:?}");
                    conn = None;
                    sleep_or_shutdown(backoff, &mut shutdown).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        backoff = Duration::from_millis(100);
        if resp.error_code != 0 {
            sleep_or_shutdown(backoff, &mut shutdown).await;
            continue;
        }
        let b = broker.clone();
        let epochs: HashMap<Key, i32> = parts
            .iter()
            .map(|(p, e)| ((p.topic.clone(), p.index), *e))
            .collect();
        match tokio::task::spawn_blocking(move || process(&b, leader, resp, &epochs)).await {
            Ok(more) => held.extend(more),
            Err(e) => tracing::error!("follower fetch processing panicked: {e}"),
        }
    }
}

async fn sleep_or_shutdown(d: Duration, shutdown: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = shutdown.changed() => {}
    }
}

async fn connect(c: &ClusterHandle, leader: NodeId) -> Option<super::wire::Conn> {
    let md = c.current();
    let b = md.brokers.get(&leader).filter(|b| !b.fenced)?;
    // The peer endpoint: with `kbench cluster --proxied`, the leader's peer proxy.
    let (host, port) = b.peer_endpoint();
    let addr = format!("{host}:{port}");
    let client_id = format!("kbench-replica-{}", c.node_id);
    match super::wire::Conn::connect(&addr, Duration::from_secs(1), client_id).await {
        Ok(conn) => Some(conn),
        Err(e) => {
            tracing::debug!(leader, "cannot reach the leader at {addr}: {e}");
            None
        }
    }
}

/// The partitions to fetch now, with the leader epoch this node knows for each.
fn fetchable(
    broker: &Broker,
    leader: NodeId,
    keys: &[Key],
    held: &mut Held,
) -> Vec<(Arc<Partition>, i32)> {
    let now = Instant::now();
    let mut out = Vec::with_capacity(keys.len());
    for (topic, index) in keys {
        let Some(p) = broker.topics.partition(topic, *index) else {
            continue;
        };
        let epoch = match &*p.role() {
            Role::Follower {
                leader: l,
                leader_epoch,
            } if *l == leader => *leader_epoch,
            _ => continue,
        };
        let key = (topic.clone(), *index);
        if let Some(&(e, until)) = held.get(&key) {
            if e == epoch && until.is_none_or(|t| now < t) {
                continue;
            }
            held.remove(&key);
        }
        out.push((p, epoch));
    }
    out
}

fn request(c: &ClusterHandle, parts: &[(Arc<Partition>, i32)]) -> FetchRequest {
    let mut r = FetchRequest::default();
    r.replica_id = BrokerId(c.node_id);
    r.max_wait_ms = c.config.replica_fetch_wait_max.as_millis() as i32;
    r.min_bytes = 1;
    r.max_bytes = RESPONSE_MAX_BYTES;
    r.session_epoch = -1;
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (p, epoch) in parts {
        let mut fp = FetchPartition::default();
        fp.partition = p.index;
        fp.current_leader_epoch = *epoch;
        {
            let log = p.log();
            fp.fetch_offset = log.log_end_offset();
            fp.last_fetched_epoch = log.latest_epoch().unwrap_or(-1);
            fp.log_start_offset = log.log_start_offset();
        }
        fp.partition_max_bytes = PARTITION_MAX_BYTES;
        match topics.iter_mut().find(|t| t.topic.0.as_str() == p.topic) {
            Some(t) => t.partitions.push(fp),
            None => {
                let mut t = FetchTopic::default();
                t.topic = TopicName(StrBytes::from_string(p.topic.clone()));
                t.partitions.push(fp);
                topics.push(t);
            }
        }
    }
    r.topics = topics;
    r
}

/// Applies one Fetch response (blocking: appends and truncations). Returns the partitions to
/// hold back, by the error their leader gave.
fn process(
    broker: &Broker,
    leader: NodeId,
    resp: FetchResponse,
    epochs: &HashMap<Key, i32>,
) -> Held {
    let mut held = Held::new();
    let retry_at = Instant::now() + Duration::from_millis(200);
    for t in resp.responses {
        let topic = t.topic.0.as_str().to_string();
        for pd in t.partitions {
            let key = (topic.clone(), pd.partition_index);
            let (Some(p), Some(&epoch)) = (
                broker.topics.partition(&topic, pd.partition_index),
                epochs.get(&key),
            ) else {
                continue;
            };
            // The role may have changed while the fetch was out: its answer is stale then.
            let current = matches!(&*p.role(), Role::Follower { leader: l, leader_epoch }
                if *l == leader && *leader_epoch == epoch);
            if !current {
                continue;
            }
            match pd.error_code {
                0 => apply_data(broker, &p, epoch, &pd),
                FENCED_LEADER_EPOCH => {
                    held.insert(key, (epoch, None));
                }
                NOT_LEADER_OR_FOLLOWER | UNKNOWN_LEADER_EPOCH | LEADER_NOT_AVAILABLE => {
                    held.insert(key, (epoch, Some(retry_at)));
                }
                OFFSET_OUT_OF_RANGE => out_of_range(broker, &p, epoch, &pd),
                e => {
                    tracing::debug!(
                        topic,
                        partition = pd.partition_index,
                        error = e,
                        "follower fetch error"
                    );
                    held.insert(key, (epoch, Some(retry_at)));
                }
            }
        }
    }
    held
}

fn apply_data(broker: &Broker, p: &Partition, epoch: i32, pd: &PartitionData) {
    if pd.diverging_epoch.epoch >= 0 || pd.diverging_epoch.end_offset >= 0 {
        let (e, end) = (pd.diverging_epoch.epoch, pd.diverging_epoch.end_offset);
        truncate_diverging(broker, p, epoch, e, end);
        return;
    }
    let mut log = p.log();
    // Checked again under the log's lock: the role check above ran before it, and if this
    // node became leader in between, the old leader's batches must not reach its log (they
    // would sit under the new epoch's start, and every follower would diverge from them
    // forever).
    if !log.is_follower() {
        return;
    }
    if let Some(records) = pd.records.as_ref().filter(|r| !r.is_empty()) {
        if let Err(e) = log.append_replicated(records) {
            tracing::warn!(topic = %p.topic, partition = p.index, "cannot append what the leader sent: {e}");
        }
    }
    if pd.log_start_offset > log.log_start_offset() {
        if let Err(e) = log.advance_log_start(pd.log_start_offset) {
            tracing::warn!(topic = %p.topic, partition = p.index, "cannot follow the leader's log start: {e}");
        }
    }
    p.publish(&log);
    drop(log);
    // Kafka's follower: HW = min(leader's HW, own log end), never backwards.
    p.raise_high_watermark(pd.high_watermark.min(p.log_end_offset()));
}

/// Kafka's follower truncation on DivergingEpoch (`getOffsetTruncationState`): to the
/// leader's end of the epoch if we have that epoch too, else to our own end of the largest
/// epoch we have below it (and refetch: the leader then names an older epoch).
fn truncate_diverging(
    broker: &Broker,
    p: &Partition,
    epoch: i32,
    diverging_epoch: i32,
    diverging_end: i64,
) {
    let mut log = p.log();
    if !log.is_follower() {
        return;
    }
    let leo = log.log_end_offset();
    let to = match log.end_offset_for_epoch(diverging_epoch) {
        None => diverging_end.min(leo),
        Some((e, own_end)) if e != diverging_epoch => own_end.min(leo),
        Some((_, own_end)) => diverging_end.min(own_end).min(leo),
    };
    truncate(broker, p, &mut log, to, epoch, "diverging_epoch");
}

/// The leader has nothing at our log end: start again at its log start if we are below it,
/// else cut back to its high watermark.
fn out_of_range(broker: &Broker, p: &Partition, epoch: i32, pd: &PartitionData) {
    let mut log = p.log();
    if !log.is_follower() {
        return;
    }
    let leo = log.log_end_offset();
    if pd.log_start_offset > leo || pd.high_watermark < 0 {
        let start = pd.log_start_offset.max(0);
        if let Err(e) = log.reset_to(start) {
            tracing::error!(topic = %p.topic, partition = p.index, "cannot reset the log: {e}");
        }
        p.publish(&log);
        p.cap_high_watermark();
        record_truncation(broker, p, leo, start, epoch, "offset_out_of_range");
    } else {
        truncate(
            broker,
            p,
            &mut log,
            pd.high_watermark,
            epoch,
            "offset_out_of_range",
        );
    }
}

fn truncate(
    broker: &Broker,
    p: &Partition,
    log: &mut crate::log::partition::PartitionLog,
    to: i64,
    epoch: i32,
    reason: &str,
) {
    let from = log.log_end_offset();
    match log.truncate_to(to) {
        Ok(true) => {
            p.publish(log);
            p.cap_high_watermark();
            record_truncation(broker, p, from, log.log_end_offset(), epoch, reason);
        }
        Ok(false) => {}
        Err(e) => tracing::error!(topic = %p.topic, partition = p.index, "truncation failed: {e}"),
    }
}

fn record_truncation(broker: &Broker, p: &Partition, from: i64, to: i64, epoch: i32, reason: &str) {
    if let Some(c) = &broker.cluster {
        c.events.record(
            Some("truncated"),
            &serde_json::json!({"topic": p.topic, "partition": p.index, "from": from,
                "to": to, "reason": reason, "leader_epoch": epoch}),
        );
    }
}
