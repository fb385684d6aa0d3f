//! The TCP server (mini-redis style): `run(listener, broker, shutdown)` accepts connections up
//! to a limit; each connection reads frames ahead of processing (bounded), handles requests one
//! at a time in arrival order — Kafka's own per-connection guarantee, which also keeps produce
//! appends of one connection in order — and writes each response before the next.
//!
//! Owns: sockets, framing limits, the connection limit and graceful shutdown. Must not: know
//! what requests mean (handlers) or how Fetch bytes are laid out (protocol).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::handlers::{self, ConnInfo, Response};
use crate::protocol::{self, Parsed};
use crate::state::Broker;
use crate::zero_copy;

/// Frames read ahead of the one being handled (clients pipeline; librdkafka a lot).
const READ_AHEAD: usize = 64;

/// Accepts connections until `shutdown` fires, then waits briefly for connections to finish.
pub async fn run(listener: TcpListener, broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let limit = Arc::new(Semaphore::new(broker.cfg.max_connections.max(1)));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            broker.metrics.connections_rejected.inc();
            tracing::warn!(%peer, limit = broker.cfg.max_connections, "connection limit reached; closing new connection");
            drop(stream);
            continue;
        };
        let broker = broker.clone();
        let shutdown = shutdown.clone();
        conns.spawn(async move {
            broker.metrics.connections.inc();
            let info = ConnInfo {
                client_host: format!("/{}", peer.ip()),
            };
            if let Err(e) = connection(stream, &broker, info, shutdown).await {
                tracing::debug!(%peer, "connection closed: {e}");
            }
            broker.metrics.connections.dec();
            drop(permit);
        });
    }
    // Graceful: connections see the shutdown signal; give them a moment, then cut.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.abort_all();
}

/// Reads frames into `tx` until EOF, an error, or an oversized/invalid size prefix.
async fn read_frames(
    mut rd: OwnedReadHalf,
    tx: mpsc::Sender<Bytes>,
    max_bytes: usize,
) -> anyhow::Result<()> {
    loop {
        let mut size = [0u8; 4];
        match rd.read_exact(&mut size).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let size = i32::from_be_bytes(size);
        if size < 0 || size as usize > max_bytes {
            anyhow::bail!("request size {size} outside 0..={max_bytes} (--max-request-bytes)");
        }
        let mut buf = BytesMut::zeroed(size as usize);
        // A client that disconnects mid-request ends here with an error; nothing was handled.
        rd.read_exact(&mut buf).await?;
        if tx.send(buf.freeze()).await.is_err() {
            return Ok(());
        }
    }
}

async fn connection(
    stream: TcpStream,
    broker: &Arc<Broker>,
    info: ConnInfo,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let (rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel(READ_AHEAD);
    let reader = tokio::spawn(read_frames(rd, tx, broker.cfg.max_request_bytes));
    let mut scratch = Vec::new();
    let result: anyhow::Result<()> = async {
        loop {
            let frame = tokio::select! {
                f = rx.recv() => f,
                _ = shutdown.changed() => return Ok(()),
            };
            let Some(frame) = frame else { return Ok(()) };
            let started = Instant::now();
            let (api, response) = match protocol::parse_frame(frame)? {
                Parsed::ApiVersionsUnsupported(correlation_id) => (
                    "ApiVersions",
                    Response::Frame(handlers::unsupported_version_response(correlation_id)?),
                ),
                Parsed::Request(req) => {
                    let api = api_name(req.key);
                    let r = tokio::select! {
                        r = handlers::dispatch(broker, req, &info) => r?,
                        _ = shutdown.changed() => return Ok(()),
                    };
                    (api, r)
                }
            };
            match response {
                Response::Nothing => {}
                Response::Close => return Ok(()),
                Response::Frame(b) => wr.write_all(&b).await?,
                Response::Parts(parts) => {
                    zero_copy::write_parts(&mut wr, &parts, broker.cfg.zero_copy, &mut scratch)
                        .await?
                }
            }
            broker.metrics.request(api, started.elapsed());
        }
    }
    .await;
    reader.abort();
    // A reader error (oversized frame, reset) is the more useful explanation when both ended.
    if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_millis(10), reader)
        .await
        .map(|r| r.map_err(|_| ()))
    {
        return Err(e);
    }
    result
}

/// A static label per API for metrics (no allocation per request).
pub fn api_name(key: ApiKey) -> &'static str {
    match key {
        ApiKey::Produce => "Produce",
        ApiKey::Fetch => "Fetch",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::Metadata => "Metadata",
        ApiKey::OffsetCommit => "OffsetCommit",
        ApiKey::OffsetFetch => "OffsetFetch",
        ApiKey::FindCoordinator => "FindCoordinator",
        ApiKey::JoinGroup => "JoinGroup",
        ApiKey::Heartbeat => "Heartbeat",
        ApiKey::LeaveGroup => "LeaveGroup",
        ApiKey::SyncGroup => "SyncGroup",
        ApiKey::DescribeGroups => "DescribeGroups",
        ApiKey::ListGroups => "ListGroups",
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::DeleteTopics => "DeleteTopics",
        ApiKey::InitProducerId => "InitProducerId",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        _ => "Other",
    }
}
