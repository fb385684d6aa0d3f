//! The transaction coordinator on a 3-node in-process cluster, at the protocol level: the
//! coordinator of a transactional id is the leader of its `__transaction_state` partition
//! (other nodes answer NOT_COORDINATOR), its state is a replicated record of that
//! partition, and EndTxn's markers are written by each partition's leader
//! (WriteTxnMarkers), which moves the last stable offset on every node.

mod cluster_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cluster_support::*;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kbench_broker::cluster::coordinator::{partition_for, TRANSACTION_TOPIC};
use kbench_broker::cluster::{Command, Reply};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const NOT_COORDINATOR: i16 = 16;
const TOPIC: &str = "tx";
const W: Duration = Duration::from_secs(15);

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// `TOPIC` with 3 partitions of RF 3 led by three different nodes.
fn cluster() -> Cluster {
    let cl = Cluster::start(3);
    let reply = cl.controller.apply(&Command::CreateTopic {
        name: TOPIC.into(),
        partitions: 3,
        replication_factor: 3,
        min_insync_replicas: 2,
        configs: BTreeMap::new(),
    });
    assert_eq!(reply, Reply::Ok);
    let leaders: BTreeSet<i32> = (0..3).map(|p| leader(&cl, TOPIC, p)).collect();
    assert_eq!(leaders.len(), 3);
    cl
}

fn leader(cl: &Cluster, topic: &str, p: i32) -> i32 {
    let meta = cl.node(1).state().cluster.as_ref().unwrap().current();
    meta.partition(topic, p).unwrap().leader
}

/// FindCoordinator for a transactional id (creates `__transaction_state`): the node id.
fn coordinator(cl: &Cluster, tid: &str) -> i32 {
    let mut r = FindCoordinatorRequest::default();
    r.key = s(tid);
    r.key_type = 1;
    eventually(W, || {
        let resp: FindCoordinatorResponse = cl.client(1).call(ApiKey::FindCoordinator, 3, &r);
        (resp.error_code == 0).then_some(resp.node_id.0)
    })
}

/// InitProducerId at `node` until it is not COORDINATOR_LOAD_IN_PROGRESS: (error, pid, epoch).
fn init(cl: &Cluster, node: i32, tid: &str) -> (i16, i64, i16) {
    let mut r = InitProducerIdRequest::default();
    r.transactional_id = Some(TransactionalId(s(tid)));
    r.transaction_timeout_ms = 60_000;
    r.producer_id = ProducerId(-1);
    r.producer_epoch = -1;
    eventually(W, || {
        let resp: InitProducerIdResponse = cl.client(node).call(ApiKey::InitProducerId, 4, &r);
        (resp.error_code != 14).then_some((
            resp.error_code,
            resp.producer_id.0,
            resp.producer_epoch,
        ))
    })
}

fn add_partitions(cl: &Cluster, node: i32, tid: &str, pid: i64, epoch: i16) -> Vec<i16> {
    add_partitions_of(cl, node, tid, (pid, epoch), TOPIC, &[0, 1, 2])
}

fn add_partitions_of(
    cl: &Cluster,
    node: i32,
    tid: &str,
    (pid, epoch): (i64, i16),
    topic: &str,
    partitions: &[i32],
) -> Vec<i16> {
    let mut r = AddPartitionsToTxnRequest::default();
    r.v3_and_below_transactional_id = TransactionalId(s(tid));
    r.v3_and_below_producer_id = ProducerId(pid);
    r.v3_and_below_producer_epoch = epoch;
    let mut t = AddPartitionsToTxnTopic::default();
    t.name = TopicName(s(topic));
    t.partitions = partitions.to_vec();
    r.v3_and_below_topics.push(t);
    let resp: AddPartitionsToTxnResponse = cl.client(node).call(ApiKey::AddPartitionsToTxn, 3, &r);
    resp.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
        })
        .collect()
}

fn end_txn(cl: &Cluster, node: i32, tid: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
    let mut r = EndTxnRequest::default();
    r.transactional_id = TransactionalId(s(tid));
    r.producer_id = ProducerId(pid);
    r.producer_epoch = epoch;
    r.committed = commit;
    let resp: EndTxnResponse = cl.client(node).call(ApiKey::EndTxn, 3, &r);
    resp.error_code
}

