//! Fault steps on the run's timeline, as data: what happens (`action`), to whom (`target`),
//! when (`at`), for how long (`for`, after which it heals) and how often (`repeat`).
//!
//! Two spellings reach the same `FaultSpec`: `--fault 'at=20s kill leader-of:kbench/0 for=15s'`
//! on produce and e2e (repeatable), and `[[faults]]` tables in a profile. Parsing checks the
//! words; `validate` checks a fault against the run (its length, its consumers, its topic and
//! what the target can do) so that every mistake is an error naming the field before any load
//! starts. This module describes and validates; `fault` runs the steps and `measure::failover`
//! measures them.

use std::fmt;

use anyhow::{anyhow, bail, Result};
use serde::Serialize;

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Action {
    /// SIGKILL the node; restarted after `for`.
    Kill,
    /// SIGSTOP the node; SIGCONT after `for`.
    Stop,
    /// SIGTERM (a controlled shutdown); started again after `for`.
    Terminate,
    /// Stop and start again at once.
    Restart,
    /// Add latency (± jitter) on the node's link.
    Delay {
        ms: u64,
        jitter_ms: u64,
    },
    /// Connections stay open, nothing passes.
    Blackhole,
    /// Close the node's connections.
    Reset,
    /// Refuse new connections.
    Refuse,
    ConsumerLeave,
    ConsumerJoin,
    ConsumerKill,
    /// Only the `exec`/`heal_exec` hooks run.
    Exec,
}

const ACTIONS: &str =
    "kill, stop, terminate, restart, delay MS[±J], blackhole, reset, refuse, consumer-leave, consumer-join, consumer-kill, exec";
const TARGETS: &str = "node:N, leader-of:TOPIC/P, follower-of:TOPIC/P, controller, consumer:I";

impl Action {
    /// Parses `kill`, `delay 100±20` (or `delay 100+-20`), ...
    pub fn parse(text: &str) -> Result<Action> {
        let mut words = text.split_whitespace();
        let word = words.next().unwrap_or("");
        let rest: Vec<&str> = words.collect();
        let a = match word {
            "kill" => Action::Kill,
            "stop" => Action::Stop,
            "terminate" => Action::Terminate,
            "restart" => Action::Restart,
            "blackhole" => Action::Blackhole,
            "reset" => Action::Reset,
            "refuse" => Action::Refuse,
            "consumer-leave" => Action::ConsumerLeave,
            "consumer-join" => Action::ConsumerJoin,
            "consumer-kill" => Action::ConsumerKill,
            "exec" => Action::Exec,
            "delay" => {
                let arg = rest.first().ok_or_else(|| {
                    anyhow!("'delay' needs a length in ms, optionally with jitter: delay 100 or delay 100±20")
                })?;
                let (ms, jitter_ms) = parse_delay(arg)?;
                return match rest.len() {
                    1 => Ok(Action::Delay { ms, jitter_ms }),
                    _ => bail!("'{text}': delay takes one argument, MS[±J]"),
                };
            }
            "" => bail!("no action; one of {ACTIONS}"),
            other => bail!("unknown action '{other}'; one of {ACTIONS}"),
        };
        if !rest.is_empty() {
            bail!(
                "action '{word}' takes no argument (got '{}')",
                rest.join(" ")
            );
        }
        Ok(a)
    }

    /// Can `for` heal it?
    pub fn heals(self) -> bool {
        matches!(
            self,
            Action::Kill
                | Action::Stop
                | Action::Terminate
                | Action::Delay { .. }
                | Action::Blackhole
                | Action::Reset
                | Action::Refuse
                | Action::Exec
        )
    }

    pub fn is_consumer(self) -> bool {
        matches!(
            self,
            Action::ConsumerLeave | Action::ConsumerJoin | Action::ConsumerKill
        )
    }

    pub fn is_link(self) -> bool {
        matches!(
            self,
            Action::Delay { .. } | Action::Blackhole | Action::Reset | Action::Refuse
        )
    }

