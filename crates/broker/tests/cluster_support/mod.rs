//! Shared by the cluster tests: a 3-node in-process cluster on one `LocalController`, and a
//! blocking Kafka-protocol client that sends one typed request and decodes its response, so
//! the tests can check exact fields.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kbench_broker::cluster::local::{start_nodes, LocalController};
use kbench_broker::{BrokerConfig, EmbeddedBroker};

pub struct Cluster {
    pub controller: Arc<LocalController>,
    pub nodes: Vec<EmbeddedBroker>,
}

impl Cluster {
    pub fn start(n: i32) -> Cluster {
        let (controller, nodes) = start_nodes(n, BrokerConfig::embedded()).expect("cluster");
        Cluster { controller, nodes }
    }

    /// The node with id `id` (ids are 1..=n).
    pub fn node(&self, id: i32) -> &EmbeddedBroker {
        &self.nodes[(id - 1) as usize]
    }

    pub fn client(&self, id: i32) -> Client {
        Client::connect(&self.node(id).bootstrap_servers())
    }

    pub fn broker_epoch(&self, id: i32) -> i64 {
        let meta = self.node(1).state().cluster.as_ref().unwrap().current();
        meta.brokers[&id].epoch
    }
}

pub struct Client {
    stream: TcpStream,
    correlation: i32,
}

impl Client {
    pub fn connect(addr: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        Client {
            stream,
            correlation: 0,
        }
    }

    /// Sends `body` as `key` at `version` and decodes the response as `R`.
    pub fn call<Q: Encodable, R: Decodable>(&mut self, key: ApiKey, version: i16, body: &Q) -> R {
        self.correlation += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = self.correlation;
        header.client_id = Some(StrBytes::from_static_str("cluster-test"));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, key.request_header_version(version))
            .expect("header");
        body.encode(&mut buf, version).expect("body");
        let n = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&n.to_be_bytes());
        self.stream.write_all(&buf).expect("write");
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).expect("response size");
        let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut frame).expect("response");
        let mut frame = Bytes::from(frame);
        let h = ResponseHeader::decode(&mut frame, key.response_header_version(version))
            .expect("response header");
        assert_eq!(h.correlation_id, self.correlation);
        R::decode(&mut frame, version).expect("response body")
    }
}

/// Polls `f` until it returns `Some`, at most `limit`.
pub fn eventually<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