/// The answers of a node whose data path has not yet caught up with new metadata.
fn settling(code: i16) -> bool {
    code == NOT_LEADER_OR_FOLLOWER || code == UNKNOWN_TOPIC_OR_PARTITION
}

/// One transactional record, produced acks=all to partition `p` at its leader.
fn produce_txn(cl: &Cluster, p: i32, pid: i64, epoch: i16) -> i16 {
    produce_txn_to(cl, TOPIC, p, pid, epoch)
}

fn produce_txn_to(cl: &Cluster, topic: &str, p: i32, pid: i64, epoch: i16) -> i16 {
    let rec = Record {
        transactional: true,
        control: false,
        partition_leader_epoch: -1,
        producer_id: pid,
        producer_epoch: epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: 0,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(Bytes::from_static(b"v")),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, [rec].iter(), &opts).unwrap();
    let mut pd = PartitionProduceData::default();
    pd.index = p;
    pd.records = Some(buf.freeze());
    let mut td = TopicProduceData::default();
    td.name = TopicName(s(topic));
    td.partition_data.push(pd);
    let mut r = ProduceRequest::default();
    r.transactional_id = None;
    r.acks = -1;
    r.timeout_ms = 10_000;
    r.topic_data.push(td);
    // Retried while the leader's data path is still taking the lead.
    eventually(W, || {
        let resp: ProduceResponse = cl.client(leader(cl, topic, p)).call(ApiKey::Produce, 9, &r);
        Some(resp.responses[0].partition_responses[0].error_code).filter(|c| !settling(*c))
    })
}

#[test]
fn only_the_coordinator_serves_a_transactional_id_and_its_state_reaches_every_replica() {
    let cl = cluster();
    let tid = "tx-owner";
    let coord = coordinator(&cl, tid);
    let (e, pid, epoch) = init(&cl, coord, tid);
    assert_eq!(e, 0);
    let other = (1..=3).find(|n| *n != coord).unwrap();
    assert_eq!(
        add_partitions(&cl, other, tid, pid, epoch),
        vec![NOT_COORDINATOR; 3],
        "another node does not know the id"
    );
    assert_eq!(end_txn(&cl, other, tid, pid, epoch, true), NOT_COORDINATOR);
    assert_eq!(add_partitions(&cl, coord, tid, pid, epoch), vec![0; 3]);
    // Both state changes are records of the id's partition, on all three replicas.
    let meta = cl.node(1).state().cluster.as_ref().unwrap().current();
    let p = partition_for(tid, meta.topics[TRANSACTION_TOPIC].partitions.len());
    for id in 1..=3 {
        eventually(W, || {
            let part = cl.node(id).state().topics.partition(TRANSACTION_TOPIC, p)?;
            (part.log_end_offset() >= 2).then_some(())
        });
    }
}

#[test]
fn end_txn_writes_each_marker_at_its_partitions_leader_and_moves_the_stable_offset() {
    let cl = cluster();
    let tid = "tx-markers";
    let coord = coordinator(&cl, tid);
    let (e, pid, epoch) = init(&cl, coord, tid);
    assert_eq!(e, 0);
    assert_eq!(add_partitions(&cl, coord, tid, pid, epoch), vec![0; 3]);
    for p in 0..3 {
        assert_eq!(produce_txn(&cl, p, pid, epoch), 0, "partition {p}");
        let part = cl
            .node(leader(&cl, TOPIC, p))
            .state()
            .topics
            .partition(TOPIC, p)
            .unwrap();
        assert_eq!(part.last_stable_offset(), 0, "held by the open transaction");
    }
    assert_eq!(end_txn(&cl, coord, tid, pid, epoch, true), 0);
    for p in 0..3 {
        // Record at 0, COMMIT marker at 1, replicated before EndTxn was answered.
        let part = cl
            .node(leader(&cl, TOPIC, p))
            .state()
            .topics
            .partition(TOPIC, p)
            .unwrap();
        assert_eq!(part.high_watermark(), 2, "partition {p}");
        assert_eq!(part.last_stable_offset(), 2, "partition {p}");
        for id in 1..=3 {
            eventually(W, || {
                let part = cl.node(id).state().topics.partition(TOPIC, p)?;
                (part.log_end_offset() == 2).then_some(())
            });
        }
    }
}

