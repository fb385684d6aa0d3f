//! The node's quorum listener (its own `--controller-quorum` address): accepts the peers'
//! connections and answers each request on it concurrently — Raft RPCs go to the local
//! Raft, forwarded writes are committed if this node is the Raft leader (never forwarded
//! again: the proposer retries), heartbeats go to the active controller.
//! Owns: accepting and dispatching. Must not: retry or forward.

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::active::ActiveController;
use super::submit;
use super::types::Raft;
use super::wire::{self, Request, Response};

/// What the listener dispatches to.
#[derive(Clone)]
pub struct Services {
    pub raft: Raft,
    pub active: Arc<ActiveController>,
}

/// Accepts connections until `shutdown` turns true; then every connection is dropped.
pub async fn serve(listener: TcpListener, services: Services, mut shutdown: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    conns.spawn(connection(stream, services.clone()));
                }
                Err(e) => {
                    tracing::warn!("quorum listener: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
        while conns.try_join_next().is_some() {}
    }
    conns.shutdown().await;
}

async fn connection(stream: TcpStream, services: Services) {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let mut requests = JoinSet::new();
    requests.spawn(async move {
        while let Some(frame) = rx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
    });
    while let Ok(Some(payload)) = wire::read_frame(&mut rd).await {
        let env = match wire::decode::<Request>(&payload) {
            Ok(env) => env,
            Err(e) => {
                tracing::warn!("quorum listener: undecodable request: {e}");
                break;
            }
        };
        let (services, tx) = (services.clone(), tx.clone());
        requests.spawn(async move {
            let body = handle(env.body, &services).await;
            if let Ok(frame) = wire::encode(env.id, body) {
                let _ = tx.send(frame);
            }
        });
        while requests.try_join_next().is_some() {}
    }
    // Dropping the set aborts the requests still running and the writer.
}

async fn handle(req: Request, s: &Services) -> Response {
    match req {
        Request::Append(rpc) => Response::Append(s.raft.append_entries(rpc).await),
        Request::Vote(rpc) => Response::Vote(s.raft.vote(rpc).await),
        Request::Snapshot(rpc) => Response::Snapshot(s.raft.install_snapshot(rpc).await),
        Request::Submit(cmd) => Response::Submit(submit::write_as_leader(&s.raft, cmd).await),
        Request::Heartbeat { id, epoch } => {
            Response::Heartbeat(s.active.heartbeat(id, epoch).await)
        }
    }
}
