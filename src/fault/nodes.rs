//! The nodes of a cluster that something else started (`scripts/kafka.sh --nodes 3`), as its
//! cluster file describes them, and the process and link faults that can be applied to them.
//!
//! The cluster file (JSON; format in the README and in `scripts/lib/kafka-cluster.sh`) is the
//! source of truth: it is read again before every action, so a restart done by the script
//! itself is seen. Signals go to one pid each, checked to be > 1 and not ours: never a process
//! group, never a negative pid. Link faults go to the node's proxies through their control
//! ports (`proxy::control`). This module must not start clusters, nor schedule faults.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rustix::process::{Pid, Signal};
use serde::Deserialize;

pub use crate::proxy::LinkFault;

/// How long a SIGTERMed node may take to exit (a controlled shutdown moves its leaderships).
const TERMINATE_WAIT: Duration = Duration::from_secs(60);
/// How long a SIGSTOP or SIGCONT may take to show in the process state.
const SIGNAL_WAIT: Duration = Duration::from_secs(5);
/// How long a SIGKILLed node may take to disappear.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// How long the restart command may run (it starts a JVM and waits until it answers).
const RESTART_WAIT: Duration = Duration::from_secs(240);
/// How long after the restart command the node's own listener must accept connections.
const LISTEN_WAIT: Duration = Duration::from_secs(60);
/// Timeout of one control-port exchange.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// Which of a node's proxies: the one clients connect through, or the one its peers replicate
/// through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkSide {
    Client,
    Peer,
}

#[derive(Debug, Clone, Deserialize)]
struct ClusterFile {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone, Deserialize)]
struct Node {
    id: i32,
    pid: i32,
    /// The node's own client listener (not its proxy).
    direct: String,
    /// argv that starts the node again and returns once it answers.
    restart: Vec<String>,
    client_proxy: Option<ProxyEntry>,
    peer_proxy: Option<ProxyEntry>,
}

#[derive(Debug, Clone, Deserialize)]
struct ProxyEntry {
    control: String,
}

/// The nodes of one cluster file.
pub struct NodeSet {
    path: PathBuf,
    ids: Vec<i32>,
}

impl NodeSet {
    /// Reads and checks `path`; the error names the file and the field.
    pub fn from_cluster_file(path: &Path) -> Result<NodeSet> {
        let nodes = read(path)?;
        Ok(NodeSet {
            path: path.to_path_buf(),
            ids: nodes.iter().map(|n| n.id).collect(),
        })
    }

    pub fn node_ids(&self) -> Vec<i32> {
        self.ids.clone()
    }

    /// SIGKILL, then waits (bounded) until the process is gone.
    pub fn kill(&self, id: i32) -> Result<()> {
        let node = self.node(id)?;
        signal(&node, Signal::KILL, "SIGKILL")?;
        wait_gone(&node, KILL_WAIT, "SIGKILL")
    }

    /// SIGSTOP, then waits (bounded) until the node is stopped: it freezes with its
    /// connections open.
    pub fn stop(&self, id: i32) -> Result<()> {
        let node = self.node(id)?;
        signal(&node, Signal::STOP, "SIGSTOP")?;
        wait_state(&node, |s| s == 'T' || s == 't', "stopped", "SIGSTOP")
    }

    /// SIGCONT, then waits (bounded) until the node runs again.
    pub fn cont(&self, id: i32) -> Result<()> {
        let node = self.node(id)?;
        signal(&node, Signal::CONT, "SIGCONT")?;
        wait_state(&node, |s| s != 'T' && s != 't', "running", "SIGCONT")
    }

    /// SIGTERM (a controlled shutdown), then waits (bounded) until the process has exited. A
    /// stopped node handles the signal only once continued, so this times out on one.
    pub fn terminate(&self, id: i32) -> Result<()> {
        let node = self.node(id)?;
        signal(&node, Signal::TERM, "SIGTERM")?;
        wait_gone(&node, TERMINATE_WAIT, "SIGTERM")
    }

    /// Runs the node's restart command (bounded), then waits (bounded) until its own listener
    /// accepts connections. The command records the new pid in the cluster file.
    pub fn restart(&self, id: i32) -> Result<()> {
        let node = self.node(id)?;
        run_restart(&self.path, &node)?;
        let node = self.node(id)?;
        if node_alive(node.pid).is_none() {
            bail!(
                "node {id}: the restart command finished but pid {} in {} is not running",
                node.pid,
                self.path.display()
            );
        }
        wait_listening(&node)
    }

