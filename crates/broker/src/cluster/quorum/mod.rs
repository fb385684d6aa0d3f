//! The metadata quorum: every node of `--controller-quorum` is a voter of one Raft group
//! (openraft 0.9) whose log carries the `model::Command`s and whose state machine is
//! `ClusterMetadata`. `Quorum` is one node's part of it and implements `Controller`.
//!
//! # Layout
//! * `types` — openraft's type configuration (commands in, replies out).
//! * `storage` — the Raft log and vote on disk (`<data dir>/__cluster_metadata/`), fsynced.
//! * `state_machine` — applying commands, the event log, the metadata watch, snapshots.
//! * `wire`, `network`, `server` — the TCP transport between voters: framing, one reused
//!   connection per peer, the node's listener (Raft RPCs, forwarded writes, heartbeats).
//! * `submit` — proposing a command: write on the leader, or forward to it, with retries.
//! * `active` — the active controller (the Raft leader): liveness and fencing.
//! * `node` — this node as a broker: registration, heartbeats, controlled shutdown.
//! * `meta_properties` — which node and cluster a data dir belongs to.
//!
//! Bootstrap: the voters are static. A node whose storage is empty initializes the Raft
//! group with all voters; every node does so with the same membership, which openraft
//! documents as safe (the membership entry is the same log entry on every node).
//!
//! Leadership handover: openraft 0.9 cannot transfer Raft leadership (`transfer_leader`
//! exists only in 0.10), so a controlled shutdown of the Raft leader moves its partition
//! leaderships away, then the controller role moves by election after it stops.

// openraft's error types (StorageError, RPCError) are large by design and are what its
// traits return; boxing them here would only add conversions (its own examples allow this).
#![allow(clippy::result_large_err)]

mod active;
mod files;
pub mod meta_properties;
mod network;
mod node;
mod server;
mod state_machine;
mod storage;
mod submit;
mod types;
mod wire;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use openraft::{BasicNode, Config, SnapshotPolicy};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

pub use meta_properties::check_data_dir;
pub use node::ShutdownReport;

use self::active::ActiveController;
use self::network::{Network, Peers};
use self::node::Node;
use self::state_machine::StateMachine;
use self::storage::LogStore;
use self::submit::{Proposer, SUBMIT_TIMEOUT};
use self::types::{node_id, raft_id, Raft};
use super::model::{Change, ClusterMetadata, Command, NodeId, Reply};
use super::{BoxFuture, ClusterConfig, ClusterHandle, Controller, EventLog};

/// The quorum's directory inside the data dir.
pub const METADATA_DIR: &str = "__cluster_metadata";
/// Snapshot after this many log entries (the log before it is then purged).
const SNAPSHOT_EVERY: u64 = 1000;

/// One node's part of the metadata quorum.
pub struct Quorum {
    config: ClusterConfig,
    raft: Raft,
    peers: Arc<Peers>,
    active: Arc<ActiveController>,
    node: Arc<Node>,
    metadata: watch::Receiver<Arc<ClusterMetadata>>,
    changes: broadcast::Sender<Change>,
    events: EventLog,
    shutdown_tx: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    stopped: AtomicBool,
}

impl std::fmt::Debug for Quorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quorum")
            .field("node_id", &self.config.node_id)
            .field("broker_epoch", &self.broker_epoch())
            .field("active_controller", &self.is_active_controller())
            .finish()
    }
}

fn raft_config(cfg: &ClusterConfig) -> anyhow::Result<Config> {
    let ms = |d: Duration| d.as_millis().max(1) as u64;
    let election = ms(cfg.quorum_election_timeout);
    let config = Config {
        cluster_name: "kbench-cluster-metadata".into(),
        heartbeat_interval: ms(cfg.quorum_heartbeat_interval),
        election_timeout_min: election,
        election_timeout_max: election * 2,
        install_snapshot_timeout: election * 2,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY),
        max_in_snapshot_log_to_keep: 100,
        ..Default::default()
    };
    config
        .validate()
        .context("the metadata quorum's Raft timings (heartbeat below the election timeout)")
}

/// Checks the data dir is this node's, marks it as such, and opens the metadata log and the
/// state machine (its snapshot) from it.
fn open_storage(
    cfg: &ClusterConfig,
    data_dir: &Path,
    events: &EventLog,
) -> anyhow::Result<(LogStore, StateMachine)> {
    cfg.validate().map_err(anyhow::Error::msg)?;
    check_data_dir(data_dir, cfg).map_err(anyhow::Error::msg)?;
    meta_properties::write_if_absent(data_dir, cfg).with_context(|| {
        format!(
            "--data-dir {}: cannot write meta.properties",
            data_dir.display()
        )
    })?;
    let dir = data_dir.join(METADATA_DIR);
    let log = LogStore::open(&dir)
        .with_context(|| format!("cannot open the metadata log in {}", dir.display()))?;
    let sm = StateMachine::open(&dir, events.clone(), log.committed().map(|l| l.index))
        .with_context(|| format!("cannot open the metadata snapshot in {}", dir.display()))?;
    Ok((log, sm))
}

