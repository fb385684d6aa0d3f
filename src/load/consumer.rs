//! A consumer worker: one librdkafka `BaseConsumer`, a member of the group, polled on its own
//! thread. For each record it counts bytes, reads the stamp (end-to-end latency, verification)
//! and, once a second, the lag of its partitions from the client's cached watermarks.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Result;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::Offset;
use rdkafka::ClientContext;

use crate::load::client::{client_config, explain_create_error};
use crate::load::stamp::Stamp;
use crate::measure::clock;
use crate::measure::recorder::{ConsumeStats, PhaseStats};
use crate::measure::verify::Seen;
use crate::plan::ConsumerPlan;

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
    /// A run with faults: per-partition gaps between received records, shared by the group.
    pub gaps: OnceLock<Arc<Mutex<crate::measure::gaps::GapTracker>>>,
    /// Set by a `consumer-leave` fault: this member stops polling and leaves the group.
    pub leave: AtomicBool,
}

pub struct GroupContext {
    shared: Arc<ConsumerShared>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            self.shared
                .join_started_ns
                .store(clock::now_ns(), Ordering::Relaxed);
            self.shared.assigned.store(0, Ordering::Release);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let started = self.shared.join_started_ns.load(Ordering::Relaxed);
            self.shared
                .rebalance_ns
                .fetch_add(clock::now_ns().saturating_sub(started), Ordering::Relaxed);
            self.shared.assigned.store(tpl.count(), Ordering::Release);
        }
    }
}

/// How a record's stamp maps to this run's phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerPhases {
    /// The producers are part of this run (`e2e`): the stamp's phase index is ours.
    SameRun,
    /// Standalone `consume`: phase 0 = the producers' warm-up, phase 1 = everything else.
    WarmupAndMeasured,
}

/// How a consumer reads the stamps of this run.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerSetup {
    pub phases: ConsumerPhases,
    /// Phases of the run (recorders keep one set each).
    pub phase_count: usize,
    /// Only records of this run count (`e2e`); `None` accepts any kbench stamp.
    pub run_filter: Option<u32>,
    /// End-to-end latency from the intended send time (open model) or the send call.
    pub from_intended: bool,
}

pub struct ConsumerWorker {
    consumer: BaseConsumer<GroupContext>,
    phases: ConsumerPhases,
    /// Only records of this run count (`e2e`); `None` accepts any kbench stamp.
    run_filter: Option<u32>,
    /// Measure end-to-end latency from the intended send time (open model) or the send call.
    from_intended: bool,
    pub shared: Arc<ConsumerShared>,
}

impl ConsumerWorker {
    /// Creates the client and subscribes, so bad properties fail before any load starts.
    pub fn new(
        index: u32,
        bootstrap: &str,
        topic: &str,
        plan: &ConsumerPlan,
        how: &ConsumerSetup,
    ) -> Result<Self> {
        let ConsumerSetup {
            phases,
            phase_count,
            run_filter,
            from_intended,
        } = *how;
        let shared = Arc::new(ConsumerShared {
            stats: PhaseStats::new(phase_count),
            received: AtomicU64::new(0),
            last_record_ns: AtomicU64::new(0),
            lag: AtomicI64::new(-1),
            assigned: AtomicUsize::new(0),
            rebalance_ns: AtomicU64::new(0),
            join_started_ns: AtomicU64::new(0),
            last_error: Mutex::new(None),
            paused: AtomicBool::new(false),
            gaps: OnceLock::new(),
            leave: AtomicBool::new(false),
        });
        shared
            .join_started_ns
            .store(clock::now_ns(), Ordering::Relaxed);
        let mut cfg = client_config(bootstrap, &plan.props);
        if cfg.get("client.id").is_none() {
            cfg.set("client.id", format!("kbench-consumer-{index}"));
        }
        let consumer: BaseConsumer<GroupContext> = cfg
            .create_with_context(GroupContext {
                shared: shared.clone(),
            })
            .map_err(|e| explain_create_error(e, &plan.props, "consumer"))?;
        consumer
            .subscribe(&[topic])
            .map_err(|e| anyhow::anyhow!("cannot subscribe to '{topic}': {e}"))?;
        Ok(ConsumerWorker {
            consumer,
            phases,
            run_filter,
            from_intended,
            shared,
        })
    }

