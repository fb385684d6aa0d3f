//! The fault scheduler: expands the plan's fault steps into timed instances, and on each
//! `tick(now_ns)` of the run loop injects and heals those that fell due, through the executor
//! for the target (mock cluster, shell hooks), marking t_f and t_h on the failover state.
//! Returns console lines for the run loop to print; records what happened for summary.json.

use std::sync::{Arc, Mutex};

use anyhow::Result;
use serde::Serialize;

use crate::fault::consumers::ConsumerExecutor;
use crate::fault::hooks::{HookEnv, HookOutcome, Hooks};
use crate::fault::mock::MockExecutor;
use crate::fault::node_exec::NodesExecutor;
use crate::fault::nodes::NodeSet;
use crate::fault::resolve::Resolver;
use crate::fault::{Executor, Instance};
use crate::measure::failover::{Failover, Planned};
use crate::plan::faults::{Action, FaultSpec};
use crate::plan::props::Props;
use crate::target::MockControl;

/// Fault steps taken, as (clock ns, text), for the time series' `fault` column.
pub type FaultMarks = Arc<Mutex<Vec<(u64, String)>>>;

/// What happened to one fault instance.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    pub index: usize,
    pub action: String,
    pub target: Option<String>,
    /// The node the target resolved to at injection.
    pub node: Option<i32>,
    pub planned_at_ms: u64,
    pub planned_for_ms: Option<u64>,
    /// Injection and heal, ms on the run's clock (null: did not happen).
    pub t_f_ms: Option<u64>,
    pub t_h_ms: Option<u64>,
    pub loss_expected: bool,
    pub hooks: Vec<HookOutcome>,
    /// Why the executor could not inject or heal it.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Inject,
    Heal,
}

/// Where the faults go.
pub struct Setup<'a> {
    pub bootstrap: &'a str,
    pub props: &'a Props,
    pub mock: Option<MockControl>,
    /// The nodes kbench can fault (`--cluster-file`).
    pub cluster_file: Option<&'a std::path::Path>,
    /// The run's consumers, for consumer faults.
    pub consumers: Vec<std::sync::Arc<crate::load::consumer::ConsumerShared>>,
}

pub struct Scheduler {
    start_ns: u64,
    instances: Vec<Instance>,
    /// (when, instance, step), sorted by time.
    steps: Vec<(u64, usize, Step)>,
    next: usize,
    records: Vec<FaultRecord>,
    mock: Option<MockExecutor>,
    nodes: Option<NodesExecutor>,
    consumers: ConsumerExecutor,
    resolver: Option<Resolver>,
    hooks: Hooks,
    bootstrap: String,
    failover: Option<Arc<Mutex<Failover>>>,
    /// Steps taken, for the time series' `fault` column (the reporter drains it).
    pub marks: FaultMarks,
}

/// Every occurrence of every step, in order of time.
pub fn instances(faults: &[FaultSpec], start_ns: u64) -> Vec<Instance> {
    let mut all: Vec<Instance> = faults
        .iter()
        .flat_map(|f| {
            f.occurrences().into_iter().map(move |at| Instance {
                index: 0,
                spec: f.clone(),
                at_ns: start_ns + at * 1_000_000,
                heal_ns: f.for_ms.map(|d| start_ns + (at + d) * 1_000_000),
            })
        })
        .collect();
    all.sort_by_key(|i| i.at_ns);
    for (k, i) in all.iter_mut().enumerate() {
        i.index = k;
    }
    all
}

/// The planned times of the instances, for `Failover::new`.
pub fn planned(instances: &[Instance]) -> Vec<Planned> {
    instances
        .iter()
        .map(|i| Planned {
            at_ns: i.at_ns,
            heal_ns: i.heal_ns,
        })
        .collect()
}

/// Actions that are over once done: healed at the moment they complete.
fn one_shot(f: &FaultSpec, on_mock: bool) -> bool {
    f.for_ms.is_none()
        && (matches!(
            f.action,
            Action::Restart
                | Action::Reset
                | Action::ConsumerLeave
                | Action::ConsumerJoin
                | Action::ConsumerKill
        ) || (on_mock && f.action == Action::Terminate))
}

