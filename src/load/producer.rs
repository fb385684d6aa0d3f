//! A producer worker: one librdkafka producer and the thread that feeds it on the open-loop
//! schedule (or as fast as it accepts, closed model).
//!
//! The hot path per record: wait for the deadline, pick a pooled value, write the stamp, send.
//! Whoever serves the delivery reports (a thread of their own in the open model, the sending
//! thread in the closed model) reads the stamp back from the delivered value and records
//! latency, service time and send delay: no per-record state is kept while a record is in
//! flight, and nothing is formatted or allocated per record.
//!
//! A transactional producer (`plan.transactions`) also runs `init_transactions` when it is
//! created, begins and ends transactions around its records (`txn_driver`) and ends them on a
//! third thread (`txn_end`), so its schedule and its delivery reports go on during a commit.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use anyhow::Result;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use crate::load::client::{client_config, explain_create_error};
use crate::load::delivery_reports::{ReportQueue, Reports};
use crate::load::keys::KeyGen;
use crate::load::payload::{PayloadPool, PayloadSpec};
use crate::load::phase_starts::PhaseStarts;
use crate::load::schedule::{tighten_timer_slack, Pacer, Schedule};
use crate::load::stamp::Stamp;
use crate::load::topic_send::{SendError, TopicSender};
use crate::load::txn_driver::TxnDriver;
use crate::load::txn_end::serve_ends;
use crate::measure::clock;
use crate::measure::failover::{Failover, Persisted};
use crate::measure::recorder::{PhaseGuard, PhaseStats, ProduceStats, LATE_SEND_US};
use crate::measure::verify::SeqSet;
use crate::plan::ProducerPlan;

/// In the closed model, sends follow each other back to back (well under a microsecond each),
/// and reading the clock for every one of them cost a third of the sending thread's time on a
/// VM. So the send time is read every this many sends, and again after any wait (a full client
/// queue): a record's send time is then at most this many back-to-back sends early, a few
/// microseconds against latencies of milliseconds. The open model reads the clock per record.
const CLOSED_CLOCK_EVERY: u64 = 8;

/// Closed model: serve delivery reports every this many sends.
const POLL_EVERY: u64 = 16;

/// Longest `init_transactions` may take (it finds the coordinator and fences older instances).
const TXN_INIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Who serves the delivery reports, always a batch at a time off the client's queue
/// (`delivery_reports`).
///
/// Open model: a thread of their own, blocked on the queue, serves them the moment they arrive
/// while the sender sleeps until the next deadline, so ack times are exact. Closed model: the
/// sending thread serves them between sends (as rdkafka_performance does): it never sleeps
/// long, and serving reports in the same thread saves a cross-thread wake-up per report batch,
/// which on two cores cost a fifth of the throughput of small records.
struct ReportServing<'a> {
    queue: &'a ReportQueue<'a>,
    ctx: &'a DeliveryContext,
    /// The sending thread serves them (closed model, or no thread could be started).
    by_sender: bool,
}

impl ReportServing<'_> {
    /// Serves the next batch of reports if one is ready and the sending thread serves them;
    /// false if there was none.
    #[inline]
    fn serve_ready(&self) -> bool {
        self.by_sender
            && self.queue.serve_with(
                Duration::ZERO,
                |r| self.ctx.deliver_batch(r),
                |s| self.ctx.stats(s),
            )
    }

    /// The client's queue is full: serve what is ready and wait until deliveries make room.
    /// Short sleeps, not a blocking poll: rdkafka's poll with a timeout keeps polling until its
    /// deadline and spins through the last millisecond, which burned more CPU than the sending.
    fn wait_for_deliveries(&self) {
        while self.serve_ready() {}
        std::thread::sleep(Duration::from_micros(100));
    }

    /// Waits (at most `timeout`) until every record is delivered and its report served. Not
    /// rdkafka's `flush`, which polls in windows of up to 100 ms and returns only when one ends,
    /// so the end of a run (and its rate) would be late by up to that much.
    fn flush(&self, producer: &BaseProducer<DeliveryContext>, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            while self.serve_ready() {}
            // Counts reports not served yet too, so 0 means every one has been recorded.
            if producer.in_flight_count() == 0 || std::time::Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// The open model's report thread: serves batches as they arrive until `serving` is cleared
/// (and the queue woken).
fn serve_until_stopped(queue: &ReportQueue<'_>, ctx: &DeliveryContext, serving: &AtomicBool) {
    while serving.load(Ordering::Acquire) {
        queue.serve_with(
            Duration::from_millis(100),
            |r| ctx.deliver_batch(r),
            |s| ctx.stats(s),
        );
    }
}

/// Ends the report thread when dropped: when the sender is done, and also if it panics, so
/// the scope that joins the thread cannot wait forever.
struct StopServing<'a>(&'a AtomicBool, &'a ReportQueue<'a>);

