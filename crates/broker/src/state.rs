//! The broker's shared state, one `Arc<Broker>` per running broker: settings, topics, the
//! group and transaction coordinators, producer-id allocation and metrics.
//!
//! Owns: wiring these together at startup (including recovery of what is on disk) and
//! producer-id blocks (a file on a single node, the quorum's blocks on a cluster node). Must not: do network I/O.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::cluster::coordinator::Coordination;
use crate::cluster::{ClusterHandle, Command, Controller, Reply};
use crate::group::{offsets::OffsetStore, Coordinator};
use crate::log::LogConfig;
use crate::metrics::Metrics;
use crate::topics::Topics;
use crate::txn::TxnCoordinator;
use crate::BrokerConfig;

/// The node id this single-node broker reports everywhere.
pub const NODE_ID: i32 = 1;
/// A stable cluster id (librdkafka's test 0063 checks that it does not change).
pub const CLUSTER_ID: &str = "kbench-bundled-broker";

#[derive(Debug)]
pub struct Broker {
    pub cfg: BrokerConfig,
    pub data_dir: PathBuf,
    pub advertised_host: String,
    pub advertised_port: i32,
    pub topics: Topics,
    pub groups: Coordinator,
    pub txns: TxnCoordinator,
    pub producer_ids: ProducerIds,
    pub metrics: Metrics,
    /// This node's cluster, when it is one of several (`None`: the single-node broker).
    pub cluster: Option<ClusterHandle>,
    /// Which `__consumer_offsets` partitions this node has loaded and coordinates (cluster).
    pub coordination: Coordination,
}

impl Broker {
    /// Opens (recovering) everything under `data_dir`.
    pub fn open(
        cfg: BrokerConfig,
        data_dir: &Path,
        advertised_host: String,
        advertised_port: i32,
    ) -> anyhow::Result<Self> {
        Self::open_with(cfg, data_dir, advertised_host, advertised_port, None)
    }

    /// Opens a node of a cluster: as `open`, with the node's handle on the metadata quorum.
    /// Its committed offsets and producer ids come from the cluster (the replicated
    /// `__consumer_offsets` and the quorum's producer-id blocks), not from node-local files.
    pub fn open_clustered(
        cfg: BrokerConfig,
        data_dir: &Path,
        advertised_host: String,
        advertised_port: i32,
        cluster: ClusterHandle,
    ) -> anyhow::Result<Self> {
        Self::open_with(
            cfg,
            data_dir,
            advertised_host,
            advertised_port,
            Some(cluster),
        )
    }

    fn open_with(
        cfg: BrokerConfig,
        data_dir: &Path,
        advertised_host: String,
        advertised_port: i32,
        cluster: Option<ClusterHandle>,
    ) -> anyhow::Result<Self> {
        let log_cfg = LogConfig {
            segment_bytes: cfg.segment_bytes,
            retention_bytes: cfg.retention_bytes,
            retention_ms: cfg.retention_ms,
            flush: cfg.flush,
            index_interval_bytes: 4096,
        };
        let topics = Topics::open(data_dir, log_cfg).map_err(|e| {
            anyhow::anyhow!("cannot open the data directory {}: {e}", data_dir.display())
        })?;
        let offsets = match cluster {
            None => OffsetStore::open(data_dir)?,
            Some(_) => OffsetStore::in_memory(),
        };
        let groups = Coordinator::new(
            offsets,
            Duration::from_millis(cfg.group_initial_rebalance_delay_ms),
        );
        let txns = match cluster {
            None => TxnCoordinator::open(data_dir, cfg.transaction_max_timeout_ms)?,
            Some(_) => TxnCoordinator::replicated(cfg.transaction_max_timeout_ms),
        };
        let metrics = Metrics::new();
        // A single node is its own controller, as Kafka reports for a one-node cluster; a
        // cluster node is one when the quorum says so.
        metrics.set_active_controller(cluster.is_none());
        Ok(Broker {
            txns,
            producer_ids: match cluster {
                None => ProducerIds::open(data_dir)?,
                Some(_) => ProducerIds::from_quorum(),
            },
            metrics,
            data_dir: data_dir.to_path_buf(),
            advertised_host,
            advertised_port,
            topics,
            groups,
            cfg,
            cluster,
            coordination: Coordination::default(),
        })
    }
}

/// Hands out producer ids that are never reused across restarts: blocks of ids are reserved
/// by writing the block's end to `<data dir>/producer_ids` before any id of it is used. On a
/// cluster node the blocks come from the quorum instead (`AllocateProducerIds`, KIP-730), so
/// that no two nodes, and no restart, hand out the same id.
#[derive(Debug)]
pub struct ProducerIds {
    /// `None`: blocks come from the quorum (`refill`).
    path: Option<PathBuf>,
    /// (next id, end of the block)
    state: Mutex<(i64, i64)>,
    /// One block request at a time.
    refilling: tokio::sync::Mutex<()>,
}

const PID_BLOCK: i64 = 1000;

impl ProducerIds {
    fn open(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join("producer_ids");
        let start = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(1000);
        let ids = ProducerIds {
            path: Some(path),
            state: Mutex::new((start, start)),
            refilling: tokio::sync::Mutex::new(()),
        };
        Ok(ids)
    }

    /// A cluster node's ids: empty until the first `refill`.
    fn from_quorum() -> Self {
        ProducerIds {
            path: None,
            state: Mutex::new((0, 0)),
            refilling: tokio::sync::Mutex::new(()),
        }
    }

    fn exhausted(&self) -> bool {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.0 >= st.1
    }

    /// On a cluster node: makes sure a block with free ids is held, asking the quorum for
    /// one if not, so that the next `next()` succeeds (unless concurrent callers use it up).
    pub async fn refill(&self, controller: &dyn Controller) -> std::io::Result<()> {
        let _one = self.refilling.lock().await;
        if self.path.is_some() || !self.exhausted() {
            return Ok(());
        }
        let reply = controller
            .submit(Command::AllocateProducerIds { count: PID_BLOCK })
            .await
            .map_err(std::io::Error::other)?;
        match reply {
            Reply::ProducerIds { first, count } => {
                *self.state.lock().unwrap_or_else(|p| p.into_inner()) = (first, first + count);
                Ok(())
            }
            other => Err(std::io::Error::other(format!(
                "the quorum answered AllocateProducerIds with {other:?}"
            ))),
        }
    }

    pub fn next(&self) -> std::io::Result<i64> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.0 >= st.1 {
            let Some(path) = &self.path else {
                return Err(std::io::Error::other(
                    "this node's producer-id block is used up (refill from the quorum)",
                ));
            };
            let end = st.1 + PID_BLOCK;
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, end.to_string())?;
            std::fs::rename(&tmp, path)?;
            st.1 = end;
        }
        let id = st.0;
        st.0 += 1;
        Ok(id)
    }
}
