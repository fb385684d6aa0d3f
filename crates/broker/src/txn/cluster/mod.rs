//! The transaction coordinator on a cluster node (Kafka's `TransactionStateManager` and
//! `TransactionMarkerChannelManager`): the coordinator of a transactional id is the leader
//! of its `__transaction_state` partition; every state change is a record of that
//! replicated partition, appended with acks=all before the request is answered; a new
//! leader rebuilds the partition's ids from its log and completes the transactions it finds
//! in PrepareCommit/PrepareAbort; markers go to each partition's leader (WriteTxnMarkers).
//!
//! Owns: which `__transaction_state` partitions this node has loaded (`Shared`), the order
//! "state change, then its record in the log" (`transact`), and ending a transaction
//! (`complete`). Must not: decide transaction rules (`txn::TxnCoordinator` does) or touch
//! partition logs other than through `leader` and `log`.
//!
//! EndTxn is answered after the markers are written, as the single-node path does (Kafka
//! answers once PrepareCommit is logged): a client that saw its commit succeed can read
//! its records at once with read_committed, and a failed marker write is reported.
//!
//! # Layout
//! * `log` — the records of `__transaction_state`: append and rebuild.
//! * `markers` — sending markers to partition leaders, with retries.
//! * `leader` — a partition leader writing a marker (WriteTxnMarkers, and this node's own).
//! * `offsets` — TxnOffsetCommit on a group coordinator: pending until the marker.

pub mod leader;
pub mod log;
pub mod markers;
pub mod offsets;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use super::{EndPlan, EndReason, TxnCoordinator, NONE};
use crate::cluster::coordinator::{self, partition_for, TRANSACTION_TOPIC};
use crate::group::{COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR};
use crate::state::Broker;

/// How often the coordinator looks for partitions to load and transactions to end, besides
/// every metadata change.
const TICK: Duration = Duration::from_millis(200);
/// How long a request waits for its id's partition to finish loading here before it is
/// answered COORDINATOR_LOAD_IN_PROGRESS (a new leader loads within milliseconds; the
/// client would retry anyway, this spares it the round trip and backoff).
const LOAD_WAIT: Duration = Duration::from_secs(3);

/// The cluster part of the coordinator's state.
#[derive(Debug, Default)]
pub struct Shared {
    /// Held from a state change until its records are in the log, so that the records of an
    /// id reach the log in the order its state changed.
    write: tokio::sync::Mutex<()>,
    /// `__transaction_state` partition → the leader epoch it was loaded at.
    loaded: Mutex<HashMap<i32, i32>>,
    pub(crate) links: markers::Links,
    pub(crate) offsets: offsets::Pending,
}

