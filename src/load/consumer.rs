//! A consumer worker: one librdkafka `BaseConsumer`, a member of the group, served on its own
//! thread. It takes what was fetched a batch at a time (`fetch_queue`), reads the clock once per
//! batch, hands the batch to `receive` (per record: the stamp, its end-to-end latency,
//! verification) and updates the shared counters once per batch; once a second it reads the
//! lag of its partitions from the client's cached watermarks. Rebalances, errors and commits
//! are served by rdkafka on the group's queue, between batches.
//!
//! Faults reach a member through its shared flags: a late member (for `consumer-join`)
//! subscribes only once told to; `consumer-leave` ends the loop and leaves the group cleanly;
//! `consumer-kill` ends it and destroys the client without leaving, so the group waits for the
//! member's session to expire.

use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::Offset;

use crate::load::client::{client_config, explain_create_error};
use crate::load::fetch_queue::{Batch, FetchQueue, GroupQueue};
pub use crate::load::group_member::ConsumerShared;
use crate::load::group_member::GroupContext;
pub use crate::load::receive::ConsumerPhases;
use crate::load::receive::{Received, Receiver};
use crate::measure::clock;
use crate::measure::verify::Seen;
use crate::plan::ConsumerPlan;

/// Records taken off the fetch queue at most per batch.
const BATCH_RECORDS: usize = 1024;
/// Longest wait for a record before the loop looks at `stop`, the pause flag and the lag.
const POLL_WAIT: Duration = Duration::from_millis(50);
/// Group events served in a row at most before the next batch of records.
const GROUP_EVENTS_PER_TURN: usize = 16;

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
    /// Dropped (in `drop`) before the consumer, whose client it belongs to.
    fetch: ManuallyDrop<FetchQueue>,
    group: ManuallyDrop<GroupQueue>,
    /// Dropped in `drop`: closed (leaving the group), or for a killed member destroyed
    /// without closing.
    consumer: ManuallyDrop<BaseConsumer<GroupContext>>,
    receiver: Receiver,
    /// The topic a late member subscribes to when it joins.
    topic: String,
    pub shared: Arc<ConsumerShared>,
}

impl ConsumerWorker {
    /// Creates the client and subscribes (a `late` member: creates it only; it subscribes when
    /// a `consumer-join` fault says so), so bad properties fail before any load starts.
    pub fn new(
        index: u32,
        bootstrap: &str,
        topic: &str,
        plan: &ConsumerPlan,
        how: &ConsumerSetup,
        late: bool,
    ) -> Result<Self> {
        let ConsumerSetup {
            phases,
            phase_count,
            run_filter,
            from_intended,
        } = *how;
        let shared = Arc::new(ConsumerShared::new(phase_count, index, late));
        let mut cfg = client_config(bootstrap, &plan.props);
        if cfg.get("client.id").is_none() {
            cfg.set("client.id", format!("kbench-consumer-{index}"));
        }
        let mut consumer: BaseConsumer<GroupContext> = cfg
            .create_with_context(GroupContext::new(shared.clone()))
            .map_err(|e| explain_create_error(e, &plan.props, "consumer"))?;
        let fetch = FetchQueue::new(consumer.client());
        let group = GroupQueue::new(consumer.client())
            .ok_or_else(|| anyhow::anyhow!("the consumer has no group queue (no group.id?)"))?;
        let handle = fetch.handle();
        consumer.context().route_to(Some(handle));
        // A group event (a rebalance, say) cuts a wait for records short, so it is served at
        // once. rdkafka switches this off before the consumer closes; `drop` does too before
        // the fetch queue goes.
        consumer.set_nonempty_callback(move || handle.wake());
        let worker = ConsumerWorker {
            fetch: ManuallyDrop::new(fetch),
            group: ManuallyDrop::new(group),
            consumer: ManuallyDrop::new(consumer),
            receiver: Receiver {
                phases,
                run_filter,
                from_intended,
            },
            topic: topic.to_string(),
            shared,
        };
        if !late {
            worker.subscribe()?;
        }
        Ok(worker)
    }

    fn subscribe(&self) -> Result<()> {
        let topic = &self.topic;
        self.consumer
            .subscribe(&[topic])
            .map_err(|e| anyhow::anyhow!("cannot subscribe to '{topic}': {e}"))
    }

    /// A late member waits for its `consumer-join` (or the end), then subscribes. False when
    /// the run ended first or the subscription failed.
    fn join_when_told(&self, stop: &AtomicBool) -> bool {
        while !self.shared.join.load(Ordering::Relaxed) {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep(POLL_WAIT);
        }
        self.shared.joining(clock::now_ns());
        match self.subscribe() {
            Ok(()) => true,
            Err(e) => {
                self.set_error(format!("{e:#}"));
                false
            }
        }
    }

    /// Until the member stops: the run's end, a `consumer-leave` or a `consumer-kill`.
    fn stopped(&self, stop: &AtomicBool) -> bool {
        stop.load(Ordering::Relaxed)
            || self.shared.leave.load(Ordering::Relaxed)
            || self.shared.kill.load(Ordering::Relaxed)
    }

