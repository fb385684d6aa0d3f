//! A deterministic mutation smoke test of the request path (the real fuzzing is `fuzz/`):
//! valid frames of every served API, bit-flipped, truncated and length-corrupted, must never
//! panic or abort the broker's decoders and handlers.

use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kbench_broker::fuzzing::Harness;
use kbench_broker::protocol::ADVERTISED;

fn seed<M: Encodable + Default>(key: ApiKey, version: i16) -> Vec<u8> {
    let mut h = RequestHeader::default();
    h.request_api_key = key as i16;
    h.request_api_version = version;
    h.correlation_id = 7;
    h.client_id = Some(StrBytes::from_static_str("fuzz"));
    let mut buf = bytes::BytesMut::new();
    let _ = h.encode(&mut buf, key.request_header_version(version));
    let _ = M::default().encode(&mut buf, version);
    buf.to_vec()
}

fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for row in ADVERTISED {
        for v in row.min.max(if row.key == ApiKey::Produce { 3 } else { 0 })..=row.max {
            let s = match row.key {
                ApiKey::Produce => seed::<ProduceRequest>(row.key, v),
                ApiKey::Fetch => seed::<FetchRequest>(row.key, v),
                ApiKey::ListOffsets => seed::<ListOffsetsRequest>(row.key, v),
                ApiKey::Metadata => seed::<MetadataRequest>(row.key, v),
                ApiKey::OffsetCommit => seed::<OffsetCommitRequest>(row.key, v),
                ApiKey::OffsetFetch => seed::<OffsetFetchRequest>(row.key, v),
                ApiKey::FindCoordinator => seed::<FindCoordinatorRequest>(row.key, v),
                ApiKey::JoinGroup => seed::<JoinGroupRequest>(row.key, v),
                ApiKey::Heartbeat => seed::<HeartbeatRequest>(row.key, v),
                ApiKey::LeaveGroup => seed::<LeaveGroupRequest>(row.key, v),
                ApiKey::SyncGroup => seed::<SyncGroupRequest>(row.key, v),
                ApiKey::DescribeGroups => seed::<DescribeGroupsRequest>(row.key, v),
                ApiKey::ListGroups => seed::<ListGroupsRequest>(row.key, v),
                ApiKey::ApiVersions => seed::<ApiVersionsRequest>(row.key, v),
                ApiKey::CreateTopics => seed::<CreateTopicsRequest>(row.key, v),
                ApiKey::DeleteTopics => seed::<DeleteTopicsRequest>(row.key, v),
                ApiKey::InitProducerId => seed::<InitProducerIdRequest>(row.key, v),
                ApiKey::DescribeConfigs => seed::<DescribeConfigsRequest>(row.key, v),
                ApiKey::AddPartitionsToTxn => seed::<AddPartitionsToTxnRequest>(row.key, v),
                ApiKey::AddOffsetsToTxn => seed::<AddOffsetsToTxnRequest>(row.key, v),
                ApiKey::TxnOffsetCommit => seed::<TxnOffsetCommitRequest>(row.key, v),
                ApiKey::EndTxn => seed::<EndTxnRequest>(row.key, v),
                _ => continue,
            };
            out.push(s);
        }
    }
    out
}

/// xorshift: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mutated_frames_of_every_api_never_crash_the_broker() {
    let h = Harness::new().expect("harness");
    let seeds = seeds();
    assert!(seeds.len() > 50);
    for s in &seeds {
        h.feed(s);
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..6000 {
        let mut f = seeds[rng.below(seeds.len())].clone();
        match i % 4 {
            0 => {
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(f.len());
                    f[at] ^= 1 << rng.below(8);
                }
            }
            1 => f.truncate(rng.below(f.len() + 1)),
            2 => {
                // Plant a huge or negative length/count somewhere after the header start.
                let at = 8 + rng.below(f.len().saturating_sub(8).max(1));
                let v: [u8; 4] = [0x7f, 0xff, 0xff, rng.below(256) as u8];
                for (k, b) in v.iter().enumerate() {
                    if at + k < f.len() {
                        f[at + k] = *b;
                    }
                }
            }
            _ => {
                let n = rng.below(32);
                f.extend((0..n).map(|_| rng.next() as u8));
            }
        }
        h.feed(&f);
    }
}
