//! Topic administration and producer ids: CreateTopics, DeleteTopics, DescribeConfigs (Kafka's
//! defaults plus this broker's log settings), InitProducerId (idempotence; with a
//! transactional id it goes to the transaction coordinator, `handlers::txn`).

use std::sync::Arc;

use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, InitProducerIdRequest, InitProducerIdResponse,
    ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{code, decode, respond, str_of, Response};
use crate::protocol::Request;
use crate::state::Broker;
use crate::topics::CreateError;

pub fn create_topics(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: CreateTopicsRequest = decode(req)?;
    let mut resp = CreateTopicsResponse::default();
    for t in r.topics {
        let name = str_of(&t.name.0);
        let mut res = CreatableTopicResult::default();
        res.name = t.name.clone();
        let partitions = if t.num_partitions < 0 {
            broker.cfg.num_partitions
        } else {
            t.num_partitions
        };
        res.num_partitions = partitions;
        res.replication_factor = 1;
        res.error_code = if t.replication_factor > 1 {
            code::INVALID_REPLICATION_FACTOR
        } else if !t.assignments.is_empty() {
            code::INVALID_REQUEST
        } else if r.validate_only {
            match broker.topics.get(&name) {
                Some(_) => code::TOPIC_ALREADY_EXISTS,
                None if !crate::topics::valid_topic_name(&name) => code::INVALID_TOPIC_EXCEPTION,
                None if partitions < 1 => code::INVALID_PARTITIONS,
                None => code::NONE,
            }
        } else {
            match broker.topics.create(&name, partitions, false) {
                Ok(_) => code::NONE,
                Err(CreateError::Exists) => code::TOPIC_ALREADY_EXISTS,
                Err(CreateError::InvalidName) => code::INVALID_TOPIC_EXCEPTION,
                Err(CreateError::InvalidPartitions) => code::INVALID_PARTITIONS,
                Err(CreateError::Io(e)) => {
                    tracing::error!(topic = %name, "create failed: {e}");
                    code::KAFKA_STORAGE_ERROR
                }
            }
        };
        if res.error_code != code::NONE {
            res.num_partitions = -1;
            res.replication_factor = -1;
        }
        resp.topics.push(res);
    }
    respond(req, &resp)
}

pub fn delete_topics(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: DeleteTopicsRequest = decode(req)?;
    let mut resp = DeleteTopicsResponse::default();
    let names: Vec<TopicName> = if req.version >= 6 {
        r.topics.into_iter().filter_map(|t| t.name).collect()
    } else {
        r.topic_names
    };
    for n in names {
        let name = str_of(&n.0);
        let mut res = DeletableTopicResult::default();
        res.name = Some(n.clone());
        res.error_code = match broker.topics.delete(&name) {
            Ok(true) => {
                if let Err(e) = broker.groups.offsets.forget_topic(&name) {
                    tracing::warn!(topic = %name, "could not forget committed offsets: {e}");
                }
                code::NONE
            }
            Ok(false) => code::UNKNOWN_TOPIC_OR_PARTITION,
            Err(e) => {
                tracing::error!(topic = %name, "delete failed: {e}");
                code::KAFKA_STORAGE_ERROR
            }
        };
        resp.responses.push(res);
    }
    respond(req, &resp)
}

fn topic_configs(broker: &Broker) -> Vec<(&'static str, String)> {
    let c = &broker.cfg;
    vec![
        ("cleanup.policy", "delete".into()),
        ("compression.type", "producer".into()),
        ("max.message.bytes", c.max_message_bytes.to_string()),
        ("message.timestamp.type", "CreateTime".into()),
        ("min.insync.replicas", "1".into()),
        (
            "retention.bytes",
            c.retention_bytes.map_or("-1".into(), |b| b.to_string()),
        ),
        (
            "retention.ms",
            c.retention_ms.map_or("-1".into(), |b| b.to_string()),
        ),
        ("segment.bytes", c.segment_bytes.to_string()),
        (
            "flush.messages",
            match c.flush {
                crate::log::FlushPolicy::Messages(n) => n.to_string(),
                _ => i64::MAX.to_string(),
            },
        ),
        (
            "flush.ms",
            match c.flush {
                crate::log::FlushPolicy::IntervalMs(n) => n.to_string(),
                _ => i64::MAX.to_string(),
            },
        ),
    ]
}

fn broker_configs(broker: &Broker) -> Vec<(&'static str, String)> {
    let c = &broker.cfg;
    let mut v = vec![
        (
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
        ),
        ("num.partitions", c.num_partitions.to_string()),
        ("socket.request.max.bytes", c.max_request_bytes.to_string()),
        (
            "connections.max.idle.ms",
            c.connections_max_idle_ms.to_string(),
        ),
        ("max.connections", c.max_connections.to_string()),
        ("message.max.bytes", c.max_message_bytes.to_string()),
        ("log.segment.bytes", c.segment_bytes.to_string()),
        (
            "group.initial.rebalance.delay.ms",
            c.group_initial_rebalance_delay_ms.to_string(),
        ),
    ];
    if let Some(cl) = &broker.cluster {
        let cc = &cl.config;
        v.extend([
            ("node.id", cl.node_id.to_string()),
            (
                "default.replication.factor",
                cc.default_replication_factor.to_string(),
            ),
            ("min.insync.replicas", cc.min_insync_replicas.to_string()),
            (
                "offsets.topic.num.partitions",
                cc.offsets_topic_num_partitions.to_string(),
            ),
            (
                "unclean.leader.election.enable",
                cc.unclean_leader_election.to_string(),
            ),
        ]);
    }
    v
}