    /// The name as written (without the delay's argument).
    pub fn name(self) -> &'static str {
        match self {
            Action::Kill => "kill",
            Action::Stop => "stop",
            Action::Terminate => "terminate",
            Action::Restart => "restart",
            Action::Delay { .. } => "delay",
            Action::Blackhole => "blackhole",
            Action::Reset => "reset",
            Action::Refuse => "refuse",
            Action::ConsumerLeave => "consumer-leave",
            Action::ConsumerJoin => "consumer-join",
            Action::ConsumerKill => "consumer-kill",
            Action::Exec => "exec",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Delay { ms, jitter_ms: 0 } => write!(f, "delay {ms}"),
            Action::Delay { ms, jitter_ms } => write!(f, "delay {ms}±{jitter_ms}"),
            a => f.write_str(a.name()),
        }
    }
}

/// `100`, `100ms`, `100±20`, `100+-20ms`.
fn parse_delay(text: &str) -> Result<(u64, u64)> {
    let bad = || anyhow!("delay '{text}' is not MS[±J] (e.g. 100 or 100±20, in milliseconds)");
    let t = text.trim().replace("+-", "±");
    let (a, b) = match t.split_once('±') {
        Some((a, b)) => (a, Some(b)),
        None => (t.as_str(), None),
    };
    let num = |s: &str| {
        s.trim()
            .trim_end_matches("ms")
            .parse::<u64>()
            .map_err(|_| bad())
    };
    let ms = num(a)?;
    let jitter = b.map(num).transpose()?.unwrap_or(0);
    if jitter > ms {
        bail!("delay '{text}': the jitter ({jitter} ms) must not exceed the delay ({ms} ms)");
    }
    Ok((ms, jitter))
}

/// Whom a fault hits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Target {
    Node { id: i32 },
    LeaderOf { topic: String, partition: i32 },
    FollowerOf { topic: String, partition: i32 },
    Controller,
    Consumer { index: u32 },
}

impl Target {
    pub fn parse(text: &str) -> Result<Target> {
        let t = text.trim();
        let (kind, arg) = t.split_once(':').unwrap_or((t, ""));
        let topic_partition = |arg: &str| -> Result<(String, i32)> {
            let (topic, p) = arg
                .rsplit_once('/')
                .ok_or_else(|| anyhow!("'{t}': give TOPIC/PARTITION, e.g. {kind}:kbench/0"))?;
            let p = p
                .parse::<i32>()
                .ok()
                .filter(|p| *p >= 0)
                .ok_or_else(|| anyhow!("'{t}': partition '{p}' is not a number ≥ 0"))?;
            if topic.is_empty() {
                bail!("'{t}': the topic is empty");
            }
            Ok((topic.to_string(), p))
        };
        Ok(match kind {
            "node" => Target::Node {
                id: arg
                    .parse()
                    .map_err(|_| anyhow!("'{t}': node id '{arg}' is not a number (node:1)"))?,
            },
            "leader-of" => {
                let (topic, partition) = topic_partition(arg)?;
                Target::LeaderOf { topic, partition }
            }
            "follower-of" => {
                let (topic, partition) = topic_partition(arg)?;
                Target::FollowerOf { topic, partition }
            }
            "controller" if arg.is_empty() => Target::Controller,
            "consumer" => Target::Consumer {
                index: arg.parse().map_err(|_| {
                    anyhow!("'{t}': consumer index '{arg}' is not a number ≥ 0 (consumer:0)")
                })?,
            },
            _ => bail!("unknown target '{t}'; one of {TARGETS}"),
        })
    }

    /// The topic and partition a `leader-of`/`follower-of` target names.
    pub fn topic_partition(&self) -> Option<(&str, i32)> {
        match self {
            Target::LeaderOf { topic, partition } | Target::FollowerOf { topic, partition } => {
                Some((topic, *partition))
            }
            _ => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node { id } => write!(f, "node:{id}"),
            Target::LeaderOf { topic, partition } => write!(f, "leader-of:{topic}/{partition}"),
            Target::FollowerOf { topic, partition } => {
                write!(f, "follower-of:{topic}/{partition}")
            }
            Target::Controller => f.write_str("controller"),
            Target::Consumer { index } => write!(f, "consumer:{index}"),
        }
    }
}

