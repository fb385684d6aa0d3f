//! Bad input never crashes the broker: unknown keys/versions, malformed and oversized frames,
//! corrupt batches, clients vanishing mid-request, the connection limit. Also the wire rules
//! clients depend on: in-order pipelined responses, no response to acks=0, the ApiVersions
//! fallback, and the metrics endpoint.

mod broker_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use broker_support::*;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

fn connect(boot: &str) -> TcpStream {
    let s = TcpStream::connect(boot).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

fn frame<M: Encodable>(key: ApiKey, version: i16, corr: i32, body: &M) -> Vec<u8> {
    let mut header = RequestHeader::default();
    header.request_api_key = key as i16;
    header.request_api_version = version;
    header.correlation_id = corr;
    header.client_id = Some(StrBytes::from_static_str("robustness"));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, key.request_header_version(version))
        .expect("header");
    body.encode(&mut buf, version).expect("body");
    let n = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&n.to_be_bytes());
    buf.to_vec()
}

/// Reads one response frame; `None` if the broker closed the connection.
fn read_frame(s: &mut TcpStream) -> Option<Bytes> {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut body).ok()?;
    Some(Bytes::from(body))
}

fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

fn api_versions_ok(boot: &str) {
    let mut s = connect(boot);
    s.write_all(&frame(
        ApiKey::ApiVersions,
        3,
        1,
        &ApiVersionsRequest::default(),
    ))
    .expect("write");
    let mut f = read_frame(&mut s).expect("ApiVersions answered");
    assert_eq!(&f[0..4], &1i32.to_be_bytes());
    let _ = f.split_to(4); // header v0: correlation id only
    let r = ApiVersionsResponse::decode(&mut f, 3).expect("decodes");
    assert_eq!(r.error_code, 0);
}

#[test]
fn unknown_keys_unsupported_versions_and_garbage_close_the_connection_only() {
    let b = start();
    let boot = b.bootstrap_servers();
    for bad in [
        vec![0, 0, 0, 8, 0x7f, 0x7f, 0, 0, 0, 0, 0, 1], // unknown api key
        vec![0, 0, 0, 8, 0, 1, 0, 99, 0, 0, 0, 1],      // Fetch v99
        vec![0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 1],       // Produce v1 (advertised, not served)
        vec![0, 0, 0, 3, 1, 2, 3],                      // shorter than a header
        vec![0x7f, 0xff, 0xff, 0xff],                   // oversized size prefix
        vec![0xff, 0xff, 0xff, 0xf0],                   // negative size
        vec![0, 0, 0, 12, 0, 0, 0, 9, 0, 0, 0, 1, 0, 2, 0x41, 0x41], // Produce v9, truncated body
        // Produce v3 claiming 2^31-16 topics in a 20-byte body (a ~200 GB Vec::with_capacity).
        vec![
            0, 0, 0, 22, 0, 0, 0, 3, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 1, 0, 0, 3, 0xe8, 0x7f,
            0xff, 0xff, 0xf0,
        ],
        // Produce v9 (flexible) claiming 2^32-2 topics.
        vec![
            0, 0, 0, 23, 0, 0, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 3, 0xe8, 0xff, 0xff,
            0xff, 0xff, 0x0f,
        ],
    ] {
        let mut s = connect(&boot);
        s.write_all(&bad).expect("write");
        assert!(closed(&mut s), "connection closed after {bad:?}");
        api_versions_ok(&boot);
    }
}

#[test]
fn api_versions_at_an_unknown_version_answers_v0_with_unsupported_version() {
    let b = start();
    let mut s = connect(&b.bootstrap_servers());
    // ApiVersions v7 with a body we do not parse.
    s.write_all(&[0, 0, 0, 12, 0, 18, 0, 7, 0, 0, 0, 5, 0xde, 0xad, 0xbe, 0xef])
        .expect("write");
    let mut f = read_frame(&mut s).expect("answered");
    assert_eq!(&f[0..4], &5i32.to_be_bytes());
    let _ = f.split_to(4);
    let r = ApiVersionsResponse::decode(&mut f, 0).expect("v0 body");
    assert_eq!(r.error_code, 35);
    assert!(r
        .api_keys
        .iter()
        .any(|k| k.api_key == 18 && k.max_version == 4));
}