/// This node's Raft over TCP to the other voters.
async fn start_raft(
    cfg: &ClusterConfig,
    log: LogStore,
    sm: StateMachine,
) -> anyhow::Result<(Raft, Arc<Peers>)> {
    let peers = Arc::new(Peers::new(
        cfg.voters
            .iter()
            .filter(|v| v.id != cfg.node_id)
            .map(|v| (raft_id(v.id), v.addr)),
    ));
    let network = Network {
        peers: peers.clone(),
        backoff: cfg.quorum_heartbeat_interval,
    };
    let raft = Raft::new(
        raft_id(cfg.node_id),
        Arc::new(raft_config(cfg)?),
        network,
        log,
        sm,
    )
    .await
    .context("cannot start the metadata quorum's Raft")?;
    Ok((raft, peers))
}

impl Quorum {
    /// Starts this node's voter: opens its storage, listens on its quorum address, joins
    /// (or bootstraps) the Raft group, and registers this broker with `advertised_host` and
    /// `advertised_port`. Returns once the registration is applied here, or fails after
    /// `config.quorum_start_timeout` saying how many voters answered.
    ///
    /// Its tasks run on the calling tokio runtime, which must outlive the `Quorum`.
    pub async fn start(
        cfg: &ClusterConfig,
        data_dir: &Path,
        advertised_host: String,
        advertised_port: i32,
        events: EventLog,
    ) -> anyhow::Result<Arc<Quorum>> {
        let (log, sm) = open_storage(cfg, data_dir, &events)?;
        let metadata = sm.watch();
        let changes = sm.changes();
        let own = cfg.own_quorum_addr();
        let listener = tokio::net::TcpListener::bind(own).await.with_context(|| {
            format!(
                "cannot listen on {own}, node {}'s address in --controller-quorum",
                cfg.node_id
            )
        })?;
        let (raft, peers) = start_raft(cfg, log, sm).await?;
        let id = raft_id(cfg.node_id);
        let active = Arc::new(ActiveController::new(
            id,
            cfg.session_timeout,
            raft.clone(),
            metadata.clone(),
            events.clone(),
        ));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let services = server::Services {
            raft: raft.clone(),
            active: active.clone(),
        };
        let mut tasks = vec![
            tokio::spawn(server::serve(listener, services, shutdown_rx.clone())),
            tokio::spawn(active.clone().run(shutdown_rx.clone())),
        ];
        bootstrap(&raft, cfg).await?;
        let proposer = Proposer {
            id,
            raft: raft.clone(),
            peers: peers.clone(),
        };
        let node = Arc::new(Node::new(
            cfg.node_id,
            advertised_host,
            advertised_port,
            cfg.advertised_peer.clone(),
            proposer,
            active.clone(),
            raft.clone(),
            cfg.heartbeat_interval,
            events.clone(),
            metadata.clone(),
        ));
        let quorum = Quorum {
            config: cfg.clone(),
            raft,
            peers,
            active,
            node: node.clone(),
            metadata,
            changes,
            events,
            shutdown_tx,
            tasks: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
        };
        if let Err(e) = node.register(cfg.quorum_start_timeout).await {
            for t in &tasks {
                t.abort();
            }
            quorum.stop().await;
            return Err(quorum.start_error(e));
        }
        tasks.push(tokio::spawn(node.heartbeat_loop(shutdown_rx)));
        *quorum.tasks.lock().unwrap_or_else(|p| p.into_inner()) = tasks;
        quorum.sync_unclean_flag().await;
        Ok(Arc::new(quorum))
    }

    fn start_error(&self, e: anyhow::Error) -> anyhow::Error {
        let voters = self.config.voters.len();
        let answered = self.peers.answered() + 1;
        anyhow::anyhow!(
            "node {} could not register with the metadata quorum within {} s: {answered} of {voters} voters answered (this node included; a majority of {} is needed). Check --controller-quorum and that the other nodes are running. Last error: {e:#}",
            self.config.node_id,
            self.config.quorum_start_timeout.as_secs_f64(),
            voters / 2 + 1
        )
    }