/// Which of a node's proxies a link fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Client traffic: the clients are cut off, the cluster does not fail over.
    Client,
    /// Node-to-node traffic: the node is isolated from its peers, the cluster fails over.
    Peer,
}

/// A fault as written, before it is checked against the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultSpec {
    /// Where it came from, for messages: `--fault` or `faults[2]`.
    #[serde(skip)]
    pub field: String,
    pub at_ms: u64,
    pub action: Action,
    /// Absent only for a pure `exec` fault.
    pub target: Option<Target>,
    pub for_ms: Option<u64>,
    pub repeat: Option<Repeat>,
    pub side: Side,
    pub exec: Option<String>,
    pub heal_exec: Option<String>,
    pub loss_expected: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Repeat {
    pub count: u32,
    pub every_ms: u64,
}

fn duration_ms(text: &str, field: &str) -> Result<u64> {
    humantime::parse_duration(text.trim())
        .map(|d| d.as_millis() as u64)
        .map_err(|e| anyhow!("{field}: '{text}' is not a duration like 20s or 1500ms: {e}"))
}

/// The fields a fault table or flag may have, before parsing.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultDef {
    pub at: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    #[serde(rename = "for")]
    pub for_: Option<String>,
    pub repeat: Option<RepeatDef>,
    pub side: Option<String>,
    pub exec: Option<String>,
    pub heal_exec: Option<String>,
    #[serde(default)]
    pub loss_expected: bool,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepeatDef {
    pub count: u32,
    pub every: String,
}

impl FaultDef {
    /// Splits `--fault`'s text: `key=value` words (`at`, `for`, `side`, `repeat=COUNTxEVERY`,
    /// `exec`, `heal_exec`, `loss_expected`), the action (with `delay`'s argument) and the
    /// target. Values may be quoted with ' or ".
    pub fn from_flag(text: &str) -> Result<FaultDef> {
        let mut d = FaultDef::default();
        let words = split_words(text)?;
        let mut i = 0;
        while i < words.len() {
            let w = &words[i];
            i += 1;
            if let Some((k, v)) = w.split_once('=') {
                let v = v.to_string();
                match k {
                    "at" => d.at = Some(v),
                    "for" => d.for_ = Some(v),
                    "side" => d.side = Some(v),
                    "exec" => d.exec = Some(v),
                    "heal_exec" | "heal-exec" => d.heal_exec = Some(v),
                    "loss_expected" | "loss-expected" => {
                        d.loss_expected = v.parse().map_err(|_| {
                            anyhow!("loss_expected={v}: give true or false")
                        })?
                    }
                    "repeat" => d.repeat = Some(parse_repeat_flag(&v)?),
                    "action" => d.action = Some(v),
                    "target" => d.target = Some(v),
                    _ => bail!("unknown key '{k}='; the keys are at, for, repeat, side, exec, heal_exec, loss_expected"),
                }
            } else if is_target_word(w) {
                if d.target.replace(w.clone()).is_some() {
                    bail!("two targets ('{w}' and another); give one of {TARGETS}");
                }
            } else {
                if d.action.is_some() {
                    bail!(
                        "'{w}' is neither a key=value, a target ({TARGETS}), nor the only action"
                    );
                }
                // `delay` takes the next word as its argument.
                let mut a = w.clone();
                if w == "delay" && i < words.len() && !words[i].contains('=') {
                    a = format!("{w} {}", words[i]);
                    i += 1;
                }
                d.action = Some(a);
            }
        }
        Ok(d)
    }

