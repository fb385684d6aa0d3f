//! The active controller's duties, carried out only by the Raft leader (KRaft's active
//! controller): broker liveness from heartbeats, fencing brokers whose session expired,
//! unfencing a fenced broker that heartbeats again with its current epoch.
//!
//! Liveness is in memory only: a node that becomes leader gives every broker a full session
//! from that moment (KRaft's grace period), since it cannot know when they last heartbeated
//! its predecessor. Owns: the heartbeat table and the fencing loop. Must not: register
//! brokers (each node registers itself).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::ServerState;
use tokio::sync::watch;
use tokio::time::Instant;

use super::submit::leader_write;
use super::types::{node_id, Raft, RaftId};
use super::wire::HeartbeatReply;
use crate::cluster::model::{ClusterMetadata, Command, NodeId};
use crate::cluster::EventLog;

/// How often the leader looks for expired sessions.
const CHECK_INTERVAL: Duration = Duration::from_millis(100);

pub struct ActiveController {
    id: RaftId,
    session_timeout: Duration,
    raft: Raft,
    metadata: watch::Receiver<Arc<ClusterMetadata>>,
    last_seen: Mutex<HashMap<NodeId, Instant>>,
    active: AtomicBool,
    events: EventLog,
}

impl std::fmt::Debug for ActiveController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveController")
            .field("id", &self.id)
            .field("active", &self.is_active())
            .finish()
    }
}

impl ActiveController {
    pub fn new(
        id: RaftId,
        session_timeout: Duration,
        raft: Raft,
        metadata: watch::Receiver<Arc<ClusterMetadata>>,
        events: EventLog,
    ) -> Self {
        ActiveController {
            id,
            session_timeout,
            raft,
            metadata,
            last_seen: Mutex::new(HashMap::new()),
            active: AtomicBool::new(false),
            events,
        }
    }

    /// Whether this node is the active controller (the Raft leader acting as one).
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, Instant>> {
        self.last_seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A broker's heartbeat: `Stale` if it names an older epoch than its registration (it
    /// must register again); a fenced broker heartbeating with its current epoch is unfenced.
    pub async fn heartbeat(&self, id: NodeId, epoch: i64) -> HeartbeatReply {
        if !self.is_active() {
            let leader = self.raft.metrics().borrow().current_leader.map(node_id);
            return HeartbeatReply::NotController { leader };
        }
        let md = self.metadata.borrow().clone();
        let Some(b) = md.brokers.get(&id) else {
            return HeartbeatReply::Stale { current: -1 };
        };
        if epoch < b.epoch {
            return HeartbeatReply::Stale { current: b.epoch };
        }
        self.seen().insert(id, Instant::now());
        // A newer epoch than the metadata shows is a registration not applied here yet.
        if epoch == b.epoch && b.fenced && !b.shutting_down {
            let _ = leader_write(&self.raft, Command::UnfenceBroker { id, epoch }).await;
        }
        HeartbeatReply::Ok
    }

    /// Follows this node's Raft role and, while it leads, fences silent brokers.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut led_term: Option<u64> = None;
        let mut tick = tokio::time::interval(CHECK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => break,
            }
            let (leading, term) = {
                let m = self.raft.metrics();
                let m = m.borrow();
                (m.state == ServerState::Leader, m.current_term)
            };
            if !leading {
                if self.active.swap(false, Ordering::Relaxed) {
                    self.events.record(
                        Some("controller_resigned"),
                        &serde_json::json!({ "term": led_term }),
                    );
                }
                led_term = None;
                continue;
            }
            if led_term != Some(term) {
                self.take_over(term);
                led_term = Some(term);
            }
            self.fence_silent().await;
        }
        self.active.store(false, Ordering::Relaxed);
    }

    /// Becoming active: every known broker gets a full session from now.
    fn take_over(&self, term: u64) {
        let now = Instant::now();
        let md = self.metadata.borrow().clone();
        {
            let mut seen = self.seen();
            seen.clear();
            for id in md.brokers.keys() {
                seen.insert(*id, now);
            }
        }
        self.active.store(true, Ordering::Relaxed);
        self.events.record(
            Some("became_active_controller"),
            &serde_json::json!({ "term": term }),
        );
    }

    async fn fence_silent(&self) {
        let md = self.metadata.borrow().clone();
        let now = Instant::now();
        let expired: Vec<(NodeId, i64)> = {
            let mut seen = self.seen();
            md.brokers
                .values()
                .filter(|b| !b.fenced)
                .filter(|b| {
                    now.duration_since(*seen.entry(b.id).or_insert(now)) > self.session_timeout
                })
                .map(|b| (b.id, b.epoch))
                .collect()
        };
        for (id, epoch) in expired {
            tracing::info!("broker {id} (epoch {epoch}) missed its session: fencing it");
            let _ = leader_write(&self.raft, Command::FenceBroker { id, epoch }).await;
        }
    }
}
