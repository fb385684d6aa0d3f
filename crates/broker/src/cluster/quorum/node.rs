//! This node as a broker of the cluster: its registration (a new broker epoch at every
//! start), its heartbeats to the active controller, re-registration when the controller
//! calls its epoch stale, and controlled shutdown (leaderships moved away before exit).
//! Owns: this node's broker epoch. Must not: fence or unfence (the active controller does).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::active::ActiveController;
use super::submit::Proposer;
use super::types::{raft_id, Raft};
use super::wire::{HeartbeatReply, Request, Response};
use crate::cluster::model::{ClusterMetadata, Command, Endpoint, NodeId, Reply};
use crate::cluster::EventLog;

pub struct Node {
    pub id: NodeId,
    pub host: String,
    pub port: i32,
    /// The replication endpoint followers are told to use; `None` = host:port.
    pub peer: Option<Endpoint>,
    pub proposer: Proposer,
    pub active: Arc<ActiveController>,
    pub raft: Raft,
    pub heartbeat_interval: Duration,
    pub events: EventLog,
    pub metadata: watch::Receiver<Arc<ClusterMetadata>>,
    epoch: AtomicI64,
    heartbeating: AtomicBool,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .field("epoch", &self.epoch())
            .finish()
    }
}

/// What a controlled shutdown did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    pub duration: Duration,
    /// Partitions this node still led at the end (0 unless the wait timed out).
    pub leaders_left: usize,
}

impl Node {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: NodeId,
        host: String,
        port: i32,
        peer: Option<Endpoint>,
        proposer: Proposer,
        active: Arc<ActiveController>,
        raft: Raft,
        heartbeat_interval: Duration,
        events: EventLog,
        metadata: watch::Receiver<Arc<ClusterMetadata>>,
    ) -> Self {
        Node {
            id,
            host,
            port,
            peer,
            proposer,
            active,
            raft,
            heartbeat_interval,
            events,
            metadata,
            epoch: AtomicI64::new(-1),
            heartbeating: AtomicBool::new(true),
        }
    }

    /// The broker epoch of this node's current registration (-1 before it).
    pub fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Registers this broker (its advertised host and port, and its peer endpoint), within
    /// `within`.
    pub async fn register(&self, within: Duration) -> anyhow::Result<i64> {
        let cmd = Command::RegisterBroker {
            id: self.id,
            host: self.host.clone(),
            port: self.port,
            peer: self.peer.clone(),
        };
        match self.proposer.submit(cmd, within).await? {
            Reply::BrokerEpoch(e) => {
                self.epoch.store(e, Ordering::Relaxed);
                self.events
                    .record(Some("registered_self"), &serde_json::json!({ "epoch": e }));
                Ok(e)
            }
            other => anyhow::bail!("registering broker {}: unexpected reply {other:?}", self.id),
        }
    }

    /// Stops the heartbeats (the active controller then fences this node after its session).
    pub fn stop_heartbeats(&self) {
        self.heartbeating.store(false, Ordering::Relaxed);
    }

    /// Heartbeats every `heartbeat_interval` until shut down or stopped.
    pub async fn heartbeat_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.heartbeat_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => break,
            }
            if !self.heartbeating.load(Ordering::Relaxed) {
                break;
            }
            if let HeartbeatReply::Stale { current } = self.heartbeat_once().await {
                tracing::warn!(
                    "broker {} epoch {} is stale (the controller has {current}): registering again",
                    self.id,
                    self.epoch()
                );
                if let Err(e) = self.register(super::submit::SUBMIT_TIMEOUT).await {
                    tracing::warn!("re-registration failed: {e:#}");
                }
            }
        }
    }

    /// One heartbeat to the active controller (this node's own, or a peer's).
    async fn heartbeat_once(&self) -> HeartbeatReply {
        let (id, epoch) = (self.id, self.epoch());
        let leader = self.raft.metrics().borrow().current_leader;
        let not_controller = HeartbeatReply::NotController { leader: None };
        match leader {
            None => not_controller,
            Some(l) if l == raft_id(self.id) => self.active.heartbeat(id, epoch).await,
            Some(l) => {
                let Some(peer) = self.proposer.peers.get(l) else {
                    return not_controller;
                };
                match peer
                    .call(&Request::Heartbeat { id, epoch }, self.heartbeat_interval)
                    .await
                {
                    Ok(Response::Heartbeat(r)) => r,
                    Ok(_) | Err(_) => not_controller,
                }
            }
        }
    }

    /// Kafka's controlled shutdown: the quorum moves this node's leaderships away and takes
    /// it out of every ISR; this waits (within `timeout`) until the metadata shows it leads
    /// nothing, then stops the heartbeats. Steps go to the event log with their durations.
    pub async fn controlled_shutdown(&self, timeout: Duration) -> anyhow::Result<ShutdownReport> {
        let start = Instant::now();
        let deadline = start + timeout;
        let epoch = self.epoch();
        self.events.record(
            Some("controlled_shutdown_requested"),
            &serde_json::json!({ "epoch": epoch, "leaders": self.led(&self.metadata.borrow()) }),
        );
        let reply = self
            .proposer
            .submit(Command::ControlledShutdown { id: self.id, epoch }, timeout)
            .await;
        let committed_ms = start.elapsed().as_millis() as u64;
        if let Ok(Reply::Error(code, msg)) = &reply {
            anyhow::bail!(
                "controlled shutdown of broker {} refused ({code}): {msg}",
                self.id
            );
        }
        let waited = reply.map(|_| ());
        let mut rx = self.metadata.clone();
        let leaders_left = loop {
            let left = self.led(&rx.borrow_and_update());
            if left == 0 || waited.is_err() {
                break left;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                break self.led(&rx.borrow());
            }
        };
        self.stop_heartbeats();
        let duration = start.elapsed();
        self.events.record(
            Some("controlled_shutdown_done"),
            &serde_json::json!({
                "duration_ms": duration.as_millis() as u64,
                "committed_ms": committed_ms,
                "leaders_left": leaders_left,
                "was_raft_leader": self.active.is_active(),
            }),
        );
        waited?;
        if leaders_left > 0 {
            anyhow::bail!(
                "controlled shutdown of broker {}: still leads {leaders_left} partitions after {} ms",
                self.id,
                timeout.as_millis()
            );
        }
        Ok(ShutdownReport {
            duration,
            leaders_left,
        })
    }

    /// How many partitions this node leads in `md`.
    fn led(&self, md: &ClusterMetadata) -> usize {
        md.topics
            .values()
            .flat_map(|t| &t.partitions)
            .filter(|p| p.leader == self.id)
            .count()
    }
}
