//! kbench's own TCP fault proxy: forwards bytes between clients and one upstream address, with
//! a link fault that can be changed while connections are open.
//!
//! Kernels on this project's machines lack `netem` (reference/ha_failover.md §4.3), so delay
//! and partitions are made in user space, here. One [`Proxy`] is one link (one listen address,
//! one upstream); a node of a cluster gets two, one for clients and one for its peers, so
//! "clients cut off" and "leader isolated from its followers" are different faults.
//!
//! What each fault means (applied to open connections at once, and to new ones):
//! * `None`: bytes pass as they come.
//! * `Delay { ms, jitter_ms }`: every chunk read is written `ms ± jitter_ms` (uniform) after
//!   it was read; chunks keep their order (a chunk never overtakes the one before it).
//! * `Blackhole`: connections stay open, nothing passes either way. The proxy stops reading,
//!   so TCP flow control holds the senders, as a partition with retransmission would: after
//!   a heal the held bytes arrive (nothing is dropped, the Kafka framing stays intact).
//! * `Reset`: an event, not a state: every open connection is closed with an RST on both
//!   sides; the standing fault is unchanged (after `None` or `Delay` new connections pass).
//! * `Refuse`: the listening socket is closed, so new connections get ECONNREFUSED, as from a
//!   stopped process; it is bound again on heal. Open connections keep passing (as with
//!   `None`): send `reset` as well to cut them.
//!
//! This module owns sockets and timing only; it knows nothing of Kafka. `control` is the line
//! protocol of the standalone `kbench proxy`, `cli` its command line, `link` one connection.

pub mod cli;
pub mod control;
mod link;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The fault of one link (see the module header for what each does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFault {
    None,
    Delay { ms: u64, jitter_ms: u64 },
    Blackhole,
    Reset,
    Refuse,
}

/// What a proxy reports about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyStatus {
    /// The standing fault (never `Reset`, which is an event).
    pub fault: LinkFault,
    /// Connections open now.
    pub open: u64,
    /// Connections accepted since the start.
    pub accepted: u64,
    /// `Reset` events since the start.
    pub resets: u64,
}

/// State shared by the accept loop and every connection.
struct Shared {
    /// The standing fault; connections watch it.
    fault: watch::Sender<LinkFault>,
    /// Bumped by each `Reset`; every connection open at that moment closes with an RST.
    resets: watch::Sender<u64>,
    open: AtomicU64,
    accepted: AtomicU64,
}

/// A running proxy; dropping it stops accepting and resets its connections.
pub struct Proxy {
    local: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Binds `listen` (port 0 picks one; see [`Proxy::local_addr`]) and forwards every accepted
    /// connection to `upstream`. Needs a tokio runtime with IO and time enabled.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind(listen).await?;
        let local = listener.local_addr()?;
        // Forwarding to itself would open connections until the file descriptors run out.
        if upstream == local {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the upstream {upstream} is the proxy's own address"),
            ));
        }
        let shared = Arc::new(Shared {
            fault: watch::Sender::new(LinkFault::None),
            resets: watch::Sender::new(0),
            open: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, local, upstream, shared.clone()));
        Ok(Proxy {
            local,
            upstream,
            shared,
            accept,
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Applies `fault` now, to open connections and new ones; `LinkFault::None` heals.
    pub fn set(&self, fault: LinkFault) {
        match fault {
            LinkFault::Reset => {
                self.shared.resets.send_modify(|n| *n += 1);
            }
            standing => {
                self.shared.fault.send_replace(standing);
            }
        }
    }

    pub fn status(&self) -> ProxyStatus {
        ProxyStatus {
            fault: *self.shared.fault.borrow(),
            open: self.shared.open.load(Ordering::Relaxed),
            accepted: self.shared.accepted.load(Ordering::Relaxed),
            resets: *self.shared.resets.borrow(),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.shared.resets.send_modify(|n| *n += 1);
    }
}

/// Accepts connections while the fault is not `Refuse`; under `Refuse` the listener is closed
/// (so the kernel refuses) and bound again, same address, when the fault changes.
async fn accept_loop(
    listener: TcpListener,
    local: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
) {
    let mut listener = Some(listener);
    let mut fault = shared.fault.subscribe();
    loop {
        if *fault.borrow_and_update() == LinkFault::Refuse {
            listener = None;
            if fault.changed().await.is_err() {
                return;
            }
            continue;
        }
        let l = match &listener {
            Some(l) => l,
            None => listener.insert(rebind(local).await),
        };
        tokio::select! {
            accepted = l.accept() => match accepted {
                Ok((client, _)) => {
                    shared.accepted.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(link::serve(client, upstream, shared.clone()));
                }
                // Out of file descriptors, say: back off instead of spinning.
                Err(e) => {
                    tracing::warn!("proxy {local}: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            changed = fault.changed() => if changed.is_err() { return },
        }
    }
}

/// Binds `addr` again after a `Refuse`, retrying: a connection of ours in TIME_WAIT does not
/// block it (tokio sets SO_REUSEADDR), but another process could hold the port for a while.
async fn rebind(addr: SocketAddr) -> TcpListener {
    let mut tries = 0u64;
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) => {
                if tries.is_multiple_of(100) {
                    tracing::warn!(
                        "proxy: cannot listen on {addr} again after refuse: {e}; retrying"
                    );
                }
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
