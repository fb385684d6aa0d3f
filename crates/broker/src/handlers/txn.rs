//! Transaction APIs (KIP-98, transaction protocol v1): InitProducerId with a transactional
//! id, AddPartitionsToTxn (v0-3), AddOffsetsToTxn, TxnOffsetCommit, EndTxn — translations to
//! `txn::TxnCoordinator`, with EndTxn and fencing completed through `txn::complete` before
//! the answer.
//!
//! Error codes follow Kafka's `KafkaApis`: PRODUCER_FENCED (KIP-588) is sent as
//! INVALID_PRODUCER_EPOCH to versions that predate it (InitProducerId < 4, AddPartitionsToTxn,
//! AddOffsetsToTxn and EndTxn < 2, TxnOffsetCommit < 3).

use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;

use super::{code, decode, respond, str_of, Response};
use crate::group::offsets::Committed;
use crate::protocol::Request;
use crate::state::Broker;
use crate::txn::{self, complete, End, Init, PendingOffset};

/// Kafka's OPERATION_NOT_ATTEMPTED: the other partitions of a request that had a bad one.
pub(super) const OPERATION_NOT_ATTEMPTED: i16 = 55;

/// PRODUCER_FENCED for clients that know it, INVALID_PRODUCER_EPOCH for older versions.
pub(super) fn fenced_for(error: i16, version: i16, first_version_with_fenced: i16) -> i16 {
    if error == txn::PRODUCER_FENCED && version < first_version_with_fenced {
        txn::INVALID_PRODUCER_EPOCH
    } else {
        error
    }
}

/// InitProducerId for a transactional id (the caller handles null ids). An open transaction
/// of the previous instance is aborted here, then the client retries on
/// CONCURRENT_TRANSACTIONS, as Kafka's `handleInitProducerId` does.
pub fn init_producer_id(
    broker: &Arc<Broker>,
    req: &Request,
    r: &InitProducerIdRequest,
    tid: &str,
) -> anyhow::Result<Response> {
    let mut resp = InitProducerIdResponse::default();
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    if tid.is_empty() {
        resp.error_code = code::INVALID_REQUEST;
        return respond(req, &resp);
    }
    let expected = (r.producer_id.0 >= 0).then_some((r.producer_id.0, r.producer_epoch));
    let outcome = broker
        .txns
        .init(tid, r.transaction_timeout_ms, expected, || {
            broker.producer_ids.next()
        });
    resp.error_code = match outcome {
        Init::Ready(pid, epoch) => {
            resp.producer_id = ProducerId(pid);
            resp.producer_epoch = epoch;
            code::NONE
        }
        Init::AbortFirst(plan) => {
            complete::complete_in_handler(broker, &plan);
            txn::CONCURRENT_TRANSACTIONS
        }
        Init::Error(c) => fenced_for(c, req.version, 4),
    };
    respond(req, &resp)
}

pub(super) fn begun(broker: &Broker, (error, began): (i16, bool)) -> i16 {
    if began {
        broker.metrics.transaction_begun();
    }
    error
}

pub fn add_partitions(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: AddPartitionsToTxnRequest = decode(req)?;
    let tid = str_of(&r.v3_and_below_transactional_id.0);
    let wanted = wanted_partitions(&r);
    // Kafka checks that every partition exists before it adds any.
    let unknown = |(t, p): &(String, i32)| broker.topics.partition(t, *p).is_none();
    let any_unknown = wanted.iter().any(unknown);
    let error = if any_unknown {
        code::NONE
    } else {
        let pid = r.v3_and_below_producer_id.0;
        let epoch = r.v3_and_below_producer_epoch;
        let e = begun(broker, broker.txns.add(&tid, pid, epoch, &wanted, None));
        fenced_for(e, req.version, 2)
    };
    respond(
        req,
        &add_partitions_response(&r, any_unknown, error, unknown),
    )
}

