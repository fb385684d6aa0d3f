//! Metadata on a cluster node: every unfenced broker, the controller, and each partition's
//! leader, leader epoch, replicas, ISR and offline replicas as the quorum last told this
//! node; topic ids; auto-creation through the controller (Kafka answers LEADER_NOT_AVAILABLE
//! for a topic it has just created, and so does this).
//!
//! Owns: translating `ClusterMetadata` into a MetadataResponse. Must not: read local logs
//! (what a node holds on disk is not what the cluster says).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{code, decode, respond, Response};
use crate::cluster::model::{ClusterMetadata, TopicRecord, NO_LEADER};
use crate::cluster::{ClusterHandle, Command, Reply};
use crate::protocol::Request;
use crate::state::{Broker, CLUSTER_ID};
use crate::topics::valid_topic_name;

const LEADER_NOT_AVAILABLE: i16 = 5;
const UNKNOWN_TOPIC_ID: i16 = 100;

fn partition_entry(
    meta: &ClusterMetadata,
    index: usize,
    t: &TopicRecord,
) -> MetadataResponsePartition {
    let p = &t.partitions[index];
    let ids = |v: &[i32]| v.iter().map(|r| BrokerId(*r)).collect::<Vec<_>>();
    let mut mp = MetadataResponsePartition::default();
    mp.partition_index = index as i32;
    mp.error_code = if p.leader == NO_LEADER {
        LEADER_NOT_AVAILABLE
    } else {
        code::NONE
    };
    mp.leader_id = BrokerId(p.leader);
    mp.leader_epoch = p.leader_epoch;
    mp.replica_nodes = ids(&p.replicas);
    mp.isr_nodes = ids(&p.isr);
    // Kafka's offline replicas: those on a broker that is not alive (fenced or unknown).
    mp.offline_replicas = p
        .replicas
        .iter()
        .filter(|r| meta.brokers.get(r).is_none_or(|b| b.fenced))
        .map(|r| BrokerId(*r))
        .collect();
    mp
}

fn topic_entry(meta: &ClusterMetadata, t: &TopicRecord) -> MetadataResponseTopic {
    let mut mt = MetadataResponseTopic::default();
    mt.name = Some(TopicName(StrBytes::from_string(t.name.clone())));
    mt.topic_id = Uuid::from_bytes(t.id);
    mt.is_internal = t.name.starts_with("__");
    mt.partitions = (0..t.partitions.len())
        .map(|i| partition_entry(meta, i, t))
        .collect();
    mt
}

fn error_entry(name: Option<&str>, id: Uuid, error: i16) -> MetadataResponseTopic {
    let mut mt = MetadataResponseTopic::default();
    mt.name = name.map(|n| TopicName(StrBytes::from_string(n.to_string())));
    mt.topic_id = id;
    mt.error_code = error;
    mt
}

/// Every unfenced broker and the controller id: the active controller if the quorum says,
/// else the lowest live node (clients only use it to send admin requests to some broker).
fn brokers(c: &ClusterHandle, meta: &ClusterMetadata, resp: &mut MetadataResponse) {
    resp.brokers = meta
        .live_brokers()
        .map(|b| {
            let mut e = MetadataResponseBroker::default();
            e.node_id = BrokerId(b.id);
            e.host = StrBytes::from_string(b.host.clone());
            e.port = b.port;
            e
        })
        .collect();
    let any_live = meta.live_brokers().next().map_or(c.node_id, |b| b.id);
    resp.controller_id = BrokerId(c.controller.active_controller().unwrap_or(any_live));
}

/// A requested topic the cluster does not have: auto-created through the controller with
/// the broker defaults when allowed (LEADER_NOT_AVAILABLE until the client asks again).
async fn missing(
    c: &ClusterHandle,
    broker: &Broker,
    name: &str,
    create: bool,
) -> MetadataResponseTopic {
    if !valid_topic_name(name) {
        return error_entry(Some(name), Uuid::nil(), code::INVALID_TOPIC_EXCEPTION);
    }
    if !create {
        return error_entry(Some(name), Uuid::nil(), code::UNKNOWN_TOPIC_OR_PARTITION);
    }
    let cmd = Command::CreateTopic {
        name: name.to_string(),
        partitions: broker.cfg.num_partitions,
        replication_factor: c.config.default_replication_factor,
        min_insync_replicas: c.config.min_insync_replicas,
        configs: BTreeMap::new(),
    };
    let error = match c.controller.submit(cmd).await {
        Ok(Reply::Ok) => LEADER_NOT_AVAILABLE,
        // Created meanwhile by someone else: as good as created by us.
        Ok(Reply::Error(code::TOPIC_ALREADY_EXISTS, _)) => LEADER_NOT_AVAILABLE,
        Ok(Reply::Error(e, msg)) => {
            tracing::warn!(topic = %name, "auto-create refused: {msg}");
            e
        }
        Ok(other) => {
            tracing::warn!(topic = %name, "auto-create answered {other:?}");
            code::UNKNOWN_TOPIC_OR_PARTITION
        }
        Err(e) => {
            tracing::warn!(topic = %name, "auto-create failed: {e}");
            LEADER_NOT_AVAILABLE
        }
    };
    error_entry(Some(name), Uuid::nil(), error)
}

pub async fn handle(
    broker: &Arc<Broker>,
    c: &ClusterHandle,
    req: &mut Request,
) -> anyhow::Result<Response> {
    let r: MetadataRequest = decode(req)?;
    let meta = c.current();
    let mut resp = MetadataResponse::default();
    brokers(c, &meta, &mut resp);
    resp.cluster_id = Some(StrBytes::from_static_str(CLUSTER_ID));
    let allow_create =
        broker.cfg.auto_create_topics && (req.version < 4 || r.allow_auto_topic_creation);
    let requested = match r.topics {
        None => None,
        Some(ts) if ts.is_empty() && req.version == 0 => None,
        Some(ts) => Some(ts),
    };
    let Some(requested) = requested else {
        resp.topics = meta
            .topics
            .values()
            .map(|t| topic_entry(&meta, t))
            .collect();
        return respond(req, &resp);
    };
    for t in requested {
        let entry = match &t.name {
            Some(n) => match meta.topics.get(n.0.as_str()) {
                Some(rec) => topic_entry(&meta, rec),
                None => missing(c, broker, n.0.as_str(), allow_create).await,
            },
            // v10+: by topic id alone.
            None => match meta
                .topics
                .values()
                .find(|x| Uuid::from_bytes(x.id) == t.topic_id)
            {
                Some(rec) => topic_entry(&meta, rec),
                None => error_entry(None, t.topic_id, UNKNOWN_TOPIC_ID),
            },
        };
        resp.topics.push(entry);
    }
    respond(req, &resp)
}
