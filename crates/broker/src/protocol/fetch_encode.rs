//! Hand-written Fetch response framing (v4..=12) so record bytes can go from the segment file
//! to the socket with `sendfile`: the response is a list of parts, small encoded buffers
//! interleaved with file slices, whose total size is known before anything is written.
//!
//! Owns: the Fetch response byte layout (FetchResponse.json field order), including v12's
//! tagged DivergingEpoch (tag 0) and CurrentLeader (tag 1). Must not: read files; the slices
//! are sent by `server::zero_copy`.

use bytes::{BufMut, Bytes, BytesMut};

use crate::log::partition::FileSlice;
use crate::protocol::put_response_header;

/// One piece of a response on the wire.
#[derive(Debug, Clone)]
pub enum Part {
    Bytes(Bytes),
    File(FileSlice),
}

/// One partition of a Fetch response.
#[derive(Debug)]
pub struct PartitionData {
    pub index: i32,
    pub error: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// (producer id, first offset) of aborted transactions (read_committed fetches only).
    pub aborted: Vec<(i64, i64)>,
    pub records: Option<FileSlice>,
    /// (epoch, end offset) for a follower whose log diverges (v12+, tagged).
    pub diverging_epoch: Option<(i32, i64)>,
    /// (leader id, leader epoch) with NOT_LEADER_OR_FOLLOWER / FENCED_LEADER_EPOCH (v12+).
    pub current_leader: Option<(i32, i32)>,
}

impl PartitionData {
    /// A partition with no data yet: offsets unknown (-1), no error.
    pub fn new(index: i32) -> Self {
        PartitionData {
            index,
            error: 0,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            aborted: Vec::new(),
            records: None,
            diverging_epoch: None,
            current_leader: None,
        }
    }
}

#[derive(Debug)]
pub struct TopicData {
    pub name: String,
    pub partitions: Vec<PartitionData>,
}

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn put_array_len(buf: &mut BytesMut, n: usize, flexible: bool) {
    if flexible {
        put_uvarint(buf, n as u64 + 1);
    } else {
        buf.put_i32(n as i32);
    }
}

/// The partition's tagged fields: count, then each as tag, size, struct (with its own empty
/// tagged-field section).
fn put_partition_tags(buf: &mut BytesMut, p: &PartitionData) {
    let count = p.diverging_epoch.is_some() as u64 + p.current_leader.is_some() as u64;
    put_uvarint(buf, count);
    if let Some((epoch, end_offset)) = p.diverging_epoch {
        put_uvarint(buf, 0);
        put_uvarint(buf, 4 + 8 + 1);
        buf.put_i32(epoch);
        buf.put_i64(end_offset);
        buf.put_u8(0);
    }
    if let Some((leader_id, leader_epoch)) = p.current_leader {
        put_uvarint(buf, 1);
        put_uvarint(buf, 4 + 4 + 1);
        buf.put_i32(leader_id);
        buf.put_i32(leader_epoch);
        buf.put_u8(0);
    }
}

