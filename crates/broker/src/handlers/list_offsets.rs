//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3, v7) and by timestamp. Latest
//! with isolation level 1 (read_committed, v2+) is the last stable offset: "returns all data
//! from offsets smaller than the current LSO" (ListOffsetsRequest.json); a timestamp lookup
//! with isolation level 1 finds nothing at or past the LSO (Kafka's
//! `Partition.fetchOffsetForTimestamp`, `lastFetchableOffset`).
//!
//! In a cluster only the leader answers, after the `current_leader_epoch` check; latest is
//! the high watermark (read_uncommitted) and the answer carries the leader epoch (v4+). A new
//! leader whose high watermark is still below its epoch's start answers latest (and a
//! timestamp lookup finding nothing) with OFFSET_NOT_AVAILABLE, as Kafka's
//! `fetchOffsetForTimestamp` does: clients retry.

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{code, decode, respond, str_of, Response};
use crate::protocol::Request;
use crate::state::Broker;
use crate::topics::Partition;

const OFFSET_NOT_AVAILABLE: i16 = 78;

/// In a cluster: the leader check, then (leader epoch, whether the high watermark has not yet
/// reached this epoch's start). `Ok(None)` on a single node.
fn leader_view(
    broker: &Broker,
    p: &Partition,
    current_leader_epoch: i32,
) -> Result<Option<(i32, bool)>, i16> {
    if broker.cluster.is_none() {
        return Ok(None);
    }
    let role = p.role();
    let l = role.check_leader(current_leader_epoch)?;
    Ok(Some((
        l.leader_epoch,
        l.epoch_start_offset > p.high_watermark(),
    )))
}

pub fn handle(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: ListOffsetsRequest = decode(req)?;
    let mut resp = ListOffsetsResponse::default();
    for t in r.topics {
        let name = str_of(&t.name.0);
        let mut tr = ListOffsetsTopicResponse::default();
        tr.name = t.name.clone();
        for lp in t.partitions {
            let mut pr = ListOffsetsPartitionResponse::default();
            pr.partition_index = lp.partition_index;
            pr.leader_epoch = -1;
            pr.timestamp = -1;
            pr.offset = -1;
            match broker.topics.partition(&name, lp.partition_index) {
                None => pr.error_code = code::UNKNOWN_TOPIC_OR_PARTITION,
                Some(p) => {
                    let view = match leader_view(broker, &p, lp.current_leader_epoch) {
                        Ok(v) => v,
                        Err(e) => {
                            pr.error_code = e;
                            tr.partitions.push(pr);
                            continue;
                        }
                    };
                    let epoch = view.map(|v| v.0);
                    let not_available = view.is_some_and(|v| v.1);
                    let log = p.log();
                    let last_fetchable = match (epoch, r.isolation_level == 1) {
                        (None, true) => log.last_stable_offset(),
                        (None, false) => log.log_end_offset(),
                        (Some(_), true) => p.last_stable_offset(),
                        (Some(_), false) => p.high_watermark(),
                    };
                    let found = match lp.timestamp {
                        -2 => Ok(Some((log.log_start_offset(), -1))),
                        -1 => Ok(Some((last_fetchable, -1))),
                        -3 => log.max_timestamp_offset(),
                        ts => log.offset_for_timestamp(ts),
                    }
                    .map(|f| f.filter(|&(o, _)| lp.timestamp < 0 || o < last_fetchable));
                    match found {
                        Ok(_) if not_available && lp.timestamp == -1 => {
                            pr.error_code = OFFSET_NOT_AVAILABLE;
                        }
                        Ok(None) if not_available && lp.timestamp >= 0 => {
                            pr.error_code = OFFSET_NOT_AVAILABLE;
                        }
                        Ok(Some((offset, ts))) => {
                            pr.offset = offset;
                            pr.timestamp = ts;
                            if let Some(e) = epoch {
                                pr.leader_epoch = match lp.timestamp {
                                    -1 => e,
                                    _ => log.epoch_for_offset(offset).unwrap_or(-1),
                                };
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::error!(topic = %name, "list offsets failed: {e}");
                            pr.error_code = code::KAFKA_STORAGE_ERROR;
                        }
                    }
                }
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    respond(req, &resp)
}