impl Drop for StopServing<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
        self.1.wake();
    }
}

/// What a producer shares with the reporter.
pub struct ProducerShared {
    /// The producer's index (its stamp's producer id).
    pub index: u32,
    pub stats: PhaseStats<ProduceStats>,
    /// Sequence numbers acknowledged by the broker (kept for `e2e` loss checks only).
    pub acked: Option<Mutex<SeqSet>>,
    /// Records handed to the client so far.
    pub sent: AtomicU64,
    /// The last delivery or send error, for the reporter to show.
    pub last_error: Mutex<Option<String>>,
    /// Set when the sending loop has finished and the client was flushed.
    pub done: AtomicBool,
    /// Clock time when the flush ended (0 while running).
    pub done_ns: AtomicU64,
    /// A run with faults: the failover state shared by every producer (set before the run).
    pub failover: OnceLock<Arc<Mutex<Failover>>>,
    /// A transactional producer: its transactional.id and how long `init_transactions` took.
    pub transactional_id: Option<String>,
    pub init_transactions_us: AtomicU64,
    /// Sequence numbers of transactions whose commit failed (so they were aborted).
    pub not_committed: Mutex<SeqSet>,
}

/// What serving the delivery reports needs (librdkafka's client context, too).
pub struct DeliveryContext {
    shared: Arc<ProducerShared>,
    open_model: bool,
}

impl ClientContext for DeliveryContext {}

impl DeliveryContext {
    /// Serves one batch of delivery reports: they were acknowledged together, so they share
    /// one clock reading and one lock.
    fn deliver_batch(&self, reports: Reports<'_>) {
        let now = clock::now_ns();
        let mut stats = self.shared.stats.lock();
        let mut acked = self.acked();
        let mut failover = self.failover(now);
        for r in reports {
            if let Some(e) = r.error {
                self.note_error(&KafkaError::MessageProduction(RDKafkaErrorCode::from(e)));
            }
            let size = r.value.len() + r.key_len;
            let outcome = Outcome {
                partition: r.partition,
                error: r.error,
                status: r.status,
            };
            self.record(
                &mut stats,
                acked.as_deref_mut(),
                failover.as_deref_mut(),
                now,
                r.value,
                size,
                &outcome,
            );
        }
    }

    /// librdkafka's statistics (once per `statistics.interval.ms`): the records transmitted
    /// so far go to the failover state, which works out the retries from them.
    fn stats(&self, json: &[u8]) {
        let Some(fo) = self.shared.failover.get() else {
            return;
        };
        if let Some(tx) = crate::measure::failover::tx_msgs(json) {
            let now = clock::now_ns();
            fo.lock()
                .unwrap_or_else(|p| p.into_inner())
                .transmitted(self.shared.index, now, tx);
        }
    }