#[test]
fn a_client_vanishing_mid_request_does_not_hurt() {
    let b = start();
    let boot = b.bootstrap_servers();
    for _ in 0..20 {
        let mut s = connect(&boot);
        s.write_all(&[0, 0, 1, 0, 0, 3, 0, 9, 0, 0]).expect("write");
        drop(s);
    }
    api_versions_ok(&boot);
}

fn produce_request(topic: &str, acks: i16, records: Vec<u8>) -> ProduceRequest {
    let mut pd = PartitionProduceData::default();
    pd.index = 0;
    pd.records = Some(Bytes::from(records));
    let mut td = TopicProduceData::default();
    td.name = TopicName(StrBytes::from_string(topic.to_string()));
    td.partition_data = vec![pd];
    let mut r = ProduceRequest::default();
    r.acks = acks;
    r.timeout_ms = 5000;
    r.topic_data = vec![td];
    r
}

fn create_topic(s: &mut TcpStream, topic: &str) {
    let mut t = create_topics_request::CreatableTopic::default();
    t.name = TopicName(StrBytes::from_string(topic.to_string()));
    t.num_partitions = 1;
    t.replication_factor = 1;
    let mut r = CreateTopicsRequest::default();
    r.topics = vec![t];
    s.write_all(&frame(ApiKey::CreateTopics, 4, 100, &r))
        .expect("write");
    read_frame(s).expect("created");
}

#[test]
fn corrupt_batches_get_corrupt_message_and_acks_zero_gets_no_response() {
    let b = start();
    let mut s = connect(&b.bootstrap_servers());
    create_topic(&mut s, "robust");
    let mut batch = kbench_broker::protocol::batch::build_test_batch(&[b"hello"], None);
    let n = batch.len();
    batch[n - 2] ^= 0x55;
    s.write_all(&frame(
        ApiKey::Produce,
        9,
        2,
        &produce_request("robust", 1, batch),
    ))
    .expect("write");
    let mut f = read_frame(&mut s).expect("answered");
    let _ = f.split_to(5); // header v1
    let r = ProduceResponse::decode(&mut f, 9).expect("decodes");
    assert_eq!(
        r.responses[0].partition_responses[0].error_code, 2,
        "CORRUPT_MESSAGE"
    );

    // acks=0 then ApiVersions, pipelined: the first response must be ApiVersions'.
    let good = kbench_broker::protocol::batch::build_test_batch(&[b"ok"], None);
    let mut both = frame(ApiKey::Produce, 9, 3, &produce_request("robust", 0, good));
    both.extend(frame(
        ApiKey::ApiVersions,
        3,
        4,
        &ApiVersionsRequest::default(),
    ));
    s.write_all(&both).expect("write");
    let f = read_frame(&mut s).expect("answered");
    assert_eq!(&f[0..4], &4i32.to_be_bytes(), "no response to acks=0");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let b = start();
    let mut s = connect(&b.bootstrap_servers());
    let mut all = Vec::new();
    for corr in 10..40 {
        if corr % 2 == 0 {
            all.extend(frame(
                ApiKey::ApiVersions,
                3,
                corr,
                &ApiVersionsRequest::default(),
            ));
        } else {
            all.extend(frame(
                ApiKey::Metadata,
                12,
                corr,
                &MetadataRequest::default(),
            ));
        }
    }
    s.write_all(&all).expect("write");
    for corr in 10i32..40 {
        let f = read_frame(&mut s).expect("answered");
        assert_eq!(&f[0..4], &corr.to_be_bytes());
    }
}

fn api_versions_round_trip(s: &mut TcpStream, corr: i32) -> bool {
    s.write_all(&frame(
        ApiKey::ApiVersions,
        3,
        corr,
        &ApiVersionsRequest::default(),
    ))
    .is_ok()
        && read_frame(s).is_some()
}

