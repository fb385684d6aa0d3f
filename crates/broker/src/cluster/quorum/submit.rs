//! Proposing a command: on the Raft leader it is written directly; on a follower it is
//! forwarded to the leader over the quorum connection and, once the leader has applied it,
//! waited for until this node has applied it too (so the watch shows its effect). Through
//! an election it retries, within a bounded total wait.
//!
//! A retry after an ambiguous failure (a timeout, a lost connection) may apply a command
//! twice; the model's commands tolerate it (epochs are checked, a second CreateTopic is
//! TOPIC_ALREADY_EXISTS, a second registration only bumps the epoch again).
//! Owns: leader discovery and retries for writes. Must not: interpret replies.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use tokio::time::Instant;

use super::network::Peers;
use super::types::{node_id, Raft, RaftId};
use super::wire::{Request, Response, SubmitOutcome};
use crate::cluster::model::{Command, Reply};

/// The bound on one `submit`, elections included (a few election timeouts).
pub const SUBMIT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest one forwarded attempt may take before it is tried again.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Writes `cmd` if this node is the Raft leader; `Err` only when the Raft is shut down.
pub async fn leader_write(raft: &Raft, cmd: Command) -> Result<SubmitOutcome, String> {
    match raft.client_write(cmd).await {
        Ok(resp) => Ok(SubmitOutcome::Applied {
            reply: resp.data,
            index: resp.log_id.index,
        }),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            Ok(SubmitOutcome::NotLeader {
                leader: f.leader_id.map(node_id),
            })
        }
        Err(RaftError::APIError(e)) => Ok(SubmitOutcome::Failed(e.to_string())),
        Err(RaftError::Fatal(f)) => Err(format!("the metadata quorum is stopped: {f}")),
    }
}

/// What the listener answers to a forwarded write.
pub async fn write_as_leader(raft: &Raft, cmd: Command) -> SubmitOutcome {
    leader_write(raft, cmd)
        .await
        .unwrap_or_else(SubmitOutcome::Failed)
}

/// Proposes commands from this node.
#[derive(Clone)]
pub struct Proposer {
    pub id: RaftId,
    pub raft: Raft,
    pub peers: Arc<Peers>,
}

impl std::fmt::Debug for Proposer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proposer").field("id", &self.id).finish()
    }
}

impl Proposer {
    /// Commits `cmd` and returns its reply once this node has applied it, within `within`.
    pub async fn submit(&self, cmd: Command, within: Duration) -> anyhow::Result<Reply> {
        let deadline = Instant::now() + within;
        let mut last = String::from("no Raft leader was elected");
        loop {
            let leader = self.raft.metrics().borrow().current_leader;
            match leader {
                Some(l) if l == self.id => match leader_write(&self.raft, cmd.clone()).await {
                    Ok(SubmitOutcome::Applied { reply, .. }) => return Ok(reply),
                    Ok(SubmitOutcome::NotLeader { .. }) => last = "leadership moved".into(),
                    Ok(SubmitOutcome::Failed(m)) => last = m,
                    Err(fatal) => anyhow::bail!(fatal),
                },
                Some(l) => match self.forward(l, &cmd, deadline).await {
                    Ok(reply) => return Ok(reply),
                    Err(m) => last = m,
                },
                None => {}
            }
            if Instant::now() + RETRY_PAUSE >= deadline {
                anyhow::bail!(
                    "the metadata quorum did not commit {} within {} s: {last}",
                    command_name(&cmd),
                    within.as_secs_f64()
                );
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    async fn forward(
        &self,
        leader: RaftId,
        cmd: &Command,
        deadline: Instant,
    ) -> Result<Reply, String> {
        let peer = self
            .peers
            .get(leader)
            .ok_or_else(|| format!("the leader {leader} is not a configured voter"))?;
        let left = deadline.saturating_duration_since(Instant::now());
        let resp = peer
            .call(&Request::Submit(cmd.clone()), left.min(ATTEMPT_TIMEOUT))
            .await
            .map_err(|e| format!("forwarding to the leader {leader}: {e}"))?;
        match resp {
            Response::Submit(SubmitOutcome::Applied { reply, index }) => {
                let left = deadline.saturating_duration_since(Instant::now());
                self.raft
                    .wait(Some(left))
                    .applied_index_at_least(Some(index), "a forwarded write")
                    .await
                    .map_err(|e| format!("committed at index {index} but not applied here: {e}"))?;
                Ok(reply)
            }
            Response::Submit(SubmitOutcome::NotLeader { leader: l }) => Err(format!(
                "node {leader} is no longer the leader (it names {l:?})"
            )),
            Response::Submit(SubmitOutcome::Failed(m)) => Err(m),
            _ => Err(format!("unexpected answer from node {leader}")),
        }
    }
}

fn command_name(cmd: &Command) -> &'static str {
    match cmd {
        Command::RegisterBroker { .. } => "RegisterBroker",
        Command::FenceBroker { .. } => "FenceBroker",
        Command::UnfenceBroker { .. } => "UnfenceBroker",
        Command::ControlledShutdown { .. } => "ControlledShutdown",
        Command::CreateTopic { .. } => "CreateTopic",
        Command::DeleteTopic { .. } => "DeleteTopic",
        Command::AlterPartition { .. } => "AlterPartition",
        Command::AllocateProducerIds { .. } => "AllocateProducerIds",
        Command::SetUncleanLeaderElection { .. } => "SetUncleanLeaderElection",
    }
}
