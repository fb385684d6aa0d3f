//! The transaction APIs on a cluster node: the same `txn::TxnCoordinator` rules as on a
//! single node, each state change logged to the id's `__transaction_state` partition before
//! the answer (`txn::cluster::transact`), transactions ended through the partition leaders
//! (`txn::cluster::complete`). TxnOffsetCommit goes to the group's coordinator, which keeps
//! the offsets pending until the transaction's marker (`txn::cluster::offsets`);
//! AddOffsetsToTxn therefore adds the group's `__consumer_offsets` partition to the
//! transaction, as Kafka does, so that it gets a marker.

use std::sync::Arc;

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;

use super::txn::{begun, fenced_for};
use super::{code, decode, respond, str_of, Response};
use crate::cluster::coordinator::{self, partition_for, OFFSETS_TOPIC};
use crate::group::offsets::Committed;
use crate::protocol::Request;
use crate::state::Broker;
use crate::txn::cluster::{complete, transact};
use crate::txn::{self, End, Init, PendingOffset};

/// InitProducerId for a transactional id on its coordinator (`admin` checked that).
pub async fn init_producer_id(
    broker: &Arc<Broker>,
    req: &Request,
    r: &InitProducerIdRequest,
    tid: &str,
) -> anyhow::Result<Response> {
    let mut resp = InitProducerIdResponse::default();
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    let expected = (r.producer_id.0 >= 0).then_some((r.producer_id.0, r.producer_epoch));
    let outcome = transact(broker, tid, |t| {
        t.init(tid, r.transaction_timeout_ms, expected, || {
            broker.producer_ids.next()
        })
    })
    .await;
    resp.error_code = match outcome {
        Err(e) => e,
        Ok(Init::Ready(pid, epoch)) => {
            resp.producer_id = ProducerId(pid);
            resp.producer_epoch = epoch;
            code::NONE
        }
        Ok(Init::AbortFirst(plan)) => {
            complete(broker, &plan).await;
            txn::CONCURRENT_TRANSACTIONS
        }
        Ok(Init::Error(c)) => fenced_for(c, req.version, 4),
    };
    respond(req, &resp)
}

pub async fn add_partitions(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: AddPartitionsToTxnRequest = decode(req)?;
    let tid = str_of(&r.v3_and_below_transactional_id.0);
    let wanted = super::txn::wanted_partitions(&r);
    // Existence from the metadata: a node need not hold a replica of every partition.
    let meta = broker.cluster.as_ref().map(|c| c.current());
    let unknown =
        |(t, p): &(String, i32)| meta.as_ref().is_none_or(|m| m.partition(t, *p).is_none());
    let any_unknown = wanted.iter().any(unknown);
    let error = if any_unknown {
        code::NONE
    } else {
        let (pid, epoch) = (r.v3_and_below_producer_id.0, r.v3_and_below_producer_epoch);
        let e = match transact(broker, &tid, |t| t.add(&tid, pid, epoch, &wanted, None)).await {
            Ok(added) => begun(broker, added),
            Err(e) => e,
        };
        fenced_for(e, req.version, 2)
    };
    respond(
        req,
        &super::txn::add_partitions_response(&r, any_unknown, error, unknown),
    )
}

/// The group's `__consumer_offsets` partition, which gets the transaction's marker.
fn offsets_partition(broker: &Broker, group: &str) -> Option<(String, i32)> {
    let meta = broker.cluster.as_ref()?.current();
    let n = meta.topics.get(OFFSETS_TOPIC)?.partitions.len();
    Some((OFFSETS_TOPIC.to_string(), partition_for(group, n)))
}

pub async fn add_offsets(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: AddOffsetsToTxnRequest = decode(req)?;
    let tid = str_of(&r.transactional_id.0);
    let group = str_of(&r.group_id.0);
    let error = match offsets_partition(broker, &group) {
        // The client found the group's coordinator first, which creates the topic.
        None => crate::group::COORDINATOR_NOT_AVAILABLE,
        Some(part) => {
            let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
            let added = transact(broker, &tid, |t| {
                t.add(&tid, pid, epoch, &[part], Some(&group))
            });
            match added.await {
                Ok(a) => begun(broker, a),
                Err(e) => e,
            }
        }
    };
    let mut resp = AddOffsetsToTxnResponse::default();
    resp.error_code = fenced_for(error, req.version, 2);
    respond(req, &resp)
}

/// On the group's coordinator: checked against the group as on a single node, then pending
/// until the marker. The producer's epoch is not checked here (its coordinator is another
/// node); a fenced producer's offsets never get a commit marker at its epoch's transaction.
pub async fn txn_offset_commit(
    broker: &Arc<Broker>,
    req: &mut Request,
) -> anyhow::Result<Response> {
    let r: TxnOffsetCommitRequest = decode(req)?;
    let group = str_of(&r.group_id.0);
    let member = str_of(&r.member_id);
    let inst = r.group_instance_id.as_ref().map(str_of);
    let verdict = match coordinator::owner(broker, &group) {
        Err(e) => e,
        Ok(_) if req.version >= 3 && (r.generation_id >= 0 || !member.is_empty()) => broker
            .groups
            .validate_commit(&group, r.generation_id, &member, inst.as_deref()),
        Ok(_) => code::NONE,
    };
    if verdict == code::NONE {
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
        broker.txns.cluster.offsets.add(r.producer_id.0, offsets);
    }
    let mut resp = TxnOffsetCommitResponse::default();
    for t in &r.topics {
        let mut tr = TxnOffsetCommitResponseTopic::default();
        tr.name = t.name.clone();
        for p in &t.partitions {
            let mut pr = TxnOffsetCommitResponsePartition::default();
            pr.partition_index = p.partition_index;
            pr.error_code = verdict;
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    respond(req, &resp)
}

pub async fn end(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: EndTxnRequest = decode(req)?;
    let tid = str_of(&r.transactional_id.0);
    let (pid, epoch, commit) = (r.producer_id.0, r.producer_epoch, r.committed);
    let error = match transact(broker, &tid, |t| t.end(&tid, pid, epoch, commit)).await {
        Err(e) => e,
        Ok(End::Answer(c)) => c,
        Ok(End::Write(plan)) => match complete(broker, &plan).await {
            // Still Prepare*: the client retries and is answered once the sweep finished it.
            code::NONE => code::NONE,
            crate::group::NOT_COORDINATOR => crate::group::NOT_COORDINATOR,
            _ => txn::CONCURRENT_TRANSACTIONS,
        },
    };
    let mut resp = EndTxnResponse::default();
    resp.error_code = fenced_for(error, req.version, 2);
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    respond(req, &resp)
}
