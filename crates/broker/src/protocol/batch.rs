//! RecordBatch (magic v2) header view: validation, CRC-32C check, and the fields a broker
//! patches (base offset, partition leader epoch).
//!
//! Owns: the 61-byte batch header layout (DefaultRecordBatch.java) and what "valid" means for a
//! batch a client sends, or a leader sends a follower. Must not: decompress or re-encode records
//! — batches stay opaque; the CRC covers attributes..end, so patching the base offset (bytes
//! 0..8) or the partition leader epoch (12..16) leaves it valid.

/// Size of the fixed v2 batch header.
pub const HEADER_LEN: usize = 61;
/// Bytes before the `length` field ends: base offset (8) + length (4).
pub const LOG_OVERHEAD: usize = 12;

/// Where the partition leader epoch sits (not covered by the CRC, like the base offset).
pub const PARTITION_LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
/// Attribute bits (DefaultRecordBatch.java): 4 = transactional, 5 = control.
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// The fields of a batch header the broker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after the length field; the whole batch is `LOG_OVERHEAD + length`.
    pub length: i32,
    /// Bytes 12..16, outside the CRC: the leader epoch the batch was appended in (-1 from
    /// clients; stamped by a cluster leader, kept byte for byte by followers).
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

/// Why a batch was refused (all map to CORRUPT_MESSAGE / INVALID_RECORD on the wire).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch shorter than its header")]
    Truncated,
    #[error("unsupported magic {0} (only v2 record batches are accepted)")]
    Magic(i8),
    #[error("crc mismatch")]
    Crc,
    #[error("records count {0} does not match last offset delta {1}")]
    Count(i32, i32),
    #[error("control batches may not be produced by clients")]
    Control,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Reads a header from the first `HEADER_LEN` bytes; `None` if too short.
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < HEADER_LEN {
            return None;
        }
        Some(BatchHeader {
            base_offset: be_i64(b, 0),
            length: be_i32(b, 8),
            partition_leader_epoch: be_i32(b, PARTITION_LEADER_EPOCH_AT),
            magic: b[MAGIC_AT] as i8,
            crc: be_i32(b, CRC_AT) as u32,
            attributes: be_i16(b, ATTRIBUTES_AT),
            last_offset_delta: be_i32(b, 23),
            base_timestamp: be_i64(b, 27),
            max_timestamp: be_i64(b, 35),
            producer_id: be_i64(b, 43),
            producer_epoch: be_i16(b, 51),
            base_sequence: be_i32(b, 53),
            records_count: be_i32(b, 57),
        })
    }

    /// Total bytes of the batch on disk / on the wire.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.length.max(0) as usize
    }

    /// Offset of the last record, given the (patched) base offset.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Last sequence number, wrapping like Kafka's `DefaultRecordBatch.incrementSequence`.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        (last % (i64::from(i32::MAX) + 1)) as i32
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// Bit 4 of the attributes, set by the client on every batch of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }
}

/// Splits `records` into batches and validates each one (header sanity, CRC-32C, counts).
/// Returns the headers with each batch's byte range, or the first error.
pub fn validate_all(
    records: &[u8],
) -> Result<Vec<(BatchHeader, std::ops::Range<usize>)>, BatchError> {
    let mut out = Vec::with_capacity(1);
    let mut pos = 0;
    while pos < records.len() {
        let rest = &records[pos..];
        let h = BatchHeader::parse(rest).ok_or(BatchError::Truncated)?;
        if h.magic != 2 {
            return Err(BatchError::Magic(h.magic));
        }
        let total = h.total_len();
        if h.length < (HEADER_LEN - LOG_OVERHEAD) as i32 || total > rest.len() {
            return Err(BatchError::Truncated);
        }
        if crc32c::crc32c(&rest[ATTRIBUTES_AT..total]) != h.crc {
            return Err(BatchError::Crc);
        }
        if h.records_count <= 0 || h.records_count != h.last_offset_delta.wrapping_add(1) {
            return Err(BatchError::Count(h.records_count, h.last_offset_delta));
        }
        if h.is_control() {
            return Err(BatchError::Control);
        }
        out.push((h, pos..pos + total));
        pos += total;
    }
    if out.is_empty() {
        return Err(BatchError::Truncated);
    }
    Ok(out)
}

