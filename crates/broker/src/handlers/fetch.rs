//! Fetch: finds record slices in segment files and returns them as response parts for the
//! zero-copy writer; long-polls until `min_bytes` are available or `max_wait_ms` passes,
//! woken by appends. Honours `max_bytes` / `partition_max_bytes` but always returns at least
//! one whole batch (KIP-74), and the whole batch containing the fetch offset. A read_committed
//! fetch (isolation level 1) stops at the last stable offset and carries the aborted
//! transactions overlapping what it returns; the client drops their records.
//!
//! In a cluster: a fetch with `replica_id` ≥ 0 is a follower's. It must come to the leader
//! at its epoch from a replica; its `last_fetched_epoch` is checked for divergence (no
//! records, DivergingEpoch, as Kafka's `Partition.readRecords`); it reads up to the log end
//! and tells the leader where the follower is (`cluster::replica::leader`). Consumers
//! (`replica_id` -1) are served by the leader only, up to the high watermark.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::FetchRequest;
use tokio::time::Instant;

use kafka_protocol::messages::fetch_request::FetchPartition;

use super::{code, decode, str_of, Response};
use crate::cluster::replica::leader as replica_leader;
use crate::log::partition::{PartitionLog, ReadResult};
use crate::protocol::fetch_encode::{self, PartitionData, TopicData};
use crate::protocol::Request;
use crate::state::Broker;
use crate::topics::Partition;

/// Upper bound on a long poll, whatever the client asks (keeps shutdown and tests bounded).
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

struct Gathered {
    topics: Vec<TopicData>,
    bytes: usize,
    errors: bool,
}

fn gather(broker: &Arc<Broker>, r: &FetchRequest) -> Gathered {
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
            let mut pd = PartitionData::new(fp.partition);
            match broker.topics.partition(&name, fp.partition) {
                None => {
                    pd.error = code::UNKNOWN_TOPIC_OR_PARTITION;
                    out.errors = true;
                }
                Some(p) if broker.cluster.is_some() => {
                    let limit = (fp.partition_max_bytes.max(0) as usize).min(budget);
                    let read = limit > 0 || out.bytes == 0;
                    read_clustered(broker, &p, r, fp, read.then_some(limit.max(1)), &mut pd);
                    out.errors |= pd.error != code::NONE || pd.diverging_epoch.is_some();
                    if let Some(slice) = &pd.records {
                        out.bytes += slice.len;
                        budget = budget.saturating_sub(slice.len);
                    }
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

fn hw_sum(g: &Gathered) -> i64 {
    g.topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.high_watermark)
        .sum()
}

/// One partition of a Fetch on a cluster node (`limit`: bytes it may return, `None`: none
/// this round). Fills `pd`.
fn read_clustered(
    broker: &Arc<Broker>,
    p: &Arc<Partition>,
    r: &FetchRequest,
    fp: &FetchPartition,
    limit: Option<usize>,
    pd: &mut PartitionData,
) {
    let follower = r.replica_id.0;
    let checked = if follower >= 0 {
        replica_leader::check_follower(p, follower, fp.current_leader_epoch)
    } else {
        p.role().check_leader(fp.current_leader_epoch).map(|_| ())
    };
    if let Err(e) = checked {
        pd.error = e;
        pd.current_leader = current_leader(broker, p);
        return;
    }
    let log = p.log();
    // Read before the read, as Kafka does: appends after it must not hold a follower back.
    let leader_end = log.log_end_offset();
    pd.high_watermark = p.high_watermark();
    pd.last_stable_offset = p.last_stable_offset();
    pd.log_start_offset = log.log_start_offset();
    if follower >= 0 {
        match replica_leader::divergence(&log, fp.fetch_offset, fp.last_fetched_epoch) {
            Err(e) => {
                pd.error = e;
                return;
            }
            Ok(Some(d)) => {
                pd.diverging_epoch = Some(d);
                return;
            }
            Ok(None) => {}
        }
    }
    let upper = match (follower >= 0, r.isolation_level == 1) {
        (true, _) => leader_end,
        (false, true) => pd.last_stable_offset,
        (false, false) => pd.high_watermark,
    };
    if let Some(limit) = limit {
        read_into(&log, r, fp, limit, upper, pd);
    }
    drop(log);
    if follower >= 0 && pd.error == code::NONE {
        replica_leader::on_follower_fetch(broker, p, follower, fp.fetch_offset, leader_end);
    }
}

/// Reads below `upper` into `pd` (records, aborted transactions, or an error).
fn read_into(
    log: &PartitionLog,
    r: &FetchRequest,
    fp: &FetchPartition,
    limit: usize,
    upper: i64,
    pd: &mut PartitionData,
) {
    match log.read_below(fp.fetch_offset, limit, upper) {
        Ok(ReadResult::Data(slice)) => {
            if r.isolation_level == 1 {
                pd.aborted = log
                    .aborted_transactions(fp.fetch_offset, upper)
                    .iter()
                    .map(|a| (a.producer_id, a.first_offset))
                    .collect();
            }
            pd.records = Some(slice);
        }
        Ok(ReadResult::Empty) => {}
        Ok(ReadResult::OutOfRange) => pd.error = code::OFFSET_OUT_OF_RANGE,
        Err(e) => {
            tracing::error!(partition = fp.partition, "read failed: {e}");
            pd.error = code::KAFKA_STORAGE_ERROR;
        }
    }
}

/// The leader and epoch the metadata names (for CurrentLeader with NOT_LEADER_OR_FOLLOWER
/// and FENCED_LEADER_EPOCH).
fn current_leader(broker: &Broker, p: &Partition) -> Option<(i32, i32)> {
    let md = broker.cluster.as_ref()?.current();
    let rec = md.partition(&p.topic, p.index)?;
    Some((rec.leader, rec.leader_epoch))
}

pub async fn handle(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: FetchRequest = decode(req)?;
    let wait = Duration::from_millis(r.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let deadline = Instant::now() + wait;
    let min_bytes = r.min_bytes.max(1) as usize;
    let follower = broker.cluster.is_some() && r.replica_id.0 >= 0;
    let mut first_hw = None;
    let gathered = loop {
        // Register for wake-ups before looking, so an append in between is not missed.
        let notified = broker.topics.appended.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let g = gather(broker, &r);
        if g.bytes >= min_bytes || g.errors || Instant::now() >= deadline {
            break g;
        }
        // A follower's long poll also ends when a high watermark moved (its previous fetch
        // moved it, typically): the follower's own then follows within a round trip.
        if follower && *first_hw.get_or_insert_with(|| hw_sum(&g)) != hw_sum(&g) {
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
        if bytes > 0 && r.replica_id.0 >= 0 {
            // Kafka labels FetchFollower apart: replication is not consumption.
            broker.metrics.fetch_bytes(true, bytes as u64);
        } else if bytes > 0 {
            broker.metrics.fetched(&t.name, bytes as u64);
        }
    }
    Ok(Response::Parts(fetch_encode::encode(
        req.version,
        req.header.correlation_id,
        &gathered.topics,
    )))
}