/// The (topic, partition) pairs an AddPartitionsToTxn (v3 and below) names.
pub(super) fn wanted_partitions(r: &AddPartitionsToTxnRequest) -> Vec<(String, i32)> {
    r.v3_and_below_topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (str_of(&t.name.0), *p)))
        .collect()
}

/// The response to an AddPartitionsToTxn: `error` everywhere, or, when a partition is
/// unknown, UNKNOWN_TOPIC_OR_PARTITION for it and OPERATION_NOT_ATTEMPTED for the rest
/// (Kafka adds none unless all exist).
pub(super) fn add_partitions_response(
    r: &AddPartitionsToTxnRequest,
    any_unknown: bool,
    error: i16,
    unknown: impl Fn(&(String, i32)) -> bool,
) -> AddPartitionsToTxnResponse {
    let mut resp = AddPartitionsToTxnResponse::default();
    for t in &r.v3_and_below_topics {
        let mut tr = AddPartitionsToTxnTopicResult::default();
        tr.name = t.name.clone();
        for p in &t.partitions {
            let mut pr = AddPartitionsToTxnPartitionResult::default();
            pr.partition_index = *p;
            pr.partition_error_code = match any_unknown {
                false => error,
                true if unknown(&(str_of(&t.name.0), *p)) => code::UNKNOWN_TOPIC_OR_PARTITION,
                true => OPERATION_NOT_ATTEMPTED,
            };
            tr.results_by_partition.push(pr);
        }
        resp.results_by_topic_v3_and_below.push(tr);
    }
    resp
}

pub fn add_offsets(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: AddOffsetsToTxnRequest = decode(req)?;
    let tid = str_of(&r.transactional_id.0);
    let group = str_of(&r.group_id.0);
    let added = broker
        .txns
        .add(&tid, r.producer_id.0, r.producer_epoch, &[], Some(&group));
    let mut resp = AddOffsetsToTxnResponse::default();
    resp.error_code = fenced_for(begun(broker, added), req.version, 2);
    respond(req, &resp)
}

pub fn txn_offset_commit(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: TxnOffsetCommitRequest = decode(req)?;
    let tid = str_of(&r.transactional_id.0);
    let group = str_of(&r.group_id.0);
    // KIP-447 (v3+): a producer that passes the consumer's group metadata is checked against
    // the group like an OffsetCommit; generation -1 without a member id skips the check.
    let member = str_of(&r.member_id);
    let inst = r.group_instance_id.as_ref().map(str_of);
    let verdict = if req.version >= 3 && (r.generation_id >= 0 || !member.is_empty()) {
        broker
            .groups
            .validate_commit(&group, r.generation_id, &member, inst.as_deref())
    } else {
        code::NONE
    };
    let offsets: Vec<PendingOffset> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| PendingOffset {
                group: group.clone(),
                topic: str_of(&t.name.0),
                partition: p.partition_index,
                committed: Committed {
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(str_of),
                },
            })
        })
        .collect();
    let error = if verdict != code::NONE {
        verdict
    } else {
        let e = broker
            .txns
            .add_offsets(&tid, r.producer_id.0, r.producer_epoch, &group, offsets);
        fenced_for(e, req.version, 3)
    };
    let mut resp = TxnOffsetCommitResponse::default();
    for t in &r.topics {
        let mut tr = TxnOffsetCommitResponseTopic::default();
        tr.name = t.name.clone();
        for p in &t.partitions {
            let mut pr = TxnOffsetCommitResponsePartition::default();
            pr.partition_index = p.partition_index;
            pr.error_code = error;
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    respond(req, &resp)
}

pub fn end(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: EndTxnRequest = decode(req)?;
    let tid = str_of(&r.transactional_id.0);
    let error = match broker
        .txns
        .end(&tid, r.producer_id.0, r.producer_epoch, r.committed)
    {
        End::Answer(c) => c,
        // The markers are in every partition of the transaction before the answer.
        End::Write(plan) => complete::complete_in_handler(broker, &plan),
    };
    let mut resp = EndTxnResponse::default();
    resp.error_code = fenced_for(error, req.version, 2);
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    respond(req, &resp)
}