    /// `config.unclean_leader_election` into the metadata, if it differs (the node started
    /// last decides).
    async fn sync_unclean_flag(&self) {
        let want = self.config.unclean_leader_election;
        if self.metadata.borrow().unclean_leader_election == want {
            return;
        }
        let cmd = Command::SetUncleanLeaderElection { enabled: want };
        if let Err(e) = self.node.proposer.submit(cmd, SUBMIT_TIMEOUT).await {
            tracing::warn!("cannot set unclean.leader.election.enable={want}: {e:#}");
        }
    }

    /// This node's handle for its broker.
    pub fn handle(self: &Arc<Self>) -> ClusterHandle {
        ClusterHandle {
            node_id: self.config.node_id,
            config: self.config.clone(),
            metadata: self.metadata.clone(),
            controller: self.clone(),
            events: self.events.clone(),
        }
    }

    /// The epoch of this broker's current registration.
    pub fn broker_epoch(&self) -> i64 {
        self.node.epoch()
    }

    /// Whether this node is the active controller (Kafka's ActiveControllerCount 1).
    pub fn is_active_controller(&self) -> bool {
        self.active.is_active()
    }

    /// The Raft leader, i.e. the active controller, as this node knows it.
    pub fn active_controller(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader.map(node_id)
    }

    /// Fenced brokers in the latest applied metadata (Kafka's FencedBrokerCount).
    pub fn fenced_brokers(&self) -> usize {
        self.metadata
            .borrow()
            .brokers
            .values()
            .filter(|b| b.fenced)
            .count()
    }

    /// Every change this node applies from now on (fenced, elected, ISR shrink/expand...),
    /// as written to its event log: for metrics that count them.
    pub fn changes(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// The latest applied metadata.
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        self.metadata.borrow().clone()
    }

    /// Snapshots the metadata now and purges the log up to it, within `within`; returns the
    /// purged index. (openraft does both by itself every `SNAPSHOT_EVERY` entries; this is
    /// for tests of snapshot install and restart from a snapshot.)
    pub async fn compact_now(&self, within: Duration) -> anyhow::Result<u64> {
        let applied = self
            .raft
            .metrics()
            .borrow()
            .last_applied
            .context("nothing applied yet")?;
        self.raft.trigger().snapshot().await?;
        self.raft
            .wait(Some(within))
            .metrics(
                |m| m.snapshot.is_some_and(|s| s.index >= applied.index),
                "snapshot",
            )
            .await?;
        self.raft.trigger().purge_log(applied.index).await?;
        self.raft
            .wait(Some(within))
            .metrics(
                |m| m.purged.is_some_and(|p| p.index >= applied.index),
                "purge",
            )
            .await?;
        Ok(applied.index)
    }

    /// Controlled shutdown (SIGTERM): leaderships move away, then heartbeats stop. Call
    /// `shutdown` after it.
    pub async fn controlled_shutdown(&self, timeout: Duration) -> anyhow::Result<ShutdownReport> {
        self.node.controlled_shutdown(timeout).await
    }

    /// Stops everything: heartbeats, the controller duties, the listener and connections,
    /// and the Raft. Idempotent.
    pub async fn shutdown(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        self.node.stop_heartbeats();
        let _ = self.shutdown_tx.send(true);
        for t in tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), t)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        self.stop().await;
    }

    async fn stop(&self) {
        if self.stopped.swap(true, Ordering::Relaxed) {
            return;
        }
        self.peers.close_all().await;
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("the metadata quorum's Raft did not stop cleanly: {e}");
        }
    }
}

impl Drop for Quorum {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        for t in self
            .tasks
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            t.abort();
        }
    }
}

/// With empty storage, initializes the Raft group with every voter (the same membership on
/// every node, so safe to do everywhere); a node already part of the group skips it.
async fn bootstrap(raft: &Raft, cfg: &ClusterConfig) -> anyhow::Result<()> {
    if raft
        .is_initialized()
        .await
        .context("the metadata quorum's Raft stopped")?
    {
        return Ok(());
    }
    let members: BTreeMap<u64, BasicNode> = cfg
        .voters
        .iter()
        .map(|v| (raft_id(v.id), BasicNode::new(v.addr.to_string())))
        .collect();
    match raft.initialize(members).await {
        Ok(()) => Ok(()),
        Err(openraft::error::RaftError::APIError(
            openraft::error::InitializeError::NotAllowed(_),
        )) => Ok(()),
        Err(e) => Err(anyhow::anyhow!("cannot bootstrap the metadata quorum: {e}")),
    }
}

impl Controller for Quorum {
    fn submit(&self, cmd: Command) -> BoxFuture<anyhow::Result<Reply>> {
        let proposer = self.node.proposer.clone();
        Box::pin(async move { proposer.submit(cmd, SUBMIT_TIMEOUT).await })
    }

    fn active_controller(&self) -> Option<NodeId> {
        Quorum::active_controller(self)
    }
}