impl Scheduler {
    pub fn new(
        faults: &[FaultSpec],
        start_ns: u64,
        setup: Setup,
        failover: Option<Arc<Mutex<Failover>>>,
    ) -> Result<Scheduler> {
        let instances = instances(faults, start_ns);
        let mut steps = Vec::new();
        for i in &instances {
            steps.push((i.at_ns, i.index, Step::Inject));
            if let Some(h) = i.heal_ns {
                steps.push((h, i.index, Step::Heal));
            }
        }
        steps.sort_by_key(|s| (s.0, s.2 == Step::Inject));
        let records = instances
            .iter()
            .map(|i| FaultRecord {
                index: i.index,
                action: i.spec.action.to_string(),
                target: i.spec.target.as_ref().map(ToString::to_string),
                node: None,
                planned_at_ms: (i.at_ns - start_ns) / 1_000_000,
                planned_for_ms: i.spec.for_ms,
                t_f_ms: None,
                t_h_ms: None,
                loss_expected: i.spec.loss_expected,
                hooks: Vec::new(),
                errors: Vec::new(),
            })
            .collect();
        let needs_resolver = instances.iter().any(|i| {
            i.spec.target.as_ref().is_some_and(|t| {
                t.topic_partition().is_some() || *t == crate::plan::faults::Target::Controller
            })
        });
        Ok(Scheduler {
            start_ns,
            steps,
            next: 0,
            records,
            mock: setup.mock.map(|control| MockExecutor { control }),
            nodes: setup
                .cluster_file
                .map(NodeSet::from_cluster_file)
                .transpose()?
                .map(NodesExecutor::new),
            consumers: ConsumerExecutor {
                consumers: setup.consumers,
            },
            resolver: needs_resolver
                .then(|| Resolver::new(setup.bootstrap, setup.props))
                .transpose()?,
            hooks: Hooks::default(),
            bootstrap: setup.bootstrap.to_string(),
            failover,
            instances,
            marks: Arc::default(),
        })
    }

