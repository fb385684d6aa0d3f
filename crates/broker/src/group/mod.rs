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

    fn join_now(&self, p: JoinParams) -> Reply<JoinOutcome> {
        let err = |error: i16, member_id: &str| {
            Reply::Now(JoinOutcome {
                error,
                generation: -1,
                member_id: member_id.to_string(),
                ..Default::default()
            })
        };
        let session = Duration::from_millis(p.session_timeout_ms.max(0) as u64);
        if !(MIN_SESSION..=MAX_SESSION).contains(&session) {
            return err(INVALID_SESSION_TIMEOUT, &p.member_id);
        }
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        let rebalance = if p.rebalance_timeout_ms > 0 {
            Duration::from_millis(p.rebalance_timeout_ms as u64)
        } else {
            session
        };
        let now = Instant::now();
        let mut groups = self.lock();
        let g = groups.entry(p.group_id.clone()).or_insert_with(Group::new);
        if !g.supports(&p.protocol_type, &p.protocols) {
            return err(INCONSISTENT_GROUP_PROTOCOL, &p.member_id);
        }
        let new_member = |instance_id: Option<String>| Member {
            instance_id,
            client_id: p.client_id.clone(),
            client_host: p.client_host.clone(),
            session_timeout: session,
            rebalance_timeout: rebalance,
            protocols: p.protocols.clone(),
            assignment: Bytes::new(),
            last_seen: now,
            join_tx: None,
            sync_tx: None,
        };
        let member_id: String;
        if p.member_id.is_empty() {
            if let Some(inst) = &p.instance_id {
                member_id = self.new_member_id(inst);
                if let Some(old_id) = g.statics.get(inst).cloned() {
                    // A static member came back: it takes over the old member's place.
                    if let Some(mut old) = g.members.remove(&old_id) {
                        if let Some(tx) = old.join_tx.take() {
                            let _ = tx.send(JoinOutcome {
                                error: FENCED_INSTANCE_ID,
                                member_id: old_id.clone(),
                                ..Default::default()
                            });
                        }
                        if let Some(tx) = old.sync_tx.take() {
                            let _ = tx.send(SyncOutcome {
                                error: FENCED_INSTANCE_ID,
                                ..Default::default()
                            });
                        }
                        let same = old.protocols == p.protocols;
                        let was_leader = g.leader.as_deref() == Some(old_id.as_str());
                        let mut m = new_member(Some(inst.clone()));
                        m.assignment = old.assignment.clone();
                        g.members.insert(member_id.clone(), m);
                        g.statics.insert(inst.clone(), member_id.clone());
                        if was_leader {
                            g.leader = Some(member_id.clone());
                        }
                        if g.state == State::Stable && same && !was_leader {
                            // No rebalance: same subscription, same assignment.
                            return Reply::Now(g.current_join(&member_id));
                        }
                    } else {
                        g.members
                            .insert(member_id.clone(), new_member(Some(inst.clone())));
                        g.statics.insert(inst.clone(), member_id.clone());
                    }
                } else {
                    g.members
                        .insert(member_id.clone(), new_member(Some(inst.clone())));
                    g.statics.insert(inst.clone(), member_id.clone());
                }
            } else {
                member_id = self.new_member_id(if p.client_id.is_empty() {
                    "member"
                } else {
                    &p.client_id
                });
                if p.version >= 4 {
                    // KIP-394: hand out an id and make the client come back with it.
                    g.pending.insert(member_id.clone(), now + session);
                    return err(MEMBER_ID_REQUIRED, &member_id);
                }
                g.members.insert(member_id.clone(), new_member(None));
            }
            if g.members.len() == 1 && g.protocol_type.is_none() {
                g.protocol_type = Some(p.protocol_type.clone());
            }
        } else {
            member_id = p.member_id.clone();
            if let Some(inst) = &p.instance_id {
                if let Some(known) = g.statics.get(inst) {
                    if *known != member_id {
                        return err(FENCED_INSTANCE_ID, &member_id);
                    }
                }
            }
            if g.pending.remove(&member_id).is_some() {
                g.members
                    .insert(member_id.clone(), new_member(p.instance_id.clone()));
                if let Some(inst) = &p.instance_id {
                    g.statics.insert(inst.clone(), member_id.clone());
                }
            } else if let Some(m) = g.members.get_mut(&member_id) {
                let same = m.protocols == p.protocols;
                m.protocols = p.protocols.clone();
                m.session_timeout = session;
                m.rebalance_timeout = rebalance;
                m.last_seen = now;
                let is_leader = g.leader.as_deref() == Some(member_id.as_str());
                match g.state {
                    State::Stable if same && !is_leader => {
                        return Reply::Now(g.current_join(&member_id))
                    }
                    State::CompletingRebalance if same => {
                        let mut o = g.current_join(&member_id);
                        if is_leader {
                            o.members = g.roster(g.protocol.as_deref().unwrap_or_default());
                        }
                        return Reply::Now(o);
                    }
                    _ => {}
                }
            } else {
                return err(UNKNOWN_MEMBER_ID, &member_id);
            }
            if g.protocol_type.is_none() {
                g.protocol_type = Some(p.protocol_type.clone());
            }
        }
        let (tx, rx) = oneshot::channel();
        if let Some(m) = g.members.get_mut(&member_id) {
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
