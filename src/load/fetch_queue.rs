//! Taking a consumer's fetched records off librdkafka a batch at a time, on a queue of kbench's
//! own.
//!
//! rdkafka's `BaseConsumer::poll` hands out one record per call: a `BorrowedMessage` (an
//! allocation and a reference count), its own clock reading, and librdkafka's (three more per
//! call, for `max.poll.interval.ms` and the poll timeout); a profile of `kbench consume` put the
//! clock alone at a third of the consuming thread. `rd_kafka_consume_batch_queue` takes every
//! record already fetched in one call, but it serves rebalances itself on a queue that has
//! them, bypassing the rebalance handling kbench (through rdkafka) relies on. So each assigned
//! partition's records are routed (`route`, called as partitions are assigned) to a queue of
//! their own, read here in batches; rebalances, errors and commits stay on the group's queue,
//! which rdkafka keeps serving. When something arrives there, `wake` cuts a wait here short.
//! This module owns the `unsafe` of those librdkafka calls.

use std::slice;
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};
use rdkafka::TopicPartitionList;

/// One record (or one consumer error) of a batch.
pub struct Fetched<'b> {
    pub value: &'b [u8],
    pub key_len: usize,
    pub partition: i32,
    /// librdkafka's error when this is an error, not a record (`value` is then its text).
    pub error: Option<rd::rd_kafka_resp_err_t>,
}

/// The records of the last `FetchQueue::take`, owned until the next one (or drop).
pub struct Batch {
    msgs: Vec<*mut rd::rd_kafka_message_t>,
}

impl Batch {
    /// Room for `capacity` records per take.
    pub fn with_capacity(capacity: usize) -> Self {
        Batch {
            msgs: Vec::with_capacity(capacity.max(1)),
        }
    }

    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// The records in the order librdkafka delivered them.
    pub fn iter(&self) -> impl Iterator<Item = Fetched<'_>> + '_ {
        self.msgs.iter().map(|&m| {
            // SAFETY: every pointer came from rd_kafka_consume_batch_queue and stays valid
            // until `clear` destroys it, which needs `&mut self`.
            let m = unsafe { &*m };
            let value = if m.payload.is_null() {
                &[][..]
            } else {
                // SAFETY: librdkafka's payload pointer and length describe the value.
                unsafe { slice::from_raw_parts(m.payload as *const u8, m.len) }
            };
            let ok = m.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;
            Fetched {
                value,
                key_len: m.key_len,
                partition: m.partition,
                error: (!ok).then_some(m.err),
            }
        })
    }

    /// Gives the records back to librdkafka.
    pub fn clear(&mut self) {
        for m in self.msgs.drain(..) {
            // SAFETY: each message was returned by librdkafka once and is destroyed once.
            unsafe { rd::rd_kafka_message_destroy(m) };
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.clear();
    }
}

// SAFETY: librdkafka messages may be read and destroyed from any thread.
unsafe impl Send for Batch {}

/// A queue of kbench's own that assigned partitions' records are routed to.
pub struct FetchQueue {
    queue: *mut rd::rd_kafka_queue_t,
}

impl FetchQueue {
    /// A new queue on the consumer `client`. It must be dropped before the client.
    pub fn new<C: ClientContext + 'static>(client: &Client<C>) -> Self {
        // SAFETY: the client pointer is valid while `client` is borrowed; the queue is
        // destroyed in `drop`, which the owner runs before the client goes.
        let queue = unsafe { rd::rd_kafka_queue_new(client.native_ptr()) };
        FetchQueue { queue }
    }

    /// Where `route` and `wake` reach this queue.
    pub fn handle(&self) -> QueueHandle {
        QueueHandle(self.queue)
    }

    /// Takes what has been fetched, up to the batch's capacity, into `batch` (after giving the
    /// previous records back). When nothing is there yet, waits up to `wait` for the first
    /// record (or a `wake`), then takes what came with it without waiting more: a record is
    /// never held back waiting for others. Returns the number taken.
    pub fn take(&self, batch: &mut Batch, wait: Duration) -> usize {
        batch.clear();
        let cap = batch.msgs.capacity();
        let mut n = self.consume(batch, 0, cap);
        if n == 0 && !wait.is_zero() {
            let wait_ms = wait.as_millis().min(i32::MAX as u128) as i32;
            if self.consume(batch, wait_ms, 1) == 1 {
                n = 1 + self.consume(batch, 0, cap - 1);
            }
        }
        n
    }