    /// Runs the steps due at `now_ns`; returns console lines.
    pub fn tick(&mut self, now_ns: u64) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(&(at, k, step)) = self.steps.get(self.next) {
            if at > now_ns {
                break;
            }
            self.next += 1;
            lines.push(self.run_step(k, step));
        }
        for (k, o) in self.hooks.poll(false) {
            lines.extend(self.hook_ended(k, o));
        }
        let failed = self
            .nodes
            .as_mut()
            .map(NodesExecutor::poll)
            .unwrap_or_default();
        lines.extend(failed.into_iter().map(|(k, e)| self.node_failed(k, e)));
        lines
    }

    /// A node action of fault `k` failed (it ran on a thread of its own).
    fn node_failed(&mut self, k: usize, e: String) -> String {
        self.records[k].errors.push(e.clone());
        format!("kbench: WARNING: fault {k}: {e}")
    }

    fn ms(&self, ns: u64) -> u64 {
        ns.saturating_sub(self.start_ns) / 1_000_000
    }

    /// One step of fault `k`: find its node, carry it out (hook or executor), then mark it on
    /// the timeline and in the failover figures. Returns the console line.
    fn run_step(&mut self, k: usize, step: Step) -> String {
        let f = self.instances[k].clone();
        let now = crate::measure::clock::now_ns();
        let node = self.step_node(k, step, &f);
        let result = self.carry_out(&f, step, node, now);
        let what = format!(
            "{}{}",
            f.spec.action,
            f.spec
                .target
                .as_ref()
                .map_or(String::new(), |t| format!(" {t}"))
        );
        if let Err(e) = result {
            let e = format!("{e:#}");
            self.records[k].errors.push(e.clone());
            let verb = match step {
                Step::Inject => "injected",
                Step::Heal => "healed",
            };
            return format!("kbench: WARNING: fault {k} ({what}) could not be {verb}: {e}");
        }
        self.mark_done(k, step, &f, node, now, &what)
    }

    /// The node a step acts on: resolved from the target at injection (and remembered), the
    /// same one at heal.
    fn step_node(&mut self, k: usize, step: Step, f: &Instance) -> Option<i32> {
        if step == Step::Heal {
            return self.records[k].node;
        }
        let node = match (&self.resolver, &f.spec.target) {
            (Some(r), Some(t)) => r.node(t).unwrap_or_else(|e| {
                self.records[k].errors.push(format!("resolving {t}: {e:#}"));
                None
            }),
            (None, Some(crate::plan::faults::Target::Node { id })) => Some(*id),
            _ => None,
        };
        self.records[k].node = node;
        node
    }

    /// Runs the step's shell hook when the fault has one, else its executor (consumers, the
    /// mock cluster or the cluster file's nodes).
    fn carry_out(&mut self, f: &Instance, step: Step, node: Option<i32>, now: u64) -> Result<()> {
        let (hook, command, phase) = match step {
            Step::Inject => ("exec", f.spec.exec.clone(), "inject"),
            Step::Heal => ("heal_exec", f.spec.heal_exec.clone(), "heal"),
        };
        if let Some(cmd) = command {
            let env = HookEnv {
                phase,
                node,
                bootstrap: &self.bootstrap,
                started_ms: self.ms(now),
            };
            self.hooks.start(f, hook, &cmd, &env);
            return Ok(());
        }
        let executor: Option<&mut dyn Executor> = match (&mut self.mock, &mut self.nodes) {
            _ if f.spec.action.is_consumer() => Some(&mut self.consumers),
            (Some(m), _) => Some(m),
            (None, Some(n)) => Some(n),
            (None, None) => None,
        };
        match (executor, step) {
            (Some(e), Step::Inject) => e.inject(f, node),
            (Some(e), Step::Heal) => e.heal(f, node),
            (None, _) => Err(anyhow::anyhow!(
                "no executor for '{}' on this target",
                f.spec.action
            )),
        }
    }

    /// A step that was carried out: its timeline mark, t_f / t_h, the failover state's
    /// stages; returns the console line.
    fn mark_done(
        &mut self,
        k: usize,
        step: Step,
        f: &Instance,
        node: Option<i32>,
        now: u64,
        what: &str,
    ) -> String {
        let t = self.ms(now);
        let on = node.map_or(String::new(), |n| format!(" (node {n})"));
        let mark = match step {
            Step::Inject => format!("inject {k} {what}{on} @{t}ms"),
            Step::Heal => format!("heal {k} @{t}ms"),
        };
        self.marks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((now, mark));
        let mut fo = self
            .failover
            .as_ref()
            .map(|f| f.lock().unwrap_or_else(|p| p.into_inner()));
        match step {
            Step::Inject => {
                self.records[k].t_f_ms = Some(t);
                if let Some(fo) = fo.as_mut() {
                    fo.injected(k, now);
                }
                if one_shot(&f.spec, self.mock.is_some()) {
                    self.records[k].t_h_ms = Some(t);
                    if let Some(fo) = fo.as_mut() {
                        fo.healed(k, now);
                    }
                }
                format!(
                    "kbench: fault {k} at {:.1} s: {what}{on}",
                    t as f64 / 1000.0
                )
            }
            Step::Heal => {
                self.records[k].t_h_ms = Some(t);
                if let Some(fo) = fo.as_mut() {
                    fo.healed(k, now);
                }
                format!(
                    "kbench: fault {k} healed at {:.1} s: {what}{on}",
                    t as f64 / 1000.0
                )
            }
        }
    }

    fn hook_ended(&mut self, k: usize, o: HookOutcome) -> Option<String> {
        let line = o
            .error
            .as_ref()
            .map(|e| format!("kbench: WARNING: fault {k}: {} `{}` {e}", o.hook, o.command));
        if let Some(e) = &o.error {
            self.records[k].errors.push(format!("{}: {e}", o.hook));
        }
        self.records[k].hooks.push(o);
        line
    }

    /// The run is over: waits briefly for running hooks; returns what happened to each fault
    /// and lines to print.
    pub fn finish(mut self) -> (Vec<FaultRecord>, Vec<String>) {
        let mut lines = Vec::new();
        for (k, o) in self.hooks.finish(std::time::Duration::from_secs(10)) {
            lines.extend(self.hook_ended(k, o));
        }
        // A heal at the end restarts a node: give it the time a JVM needs to answer.
        let failed = self
            .nodes
            .as_mut()
            .map(|n| n.finish(std::time::Duration::from_secs(240)))
            .unwrap_or_default();
        lines.extend(failed.into_iter().map(|(k, e)| self.node_failed(k, e)));
        (self.records, lines)
    }

    /// How many fault instances the run has.
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }
}