/// A topic's configs: the broker defaults, and on a cluster node the topic's own over them
/// (config source 1, TOPIC_CONFIG, instead of 5, DEFAULT_CONFIG). `None`: no such topic.
fn configs_of_topic(broker: &Broker, topic: &str) -> Option<Vec<(String, String, i8)>> {
    let defaults = topic_configs(broker)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v, 5));
    let Some(c) = &broker.cluster else {
        broker.topics.get(topic)?;
        return Some(defaults.collect());
    };
    let own = super::admin_cluster::topic_configs(&c.current(), topic)?;
    let mut all: Vec<(String, String, i8)> = defaults
        .filter(|(k, _, _)| !own.iter().any(|(o, _, _)| o == k))
        .collect();
    all.extend(own.into_iter().map(|(k, v, _)| (k, v, 1)));
    all.sort();
    Some(all)
}

pub fn describe_configs(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: DescribeConfigsRequest = decode(req)?;
    let mut resp = DescribeConfigsResponse::default();
    for res in r.resources {
        let mut out = DescribeConfigsResult::default();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name.clone();
        let configs = match res.resource_type {
            2 => match configs_of_topic(broker, res.resource_name.as_str()) {
                Some(c) => Some(c),
                None => {
                    out.error_code = code::UNKNOWN_TOPIC_OR_PARTITION;
                    None
                }
            },
            4 => Some(
                broker_configs(broker)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v, 5))
                    .collect(),
            ),
            _ => {
                out.error_code = code::INVALID_REQUEST;
                None
            }
        };
        for (k, v, source) in configs.unwrap_or_default() {
            if res
                .configuration_keys
                .as_ref()
                .is_some_and(|keys| !keys.iter().any(|x| x.as_str() == k))
            {
                continue;
            }
            let mut e = DescribeConfigsResourceResult::default();
            e.name = StrBytes::from_string(k);
            e.value = Some(StrBytes::from_string(v));
            e.read_only = source == 5;
            e.config_source = source;
            out.configs.push(e);
        }
        resp.results.push(out);
    }
    respond(req, &resp)
}

pub async fn init_producer_id(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: InitProducerIdRequest = decode(req)?;
    let mut resp = InitProducerIdResponse::default();
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    if let Some(c) = &broker.cluster {
        // Ids from the quorum's blocks; a transactional id only at its coordinator.
        let tid = r.transactional_id.as_ref().map(|t| t.0.as_str());
        if let Err(e) = cluster_checks(broker, c, tid).await {
            resp.error_code = e;
            return respond(req, &resp);
        }
    }
    if let Some(tid) = &r.transactional_id {
        if broker.cluster.is_some() && !tid.0.is_empty() {
            return super::txn_cluster::init_producer_id(broker, req, &r, tid.0.as_str()).await;
        }
        return super::txn::init_producer_id(broker, req, &r, tid.0.as_str());
    }
    if r.producer_id.0 >= 0 && r.producer_epoch >= 0 && r.producer_epoch < i16::MAX - 1 {
        // KIP-360: an idempotent producer bumps its epoch after a sequence problem.
        resp.producer_id = r.producer_id;
        resp.producer_epoch = r.producer_epoch + 1;
        return respond(req, &resp);
    }
    match broker.producer_ids.next() {
        Ok(id) => {
            resp.producer_id = ProducerId(id);
            resp.producer_epoch = 0;
        }
        Err(e) => {
            tracing::error!("cannot allocate a producer id: {e}");
            resp.error_code = code::KAFKA_STORAGE_ERROR;
        }
    }
    respond(req, &resp)
}

/// On a cluster node: a transactional id is served only by the node FindCoordinator names
/// for it (NOT_COORDINATOR elsewhere, so the client looks it up again), and a producer-id
/// block must be at hand (COORDINATOR_NOT_AVAILABLE while the quorum cannot give one).
async fn cluster_checks(
    broker: &Broker,
    c: &crate::cluster::ClusterHandle,
    transactional_id: Option<&str>,
) -> Result<(), i16> {
    if let Some(tid) = transactional_id.filter(|t| !t.is_empty()) {
        let (node, _, _) = crate::cluster::coordinator::find(broker, tid, true).await?;
        if node != c.node_id {
            return Err(crate::group::NOT_COORDINATOR);
        }
    }
    broker
        .producer_ids
        .refill(c.controller.as_ref())
        .await
        .map_err(|e| {
            tracing::warn!("no producer-id block from the quorum: {e}");
            crate::group::COORDINATOR_NOT_AVAILABLE
        })
}
