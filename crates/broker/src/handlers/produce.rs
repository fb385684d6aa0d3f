//! Produce: validates each partition's record batches (header, CRC-32C, counts, size), checks
//! idempotent-producer sequences, checks that a transactional batch belongs to an open
//! transaction holding the partition, appends the raw bytes with the base offset patched, and
//! answers only after the write (and the fsync, when the flush policy asks for one).
//! acks=0 gets no response; if it failed, the connection is closed so the client notices.
//!
//! In a cluster, each partition goes through `cluster::replica::append_as_leader` (leader
//! check, min.insync.replicas, acks=all waits for the high watermark), and a refusal by a
//! non-leader carries KIP-951's CurrentLeader and the leaders' NodeEndpoints (v10+).

use std::sync::Arc;

use std::time::Duration;

use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use super::{code, decode, respond, str_of, Response};
use crate::cluster::replica::{append, AppendOutcome};
use crate::cluster::ClusterMetadata;
use crate::log::partition::Appended;
use crate::log::FlushPolicy;
use crate::protocol::batch::validate_all;
use crate::protocol::Request;
use crate::state::Broker;
use crate::topics::Partition;

/// Kafka's default `message.max.bytes` (1 MiB + 12).
pub const MAX_BATCH_BYTES: usize = 1_048_588;

type Outcome = AppendOutcome;

/// The local append of one partition's batches (validation, sequence and transaction checks,
/// the write): the outcome and the log end after it. The single-node produce path, and the
/// append step of a cluster leader's.
pub(crate) fn append_local(broker: &Broker, p: &Partition, records: &[u8]) -> (Outcome, i64) {
    let end = |o: Outcome| (o, p.log_end_offset());
    let blocking = matches!(broker.cfg.flush, FlushPolicy::Messages(_))
        && tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if blocking {
        end(tokio::task::block_in_place(|| append(broker, p, records)))
    } else {
        end(append(broker, p, records))
    }
}

fn append(broker: &Broker, p: &Partition, records: &[u8]) -> Outcome {
    let fail = Outcome::failed;
    let batches = match validate_all(records) {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(topic = %p.topic, partition = p.index, "refused batch: {e}");
            return fail(code::CORRUPT_MESSAGE);
        }
    };
    if batches
        .iter()
        .any(|(h, _)| h.total_len() > MAX_BATCH_BYTES.max(broker.cfg.max_message_bytes))
    {
        return fail(code::MESSAGE_TOO_LARGE);
    }
    let mut log = p.log();
    let mut first = None;
    let mut messages = 0u64;
    for (h, range) in &batches {
        // Checked under the partition's lock, so that no EndTxn marker can slip in between
        // the check and the append (the coordinator never takes a partition lock itself).
        // A cluster node is not the coordinator of most producers: their partition leader
        // cannot verify against it (Kafka before KIP-890's verification); the log's producer
        // state still refuses epochs older than the markers'.
        if h.is_transactional() && broker.cluster.is_none() {
            if let Err(c) = broker
                .txns
                .verify(h.producer_id, h.producer_epoch, &p.topic, p.index)
            {
                p.publish(&log);
                return fail(c);
            }
        }
        match log.append(&records[range.clone()], h) {
            Ok(Appended::At(o)) => {
                first.get_or_insert(o);
                messages += h.records_count as u64;
            }
            Ok(Appended::Duplicate(o)) => {
                first.get_or_insert(o);
            }
            Ok(Appended::Refused(c)) => {
                p.publish(&log);
                return fail(c);
            }
            Err(e) => {
                tracing::error!(topic = %p.topic, partition = p.index, "append failed: {e}");
                p.publish(&log);
                return fail(code::KAFKA_STORAGE_ERROR);
            }
        }
    }
    p.publish(&log);
    drop(log);
    broker
        .metrics
        .produced(&p.topic, messages, records.len() as u64);
    Outcome {
        error: code::NONE,
        base_offset: first.unwrap_or(-1),
        log_start: p.log_start_offset(),
    }
}

