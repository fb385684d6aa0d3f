//! Topic administration and producer ids on a cluster node: CreateTopics and DeleteTopics go
//! through the controller (answered once the command is applied on this node), DescribeConfigs
//! shows a topic's `min.insync.replicas` and the configs it was created with, InitProducerId
//! hands out ids from the quorum's blocks.
//!
//! Owns: turning requests into `Command`s and replies into error codes and messages. Must
//! not: touch local logs (the data path follows the metadata on its own).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{code, decode, respond, str_of, Response};
use crate::cluster::model::ClusterMetadata;
use crate::cluster::{ClusterHandle, Command, Reply};
use crate::protocol::Request;
use crate::state::Broker;

const REQUEST_TIMED_OUT: i16 = 7;
const INVALID_CONFIG: i16 = 40;
const MIN_ISR: &str = "min.insync.replicas";

/// Submits `cmd` and waits for it to be applied here, at most `timeout_ms` (Kafka's
/// per-request `timeout_ms`; 0 or less: a bounded default).
async fn submit(c: &ClusterHandle, cmd: Command, timeout_ms: i32) -> Reply {
    let wait = match timeout_ms {
        t if t > 0 => Duration::from_millis(t as u64),
        _ => Duration::from_secs(30),
    };
    match tokio::time::timeout(wait, c.controller.submit(cmd)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Reply::Error(
            REQUEST_TIMED_OUT,
            format!("the controller did not answer: {e}"),
        ),
        Err(_) => Reply::Error(
            REQUEST_TIMED_OUT,
            format!(
                "the controller did not apply the change within {} ms",
                wait.as_millis()
            ),
        ),
    }
}

/// The CreateTopic command a request asks for, or the error it gets before reaching the
/// controller. -1 partitions / replication factor take the broker defaults.
fn create_command(
    broker: &Broker,
    c: &ClusterHandle,
    t: &CreatableTopic,
) -> Result<Command, (i16, String)> {
    let name = str_of(&t.name.0);
    if !crate::topics::valid_topic_name(&name) {
        return Err((
            code::INVALID_TOPIC_EXCEPTION,
            format!("`{name}` is not a valid topic name"),
        ));
    }
    if !t.assignments.is_empty() {
        return Err((
            code::INVALID_REQUEST,
            "manual replica assignments are not supported".into(),
        ));
    }
    let partitions = if t.num_partitions < 0 {
        broker.cfg.num_partitions
    } else {
        t.num_partitions
    };
    let rf = if t.replication_factor < 0 {
        c.config.default_replication_factor
    } else {
        i32::from(t.replication_factor)
    };
    let mut configs = BTreeMap::new();
    for cfg in &t.configs {
        if let Some(v) = &cfg.value {
            configs.insert(str_of(&cfg.name), str_of(v));
        }
    }
    let min_isr = match configs.remove(MIN_ISR) {
        None => c.config.min_insync_replicas.min(rf.max(1)),
        Some(v) => v
            .trim()
            .parse::<i32>()
            .map_err(|_| (INVALID_CONFIG, format!("{MIN_ISR} `{v}` is not an integer")))?,
    };
    Ok(Command::CreateTopic {
        name,
        partitions,
        replication_factor: rf,
        min_insync_replicas: min_isr,
        configs,
    })
}

/// `validate_only`: the command applied to a copy of the metadata, which checks exactly what
/// the controller would (the model's apply is deterministic and has no side effects).
fn dry_run(meta: &ClusterMetadata, cmd: &Command) -> Reply {
    meta.clone().apply(cmd).0
}

fn set_error(res: &mut CreatableTopicResult, e: i16, msg: String) {
    res.error_code = e;
    res.error_message = Some(StrBytes::from_string(msg));
    res.num_partitions = -1;
    res.replication_factor = -1;
}

fn fill_result(
    res: &mut CreatableTopicResult,
    meta: &ClusterMetadata,
    cmd: &Command,
    reply: Reply,
) {
    let Command::CreateTopic {
        name,
        partitions,
        replication_factor,
        ..
    } = cmd
    else {
        return;
    };
    match reply {
        Reply::Error(e, msg) => set_error(res, e, msg),
        _ => {
            res.num_partitions = *partitions;
            res.replication_factor = *replication_factor as i16;
            if let Some(t) = meta.topics.get(name) {
                res.topic_id = Uuid::from_bytes(t.id);
            }
        }
    }
}

pub async fn create_topics(
    broker: &Arc<Broker>,
    c: &ClusterHandle,
    req: &mut Request,
) -> anyhow::Result<Response> {
    let r: CreateTopicsRequest = decode(req)?;
    let mut resp = CreateTopicsResponse::default();
    for t in &r.topics {
        let mut res = CreatableTopicResult::default();
        res.name = t.name.clone();
        match create_command(broker, c, t) {
            Err((e, msg)) => set_error(&mut res, e, msg),
            Ok(cmd) => {
                let reply = if r.validate_only {
                    dry_run(&c.current(), &cmd)
                } else {
                    submit(c, cmd.clone(), r.timeout_ms).await
                };
                fill_result(&mut res, &c.current(), &cmd, reply);
            }
        }
        resp.topics.push(res);
    }
    respond(req, &resp)
}

pub async fn delete_topics(
    _broker: &Arc<Broker>,
    c: &ClusterHandle,
    req: &mut Request,
) -> anyhow::Result<Response> {
    let r: DeleteTopicsRequest = decode(req)?;
    let mut resp = DeleteTopicsResponse::default();
    let meta = c.current();
    // v6+ names topics by name or by id; older versions by name.
    let wanted: Vec<(Option<String>, Uuid)> = if req.version >= 6 {
        r.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| str_of(&n.0)), t.topic_id))
            .collect()
    } else {
        r.topic_names
            .iter()
            .map(|n| (Some(str_of(&n.0)), Uuid::nil()))
            .collect()
    };
    for (name, id) in wanted {
        let name = name.or_else(|| {
            meta.topics
                .values()
                .find(|t| Uuid::from_bytes(t.id) == id)
                .map(|t| t.name.clone())
        });
        let mut res = DeletableTopicResult::default();
        res.topic_id = id;
        let Some(name) = name else {
            res.error_code = 100; // UNKNOWN_TOPIC_ID
            resp.responses.push(res);
            continue;
        };
        res.name = Some(kafka_protocol::messages::TopicName(StrBytes::from_string(
            name.clone(),
        )));
        if let Reply::Error(e, msg) = submit(c, Command::DeleteTopic { name }, r.timeout_ms).await {
            res.error_code = e;
            res.error_message = Some(StrBytes::from_string(msg));
        }
        resp.responses.push(res);
    }
    respond(req, &resp)
}

/// A topic's configs on a cluster node: its `min.insync.replicas` and the configs it was
/// created with, over the broker defaults (`true`: set on the topic).
pub fn topic_configs(meta: &ClusterMetadata, topic: &str) -> Option<Vec<(String, String, bool)>> {
    let t = meta.topics.get(topic)?;
    let mut out = vec![(MIN_ISR.to_string(), t.min_insync_replicas.to_string(), true)];
    out.extend(t.configs.iter().map(|(k, v)| (k.clone(), v.clone(), true)));
    Some(out)
}
