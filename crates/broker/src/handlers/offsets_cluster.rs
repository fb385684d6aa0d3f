//! OffsetCommit on a cluster node: only the group's coordinator accepts it, validates it
//! against the group as on a single node, writes the commits as records to the group's
//! `__consumer_offsets` partition and answers once the ISR has them; only then do they
//! show in OffsetFetch.
//!
//! Owns: that order (validate, replicate, then remember). Must not: write the node-local
//! offset journal (a cluster node has none).

use std::sync::Arc;

use kafka_protocol::messages::OffsetCommitRequest;

use super::{code, decode, respond, str_of, Response};
use crate::cluster::coordinator::{self, log};
use crate::group::offsets::{Committed, Key};
use crate::protocol::Request;
use crate::state::Broker;

pub async fn commit(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: OffsetCommitRequest = decode(req)?;
    let group = str_of(&r.group_id.0);
    let inst = r.group_instance_id.as_ref().map(str_of);
    let verdict = match coordinator::owner(broker, &group) {
        Err(e) => e,
        Ok(_) => broker.groups.validate_commit(
            &group,
            r.generation_id_or_member_epoch,
            r.member_id.as_str(),
            inst.as_deref(),
        ),
    };
    let (mut resp, entries) = super::offsets::commit_plan(&r, &group, verdict);
    if !entries.is_empty() {
        let error = store(broker, &group, &entries).await;
        if error == code::NONE {
            // In memory only on a cluster node: it cannot fail.
            let _ = broker.groups.offsets.commit(entries);
        } else {
            super::offsets::fail_all(&mut resp, error);
        }
    }
    respond(req, &resp)
}

/// Appends the commits to the group's partition; the OffsetCommit error code.
async fn store(broker: &Arc<Broker>, group: &str, entries: &[(Key, Committed)]) -> i16 {
    let Some(c) = &broker.cluster else {
        return code::NONE;
    };
    let meta = c.current();
    let Some(t) = meta.topics.get(coordinator::OFFSETS_TOPIC) else {
        return crate::group::NOT_COORDINATOR;
    };
    let n = t.partitions.len();
    let p = coordinator::partition_for(group, n);
    log::append_commits(broker, p, n, entries).await
}
