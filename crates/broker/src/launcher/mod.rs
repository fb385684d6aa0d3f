//! `kbench cluster`: starts N broker processes on loopback as one replicated cluster, writes
//! its cluster file, and stops them again. Also `--embedded cluster:N` in the load commands.
//!
//! One OS process per node (`kbench broker --node-id N --controller-quorum ...`), so that
//! SIGKILL, SIGSTOP and SIGTERM of a node mean what they mean for Kafka. Nothing is restarted
//! by itself: a node that dies stays dead until someone runs the `restart` argv of the cluster
//! file (`kbench cluster restart-node`). Signals go to one pid each, checked to be > 1 and
//! not ours: never a process group, never a negative pid.
//!
//! The cluster file (`<data dir>/cluster.json`) has the format of `scripts/kafka.sh --nodes 3`
//! (schema/cluster.schema.json), so fault steps drive a bundled cluster and Apache Kafka alike.
//! A data dir used before keeps its ports: the quorum's voters are part of its state.
//!
//! `--proxied` (`ClusterSpec::proxied`) starts two `kbench proxy` processes per node first
//! (`proxies`), and each node advertises its client proxy to clients and its peer proxy to
//! its followers; stop stops the proxies after the nodes, and a restarted node keeps them.

mod proxies;

pub use proxies::ProxyEntry;
use proxies::ProxyPorts;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// How long a node may take from spawn to accepting client connections (it first joins the
/// quorum and registers, which needs a majority of the nodes up).
const START_WAIT: Duration = Duration::from_secs(60);
/// How long a node may take to exit (SIGTERM: after a controlled shutdown moves its leaderships).
const STOP_WAIT: Duration = Duration::from_secs(30);
const KILL_WAIT: Duration = Duration::from_secs(5);

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub nodes: i32,
    /// Holds `node-N/` data dirs, `node-N.log` and `cluster.json`.
    pub data_dir: PathBuf,
    /// The kbench binary and the arguments before the broker flags (`["broker"]`).
    pub program: PathBuf,
    pub program_args: Vec<String>,
    /// Flags given to every node after its own (`--broker-session-timeout-ms 2000`, ...).
    pub broker_args: Vec<String>,
    /// Serve each node's Prometheus metrics on a port of its own.
    pub metrics: bool,
    /// A client proxy and a peer proxy in front of each node (`kbench cluster --proxied`).
    pub proxied: bool,
}

/// One node as the cluster file describes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeEntry {
    pub id: i32,
    pub pid: i32,
    /// The client address: the client proxy when proxied, else `direct`.
    pub bootstrap: String,
    /// The node's own listener (clients and peers alike when not proxied).
    pub direct: String,
    /// The replication address followers dial: the peer proxy when proxied, else `direct`.
    #[serde(default)]
    pub peer: String,
    /// The node's own listener for replication (the one real listener: `direct`).
    #[serde(default)]
    pub peer_direct: String,
    /// The node's metadata-quorum listener.
    pub controller: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<String>,
    pub log: String,
    pub restart: Vec<String>,
    /// The argv that starts this node (what `restart` runs again).
    pub argv: Vec<String>,
    /// `null` when not proxied (the schema requires both fields).
    pub client_proxy: Option<ProxyEntry>,
    pub peer_proxy: Option<ProxyEntry>,
}

