//! What voters say to each other on the quorum listener, and how it is framed: one TCP
//! connection per peer carries many requests at once, each frame `u32 length | JSON`, each
//! message tagged with the request id its answer repeats.
//!
//! Besides Raft's own RPCs (append entries, vote, install snapshot) the same listener takes
//! writes forwarded to the Raft leader (`Submit`) and broker heartbeats to the active
//! controller. Owns: the message types and framing. Must not: act on a message.

use openraft::error::InstallSnapshotError;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::types::{RaftError, RaftId, TypeConfig};
use crate::cluster::model::{Command, NodeId, Reply};

/// A frame larger than this is refused (a snapshot chunk is 3 MiB at most, openraft's
/// default; the metadata is far smaller).
const MAX_FRAME: usize = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<RaftId>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// A command proposed on a follower, for the Raft leader to commit.
    Submit(Command),
    /// A broker's liveness signal to the active controller, with its registration epoch.
    Heartbeat {
        id: NodeId,
        epoch: i64,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    Append(Result<AppendEntriesResponse<RaftId>, RaftError>),
    Vote(Result<VoteResponse<RaftId>, RaftError>),
    Snapshot(Result<InstallSnapshotResponse<RaftId>, RaftError<InstallSnapshotError>>),
    Submit(SubmitOutcome),
    Heartbeat(HeartbeatReply),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SubmitOutcome {
    /// Committed and applied on the leader at log `index` (the proposer waits until it has
    /// applied that far itself).
    Applied {
        reply: Reply,
        index: u64,
    },
    /// The node asked is not the Raft leader; `leader` is who it thinks is.
    NotLeader {
        leader: Option<NodeId>,
    },
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeartbeatReply {
    Ok,
    /// The broker's epoch is not the registered one (`current`, or -1 if unregistered):
    /// it must register again.
    Stale {
        current: i64,
    },
    /// This node is not the active controller; `leader` is who it thinks is.
    NotController {
        leader: Option<NodeId>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub id: u64,
    pub body: T,
}

/// `u32 length | JSON` of one message.
pub fn encode<T: Serialize>(id: u64, body: T) -> std::io::Result<Vec<u8>> {
    let json = serde_json::to_vec(&Envelope { id, body })?;
    let mut frame = Vec::with_capacity(json.len() + 4);
    frame.extend_from_slice(&(json.len() as u32).to_be_bytes());
    frame.extend_from_slice(&json);
    Ok(frame)
}

pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> std::io::Result<Envelope<T>> {
    Ok(serde_json::from_slice(bytes)?)
}

/// The next frame's payload; `None` at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a quorum frame of {len} bytes (at most {MAX_FRAME})"),
        ));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_frame_round_trips_and_a_short_stream_is_an_end() {
        let frame = encode(7, Request::Heartbeat { id: 2, epoch: 5 }).unwrap();
        let mut r = &frame[..];
        let payload = read_frame(&mut r).await.unwrap().unwrap();
        let env: Envelope<Request> = decode(&payload).unwrap();
        assert_eq!(env.id, 7);
        assert!(matches!(env.body, Request::Heartbeat { id: 2, epoch: 5 }));
        assert!(read_frame(&mut r).await.unwrap().is_none());
        let mut huge = &(u32::MAX).to_be_bytes()[..];
        assert!(read_frame(&mut huge).await.is_err());
    }
}