    /// Consumes until `stop`; returns what it saw for verification.
    pub fn run(self, stop: &AtomicBool) -> Seen {
        let mut seen = Seen::default();
        if self.shared.late && !self.join_when_told(stop) {
            return seen;
        }
        let mut batch = Batch::with_capacity(BATCH_RECORDS);
        let mut next_lag_ns = 0u64;
        let mut paused = false;
        while !self.stopped(stop) {
            let want = self.shared.paused.load(Ordering::Relaxed);
            if want != paused {
                paused = want;
                self.set_paused(paused);
            }
            self.serve_group(&mut seen);
            // Wait only when the group has nothing either: a group event that arrives from
            // here on wakes the wait (one that came before was just served).
            let mut n = self.fetch.take(&mut batch, Duration::ZERO);
            if n == 0 && self.group.is_empty() {
                n = self.fetch.take(&mut batch, POLL_WAIT);
            }
            // One clock reading per batch, after it is in hand: every record's receive time
            // and the lag timer's.
            let now = clock::now_ns();
            if n > 0 {
                self.record_batch(&batch, now, &mut seen);
            }
            if now >= next_lag_ns {
                next_lag_ns = now + 1_000_000_000;
                self.update_lag();
            }
        }
        batch.clear();
        if stop.load(Ordering::Relaxed) {
            self.update_lag();
        } else {
            // It left or was killed mid-run: it holds nothing now, and its last lag would
            // stay in the group's sum.
            self.shared.assigned.store(0, Ordering::Release);
            self.shared.lag.store(-1, Ordering::Relaxed);
        }
        if !self.shared.kill.load(Ordering::Relaxed) {
            // Leave the group cleanly so a following run does not wait for our session to
            // expire.
            self.consumer.unsubscribe();
        }
        seen
    }

    /// Records a batch: the records through `receive`, then the shared counters once.
    fn record_batch(&self, batch: &Batch, now: u64, seen: &mut Seen) {
        let errors = batch.iter().filter(|f| f.error.is_some()).count() as u64;
        let records = batch
            .iter()
            .filter(|f| f.error.is_none())
            .map(|f| Received {
                value: f.value,
                key_len: f.key_len,
                partition: f.partition,
            });
        let n = self
            .receiver
            .record(records, errors, now, &self.shared.stats, seen);
        if errors > 0 {
            let last = batch
                .iter()
                .filter_map(|f| f.error.map(|e| (e, f.partition)));
            if let Some((code, partition)) = last.last() {
                self.set_error(consume_error(code, partition).to_string());
            }
        }
        if n > 0 {
            self.shared.received.fetch_add(n, Ordering::Relaxed);
            self.shared.last_record_ns.store(now, Ordering::Relaxed);
            let ok = batch.iter().filter(|f| f.error.is_none());
            self.shared.note_gaps(ok.map(|f| f.partition), now);
        }
    }

    /// Serves what waits on the group's queue: rebalances and commits (handled inside rdkafka's
    /// poll), errors, and any record fetched before its partition was routed to the fetch queue.
    fn serve_group(&self, seen: &mut Seen) {
        for _ in 0..GROUP_EVENTS_PER_TURN {
            if self.group.is_empty() {
                return;
            }
            match self.consumer.poll(Duration::ZERO) {
                Some(Ok(m)) => {
                    let now = clock::now_ns();
                    let record = Received {
                        value: m.payload().unwrap_or(&[]),
                        key_len: m.key().map_or(0, <[u8]>::len),
                        partition: m.partition(),
                    };
                    self.receiver
                        .record([record], 0, now, &self.shared.stats, seen);
                    self.shared.note_gaps(std::iter::once(m.partition()), now);
                    self.shared.received.fetch_add(1, Ordering::Relaxed);
                    self.shared.last_record_ns.store(now, Ordering::Relaxed);
                }
                Some(Err(e)) => {
                    self.shared.stats.with(usize::MAX, |st| st.errors += 1);
                    self.set_error(e.to_string());
                }
                None => {}
            }
        }
    }

    fn set_error(&self, text: String) {
        *self
            .shared
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(text);
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
                self.set_error(e.to_string());
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

impl Drop for ConsumerWorker {
    fn drop(&mut self) {
        // The wake-up and the rebalance handler reach the fetch queue: switch both off first.
        self.consumer.set_nonempty_callback(|| {});
        self.consumer.context().route_to(None);
        // SAFETY: both are dropped once, here, and not used after (the consumer's own drop,
        // which closes it, serves only the group's queue through rdkafka).
        unsafe {
            ManuallyDrop::drop(&mut self.fetch);
            ManuallyDrop::drop(&mut self.group);
        }
        if self.shared.kill.load(Ordering::Relaxed) {
            destroy_without_leaving(&mut self.consumer);
        } else {
            // SAFETY: dropped once, here, after the queues that belong to its client.
            unsafe { ManuallyDrop::drop(&mut self.consumer) };
        }
    }
}

/// A killed member: the client goes away as if its process had died. librdkafka's
/// `RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE` destroys it without the consumer close (no
/// LeaveGroup, no final commit), so the coordinator keeps the member until its session times
/// out. rdkafka's wrapper is leaked on purpose: its drop would close the consumer (leaving the
/// group) and destroy the handle a second time. A few hundred bytes, once per fault.
fn destroy_without_leaving(consumer: &mut ManuallyDrop<BaseConsumer<GroupContext>>) {
    // SAFETY: the handle is valid (the wrapper was never dropped) and destroyed once; nothing
    // uses the wrapper afterwards, and it is never dropped (ManuallyDrop, not dropped here).
    unsafe {
        rd::rd_kafka_destroy_flags(
            consumer.client().native_ptr(),
            rd::RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE,
        );
    }
}

/// A consumer error that came in a batch, as rdkafka names it when it polls one.
fn consume_error(code: rd::rd_kafka_resp_err_t, partition: i32) -> KafkaError {
    if code == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF {
        KafkaError::PartitionEOF(partition)
    } else {
        KafkaError::MessageConsumption(RDKafkaErrorCode::from(code))
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
