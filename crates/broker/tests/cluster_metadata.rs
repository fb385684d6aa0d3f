//! A 3-node cluster answers Metadata, CreateTopics, DescribeConfigs and InitProducerId from
//! the quorum's metadata: every broker, leader epochs, ISR, offline replicas, Kafka's errors
//! for impossible topics, and producer ids that never collide across nodes.

mod cluster_support;

use std::collections::HashSet;

use cluster_support::*;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kbench_broker::cluster::Command;

const LEADER_NOT_AVAILABLE: i16 = 5;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_CONFIG: i16 = 40;
const TOPIC_ALREADY_EXISTS: i16 = 36;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn create(
    c: &mut Client,
    name: &str,
    partitions: i32,
    rf: i16,
    configs: &[(&str, &str)],
    validate_only: bool,
) -> CreatableTopicResult {
    let mut t = CreatableTopic::default();
    t.name = TopicName(s(name));
    t.num_partitions = partitions;
    t.replication_factor = rf;
    t.configs = configs
        .iter()
        .map(|(k, v)| {
            let mut e = CreatableTopicConfig::default();
            e.name = s(k);
            e.value = Some(s(v));
            e
        })
        .collect();
    let mut r = CreateTopicsRequest::default();
    r.topics = vec![t];
    r.timeout_ms = 5000;
    r.validate_only = validate_only;
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &r);
    resp.topics.into_iter().next().expect("one result")
}

fn metadata(c: &mut Client, topics: &[&str]) -> MetadataResponse {
    let mut r = MetadataRequest::default();
    r.topics = Some(
        topics
            .iter()
            .map(|t| {
                let mut mt = MetadataRequestTopic::default();
                mt.name = Some(TopicName(s(t)));
                mt
            })
            .collect(),
    );
    r.allow_auto_topic_creation = true;
    c.call(ApiKey::Metadata, 12, &r)
}

fn ids(v: &[BrokerId]) -> Vec<i32> {
    v.iter().map(|b| b.0).collect()
}