    /// The failover state, locked for a batch served at `now` (runs with faults only); taken
    /// after the other locks.
    fn failover(&self, now: u64) -> Option<MutexGuard<'_, Failover>> {
        self.shared.failover.get().map(|f| {
            let mut g = f.lock().unwrap_or_else(|p| p.into_inner());
            g.begin_batch(now);
            g
        })
    }

    /// The acknowledged sequence numbers, locked (`e2e` only); taken after the stats lock.
    fn acked(&self) -> Option<MutexGuard<'_, SeqSet>> {
        self.shared
            .acked
            .as_ref()
            .map(|a| a.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn note_error(&self, e: &KafkaError) {
        *self
            .shared
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
    }

    /// Adds one delivery report, served at `now`, to the stats of the phase in its stamp
    /// (values without a stamp are not kbench's and are skipped).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn record(
        &self,
        stats: &mut PhaseGuard<'_, ProduceStats>,
        acked: Option<&mut SeqSet>,
        failover: Option<&mut Failover>,
        now: u64,
        value: &[u8],
        size: usize,
        outcome: &Outcome,
    ) {
        let Some(stamp) = Stamp::read(value) else {
            return;
        };
        let s = stats.phase(stamp.phase as usize);
        let latency_us = now.saturating_sub(stamp.intended_ns) / 1000;
        if let Some(fo) = failover {
            match outcome.error {
                None => fo.acked(
                    now,
                    stamp.producer_id,
                    outcome.partition,
                    stamp.intended_ns,
                    latency_us,
                ),
                Some(e) => fo.failed(
                    now,
                    stamp.producer_id,
                    stamp.seq,
                    e,
                    persisted(outcome.status),
                ),
            }
        }
        if outcome.error.is_none() {
            s.records += 1;
            s.bytes += size as u64;
            s.latency_us.saturating_record(latency_us);
            // In the closed model the intended time is the send call: the reporter copies
            // this histogram into the service one once per interval instead.
            if self.open_model {
                s.service_latency_us
                    .saturating_record(now.saturating_sub(stamp.sent_ns) / 1000);
            }
            // A record of a transaction that aborts is never meant to be consumed.
            if let (Some(acked), false) = (acked, stamp.aborting) {
                acked.insert(stamp.seq);
            }
        } else {
            s.errors += 1;
        }
        if self.open_model {
            let delay = stamp.sent_ns.saturating_sub(stamp.intended_ns) / 1000;
            s.send_delay_us.saturating_record(delay);
            s.late_sends += (delay > LATE_SEND_US) as u64;
        }
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    /// One report through rdkafka's own polling: only what the client still holds when it is
    /// dropped (kbench serves the rest in batches, `deliver_batch`).
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let now = clock::now_ns();
        let (msg, ok) = match result {
            Ok(m) => (m, true),
            Err((e, m)) => {
                self.note_error(e);
                (m, false)
            }
        };
        let value = msg.payload().unwrap_or_default();
        let size = msg.payload_len() + msg.key().map_or(0, <[u8]>::len);
        // SAFETY: the message pointer is alive for the borrow of `msg`.
        let (err, status) = unsafe {
            (
                (*msg.ptr()).err,
                rdkafka::bindings::rd_kafka_message_status(msg.ptr()),
            )
        };
        let error = (!ok).then_some(err);
        let outcome = Outcome {
            partition: msg.partition(),
            error,
            status,
        };
        let mut stats = self.shared.stats.lock();
        let mut acked = self.acked();
        let mut failover = self.failover(now);
        self.record(
            &mut stats,
            acked.as_deref_mut(),
            failover.as_deref_mut(),
            now,
            value,
            size,
            &outcome,
        );
    }
}

/// How one record's delivery ended.
struct Outcome {
    partition: i32,
    /// librdkafka's error; `None` when the broker took the record.
    error: Option<rdkafka::bindings::rd_kafka_resp_err_t>,
    status: rdkafka::bindings::rd_kafka_msg_status_t,
}

fn persisted(s: rdkafka::bindings::rd_kafka_msg_status_t) -> Persisted {
    use rdkafka::bindings::rd_kafka_msg_status_t as S;
    match s {
        S::RD_KAFKA_MSG_STATUS_NOT_PERSISTED => Persisted::Not,
        S::RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED => Persisted::Possibly,
        S::RD_KAFKA_MSG_STATUS_PERSISTED => Persisted::Yes,
    }
}