/// Splits what a leader sent a follower into whole, valid batches (control batches included:
/// transaction markers replicate too). A trailing partial batch is dropped, as Kafka's
/// follower does: a Fetch slice may end inside a batch (KIP-74).
pub fn split_replicated(
    records: &[u8],
) -> Result<Vec<(BatchHeader, std::ops::Range<usize>)>, BatchError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(h) = BatchHeader::parse(&records[pos..]) {
        let total = h.total_len();
        if total > records.len() - pos {
            break;
        }
        if h.magic != 2 {
            return Err(BatchError::Magic(h.magic));
        }
        if h.length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::Truncated);
        }
        if crc32c::crc32c(&records[pos + ATTRIBUTES_AT..pos + total]) != h.crc {
            return Err(BatchError::Crc);
        }
        out.push((h, pos..pos + total));
        pos += total;
    }
    Ok(out)
}

/// Checks the CRC of a stored batch (recovery); `b` must hold the whole batch.
pub fn crc_ok(b: &[u8]) -> bool {
    match BatchHeader::parse(b) {
        Some(h) if h.total_len() <= b.len() && h.total_len() >= HEADER_LEN => {
            crc32c::crc32c(&b[ATTRIBUTES_AT..h.total_len()]) == h.crc
        }
        _ => false,
    }
}

/// The two control record types of an end-transaction marker (Kafka's `ControlRecordType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Abort,
    Commit,
}

impl Marker {
    fn code(self) -> i16 {
        match self {
            Marker::Abort => 0,
            Marker::Commit => 1,
        }
    }
}

fn put_varint(buf: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            buf.push(z as u8);
            return;
        }
        buf.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

/// Reads a zigzag varint at `*pos`, advancing it; `None` past the end or after 10 bytes.
fn get_varint(b: &[u8], pos: &mut usize) -> Option<i64> {
    let mut z = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        z |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some((z >> 1) as i64 ^ -((z & 1) as i64));
        }
    }
    None
}

