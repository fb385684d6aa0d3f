//! Metadata: this one node, every (or the requested) topic with its partitions, and topic
//! auto-creation (Kafka's `auto.create.topics.enable`, allowed per request from v4).

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{code, decode, respond, Response};
use crate::protocol::Request;
use crate::state::{Broker, CLUSTER_ID, NODE_ID};
use crate::topics::{valid_topic_name, CreateError, Topic};

fn topic_entry(t: &Topic) -> MetadataResponseTopic {
    let mut mt = MetadataResponseTopic::default();
    mt.name = Some(TopicName(StrBytes::from_string(t.name.clone())));
    mt.partitions = t
        .partitions
        .iter()
        .map(|p| {
            let mut mp = MetadataResponsePartition::default();
            mp.partition_index = p.index;
            mp.leader_id = BrokerId(NODE_ID);
            // Epoch -1: clients then skip OffsetForLeaderEpoch validation (single node).
            mp.leader_epoch = -1;
            mp.replica_nodes = vec![BrokerId(NODE_ID)];
            mp.isr_nodes = vec![BrokerId(NODE_ID)];
            mp
        })
        .collect();
    mt
}

fn error_entry(name: &str, error: i16) -> MetadataResponseTopic {
    let mut mt = MetadataResponseTopic::default();
    mt.name = Some(TopicName(StrBytes::from_string(name.to_string())));
    mt.error_code = error;
    mt
}

pub fn handle(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: MetadataRequest = decode(req)?;
    let mut resp = MetadataResponse::default();
    let mut b = MetadataResponseBroker::default();
    b.node_id = BrokerId(NODE_ID);
    b.host = StrBytes::from_string(broker.advertised_host.clone());
    b.port = broker.advertised_port;
    resp.brokers = vec![b];
    resp.cluster_id = Some(StrBytes::from_static_str(CLUSTER_ID));
    resp.controller_id = BrokerId(NODE_ID);
    // v0: an empty list means "all topics"; v1+: null means all, empty means none.
    let requested: Option<Vec<String>> = match r.topics {
        None => None,
        Some(ts) if ts.is_empty() && req.version == 0 => None,
        Some(ts) => Some(
            ts.into_iter()
                .filter_map(|t| t.name.map(|n| n.0.as_str().to_string()))
                .collect(),
        ),
    };
    let allow_create =
        broker.cfg.auto_create_topics && (req.version < 4 || r.allow_auto_topic_creation);
    resp.topics = match requested {
        None => broker.topics.all().iter().map(|t| topic_entry(t)).collect(),
        Some(names) => names
            .iter()
            .map(|name| match broker.topics.get(name) {
                Some(t) => topic_entry(&t),
                None if !valid_topic_name(name) => error_entry(name, code::INVALID_TOPIC_EXCEPTION),
                None if allow_create => {
                    match broker.topics.create(name, broker.cfg.num_partitions, true) {
                        Ok(t) => topic_entry(&t),
                        Err(CreateError::InvalidName) => {
                            error_entry(name, code::INVALID_TOPIC_EXCEPTION)
                        }
                        Err(e) => {
                            tracing::warn!(topic = %name, "auto-create failed: {e}");
                            error_entry(name, code::UNKNOWN_TOPIC_OR_PARTITION)
                        }
                    }
                }
                None => error_entry(name, code::UNKNOWN_TOPIC_OR_PARTITION),
            })
            .collect(),
    };
    respond(req, &resp)
}