    /// Appends up to `max` records to `batch`, waiting up to `wait_ms` (0: none).
    fn consume(&self, batch: &mut Batch, wait_ms: i32, max: usize) -> usize {
        if max == 0 {
            return 0;
        }
        let len = batch.msgs.len();
        debug_assert!(len + max <= batch.msgs.capacity());
        // SAFETY: the spare capacity holds `max` pointers; librdkafka writes `r` of them and
        // returns `r` (or -1, writing none), so exactly those become part of the vector.
        unsafe {
            let r = rd::rd_kafka_consume_batch_queue(
                self.queue,
                wait_ms,
                batch.msgs.as_mut_ptr().add(len),
                max,
            );
            let r = r.max(0) as usize;
            batch.msgs.set_len(len + r);
            r
        }
    }
}

impl Drop for FetchQueue {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_queue_new and destroyed once. Partitions still routed
        // here find it disabled and drop their records (the consumer is closing anyway).
        unsafe { rd::rd_kafka_queue_destroy(self.queue) };
    }
}

// SAFETY: librdkafka queues may be polled, yielded and destroyed from any thread.
unsafe impl Send for FetchQueue {}

/// A non-owning reference to a `FetchQueue`, for the rebalance handler and the wake-up.
#[derive(Clone, Copy)]
pub struct QueueHandle(*mut rd::rd_kafka_queue_t);

// SAFETY: as for `FetchQueue`; the owner keeps the queue alive while handles are in use (the
// rebalance handler and the wake-up are switched off before it is destroyed).
unsafe impl Send for QueueHandle {}
unsafe impl Sync for QueueHandle {}

impl QueueHandle {
    /// Routes the records of these partitions of the consumer `client` to this queue, from the
    /// next fetch on. Called before librdkafka starts fetching them (the assignment), so every
    /// record comes here; a route set once stays across later rebalances.
    pub fn route<C: ClientContext + 'static>(&self, client: &Client<C>, tpl: &TopicPartitionList) {
        for e in tpl.elements() {
            let Ok(topic) = std::ffi::CString::new(e.topic()) else {
                continue;
            };
            // SAFETY: the client is alive for the borrow; the partition queue handle is
            // released right after forwarding (the forward keeps its own reference).
            unsafe {
                let pq = rd::rd_kafka_queue_get_partition(
                    client.native_ptr(),
                    topic.as_ptr(),
                    e.partition(),
                );
                if !pq.is_null() {
                    rd::rd_kafka_queue_forward(pq, self.0);
                    rd::rd_kafka_queue_destroy(pq);
                }
            }
        }
    }

    /// Ends a `take` that is waiting now, or else the next wait, at once.
    pub fn wake(&self) {
        // SAFETY: the owner keeps the queue alive while a handle can be used.
        unsafe { rd::rd_kafka_queue_yield(self.0) };
    }
}

/// How many events wait on the consumer's group queue (rebalances, errors, commits).
pub struct GroupQueue {
    queue: *mut rd::rd_kafka_queue_t,
}

impl GroupQueue {
    pub fn new<C: ClientContext + 'static>(client: &Client<C>) -> Option<Self> {
        // SAFETY: valid client; the reference is released in `drop`, before the client goes.
        let queue = unsafe { rd::rd_kafka_queue_get_consumer(client.native_ptr()) };
        (!queue.is_null()).then_some(GroupQueue { queue })
    }

    /// Events waiting (cheap: one lock, no clock reading).
    pub fn len(&self) -> usize {
        // SAFETY: the reference is alive until drop.
        unsafe { rd::rd_kafka_queue_length(self.queue) }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for GroupQueue {
    fn drop(&mut self) {
        // SAFETY: the reference came from rd_kafka_queue_get_consumer and is released once.
        unsafe { rd::rd_kafka_queue_destroy(self.queue) };
    }
}

// SAFETY: as for `FetchQueue`.
unsafe impl Send for GroupQueue {}
