//! Committed offsets as records of `__consumer_offsets`, in Kafka's own schema so that its
//! tools can read them: key `OffsetCommitKey` v1 (`int16 version, string group, string
//! topic, int32 partition`) and value `OffsetCommitValue` v3 (`int16 version, int64 offset,
//! int32 leader epoch, string metadata, int64 commit timestamp`); a null value is a
//! tombstone (group-coordinator/src/main/resources/common/message/OffsetCommit{Key,Value}.json).
//!
//! Owns: that encoding, to one uncompressed record batch per commit and back. Must not: know
//! about partitions, leadership or the log.

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::group::offsets::Committed;
use crate::protocol::batch::BatchHeader;

pub use crate::group::offsets::Key;

const KEY_VERSION: i16 = 1;
const VALUE_VERSION: i16 = 3;

/// The codec crate's record headers (always empty here).
type Headers = kafka_protocol::indexmap::IndexMap<StrBytes, Option<Bytes>>;

fn put_str(b: &mut Vec<u8>, s: &str) {
    let s = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    b.extend_from_slice(&(s.len() as i16).to_be_bytes());
    b.extend_from_slice(s);
}

fn encode_key(k: &Key) -> Bytes {
    let mut b = Vec::with_capacity(12 + k.0.len() + k.1.len());
    b.extend_from_slice(&KEY_VERSION.to_be_bytes());
    put_str(&mut b, &k.0);
    put_str(&mut b, &k.1);
    b.extend_from_slice(&k.2.to_be_bytes());
    Bytes::from(b)
}

fn encode_value(c: &Committed, now_ms: i64) -> Bytes {
    let meta = c.metadata.as_deref().unwrap_or_default();
    let mut b = Vec::with_capacity(26 + meta.len());
    b.extend_from_slice(&VALUE_VERSION.to_be_bytes());
    b.extend_from_slice(&c.offset.to_be_bytes());
    b.extend_from_slice(&c.leader_epoch.to_be_bytes());
    put_str(&mut b, meta);
    b.extend_from_slice(&now_ms.to_be_bytes());
    Bytes::from(b)
}

/// One record batch holding `entries` (a negative offset becomes a tombstone).
pub fn encode_batch(entries: &[(Key, Committed)], now_ms: i64) -> anyhow::Result<Vec<u8>> {
    internal_batch(
        entries.iter().map(|(k, c)| {
            let value = (c.offset >= 0).then(|| encode_value(c, now_ms));
            (Some(encode_key(k)), value)
        }),
        now_ms,
    )
}

/// One uncompressed, non-idempotent record batch of (key, value) records, as the internal
/// topics (`__consumer_offsets`, `__transaction_state`) hold them.
pub fn internal_batch(
    records: impl Iterator<Item = (Option<Bytes>, Option<Bytes>)>,
    now_ms: i64,
) -> anyhow::Result<Vec<u8>> {
    let records: Vec<Record> = records
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // Not idempotent: the batch's base sequence is -1. The codec starts a new batch
            // whenever `offset - sequence` changes, so each record's "sequence" keeps that
            // difference constant (only the first one's reaches the batch header).
            sequence: i as i32 - 1,
            timestamp: now_ms,
            key,
            value,
            headers: Headers::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options)?;
    Ok(buf.to_vec())
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (a, b) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = b;
        Some(a)
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<String> {
        let n = usize::try_from(self.i16()?).ok()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// The commit a record holds: `None` for other record kinds (group metadata, key v2) and
/// value versions this broker does not write.
pub fn decode_record(key: &[u8], value: Option<&[u8]>) -> Option<(Key, Committed)> {
    let mut k = Reader(key);
    if !matches!(k.i16()?, 0 | 1) {
        return None;
    }
    let key = (k.string()?, k.string()?, k.i32()?);
    let Some(value) = value else {
        let tomb = Committed {
            offset: -1,
            leader_epoch: -1,
            metadata: None,
        };
        return Some((key, tomb));
    };
    let mut v = Reader(value);
    if v.i16()? != VALUE_VERSION {
        return None;
    }
    let offset = v.i64()?;
    let leader_epoch = v.i32()?;
    let metadata = Some(v.string()?);
    Some((
        key,
        Committed {
            offset,
            leader_epoch,
            metadata,
        },
    ))
}

/// Every commit in `bytes` (whole batches read from the log; a trailing partial batch is
/// left), in log order, and the offset after the last whole batch (`None`: no whole batch).
pub fn decode_batches(bytes: &[u8]) -> (Vec<(Key, Committed)>, Option<i64>) {
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
                for r in set.records {
                    if let Some(e) = r
                        .key
                        .as_deref()
                        .and_then(|k| decode_record(k, r.value.as_deref()))
                    {
                        out.push(e);
                    }
                }
            }
        }
        pos = end;
    }
    (out, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(offset: i64, meta: &str) -> Committed {
        Committed {
            offset,
            leader_epoch: 4,
            metadata: Some(meta.to_string()),
        }
    }

    #[test]
    fn commits_and_tombstones_round_trip_through_a_batch() {
        let k = |p| ("g".to_string(), "t".to_string(), p);
        let entries = vec![(k(0), c(10, "m")), (k(1), c(-1, ""))];
        let batch = encode_batch(&entries, 1_700_000_000_000).unwrap();
        let h = BatchHeader::parse(&batch).unwrap();
        assert_eq!((h.records_count, h.base_sequence), (2, -1), "one batch");
        assert_eq!(h.total_len(), batch.len());
        let (got, next) = decode_batches(&batch);
        assert_eq!(next, Some(2));
        assert_eq!(got[0], (k(0), c(10, "m")));
        assert_eq!(got[1].0, k(1));
        assert!(got[1].1.offset < 0, "a null value is a tombstone");
    }

    #[test]
    fn the_key_is_kafkas_offset_commit_key_v1() {
        let key = encode_key(&("ab".into(), "t".into(), 7));
        assert_eq!(&key[..], &[0, 1, 0, 2, b'a', b'b', 0, 1, b't', 0, 0, 0, 7]);
    }
}
