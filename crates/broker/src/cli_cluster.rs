//! `kbench cluster`: a replicated bundled cluster of N broker processes on loopback, in the
//! foreground until Ctrl-C or SIGTERM; and `kbench cluster restart-node`, the restart argv
//! its cluster file gives fault steps.
//!
//! Owns: the flags and the foreground loop. Must not: hold cluster logic (see `launcher`).

use std::path::PathBuf;
use std::time::Duration;

use crate::launcher::{restart_node, ClusterSpec, LocalCluster};

/// What `kbench cluster --help` says after the flags: the cluster's shape, defaults, limits.
const CLUSTER_HELP: &str = "\
Each node is one `kbench broker --node-id N --controller-quorum ...` process: a voter of the
metadata quorum (Raft) and a broker holding replicas (KRaft's combined mode). Kafka's defaults:
broker.session.timeout.ms 9000, broker.heartbeat.interval.ms 2000, replica.lag.time.max.ms
30000, min.insync.replicas 1, unclean.leader.election.enable false; the default replication
factor is min(3, nodes). Change them for every node after `--` (see `kbench broker --help`).

The cluster file (<data dir>/cluster.json) names each node's pid, addresses and restart
command, in the format of scripts/kafka.sh --nodes 3: give it to `--cluster-file` for faults.
SIGTERM to one node is a controlled shutdown (its leaderships move first); Ctrl-C stops all
nodes at once. A node that dies stays dead until its restart command runs.

Limits: 1 to 9 nodes, all voters, so a majority must be up for any metadata change (with 2 of 3
down, acks=1 still works on a leader that is up; acks=all times out); no partition reassignment,
no leader rebalancing, no KIP-848 groups, no Fetch topic ids.";

/// Flags of `kbench cluster`.
#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true, after_help = CLUSTER_HELP)]
pub struct ClusterCmdArgs {
    #[command(subcommand)]
    pub action: Option<ClusterAction>,
    #[command(flatten)]
    pub start: StartArgs,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ClusterAction {
    /// Start one node of a running cluster again (stopping it first if it runs), wait until it
    /// accepts connections and record its new pid in the cluster file.
    RestartNode {
        /// The cluster file `kbench cluster` wrote (<data dir>/cluster.json).
        #[arg(long, value_name = "PATH")]
        cluster_file: PathBuf,
        /// The node id.
        #[arg(long, value_name = "N")]
        node: i32,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    /// How many nodes (each a broker and a metadata-quorum voter).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub nodes: i32,
    /// Where the nodes keep their data (node-N/), logs (node-N.log) and the cluster file
    /// (cluster.json). Used again, it restarts the same cluster on the same ports
    /// [default: a temp dir removed at exit].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Serve every node's Prometheus metrics, each on a port of its own (in the cluster file).
    #[arg(long)]
    pub metrics: bool,
    /// Put two `kbench proxy` processes in front of each node: a client proxy (what clients
    /// connect to; the node advertises it) and a peer proxy (what followers replicate
    /// through), so that fault steps `side=client|peer` cut clients off or isolate a leader
    /// from its followers. The metadata quorum is never proxied. Both are in the cluster file.
    #[arg(long)]
    pub proxied: bool,
    /// Flags for every node, after `--`: any of `kbench broker --help`, e.g.
    /// `-- --broker-session-timeout-ms 3000 --min-insync-replicas 2`.
    #[arg(last = true, value_name = "BROKER FLAGS")]
    pub broker_args: Vec<String>,
}

/// Runs `kbench cluster`.
pub fn run(args: ClusterCmdArgs) -> anyhow::Result<()> {
    if let Some(ClusterAction::RestartNode { cluster_file, node }) = &args.action {
        restart_node(cluster_file, *node)?;
        eprintln!("node {node} restarted");
        return Ok(());
    }
    let a = args.start;
    let temp = match &a.data_dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("kbench-cluster-")
                .tempdir()?,
        ),
    };
    let data_dir = a
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.as_ref().expect("made").path().to_path_buf());
    let spec = ClusterSpec {
        nodes: a.nodes,
        data_dir,
        program: std::env::current_exe()?,
        program_args: vec!["broker".into()],
        broker_args: a.broker_args,
        metrics: a.metrics,
        proxied: a.proxied,
    };
    let mut cluster = LocalCluster::start(&spec)?;
    println!("{}", cluster.bootstrap()?);
    eprintln!(
        "kbench cluster: {} nodes up{}; cluster file {}; Ctrl-C stops them (nothing is restarted by itself)",
        spec.nodes,
        if spec.proxied { " behind client and peer proxies" } else { "" },
        cluster.cluster_file().display()
    );
    wait_for_stop_signal(&mut cluster)?;
    eprintln!("kbench cluster stopping");
    cluster.stop();
    drop(temp);
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM, saying so when a node exits meanwhile.
fn wait_for_stop_signal(cluster: &mut LocalCluster) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                r = tokio::signal::ctrl_c() => { r?; return anyhow::Ok(()); }
                _ = term.recv() => return Ok(()),
                _ = tick.tick() => {
                    for (id, status) in cluster.reap_exited() {
                        eprintln!("kbench cluster: node {id} exited ({status}); not restarting it");
                    }
                }
            }
        }
    })
}