pub async fn handle(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    if broker.cluster.is_some() {
        return handle_clustered(broker, req).await;
    }
    let r: ProduceRequest = decode(req)?;
    let acks = r.acks;
    let mut resp = ProduceResponse::default();
    let mut any_error = false;
    let mut any_appended = false;
    for t in r.topic_data {
        let name = str_of(&t.name.0);
        let mut tr = TopicProduceResponse::default();
        tr.name = t.name.clone();
        for pd in t.partition_data {
            let outcome = if !matches!(acks, -1..=1) {
                Outcome::failed(code::INVALID_REQUIRED_ACKS)
            } else {
                match (
                    broker.topics.partition(&name, pd.index),
                    pd.records.as_ref(),
                ) {
                    (None, _) => Outcome::failed(code::UNKNOWN_TOPIC_OR_PARTITION),
                    (Some(_), None) => Outcome::failed(code::CORRUPT_MESSAGE),
                    (Some(p), Some(records)) => append_local(broker, &p, records).0,
                }
            };
            any_error |= outcome.error != code::NONE;
            any_appended |= outcome.error == code::NONE;
            let mut pr = PartitionProduceResponse::default();
            pr.index = pd.index;
            pr.error_code = outcome.error;
            pr.base_offset = outcome.base_offset;
            pr.log_append_time_ms = -1;
            pr.log_start_offset = outcome.log_start;
            tr.partition_responses.push(pr);
        }
        resp.responses.push(tr);
    }
    if any_appended {
        broker.topics.appended.notify_waiters();
    }
    if acks == 0 {
        return Ok(if any_error {
            Response::Close
        } else {
            Response::Nothing
        });
    }
    respond(req, &resp)
}

/// Produce on a cluster node (`cluster::replica::append`): every partition appended first,
/// then the acks=all ones waited for together, as Kafka's one DelayedProduce per request.
async fn handle_clustered(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: ProduceRequest = decode(req)?;
    let acks = r.acks;
    let timeout = Duration::from_millis(r.timeout_ms.max(0) as u64);
    let mut appended = Vec::new();
    for t in &r.topic_data {
        let name = str_of(&t.name.0);
        for pd in &t.partition_data {
            appended.push(
                match (
                    broker.topics.partition(&name, pd.index),
                    pd.records.as_ref(),
                ) {
                    _ if !matches!(acks, -1..=1) => {
                        Ok(Outcome::failed(code::INVALID_REQUIRED_ACKS))
                    }
                    (None, _) => Ok(Outcome::failed(code::UNKNOWN_TOPIC_OR_PARTITION)),
                    (Some(_), None) => Ok(Outcome::failed(code::CORRUPT_MESSAGE)),
                    (Some(p), Some(records)) => append::begin(broker, &p, records, acks, timeout),
                },
            );
        }
    }
    let mut appended = appended.into_iter();
    let mut resp = ProduceResponse::default();
    let mut leaders = Vec::new();
    let mut any_error = false;
    for t in r.topic_data {
        let name = str_of(&t.name.0);
        let mut tr = TopicProduceResponse::default();
        tr.name = t.name.clone();
        for pd in t.partition_data {
            let outcome = match appended.next().expect("one per partition") {
                Ok(done) => done,
                Err(pending) => append::wait(pending).await,
            };
            any_error |= outcome.error != code::NONE;
            let mut pr = PartitionProduceResponse::default();
            pr.index = pd.index;
            pr.error_code = outcome.error;
            pr.base_offset = outcome.base_offset;
            pr.log_append_time_ms = -1;
            pr.log_start_offset = outcome.log_start;
            if outcome.error == NOT_LEADER_OR_FOLLOWER {
                if let Some(c) = &broker.cluster {
                    pr.current_leader = current_leader(&c.current(), &name, pd.index, &mut leaders);
                }
            }
            tr.partition_responses.push(pr);
        }
        resp.responses.push(tr);
    }
    if let Some(c) = &broker.cluster {
        resp.node_endpoints = node_endpoints(&c.current(), &leaders);
    }
    if acks == 0 {
        return Ok(if any_error {
            Response::Close
        } else {
            Response::Nothing
        });
    }
    respond(req, &resp)
}

const NOT_LEADER_OR_FOLLOWER: i16 = crate::cluster::replica::role::NOT_LEADER_OR_FOLLOWER;

/// KIP-951: the partition's leader and epoch as this node knows them (-1, -1 if none).
fn current_leader(
    md: &ClusterMetadata,
    topic: &str,
    index: i32,
    leaders: &mut Vec<i32>,
) -> LeaderIdAndEpoch {
    let mut l = LeaderIdAndEpoch::default();
    if let Some(p) = md.partition(topic, index).filter(|p| p.leader >= 0) {
        l.leader_id = BrokerId(p.leader);
        l.leader_epoch = p.leader_epoch;
        if !leaders.contains(&p.leader) {
            leaders.push(p.leader);
        }
    }
    l
}

/// The endpoints of the leaders named in CurrentLeader fields (Produce v10+).
fn node_endpoints(md: &ClusterMetadata, leaders: &[i32]) -> Vec<NodeEndpoint> {
    leaders
        .iter()
        .filter_map(|id| md.brokers.get(id))
        .map(|b| {
            let mut e = NodeEndpoint::default();
            e.node_id = BrokerId(b.id);
            e.host = StrBytes::from_string(b.host.clone());
            e.port = b.port;
            e
        })
        .collect()
}
