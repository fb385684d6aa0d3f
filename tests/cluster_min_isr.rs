//! min.insync.replicas on a bundled cluster of separate node processes: with both followers of
//! a partition stopped (SIGSTOP), acks=all produces get NOT_ENOUGH_REPLICAS (19) while acks=1
//! ones succeed; after SIGCONT the followers catch up, rejoin the ISR, and every acknowledged
//! record is read back.
//!
//! Five nodes, so that the metadata quorum keeps its majority with two nodes stopped: on three
//! nodes (every node a voter) two stopped nodes take the quorum with them, the ISR cannot
//! shrink, and acks=all times out instead (REQUEST_TIMED_OUT).

mod broker_support;
mod cluster_support;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cluster_support::{request, Cluster};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use rustix::process::Signal;

/// One Produce v8 of `n` records to `topic/0` at `addr`; the partition's error code.
fn produce_raw(addr: &str, topic: &str, acks: i16, prefix: &str, n: usize) -> i16 {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: 0,
            key: None,
            value: Some(Bytes::from(format!("{prefix}-{i:06}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode");
    let mut pd = PartitionProduceData::default();
    pd.index = 0;
    pd.records = Some(buf.freeze());
    let mut td = TopicProduceData::default();
    td.name = TopicName(StrBytes::from_string(topic.to_string()));
    td.partition_data = vec![pd];
    let mut req = ProduceRequest::default();
    req.acks = acks;
    req.timeout_ms = 5_000;
    req.topic_data = vec![td];
    let mut body = request(addr, ApiKey::Produce, 8, &req).expect("the leader answers");
    let resp = ProduceResponse::decode(&mut body, 8).expect("a Produce response");
    resp.responses[0].partition_responses[0].error_code
}

#[test]
fn with_both_followers_stopped_acks_all_is_refused_and_acks_1_is_kept() {
    let cluster = Cluster::start(5, &["--min-insync-replicas", "2"]);
    let topic = "min-isr";
    let first = broker_support::values("first", 200);
    let (ok, failed) =
        broker_support::produce(&cluster.bootstrap, topic, &first, &[("acks", "all")]);
    assert_eq!((ok, failed), (200, 0), "{}", cluster.logs());
    let p = cluster.wait_for(topic, 0, Duration::from_secs(10), "RF 3 in sync", |p| {
        p.isr.len() == 3
    });
    let followers: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| *r != p.leader)
        .collect();
    for f in &followers {
        cluster.signal(*f, Signal::STOP);
    }
    // Fenced after the 2 s session: the ISR shrinks to the leader alone.
    cluster.wait_for(
        topic,
        0,
        Duration::from_secs(20),
        "the ISR shrinks to the leader",
        |s| s.isr == vec![p.leader],
    );
    let leader = cluster.addr(p.leader);
    assert_eq!(
        produce_raw(&leader, topic, -1, "all", 10),
        19,
        "acks=all below min ISR: NOT_ENOUGH_REPLICAS"
    );
    assert_eq!(
        produce_raw(&leader, topic, 1, "one", 100),
        0,
        "acks=1 is kept by the leader alone"
    );
    for f in &followers {
        cluster.signal(*f, Signal::CONT);
    }
    cluster.wait_for(
        topic,
        0,
        Duration::from_secs(30),
        "the followers rejoin the ISR",
        |s| s.isr.len() == 3,
    );
    let mut want = first.clone();
    want.extend((0..100).map(|i| format!("one-{i:06}")));
    let seen = broker_support::consume(
        &cluster.bootstrap,
        topic,
        "g-min-isr",
        want.len(),
        Duration::from_secs(30),
        &[],
    );
    broker_support::assert_exactly_once(&want, &seen);
}
