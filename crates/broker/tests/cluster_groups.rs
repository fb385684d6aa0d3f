//! Group coordination in a 3-node cluster: FindCoordinator names the leader of the group's
//! `__consumer_offsets` partition (Kafka's partitionFor), other nodes answer NOT_COORDINATOR,
//! commits are records of that partition replicated before they are answered, and when the
//! coordinator's node is fenced the new leader rebuilds the offsets from its log and serves
//! them.

mod cluster_support;

use std::time::Duration;

use bytes::Bytes;
use cluster_support::*;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kbench_broker::cluster::coordinator::{partition_for, OFFSETS_TOPIC};
use kbench_broker::cluster::Command;

const NOT_COORDINATOR: i16 = 16;
const LOAD_IN_PROGRESS: i16 = 14;
const MEMBER_ID_REQUIRED: i16 = 79;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// FindCoordinator (v3, one key) for a group: (error, node id).
fn find(c: &mut Client, group: &str) -> (i16, i32) {
    let mut r = FindCoordinatorRequest::default();
    r.key = s(group);
    r.key_type = 0;
    let resp: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 3, &r);
    (resp.error_code, resp.node_id.0)
}

/// FindCoordinator v4 (batched keys).
fn find_batched(c: &mut Client, groups: &[&str]) -> Vec<(i16, i32)> {
    let mut r = FindCoordinatorRequest::default();
    r.key_type = 0;
    r.coordinator_keys = groups.iter().map(|g| s(g)).collect();
    let resp: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 4, &r);
    resp.coordinators
        .iter()
        .map(|c| (c.error_code, c.node_id.0))
        .collect()
}

fn offsets_leader(cl: &Cluster, group: &str) -> (i32, i32) {
    let meta = cl.node(1).state().cluster.as_ref().unwrap().current();
    let t = &meta.topics[OFFSETS_TOPIC];
    let p = partition_for(group, t.partitions.len());
    (p, t.partitions[p as usize].leader)
}

fn join(c: &mut Client, group: &str, member: &str) -> JoinGroupResponse {
    let mut p = JoinGroupRequestProtocol::default();
    p.name = s("range");
    p.metadata = Bytes::from_static(b"\x00\x01");
    let mut r = JoinGroupRequest::default();
    r.group_id = GroupId(s(group));
    r.session_timeout_ms = 10_000;
    r.rebalance_timeout_ms = 10_000;
    r.member_id = s(member);
    r.protocol_type = s("consumer");
    r.protocols = vec![p];
    c.call(ApiKey::JoinGroup, 5, &r)
}

/// Joins as the only member and syncs: (member id, generation).
fn join_and_sync(c: &mut Client, group: &str) -> (String, i32) {
    let first = join(c, group, "");
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    let j = join(c, group, first.member_id.as_str());
    assert_eq!(j.error_code, 0);
    let mut a = SyncGroupRequestAssignment::default();
    a.member_id = j.member_id.clone();
    a.assignment = Bytes::from_static(b"assignment");
    let mut r = SyncGroupRequest::default();
    r.group_id = GroupId(s(group));
    r.generation_id = j.generation_id;
    r.member_id = j.member_id.clone();
    r.assignments = vec![a];
    let sync: SyncGroupResponse = c.call(ApiKey::SyncGroup, 3, &r);
    assert_eq!(sync.error_code, 0);
    (j.member_id.to_string(), j.generation_id)
}

fn heartbeat(c: &mut Client, group: &str, member: &str, generation: i32) -> i16 {
    let mut r = HeartbeatRequest::default();
    r.group_id = GroupId(s(group));
    r.member_id = s(member);
    r.generation_id = generation;
    let resp: HeartbeatResponse = c.call(ApiKey::Heartbeat, 3, &r);
    resp.error_code
}