/// An end-transaction control batch as Kafka writes it (docs/implementation.html §5.3.1.1,
/// `MemoryRecords.writeEndTransactionalMarker`): attributes transactional + control, the
/// transaction's producer id and epoch, base sequence -1, one uncompressed record whose key is
/// `version 0 : int16, type : int16` and whose value is `version 0 : int16, coordinator epoch : int32`.
pub fn build_control_batch(
    producer_id: i64,
    producer_epoch: i16,
    marker: Marker,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&marker.code().to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let mut rec = vec![0u8]; // record attributes
    put_varint(&mut rec, 0); // timestamp delta
    put_varint(&mut rec, 0); // offset delta
    put_varint(&mut rec, key.len() as i64);
    rec.extend_from_slice(&key);
    put_varint(&mut rec, value.len() as i64);
    rec.extend_from_slice(&value);
    put_varint(&mut rec, 0); // headers
    let mut b = Vec::with_capacity(HEADER_LEN + rec.len() + 1);
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset, assigned at append
    b.extend_from_slice(&0i32.to_be_bytes()); // length, patched
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, patched
    b.extend_from_slice(&(ATTR_TRANSACTIONAL | ATTR_CONTROL).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    b.extend_from_slice(&timestamp_ms.to_be_bytes());
    b.extend_from_slice(&timestamp_ms.to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&producer_epoch.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&1i32.to_be_bytes()); // records count
    put_varint(&mut b, rec.len() as i64);
    b.extend_from_slice(&rec);
    let len = (b.len() - LOG_OVERHEAD) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = crc32c::crc32c(&b[ATTRIBUTES_AT..]);
    b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// The marker a stored control batch carries: `None` for a control record of another type or
/// key version (Kafka skips versions it does not know, and so does librdkafka).
pub fn control_marker(batch: &[u8]) -> Option<Marker> {
    let mut pos = HEADER_LEN;
    let _record_len = get_varint(batch, &mut pos)?;
    pos += 1; // record attributes
    get_varint(batch, &mut pos)?; // timestamp delta
    get_varint(batch, &mut pos)?; // offset delta
    if get_varint(batch, &mut pos)? < 4 {
        return None;
    }
    let key = batch.get(pos..pos + 4)?;
    match (be_i16(key, 0), be_i16(key, 2)) {
        (0, 0) => Some(Marker::Abort),
        (0, 1) => Some(Marker::Commit),
        _ => None,
    }
}

/// Builds a minimal valid uncompressed batch (tests and the fuzz corpus use it).
pub fn build_test_batch(values: &[&[u8]], producer: Option<(i64, i16, i32)>) -> Vec<u8> {
    fn varint(buf: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            if z < 0x80 {
                buf.push(z as u8);
                return;
            }
            buf.push((z as u8 & 0x7f) | 0x80);
            z >>= 7;
        }
    }
    let mut recs = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let mut r = Vec::new();
        r.push(0); // attributes
        varint(&mut r, 0); // timestamp delta
        varint(&mut r, i as i64); // offset delta
        varint(&mut r, -1); // null key
        varint(&mut r, v.len() as i64);
        r.extend_from_slice(v);
        varint(&mut r, 0); // headers
        varint(&mut recs, r.len() as i64);
        recs.extend_from_slice(&r);
    }
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    let now = 1_700_000_000_000i64;
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // length, patched
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, patched
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(values.len() as i32 - 1).to_be_bytes());
    b.extend_from_slice(&now.to_be_bytes());
    b.extend_from_slice(&now.to_be_bytes());
    b.extend_from_slice(&pid.to_be_bytes());
    b.extend_from_slice(&epoch.to_be_bytes());
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&(values.len() as i32).to_be_bytes());
    b.extend_from_slice(&recs);
    let len = (b.len() - LOG_OVERHEAD) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = crc32c::crc32c(&b[ATTRIBUTES_AT..]);
    b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_batch_validates_and_patching_the_offset_keeps_the_crc() {
        let mut b = build_test_batch(&[b"a", b"bc"], None);
        let v = validate_all(&b).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].0.records_count, 2);
        b[0..8].copy_from_slice(&42i64.to_be_bytes());
        assert!(crc_ok(&b));
        assert_eq!(BatchHeader::parse(&b).unwrap().last_offset(), 43);
    }

    #[test]
    fn a_flipped_byte_is_a_crc_error() {
        let mut b = build_test_batch(&[b"hello"], None);
        let n = b.len();
        b[n - 3] ^= 1;
        assert_eq!(validate_all(&b).unwrap_err(), BatchError::Crc);
    }

    #[test]
    fn truncated_and_empty_inputs_are_errors() {
        let b = build_test_batch(&[b"hello"], None);
        assert_eq!(
            validate_all(&b[..b.len() - 1]).unwrap_err(),
            BatchError::Truncated
        );
        assert_eq!(validate_all(&[]).unwrap_err(), BatchError::Truncated);
        assert_eq!(validate_all(&b[..10]).unwrap_err(), BatchError::Truncated);
    }

    #[test]
    fn a_control_batch_is_a_valid_transactional_batch_whose_marker_reads_back() {
        for m in [Marker::Commit, Marker::Abort] {
            let b = build_control_batch(42, 3, m, 0, 1_700_000_000_000);
            assert!(crc_ok(&b));
            let h = BatchHeader::parse(&b).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (42, 3, -1)
            );
            assert_eq!((h.records_count, h.total_len()), (1, b.len()));
            assert_eq!(control_marker(&b), Some(m));
            // The codec crate decodes it as Kafka's control record.
            let mut bytes = bytes::Bytes::from(b);
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).unwrap();
            assert!(set.records[0].control && set.records[0].transactional);
            let key = set.records[0].key.clone().unwrap();
            assert_eq!(
                &key[..],
                &[0, 0, 0, if m == Marker::Commit { 1 } else { 0 }]
            );
        }
    }

    #[test]
    fn sequence_wraps_like_kafka() {
        let mut h =
            BatchHeader::parse(&build_test_batch(&[b"x", b"y"], Some((1, 0, i32::MAX)))).unwrap();
        assert_eq!(h.last_sequence(), 0);
        h.base_sequence = 5;
        assert_eq!(h.last_sequence(), 6);
    }
}
