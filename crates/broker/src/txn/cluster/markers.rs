//! Sending a transaction's markers to the leaders of its partitions (Kafka's
//! `TransactionMarkerChannelManager`): grouped by the current leader in the metadata, one
//! WriteTxnMarkers request per leader over a connection kept per node (this node's own
//! partitions are written in place), retried with a bounded backoff on NOT_LEADER_OR_FOLLOWER,
//! connection errors or no leader, until every partition has its marker or `MARKER_TIMEOUT`.
//! A partition whose topic is gone needs no marker; a coordinator that is no longer the
//! leader of the id's partition at the same epoch stops.
//!
//! Owns: the connections to other nodes. Must not: change transaction state.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::leader::{self, MarkerSpec, NONE, REQUEST_TIMED_OUT};
use crate::cluster::coordinator::OFFSETS_TOPIC;
use crate::cluster::model::NO_LEADER;
use crate::cluster::replica::wire::Conn;
use crate::state::Broker;
use crate::txn::EndPlan;

/// How long a transaction's markers are retried before EndTxn is answered with an error
/// (the transaction stays in Prepare* and the sweep keeps trying).
pub const MARKER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one leader has to answer (it waits for its ISR).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(6);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_millis(500);
const NOT_COORDINATOR: i16 = 16;
/// Kafka's NETWORK_EXCEPTION: the leader could not be reached.
const NETWORK_EXCEPTION: i16 = 13;
/// WriteTxnMarkers v1 (flexible), as Kafka 3.x brokers send it.
const VERSION: i16 = 1;

type Link = Arc<tokio::sync::Mutex<Option<Conn>>>;

/// One connection per other node, opened on first use and again after an error.
#[derive(Debug, Default)]
pub struct Links(Mutex<HashMap<i32, Link>>);

impl Links {
    fn get(&self, node: i32) -> Link {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(node)
            .or_default()
            .clone()
    }
}

/// Writes the markers of `plan` in every partition; NONE once all are written, else the
/// last error seen when `MARKER_TIMEOUT` passed.
pub async fn write_all(broker: &Arc<Broker>, plan: &EndPlan, coordinator_epoch: i32) -> i16 {
    let Some(c) = &broker.cluster else {
        return NONE;
    };
    let spec = MarkerSpec {
        producer_id: plan.producer_id,
        producer_epoch: plan.epoch,
        commit: plan.commit,
        coordinator_epoch,
    };
    let deadline = tokio::time::Instant::now() + MARKER_TIMEOUT;
    let mut todo = plan.partitions.clone();
    let mut backoff = BACKOFF_MIN;
    let mut last = REQUEST_TIMED_OUT;
    loop {
        // A coordinator that lost its partition stops: the new one writes the markers (Kafka
        // drops the sends of an old coordinator epoch the same way).
        if !matches!(super::owner(broker, &plan.tid), Ok((_, e, _)) if e == coordinator_epoch) {
            return NOT_COORDINATOR;
        }
        let meta = c.current();
        let mut by_node: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        let mut again = Vec::new();
        for (t, i) in todo {
            match meta.partition(&t, i) {
                None => {}
                Some(r) if r.leader == NO_LEADER => again.push((t, i)),
                Some(r) => by_node.entry(r.leader).or_default().push((t, i)),
            }
        }
        for (node, parts) in by_node {
            let codes = if node == c.node_id {
                write_here(broker, &parts, spec).await
            } else {
                send(broker, node, &parts, spec).await
            };
            for (part, code) in parts.into_iter().zip(codes) {
                if code != NONE {
                    last = code;
                    again.push(part);
                }
            }
        }
        if again.is_empty() {
            return NONE;
        }
        if tokio::time::Instant::now() + backoff >= deadline {
            return last;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
        todo = again;
    }
}

/// The markers of partitions this node leads (the same code WriteTxnMarkers runs); one code
/// per partition, in order. All are appended before any waits for the ISR.
pub async fn write_here(broker: &Arc<Broker>, parts: &[(String, i32)], m: MarkerSpec) -> Vec<i16> {
    let mut begun = Vec::with_capacity(parts.len());
    for (t, i) in parts {
        begun.push(if t == OFFSETS_TOPIC {
            Ok(super::offsets::on_marker(broker, *i, m).await)
        } else {
            leader::begin(broker, t, *i, m, REQUEST_TIMEOUT)
        });
    }
    let mut codes = Vec::with_capacity(parts.len());
    for b in begun {
        codes.push(match b {
            Ok(code) => code,
            Err(pending) => leader::wait(pending).await,
        });
    }
    codes
}

/// One WriteTxnMarkers request to `node`; one code per partition, in order.
async fn send(broker: &Broker, node: i32, parts: &[(String, i32)], m: MarkerSpec) -> Vec<i16> {
    let failed = vec![NETWORK_EXCEPTION; parts.len()];
    let Some(c) = &broker.cluster else {
        return failed;
    };
    let Some(addr) = c
        .current()
        .brokers
        .get(&node)
        .map(|b| format!("{}:{}", b.host, b.port))
    else {
        return failed;
    };
    let link = broker.txns.cluster.links.get(node);
    let mut conn = link.lock().await;
    if conn.is_none() {
        let client_id = format!("kbench-txn-coordinator-{}", c.node_id);
        match Conn::connect(&addr, CONNECT_TIMEOUT, client_id).await {
            Ok(k) => *conn = Some(k),
            Err(e) => {
                tracing::debug!(node, "cannot reach node {node} for markers: {e}");
                return failed;
            }
        }
    }
    let Some(k) = conn.as_mut() else {
        return failed;
    };
    let req = request(parts, m);
    let call = k.call::<_, WriteTxnMarkersResponse>(ApiKey::WriteTxnMarkers, VERSION, &req);
    match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
        Ok(Ok(resp)) => codes_of(&resp, parts),
        Ok(Err(e)) => {
            tracing::debug!(node, "WriteTxnMarkers to node {node} failed: {e}");
            *conn = None;
            failed
        }
        Err(_) => {
            *conn = None;
            vec![REQUEST_TIMED_OUT; parts.len()]
        }
    }
}

fn request(parts: &[(String, i32)], m: MarkerSpec) -> WriteTxnMarkersRequest {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, i) in parts {
        by_topic.entry(t).or_default().push(*i);
    }
    let mut marker = WritableTxnMarker::default();
    marker.producer_id = ProducerId(m.producer_id);
    marker.producer_epoch = m.producer_epoch;
    marker.transaction_result = m.commit;
    marker.coordinator_epoch = m.coordinator_epoch;
    for (t, indexes) in by_topic {
        let mut wt = WritableTxnMarkerTopic::default();
        wt.name = TopicName(StrBytes::from_string(t.to_string()));
        wt.partition_indexes = indexes;
        marker.topics.push(wt);
    }
    let mut req = WriteTxnMarkersRequest::default();
    req.markers.push(marker);
    req
}

/// The code the response gives each of `parts` (NETWORK_EXCEPTION for one it left out).
fn codes_of(resp: &WriteTxnMarkersResponse, parts: &[(String, i32)]) -> Vec<i16> {
    let mut got: HashMap<(&str, i32), i16> = HashMap::new();
    for r in &resp.markers {
        for t in &r.topics {
            for p in &t.partitions {
                got.insert((t.name.0.as_str(), p.partition_index), p.error_code);
            }
        }
    }
    parts
        .iter()
        .map(|(t, i)| {
            got.get(&(t.as_str(), *i))
                .copied()
                .unwrap_or(NETWORK_EXCEPTION)
        })
        .collect()
}