    /// Polls until `stop`; returns what it saw for verification.
    pub fn run(self, stop: &AtomicBool) -> Seen {
        let mut seen = Seen::default();
        let mut next_lag_ns = 0u64;
        let mut paused = false;
        while !stop.load(Ordering::Relaxed) && !self.shared.leave.load(Ordering::Relaxed) {
            let want = self.shared.paused.load(Ordering::Relaxed);
            if want != paused {
                paused = want;
                self.set_paused(paused);
            }
            let polled = self.consumer.poll(Duration::from_millis(50));
            // One clock reading per loop: the record's receive time and the lag timer's.
            let now = clock::now_ns();
            match polled {
                Some(Ok(m)) => {
                    let value = m.payload().unwrap_or(&[]);
                    let size = (value.len() + m.key().map_or(0, <[u8]>::len)) as u64;
                    let stamp = Stamp::read(value)
                        .filter(|s| self.run_filter.is_none_or(|r| r == s.run_id));
                    // Unstamped records count in the last (measured) phase.
                    let phase = match (&stamp, self.phases) {
                        (Some(s), ConsumerPhases::SameRun) => s.phase as usize,
                        (Some(s), ConsumerPhases::WarmupAndMeasured) => usize::from(!s.excluded),
                        (None, _) => usize::MAX,
                    };
                    self.shared.stats.with(phase, |st| {
                        st.records += 1;
                        st.bytes += size;
                        match &stamp {
                            Some(s) => {
                                let origin = if self.from_intended {
                                    s.intended_ns
                                } else {
                                    s.sent_ns
                                };
                                st.e2e_latency_us
                                    .saturating_record(now.saturating_sub(origin) / 1000);
                            }
                            None => st.unstamped += 1,
                        }
                    });
                    if let Some(s) = stamp {
                        seen.observe(s.producer_id, m.partition(), s.seq);
                    }
                    if let Some(g) = self.shared.gaps.get() {
                        g.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .observe(m.partition(), now);
                    }
                    self.shared.received.fetch_add(1, Ordering::Relaxed);
                    self.shared.last_record_ns.store(now, Ordering::Relaxed);
                }
                Some(Err(e)) => {
                    self.shared.stats.with(usize::MAX, |st| st.errors += 1);
                    *self
                        .shared
                        .last_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                }
                None => {}
            }
            if now >= next_lag_ns {
                next_lag_ns = now + 1_000_000_000;
                self.update_lag();
            }
        }
        self.update_lag();
        // Leave the group cleanly so a following run does not wait for our session to expire.
        self.consumer.unsubscribe();
        seen
    }

    /// Pauses or resumes fetching on every assigned partition. Polling goes on meanwhile, so
    /// the member stays in the group (unlike sleeping in the poll loop, which would exceed
    /// max.poll.interval.ms on a long pause).
    fn set_paused(&self, pause: bool) {
        if let Ok(tpl) = self.consumer.assignment() {
            let r = if pause {
                self.consumer.pause(&tpl)
            } else {
                self.consumer.resume(&tpl)
            };
            if let Err(e) = r {
                *self
                    .shared
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
            }
        }
    }

    /// Lag from cached watermarks (no network round trip).
    fn update_lag(&self) {
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        let mut lag = 0i64;
        let mut known = false;
        for e in positions.elements() {
            if let Offset::Offset(pos) = e.offset() {
                if let Some(high) = cached_high_watermark(&self.consumer, e.topic(), e.partition())
                {
                    lag += (high - pos).max(0);
                    known = true;
                }
            }
        }
        if known {
            self.shared.lag.store(lag, Ordering::Relaxed);
        }
    }
}

/// The log end offset librdkafka last saw in a fetch response for this partition, without a
/// network round trip (rdkafka wraps only the querying variant).
fn cached_high_watermark(
    consumer: &BaseConsumer<GroupContext>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client handle is alive for the borrow of `consumer`; the topic is a valid C
    // string; librdkafka only writes the two out-parameters.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}