    /// Sets `fault` on the node's `side` proxy through its control port; `LinkFault::None`
    /// heals.
    pub fn link(&self, id: i32, side: LinkSide, fault: LinkFault) -> Result<()> {
        let node = self.node(id)?;
        let (entry, field) = match side {
            LinkSide::Client => (&node.client_proxy, "client_proxy"),
            LinkSide::Peer => (&node.peer_proxy, "peer_proxy"),
        };
        let Some(entry) = entry else {
            bail!(
                "node {id} has no {field} in {} (start the cluster with scripts/kafka.sh --nodes 3 start --proxied)",
                self.path.display()
            );
        };
        let control = parse_addr(&self.path, id, &format!("{field}.control"), &entry.control)?;
        crate::proxy::control::send(
            control,
            &crate::proxy::control::command_for(fault),
            CONTROL_TIMEOUT,
        )
        .with_context(|| format!("node {id}, {field}"))?;
        Ok(())
    }

    /// The node's entry, read afresh from the file.
    fn node(&self, id: i32) -> Result<Node> {
        read(&self.path)?
            .into_iter()
            .find(|n| n.id == id)
            .ok_or_else(|| {
                anyhow!(
                    "no node {id} in {} (nodes: {:?})",
                    self.path.display(),
                    self.ids
                )
            })
    }
}

/// Reads and checks the nodes of a cluster file.
fn read(path: &Path) -> Result<Vec<Node>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cluster file {}: cannot read it", path.display()))?;
    let file: ClusterFile = serde_json::from_str(&text)
        .with_context(|| format!("cluster file {}: not a valid cluster file", path.display()))?;
    if file.nodes.is_empty() {
        bail!("cluster file {}: field nodes is empty", path.display());
    }
    for (i, n) in file.nodes.iter().enumerate() {
        let at = format!("cluster file {}: nodes[{i}]", path.display());
        if file.nodes[..i].iter().any(|m| m.id == n.id) {
            bail!("{at}: field id {} appears twice", n.id);
        }
        // 0, 1 and negative pids would reach a group, init or everything.
        if n.pid <= 1 || n.pid as u32 == std::process::id() {
            bail!(
                "{at}: field pid {} is not a node's process id (want > 1, not kbench's own)",
                n.pid
            );
        }
        if n.restart.is_empty() {
            bail!("{at}: field restart is empty (want the argv that starts the node)");
        }
        parse_addr(path, n.id, "direct", &n.direct)?;
    }
    Ok(file.nodes)
}

fn parse_addr(path: &Path, id: i32, field: &str, text: &str) -> Result<SocketAddr> {
    text.parse().map_err(|_| {
        anyhow!(
            "cluster file {}: node {id}: field {field} '{text}' is not an IP:PORT address",
            path.display()
        )
    })
}

fn pid_of(node: &Node) -> Pid {
    // `read` checked pid > 1, so this is one process, never a group.
    Pid::from_raw(node.pid).expect("pid checked > 1")
}

fn signal(node: &Node, sig: Signal, name: &str) -> Result<()> {
    // A zombie still takes signals without complaint; it is no node.
    if node_alive(node.pid).is_none() {
        bail!(
            "node {} (pid {}) is not running; {name} not sent",
            node.id,
            node.pid
        );
    }
    rustix::process::kill_process(pid_of(node), sig)
        .map_err(|e| anyhow!("node {} (pid {}): {name} failed: {e}", node.id, node.pid))
}

/// `Some(state)` (the letter of /proc/PID/stat) while the process exists and is not a zombie.
fn node_alive(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state follows the parenthesised command name, which may itself hold spaces.
    let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
    (state != 'Z' && state != 'X').then_some(state)
}

/// Waits until the node's process state satisfies `want` (signals are delivered
/// asynchronously); an error if it does not within `SIGNAL_WAIT` or the process is gone.
fn wait_state(node: &Node, want: impl Fn(char) -> bool, what: &str, after: &str) -> Result<()> {
    let deadline = Instant::now() + SIGNAL_WAIT;
    loop {
        match node_alive(node.pid) {
            Some(s) if want(s) => return Ok(()),
            Some(s) if Instant::now() >= deadline => bail!(
                "node {} (pid {}) is not {what} {SIGNAL_WAIT:?} after {after} (state {s})",
                node.id,
                node.pid
            ),
            Some(_) => std::thread::sleep(Duration::from_millis(5)),
            None => bail!("node {} (pid {}) is gone after {after}", node.id, node.pid),
        }
    }
}