    /// The parsed fault; errors are prefixed with `field` by the caller.
    pub fn parse(&self, field: &str) -> Result<FaultSpec> {
        let at = self
            .at
            .as_deref()
            .ok_or_else(|| anyhow!("{field}: no `at`; say when the fault starts, e.g. at=20s"))?;
        let at_ms = duration_ms(at, &format!("{field}.at"))?;
        let action_text = self
            .action
            .as_deref()
            .ok_or_else(|| anyhow!("{field}: no action; one of {ACTIONS}"))?;
        let action = Action::parse(action_text).map_err(|e| anyhow!("{field}.action: {e}"))?;
        let target = self
            .target
            .as_deref()
            .map(Target::parse)
            .transpose()
            .map_err(|e| anyhow!("{field}.target: {e}"))?;
        let for_ms = self
            .for_
            .as_deref()
            .map(|f| duration_ms(f, &format!("{field}.for")))
            .transpose()?;
        if for_ms == Some(0) {
            bail!("{field}.for must be longer than zero");
        }
        let repeat = self
            .repeat
            .as_ref()
            .map(|r| -> Result<Repeat> {
                let every_ms = duration_ms(&r.every, &format!("{field}.repeat.every"))?;
                if r.count < 1 || every_ms == 0 {
                    bail!("{field}.repeat: count must be ≥ 1 and every longer than zero");
                }
                Ok(Repeat {
                    count: r.count,
                    every_ms,
                })
            })
            .transpose()?;
        let side = match self.side.as_deref() {
            None | Some("client") => Side::Client,
            Some("peer") => Side::Peer,
            Some(s) => bail!("{field}.side: '{s}' is not client or peer"),
        };
        let spec = FaultSpec {
            field: field.to_string(),
            at_ms,
            action,
            target,
            for_ms,
            repeat,
            side,
            exec: self.exec.clone().filter(|s| !s.trim().is_empty()),
            heal_exec: self.heal_exec.clone().filter(|s| !s.trim().is_empty()),
            loss_expected: self.loss_expected,
        };
        spec.check_shape()?;
        Ok(spec)
    }
}

fn is_target_word(w: &str) -> bool {
    w == "controller"
        || ["node:", "leader-of:", "follower-of:", "consumer:"]
            .iter()
            .any(|p| w.starts_with(p))
}

/// `3x10s`: three times, every 10 s.
fn parse_repeat_flag(v: &str) -> Result<RepeatDef> {
    let (count, every) = v
        .split_once('x')
        .ok_or_else(|| anyhow!("repeat={v}: write COUNTxEVERY, e.g. repeat=3x20s"))?;
    Ok(RepeatDef {
        count: count
            .parse()
            .map_err(|_| anyhow!("repeat={v}: '{count}' is not a count"))?,
        every: every.to_string(),
    })
}

/// Whitespace-separated words; '...' and "..." group (inside `key=` values too).
fn split_words(text: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut has = false;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                has = true;
            }
            (None, c) if c.is_whitespace() => {
                if has || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if quote.is_some() {
        bail!("unclosed quote in '{text}'");
    }
    if has || !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

impl FaultSpec {
    /// Checks that need nothing but the fault itself.
    fn check_shape(&self) -> Result<()> {
        let f = &self.field;
        let a = self.action;
        match (&self.target, a) {
            (None, Action::Exec) => {}
            (None, _) => bail!("{f}: no target for '{a}'; one of {TARGETS}"),
            (Some(Target::Consumer { .. }), a) if !a.is_consumer() && a != Action::Exec => {
                bail!("{f}.target: '{a}' acts on a node; consumer:I goes with consumer-leave, consumer-join or consumer-kill")
            }
            (Some(t), a) if a.is_consumer() && !matches!(t, Target::Consumer { .. }) => {
                bail!("{f}.target: '{a}' needs a consumer:I target (got '{t}')")
            }
            _ => {}
        }
        if let Some(for_ms) = self.for_ms {
            if !a.heals() {
                bail!("{f}.for: '{a}' cannot heal, so it takes no `for`; actions that heal are kill, stop, terminate, delay, blackhole, reset, refuse (and exec with heal_exec)");
            }
            if a == Action::Exec && self.heal_exec.is_none() {
                bail!("{f}.for: an exec fault heals by its heal_exec; give heal_exec = \"...\" or drop `for`");
            }
            if let Some(r) = self.repeat {
                if r.count > 1 && for_ms >= r.every_ms {
                    bail!("{f}.repeat.every ({} ms) must be longer than `for` ({for_ms} ms): a fault must heal before it repeats", r.every_ms);
                }
            }
        }
        if self.heal_exec.is_some() && self.for_ms.is_none() {
            bail!("{f}.heal_exec runs when the fault heals; give `for` (e.g. for=10s)");
        }
        if a == Action::Exec && self.exec.is_none() {
            bail!("{f}: the exec action needs exec = \"COMMAND\" (run with sh -c)");
        }
        if self.side == Side::Peer && !a.is_link() {
            bail!("{f}.side applies to link faults (delay, blackhole, reset, refuse), not '{a}'");
        }
        Ok(())
    }

    /// When each occurrence starts, in ms from the run's start.
    pub fn occurrences(&self) -> Vec<u64> {
        let r = self.repeat.unwrap_or(Repeat {
            count: 1,
            every_ms: 0,
        });
        (0..r.count as u64)
            .map(|k| self.at_ms + k * r.every_ms)
            .collect()
    }
}

/// What a fault is checked against.
#[derive(Debug, Clone)]
pub struct RunShape<'a> {
    /// The run's planned length; `None` when it is bounded by neither time nor rate.
    pub length_ms: Option<u64>,
    pub consumers: u32,
    pub topic: &'a str,
    /// Partitions of the topic kbench creates (an existing topic is checked again at start).
    pub partitions: i32,
    /// Node ids the target has, when known (the mock cluster's brokers, a cluster file).
    pub node_ids: Option<Vec<i32>>,
    /// What can carry out process and link faults here.
    pub executor: ExecutorKind,
}

