//! The TCP server (mini-redis style): `run(listener, broker, shutdown)` accepts connections up
//! to a limit; each connection reads frames ahead of processing (bounded), handles requests one
//! at a time in arrival order — Kafka's own per-connection guarantee, which also keeps produce
//! appends of one connection in order — and writes each response before the next.
//!
//! Under a flood of idle or half-open connections the broker keeps serving real clients: a
//! request must arrive whole within `request_arrival_timeout_ms` of its first byte, a
//! connection with no request for `connections_max_idle_ms` closes (Kafka's rule), and a full
//! connection table makes room by closing its longest-idle connection (`connections`).
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
use tokio::sync::{mpsc, watch};

use crate::connections::{ConnTable, Slot};
use crate::handlers::{self, ConnInfo, Response};
use crate::protocol::{self, Parsed};
use crate::state::Broker;
use crate::zero_copy;

/// Frames read ahead of the one being handled (clients pipeline; librdkafka a lot).
const READ_AHEAD: usize = 64;

/// Completed connections the kernel queues for `accept`. Rust's std listener asks for 128; a
/// burst of connects beyond the queue is dropped and each costs its client a 1 s SYN
/// retransmission, which under a flood reads as "the broker is unreachable".
const LISTEN_BACKLOG: i32 = 4096;

/// Binds the client socket (SO_REUSEADDR, as std's bind sets it) without listening yet.
pub fn bind_socket(addr: std::net::SocketAddr) -> std::io::Result<rustix::fd::OwnedFd> {
    use rustix::net::{sockopt, AddressFamily, SocketType};
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket(family, SocketType::STREAM, None)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    rustix::net::bind(&fd, &addr)?;
    Ok(fd)
}

/// The address a bound socket got (its port, when asked for port 0).
pub fn local_addr(fd: &rustix::fd::OwnedFd) -> std::io::Result<std::net::SocketAddr> {
    use std::os::fd::AsFd;
    let std_sock = std::net::TcpListener::from(fd.as_fd().try_clone_to_owned()?);
    std_sock.local_addr()
}

/// Starts listening on a bound socket, with a deep accept queue.
pub fn listen(fd: rustix::fd::OwnedFd) -> std::io::Result<std::net::TcpListener> {
    rustix::net::listen(&fd, LISTEN_BACKLOG)?;
    Ok(std::net::TcpListener::from(fd))
}

/// Accepts connections until `shutdown` fires, then waits briefly for connections to finish.
pub async fn run(listener: TcpListener, broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let table = ConnTable::new(broker.cfg.max_connections);
    let sweeper = tokio::spawn(close_idle_connections(table.clone(), broker.clone()));
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
        // A full table makes room by closing its longest-idle connection (see `connections`).
        let (slot, evicted) = table.admit();
        if evicted {
            broker.metrics.connections_evicted.inc();
        }
        let broker = broker.clone();
        let shutdown = shutdown.clone();
        let table = table.clone();
        conns.spawn(async move {
            broker.metrics.connections.inc();
            let info = ConnInfo {
                client_host: format!("/{}", peer.ip()),
            };
            if let Err(e) = connection(stream, &broker, info, &table, &slot, shutdown).await {
                tracing::debug!(%peer, "connection closed: {e}");
            }
            broker.metrics.connections.dec();
            drop(slot);
        });
    }
    sweeper.abort();
    // Graceful: connections see the shutdown signal; give them a moment, then cut.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.abort_all();
}

/// Reads frames into `tx` until EOF, an error, an oversized/invalid size prefix, or a request
/// that does not arrive whole within `arrival` of its first byte.
async fn read_frames(
    mut rd: OwnedReadHalf,
    tx: mpsc::Sender<Bytes>,
    max_bytes: usize,
    arrival: Duration,
) -> anyhow::Result<()> {
    loop {
        // Waiting for a request to begin is idleness (the connection task's idle rule); once
        // its first byte is here, the rest must follow within the bound.
        let mut size = [0u8; 4];
        let got = match rd.read(&mut size).await {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) => return Err(e.into()),
        };
        let frame =
            tokio::time::timeout(arrival, read_rest_of_frame(&mut rd, size, got, max_bytes))
                .await
                .map_err(|_| {
                    anyhow::anyhow!(
                    "a request did not arrive whole within {} ms (--request-arrival-timeout-ms)",
                    arrival.as_millis()
                )
                })??;
        if tx.send(frame).await.is_err() {
            return Ok(());
        }
    }
}

/// The first read of a request body: enough for any ordinary request in one allocation, while
/// a size prefix that claims a huge body gets memory only as its bytes actually arrive.
const FIRST_BODY_READ: usize = 1 << 20;

async fn read_rest_of_frame(
    rd: &mut OwnedReadHalf,
    mut size: [u8; 4],
    got: usize,
    max_bytes: usize,
) -> anyhow::Result<Bytes> {
    if got < size.len() {
        rd.read_exact(&mut size[got..]).await?;
    }
    let size = i32::from_be_bytes(size);
    if size < 0 || size as usize > max_bytes {
        anyhow::bail!("request size {size} outside 0..={max_bytes} (--max-request-bytes)");
    }
    let size = size as usize;
    let mut buf = BytesMut::with_capacity(size.min(FIRST_BODY_READ));
    while buf.len() < size {
        let want = size - buf.len();
        buf.reserve(want.min(FIRST_BODY_READ));
        // A client that disconnects mid-request ends here with an error; nothing was handled.
        if (&mut *rd).take(want as u64).read_buf(&mut buf).await? == 0 {
            anyhow::bail!("connection closed in the middle of a request");
        }
    }
    Ok(buf.freeze())
}

/// Closes connections idle for longer than `connections_max_idle_ms`, checking a few times
/// per limit (at least once a second) — one timer for the table instead of one per request.
async fn close_idle_connections(table: Arc<ConnTable>, broker: Arc<Broker>) {
    let max_idle_ms = broker.cfg.connections_max_idle_ms;
    let every = Duration::from_millis((max_idle_ms / 4).clamp(10, 1000));
    loop {
        tokio::time::sleep(every).await;
        let closed = table.close_idle(max_idle_ms);
        if closed > 0 {
            broker.metrics.connections_idle_closed.inc_by(closed as u64);
        }
    }
}

async fn connection(
    stream: TcpStream,
    broker: &Arc<Broker>,
    info: ConnInfo,
    table: &ConnTable,
    slot: &Slot,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let (rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel(READ_AHEAD);
    let cfg = &broker.cfg;
    let reader = tokio::spawn(read_frames(
        rd,
        tx,
        cfg.max_request_bytes,
        Duration::from_millis(cfg.request_arrival_timeout_ms),
    ));
    let conn = &slot.conn;
    let mut scratch = Vec::new();
    let result: anyhow::Result<()> = async {
        loop {
            let frame = tokio::select! {
                f = rx.recv() => f,
                // Told by the table: evicted for a newcomer, or idle too long.
                _ = conn.close.notified() => return Ok(()),
                _ = shutdown.changed() => return Ok(()),
            };
            let Some(frame) = frame else { return Ok(()) };
            conn.touch(table);
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
            conn.touch(table);
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
        ApiKey::AddPartitionsToTxn => "AddPartitionsToTxn",
        ApiKey::AddOffsetsToTxn => "AddOffsetsToTxn",
        ApiKey::TxnOffsetCommit => "TxnOffsetCommit",
        ApiKey::EndTxn => "EndTxn",
        _ => "Other",
    }
}