#[test]
fn metadata_lists_every_broker_with_leaders_epochs_and_isr() {
    let cl = Cluster::start(3);
    let res = create(&mut cl.client(1), "rf3", 3, 3, &[], false);
    assert_eq!(res.error_code, 0, "{:?}", res.error_message);
    assert_eq!((res.num_partitions, res.replication_factor), (3, 3));
    // Any node answers the same, from the quorum's metadata.
    let m = metadata(&mut cl.client(2), &["rf3"]);
    let mut brokers: Vec<(i32, i32)> = m.brokers.iter().map(|b| (b.node_id.0, b.port)).collect();
    brokers.sort();
    let ports: Vec<i32> = cl
        .nodes
        .iter()
        .map(|n| {
            n.bootstrap_servers()
                .rsplit_once(':')
                .unwrap()
                .1
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(brokers, vec![(1, ports[0]), (2, ports[1]), (3, ports[2])]);
    assert!((1..=3).contains(&m.controller_id.0));
    let t = &m.topics[0];
    assert_eq!(t.error_code, 0);
    assert!(!t.topic_id.is_nil(), "Metadata v10+ carries the topic id");
    let mut leaders = HashSet::new();
    for p in &t.partitions {
        assert_eq!(p.error_code, 0);
        assert_eq!(p.leader_epoch, 0);
        assert_eq!(ids(&p.replica_nodes).len(), 3);
        assert_eq!(ids(&p.isr_nodes), ids(&p.replica_nodes));
        assert_eq!(p.leader_id, p.replica_nodes[0]);
        assert!(p.offline_replicas.is_empty());
        leaders.insert(p.leader_id.0);
    }
    assert_eq!(
        leaders.len(),
        3,
        "round-robin placement spreads the leaders"
    );
}

#[test]
fn a_fenced_leader_is_replaced_with_a_higher_epoch_and_shows_offline() {
    let cl = Cluster::start(3);
    assert_eq!(
        create(&mut cl.client(1), "f", 1, 3, &[], false).error_code,
        0
    );
    let before = metadata(&mut cl.client(1), &["f"]).topics[0].partitions[0].clone();
    let old = before.leader_id.0;
    cl.controller.apply(&Command::FenceBroker {
        id: old,
        epoch: cl.broker_epoch(old),
    });
    let survivor = if old == 1 { 2 } else { 1 };
    let m = metadata(&mut cl.client(survivor), &["f"]);
    assert_eq!(m.brokers.len(), 2, "a fenced broker is not listed");
    let p = &m.topics[0].partitions[0];
    assert_ne!(p.leader_id.0, old);
    assert_eq!(p.leader_epoch, before.leader_epoch + 1);
    assert!(!ids(&p.isr_nodes).contains(&old), "{:?}", p.isr_nodes);
    assert_eq!(ids(&p.offline_replicas), vec![old]);
}

#[test]
fn a_partition_whose_replicas_are_all_fenced_has_no_leader() {
    let cl = Cluster::start(3);
    assert_eq!(
        create(&mut cl.client(1), "one", 1, 1, &[], false).error_code,
        0
    );
    let leader = metadata(&mut cl.client(1), &["one"]).topics[0].partitions[0]
        .leader_id
        .0;
    cl.controller.apply(&Command::FenceBroker {
        id: leader,
        epoch: cl.broker_epoch(leader),
    });
    let other = if leader == 3 { 2 } else { 3 };
    let p = metadata(&mut cl.client(other), &["one"]).topics[0].partitions[0].clone();
    assert_eq!(p.error_code, LEADER_NOT_AVAILABLE);
    assert_eq!(p.leader_id.0, -1);
    assert_eq!(ids(&p.isr_nodes), vec![leader], "the last ISR member stays");
    assert_eq!(ids(&p.offline_replicas), vec![leader]);
}

#[test]
fn impossible_topics_get_kafkas_errors_and_messages() {
    let cl = Cluster::start(3);
    let mut c = cl.client(2);
    let r = create(&mut c, "rf4", 1, 4, &[], false);
    assert_eq!(r.error_code, INVALID_REPLICATION_FACTOR);
    let msg = r.error_message.map(|m| m.to_string()).unwrap_or_default();
    assert!(msg.contains("3 brokers"), "{msg}");
    let r = create(&mut c, "isr4", 1, 3, &[("min.insync.replicas", "4")], false);
    assert_eq!(r.error_code, INVALID_CONFIG);
    assert!(r.error_message.unwrap().contains("min.insync.replicas"));
    // validate_only checks and creates nothing.
    assert_eq!(create(&mut c, "dry", 2, 3, &[], true).error_code, 0);
    assert!(!cl
        .node(1)
        .state()
        .cluster
        .as_ref()
        .unwrap()
        .current()
        .topics
        .contains_key("dry"));
    assert_eq!(
        create(&mut c, "dry", 2, 3, &[("retention.ms", "1000")], false).error_code,
        0
    );
    assert_eq!(
        create(&mut c, "dry", 2, 3, &[], false).error_code,
        TOPIC_ALREADY_EXISTS
    );
    assert_eq!(
        create(&mut c, "dry", 2, 3, &[], true).error_code,
        TOPIC_ALREADY_EXISTS
    );
}

#[test]
fn topic_configs_are_kept_and_described_with_min_insync_replicas() {
    let cl = Cluster::start(3);
    let r = create(
        &mut cl.client(1),
        "cfg",
        -1,
        -1,
        &[("min.insync.replicas", "2"), ("retention.ms", "60000")],
        false,
    );
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    assert_eq!(
        r.replication_factor, 3,
        "-1 takes the default (3 on 3 nodes)"
    );
    let mut res = DescribeConfigsResource::default();
    res.resource_type = 2;
    res.resource_name = s("cfg");
    res.configuration_keys = None;
    let mut req = DescribeConfigsRequest::default();
    req.resources = vec![res];
    let resp: DescribeConfigsResponse = cl.client(3).call(ApiKey::DescribeConfigs, 4, &req);
    let cfg: Vec<(String, String)> = resp.results[0]
        .configs
        .iter()
        .map(|e| (e.name.to_string(), e.value.as_ref().unwrap().to_string()))
        .collect();
    assert!(
        cfg.contains(&("min.insync.replicas".into(), "2".into())),
        "{cfg:?}"
    );
    assert!(
        cfg.contains(&("retention.ms".into(), "60000".into())),
        "{cfg:?}"
    );
}

#[test]
fn an_auto_created_topic_is_not_available_at_first_then_has_leaders() {
    let cl = Cluster::start(3);
    let first = metadata(&mut cl.client(1), &["auto"]);
    assert_eq!(first.topics[0].error_code, LEADER_NOT_AVAILABLE);
    let again = metadata(&mut cl.client(3), &["auto"]);
    let t = &again.topics[0];
    assert_eq!(t.error_code, 0);
    assert_eq!(t.partitions.len(), 1);
    assert_eq!(t.partitions[0].replica_nodes.len(), 3, "the default RF");
}

#[test]
fn producer_ids_never_collide_across_nodes() {
    let cl = Cluster::start(3);
    let mut seen = HashSet::new();
    for round in 0..3 {
        for id in 1..=3 {
            let mut r = InitProducerIdRequest::default();
            r.transactional_id = None;
            r.producer_id = ProducerId(-1);
            r.producer_epoch = -1;
            r.transaction_timeout_ms = 60000;
            let resp: InitProducerIdResponse = cl.client(id).call(ApiKey::InitProducerId, 4, &r);
            assert_eq!(resp.error_code, 0);
            assert!(
                seen.insert(resp.producer_id.0),
                "round {round}, node {id}: {} handed out twice",
                resp.producer_id.0
            );
        }
    }
}

#[test]
fn deleted_topics_leave_the_metadata_of_every_node() {
    let cl = Cluster::start(3);
    assert_eq!(
        create(&mut cl.client(1), "gone", 2, 2, &[], false).error_code,
        0
    );
    let mut r = DeleteTopicsRequest::default();
    r.topic_names = vec![TopicName(s("gone")), TopicName(s("never"))];
    r.timeout_ms = 5000;
    let resp: DeleteTopicsResponse = cl.client(2).call(ApiKey::DeleteTopics, 5, &r);
    let codes: Vec<i16> = resp.responses.iter().map(|t| t.error_code).collect();
    assert_eq!(
        codes,
        vec![0, 3],
        "UNKNOWN_TOPIC_OR_PARTITION for a topic never made"
    );
    let mut q = MetadataRequest::default();
    q.topics = None;
    let all: MetadataResponse = cl.client(3).call(ApiKey::Metadata, 12, &q);
    assert!(all
        .topics
        .iter()
        .all(|t| t.name.as_ref().unwrap().as_str() != "gone"));
}

#[test]
fn a_transactional_id_is_served_by_the_leader_of_its_transaction_state_partition() {
    let cl = Cluster::start(3);
    let mut f = FindCoordinatorRequest::default();
    f.key = s("txn-1");
    f.key_type = 1;
    let found: FindCoordinatorResponse = cl.client(1).call(ApiKey::FindCoordinator, 3, &f);
    assert_eq!(found.error_code, 0);
    let meta = cl.node(2).state().cluster.as_ref().unwrap().current();
    let t = &meta.topics["__transaction_state"];
    let p = kbench_broker::cluster::coordinator::partition_for("txn-1", t.partitions.len());
    assert_eq!(found.node_id.0, t.partitions[p as usize].leader);
    let init = |id: i32| {
        let mut r = InitProducerIdRequest::default();
        r.transactional_id = Some(TransactionalId(s("txn-1")));
        r.transaction_timeout_ms = 60000;
        r.producer_id = ProducerId(-1);
        r.producer_epoch = -1;
        let resp: InitProducerIdResponse = cl.client(id).call(ApiKey::InitProducerId, 4, &r);
        resp
    };
    let other = (1..=3).find(|i| *i != found.node_id.0).unwrap();
    assert_eq!(
        init(other).error_code,
        16,
        "NOT_COORDINATOR away from the coordinator"
    );
    let ok = init(found.node_id.0);
    assert_eq!(ok.error_code, 0);
    assert!(ok.producer_id.0 >= 1000);
}
