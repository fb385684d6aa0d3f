//! Shell hooks: a fault's `exec` (at injection) and `heal_exec` (at the heal) run with `sh -c`,
//! with the target's details in the environment, so the same measurements apply to a cluster
//! kbench did not start (`kill -STOP` on a broker's pid, a `docker pause`, a cloud API call).
//!
//! Hooks run in the background (the run's clock does not wait for them) and are polled by the
//! scheduler; each has a bounded time, after which the shell kbench started is killed (by its
//! own pid). A non-zero exit or a timeout is recorded on the fault and printed as a warning.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::fault::Instance;
use crate::plan::faults::Target;

/// How long a hook may run.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(60);

/// How one hook ended.
#[derive(Debug, Clone, Serialize)]
pub struct HookOutcome {
    /// `exec` or `heal_exec`.
    pub hook: String,
    pub command: String,
    /// When it started, ms on the run's clock.
    pub started_ms: u64,
    pub duration_ms: u64,
    /// The exit code; null when it was killed or could not start.
    pub exit_code: Option<i32>,
    pub error: Option<String>,
}

struct Running {
    fault: usize,
    child: Child,
    started: Instant,
    outcome: HookOutcome,
}

/// The hooks started and not yet finished, and the outcomes of those that did.
#[derive(Default)]
pub struct Hooks {
    running: Vec<Running>,
    /// (fault index, outcome), in the order they finished.
    pub done: Vec<(usize, HookOutcome)>,
}

/// What the environment tells a hook.
pub struct HookEnv<'a> {
    pub phase: &'a str,
    pub node: Option<i32>,
    pub bootstrap: &'a str,
    pub started_ms: u64,
}

impl Hooks {
    /// Starts `command` for fault `f`; a hook that cannot start is recorded at once.
    pub fn start(&mut self, f: &Instance, hook: &str, command: &str, env: &HookEnv) {
        let mut outcome = HookOutcome {
            hook: hook.into(),
            command: command.into(),
            started_ms: env.started_ms,
            duration_ms: 0,
            exit_code: None,
            error: None,
        };
        match spawn(f, command, env) {
            Ok(child) => self.running.push(Running {
                fault: f.index,
                child,
                started: Instant::now(),
                outcome,
            }),
            Err(e) => {
                outcome.error = Some(format!("{e:#}"));
                self.done.push((f.index, outcome));
            }
        }
    }

    /// Collects hooks that ended, and kills those past `HOOK_TIMEOUT` (or all, with `force`);
    /// returns the outcomes collected now.
    pub fn poll(&mut self, force: bool) -> Vec<(usize, HookOutcome)> {
        let mut ended = Vec::new();
        let mut i = 0;
        while i < self.running.len() {
            let r = &mut self.running[i];
            let status = r.child.try_wait();
            let late = force || r.started.elapsed() > HOOK_TIMEOUT;
            let finished = match status {
                Ok(Some(s)) => {
                    r.outcome.exit_code = s.code();
                    if !s.success() {
                        r.outcome.error = Some(format!("exited with {s}"));
                    }
                    true
                }
                Ok(None) if late => {
                    // Our own child, by its pid: never a process group.
                    let _ = r.child.kill();
                    let _ = r.child.wait();
                    r.outcome.error = Some(format!(
                        "still running after {} s; killed",
                        r.started.elapsed().as_secs()
                    ));
                    true
                }
                Ok(None) => false,
                Err(e) => {
                    r.outcome.error = Some(format!("cannot wait for it: {e}"));
                    true
                }
            };
            if finished {
                let mut r = self.running.swap_remove(i);
                r.outcome.duration_ms = r.started.elapsed().as_millis() as u64;
                ended.push((r.fault, r.outcome));
            } else {
                i += 1;
            }
        }
        self.done.extend(ended.iter().cloned());
        ended
    }

    /// Waits (at most `limit`) for the hooks still running, then kills the rest.
    pub fn finish(&mut self, limit: Duration) -> Vec<(usize, HookOutcome)> {
        let deadline = Instant::now() + limit;
        let mut ended = Vec::new();
        while !self.running.is_empty() && Instant::now() < deadline {
            ended.extend(self.poll(false));
            std::thread::sleep(Duration::from_millis(20));
        }
        ended.extend(self.poll(true));
        ended
    }
}

fn spawn(f: &Instance, command: &str, env: &HookEnv) -> Result<Child> {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .env("KBENCH_FAULT_ACTION", f.spec.action.name())
        .env("KBENCH_FAULT_PHASE", env.phase)
        .env("KBENCH_FAULT_INDEX", f.index.to_string())
        .env("KBENCH_BOOTSTRAP", env.bootstrap)
        .env(
            "KBENCH_FAULT_TARGET",
            f.spec
                .target
                .as_ref()
                .map(Target::to_string)
                .unwrap_or_default(),
        )
        .env(
            "KBENCH_FAULT_NODE",
            env.node.map(|n| n.to_string()).unwrap_or_default(),
        );
    if let Some((topic, p)) = f.spec.target.as_ref().and_then(Target::topic_partition) {
        c.env("KBENCH_FAULT_TOPIC", topic)
            .env("KBENCH_FAULT_PARTITION", p.to_string());
    }
    if let crate::plan::faults::Action::Delay { ms, jitter_ms } = f.spec.action {
        c.env("KBENCH_FAULT_DELAY_MS", ms.to_string())
            .env("KBENCH_FAULT_JITTER_MS", jitter_ms.to_string());
    }
    c.spawn()
        .with_context(|| format!("cannot start `sh -c {command}`"))
}
