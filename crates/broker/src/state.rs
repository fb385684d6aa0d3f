//! The broker's shared state, one `Arc<Broker>` per running broker: settings, topics, the
//! group and transaction coordinators, producer-id allocation and metrics.
//!
//! Owns: wiring these together at startup (including recovery of what is on disk) and the
//! producer-id block file. Must not: do network I/O.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::cluster::ClusterHandle;
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
}

impl Broker {
    /// Opens (recovering) everything under `data_dir`.
    pub fn open(
        cfg: BrokerConfig,
        data_dir: &Path,
        advertised_host: String,
        advertised_port: i32,
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
        let offsets = OffsetStore::open(data_dir)?;
        let groups = Coordinator::new(
            offsets,
            Duration::from_millis(cfg.group_initial_rebalance_delay_ms),
        );
        let txns = TxnCoordinator::open(data_dir, cfg.transaction_max_timeout_ms)?;
        let metrics = Metrics::new();
        // A single node is its own controller, as Kafka reports for a one-node cluster.
        metrics.set_active_controller(true);
        Ok(Broker {
            txns,
            producer_ids: ProducerIds::open(data_dir)?,
            metrics,
            data_dir: data_dir.to_path_buf(),
            advertised_host,
            advertised_port,
            topics,
            groups,
            cfg,
            cluster: None,
        })
    }

    /// Opens a node of a cluster: as `open`, with the node's handle on the metadata quorum.
    pub fn open_clustered(
        cfg: BrokerConfig,
        data_dir: &Path,
        advertised_host: String,
        advertised_port: i32,
        cluster: ClusterHandle,
    ) -> anyhow::Result<Self> {
        let mut broker = Self::open(cfg, data_dir, advertised_host, advertised_port)?;
        // Until the quorum says this node leads it.
        broker.metrics.set_active_controller(false);
        broker.cluster = Some(cluster);
        Ok(broker)
    }
}

/// Hands out producer ids that are never reused across restarts: blocks of ids are reserved
/// by writing the block's end to `<data dir>/producer_ids` before any id of it is used.
#[derive(Debug)]
pub struct ProducerIds {
    path: PathBuf,
    state: Mutex<(i64, i64)>,
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
            path,
            state: Mutex::new((start, start)),
        };
        Ok(ids)
    }

    pub fn next(&self) -> std::io::Result<i64> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.0 >= st.1 {
            let end = st.1 + PID_BLOCK;
            let tmp = self.path.with_extension("tmp");
            std::fs::write(&tmp, end.to_string())?;
            std::fs::rename(&tmp, &self.path)?;
            st.1 = end;
        }
        let id = st.0;
        st.0 += 1;
        Ok(id)
    }
}
