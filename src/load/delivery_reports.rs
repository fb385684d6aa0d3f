//! Serving a producer's delivery reports straight from librdkafka's main queue, one batch (the
//! records of one produce response) at a time.
//!
//! rdkafka's `BaseProducer::poll` wraps every report in a `BorrowedMessage` (an allocation per
//! batch, a reference count per record) and calls `ProducerContext::delivery` once per record,
//! so kbench read the clock and took its stats lock once per record too. At 100-byte records in
//! the closed model, where the sending thread serves the reports and is the tool's bottleneck,
//! a profile put that at about a tenth of the thread's time. The reports of one batch were
//! acknowledged by one response and are served at one instant, so one clock reading and one
//! lock per batch lose nothing. This module owns the `unsafe` of reading the reports.
//!
//! The closed model's sending thread serves the queue between sends; the open model's report
//! thread blocks on it, so a batch is served the moment it arrives.
//!
//! Statistics events (only with `statistics.interval.ms`, set for runs with faults) go to a
//! callback of their own; every other event is released unread, which is what rdkafka did with
//! them for kbench's context (errors and token refreshes it does not handle); errors that
//! matter reach kbench on the reports themselves.

use std::marker::PhantomData;
use std::slice;
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};

/// One delivery report: the record's value and key length, its partition, and whether the
/// broker took it.
pub struct Report<'e> {
    pub value: &'e [u8],
    pub key_len: usize,
    pub partition: i32,
    /// librdkafka's error for a record that was not delivered.
    pub error: Option<rd::rd_kafka_resp_err_t>,
    /// For a failed record: may the broker have stored it anyway (read only on failure)?
    pub status: rd::rd_kafka_msg_status_t,
}

/// The reports of one event, in the order librdkafka lists them.
pub struct Reports<'e> {
    event: *mut rd::rd_kafka_event_t,
    _event: PhantomData<&'e ()>,
}

impl<'e> Iterator for Reports<'e> {
    type Item = Report<'e>;

    fn next(&mut self) -> Option<Report<'e>> {
        // SAFETY: the event is a live delivery-report event until `serve_one` destroys it,
        // after this iterator is gone; each message it returns lives as long as the event.
        let msg = unsafe { rd::rd_kafka_event_message_next(self.event).as_ref()? };
        let value = if msg.payload.is_null() {
            &[][..]
        } else {
            // SAFETY: librdkafka's payload pointer and length describe the record's value.
            unsafe { slice::from_raw_parts(msg.payload as *const u8, msg.len) }
        };
        let ok = msg.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;
        let status = if ok {
            rd::rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_PERSISTED
        } else {
            // SAFETY: `msg` is a live message of the event.
            unsafe { rd::rd_kafka_message_status(msg) }
        };
        Some(Report {
            value,
            key_len: msg.key_len,
            partition: msg.partition,
            error: (!ok).then_some(msg.err),
            status,
        })
    }
}

/// A reference to a producer's main queue, where its delivery reports arrive.
pub struct ReportQueue<'p> {
    /// The queue must not outlive the client it belongs to.
    _client: PhantomData<&'p ()>,
    queue: *mut rd::rd_kafka_queue_t,
}

impl<'p> ReportQueue<'p> {
    pub fn new<C: ClientContext + 'static>(client: &'p Client<C>) -> Self {
        // SAFETY: the client pointer is valid while `client` is borrowed; the queue reference
        // returned is released in `drop`.
        let queue = unsafe { rd::rd_kafka_queue_get_main(client.native_ptr()) };
        ReportQueue {
            _client: PhantomData,
            queue,
        }
    }

    /// Serves the next event on the queue, waiting up to `wait` for one: a batch of delivery
    /// reports goes to `on_batch`, anything else is released. False when none came (or the
    /// wait was cut short by `wake`).
    #[inline]
    pub fn serve(&self, wait: Duration, on_batch: impl FnOnce(Reports<'_>)) -> bool {
        self.serve_with(wait, on_batch, |_| {})
    }

    /// `serve`, and librdkafka's statistics (JSON, when `statistics.interval.ms` is set) go
    /// to `on_stats`.
    #[inline]
    pub fn serve_with(
        &self,
        wait: Duration,
        on_batch: impl FnOnce(Reports<'_>),
        on_stats: impl FnOnce(&[u8]),
    ) -> bool {
        let wait_ms = wait.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: the queue reference is alive until drop.
        let event = unsafe { rd::rd_kafka_queue_poll(self.queue, wait_ms) };
        if event.is_null() {
            return false;
        }
        // SAFETY: `event` is the live event just polled.
        match unsafe { rd::rd_kafka_event_type(event) } {
            rd::RD_KAFKA_EVENT_DR => on_batch(Reports {
                event,
                _event: PhantomData,
            }),
            rd::RD_KAFKA_EVENT_STATS => {
                // SAFETY: a statistics event's JSON lives as long as the event.
                let json = unsafe { rd::rd_kafka_event_stats(event) };
                if !json.is_null() {
                    // SAFETY: NUL-terminated, alive until the event is destroyed below.
                    on_stats(unsafe { std::ffi::CStr::from_ptr(json) }.to_bytes());
                }
            }
            _ => {}
        }
        // SAFETY: the event was polled here and is destroyed once, after its reports were read
        // (`Reports` borrows nothing that outlives `on_batch`).
        unsafe { rd::rd_kafka_event_destroy(event) };
        true
    }

    /// Ends a `serve` that is waiting now, or else the next one, at once.
    pub fn wake(&self) {
        // SAFETY: the queue reference is alive until drop; librdkafka queues are thread-safe.
        unsafe { rd::rd_kafka_queue_yield(self.queue) };
    }
}

// SAFETY: librdkafka's queues may be polled, yielded and released from any thread (rdkafka
// marks its own queue handle Send and Sync for the same reason); the lifetime keeps the client
// alive.
unsafe impl Send for ReportQueue<'_> {}
unsafe impl Sync for ReportQueue<'_> {}

impl Drop for ReportQueue<'_> {
    fn drop(&mut self) {
        // SAFETY: the reference came from rd_kafka_queue_get_main and is released once.
        unsafe { rd::rd_kafka_queue_destroy(self.queue) };
    }
}