/// Who can carry out node faults on this target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorKind {
    /// librdkafka's mock cluster: broker down/up, leader moves, RTT.
    Mock,
    /// Nodes from a cluster file (process and link faults).
    Nodes,
    /// Nothing kbench started: only exec hooks.
    HooksOnly,
}

/// Checks every fault against the run; the error names the field and what is allowed.
pub fn validate(faults: &[FaultSpec], run: &RunShape) -> Result<()> {
    if faults.is_empty() {
        return Ok(());
    }
    let Some(length) = run.length_ms else {
        bail!("{}: faults need a run of known length; give --duration (or --num-records with --throughput)", faults[0].field);
    };
    let mut joins = 0;
    for f in faults {
        let field = &f.field;
        let last = *f.occurrences().last().unwrap_or(&f.at_ms);
        if last >= length {
            let what = if last == f.at_ms { "at" } else { "repeat" };
            bail!(
                "{field}.{what}: the fault starts at {last} ms, but the run lasts {length} ms; give an `at` inside the run"
            );
        }
        if let Some(t) = &f.target {
            check_target(f, t, run, &mut joins)?;
        }
        if f.exec.is_none() {
            check_executor(f, run)?;
        }
    }
    Ok(())
}

fn check_target(f: &FaultSpec, t: &Target, run: &RunShape, joins: &mut u32) -> Result<()> {
    let field = &f.field;
    match t {
        Target::Consumer { index } => {
            if run.consumers == 0 {
                bail!("{field}.target: '{t}' needs consumers; consumer faults apply to e2e runs");
            }
            let members = run.consumers + *joins;
            if f.action == Action::ConsumerJoin {
                if *index != members {
                    bail!("{field}.target: consumer-join adds member {members} (there are {members} so far); write consumer:{members}");
                }
                *joins += 1;
            } else if *index >= members {
                bail!("{field}.target: '{t}': there are {members} consumers (consumer:0 to consumer:{})", members - 1);
            }
        }
        Target::LeaderOf { topic, partition } | Target::FollowerOf { topic, partition } => {
            if topic != run.topic {
                bail!(
                    "{field}.target: '{t}' names topic '{topic}', but the run uses '{}'",
                    run.topic
                );
            }
            if *partition >= run.partitions {
                bail!(
                    "{field}.target: '{t}': the topic has {} partitions (0 to {})",
                    run.partitions,
                    run.partitions - 1
                );
            }
        }
        Target::Node { id } => {
            if let Some(ids) = &run.node_ids {
                if !ids.contains(id) {
                    bail!(
                        "{field}.target: '{t}': the target has no node {id}; its nodes are {ids:?}"
                    );
                }
            }
        }
        Target::Controller => {}
    }
    Ok(())
}

