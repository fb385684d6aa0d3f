//! OffsetForLeaderEpoch (v2–4, KIP-320): for each partition, the largest epoch ≤ the one asked
//! for and where it ended in this log (Kafka's `Partition.lastOffsetForLeaderEpoch`); a
//! consumer validates its position with it after a leader change (librdkafka sends v2, the
//! Java client needs v3+). In a cluster only the leader answers, after the
//! `current_leader_epoch` check (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH). `replica_id`
//! (v3+) does not change the answer: Kafka serves followers and consumers alike from the
//! leader.

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::{code, decode, respond, str_of, Response};
use crate::protocol::Request;
use crate::state::Broker;

pub fn handle(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: OffsetForLeaderEpochRequest = decode(req)?;
    let mut resp = OffsetForLeaderEpochResponse::default();
    for t in r.topics {
        let name = str_of(&t.topic.0);
        let mut tr = OffsetForLeaderTopicResult::default();
        tr.topic = t.topic.clone();
        for op in t.partitions {
            let mut pr = EpochEndOffset::default();
            pr.partition = op.partition;
            pr.leader_epoch = -1;
            pr.end_offset = -1;
            match broker.topics.partition(&name, op.partition) {
                None => pr.error_code = code::UNKNOWN_TOPIC_OR_PARTITION,
                Some(p) => {
                    let checked = match broker.cluster {
                        Some(_) => p.role().check_leader(op.current_leader_epoch).map(|_| ()),
                        None => Ok(()),
                    };
                    match checked {
                        Err(e) => pr.error_code = e,
                        Ok(()) => {
                            if let Some((epoch, end)) =
                                p.log().end_offset_for_epoch(op.leader_epoch)
                            {
                                pr.leader_epoch = epoch;
                                pr.end_offset = end;
                            }
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
