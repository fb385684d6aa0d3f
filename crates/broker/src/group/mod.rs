//! The classic consumer-group coordinator: membership, generations, rebalances with
//! session/rebalance timeouts, MEMBER_ID_REQUIRED, static members, and the validation of
//! offset commits. Assignors run in the clients; the leader's assignment is relayed as bytes.
//!
//! Owns: group state (in memory; members rejoin after a restart, as Kafka's do) and, through
//! `offsets`, committed offsets (on disk). Must not: block while holding its lock — JoinGroup and
//! SyncGroup replies are delivered through oneshot channels awaited outside the lock; timeouts
//! are driven by `tick`, called by a background task.

pub mod offsets;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

pub const NONE: i16 = 0;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const MEMBER_ID_REQUIRED: i16 = 79;
pub const FENCED_INSTANCE_ID: i16 = 82;
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
pub const NOT_COORDINATOR: i16 = 16;

/// Kafka's `group.min.session.timeout.ms` / `group.max.session.timeout.ms`.
const MIN_SESSION: Duration = Duration::from_millis(6_000);
const MAX_SESSION: Duration = Duration::from_millis(1_800_000);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
        }
    }
}

/// A JoinGroup request, already decoded.
#[derive(Debug, Clone)]
pub struct JoinParams {
    pub group_id: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub version: i16,
}

#[derive(Debug, Clone, Default)]
pub struct JoinOutcome {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Filled for the leader only: (member id, instance id, metadata for the chosen protocol).
    pub members: Vec<(String, Option<String>, Bytes)>,
}

#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    pub error: i16,
    pub assignment: Bytes,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
}

#[derive(Debug)]
struct Member {
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_seen: Instant,
    join_tx: Option<oneshot::Sender<JoinOutcome>>,
    sync_tx: Option<oneshot::Sender<SyncOutcome>>,
}

#[derive(Debug)]
struct Group {
    state: State,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, valid until the deadline.
    pending: HashMap<String, Instant>,
    statics: HashMap<String, String>,
    join_deadline: Option<Instant>,
    /// During the initial delay of an empty group, joins wait for the deadline even when
    /// everyone has joined, so that a burst of starting consumers lands in one generation.
    initial_phase: bool,
    sync_deadline: Option<Instant>,
    rebalances: u64,
}

