//! A consumer's membership of its group: what it shares with the reporter (counters, lag,
//! assignment, time spent rebalancing) and with the fault scheduler (the flags by which a
//! member joins late, leaves or is killed), and the rdkafka context that follows the group's
//! rebalances, routing newly assigned partitions to the worker's fetch queue before librdkafka
//! starts fetching them. It never reads records.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::ClientContext;

use crate::load::fetch_queue::QueueHandle;
use crate::measure::clock;
use crate::measure::rebalance::GroupWatch;
use crate::measure::recorder::{ConsumeStats, PhaseStats};

/// What a consumer shares with the reporter.
pub struct ConsumerShared {
    pub stats: PhaseStats<ConsumeStats>,
    /// Records received (all phases), for end conditions and progress.
    pub received: AtomicU64,
    /// Clock time of the last record, 0 before the first.
    pub last_record_ns: AtomicU64,
    /// Sum of (log end offset − position) over this member's partitions; -1 while unknown.
    pub lag: AtomicI64,
    /// Partitions currently assigned to this member.
    pub assigned: AtomicUsize,
    /// Time spent joining the group and rebalancing, as Kafka's tool counts it.
    pub rebalance_ns: AtomicU64,
    join_started_ns: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    /// Set by the runner during phases that build a backlog: fetching stops, membership stays.
    pub paused: AtomicBool,
    /// A run with faults: per-partition gaps, handovers and rebalances, shared by the group.
    pub watch: std::sync::OnceLock<Arc<Mutex<GroupWatch>>>,
    /// Set by a `consumer-leave` fault: this member stops consuming and leaves the group.
    pub leave: AtomicBool,
    /// This member's index among the run's consumers (`consumer:I`).
    pub index: u32,
    /// Created for a `consumer-join` fault: it subscribes only once `join` is set.
    pub late: bool,
    /// Set by a `consumer-join` fault: this (late) member subscribes and starts consuming.
    pub join: AtomicBool,
    /// Set by a `consumer-kill` fault: this member stops at once and its client goes away
    /// without leaving the group (no LeaveGroup), as a crashed process would.
    pub kill: AtomicBool,
    /// High watermark minus last stable offset over this member's partitions, from
    /// librdkafka's statistics (`load::lso`); -1 while unknown or without statistics.
    pub lso_lag: AtomicI64,
}

impl ConsumerShared {
    /// Nothing received yet; joining starts now (or, for a `late` member, when it joins).
    pub fn new(phase_count: usize, index: u32, late: bool) -> Self {
        ConsumerShared {
            stats: PhaseStats::new(phase_count),
            received: AtomicU64::new(0),
            last_record_ns: AtomicU64::new(0),
            lag: AtomicI64::new(-1),
            assigned: AtomicUsize::new(0),
            rebalance_ns: AtomicU64::new(0),
            join_started_ns: AtomicU64::new(clock::now_ns()),
            last_error: Mutex::new(None),
            paused: AtomicBool::new(false),
            watch: std::sync::OnceLock::new(),
            leave: AtomicBool::new(false),
            index,
            late,
            join: AtomicBool::new(false),
            kill: AtomicBool::new(false),
            lso_lag: AtomicI64::new(-1),
        }
    }

    /// A run with faults: the partitions of records received at `now`, for the consume gaps
    /// and handovers (one lock per batch).
    pub fn note_gaps(&self, partitions: impl Iterator<Item = i32>, now: u64) {
        if let Some(g) = self.watch.get() {
            let mut g = g.lock().unwrap_or_else(|p| p.into_inner());
            partitions.for_each(|p| g.observe(self.index, p, now));
        }
    }

    /// A late member subscribes now: its join, like a first member's, starts the rebalance
    /// time.
    pub fn joining(&self, now: u64) {
        self.join_started_ns.store(now, Ordering::Relaxed);
    }
}

/// The consumer's context: follows the group's rebalances for the reporter (assigned
/// partitions, time spent joining) and routes newly assigned partitions to the fetch queue.
pub struct GroupContext {
    shared: Arc<ConsumerShared>,
    /// Where assigned partitions' records go: set right after the client is created, before
    /// the first poll (the only time a rebalance can run); cleared before the queue goes.
    fetch_queue: Mutex<Option<QueueHandle>>,
}

impl GroupContext {
    pub fn new(shared: Arc<ConsumerShared>) -> Self {
        GroupContext {
            shared,
            fetch_queue: Mutex::new(None),
        }
    }

    /// Sets (or, before the queue goes, clears) where assigned partitions' records go.
    pub fn route_to(&self, queue: Option<QueueHandle>) {
        *self.fetch_queue.lock().unwrap_or_else(|p| p.into_inner()) = queue;
    }
}

impl ClientContext for GroupContext {
    /// Statistics (with `statistics.interval.ms`): only the LSO lag is read from them.
    fn stats_raw(&self, json: &[u8]) {
        if let Some(lag) = crate::load::lso::lso_lag(json) {
            self.shared.lso_lag.store(lag as i64, Ordering::Relaxed);
        }
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(_) => {
                self.shared
                    .join_started_ns
                    .store(clock::now_ns(), Ordering::Relaxed);
            }
            // Before librdkafka starts fetching them, so all their records come batched.
            Rebalance::Assign(tpl) => {
                let q = *self.fetch_queue.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(q) = q {
                    q.route(consumer.client(), tpl);
                }
            }
            Rebalance::Error(_) => {}
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // The whole assignment, not the callback's list: under a cooperative protocol
        // (cooperative-sticky, KIP-848) that list holds only the partitions added or revoked.
        let assigned = consumer.assignment().map_or(0, |a| a.count());
        if let Rebalance::Revoke(_) = rebalance {
            self.shared.assigned.store(assigned, Ordering::Release);
        }
        if let Rebalance::Assign(_) = rebalance {
            let now = clock::now_ns();
            // Taken, so an assignment without a revoke before it (a cooperative member that
            // only gains partitions) counts from nothing rather than from an old revoke.
            let started = self.shared.join_started_ns.swap(0, Ordering::Relaxed);
            if started > 0 {
                self.shared
                    .rebalance_ns
                    .fetch_add(now.saturating_sub(started), Ordering::Relaxed);
                if let Some(w) = self.shared.watch.get() {
                    w.lock().unwrap_or_else(|p| p.into_inner()).rebalanced(
                        self.shared.index,
                        started,
                        now,
                    );
                }
            }
            self.shared.assigned.store(assigned, Ordering::Release);
        }
    }
}