/// Encodes a whole Fetch response frame (size prefix included) for `version` in 4..=12.
pub fn encode(version: i16, correlation_id: i32, topics: &[TopicData]) -> Vec<Part> {
    let flexible = version >= 12;
    let mut parts: Vec<Part> = Vec::new();
    let mut buf = BytesMut::with_capacity(128);
    buf.put_i32(0); // frame size, patched at the end
    put_response_header(&mut buf, correlation_id, if flexible { 1 } else { 0 });
    buf.put_i32(0); // throttle_time_ms
    if version >= 7 {
        buf.put_i16(0); // error_code
        buf.put_i32(0); // session_id: 0 = no fetch session, clients send full requests
    }
    put_array_len(&mut buf, topics.len(), flexible);
    for t in topics {
        let name = t.name.as_bytes();
        if flexible {
            put_uvarint(&mut buf, name.len() as u64 + 1);
        } else {
            buf.put_i16(name.len() as i16);
        }
        buf.put_slice(name);
        put_array_len(&mut buf, t.partitions.len(), flexible);
        for p in &t.partitions {
            buf.put_i32(p.index);
            buf.put_i16(p.error);
            buf.put_i64(p.high_watermark);
            buf.put_i64(p.last_stable_offset);
            if version >= 5 {
                buf.put_i64(p.log_start_offset);
            }
            put_array_len(&mut buf, p.aborted.len(), flexible);
            for &(producer_id, first_offset) in &p.aborted {
                buf.put_i64(producer_id);
                buf.put_i64(first_offset);
                if flexible {
                    buf.put_u8(0); // aborted transaction tagged fields
                }
            }
            if version >= 11 {
                buf.put_i32(-1); // preferred_read_replica
            }
            let len = p.records.as_ref().map_or(0, |s| s.len);
            if flexible {
                put_uvarint(&mut buf, len as u64 + 1);
            } else {
                buf.put_i32(len as i32);
            }
            if let Some(slice) = &p.records {
                if slice.len > 0 {
                    parts.push(Part::Bytes(buf.split().freeze()));
                    parts.push(Part::File(slice.clone()));
                }
            }
            if flexible {
                put_partition_tags(&mut buf, p);
            }
        }
        if flexible {
            buf.put_u8(0); // topic tagged fields
        }
    }
    if flexible {
        buf.put_u8(0); // top-level tagged fields
    }
    parts.push(Part::Bytes(buf.freeze()));
    let total: usize = parts
        .iter()
        .map(|p| match p {
            Part::Bytes(b) => b.len(),
            Part::File(s) => s.len,
        })
        .sum();
    let size = (total - 4) as i32;
    // The first part always starts with the size prefix; patch it in a fresh copy of that part.
    if let Some(Part::Bytes(first)) = parts.first_mut() {
        let mut m = BytesMut::from(&first[..]);
        m[0..4].copy_from_slice(&size.to_be_bytes());
        *first = m.freeze();
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::FetchResponse;
    use kafka_protocol::protocol::Decodable;
    use std::io::Write;
    use std::sync::Arc;

    /// Our framing must decode with the codec crate's own Fetch response decoder.
    #[test]
    fn hand_written_framing_decodes_with_the_codec_for_every_served_version() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"0123456789abcdef").unwrap();
        let file = Arc::new(f);
        for version in 4..=12i16 {
            let topics = vec![TopicData {
                name: "t".into(),
                partitions: vec![
                    PartitionData {
                        index: 0,
                        error: 0,
                        high_watermark: 10,
                        last_stable_offset: 8,
                        log_start_offset: 0,
                        aborted: vec![(1000, 3), (1001, 5)],
                        records: Some(FileSlice {
                            file: file.clone(),
                            pos: 2,
                            len: 5,
                        }),
                        diverging_epoch: Some((3, 77)),
                        current_leader: None,
                    },
                    PartitionData {
                        index: 1,
                        error: 1,
                        high_watermark: -1,
                        last_stable_offset: -1,
                        log_start_offset: -1,
                        aborted: Vec::new(),
                        records: None,
                        diverging_epoch: None,
                        current_leader: Some((2, 9)),
                    },
                ],
            }];
            let parts = encode(version, 99, &topics);
            let mut wire = Vec::new();
            for p in &parts {
                match p {
                    Part::Bytes(b) => wire.extend_from_slice(b),
                    Part::File(s) => wire.extend_from_slice(
                        &b"0123456789abcdef"[s.pos as usize..s.pos as usize + s.len],
                    ),
                }
            }
            let size = i32::from_be_bytes(wire[0..4].try_into().unwrap()) as usize;
            assert_eq!(size, wire.len() - 4);
            let mut body = Bytes::from(wire[4..].to_vec());
            assert_eq!(&body[0..4], &99i32.to_be_bytes());
            let hdr = if version >= 12 { 5 } else { 4 };
            let _ = body.split_to(hdr);
            let resp = FetchResponse::decode(&mut body, version).unwrap();
            assert_eq!(body.len(), 0, "v{version}: trailing bytes");
            let p0 = &resp.responses[0].partitions[0];
            assert_eq!(p0.records.as_deref(), Some(&b"23456"[..]));
            assert_eq!(p0.high_watermark, 10);
            assert_eq!(p0.last_stable_offset, 8);
            let aborted = p0.aborted_transactions.as_ref().unwrap();
            assert_eq!(
                (aborted[1].producer_id.0, aborted[1].first_offset),
                (1001, 5)
            );
            assert_eq!(resp.responses[0].partitions[1].error_code, 1);
            if version >= 12 {
                let de = &p0.diverging_epoch;
                assert_eq!((de.epoch, de.end_offset), (3, 77));
                let cl = &resp.responses[0].partitions[1].current_leader;
                assert_eq!((cl.leader_id.0, cl.leader_epoch), (2, 9));
            }
        }
    }
}