impl NodeEntry {
    fn proxies(&self) -> impl Iterator<Item = (&'static str, &ProxyEntry)> {
        [("client", &self.client_proxy), ("peer", &self.peer_proxy)]
            .into_iter()
            .filter_map(|(side, p)| p.as_ref().map(|p| (side, p)))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterFile {
    pub schema_version: u32,
    pub kind: String,
    pub state_dir: String,
    pub bootstrap: String,
    pub nodes: Vec<NodeEntry>,
}

impl ClusterFile {
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the cluster file {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a kbench cluster file", path.display()))
    }

    /// Replaces the file atomically (a reader never sees half of it).
    pub fn write(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(self)? + "\n")?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

/// A running cluster started by this process; dropping it stops every node.
#[derive(Debug)]
pub struct LocalCluster {
    file: PathBuf,
    children: Vec<(i32, Child)>,
    /// The `kbench proxy` processes started here (empty unless proxied).
    proxies: Vec<Child>,
    /// Whether this start wrote the cluster file: before, it may hold an earlier run's pids.
    written: bool,
    stopped: bool,
}

impl LocalCluster {
    /// Starts every node and returns once all accept client connections. A fresh cluster
    /// whose free ports were taken by someone else between choosing and binding them (other
    /// programs pick free ports too) is started again on new ones, at most twice.
    pub fn start(spec: &ClusterSpec) -> Result<Self> {
        let fresh = !spec.data_dir.join("cluster.json").exists();
        let mut attempts = 0;
        loop {
            match Self::start_once(spec) {
                Err(e)
                    if fresh
                        && attempts < 2
                        && format!("{e:#}").contains("Address already in use") =>
                {
                    attempts += 1;
                    tracing::warn!(
                        "a chosen port was taken meanwhile, starting again on others: {e:#}"
                    );
                    // The failed start's nodes are stopped (dropped); their state names the old
                    // ports, so it goes too.
                    let _ = std::fs::remove_file(spec.data_dir.join("cluster.json"));
                    for id in 1..=spec.nodes {
                        let _ = std::fs::remove_dir_all(spec.data_dir.join(format!("node-{id}")));
                    }
                }
                r => return r,
            }
        }
    }

    fn start_once(spec: &ClusterSpec) -> Result<Self> {
        if !(1..=9).contains(&spec.nodes) {
            bail!("--nodes {}: a bundled cluster has 1 to 9 nodes", spec.nodes);
        }
        std::fs::create_dir_all(&spec.data_dir).with_context(|| {
            format!(
                "cannot create the data dir {} (--data-dir)",
                spec.data_dir.display()
            )
        })?;
        let file = spec.data_dir.join("cluster.json");
        let ports = ports_for(spec, &file)?;
        let quorum = (0..spec.nodes as usize)
            .map(|i| format!("{}@127.0.0.1:{}", i + 1, ports[i].quorum))
            .collect::<Vec<_>>()
            .join(",");
        let mut entries = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            entries.push(node_entry(spec, &file, i as i32 + 1, p, &quorum));
        }
        let mut cluster = LocalCluster {
            file: file.clone(),
            children: Vec::new(),
            proxies: Vec::new(),
            written: false,
            stopped: false,
        };
        // Proxies first: a node is reported up only once its clients can reach it.
        for e in &mut entries {
            cluster.start_proxies(spec, e)?;
        }
        for e in &mut entries {
            let child = spawn_node(&e.argv, Path::new(&e.log))?;
            e.pid = child.id() as i32;
            cluster.children.push((e.id, child));
        }
        let cf = ClusterFile {
            schema_version: 1,
            kind: "kbench-bundled".into(),
            state_dir: spec.data_dir.display().to_string(),
            bootstrap: entries
                .iter()
                .map(|e| e.bootstrap.clone())
                .collect::<Vec<_>>()
                .join(","),
            nodes: entries,
        };
        cf.write(&file)?;
        cluster.written = true;
        let deadline = Instant::now() + START_WAIT;
        for e in &cf.nodes {
            cluster.wait_listening(e, deadline)?;
        }
        Ok(cluster)
    }

    pub fn cluster_file(&self) -> &Path {
        &self.file
    }

    /// Starts node `e`'s proxies (if it has any), records their pids, waits until they answer.
    fn start_proxies(&mut self, spec: &ClusterSpec, e: &mut NodeEntry) -> Result<()> {
        let upstream = e.direct.clone();
        for (side, slot) in [("client", &mut e.client_proxy), ("peer", &mut e.peer_proxy)] {
            let Some(p) = slot.as_mut() else { continue };
            let port = |a: &str| -> Result<u16> { Ok(a.parse::<SocketAddr>()?.port()) };
            let argv = proxies::argv(
                &spec.program,
                port(&p.listen)?,
                &upstream,
                port(&p.control)?,
            );
            let log = spec
                .data_dir
                .join(format!("node-{}-{side}-proxy.log", e.id));
            let mut child = proxies::spawn(&argv, &log)?;
            p.pid = child.id() as i32;
            let ready = proxies::wait_ready(&mut child, p, &log);
            self.proxies.push(child);
            ready.with_context(|| format!("node {}'s {side} proxy", e.id))?;
        }
        Ok(())
    }

    pub fn bootstrap(&self) -> Result<String> {
        Ok(ClusterFile::read(&self.file)?.bootstrap)
    }

    fn wait_listening(&mut self, e: &NodeEntry, deadline: Instant) -> Result<()> {
        let addr: SocketAddr = e.direct.parse()?;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Some((_, child)) = self.children.iter_mut().find(|(id, _)| *id == e.id) {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "node {} exited while starting ({status}):\n{}",
                        e.id,
                        log_tail(Path::new(&e.log))
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "node {} did not accept connections on {} within {}s:\n{}",
                    e.id,
                    e.direct,
                    START_WAIT.as_secs(),
                    log_tail(Path::new(&e.log))
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Nodes this process started that have exited since the last call (reaped), with how.
    pub fn reap_exited(&mut self) -> Vec<(i32, std::process::ExitStatus)> {
        let mut out = Vec::new();
        self.children
            .retain_mut(|(id, child)| match child.try_wait() {
                Ok(Some(status)) => {
                    out.push((*id, status));
                    false
                }
                _ => true,
            });
        out
    }

    /// SIGINT to every node's current pid (from the cluster file: restarted nodes too), then
    /// SIGKILL to those still running after the wait.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let from_file = match self.written {
            true => ClusterFile::read(&self.file),
            false => Err(anyhow::anyhow!("not written by this start")),
        };
        let (pids, proxy_pids): (Vec<i32>, Vec<i32>) = match from_file {
            Ok(cf) => (
                cf.nodes.iter().map(|n| n.pid).collect(),
                cf.nodes
                    .iter()
                    .flat_map(|n| n.proxies().map(|(_, p)| p.pid))
                    .collect(),
            ),
            Err(_) => (
                self.children.iter().map(|(_, c)| c.id() as i32).collect(),
                self.proxies.iter().map(|c| c.id() as i32).collect(),
            ),
        };
        // SIGINT: every node stops at once, without a controlled shutdown (there is nobody
        // left to hand leaderships to, and no quorum to agree on it).
        for pid in &pids {
            signal(*pid, rustix::process::Signal::INT);
        }
        let deadline = Instant::now() + STOP_WAIT;
        while Instant::now() < deadline && pids.iter().any(|p| self.running(*p)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        for pid in pids.iter().filter(|p| self.running(**p)) {
            tracing::warn!(
                "node pid {pid} did not stop within {}s of SIGINT: SIGKILL",
                STOP_WAIT.as_secs()
            );
            signal(*pid, rustix::process::Signal::KILL);
        }
        let deadline = Instant::now() + KILL_WAIT;
        while Instant::now() < deadline && pids.iter().any(|p| self.running(*p)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        // The proxies last: until the nodes are gone, their clients and followers use them.
        self.stop_proxies(&proxy_pids);
    }

    /// SIGTERM to each proxy (they exit at once), SIGKILL past a short wait.
    fn stop_proxies(&mut self, pids: &[i32]) {
        for pid in pids {
            signal(*pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + KILL_WAIT;
        while Instant::now() < deadline && pids.iter().any(|p| self.running(*p)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        for pid in pids.iter().filter(|p| self.running(**p)) {
            tracing::warn!(
                "proxy pid {pid} did not stop within {}s of SIGTERM: SIGKILL",
                KILL_WAIT.as_secs()
            );
            signal(*pid, rustix::process::Signal::KILL);
        }
    }

    /// Whether `pid` still runs, reaping it when it is our child.
    fn running(&mut self, pid: i32) -> bool {
        if let Some((_, child)) = self.children.iter_mut().find(|(_, c)| c.id() as i32 == pid) {
            return matches!(child.try_wait(), Ok(None));
        }
        if let Some(child) = self.proxies.iter_mut().find(|c| c.id() as i32 == pid) {
            return matches!(child.try_wait(), Ok(None));
        }
        process_alive(pid)
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Ports {
    client: u16,
    quorum: u16,
    metrics: Option<u16>,
    proxies: Option<ProxyPorts>,
}

/// The ports of a data dir used before (its quorum knows its voters by address), else free
/// ones.
fn ports_for(spec: &ClusterSpec, file: &Path) -> Result<Vec<Ports>> {
    if file.exists() {
        let cf = ClusterFile::read(file)?;
        if cf.nodes.len() != spec.nodes as usize {
            bail!(
                "--data-dir {} holds a cluster of {} nodes, not {}: use --nodes {} or another data dir",
                spec.data_dir.display(),
                cf.nodes.len(),
                spec.nodes,
                cf.nodes.len()
            );
        }
        return cf
            .nodes
            .iter()
            .map(|n| {
                let port = |a: &str| -> Result<u16> { Ok(a.parse::<SocketAddr>()?.port()) };
                let old = ProxyPorts::from_entries(n.client_proxy.as_ref(), n.peer_proxy.as_ref())?;
                Ok(Ports {
                    client: port(&n.direct)?,
                    quorum: port(&n.controller)?,
                    metrics: n.metrics.as_deref().map(port).transpose()?,
                    proxies: match (spec.proxied, old) {
                        (false, _) => None,
                        (true, Some(p)) => Some(p),
                        (true, None) => Some(free_proxy_ports()?),
                    },
                })
            })
            .collect();
    }
    let per_node = if spec.metrics { 3 } else { 2 };
    let free = free_ports(spec.nodes as usize * per_node)?;
    free.chunks(per_node)
        .map(|c| {
            Ok(Ports {
                client: c[0],
                quorum: c[1],
                metrics: c.get(2).copied(),
                proxies: spec.proxied.then(free_proxy_ports).transpose()?,
            })
        })
        .collect()
}

fn free_proxy_ports() -> Result<ProxyPorts> {
    let f = free_ports(4)?;
    Ok(ProxyPorts {
        client: f[0],
        client_control: f[1],
        peer: f[2],
        peer_control: f[3],
    })
}

fn node_entry(spec: &ClusterSpec, file: &Path, id: i32, p: &Ports, quorum: &str) -> NodeEntry {
    let client = format!("127.0.0.1:{}", p.client);
    let dir = spec.data_dir.join(format!("node-{id}"));
    let mut argv = vec![spec.program.display().to_string()];
    argv.extend(spec.program_args.iter().cloned());
    argv.extend([
        "--node-id".to_string(),
        id.to_string(),
        "--controller-quorum".into(),
        quorum.to_string(),
        "--listen".into(),
        client.clone(),
        "--data-dir".into(),
        dir.display().to_string(),
    ]);
    let metrics = p.metrics.map(|m| format!("127.0.0.1:{m}"));
    if let Some(m) = &metrics {
        argv.extend(["--metrics-listen".to_string(), m.clone()]);
    }
    let proxy = |listen: u16, control: u16| ProxyEntry {
        pid: 0,
        listen: format!("127.0.0.1:{listen}"),
        control: format!("127.0.0.1:{control}"),
    };
    let client_proxy = p.proxies.map(|x| proxy(x.client, x.client_control));
    let peer_proxy = p.proxies.map(|x| proxy(x.peer, x.peer_control));
    let bootstrap = client_proxy
        .as_ref()
        .map_or(client.clone(), |x| x.listen.clone());
    let peer = peer_proxy
        .as_ref()
        .map_or(client.clone(), |x| x.listen.clone());
    if p.proxies.is_some() {
        // Clients are told the client proxy, followers the peer proxy; both forward here.
        argv.extend([
            "--advertised-listener".to_string(),
            bootstrap.clone(),
            "--advertised-peer-listener".into(),
            peer.clone(),
        ]);
    }
    argv.extend(spec.broker_args.iter().cloned());
    let mut restart = vec![spec.program.display().to_string()];
    restart.extend([
        "cluster".to_string(),
        "restart-node".into(),
        "--cluster-file".into(),
        file.display().to_string(),
        "--node".into(),
        id.to_string(),
    ]);
    NodeEntry {
        id,
        pid: 0,
        bootstrap,
        direct: client.clone(),
        peer,
        peer_direct: client,
        controller: format!("127.0.0.1:{}", p.quorum),
        metrics,
        log: spec
            .data_dir
            .join(format!("node-{id}.log"))
            .display()
            .to_string(),
        restart,
        argv,
        client_proxy,
        peer_proxy,
    }
}

fn spawn_node(argv: &[String], log: &Path) -> Result<Child> {
    spawn_logged(argv, log, "node")
}

/// Starts `argv` with stdout and stderr appended to `log` (`what`: for the errors).
fn spawn_logged(argv: &[String], log: &Path, what: &str) -> Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open the {what} log {}", log.display()))?;
    Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("cannot start the {what} {}", argv.join(" ")))
}

/// `kbench cluster restart-node`: stops the node if it runs (SIGTERM, then SIGKILL), starts it
/// again with its argv, waits until it accepts connections and records the new pid. Its
/// proxies keep running (their connections to the old process were cut by its exit).
pub fn restart_node(file: &Path, id: i32) -> Result<()> {
    let mut cf = ClusterFile::read(file)?;
    let Some(i) = cf.nodes.iter().position(|n| n.id == id) else {
        let ids: Vec<String> = cf.nodes.iter().map(|n| n.id.to_string()).collect();
        bail!(
            "--node {id} is not in {} (its nodes: {})",
            file.display(),
            ids.join(", ")
        );
    };
    let old = cf.nodes[i].pid;
    if process_alive(old) {
        signal(old, rustix::process::Signal::TERM);
        let deadline = Instant::now() + STOP_WAIT;
        while process_alive(old) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if process_alive(old) {
            signal(old, rustix::process::Signal::KILL);
        }
    }
    let entry = cf.nodes[i].clone();
    let child = spawn_node(&entry.argv, Path::new(&entry.log))?;
    cf.nodes[i].pid = child.id() as i32;
    cf.write(file)?;
    let mut waiter = LocalCluster {
        file: file.to_path_buf(),
        children: vec![(id, child)],
        proxies: Vec::new(),
        written: true,
        stopped: true,
    };
    waiter.wait_listening(&entry, Instant::now() + START_WAIT)?;
    // The node outlives this command: it is not ours to stop.
    waiter.children.clear();
    Ok(())
}

fn free_ports(n: usize) -> Result<Vec<u16>> {
    // Held together so that no two are the same; released just before the nodes bind them.
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// Sends `sig` to one process: never 0, 1, a negative pid (a group) or ourselves.
fn signal(pid: i32, sig: rustix::process::Signal) {
    if pid <= 1 || pid == std::process::id() as i32 {
        return;
    }
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// Whether `pid` exists and is not a zombie.
pub fn process_alive(pid: i32) -> bool {
    if pid <= 1 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            stat.rsplit_once(')')
                .and_then(|(_, r)| r.trim_start().chars().next())
                != Some('Z')
        }
        Err(_) => false,
    }
}

pub(crate) fn log_tail(path: &Path) -> String {
    let Ok(f) = std::fs::File::open(path) else {
        return String::new();
    };
    let lines: Vec<String> = BufReader::new(f).lines().map_while(|l| l.ok()).collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
