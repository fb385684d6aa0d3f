//! Produce: validates each partition's record batches (header, CRC-32C, counts, size), checks
//! idempotent-producer sequences, checks that a transactional batch belongs to an open
//! transaction holding the partition, appends the raw bytes with the base offset patched, and
//! answers only after the write (and the fsync, when the flush policy asks for one).
//! acks=0 gets no response; if it failed, the connection is closed so the client notices.

use std::sync::Arc;

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::{code, decode, respond, str_of, Response};
use crate::log::partition::Appended;
use crate::log::FlushPolicy;
use crate::protocol::batch::validate_all;
use crate::protocol::Request;
use crate::state::Broker;
use crate::topics::Partition;

/// Kafka's default `message.max.bytes` (1 MiB + 12).
pub const MAX_BATCH_BYTES: usize = 1_048_588;

struct Outcome {
    error: i16,
    base_offset: i64,
    log_start: i64,
}

fn append(broker: &Broker, p: &Partition, records: &[u8]) -> Outcome {
    let fail = |error| Outcome {
        error,
        base_offset: -1,
        log_start: -1,
    };
    let batches = match validate_all(records) {
        Ok(b) => b,
        Err(e) => {
            tracing::debug!(topic = %p.topic, partition = p.index, "refused batch: {e}");
            return fail(code::CORRUPT_MESSAGE);
        }
    };
    if batches
        .iter()
        .any(|(h, _)| h.total_len() > MAX_BATCH_BYTES.max(broker.cfg.max_message_bytes))
    {
        return fail(code::MESSAGE_TOO_LARGE);
    }
    let mut log = p.log();
    let mut first = None;
    let mut messages = 0u64;
    for (h, range) in &batches {
        // Checked under the partition's lock, so that no EndTxn marker can slip in between
        // the check and the append (the coordinator never takes a partition lock itself).
        if h.is_transactional() {
            if let Err(c) = broker
                .txns
                .verify(h.producer_id, h.producer_epoch, &p.topic, p.index)
            {
                p.publish(&log);
                return fail(c);
            }
        }
        match log.append(&records[range.clone()], h) {
            Ok(Appended::At(o)) => {
                first.get_or_insert(o);
                messages += h.records_count as u64;
            }
            Ok(Appended::Duplicate(o)) => {
                first.get_or_insert(o);
            }
            Ok(Appended::Refused(c)) => {
                p.publish(&log);
                return fail(c);
            }
            Err(e) => {
                tracing::error!(topic = %p.topic, partition = p.index, "append failed: {e}");
                p.publish(&log);
                return fail(code::KAFKA_STORAGE_ERROR);
            }
        }
    }
    p.publish(&log);
    drop(log);
    broker
        .metrics
        .produced(&p.topic, messages, records.len() as u64);
    Outcome {
        error: code::NONE,
        base_offset: first.unwrap_or(-1),
        log_start: p.log_start_offset(),
    }
}

pub fn handle(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: ProduceRequest = decode(req)?;
    let acks = r.acks;
    let mut resp = ProduceResponse::default();
    let mut any_error = false;
    let mut any_appended = false;
    // An fsync per append must not stall the runtime's other connections.
    let blocking = matches!(broker.cfg.flush, FlushPolicy::Messages(_))
        && tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    for t in r.topic_data {
        let name = str_of(&t.name.0);
        let mut tr = TopicProduceResponse::default();
        tr.name = t.name.clone();
        for pd in t.partition_data {
            let outcome = if !matches!(acks, -1..=1) {
                Outcome {
                    error: code::INVALID_REQUIRED_ACKS,
                    base_offset: -1,
                    log_start: -1,
                }
            } else {
                match (
                    broker.topics.partition(&name, pd.index),
                    pd.records.as_ref(),
                ) {
                    (None, _) => Outcome {
                        error: code::UNKNOWN_TOPIC_OR_PARTITION,
                        base_offset: -1,
                        log_start: -1,
                    },
                    (Some(_), None) => Outcome {
                        error: code::CORRUPT_MESSAGE,
                        base_offset: -1,
                        log_start: -1,
                    },
                    (Some(p), Some(records)) => {
                        if blocking {
                            tokio::task::block_in_place(|| append(broker, &p, records))
                        } else {
                            append(broker, &p, records)
                        }
                    }
                }
            };
            any_error |= outcome.error != code::NONE;
            any_appended |= outcome.error == code::NONE;
            let mut pr = PartitionProduceResponse::default();
            pr.index = pd.index;
            pr.error_code = outcome.error;
            pr.base_offset = outcome.base_offset;
            pr.log_append_time_ms = -1;
            pr.log_start_offset = outcome.log_start;
            tr.partition_responses.push(pr);
        }
        resp.responses.push(tr);
    }
    if any_appended {
        broker.topics.appended.notify_waiters();
    }
    if acks == 0 {
        return Ok(if any_error {
            Response::Close
        } else {
            Response::Nothing
        });
    }
    respond(req, &resp)
}