/// Everything one producer needs to run.
pub struct ProducerWorker {
    index: u32,
    run_id: u32,
    topic: String,
    plan: ProducerPlan,
    producer: BaseProducer<DeliveryContext>,
    pub shared: Arc<ProducerShared>,
}

impl ProducerWorker {
    /// Creates the client now, so a bad property fails before any load starts.
    pub fn new(
        index: u32,
        run_id: u32,
        bootstrap: &str,
        topic: &str,
        plan: &ProducerPlan,
        track_acks: bool,
    ) -> Result<Self> {
        let shared = Arc::new(ProducerShared {
            index,
            stats: PhaseStats::new(plan.timeline.phases.len()),
            acked: track_acks.then(Default::default),
            sent: AtomicU64::new(0),
            last_error: Mutex::new(None),
            done: AtomicBool::new(false),
            done_ns: AtomicU64::new(0),
            failover: OnceLock::new(),
            transactional_id: plan
                .transactions
                .as_ref()
                .map(|t| t.id_of(index, plan.producers)),
            init_transactions_us: AtomicU64::new(0),
            not_committed: Mutex::new(SeqSet::default()),
        });
        let ctx = DeliveryContext {
            shared: shared.clone(),
            open_model: plan.timeline.open_model(),
        };
        let mut cfg = client_config(bootstrap, &plan.props);
        if cfg.get("client.id").is_none() {
            cfg.set("client.id", format!("kbench-producer-{index}"));
        }
        if let Some(id) = &shared.transactional_id {
            cfg.set("transactional.id", id);
        }
        let explain = |e| explain_create_error(e, &plan.props, "producer");
        let producer: BaseProducer<DeliveryContext> =
            cfg.create_with_context(ctx).map_err(explain)?;
        // Before the load starts, so the first records are not late behind it.
        if let Some(id) = &shared.transactional_id {
            let started = std::time::Instant::now();
            producer.init_transactions(TXN_INIT_TIMEOUT).map_err(|e| {
                anyhow::anyhow!("init_transactions for transactional.id '{id}' failed: {e}; does the cluster support transactions (and transaction.timeout.ms stay under its transaction.max.timeout.ms)?")
            })?;
            shared
                .init_transactions_us
                .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
        Ok(ProducerWorker {
            index,
            run_id,
            topic: topic.to_string(),
            plan: plan.clone(),
            producer,
            shared,
        })
    }

    /// Sends on the timeline from `start_ns` until its end, the record count or `stop`, then
    /// flushes (waiting at most `flush`, or `flush_on_stop` after a stop).
    pub fn run(
        self,
        start_ns: u64,
        starts: &PhaseStarts,
        stop: &AtomicBool,
        flush: Duration,
        flush_on_stop: Duration,
    ) {
        tighten_timer_slack();
        let queue = ReportQueue::new(self.producer.client());
        let ctx: &DeliveryContext = self.producer.context();
        let serving = AtomicBool::new(true);
        std::thread::scope(|scope| {
            // Transactions end on a thread of their own (`txn_end`).
            let (end_tx, end_rx) = std::sync::mpsc::channel();
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            let txn = match &self.plan.transactions {
                Some(t) => {
                    let (producer, shared) = (&self.producer, &*self.shared);
                    let spawned = std::thread::Builder::new()
                        .name(format!("kbench-txn-{}", self.index))
                        .spawn_scoped(scope, move || serve_ends(producer, shared, end_rx, done_tx));
                    if let Err(e) = spawned {
                        // Without it no transaction could end: send nothing.
                        self.note_error(format!("cannot start the transaction thread: {e}"));
                        return;
                    }
                    Some(TxnDriver::new(
                        t,
                        producer,
                        shared,
                        self.plan.seed,
                        (end_tx, done_rx),
                    ))
                }
                None => None,
            };
            let own_thread = self.plan.timeline.open_model()
                && std::thread::Builder::new()
                    .name(format!("kbench-acks-{}", self.index))
                    .spawn_scoped(scope, || serve_until_stopped(&queue, ctx, &serving))
                    .is_ok();
            let _stop = StopServing(&serving, &queue);
            // Without a thread of their own (closed model, or none could be started), the
            // sending thread serves the reports.
            let reports = ReportServing {
                queue: &queue,
                ctx,
                by_sender: !own_thread,
            };
            let mut txn = txn;
            self.send(start_ns, starts, stop, &reports, txn.as_mut());
            if let Some(t) = txn.as_mut() {
                if let Err(e) = t.finish(&|| {
                    reports.serve_ready();
                }) {
                    self.note_error(e);
                }
            }
            // Dropping the driver ends the transaction thread before the scope joins it.
            drop(txn);
            let flush_for = if stop.load(Ordering::Relaxed) {
                flush_on_stop
            } else {
                flush
            };
            reports.flush(&self.producer, flush_for);
            // `_stop` ends the report thread here, before the scope joins it.
        });
        self.shared
            .done_ns
            .store(clock::now_ns(), Ordering::Relaxed);
        self.shared.done.store(true, Ordering::Release);
    }

    /// Makes sure the next record has a transaction (`txn_driver`), serving delivery reports
    /// while it waits when the sender serves them; `None` when the producer cannot go on.
    fn begin(
        &self,
        txn: &mut TxnDriver,
        intended_ns: u64,
        phase: usize,
        reports: &ReportServing,
    ) -> Option<crate::load::txn_driver::Begun> {
        let serve = || {
            reports.serve_ready();
        };
        txn.before_send(intended_ns, phase, &serve)
            .map_err(|e| self.note_error(e))
            .ok()
    }

    fn note_error(&self, e: String) {
        *self
            .shared
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(e);
    }

    /// Hands one record to the client, waiting for deliveries while its queue is full (the
    /// wait counts in this record's service time and in later records' send delay). A send
    /// the client refuses for another reason is counted as an error and not retried.
    fn send_one<C: rdkafka::client::ClientContext>(
        &self,
        sender: &TopicSender<'_, C>,
        value: &[u8],
        key: Option<&[u8]>,
        phase: usize,
        stop: &AtomicBool,
        reports: &ReportServing,
    ) -> Sent {
        let mut waited = false;
        loop {
            match sender.send(value, key) {
                Ok(()) => return Sent::Sent { waited },
                Err(SendError::QueueFull) => {
                    if stop.load(Ordering::Relaxed) {
                        return Sent::Stopped;
                    }
                    reports.wait_for_deliveries();
                    waited = true;
                }
                Err(SendError::Other(e)) => {
                    *self
                        .shared
                        .last_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some(e);
                    self.shared.stats.with(phase, |s| s.errors += 1);
                    return Sent::Sent { waited };
                }
            }
        }
    }

    /// The sending loop: every segment of the timeline, until its end, the record count or
    /// `stop`.
    fn send(
        &self,
        start_ns: u64,
        starts: &PhaseStarts,
        stop: &AtomicBool,
        reports: &ReportServing,
        mut txn: Option<&mut TxnDriver>,
    ) {
        let p = &self.plan;
        let t = &p.timeline;
        let producers = p.producers as u64;
        let mut rng = SmallRng::seed_from_u64(
            p.seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(self.index as u64 + 1)),
        );
        let mut pool = match p.payload {
            PayloadSpec::Generated {
                record_size,
                random_ratio,
            } => {
                let codec = p
                    .props
                    .get("compression.type")
                    .or(p.props.get("compression.codec"));
                let compressed = codec.is_some_and(|c| c != "none");
                PayloadPool::generated(record_size, random_ratio, compressed, &mut rng)
            }
            PayloadSpec::File { .. } => PayloadPool::from_parts(&p.payload_parts),
        };
        let mut keys = KeyGen::new(&p.keys, self.index as u64);
        let excluded: Vec<bool> = t.phases.iter().map(|ph| ph.excluded).collect();
        // `i` numbers this producer's records; `j` restarts per segment.
        let mut i: u64 = 0;
        // The stamps' sequence numbers: records of transactions that abort count on their own,
        // so the committed ones stay gapless for any reader's loss check.
        let (mut committed_seq, mut aborting_seq) = (0u64, 0u64);
        let mut pacer = Pacer::default();
        let sender = match TopicSender::new(self.producer.client(), &self.topic) {
            Ok(s) => s,
            Err(e) => {
                *self
                    .shared
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(format!("{e:?}"));
                return;
            }
        };
        'segments: for seg in t.segments() {
            let seg_start = start_ns + seg.start_offset_ns;
            let seg_end = seg.end_offset_ns.map(|e| start_ns + e);
            let schedule = Schedule::new(seg_start, seg.rate, self.index, p.producers);
            let mut j: u64 = 0;
            // Closed model: the clock is read every CLOSED_CLOCK_EVERY sends and after any wait
            // (see the constant); `stale` forces a fresh read.
            let (mut closed_now, mut stale) = (0u64, true);
            loop {
                let global = i * producers + self.index as u64;
                if t.max_records.is_some_and(|n| global >= n) || stop.load(Ordering::Relaxed) {
                    break 'segments;
                }
                let due = schedule.due_ns(j);
                if due.is_some_and(|d| seg_end.is_some_and(|end| d >= end)) {
                    break; // next segment
                }
                let sent_ns = match due {
                    Some(d) => pacer.wait_until(d),
                    None if j == 0 => pacer.wait_until(seg_start),
                    None => {
                        if stale || j.is_multiple_of(CLOSED_CLOCK_EVERY) {
                            closed_now = clock::now_ns();
                            stale = false;
                        }
                        closed_now
                    }
                };
                let intended_ns = due.unwrap_or(sent_ns);
                if due.is_none() && seg_end.is_some_and(|end| sent_ns >= end) {
                    break;
                }
                let phase = match t.warmup_records {
                    Some(w) if global >= w => 1,
                    _ => seg.phase,
                };
                if j == 0 || phase != seg.phase {
                    starts.mark(phase, intended_ns);
                }
                let (mut sent_ns, mut aborting) = (sent_ns, false);
                if let Some(t) = txn.as_deref_mut() {
                    let Some(b) = self.begin(t, intended_ns, phase, reports) else {
                        break 'segments;
                    };
                    aborting = b.aborting;
                    if b.waited {
                        // It waited for a commit: it is sent now, late by that wait.
                        sent_ns = clock::now_ns();
                        stale = true;
                    }
                }
                let value = pool.pick(&mut rng);
                Stamp {
                    run_id: self.run_id,
                    producer_id: self.index,
                    seq: if aborting {
                        aborting_seq
                    } else {
                        committed_seq
                    },
                    intended_ns,
                    sent_ns,
                    phase: phase as u8,
                    excluded: excluded[phase],
                    aborting,
                }
                .write(value);
                let key = keys.key(i, &mut rng);
                match self.send_one(&sender, value, key, phase, stop, reports) {
                    Sent::Sent { waited } => stale |= waited,
                    Sent::Stopped => break 'segments,
                }
                if let Some(t) = txn.as_deref_mut() {
                    t.after_send(intended_ns, committed_seq);
                }
                if aborting {
                    aborting_seq += 1;
                } else {
                    committed_seq += 1;
                }
                i += 1;
                j += 1;
                self.shared.sent.store(i, Ordering::Relaxed);
                if j.is_multiple_of(POLL_EVERY) {
                    reports.serve_ready();
                }
            }
        }
    }
}

/// How `send_one` ended: the record went to the client (or failed there, counted), after
/// waiting for queue room or not; or the run stopped while the queue was full.
enum Sent {
    Sent { waited: bool },
    Stopped,
}
