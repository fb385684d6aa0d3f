//! Sending through a librdkafka topic handle (`rd_kafka_produce`), the path
//! `rdkafka_performance` uses.
//!
//! rdkafka's `BaseProducer::send` goes through `rd_kafka_producev` with the topic *name*: it
//! allocates a C string and looks the topic up (a locked hash lookup) for every record, which
//! cost kbench about half of librdkafka's own throughput for small records. A handle created
//! once per producer removes both. Delivery reports arrive on the client's queue as for any
//! send (kbench reads them in batches, `delivery_reports`; any rdkafka serves at drop reach
//! `ProducerContext::delivery` with a null opaque, which `()` accepts). This module owns the
//! only `unsafe` on the send path.

use std::ffi::CString;
use std::ptr;

use rdkafka::bindings as rd;
use rdkafka::client::{Client, ClientContext};

/// librdkafka's RD_KAFKA_PARTITION_UA (a C macro, so not in the bindings): let the
/// partitioner choose.
const PARTITION_UA: i32 = -1;

/// Why a send was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// The client's queue is full: wait for deliveries and try again.
    QueueFull,
    /// Anything else, in librdkafka's words.
    Other(String),
}

/// A topic handle bound to one producer client.
pub struct TopicSender<'p, C: ClientContext + 'static> {
    /// The handle must not outlive the client it was opened on.
    _client: std::marker::PhantomData<&'p Client<C>>,
    handle: *mut rd::rd_kafka_topic_t,
}

impl<'p, C: ClientContext + 'static> TopicSender<'p, C> {
    pub fn new(client: &'p Client<C>, topic: &str) -> Result<Self, SendError> {
        let name = CString::new(topic)
            .map_err(|_| SendError::Other(format!("topic '{topic}' contains a NUL byte")))?;
        // SAFETY: the client pointer is valid while `client` is borrowed; librdkafka copies
        // the name; a null conf means the client's defaults.
        let handle =
            unsafe { rd::rd_kafka_topic_new(client.native_ptr(), name.as_ptr(), ptr::null_mut()) };
        if handle.is_null() {
            // SAFETY: reads librdkafka's thread-local last error.
            let err = unsafe { rd::rd_kafka_last_error() };
            return Err(SendError::Other(format!(
                "cannot open topic '{topic}': {err:?}"
            )));
        }
        Ok(TopicSender {
            _client: std::marker::PhantomData,
            handle,
        })
    }

    /// Enqueues one record on a partition chosen by the client's partitioner (by key, or
    /// sticky for null keys); librdkafka copies `value` and `key`.
    #[inline]
    pub fn send(&self, value: &[u8], key: Option<&[u8]>) -> Result<(), SendError> {
        let (key_ptr, key_len) = key.map_or((ptr::null(), 0), |k| (k.as_ptr().cast(), k.len()));
        // SAFETY: the handle is alive until drop; the buffers outlive the call and are copied
        // (RD_KAFKA_MSG_F_COPY); a null opaque is what rdkafka's delivery callback expects for
        // `()`.
        let rc = unsafe {
            rd::rd_kafka_produce(
                self.handle,
                PARTITION_UA,
                rd::RD_KAFKA_MSG_F_COPY,
                value.as_ptr() as *mut _,
                value.len(),
                key_ptr,
                key_len,
                ptr::null_mut(),
            )
        };
        if rc == 0 {
            return Ok(());
        }
        // SAFETY: reads librdkafka's thread-local last error, set by the failed call above.
        match unsafe { rd::rd_kafka_last_error() } {
            rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__QUEUE_FULL => Err(SendError::QueueFull),
            e => Err(SendError::Other(
                rdkafka::error::RDKafkaErrorCode::from(e).to_string(),
            )),
        }
    }
}

impl<C: ClientContext + 'static> Drop for TopicSender<'_, C> {
    fn drop(&mut self) {
        // SAFETY: the handle came from rd_kafka_topic_new and is released once.
        unsafe { rd::rd_kafka_topic_destroy(self.handle) };
    }
}
