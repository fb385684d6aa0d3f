//! The client side of the quorum's transport: one TCP connection per peer, reused by every
//! caller (Raft replication and votes, forwarded writes, heartbeats), with many requests in
//! flight on it, matched to their answers by id. A lost connection fails its pending calls
//! and is dialled again by the next call; every call has a deadline.
//!
//! Also openraft's `RaftNetworkFactory` over those connections. Owns: connections and calls.
//! Must not: serve requests (`server` does).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RemoteError, Unreachable};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::types::{RaftError, RaftId, TypeConfig};
use super::wire::{self, Request, Response};

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("cannot connect to {0}: {1}")]
    Unreachable(SocketAddr, std::io::Error),
    #[error("the connection to {0} was lost")]
    Closed(SocketAddr),
    #[error("no answer from {0} within {1:?}")]
    Timeout(SocketAddr, Duration),
    #[error("unexpected answer from {0}")]
    Unexpected(SocketAddr),
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Response>>>>;

/// One live connection: frames go out through its writer task, answers come back through
/// its reader task.
#[derive(Debug)]
struct Conn {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
    closed: Arc<AtomicBool>,
    tasks: [AbortHandle; 2],
}

impl Drop for Conn {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A peer voter and its (lazily dialled) connection.
#[derive(Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    next_id: AtomicU64,
    /// Whether this peer has ever answered (for the start-up error).
    answered: AtomicBool,
}

impl Peer {
    fn new(addr: SocketAddr) -> Self {
        Peer {
            addr,
            conn: tokio::sync::Mutex::new(None),
            next_id: AtomicU64::new(1),
            answered: AtomicBool::new(false),
        }
    }

    pub fn has_answered(&self) -> bool {
        self.answered.load(Ordering::Relaxed)
    }

    /// Sends `req` and waits for its answer, at most `timeout` in all (dialling included).
    pub async fn call(&self, req: &Request, timeout: Duration) -> Result<Response, CallError> {
        let deadline = Instant::now() + timeout;
        let conn = self.connection(deadline, timeout).await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = wire::encode(id, req).map_err(|_| CallError::Unexpected(self.addr))?;
        let (tx, rx) = oneshot::channel();
        lock(&conn.pending).insert(id, tx);
        if conn.tx.send(frame).is_err() {
            conn.closed.store(true, Ordering::Relaxed);
            return Err(CallError::Closed(self.addr));
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(resp)) => {
                self.answered.store(true, Ordering::Relaxed);
                Ok(resp)
            }
            Ok(Err(_)) => Err(CallError::Closed(self.addr)),
            Err(_) => {
                lock(&conn.pending).remove(&id);
                Err(CallError::Timeout(self.addr, timeout))
            }
        }
    }

    async fn connection(
        &self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Arc<Conn>, CallError> {
        let mut slot = match tokio::time::timeout_at(deadline, self.conn.lock()).await {
            Ok(s) => s,
            Err(_) => return Err(CallError::Timeout(self.addr, timeout)),
        };
        if let Some(c) = slot.as_ref().filter(|c| !c.closed.load(Ordering::Relaxed)) {
            return Ok(c.clone());
        }
        *slot = None;
        let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(self.addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(CallError::Unreachable(self.addr, e)),
            Err(_) => return Err(CallError::Timeout(self.addr, timeout)),
        };
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(start_conn(stream));
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Drops the connection (its tasks stop, pending calls fail).
    pub async fn close(&self) {
        *self.conn.lock().await = None;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn start_conn(stream: TcpStream) -> Conn {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let pending: Pending = Arc::default();
    let closed = Arc::new(AtomicBool::new(false));
    let (p, c) = (pending.clone(), closed.clone());
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
        c.store(true, Ordering::Relaxed);
        lock(&p).clear();
    });
    let (p, c) = (pending.clone(), closed.clone());
    let reader = tokio::spawn(async move {
        while let Ok(Some(payload)) = wire::read_frame(&mut rd).await {
            let Ok(env) = wire::decode::<Response>(&payload) else {
                break;
            };
            if let Some(waiter) = lock(&p).remove(&env.id) {
                let _ = waiter.send(env.body);
            }
        }
        c.store(true, Ordering::Relaxed);
        lock(&p).clear();
    });
    Conn {
        tx,
        pending,
        closed,
        tasks: [writer.abort_handle(), reader.abort_handle()],
    }
}

/// Every other voter, by Raft id.
#[derive(Debug, Default)]
pub struct Peers {
    peers: BTreeMap<RaftId, Arc<Peer>>,
}

impl Peers {
    pub fn new(addrs: impl IntoIterator<Item = (RaftId, SocketAddr)>) -> Self {
        Peers {
            peers: addrs
                .into_iter()
                .map(|(id, a)| (id, Arc::new(Peer::new(a))))
                .collect(),
        }
    }

    pub fn get(&self, id: RaftId) -> Option<&Arc<Peer>> {
        self.peers.get(&id)
    }

    /// How many peers have answered at least once.
    pub fn answered(&self) -> usize {
        self.peers.values().filter(|p| p.has_answered()).count()
    }

    pub async fn close_all(&self) {
        for p in self.peers.values() {
            p.close().await;
        }
    }
}

/// openraft's network: clients over the shared peer connections.
#[derive(Debug, Clone)]
pub struct Network {
    pub peers: Arc<Peers>,
    /// Pause before retrying a peer that could not be reached.
    pub backoff: Duration,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: RaftId, node: &BasicNode) -> PeerClient {
        let peer = match self.peers.get(target) {
            Some(p) => p.clone(),
            // Not a configured voter (cannot happen with a static quorum): use its address.
            None => Arc::new(Peer::new(
                node.addr
                    .parse()
                    .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0))),
            )),
        };
        PeerClient {
            target,
            peer,
            backoff: self.backoff,
        }
    }
}

pub struct PeerClient {
    target: RaftId,
    peer: Arc<Peer>,
    backoff: Duration,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<RaftId, BasicNode, RaftError<E>>>;

impl PeerClient {
    async fn rpc(&self, req: Request, option: &RPCOption) -> Result<Response, CallError> {
        self.peer.call(&req, option.hard_ttl()).await
    }

    fn transport<E: std::error::Error>(
        &self,
        e: CallError,
    ) -> RPCError<RaftId, BasicNode, RaftError<E>> {
        match e {
            CallError::Unreachable(..) => RPCError::Unreachable(Unreachable::new(&e)),
            other => RPCError::Network(NetworkError::new(&other)),
        }
    }

    fn remote<T, E: std::error::Error>(
        &self,
        r: Result<T, RaftError<E>>,
    ) -> Result<T, RPCError<RaftId, BasicNode, RaftError<E>>> {
        r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<RaftId>> {
        match self.rpc(Request::Append(rpc), &option).await {
            Ok(Response::Append(r)) => self.remote(r),
            Ok(_) => Err(self.transport(CallError::Unexpected(self.peer.addr))),
            Err(e) => Err(self.transport(e)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<RaftId>, InstallSnapshotError> {
        match self.rpc(Request::Snapshot(rpc), &option).await {
            Ok(Response::Snapshot(r)) => self.remote(r),
            Ok(_) => Err(self.transport(CallError::Unexpected(self.peer.addr))),
            Err(e) => Err(self.transport(e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<RaftId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<RaftId>> {
        match self.rpc(Request::Vote(rpc), &option).await {
            Ok(Response::Vote(r)) => self.remote(r),
            Ok(_) => Err(self.transport(CallError::Unexpected(self.peer.addr))),
            Err(e) => Err(self.transport(e)),
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(self.backoff))
    }
}