impl Shared {
    fn loaded(&self) -> MutexGuard<'_, HashMap<i32, i32>> {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where `tid` lives: (partition of `__transaction_state`, its leader epoch = the coordinator
/// epoch, partition count) if this node coordinates it now; else NOT_COORDINATOR, or
/// COORDINATOR_LOAD_IN_PROGRESS while the partition is being rebuilt here.
pub fn owner(broker: &Broker, tid: &str) -> Result<(i32, i32, usize), i16> {
    let c = broker.cluster.as_ref().ok_or(NOT_COORDINATOR)?;
    let meta = c.current();
    let t = meta.topics.get(TRANSACTION_TOPIC).ok_or(NOT_COORDINATOR)?;
    let n = t.partitions.len();
    let index = partition_for(tid, n);
    let p = &t.partitions[index as usize];
    if p.leader != c.node_id {
        return Err(NOT_COORDINATOR);
    }
    match broker.txns.cluster.loaded().get(&index) {
        Some(e) if *e == p.leader_epoch => Ok((index, p.leader_epoch, n)),
        _ => Err(COORDINATOR_LOAD_IN_PROGRESS),
    }
}

/// `owner`, waiting at most `LOAD_WAIT` while the partition is being loaded.
async fn owner_loaded(broker: &Broker, tid: &str) -> Result<(i32, i32, usize), i16> {
    let deadline = tokio::time::Instant::now() + LOAD_WAIT;
    loop {
        match owner(broker, tid) {
            Err(COORDINATOR_LOAD_IN_PROGRESS) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => return other,
        }
    }
}

/// Runs the state change `f` for `tid` and appends the records it wrote to the id's
/// partition (acks=all) before returning its result. A failed append leaves memory ahead of
/// the log: the partition is dropped and rebuilt from the log (the client retries).
pub async fn transact<T>(
    broker: &Arc<Broker>,
    tid: &str,
    f: impl FnOnce(&TxnCoordinator) -> T,
) -> Result<T, i16> {
    owner_loaded(broker, tid).await?;
    let _write = broker.txns.cluster.write.lock().await;
    // Leadership may have moved while this waited for the lock.
    owner(broker, tid)?;
    let out = f(&broker.txns);
    flush(broker).await?;
    Ok(out)
}

/// Appends the pending journal records, grouped by partition (the caller holds `write`).
async fn flush(broker: &Arc<Broker>) -> Result<(), i16> {
    let payloads = broker.txns.take_journal();
    if payloads.is_empty() {
        return Ok(());
    }
    let Some(n) = partition_count(broker) else {
        return Err(NOT_COORDINATOR);
    };
    let mut by_partition: BTreeMap<i32, Vec<Vec<u8>>> = BTreeMap::new();
    for p in payloads {
        let tid = super::journal::payload_tid(&p).unwrap_or_default();
        by_partition
            .entry(partition_for(&tid, n))
            .or_default()
            .push(p);
    }
    let mut result = Ok(());
    for (p, records) in by_partition {
        let e = log::append(broker, p, &records).await;
        if e != NONE {
            tracing::warn!(
                partition = p,
                error = e,
                "a transaction state record was not replicated: reloading {TRANSACTION_TOPIC}-{p}"
            );
            unload(broker, p, n);
            result = Err(NOT_COORDINATOR);
        }
    }
    result
}

fn partition_count(broker: &Broker) -> Option<usize> {
    let c = broker.cluster.as_ref()?;
    c.current()
        .topics
        .get(TRANSACTION_TOPIC)
        .map(|t| t.partitions.len())
}

/// Ends the transaction of `p`: its markers through the partition leaders, then (commit)
/// its offsets, then CompleteCommit/CompleteAbort in the log. The error code for EndTxn; a
/// failed marker write leaves it in Prepare* for the sweep to finish.
pub async fn complete(broker: &Arc<Broker>, p: &EndPlan) -> i16 {
    let coordinator_epoch = match owner(broker, &p.tid) {
        Ok((_, epoch, _)) => epoch,
        Err(e) => return e,
    };
    let e = markers::write_all(broker, p, coordinator_epoch).await;
    if e != NONE {
        tracing::warn!(transactional_id = %p.tid, error = e, "transaction markers not written yet");
        broker.txns.abandon(p);
        return e;
    }
    // The markers are the decision: a failed CompleteCommit record only means that the next
    // leader writes them again, so the client is told it succeeded.
    if transact(broker, &p.tid, |t| t.finish(p)).await.is_err() {
        tracing::warn!(transactional_id = %p.tid, "the completed state was not logged");
    }
    broker
        .metrics
        .transaction_ended(p.commit, p.reason == EndReason::TimedOut);
    NONE
}

/// Starts the coordinator's background duties (until `shutdown`): loading and dropping
/// `__transaction_state` partitions as leadership moves, ending timed-out transactions and
/// finishing half-ended ones.
pub fn spawn(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let Some(c) = broker.cluster.clone() else {
        return;
    };
    let mut rx = c.metadata.clone();
    tokio::spawn(async move {
        loop {
            rx.borrow_and_update();
            reconcile(&broker).await;
            sweep(&broker).await;
            tokio::select! {
                r = rx.changed() => if r.is_err() { break },
                _ = tokio::time::sleep(TICK) => {}
                _ = shutdown.changed() => break,
            }
        }
    });
}

/// Loads the partitions this node now leads, drops the others.
async fn reconcile(broker: &Arc<Broker>) {
    let Some(c) = &broker.cluster else { return };
    let (led, n) = coordinator::led_by(&c.current(), TRANSACTION_TOPIC, c.node_id);
    if n == 0 {
        return;
    }
    let loaded = broker.txns.cluster.loaded().clone();
    let (drop, load_now) = coordinator::leadership_changes(&led, &loaded);
    for p in drop {
        unload(broker, p, n);
    }
    for (p, epoch) in load_now {
        if broker.txns.cluster.loaded().get(&p) != Some(&epoch) {
            load(broker, p, epoch, n).await;
        }
    }
}

/// Stops coordinating the ids of partition `p`: their requests get NOT_COORDINATOR.
fn unload(broker: &Broker, p: i32, n: usize) {
    broker.txns.cluster.loaded().remove(&p);
    broker
        .txns
        .replace(|t| partition_for(t, n) == p, HashMap::new());
    tracing::info!(
        partition = p,
        "no longer the coordinator of {TRANSACTION_TOPIC}-{p}"
    );
}

/// Rebuilds the ids of partition `p` from its log; the sweep then finishes the ones found
/// in Prepare* (their markers may be missing).
async fn load(broker: &Arc<Broker>, p: i32, epoch: i32, n: usize) {
    if !log::wait_leader_role(broker, p, epoch).await {
        return;
    }
    let _write = broker.txns.cluster.write.lock().await;
    let b = broker.clone();
    match tokio::task::spawn_blocking(move || log::read(&b, p)).await {
        Ok(Ok(txns)) => {
            let count = txns.len();
            broker.txns.replace(|t| partition_for(t, n) == p, txns);
            broker.txns.cluster.loaded().insert(p, epoch);
            tracing::info!(
                partition = p,
                epoch,
                transactional_ids = count,
                "coordinator of {TRANSACTION_TOPIC}-{p}"
            );
        }
        Ok(Err(e)) => tracing::error!(partition = p, "cannot load {TRANSACTION_TOPIC}-{p}: {e}"),
        Err(e) => tracing::error!(
            partition = p,
            "the load of {TRANSACTION_TOPIC}-{p} failed: {e}"
        ),
    }
}

/// Aborts timed-out transactions and finishes half-ended ones, each in its own task.
async fn sweep(broker: &Arc<Broker>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let due = {
        let _write = broker.txns.cluster.write.lock().await;
        let due = broker.txns.due(now);
        if flush(broker).await.is_err() {
            // The partitions whose records failed were dropped; the others are offered again.
            for p in &due {
                broker.txns.abandon(p);
            }
            return;
        }
        due
    };
    for p in due {
        let b = broker.clone();
        tokio::spawn(async move {
            complete(&b, &p).await;
        });
    }
}