#[test]
fn a_full_connection_table_makes_room_by_closing_a_half_open_connection_first() {
    let b = start_with(|c| c.max_connections = 2);
    let boot = b.bootstrap_servers();
    let mut served = connect(&boot);
    assert!(api_versions_round_trip(&mut served, 1));
    // Half-open: two bytes of a size prefix, then nothing.
    let mut half_open = connect(&boot);
    half_open.write_all(&[0, 0]).expect("write");
    std::thread::sleep(Duration::from_millis(100));
    // The newcomer is served instead of refused ...
    let mut newcomer = connect(&boot);
    assert!(api_versions_round_trip(&mut newcomer, 2), "newcomer served");
    // ... in the place of the connection that never completed a request.
    assert!(closed(&mut half_open), "half-open connection evicted");
    assert!(
        api_versions_round_trip(&mut served, 3),
        "active client kept"
    );
}

#[test]
fn among_served_connections_the_longest_idle_gives_way() {
    let b = start_with(|c| c.max_connections = 2);
    let boot = b.bootstrap_servers();
    let mut older = connect(&boot);
    assert!(api_versions_round_trip(&mut older, 1));
    std::thread::sleep(Duration::from_millis(50));
    let mut recent = connect(&boot);
    assert!(api_versions_round_trip(&mut recent, 2));
    let mut newcomer = connect(&boot);
    assert!(api_versions_round_trip(&mut newcomer, 3));
    assert!(closed(&mut older), "longest-idle connection closed");
    assert!(api_versions_round_trip(&mut recent, 4));
}

#[test]
fn a_request_that_does_not_arrive_whole_in_time_closes_its_connection() {
    let b = start_with(|c| c.request_arrival_timeout_ms = 300);
    let boot = b.bootstrap_servers();
    let mut slow = connect(&boot);
    // A size prefix for 100 bytes, then 10 of them.
    slow.write_all(&100i32.to_be_bytes()).expect("write");
    slow.write_all(&[0u8; 10]).expect("write");
    let t = std::time::Instant::now();
    assert!(closed(&mut slow), "slow sender closed");
    assert!(t.elapsed() < Duration::from_secs(5));
    api_versions_ok(&boot);
}

#[test]
fn connections_without_a_request_close_after_connections_max_idle_ms() {
    let b = start_with(|c| c.connections_max_idle_ms = 300);
    let boot = b.bootstrap_servers();
    let mut idle = connect(&boot);
    assert!(api_versions_round_trip(&mut idle, 1));
    let t = std::time::Instant::now();
    assert!(closed(&mut idle), "idle connection closed");
    assert!(t.elapsed() >= Duration::from_millis(250));
    // A client that keeps talking stays connected past the idle limit.
    let mut busy = connect(&boot);
    for corr in 0..8 {
        assert!(api_versions_round_trip(&mut busy, corr));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn oversized_requests_close_the_connection() {
    let b = start_with(|c| c.max_request_bytes = 1024);
    let boot = b.bootstrap_servers();
    let mut s = connect(&boot);
    let big = kbench_broker::protocol::batch::build_test_batch(&[&[0u8; 4096]], None);
    let _ = s.write_all(&frame(
        ApiKey::Produce,
        9,
        1,
        &produce_request("big", 1, big),
    ));
    assert!(closed(&mut s));
    api_versions_ok(&boot);
}

#[test]
fn the_metrics_endpoint_serves_prometheus_text() {
    let b = start_with(|c| c.metrics_listen = Some("127.0.0.1:0".parse().expect("addr")));
    let boot = b.bootstrap_servers();
    let vals = values("m", 50);
    assert_eq!(produce(&boot, "metered", &vals, &[]), (50, 0));
    let addr = b.metrics_addr().expect("metrics address");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    for name in [
        "kbroker_messages_in_total{topic=\"metered\"} 50",
        "kbroker_requests_total{request=\"Produce\"}",
        "kbroker_request_duration_seconds_bucket",
        "kbroker_partition_log_end_offset{topic=\"metered\",partition=\"0\"} 50",
        "kbroker_connections",
        "kbroker_disk_bytes",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
}
