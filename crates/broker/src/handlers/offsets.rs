//! OffsetCommit / OffsetFetch: validated against the group, stored in the offset journal.
//! OffsetFetch with `require_stable` (v7, KIP-447; librdkafka sets it when read_committed)
//! answers UNSTABLE_OFFSET_COMMIT for a partition while an undecided transaction holds an
//! offset for it, as Kafka does; the client retries.

use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{code, decode, respond, str_of, Response};
use crate::group::offsets::{Committed, Key};
use crate::protocol::Request;
use crate::state::Broker;

pub async fn commit(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    if broker.cluster.is_some() {
        return super::offsets_cluster::commit(broker, req).await;
    }
    let r: OffsetCommitRequest = decode(req)?;
    let group = str_of(&r.group_id.0);
    let inst = r.group_instance_id.as_ref().map(str_of);
    let verdict = broker.groups.validate_commit(
        &group,
        r.generation_id_or_member_epoch,
        r.member_id.as_str(),
        inst.as_deref(),
    );
    let (mut resp, entries) = commit_plan(&r, &group, verdict);
    if let Err(e) = broker.groups.offsets.commit(entries) {
        tracing::error!(group = %group, "offset journal write failed: {e}");
        fail_all(&mut resp, code::KAFKA_STORAGE_ERROR);
    }
    respond(req, &resp)
}

/// The commits an OffsetCommit asks for, and its response with `verdict` (the group's check)
/// in every partition; no commits unless the verdict is NONE. Shared with the cluster path.
pub(super) fn commit_plan(
    r: &OffsetCommitRequest,
    group: &str,
    verdict: i16,
) -> (OffsetCommitResponse, Vec<(Key, Committed)>) {
    let mut entries = Vec::new();
    let mut resp = OffsetCommitResponse::default();
    for t in &r.topics {
        let topic = str_of(&t.name.0);
        let mut tr = OffsetCommitResponseTopic::default();
        tr.name = t.name.clone();
        for p in &t.partitions {
            let mut pr = OffsetCommitResponsePartition::default();
            pr.partition_index = p.partition_index;
            pr.error_code = verdict;
            if verdict == code::NONE {
                entries.push((
                    (group.to_string(), topic.clone(), p.partition_index),
                    Committed {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(str_of),
                    },
                ));
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    (resp, entries)
}

/// Sets `error` in every partition of a commit's response (the write failed).
pub(super) fn fail_all(resp: &mut OffsetCommitResponse, error: i16) {
    for p in resp.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
        p.error_code = error;
    }
}

pub fn fetch(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: OffsetFetchRequest = decode(req)?;
    let group = str_of(&r.group_id.0);
    let mut resp = OffsetFetchResponse::default();
    // Not coordinated here (a cluster node): v2+ has a group-level error; v1 carries it
    // in every partition.
    let denied = crate::cluster::coordinator::owner(broker, &group).err();
    if let Some(e) = denied {
        resp.error_code = e;
        if req.version >= 2 {
            return respond(req, &resp);
        }
    }
    let wanted: Vec<(TopicName, Vec<i32>)> = match r.topics {
        Some(ts) => ts
            .into_iter()
            .map(|t| (t.name, t.partition_indexes))
            .collect(),
        // Null (v2+): every partition the group has committed.
        None => {
            let mut by_topic: Vec<(TopicName, Vec<i32>)> = Vec::new();
            for (topic, part, _) in broker.groups.offsets.for_group(&group) {
                match by_topic.last_mut() {
                    Some((n, ps)) if n.0.as_str() == topic => ps.push(part),
                    _ => by_topic.push((TopicName(StrBytes::from_string(topic)), vec![part])),
                }
            }
            by_topic
        }
    };
    for (name, parts) in wanted {
        let mut tr = OffsetFetchResponseTopic::default();
        for p in parts {
            let c = match denied {
                None => broker.groups.offsets.get(&group, name.0.as_str(), p),
                Some(_) => None,
            };
            let mut pr = OffsetFetchResponsePartition::default();
            pr.partition_index = p;
            pr.error_code = denied.unwrap_or(code::NONE);
            if r.require_stable
                && (broker.txns.has_pending_offset(&group, name.0.as_str(), p)
                    || broker.txns.cluster.offsets.has(&group, name.0.as_str(), p))
            {
                pr.error_code = code::UNSTABLE_OFFSET_COMMIT;
            }
            pr.committed_offset = c.as_ref().map_or(-1, |c| c.offset);
            pr.committed_leader_epoch = c.as_ref().map_or(-1, |c| c.leader_epoch);
            pr.metadata = Some(StrBytes::from_string(
                c.and_then(|c| c.metadata).unwrap_or_default(),
            ));
            tr.partitions.push(pr);
        }
        tr.name = name;
        resp.topics.push(tr);
    }
    respond(req, &resp)
}