fn marker_request(pid: i64) -> WriteTxnMarkersRequest {
    let mut t = WritableTxnMarkerTopic::default();
    t.name = TopicName(s(TOPIC));
    t.partition_indexes = vec![0];
    let mut m = WritableTxnMarker::default();
    m.producer_id = ProducerId(pid);
    m.producer_epoch = 0;
    m.transaction_result = false;
    m.coordinator_epoch = 0;
    m.topics.push(t);
    let mut r = WriteTxnMarkersRequest::default();
    r.markers.push(m);
    r
}

fn marker_code(resp: &WriteTxnMarkersResponse) -> i16 {
    resp.markers[0].topics[0].partitions[0].error_code
}

#[test]
fn write_txn_markers_is_written_by_the_leader_and_refused_by_a_follower() {
    let cl = cluster();
    let l = leader(&cl, TOPIC, 0);
    let f = (1..=3).find(|n| *n != l).unwrap();
    let req = marker_request(4242);
    let call = |node| {
        let resp: WriteTxnMarkersResponse = cl.client(node).call(ApiKey::WriteTxnMarkers, 1, &req);
        marker_code(&resp)
    };
    // The leader's data path opens the partition and takes the lead a moment after the
    // metadata names it.
    let code = eventually(W, || Some(call(l)).filter(|c| !settling(*c)));
    assert_eq!(code, 0);
    assert_eq!(call(f), NOT_LEADER_OR_FOLLOWER);
    let part = cl.node(l).state().topics.partition(TOPIC, 0).unwrap();
    assert_eq!(part.high_watermark(), 1, "answered once replicated");
}

/// The coordinator of a transactional id from the metadata (no request).
fn coordinator_of(cl: &Cluster, tid: &str) -> i32 {
    let meta = cl.node(1).state().cluster.as_ref().unwrap().current();
    let t = &meta.topics[TRANSACTION_TOPIC];
    t.partitions[partition_for(tid, t.partitions.len()) as usize].leader
}

#[test]
fn a_new_coordinator_finishes_a_commit_whose_markers_the_old_one_could_not_write() {
    let cl = cluster();
    let solo = "solo";
    let reply = cl.controller.apply(&Command::CreateTopic {
        name: solo.into(),
        partitions: 1,
        replication_factor: 1,
        min_insync_replicas: 1,
        configs: BTreeMap::new(),
    });
    assert_eq!(reply, Reply::Ok);
    let x = leader(&cl, solo, 0);
    coordinator(&cl, "tx-any"); // creates __transaction_state
    let tid = (0..)
        .map(|i| format!("tx-resume-{i}"))
        .find(|t| coordinator_of(&cl, t) != x)
        .unwrap();
    let c = coordinator(&cl, &tid);
    let y = (1..=3).find(|n| *n != c && *n != x).unwrap();
    let (e, pid, epoch) = init(&cl, c, &tid);
    assert_eq!(e, 0);
    assert_eq!(
        add_partitions_of(&cl, c, &tid, (pid, epoch), solo, &[0]),
        vec![0]
    );
    assert_eq!(produce_txn_to(&cl, solo, 0, pid, epoch), 0);

    // The only replica of `solo` goes: its marker cannot be written, the commit stays
    // PrepareCommit (logged) and the client is told to retry.
    let x_epoch = cl.broker_epoch(x);
    cl.controller.apply(&Command::FenceBroker {
        id: x,
        epoch: x_epoch,
    });
    assert_eq!(
        end_txn(&cl, c, &tid, pid, epoch, true),
        51,
        "CONCURRENT_TRANSACTIONS"
    );

    // Then the coordinator goes, and `solo`'s replica comes back.
    cl.controller.apply(&Command::FenceBroker {
        id: c,
        epoch: cl.broker_epoch(c),
    });
    assert_eq!(coordinator_of(&cl, &tid), y);
    cl.controller.apply(&Command::UnfenceBroker {
        id: x,
        epoch: x_epoch,
    });

    // The new coordinator found PrepareCommit in the log and wrote the marker itself.
    let part = cl.node(x).state().topics.partition(solo, 0).unwrap();
    eventually(Duration::from_secs(30), || {
        (part.last_stable_offset() == 2).then_some(())
    });
    let code = eventually(Duration::from_secs(30), || {
        Some(end_txn(&cl, y, &tid, pid, epoch, true)).filter(|c| *c == 0)
    });
    assert_eq!(code, 0, "the retried EndTxn is answered: committed");
}
