//! The records of `__transaction_state`: one record per journal payload (`txn::journal`'s
//! kind 1 metadata snapshot or kind 2 pending offset), key = the transactional id, in an
//! uncompressed record batch. Our own compact value format, not Kafka's TransactionLog
//! schema: only this broker reads it back.
//!
//! Owns: appending them as the partition's leader (acks=all) and reading a partition back
//! into transaction states. Must not: decide who coordinates.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

use crate::cluster::coordinator::TRANSACTION_TOPIC;
use crate::cluster::replica::Role;
use crate::protocol::batch::BatchHeader;
use crate::state::Broker;
use crate::txn::{journal, TxnMeta};

/// Kafka's `transaction.state.log` writes wait this long for the ISR (its request timeout).
pub const APPEND_TIMEOUT: Duration = Duration::from_millis(5000);
/// How long a new leader waits for its data path to take the lead.
const ROLE_WAIT: Duration = Duration::from_secs(10);
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const UNKNOWN_SERVER_ERROR: i16 = -1;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One batch holding `payloads` as records keyed by their transactional id.
pub fn encode_batch(payloads: &[Vec<u8>], now_ms: i64) -> anyhow::Result<Vec<u8>> {
    crate::cluster::coordinator::records::internal_batch(
        payloads.iter().map(|p| {
            let key = journal::payload_tid(p).map(|t| Bytes::from(t.into_bytes()));
            (key, Some(Bytes::copy_from_slice(p)))
        }),
        now_ms,
    )
}

/// The payloads of the whole batches in `bytes`, and the offset after the last one.
pub fn decode_batches(bytes: &[u8]) -> (Vec<Vec<u8>>, Option<i64>) {
    let mut out = Vec::new();
    let mut next = None;
    let mut pos = 0;
    while let Some(h) = BatchHeader::parse(&bytes[pos..]) {
        let end = pos + h.total_len();
        if end > bytes.len() {
            break;
        }
        next = Some(h.last_offset() + 1);
        if !h.is_control() {
            let mut b = Bytes::copy_from_slice(&bytes[pos..end]);
            if let Ok(set) = RecordBatchDecoder::decode(&mut b) {
                out.extend(
                    set.records
                        .into_iter()
                        .filter_map(|r| r.value.map(|v| v.to_vec())),
                );
            }
        }
        pos = end;
    }
    (out, next)
}

/// Appends `payloads` to partition `p` as its leader, acks=all; the error code.
pub async fn append(broker: &Arc<Broker>, p: i32, payloads: &[Vec<u8>]) -> i16 {
    let Some(part) = broker.topics.partition(TRANSACTION_TOPIC, p) else {
        return UNKNOWN_TOPIC_OR_PARTITION;
    };
    let batch = match encode_batch(payloads, now_ms()) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!("cannot encode a transaction state record: {e}");
            return UNKNOWN_SERVER_ERROR;
        }
    };
    crate::cluster::replica::append_as_leader(broker, &part, &batch, -1, APPEND_TIMEOUT)
        .await
        .error
}

/// The transaction states partition `p` holds, from its log start to its log end (to the
/// end, not the HW, for the reason `coordinator::log::read_commits` gives).
pub fn read(broker: &Broker, p: i32) -> std::io::Result<HashMap<String, TxnMeta>> {
    let part = broker
        .topics
        .partition(TRANSACTION_TOPIC, p)
        .ok_or_else(|| std::io::Error::other(format!("{TRANSACTION_TOPIC}-{p} is not open")))?;
    let payloads = crate::cluster::coordinator::log::read_all(&part, decode_batches)?;
    Ok(journal::replay_payloads(payloads.iter().map(Vec::as_slice)))
}

/// Waits (at most `ROLE_WAIT`) until this node's data path leads partition `p` at `epoch`;
/// false if it does not, or the metadata moved on meanwhile.
pub async fn wait_leader_role(broker: &Broker, p: i32, epoch: i32) -> bool {
    let Some(c) = &broker.cluster else {
        return true;
    };
    let deadline = tokio::time::Instant::now() + ROLE_WAIT;
    loop {
        let still = c
            .current()
            .partition(TRANSACTION_TOPIC, p)
            .is_some_and(|r| r.leader == c.node_id && r.leader_epoch == epoch);
        if !still || tokio::time::Instant::now() >= deadline {
            return false;
        }
        if let Some(part) = broker.topics.partition(TRANSACTION_TOPIC, p) {
            if matches!(&*part.role(), Role::Leader(l) if l.leader_epoch == epoch) {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::TxnState;

    #[test]
    fn journal_payloads_round_trip_through_a_batch_into_states() {
        let m = TxnMeta {
            producer_id: 7,
            epoch: 2,
            timeout_ms: 1000,
            state: TxnState::PrepareCommit,
            start_ms: 5,
            partitions: [("t".to_string(), 1)].into_iter().collect(),
            groups: Default::default(),
            pending: Vec::new(),
            completing: false,
        };
        let payloads = vec![journal::meta_payload("a", &m)];
        let batch = encode_batch(&payloads, 1).unwrap();
        let (got, next) = decode_batches(&batch);
        assert_eq!(next, Some(1));
        let map = journal::replay_payloads(got.iter().map(Vec::as_slice));
        assert_eq!(map["a"].state, TxnState::PrepareCommit);
        assert_eq!(map["a"].epoch, 2);
    }
}
