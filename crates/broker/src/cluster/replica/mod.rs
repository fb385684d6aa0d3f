//! The data path between nodes: follower fetchers, the leader's view of its followers, the
//! high watermark, ISR changes, and reacting to leadership changes in the metadata.
//!
//! # Layout
//! * `role` — what this node is for a partition (none, follower, leader with its followers'
//!   state) and the in-sync and epoch rules.
//! * `reconcile` — metadata → roles, logs created and deleted.
//! * `fetcher` — follower fetch tasks, one per leader node; `wire` — their connection.
//! * `leader` — the leader's side of a follower's Fetch.
//! * `high_watermark` — min log end over the ISR.
//! * `isr` — AlterPartition requests (shrink, expand) and the HW checkpoint ticker.
//! * `append` — the produce path of a leader (`append_as_leader`).
//!
//! Lock order: a partition's log before its role, never the other way.

pub mod append;
pub mod fetcher;
pub mod high_watermark;
pub mod isr;
pub mod leader;
pub mod reconcile;
pub mod role;
pub mod wire;

use std::sync::Arc;

use tokio::sync::watch;

use crate::cluster::ClusterMetadata;
use crate::state::Broker;

pub use append::{append_as_leader, AppendOutcome};
pub use role::Role;

/// Starts this node's replication duties; they end when `shutdown` turns true.
pub fn spawn(broker: Arc<Broker>, shutdown: watch::Receiver<bool>) {
    if broker.cluster.is_none() {
        return;
    }
    tokio::spawn(isr::run(broker.clone(), shutdown.clone()));
    tokio::spawn(watch_metadata(broker, shutdown));
}

/// Reconciles on every metadata change, and points the fetchers at the leaders.
async fn watch_metadata(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let Some(c) = broker.cluster.clone() else {
        return;
    };
    let mut md_rx = c.metadata.clone();
    let b = broker.clone();
    let checkpoint = Arc::new(
        tokio::task::spawn_blocking(move || b.topics.load_high_watermarks())
            .await
            .unwrap_or_default(),
    );
    let mut fetchers = fetcher::Fetchers::new(broker.clone(), shutdown.clone());
    let mut prev = Arc::new(ClusterMetadata::default());
    loop {
        let md = md_rx.borrow_and_update().clone();
        let (b, c2, p2, m2, cp) = (
            broker.clone(),
            c.clone(),
            prev.clone(),
            md.clone(),
            checkpoint.clone(),
        );
        match tokio::task::spawn_blocking(move || reconcile::apply(&b, &c2, &p2, &m2, &cp)).await {
            Ok(following) => fetchers.assign(&following),
            Err(e) => tracing::error!("reconciling the metadata panicked: {e}"),
        }
        prev = md;
        tokio::select! {
            r = md_rx.changed() => if r.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}