fn commit(
    c: &mut Client,
    group: &str,
    member: &str,
    generation: i32,
    offsets: &[(i32, i64)],
) -> Vec<i16> {
    let mut t = OffsetCommitRequestTopic::default();
    t.name = TopicName(s("t"));
    t.partitions = offsets
        .iter()
        .map(|(p, o)| {
            let mut e = OffsetCommitRequestPartition::default();
            e.partition_index = *p;
            e.committed_offset = *o;
            e.committed_leader_epoch = 3;
            e.committed_metadata = Some(s("meta"));
            e
        })
        .collect();
    let mut r = OffsetCommitRequest::default();
    r.group_id = GroupId(s(group));
    r.generation_id_or_member_epoch = generation;
    r.member_id = s(member);
    r.topics = vec![t];
    let resp: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &r);
    resp.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect()
}

/// OffsetFetch v7 of topic `t` partitions 0..3: (group error, [(offset, leader epoch)]).
fn fetch(c: &mut Client, group: &str) -> (i16, Vec<(i64, i32)>) {
    let mut t = OffsetFetchRequestTopic::default();
    t.name = TopicName(s("t"));
    t.partition_indexes = vec![0, 1, 2];
    let mut r = OffsetFetchRequest::default();
    r.group_id = GroupId(s(group));
    r.topics = Some(vec![t]);
    let resp: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 7, &r);
    let got = resp
        .topics
        .first()
        .map(|t| {
            t.partitions
                .iter()
                .map(|p| (p.committed_offset, p.committed_leader_epoch))
                .collect()
        })
        .unwrap_or_default();
    (resp.error_code, got)
}

fn describe(c: &mut Client, group: &str) -> i16 {
    let mut r = DescribeGroupsRequest::default();
    r.groups = vec![GroupId(s(group))];
    let resp: DescribeGroupsResponse = c.call(ApiKey::DescribeGroups, 5, &r);
    resp.groups[0].error_code
}

/// Waits until `node` has loaded the group's partition (JoinGroup no longer answers 14).
fn wait_loaded(cl: &Cluster, node: i32, group: &str) {
    eventually(Duration::from_secs(5), || {
        let (e, _) = fetch(&mut cl.client(node), group);
        (e != LOAD_IN_PROGRESS).then_some(())
    });
}

/// The log end of an offsets partition on `node` (0 when it holds no copy).
fn log_end(cl: &Cluster, node: i32, partition: i32) -> i64 {
    cl.node(node)
        .state()
        .topics
        .partition(OFFSETS_TOPIC, partition)
        .map_or(0, |p| p.log_end_offset())
}

#[test]
fn find_coordinator_names_the_offsets_leader_and_other_nodes_refuse() {
    let cl = Cluster::start(3);
    let (e, node) = find(&mut cl.client(2), "g1");
    assert_eq!(e, 0);
    // The topic was created on first use: 5 partitions, RF 3, min.insync.replicas 2.
    let meta = cl.node(3).state().cluster.as_ref().unwrap().current();
    let t = &meta.topics[OFFSETS_TOPIC];
    assert_eq!(t.partitions.len(), 5);
    assert_eq!(t.partitions[0].replicas.len(), 3);
    assert_eq!(t.min_insync_replicas, 2);
    let (_, leader) = offsets_leader(&cl, "g1");
    assert_eq!(node, leader);
    for id in 1..=3 {
        assert_eq!(find(&mut cl.client(id), "g1"), (0, leader), "node {id}");
    }
    // Batched (v4) keys land on their own partitions' leaders.
    let groups = ["a", "b", "c", "d", "e", "f"];
    let found = find_batched(&mut cl.client(1), &groups);
    for (g, (e, n)) in groups.iter().zip(found) {
        assert_eq!((e, n), (0, offsets_leader(&cl, g).1), "group {g}");
    }
    let other = (1..=3).find(|i| *i != leader).unwrap();
    let mut c = cl.client(other);
    assert_eq!(join(&mut c, "g1", "").error_code, NOT_COORDINATOR);
    assert_eq!(heartbeat(&mut c, "g1", "m", 1), NOT_COORDINATOR);
    assert_eq!(
        commit(&mut c, "g1", "", -1, &[(0, 5)]),
        vec![NOT_COORDINATOR]
    );
    assert_eq!(fetch(&mut c, "g1").0, NOT_COORDINATOR);
    assert_eq!(describe(&mut c, "g1"), NOT_COORDINATOR);
    wait_loaded(&cl, leader, "g1");
    let mut c = cl.client(leader);
    assert_eq!(commit(&mut c, "g1", "", -1, &[(0, 5)]), vec![0]);
    assert_eq!(fetch(&mut c, "g1"), (0, vec![(5, 3), (-1, -1), (-1, -1)]));
}