/// Without an exec hook, someone must be able to carry the fault out.
fn check_executor(f: &FaultSpec, run: &RunShape) -> Result<()> {
    let field = &f.field;
    let a = f.action;
    if a.is_consumer() {
        // A second occurrence would find the member gone (or, for a join, already in).
        if a != Action::ConsumerLeave && f.repeat.is_some_and(|r| r.count > 1) {
            bail!("{field}.repeat: '{a}' acts once on one member; write one fault step per member instead");
        }
        return Ok(());
    }
    match run.executor {
        ExecutorKind::HooksOnly => bail!("{field}: '{a}' needs nodes kbench can reach: give --cluster-file (target.cluster_file) of a cluster kbench started, or exec = \"...\" hooks for a cluster it did not"),
        ExecutorKind::Nodes => {
            let ok = matches!(a, Action::Kill | Action::Stop | Action::Terminate | Action::Restart) || a.is_link();
            if !ok {
                bail!("{field}.action: the nodes of a cluster file take kill, stop, terminate, restart, delay, blackhole, reset and refuse; '{a}' needs an exec hook");
            }
        }
        ExecutorKind::Mock => {
            let ok = matches!(a, Action::Kill | Action::Terminate | Action::Restart | Action::Delay { .. });
            if !ok {
                bail!("{field}.action: the mock cluster can do kill, terminate, restart and delay (it has no processes or proxies); '{a}' needs a real cluster or an exec hook");
            }
            if matches!(f.target, Some(Target::Controller)) {
                bail!("{field}.target: the mock cluster has no controller; use node:N or leader-of:TOPIC/P");
            }
            if a == Action::Terminate && !matches!(f.target, Some(Target::LeaderOf { .. })) {
                bail!("{field}: on the mock cluster, terminate moves a partition's leadership away (a controlled shutdown); give a leader-of:TOPIC/P target");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(text: &str) -> Result<FaultSpec> {
        FaultDef::from_flag(text)?.parse("--fault")
    }

    fn shape() -> RunShape<'static> {
        RunShape {
            length_ms: Some(30_000),
            consumers: 2,
            topic: "kbench",
            partitions: 3,
            node_ids: Some(vec![1, 2, 3]),
            executor: ExecutorKind::Mock,
        }
    }

    #[test]
    fn parses_the_flag_form() {
        let f = flag("at=20s kill leader-of:kbench/0 for=15s").unwrap();
        assert_eq!(f.at_ms, 20_000);
        assert_eq!(f.action, Action::Kill);
        assert_eq!(
            f.target,
            Some(Target::LeaderOf {
                topic: "kbench".into(),
                partition: 0
            })
        );
        assert_eq!(f.for_ms, Some(15_000));
        let d = flag("at=1s delay 100±20 node:2 for=2s side=peer").unwrap();
        assert_eq!(
            d.action,
            Action::Delay {
                ms: 100,
                jitter_ms: 20
            }
        );
        assert_eq!(d.side, Side::Peer);
        let e = flag("at=2s exec exec='kill -STOP 42' heal_exec=\"kill -CONT 42\" for=1s").unwrap();
        assert_eq!(e.exec.as_deref(), Some("kill -STOP 42"));
        assert_eq!(e.heal_exec.as_deref(), Some("kill -CONT 42"));
        let r = flag("at=1s kill node:1 for=1s repeat=3x5s").unwrap();
        assert_eq!(r.occurrences(), vec![1000, 6000, 11000]);
    }

    #[test]
    fn errors_name_the_part_and_what_is_allowed() {
        let e = |t: &str| flag(t).unwrap_err().to_string();
        assert!(e("at=1s explode node:1").contains("unknown action 'explode'"));
        assert!(e("at=1s kill").contains("no target"));
        assert!(e("at=1s kill nod:1").contains("neither a key=value"));
        assert!(e("kill node:1").contains("no `at`"));
        assert!(e("at=soon kill node:1").contains("--fault.at"));
        assert!(e("at=1s restart node:1 for=2s").contains("cannot heal"));
        assert!(e("at=1s kill node:1 for=5s repeat=2x3s").contains("must heal before"));
        assert!(e("at=1s kill consumer:0").contains("acts on a node"));
        assert!(e("at=1s consumer-leave node:1").contains("needs a consumer:I"));
        assert!(e("at=1s delay node:1").contains("MS[±J]"));
        assert!(e("at=1s kill node:1 side=peer").contains("link faults"));
        assert!(e("at=1s kill node:1 color=red").contains("unknown key 'color='"));
        assert!(e("at=1s exec").contains("needs exec"));
    }

    #[test]
    fn validation_checks_the_fault_against_the_run() {
        let v = |t: &str| validate(&[flag(t).unwrap()], &shape()).map_err(|e| e.to_string());
        assert!(v("at=5s kill leader-of:kbench/2 for=3s").is_ok());
        assert!(v("at=31s kill node:1")
            .unwrap_err()
            .contains("run lasts 30000 ms"));
        assert!(v("at=5s kill node:1 for=1s repeat=5x8s")
            .unwrap_err()
            .contains("--fault.repeat"));
        assert!(v("at=5s kill node:7").unwrap_err().contains("no node 7"));
        assert!(v("at=5s kill leader-of:other/0")
            .unwrap_err()
            .contains("topic 'other'"));
        assert!(v("at=5s kill leader-of:kbench/3")
            .unwrap_err()
            .contains("3 partitions"));
        assert!(v("at=5s stop node:1")
            .unwrap_err()
            .contains("mock cluster can do"));
        assert!(v("at=5s kill controller")
            .unwrap_err()
            .contains("no controller"));
        let hooks = RunShape {
            executor: ExecutorKind::HooksOnly,
            node_ids: None,
            ..shape()
        };
        let f = flag("at=5s kill node:9").unwrap();
        assert!(validate(&[f], &hooks)
            .unwrap_err()
            .to_string()
            .contains("--cluster-file"));
        let f = flag("at=5s kill node:9 exec='true'").unwrap();
        assert!(validate(&[f], &hooks).is_ok());
        let c = flag("at=5s consumer-leave consumer:2 exec=true").unwrap();
        assert!(validate(&[c], &shape())
            .unwrap_err()
            .to_string()
            .contains("there are 2 consumers"));
        let unbounded = RunShape {
            length_ms: None,
            ..shape()
        };
        let f = flag("at=5s kill node:1").unwrap();
        assert!(validate(&[f], &unbounded)
            .unwrap_err()
            .to_string()
            .contains("known length"));
    }

    #[test]
    fn joins_name_the_next_member_and_act_once() {
        let v = |ts: &[&str]| {
            let f: Vec<FaultSpec> = ts.iter().map(|t| flag(t).unwrap()).collect();
            validate(&f, &shape()).map_err(|e| e.to_string())
        };
        assert!(v(&[
            "at=2s consumer-join consumer:2",
            "at=4s consumer-join consumer:3"
        ])
        .is_ok());
        assert!(v(&[
            "at=2s consumer-join consumer:2",
            "at=4s consumer-kill consumer:2"
        ])
        .is_ok());
        assert!(v(&["at=2s consumer-join consumer:3"])
            .unwrap_err()
            .contains("write consumer:2"));
        assert!(v(&["at=2s consumer-kill consumer:1"]).is_ok());
        assert!(v(&["at=2s consumer-join consumer:2 repeat=2x5s"])
            .unwrap_err()
            .contains("--fault.repeat"));
        assert!(v(&["at=2s consumer-kill consumer:0 repeat=2x5s"])
            .unwrap_err()
            .contains("one fault step per member"));
        assert_eq!(
            crate::fault::consumers::joins(&[
                flag("at=2s consumer-join consumer:2").unwrap(),
                flag("at=2s consumer-leave consumer:0").unwrap()
            ]),
            1
        );
    }

    #[test]
    fn profile_tables_parse_like_the_flag() {
        let d: FaultDef = toml::from_str(
            "at = \"2s\"\naction = \"kill\"\ntarget = \"node:1\"\nfor = \"1s\"\nrepeat = { count = 2, every = \"5s\" }\n",
        )
        .unwrap();
        let f = d.parse("faults[0]").unwrap();
        assert_eq!(f.occurrences(), vec![2000, 7000]);
        let bad: FaultDef =
            toml::from_str("at = \"2s\"\naction = \"kill\"\ntarget = \"rack:1\"\n").unwrap();
        assert!(bad
            .parse("faults[3]")
            .unwrap_err()
            .to_string()
            .starts_with("faults[3].target"));
    }
}
