//! A harness that feeds arbitrary bytes, as one request frame, to the header parser, the
//! request decoders and the handlers of a real (temp-dir) broker — for `fuzz/` and for the
//! mutation smoke test in `tests/broker_fuzz_smoke.rs`.
//!
//! Owns: nothing persistent. Must not: be used by the server (it bypasses sockets).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

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
        let dir = tempfile::tempdir()?;
        let mut cfg = BrokerConfig::embedded();
        cfg.data_dir = Some(dir.path().to_path_buf());
        cfg.segment_bytes = 64 * 1024;
        let broker = Arc::new(Broker::open(cfg, dir.path(), "127.0.0.1".into(), 9092)?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
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