fn wait_gone(node: &Node, within: Duration, after: &str) -> Result<()> {
    let deadline = Instant::now() + within;
    while node_alive(node.pid).is_some() {
        if Instant::now() >= deadline {
            bail!(
                "node {} (pid {}) still runs {within:?} after {after}",
                node.id,
                node.pid
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn run_restart(path: &Path, node: &Node) -> Result<()> {
    let what = format!("node {}: restart command {:?}", node.id, node.restart);
    let mut child = Command::new(&node.restart[0])
        .args(&node.restart[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("{what} (from {}): cannot start it", path.display()))?;
    // Read stderr on a thread so a chatty command cannot block on a full pipe.
    let stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut s) = stderr {
            let _ = std::io::Read::read_to_string(&mut s, &mut text);
        }
        text
    });
    let deadline = Instant::now() + RESTART_WAIT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            // Our own child, by its pid.
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what}: still running after {RESTART_WAIT:?}; killed it");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = reader.join().unwrap_or_default();
    if !status.success() {
        bail!("{what}: {status}\n{}", stderr.trim_end());
    }
    Ok(())
}

fn wait_listening(node: &Node) -> Result<()> {
    let addr: SocketAddr = node.direct.parse()?;
    let deadline = Instant::now() + LISTEN_WAIT;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "node {} (pid {}) does not accept connections on {addr} {LISTEN_WAIT:?} after its restart",
                node.id,
                node.pid
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    fn node(id: i32, pid: i32) -> String {
        format!(
            r#"{{"id": {id}, "pid": {pid}, "direct": "127.0.0.1:1", "restart": ["true"],
               "client_proxy": null, "peer_proxy": null}}"#
        )
    }

    fn error_of(text: &str) -> String {
        let f = file(text);
        format!(
            "{:#}",
            NodeSet::from_cluster_file(f.path())
                .err()
                .expect("an error")
        )
    }

    #[test]
    fn reads_the_node_ids() {
        let f = file(&format!(
            r#"{{"nodes": [{}, {}]}}"#,
            node(1, 100),
            node(2, 101)
        ));
        assert_eq!(
            NodeSet::from_cluster_file(f.path()).unwrap().node_ids(),
            vec![1, 2]
        );
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let e = error_of(r#"{"nodes": [{"id": 1}]}"#);
        assert!(
            e.contains("cluster file") && e.contains("missing field `pid`"),
            "{e}"
        );
        for pid in [0, 1, -5] {
            let e = error_of(&format!(r#"{{"nodes": [{}]}}"#, node(1, pid)));
            assert!(e.contains("nodes[0]: field pid"), "{e}");
        }
        let e = error_of(&format!(
            r#"{{"nodes": [{}, {}]}}"#,
            node(1, 100),
            node(1, 101)
        ));
        assert!(e.contains("nodes[1]: field id 1 appears twice"), "{e}");
        let e = error_of(r#"{"nodes": []}"#);
        assert!(e.contains("field nodes is empty"), "{e}");
        let e =
            error_of(&format!(r#"{{"nodes": [{}]}}"#, node(1, 100)).replace("127.0.0.1:1", "x"));
        assert!(e.contains("field direct 'x'"), "{e}");
        let e = format!(
            "{:#}",
            NodeSet::from_cluster_file(Path::new("/nonexistent/cluster.json"))
                .err()
                .unwrap()
        );
        assert!(e.contains("/nonexistent/cluster.json"), "{e}");
    }

    #[test]
    fn a_link_fault_on_a_node_without_proxies_says_how_to_get_them() {
        let f = file(&format!(r#"{{"nodes": [{}]}}"#, node(1, 100)));
        let set = NodeSet::from_cluster_file(f.path()).unwrap();
        let e = format!(
            "{:#}",
            set.link(1, LinkSide::Peer, LinkFault::Blackhole)
                .unwrap_err()
        );
        assert!(
            e.contains("no peer_proxy") && e.contains("--proxied"),
            "{e}"
        );
        let e = format!("{:#}", set.kill(7).unwrap_err());
        assert!(e.contains("no node 7"), "{e}");
    }
}
