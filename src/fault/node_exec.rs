//! Faults on the nodes of a cluster file (`--cluster-file`, written by `scripts/kafka.sh
//! --nodes 3`), through `nodes::NodeSet`: `kill`/`stop`/`terminate`/`restart` on the node's
//! process (healed by a restart or SIGCONT) and link faults on its client or peer proxy
//! (healed by clearing the fault).
//!
//! A node action waits for its effect (a SIGTERMed JVM to exit, a restarted one to answer: up
//! to minutes), so each runs on a thread of its own and the run's clock goes on; `poll` hands
//! back the errors of those that ended, and `finish` waits for the rest, bounded.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};

use crate::fault::nodes::{LinkFault, LinkSide, NodeSet};
use crate::fault::{Executor, Instance};
use crate::plan::faults::{Action, Side};

/// An action running on its own thread: the fault it belongs to, and what it does.
struct Running {
    fault: usize,
    what: String,
    thread: JoinHandle<Result<()>>,
}

pub struct NodesExecutor {
    set: Arc<NodeSet>,
    running: Vec<Running>,
}

impl NodesExecutor {
    pub fn new(set: NodeSet) -> Self {
        NodesExecutor {
            set: Arc::new(set),
            running: Vec::new(),
        }
    }

    fn spawn(
        &mut self,
        f: &Instance,
        what: String,
        act: impl FnOnce(&NodeSet) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        let set = self.set.clone();
        let thread = std::thread::Builder::new()
            .name(format!("kbench-fault-{}", f.index))
            .spawn(move || act(&set))
            .map_err(|e| anyhow!("cannot start a thread for the fault: {e}"))?;
        self.running.push(Running {
            fault: f.index,
            what,
            thread,
        });
        Ok(())
    }

    /// The node actions that ended since the last call, as (fault, error) for those that
    /// failed.
    pub fn poll(&mut self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].thread.is_finished() {
                let r = self.running.swap_remove(i);
                let result = r
                    .thread
                    .join()
                    .unwrap_or_else(|_| Err(anyhow!("the action panicked")));
                if let Err(e) = result {
                    out.push((r.fault, format!("{}: {e:#}", r.what)));
                }
            } else {
                i += 1;
            }
        }
        out
    }

    /// Waits (at most `limit`) for the actions still running; those still going are reported.
    pub fn finish(&mut self, limit: Duration) -> Vec<(usize, String)> {
        let deadline = Instant::now() + limit;
        let mut out = Vec::new();
        while !self.running.is_empty() && Instant::now() < deadline {
            out.extend(self.poll());
            std::thread::sleep(Duration::from_millis(50));
        }
        out.extend(self.poll());
        for r in self.running.drain(..) {
            out.push((
                r.fault,
                format!("{}: still running after the run ended", r.what),
            ));
        }
        out
    }
}

fn link_side(s: Side) -> LinkSide {
    match s {
        Side::Client => LinkSide::Client,
        Side::Peer => LinkSide::Peer,
    }
}

impl Executor for NodesExecutor {
    fn inject(&mut self, f: &Instance, node: Option<i32>) -> Result<()> {
        let id = node.ok_or_else(|| anyhow!("this target names no node"))?;
        let side = link_side(f.spec.side);
        let what = format!("{} node {id}", f.spec.action);
        match f.spec.action {
            Action::Kill => self.spawn(f, what, move |s| s.kill(id)),
            Action::Stop => self.spawn(f, what, move |s| s.stop(id)),
            Action::Terminate => self.spawn(f, what, move |s| s.terminate(id)),
            Action::Restart => self.spawn(f, what, move |s| {
                s.terminate(id)?;
                s.restart(id)
            }),
            Action::Delay { ms, jitter_ms } => self.spawn(f, what, move |s| {
                s.link(id, side, LinkFault::Delay { ms, jitter_ms })
            }),
            Action::Blackhole => {
                self.spawn(f, what, move |s| s.link(id, side, LinkFault::Blackhole))
            }
            Action::Reset => self.spawn(f, what, move |s| s.link(id, side, LinkFault::Reset)),
            Action::Refuse => self.spawn(f, what, move |s| s.link(id, side, LinkFault::Refuse)),
            a => bail!("'{a}' does not act on a node"),
        }
    }

    fn heal(&mut self, f: &Instance, node: Option<i32>) -> Result<()> {
        let id = node.ok_or_else(|| anyhow!("no node to heal"))?;
        let side = link_side(f.spec.side);
        let what = format!("healing {} node {id}", f.spec.action);
        match f.spec.action {
            Action::Kill | Action::Terminate => self.spawn(f, what, move |s| s.restart(id)),
            Action::Stop => self.spawn(f, what, move |s| s.cont(id)),
            Action::Delay { .. } | Action::Blackhole | Action::Reset | Action::Refuse => {
                self.spawn(f, what, move |s| s.link(id, side, LinkFault::None))
            }
            _ => Ok(()),
        }
    }
}