#[test]
fn committed_offsets_survive_the_coordinators_fencing() {
    let cl = Cluster::start(3);
    let group = "survivor";
    let (_, old) = find(&mut cl.client(1), group);
    wait_loaded(&cl, old, group);
    let mut c = cl.client(old);
    let (member, generation) = join_and_sync(&mut c, group);
    assert_eq!(
        commit(&mut c, group, &member, generation, &[(0, 10), (1, 20)]),
        vec![0, 0]
    );
    assert_eq!(
        commit(&mut c, group, &member, generation, &[(0, 11)]),
        vec![0]
    );
    assert_eq!(fetch(&mut c, group).1, vec![(11, 3), (20, 3), (-1, -1)]);
    // The commits are records of the group's partition (one per committed partition), and
    // a commit is answered only once every ISR member holds it (acks=all).
    let (p, _) = offsets_leader(&cl, group);
    for id in 1..=3 {
        assert_eq!(log_end(&cl, id, p), 3, "node {id}");
    }

    cl.controller.apply(&Command::FenceBroker {
        id: old,
        epoch: cl.broker_epoch(old),
    });
    let (_, new) = offsets_leader(&cl, group);
    assert_ne!(new, old);
    for id in (1..=3).filter(|i| *i != old) {
        assert_eq!(find(&mut cl.client(id), group), (0, new), "node {id}");
    }
    wait_loaded(&cl, new, group);
    assert_eq!(
        fetch(&mut cl.client(new), group),
        (0, vec![(11, 3), (20, 3), (-1, -1)])
    );
    // The old coordinator dropped the group: its member must find the new one and rejoin.
    assert_eq!(
        heartbeat(&mut c, group, &member, generation),
        NOT_COORDINATOR
    );
    assert_eq!(fetch(&mut c, group).0, NOT_COORDINATOR);
    let mut n = cl.client(new);
    assert_eq!(
        heartbeat(&mut n, group, &member, generation),
        25,
        "UNKNOWN_MEMBER_ID: rejoin"
    );
}

#[test]
fn a_deleted_topics_offsets_are_tombstoned_and_stay_gone_after_failover() {
    let cl = Cluster::start(3);
    cl.controller.apply(&Command::CreateTopic {
        name: "t".into(),
        partitions: 3,
        replication_factor: 3,
        min_insync_replicas: 1,
        configs: Default::default(),
    });
    let group = "deleter";
    let (_, old) = find(&mut cl.client(1), group);
    wait_loaded(&cl, old, group);
    let mut c = cl.client(old);
    assert_eq!(commit(&mut c, group, "", -1, &[(0, 4), (2, 6)]), vec![0, 0]);
    let (p, _) = offsets_leader(&cl, group);
    assert_eq!(log_end(&cl, old, p), 2);
    cl.controller
        .apply(&Command::DeleteTopic { name: "t".into() });
    eventually(Duration::from_secs(5), || {
        (fetch(&mut c, group).1 == vec![(-1, -1); 3]).then_some(())
    });
    // The tombstones are replicated records: the next leader rebuilds without the offsets.
    eventually(Duration::from_secs(5), || {
        (1..=3).all(|id| log_end(&cl, id, p) == 4).then_some(())
    });
    cl.controller.apply(&Command::FenceBroker {
        id: old,
        epoch: cl.broker_epoch(old),
    });
    let (_, new) = offsets_leader(&cl, group);
    wait_loaded(&cl, new, group);
    assert_eq!(fetch(&mut cl.client(new), group), (0, vec![(-1, -1); 3]));
}
