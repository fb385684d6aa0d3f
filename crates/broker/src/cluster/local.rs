//! A `Controller` that applies commands at once, in-process: the metadata quorum without
//! Raft. For tests of the data path and handlers, which need metadata changes but not
//! consensus. Several nodes in one test may share one `LocalController` (one "quorum").

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::model::{ClusterMetadata, Command, Reply};
use super::{BoxFuture, Controller, EventLog};

#[derive(Debug)]
pub struct LocalController {
    state: Mutex<ClusterMetadata>,
    tx: watch::Sender<Arc<ClusterMetadata>>,
    events: Mutex<Vec<EventLog>>,
}

impl LocalController {
    pub fn new() -> Arc<Self> {
        let (tx, _) = watch::channel(Arc::new(ClusterMetadata::default()));
        Arc::new(LocalController {
            state: Mutex::new(ClusterMetadata::default()),
            tx,
            events: Mutex::new(Vec::new()),
        })
    }

    /// A receiver of every applied state, for a node's `ClusterHandle`.
    pub fn watch(&self) -> watch::Receiver<Arc<ClusterMetadata>> {
        self.tx.subscribe()
    }

    /// Also write applied changes to this node's event log.
    pub fn log_to(&self, log: EventLog) {
        self.events.lock().unwrap().push(log);
    }

    /// Applies at once (what `submit` does, without the future).
    pub fn apply(&self, cmd: &Command) -> Reply {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (reply, changes) = state.apply(cmd);
        for log in self.events.lock().unwrap().iter() {
            for c in &changes {
                log.record(None, c);
            }
        }
        self.tx.send_replace(Arc::new(state.clone()));
        reply
    }
}

impl Controller for LocalController {
    fn submit(&self, cmd: Command) -> BoxFuture<anyhow::Result<Reply>> {
        let reply = self.apply(&cmd);
        Box::pin(async move { Ok(reply) })
    }
}

/// A cluster of `n` in-process nodes sharing one `LocalController`, for tests of the data
/// path and handlers: each node is registered once it listens. Node ids are 1..=n. With a
/// `data_dir` in `base`, node N keeps its data (and its event log) in `<data_dir>/node-N`;
/// without, each node has a temp dir and no event log.
pub fn start_nodes(
    n: i32,
    base: crate::BrokerConfig,
) -> anyhow::Result<(Arc<LocalController>, Vec<crate::EmbeddedBroker>)> {
    use super::config::{ClusterConfig, Voter};
    let controller = LocalController::new();
    // Quorum addresses are never dialled with a LocalController; they only name the voters.
    let voters: Vec<Voter> = (1..=n)
        .map(|id| Voter {
            id,
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
        })
        .collect();
    let mut nodes = Vec::new();
    for id in 1..=n {
        let config = ClusterConfig::new(id, voters.clone());
        let data_dir = base.data_dir.as_ref().map(|d| d.join(format!("node-{id}")));
        let events = match &data_dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                EventLog::open(d, id)?
            }
            None => EventLog::disabled(id),
        };
        let handle = super::ClusterHandle {
            node_id: id,
            config: config.clone(),
            metadata: controller.watch(),
            controller: controller.clone(),
            events,
        };
        let node = crate::EmbeddedBroker::start_node(
            crate::BrokerConfig {
                cluster: Some(config),
                data_dir,
                ..base.clone()
            },
            Some(handle),
        )?;
        let addr = node.bootstrap_servers();
        let (host, port) = addr.rsplit_once(':').expect("host:port");
        controller.apply(&Command::RegisterBroker {
            id,
            host: host.to_string(),
            port: port.parse()?,
            peer: None,
        });
        nodes.push(node);
    }
    Ok((controller, nodes))
}
