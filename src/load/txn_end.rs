//! Ending a producer's transactions off its sending thread: a thread of its own takes each
//! "end this transaction" request, makes librdkafka's blocking call (`commit_transaction`, or
//! a flush then `abort_transaction`), times it and records the outcome in the phase of the
//! transaction's first record.
//!
//! librdkafka refuses records while a transaction ends (`txn_may_enq` is false from the start
//! of the commit), so the sending thread cannot send meanwhile; but it keeps its schedule: a
//! record that fell due during the commit goes out after it with its intended time, so its
//! latency carries the wait (coordinated omission), and the wait itself is the transaction's
//! "commit pause" (`txn_begin`). This thread also never serves delivery reports: the flush
//! inside a commit waits for the reports that the report thread (open model) or the waiting
//! sender (closed model) serves, so every ack time stays exact.

use std::ffi::CStr;
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use rdkafka::bindings as rd;
use rdkafka::producer::{BaseProducer, Producer};

use crate::load::producer::{DeliveryContext, ProducerShared};

/// Longest a commit or abort may take (librdkafka's transaction.timeout.ms defaults to 60 s).
pub const END_TIMEOUT: Duration = Duration::from_secs(30);

/// One transaction to end.
#[derive(Debug, Clone, Copy)]
pub struct EndTxn {
    pub commit: bool,
    /// The phase of its first record, which it counts in.
    pub phase: usize,
    /// Its records: this producer's sequence numbers `first_seq..first_seq + records` (of the
    /// committing kind; an aborting transaction's are numbered apart and never acknowledged).
    pub first_seq: u64,
    pub records: u64,
}

/// How an end went, for the sending thread: may it begin the next transaction?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    Ok,
    /// The producer cannot go on (fenced, or a fatal error): the message says why.
    Fatal(String),
}

/// Serves end requests until the sender hangs up; answers each on `done`.
pub fn serve_ends(
    producer: &BaseProducer<DeliveryContext>,
    shared: &ProducerShared,
    requests: Receiver<EndTxn>,
    done: Sender<Ended>,
) {
    for req in requests {
        let ended = end_one(producer, shared, &req);
        if done.send(ended).is_err() {
            return;
        }
    }
}

/// Ends one transaction and records it.
fn end_one(
    producer: &BaseProducer<DeliveryContext>,
    shared: &ProducerShared,
    req: &EndTxn,
) -> Ended {
    let started = Instant::now();
    let result = if req.commit {
        commit(producer)
    } else {
        abort(producer)
    };
    let took_us = started.elapsed().as_micros() as u64;
    let (failed, outcome) = match result {
        Ok(()) => (false, Ended::Ok),
        Err(e) if req.commit && e.requires_abort => {
            // The commit failed but the producer can go on once it aborts.
            note_error(shared, &e.text);
            match abort(producer) {
                Ok(()) => (true, Ended::Ok),
                Err(a) => (true, Ended::Fatal(format!("{}; then {}", e.text, a.text))),
            }
        }
        Err(e) => (req.commit, Ended::Fatal(e.text)),
    };
    if failed {
        mark_not_committed(shared, req);
    }
    shared.stats.with(req.phase, |s| {
        let t = &mut s.txn;
        t.records += req.records;
        match (req.commit, failed) {
            (true, false) => {
                t.committed += 1;
                t.commit_latency_us.saturating_record(took_us);
            }
            (true, true) => {
                t.failed += 1;
                t.aborted_records += req.records;
            }
            (false, _) => {
                t.aborted += 1;
                t.aborted_records += req.records;
                t.abort_latency_us.saturating_record(took_us);
            }
        }
    });
    outcome
}

/// A transaction meant to commit did not: its records leave the acknowledged set (they count
/// neither as lost nor as delivered) and join the producer's not-committed set.
fn mark_not_committed(shared: &ProducerShared, req: &EndTxn) {
    let range = req.first_seq..req.first_seq + req.records;
    if let Some(acked) = &shared.acked {
        let mut a = acked.lock().unwrap_or_else(|p| p.into_inner());
        range.clone().for_each(|s| a.remove(s));
    }
    let mut nc = shared
        .not_committed
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    range.for_each(|s| {
        nc.insert(s);
    });
}

fn note_error(shared: &ProducerShared, text: &str) {
    *shared.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(text.to_string());
}

/// A transactional call's error, as librdkafka classifies it.
#[derive(Debug)]
pub struct TxnError {
    pub text: String,
    pub requires_abort: bool,
}

/// librdkafka's `commit_transaction` itself: it flushes (waiting for the delivery reports that
/// others serve) and then ends the transaction. Not rdkafka's wrapper, whose own flush polls
/// in windows of up to 100 ms and would add up to that much to every commit.
fn commit(producer: &BaseProducer<DeliveryContext>) -> Result<(), TxnError> {
    let ms = END_TIMEOUT.as_millis() as i32;
    // SAFETY: the client handle is alive for the borrow of `producer`; the returned error (if
    // any) is owned here and destroyed by `take_error`.
    unsafe {
        take_error(rd::rd_kafka_commit_transaction(
            producer.client().native_ptr(),
            ms,
        ))
    }
}

/// Waits for this transaction's records to be delivered, then aborts it: records still queued
/// would otherwise be purged and show up as produce errors.
fn abort(producer: &BaseProducer<DeliveryContext>) -> Result<(), TxnError> {
    let deadline = Instant::now() + END_TIMEOUT;
    while producer.in_flight_count() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
    producer
        .abort_transaction(END_TIMEOUT)
        .map_err(|e| TxnError {
            requires_abort: false,
            text: format!("abort_transaction: {e}"),
        })
}

/// Turns librdkafka's error object into a `TxnError` and frees it.
///
/// # Safety
/// `err` is null or an error librdkafka returned and nobody else owns.
pub unsafe fn take_error(err: *mut rd::rd_kafka_error_t) -> Result<(), TxnError> {
    if err.is_null() {
        return Ok(());
    }
    let text = CStr::from_ptr(rd::rd_kafka_error_string(err))
        .to_string_lossy()
        .into_owned();
    let requires_abort = rd::rd_kafka_error_txn_requires_abort(err) != 0;
    rd::rd_kafka_error_destroy(err);
    Err(TxnError {
        text: format!("commit_transaction: {text}"),
        requires_abort,
    })
}
