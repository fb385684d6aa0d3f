//! `kbench cluster --proxied`: the two `kbench proxy` processes in front of each node, one
//! for clients (the node advertises it in Metadata) and one for its peers (followers
//! replicate from the node through it), both forwarding to the node's one real listener.
//!
//! The metadata quorum's traffic is never proxied (as KRaft's controller listener in
//! scripts/lib/kafka-cluster.sh): each proxy sees only the traffic *to* its node, so a
//! peer-side fault means "nobody can replicate from this node", not "cut from the quorum".
//! Owns: spawning, probing and stopping proxies (one pid each, never a group). Must not:
//! know the nodes' flags (the launcher passes the proxies' addresses to them).

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// How long a proxy may take from spawn to accepting on its control port.
const START_WAIT: Duration = Duration::from_secs(20);

/// One proxy as the cluster file describes it (schema/cluster.schema.json `$defs/proxy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyEntry {
    pub pid: i32,
    pub listen: String,
    pub control: String,
}

/// The ports of one node's two proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyPorts {
    pub client: u16,
    pub client_control: u16,
    pub peer: u16,
    pub peer_control: u16,
}

impl ProxyPorts {
    /// The ports of a cluster file's proxies, if it has both.
    pub fn from_entries(
        client: Option<&ProxyEntry>,
        peer: Option<&ProxyEntry>,
    ) -> Result<Option<Self>> {
        let (Some(c), Some(p)) = (client, peer) else {
            return Ok(None);
        };
        let port = |a: &str| -> Result<u16> { Ok(a.parse::<SocketAddr>()?.port()) };
        Ok(Some(ProxyPorts {
            client: port(&c.listen)?,
            client_control: port(&c.control)?,
            peer: port(&p.listen)?,
            peer_control: port(&p.control)?,
        }))
    }
}

/// The argv of one proxy: `PROGRAM proxy --listen .. --upstream .. --control ..`.
pub fn argv(program: &Path, listen: u16, upstream: &str, control: u16) -> Vec<String> {
    vec![
        program.display().to_string(),
        "proxy".into(),
        "--listen".into(),
        format!("127.0.0.1:{listen}"),
        "--upstream".into(),
        upstream.to_string(),
        "--control".into(),
        format!("127.0.0.1:{control}"),
    ]
}

/// Starts one proxy with its output appended to `log`.
pub fn spawn(argv: &[String], log: &Path) -> Result<Child> {
    super::spawn_logged(argv, log, "proxy")
}

/// Waits until the proxy accepts on its control port (bound after its listen port, so both
/// are up), or fails with its log when it exits or takes too long.
pub fn wait_ready(child: &mut Child, entry: &ProxyEntry, log: &Path) -> Result<()> {
    let control: SocketAddr = entry.control.parse()?;
    let deadline = Instant::now() + START_WAIT;
    loop {
        if TcpStream::connect_timeout(&control, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "the proxy on {} exited while starting ({status}):\n{}",
                entry.listen,
                super::log_tail(log)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the proxy on {} did not accept on its control port {} within {}s:\n{}",
                entry.listen,
                entry.control,
                START_WAIT.as_secs(),
                super::log_tail(log)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
