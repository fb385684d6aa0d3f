//! A harness that feeds arbitrary bytes, as one request frame, to the header parser, the
//! request decoders and the handlers of a real (temp-dir) broker — for `fuzz/` and for the
//! mutation smoke test in `tests/fuzz_smoke.rs`, and the frames that seed both.
//!
//! Owns: nothing persistent. Must not: be used by the server (it bypasses sockets).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

use crate::handlers::{self, ConnInfo};
use crate::protocol::{self, Parsed};
use crate::state::Broker;
use crate::BrokerConfig;

pub struct Harness {
    runtime: tokio::runtime::Runtime,
    broker: Arc<Broker>,
    _dir: tempfile::TempDir,
}

impl Harness {
    pub fn new() -> anyhow::Result<Self> {
        // Memory-backed when the machine has /dev/shm: topics the fuzzer invents cost no disk.
        let dir = match std::path::Path::new("/dev/shm") {
            shm if shm.is_dir() => tempfile::tempdir_in(shm)?,
            _ => tempfile::tempdir()?,
        };
        let mut cfg = BrokerConfig::embedded();
        cfg.data_dir = Some(dir.path().to_path_buf());
        cfg.segment_bytes = 64 * 1024;
        let broker = Arc::new(Broker::open(cfg, dir.path(), "127.0.0.1".into(), 9092)?);
        let mut builder = tokio::runtime::Builder::new_current_thread();
        builder.enable_all();
        // With the `fuzzing` feature the clock is paused and jumps ahead whenever every task
        // waits, so long polls (Fetch, JoinGroup, SyncGroup) end at once instead of costing
        // real milliseconds per input.
        #[cfg(feature = "fuzzing")]
        builder.start_paused(true);
        let runtime = builder.build()?;
        Ok(Harness {
            runtime,
            broker,
            _dir: dir,
        })
    }

    /// Handles `frame` (without its size prefix) like the server would; returns whether a
    /// response (or deliberate silence) was produced rather than a close.
    pub fn feed(&self, frame: &[u8]) -> bool {
        let conn = ConnInfo {
            client_host: "/fuzz".into(),
        };
        match protocol::parse_frame(Bytes::copy_from_slice(frame)) {
            Err(_) => false,
            Ok(Parsed::ApiVersionsUnsupported(c)) => {
                handlers::unsupported_version_response(c).is_ok()
            }
            Ok(Parsed::Request(req)) => self.runtime.block_on(async {
                // Long polls (Fetch, JoinGroup, SyncGroup) may wait; a short bound keeps fuzzing fast.
                matches!(
                    tokio::time::timeout(
                        Duration::from_millis(20),
                        handlers::dispatch(&self.broker, req, &conn)
                    )
                    .await,
                    Ok(Ok(_))
                )
            }),
        }
    }
}

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

/// One default-valued request frame (no size prefix) of every served API at every advertised
/// version: the seeds of the mutation smoke test and of the fuzzer's corpus (`scripts/fuzz.sh`).
pub fn seed_frames() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for row in protocol::ADVERTISED {
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
