//! Fetch: finds record slices in segment files and returns them as response parts for the
//! zero-copy writer; long-polls until `min_bytes` are available or `max_wait_ms` passes,
//! woken by appends. Honours `max_bytes` / `partition_max_bytes` but always returns at least
//! one whole batch (KIP-74), and the whole batch containing the fetch offset. A read_committed
//! fetch (isolation level 1) stops at the last stable offset and carries the aborted
//! transactions overlapping what it returns; the client drops their records.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::FetchRequest;
use tokio::time::Instant;

use super::{code, decode, str_of, Response};
use crate::log::partition::ReadResult;
use crate::protocol::fetch_encode::{self, PartitionData, TopicData};
use crate::protocol::Request;
use crate::state::Broker;

/// Upper bound on a long poll, whatever the client asks (keeps shutdown and tests bounded).
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

struct Gathered {
    topics: Vec<TopicData>,
    bytes: usize,
    errors: bool,
}

fn gather(broker: &Broker, r: &FetchRequest) -> Gathered {
    let read_committed = r.isolation_level == 1;
    let mut budget = if r.max_bytes > 0 {
        r.max_bytes as usize
    } else {
        usize::MAX
    };
    let mut out = Gathered {
        topics: Vec::with_capacity(r.topics.len()),
        bytes: 0,
        errors: false,
    };
    for t in &r.topics {
        let name = str_of(&t.topic.0);
        let mut td = TopicData {
            name: name.clone(),
            partitions: Vec::with_capacity(t.partitions.len()),
        };
        for fp in &t.partitions {
            let mut pd = PartitionData {
                index: fp.partition,
                error: code::NONE,
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                aborted: Vec::new(),
                records: None,
            };
            match broker.topics.partition(&name, fp.partition) {
                None => {
                    pd.error = code::UNKNOWN_TOPIC_OR_PARTITION;
                    out.errors = true;
                }
                Some(p) => {
                    let log = p.log();
                    pd.high_watermark = log.log_end_offset();
                    pd.last_stable_offset = log.last_stable_offset();
                    pd.log_start_offset = log.log_start_offset();
                    let upper = if read_committed {
                        pd.last_stable_offset
                    } else {
                        pd.high_watermark
                    };
                    // Once something is in the response, the budget may cut; before, at least one batch.
                    let limit = (fp.partition_max_bytes.max(0) as usize).min(budget);
                    if limit > 0 || out.bytes == 0 {
                        match log.read_below(fp.fetch_offset, limit.max(1), upper) {
                            Ok(ReadResult::Data(slice)) => {
                                if read_committed {
                                    // Everything below the stable offset that the data may
                                    // hold: a superset is harmless, the client matches by
                                    // producer id and offset.
                                    pd.aborted = log
                                        .aborted_transactions(fp.fetch_offset, upper)
                                        .iter()
                                        .map(|a| (a.producer_id, a.first_offset))
                                        .collect();
                                }
                                out.bytes += slice.len;
                                budget = budget.saturating_sub(slice.len);
                                pd.records = Some(slice);
                            }
                            Ok(ReadResult::Empty) => {}
                            Ok(ReadResult::OutOfRange) => {
                                pd.error = code::OFFSET_OUT_OF_RANGE;
                                out.errors = true;
                            }
                            Err(e) => {
                                tracing::error!(topic = %name, partition = fp.partition, "read failed: {e}");
                                pd.error = code::KAFKA_STORAGE_ERROR;
                                out.errors = true;
                            }
                        }
                    }
                }
            }
            td.partitions.push(pd);
        }
        out.topics.push(td);
    }
    out
}

pub async fn handle(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: FetchRequest = decode(req)?;
    let wait = Duration::from_millis(r.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let deadline = Instant::now() + wait;
    let min_bytes = r.min_bytes.max(1) as usize;
    let gathered = loop {
        // Register for wake-ups before looking, so an append in between is not missed.
        let notified = broker.topics.appended.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let g = gather(broker, &r);
        if g.bytes >= min_bytes || g.errors || Instant::now() >= deadline {
            break g;
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    };
    for t in &gathered.topics {
        let bytes: usize = t
            .partitions
            .iter()
            .filter_map(|p| p.records.as_ref())
            .map(|s| s.len)
            .sum();
        if bytes > 0 {
            broker.metrics.fetched(&t.name, bytes as u64);
        }
    }
    Ok(Response::Parts(fetch_encode::encode(
        req.version,
        req.header.correlation_id,
        &gathered.topics,
    )))
}