impl Group {
    fn new() -> Self {
        Group {
            state: State::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            statics: HashMap::new(),
            join_deadline: None,
            initial_phase: false,
            sync_deadline: None,
            rebalances: 0,
        }
    }

    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::from_secs(60))
    }

    fn remove_member(&mut self, id: &str) -> Option<Member> {
        let m = self.members.remove(id)?;
        if let Some(inst) = &m.instance_id {
            if self.statics.get(inst).map(String::as_str) == Some(id) {
                self.statics.remove(inst);
            }
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
        Some(m)
    }

    fn prepare_rebalance(&mut self, now: Instant, initial_delay: Duration) {
        if self.state == State::CompletingRebalance {
            for m in self.members.values_mut() {
                if let Some(tx) = m.sync_tx.take() {
                    let _ = tx.send(SyncOutcome {
                        error: REBALANCE_IN_PROGRESS,
                        ..Default::default()
                    });
                }
            }
        }
        let was_empty = self.state == State::Empty;
        if self.state != State::PreparingRebalance {
            self.rebalances += 1;
        }
        self.state = State::PreparingRebalance;
        self.sync_deadline = None;
        let timeout = self.max_rebalance_timeout();
        if was_empty {
            self.initial_phase = !initial_delay.is_zero();
            self.join_deadline = Some(now + initial_delay.min(timeout));
        } else if self.join_deadline.is_none() || !self.initial_phase {
            self.join_deadline = Some(now + timeout);
        }
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(|m| m.join_tx.is_some())
    }

    fn try_complete_join(&mut self, now: Instant) {
        if self.state != State::PreparingRebalance {
            return;
        }
        let deadline_passed = self.join_deadline.is_some_and(|d| d <= now);
        if deadline_passed || (!self.initial_phase && self.all_joined()) {
            self.complete_join(now);
        }
    }

    fn complete_join(&mut self, now: Instant) {
        let absent: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.join_tx.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        for id in absent {
            self.remove_member(&id);
        }
        self.pending.clear();
        self.join_deadline = None;
        self.initial_phase = false;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = State::Empty;
            self.protocol = None;
            self.leader = None;
            return;
        }
        // Each member votes for its most preferred protocol that everyone supports.
        let candidates: Vec<String> = self
            .members
            .values()
            .next()
            .map(|m| m.protocols.iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default();
        let candidates: Vec<String> = candidates
            .into_iter()
            .filter(|c| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == c))
            })
            .collect();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                *votes.entry(n.as_str()).or_default() += 1;
            }
        }
        let chosen = candidates
            .iter()
            .max_by_key(|c| {
                (
                    votes.get(c.as_str()).copied().unwrap_or(0),
                    usize::MAX - candidates.iter().position(|x| x == *c).unwrap_or(0),
                )
            })
            .cloned();
        self.protocol = chosen.clone();
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        let leader = self.leader.clone().unwrap_or_default();
        let chosen = chosen.unwrap_or_default();
        let roster = self.roster(&chosen);
        self.state = State::CompletingRebalance;
        self.sync_deadline = Some(now + self.max_rebalance_timeout());
        for (id, m) in self.members.iter_mut() {
            m.last_seen = now;
            m.assignment = Bytes::new();
            if let Some(tx) = m.join_tx.take() {
                let _ = tx.send(JoinOutcome {
                    error: NONE,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: Some(chosen.clone()),
                    leader: leader.clone(),
                    member_id: id.clone(),
                    members: if *id == leader {
                        roster.clone()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
    }

    /// What the leader is sent to assign from: each member with its metadata for the chosen
    /// protocol.
    fn roster(&self, chosen: &str) -> Vec<(String, Option<String>, Bytes)> {
        self.members
            .iter()
            .map(|(id, m)| {
                let meta = m
                    .protocols
                    .iter()
                    .find(|(n, _)| n == chosen)
                    .map(|(_, b)| b.clone())
                    .unwrap_or_default();
                (id.clone(), m.instance_id.clone(), meta)
            })
            .collect()
    }

    fn current_join(&self, member_id: &str) -> JoinOutcome {
        JoinOutcome {
            error: NONE,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// Summary of one group for DescribeGroups / metrics.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    /// (member id, instance id, client id, client host, metadata, assignment)
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
    pub rebalances: u64,
}

#[derive(Debug)]
pub struct Coordinator {
    groups: Mutex<HashMap<String, Group>>,
    pub offsets: offsets::OffsetStore,
    initial_delay: Duration,
    ids: AtomicU64,
}

enum Reply<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

/// The session and rebalance timeouts a JoinGroup asked for.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    session: Duration,
    rebalance: Duration,
}

impl Timeouts {
    /// Err(INVALID_SESSION_TIMEOUT) outside the broker's bounds.
    fn of(p: &JoinParams) -> Result<Timeouts, i16> {
        let session = Duration::from_millis(p.session_timeout_ms.max(0) as u64);
        if !(MIN_SESSION..=MAX_SESSION).contains(&session) {
            return Err(INVALID_SESSION_TIMEOUT);
        }
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        let rebalance = if p.rebalance_timeout_ms > 0 {
            Duration::from_millis(p.rebalance_timeout_ms as u64)
        } else {
            session
        };
        Ok(Timeouts { session, rebalance })
    }
}

/// What admitting a joiner decided: answer it now, or let it wait for the rebalance as this
/// member id.
enum Admission {
    Answer(Reply<JoinOutcome>),
    Rebalance(String),
}

fn join_error(error: i16, member_id: &str) -> Reply<JoinOutcome> {
    Reply::Now(JoinOutcome {
        error,
        generation: -1,
        member_id: member_id.to_string(),
        ..Default::default()
    })
}

fn joining_member(
    p: &JoinParams,
    instance_id: Option<String>,
    t: Timeouts,
    now: Instant,
) -> Member {
    Member {
        instance_id,
        client_id: p.client_id.clone(),
        client_host: p.client_host.clone(),
        session_timeout: t.session,
        rebalance_timeout: t.rebalance,
        protocols: p.protocols.clone(),
        assignment: Bytes::new(),
        last_seen: now,
        join_tx: None,
        sync_tx: None,
    }
}

/// Answers a replaced static member's parked requests with FENCED_INSTANCE_ID.
fn fence(old: &mut Member, old_id: &str) {
    if let Some(tx) = old.join_tx.take() {
        let _ = tx.send(JoinOutcome {
            error: FENCED_INSTANCE_ID,
            member_id: old_id.to_string(),
            ..Default::default()
        });
    }
    if let Some(tx) = old.sync_tx.take() {
        let _ = tx.send(SyncOutcome {
            error: FENCED_INSTANCE_ID,
            ..Default::default()
        });
    }
}

/// A static member joining as `member_id`: if its instance was known, it takes over the old
/// member's place and assignment. Returns an answer when that needs no rebalance (same
/// subscription, stable group, not the leader).
fn admit_static(
    g: &mut Group,
    p: &JoinParams,
    inst: &str,
    member_id: &str,
    t: Timeouts,
    now: Instant,
) -> Option<Reply<JoinOutcome>> {
    let returning = g
        .statics
        .get(inst)
        .cloned()
        .and_then(|old_id| g.members.remove(&old_id).map(|m| (old_id, m)));
    let mut m = joining_member(p, Some(inst.to_string()), t, now);
    g.statics.insert(inst.to_string(), member_id.to_string());
    let Some((old_id, mut old)) = returning else {
        g.members.insert(member_id.to_string(), m);
        return None;
    };
    fence(&mut old, &old_id);
    let same = old.protocols == p.protocols;
    let was_leader = g.leader.as_deref() == Some(old_id.as_str());
    m.assignment = old.assignment.clone();
    g.members.insert(member_id.to_string(), m);
    if was_leader {
        g.leader = Some(member_id.to_string());
    }
    (g.state == State::Stable && same && !was_leader).then(|| Reply::Now(g.current_join(member_id)))
}

/// A joiner with a member id: one handed out by MEMBER_ID_REQUIRED, or a known member
/// rejoining (which needs no rebalance when nothing changed).
fn admit_known(g: &mut Group, p: &JoinParams, t: Timeouts, now: Instant) -> Admission {
    let member_id = p.member_id.clone();
    if let Some(inst) = &p.instance_id {
        if g.statics.get(inst).is_some_and(|known| *known != member_id) {
            return Admission::Answer(join_error(FENCED_INSTANCE_ID, &member_id));
        }
    }
    if g.pending.remove(&member_id).is_some() {
        g.members.insert(
            member_id.clone(),
            joining_member(p, p.instance_id.clone(), t, now),
        );
        if let Some(inst) = &p.instance_id {
            g.statics.insert(inst.clone(), member_id.clone());
        }
    } else if g.members.contains_key(&member_id) {
        if let Some(reply) = rejoin(g, p, &member_id, t, now) {
            return Admission::Answer(reply);
        }
    } else {
        return Admission::Answer(join_error(UNKNOWN_MEMBER_ID, &member_id));
    }
    if g.protocol_type.is_none() {
        g.protocol_type = Some(p.protocol_type.clone());
    }
    Admission::Rebalance(member_id)
}

/// A known member's JoinGroup: refreshes it, and answers at once when the group need not
/// rebalance for it.
fn rejoin(
    g: &mut Group,
    p: &JoinParams,
    member_id: &str,
    t: Timeouts,
    now: Instant,
) -> Option<Reply<JoinOutcome>> {
    let m = g.members.get_mut(member_id)?;
    let same = m.protocols == p.protocols;
    m.protocols = p.protocols.clone();
    m.session_timeout = t.session;
    m.rebalance_timeout = t.rebalance;
    m.last_seen = now;
    let is_leader = g.leader.as_deref() == Some(member_id);
    match g.state {
        State::Stable if same && !is_leader => Some(Reply::Now(g.current_join(member_id))),
        State::CompletingRebalance if same => {
            let mut o = g.current_join(member_id);
            if is_leader {
                o.members = g.roster(g.protocol.as_deref().unwrap_or_default());
            }
            Some(Reply::Now(o))
        }
        _ => None,
    }
}

impl Coordinator {
    pub fn new(offsets: offsets::OffsetStore, initial_delay: Duration) -> Self {
        Coordinator {
            groups: Mutex::new(HashMap::new()),
            offsets,
            initial_delay,
            ids: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_member_id(&self, prefix: &str) -> String {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        format!("{prefix}-{t:016x}-{n:08x}")
    }

    pub async fn join(&self, p: JoinParams) -> JoinOutcome {
        let reply = self.join_now(p);
        match reply {
            Reply::Now(o) => o,
            Reply::Later(rx) => rx.await.unwrap_or(JoinOutcome {
                error: REBALANCE_IN_PROGRESS,
                ..Default::default()
            }),
        }
    }

    /// A JoinGroup in three steps: check its timeouts and protocol, admit the member (new,
    /// static, pending or known), then either answer at once or wait for the rebalance.
    fn join_now(&self, p: JoinParams) -> Reply<JoinOutcome> {
        let timeouts = match Timeouts::of(&p) {
            Ok(t) => t,
            Err(code) => return join_error(code, &p.member_id),
        };
        let now = Instant::now();
        let mut groups = self.lock();
        let g = groups.entry(p.group_id.clone()).or_insert_with(Group::new);
        if !g.supports(&p.protocol_type, &p.protocols) {
            return join_error(INCONSISTENT_GROUP_PROTOCOL, &p.member_id);
        }
        let admission = if p.member_id.is_empty() {
            self.admit_new(g, &p, timeouts, now)
        } else {
            admit_known(g, &p, timeouts, now)
        };
        match admission {
            Admission::Answer(reply) => reply,
            Admission::Rebalance(member_id) => self.wait_for_rebalance(g, &member_id, now),
        }
    }

    /// A joiner without a member id: a static member gets one (and may take over its old
    /// place); a dynamic one gets one too, and from v4 must come back with it (KIP-394).
    fn admit_new(&self, g: &mut Group, p: &JoinParams, t: Timeouts, now: Instant) -> Admission {
        let member_id = match &p.instance_id {
            Some(inst) => {
                let id = self.new_member_id(inst);
                if let Some(reply) = admit_static(g, p, inst, &id, t, now) {
                    return Admission::Answer(reply);
                }
                id
            }
            None => {
                let prefix = if p.client_id.is_empty() {
                    "member"
                } else {
                    &p.client_id
                };
                let id = self.new_member_id(prefix);
                if p.version >= 4 {
                    g.pending.insert(id.clone(), now + t.session);
                    return Admission::Answer(join_error(MEMBER_ID_REQUIRED, &id));
                }
                g.members
                    .insert(id.clone(), joining_member(p, None, t, now));
                id
            }
        };
        if g.members.len() == 1 && g.protocol_type.is_none() {
            g.protocol_type = Some(p.protocol_type.clone());
        }
        Admission::Rebalance(member_id)
    }

    /// Parks the member's JoinGroup until the rebalance completes, starting one if needed.
    fn wait_for_rebalance(
        &self,
        g: &mut Group,
        member_id: &str,
        now: Instant,
    ) -> Reply<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if let Some(m) = g.members.get_mut(member_id) {
            if let Some(old) = m.join_tx.replace(tx) {
                let _ = old.send(JoinOutcome {
                    error: UNKNOWN_MEMBER_ID,
                    ..Default::default()
                });
            }
        }
        if g.state != State::PreparingRebalance {
            g.prepare_rebalance(now, self.initial_delay);
        } else if g.initial_phase {
            // New arrivals during the initial delay extend it (bounded by the rebalance timeout).
            let cap = now + g.max_rebalance_timeout();
            g.join_deadline = Some((now + self.initial_delay).min(cap));
        }
        g.try_complete_join(now);
        Reply::Later(rx)
    }

    pub async fn sync(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncOutcome {
        let reply = {
            let mut groups = self.lock();
            let now = Instant::now();
            let err = |error| {
                Reply::Now(SyncOutcome {
                    error,
                    ..Default::default()
                })
            };
            match groups.get_mut(group) {
                None => err(UNKNOWN_MEMBER_ID),
                Some(g) => {
                    let fenced = instance_id
                        .is_some_and(|i| g.statics.get(i).is_some_and(|m| m != member_id));
                    if fenced {
                        err(FENCED_INSTANCE_ID)
                    } else if !g.members.contains_key(member_id) {
                        err(UNKNOWN_MEMBER_ID)
                    } else if generation != g.generation {
                        err(ILLEGAL_GENERATION)
                    } else {
                        let ptype = g.protocol_type.clone();
                        let pname = g.protocol.clone();
                        match g.state {
                            State::Empty => err(UNKNOWN_MEMBER_ID),
                            State::PreparingRebalance => err(REBALANCE_IN_PROGRESS),
                            State::Stable => {
                                let a = g
                                    .members
                                    .get(member_id)
                                    .map(|m| m.assignment.clone())
                                    .unwrap_or_default();
                                Reply::Now(SyncOutcome {
                                    error: NONE,
                                    assignment: a,
                                    protocol_type: ptype,
                                    protocol_name: pname,
                                })
                            }
                            State::CompletingRebalance => {
                                let (tx, rx) = oneshot::channel();
                                if let Some(m) = g.members.get_mut(member_id) {
                                    m.sync_tx = Some(tx);
                                    m.last_seen = now;
                                }
                                if g.leader.as_deref() == Some(member_id) {
                                    for (id, a) in assignments {
                                        if let Some(m) = g.members.get_mut(&id) {
                                            m.assignment = a;
                                        }
                                    }
                                    g.state = State::Stable;
                                    g.sync_deadline = None;
                                    for m in g.members.values_mut() {
                                        m.last_seen = now;
                                        if let Some(tx) = m.sync_tx.take() {
                                            let _ = tx.send(SyncOutcome {
                                                error: NONE,
                                                assignment: m.assignment.clone(),
                                                protocol_type: ptype.clone(),
                                                protocol_name: pname.clone(),
                                            });
                                        }
                                    }
                                }
                                Reply::Later(rx)
                            }
                        }
                    }
                }
            }
        };
        match reply {
            Reply::Now(o) => o,
            Reply::Later(rx) => rx.await.unwrap_or(SyncOutcome {
                error: REBALANCE_IN_PROGRESS,
                ..Default::default()
            }),
        }
    }

    pub fn heartbeat(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> i16 {
        let mut groups = self.lock();
        let Some(g) = groups.get_mut(group) else {
            return UNKNOWN_MEMBER_ID;
        };
        if instance_id.is_some_and(|i| g.statics.get(i).is_some_and(|m| m != member_id)) {
            return FENCED_INSTANCE_ID;
        }
        let state = g.state;
        let gen = g.generation;
        let Some(m) = g.members.get_mut(member_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        m.last_seen = Instant::now();
        match state {
            State::Empty => UNKNOWN_MEMBER_ID,
            _ if generation != gen => ILLEGAL_GENERATION,
            State::PreparingRebalance => REBALANCE_IN_PROGRESS,
            _ => NONE,
        }
    }

    /// Removes members (by id, or by instance id when the id is empty). Per-member error codes.
    pub fn leave(&self, group: &str, members: &[(String, Option<String>)]) -> Vec<i16> {
        let mut groups = self.lock();
        let Some(g) = groups.get_mut(group) else {
            return vec![UNKNOWN_MEMBER_ID; members.len()];
        };
        let now = Instant::now();
        let mut codes = Vec::with_capacity(members.len());
        let mut removed = false;
        for (id, inst) in members {
            let id = if id.is_empty() {
                inst.as_ref()
                    .and_then(|i| g.statics.get(i).cloned())
                    .unwrap_or_default()
            } else {
                id.clone()
            };
            if g.pending.remove(&id).is_some() {
                codes.push(NONE);
                removed = true;
            } else if let Some(mut m) = g.remove_member(&id) {
                if let Some(tx) = m.join_tx.take() {
                    let _ = tx.send(JoinOutcome {
                        error: UNKNOWN_MEMBER_ID,
                        ..Default::default()
                    });
                }
                codes.push(NONE);
                removed = true;
            } else {
                codes.push(UNKNOWN_MEMBER_ID);
            }
        }
        if removed {
            match g.state {
                State::Stable | State::CompletingRebalance => {
                    g.prepare_rebalance(now, Duration::ZERO)
                }
                _ => {}
            }
            g.try_complete_join(now);
        }
        codes
    }

    /// Checks an OffsetCommit against the group (`ClassicGroup.validateOffsetCommit`).
    pub fn validate_commit(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> i16 {
        let mut groups = self.lock();
        let Some(g) = groups.get_mut(group) else {
            return if generation < 0 {
                NONE
            } else {
                ILLEGAL_GENERATION
            };
        };
        if generation < 0 && member_id.is_empty() {
            return if g.state == State::Empty {
                NONE
            } else {
                UNKNOWN_MEMBER_ID
            };
        }
        if instance_id.is_some_and(|i| g.statics.get(i).is_some_and(|m| m != member_id)) {
            return FENCED_INSTANCE_ID;
        }
        let state = g.state;
        let gen = g.generation;
        let Some(m) = g.members.get_mut(member_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        m.last_seen = Instant::now();
        if generation != gen {
            ILLEGAL_GENERATION
        } else if state == State::CompletingRebalance {
            REBALANCE_IN_PROGRESS
        } else {
            NONE
        }
    }

    /// Drives timeouts: expired sessions, join and sync deadlines, stale pending member ids.
    pub fn tick(&self, now: Instant) {
        let mut groups = self.lock();
        for g in groups.values_mut() {
            g.pending.retain(|_, d| *d > now);
            let expired: Vec<String> = g
                .members
                .iter()
                .filter(|(_, m)| {
                    m.join_tx.is_none()
                        && m.sync_tx.is_none()
                        && m.last_seen + m.session_timeout <= now
                })
                .map(|(k, _)| k.clone())
                .collect();
            if !expired.is_empty() {
                for id in &expired {
                    tracing::info!(member = %id, "consumer group member session expired");
                    g.remove_member(id);
                }
                if matches!(g.state, State::Stable | State::CompletingRebalance) {
                    g.prepare_rebalance(now, Duration::ZERO);
                }
            }
            if g.state == State::CompletingRebalance && g.sync_deadline.is_some_and(|d| d <= now) {
                // The leader never sent the assignment: start over.
                g.prepare_rebalance(now, Duration::ZERO);
            }
            g.try_complete_join(now);
        }
    }

    pub fn describe(&self, group: &str) -> Option<GroupDescription> {
        let groups = self.lock();
        let g = groups.get(group)?;
        let chosen = g.protocol.clone().unwrap_or_default();
        Some(GroupDescription {
            state: g.state.name(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if g.state == State::Stable || g.state == State::CompletingRebalance {
                chosen.clone()
            } else {
                String::new()
            },
            members: g
                .members
                .iter()
                .map(|(id, m)| {
                    let meta = m
                        .protocols
                        .iter()
                        .find(|(n, _)| *n == chosen)
                        .map(|(_, b)| b.clone())
                        .unwrap_or_default();
                    (
                        id.clone(),
                        m.instance_id.clone(),
                        m.client_id.clone(),
                        m.client_host.clone(),
                        meta,
                        m.assignment.clone(),
                    )
                })
                .collect(),
            rebalances: g.rebalances,
        })
    }

    /// Forgets every group `gone` names (this node stopped coordinating them): members
    /// waiting in JoinGroup or SyncGroup get NOT_COORDINATOR, so they find the new
    /// coordinator and rejoin there, as Kafka's do. Returns how many groups were dropped.
    pub fn drop_groups(&self, gone: impl Fn(&str) -> bool) -> usize {
        let mut groups = self.lock();
        let ids: Vec<String> = groups.keys().filter(|g| gone(g)).cloned().collect();
        for id in &ids {
            let Some(mut g) = groups.remove(id) else {
                continue;
            };
            for (member_id, m) in g.members.iter_mut() {
                if let Some(tx) = m.join_tx.take() {
                    let _ = tx.send(JoinOutcome {
                        error: NOT_COORDINATOR,
                        member_id: member_id.clone(),
                        generation: -1,
                        ..Default::default()
                    });
                }
                if let Some(tx) = m.sync_tx.take() {
                    let _ = tx.send(SyncOutcome {
                        error: NOT_COORDINATOR,
                        ..Default::default()
                    });
                }
            }
        }
        ids.len()
    }

    /// (group id, protocol type, state) of every group, including offset-only ones.
    pub fn list(&self) -> Vec<(String, String, &'static str)> {
        let mut out: BTreeMap<String, (String, &'static str)> = BTreeMap::new();
        for (g, ..) in self.offsets.all() {
            out.insert(g, ("consumer".to_string(), "Empty"));
        }
        for (id, g) in self.lock().iter() {
            out.insert(
                id.clone(),
                (
                    g.protocol_type.clone().unwrap_or_else(|| "consumer".into()),
                    g.state.name(),
                ),
            );
        }
        out.into_iter().map(|(k, (t, s))| (k, t, s)).collect()
    }
}

#[cfg(test)]
mod tests;
