//! Wire protocol plumbing: the curated table of advertised API versions, request-header
//! parsing, and response framing (size prefix + response header).
//!
//! Owns: which API versions we claim to speak (checked *before* any body is decoded), and the
//! exact bytes of response headers (including the ApiVersions v0-header quirk).
//! Must not: touch storage or groups; decide what a request means (that is `handlers`).

pub mod batch;
pub mod fetch_encode;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// One row of the advertised table: what ApiVersions tells clients, and the lowest version we
/// actually decode (Produce advertises 0 but serves only 3+, see `PRODUCE_MIN_SERVED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advertised {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
}

/// Produce is advertised from v0 because librdkafka <= 2.10 (Debian's kcat) silently turns off
/// compression when the broker's Produce minimum is above 0 (librdkafka #4956); Kafka 4.0 does the
/// same (KAFKA-18659). Versions 0-2 carry the old message format and are refused on receipt.
pub const PRODUCE_MIN_SERVED: i16 = 3;

/// The advertised versions. Hand-curated on purpose: each range stops before semantics we have
/// not implemented (topic IDs in Produce 13 / Fetch 13+, transactions V2 in Produce 12,
/// EndTxn 5 and TxnOffsetCommit 5, KIP-848 in OffsetCommit/OffsetFetch 9, batched groups in
/// OffsetFetch 8, broker-to-broker AddPartitionsToTxn 4+). The transaction APIs keep their v0
/// minimum: librdkafka sends AddPartitionsToTxn, AddOffsetsToTxn v0 and EndTxn v0-1 only. No
/// `transaction.version` finalized feature is advertised, so Java 4.x clients use the classic
/// (TV1) flow with AddPartitionsToTxn.
pub const ADVERTISED: &[Advertised] = &[
    Advertised {
        key: ApiKey::Produce,
        min: 0,
        max: 11,
    },
    Advertised {
        key: ApiKey::Fetch,
        min: 4,
        max: 12,
    },
    Advertised {
        key: ApiKey::ListOffsets,
        min: 1,
        max: 7,
    },
    Advertised {
        key: ApiKey::OffsetForLeaderEpoch,
        min: 2,
        max: 4,
    },
    Advertised {
        key: ApiKey::Metadata,
        min: 0,
        max: 12,
    },
    Advertised {
        key: ApiKey::OffsetCommit,
        min: 2,
        max: 8,
    },
    Advertised {
        key: ApiKey::OffsetFetch,
        min: 1,
        max: 7,
    },
    Advertised {
        key: ApiKey::FindCoordinator,
        min: 0,
        max: 4,
    },
    Advertised {
        key: ApiKey::JoinGroup,
        min: 0,
        max: 9,
    },
    Advertised {
        key: ApiKey::Heartbeat,
        min: 0,
        max: 4,
    },
    Advertised {
        key: ApiKey::LeaveGroup,
        min: 0,
        max: 5,
    },
    Advertised {
        key: ApiKey::SyncGroup,
        min: 0,
        max: 5,
    },
    Advertised {
        key: ApiKey::DescribeGroups,
        min: 0,
        max: 5,
    },
    Advertised {
        key: ApiKey::ListGroups,
        min: 0,
        max: 4,
    },
    Advertised {
        key: ApiKey::ApiVersions,
        min: 0,
        max: 4,
    },
    Advertised {
        key: ApiKey::CreateTopics,
        min: 2,
        max: 7,
    },
    Advertised {
        key: ApiKey::DeleteTopics,
        min: 1,
        max: 5,
    },
    Advertised {
        key: ApiKey::InitProducerId,
        min: 0,
        max: 5,
    },
    Advertised {
        key: ApiKey::AddPartitionsToTxn,
        min: 0,
        max: 3,
    },
    Advertised {
        key: ApiKey::AddOffsetsToTxn,
        min: 0,
        max: 3,
    },
    Advertised {
        key: ApiKey::TxnOffsetCommit,
        min: 0,
        max: 4,
    },
    Advertised {
        key: ApiKey::EndTxn,
        min: 0,
        max: 4,
    },
    Advertised {
        key: ApiKey::DescribeConfigs,
        min: 1,
        max: 4,
    },
];

/// Served but not advertised: requests between cluster nodes (WriteTxnMarkers from a
/// transaction coordinator to a partition leader, v0-1 as Kafka 3.x). Kept out of
/// ApiVersions so that a single node's answer is what it always was.
pub const INTER_BROKER: &[Advertised] = &[Advertised {
    key: ApiKey::WriteTxnMarkers,
    min: 0,
    max: 1,
}];

/// What the server should do with a request, decided from the first four bytes of its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Advertised and served: decode and handle.
    Serve(ApiKey, i16),
    /// ApiVersions at a version we do not know: answer UNSUPPORTED_VERSION in v0 format.
    ApiVersionsUnsupported,
    /// Unknown key or unserved version: close the connection, as Kafka does.
    Reject,
}

/// Decides the fate of a request from its key and version, before decoding anything.
pub fn gate(api_key: i16, version: i16) -> Gate {
    let Ok(key) = ApiKey::try_from(api_key) else {
        return Gate::Reject;
    };
    let Some(row) = ADVERTISED.iter().chain(INTER_BROKER).find(|a| a.key == key) else {
        return Gate::Reject;
    };
    let min_served = if key == ApiKey::Produce {
        PRODUCE_MIN_SERVED
    } else {
        row.min
    };
    if (min_served..=row.max).contains(&version) {
        Gate::Serve(key, version)
    } else if key == ApiKey::ApiVersions {
        Gate::ApiVersionsUnsupported
    } else {
        Gate::Reject
    }
}

/// A parsed request: header plus the still-encoded body (a zero-copy slice of the frame).
#[derive(Debug)]
pub struct Request {
    pub key: ApiKey,
    pub version: i16,
    pub header: RequestHeader,
    pub body: Bytes,
}

/// Errors the server acts on by closing the connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("request too short for a header")]
    Short,
    #[error("unsupported api key {0} version {1}")]
    Unsupported(i16, i16),
    #[error("malformed request header: {0}")]
    Header(String),
}

/// Outcome of parsing one frame.
#[derive(Debug)]
pub enum Parsed {
    Request(Request),
    /// ApiVersions at an unknown version; carries the correlation id to answer with.
    ApiVersionsUnsupported(i32),
}

/// Parses the header of one frame (size prefix already removed).
pub fn parse_frame(mut frame: Bytes) -> Result<Parsed, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::Short);
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    match gate(api_key, version) {
        Gate::Reject => Err(FrameError::Unsupported(api_key, version)),
        // Kafka does not parse the rest of an unsupported ApiVersions request at all.
        Gate::ApiVersionsUnsupported => Ok(Parsed::ApiVersionsUnsupported(correlation_id)),
        Gate::Serve(key, version) => {
            let header_version = key.request_header_version(version);
            let header = RequestHeader::decode(&mut frame, header_version)
                .map_err(|e| FrameError::Header(e.to_string()))?;
            Ok(Parsed::Request(Request {
                key,
                version,
                header,
                body: frame,
            }))
        }
    }
}

/// Response header version for (key, version). ApiVersions is always v0: clients parse its
/// header before they know which version the broker picked (KIP-511).
pub fn response_header_version(key: ApiKey, version: i16) -> i16 {
    if key == ApiKey::ApiVersions {
        0
    } else {
        key.response_header_version(version)
    }
}

/// Appends the response header for `correlation_id` to `buf`.
pub fn put_response_header(buf: &mut BytesMut, correlation_id: i32, header_version: i16) {
    buf.put_i32(correlation_id);
    if header_version >= 1 {
        buf.put_u8(0); // empty tagged-field section
    }
}

/// Encodes a whole response frame: size prefix, header and body.
pub fn encode_response<M: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &M,
) -> anyhow::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0); // size, patched below
    put_response_header(
        &mut buf,
        correlation_id,
        response_header_version(key, version),
    );
    body.encode(&mut buf, version)?;
    let size = i32::try_from(buf.len() - 4)?;
    buf[0..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Message;

    fn decodable_range(key: ApiKey) -> (i16, i16) {
        let r = key.valid_versions();
        (r.min, r.max)
    }

    #[test]
    fn every_served_version_is_decodable_by_the_codec_crate() {
        for row in ADVERTISED {
            let (min, max) = decodable_range(row.key);
            let served_min = if row.key == ApiKey::Produce {
                PRODUCE_MIN_SERVED
            } else {
                row.min
            };
            assert!(
                served_min >= min && row.max <= max,
                "{:?} outside codec range",
                row.key
            );
        }
        assert_eq!(ProduceRequest::VERSIONS.min, PRODUCE_MIN_SERVED);
    }

    #[test]
    fn produce_is_advertised_from_zero_but_served_from_three() {
        assert_eq!(gate(0, 0), Gate::Reject);
        assert_eq!(gate(0, 2), Gate::Reject);
        assert_eq!(gate(0, 3), Gate::Serve(ApiKey::Produce, 3));
        assert_eq!(gate(0, 12), Gate::Reject);
    }

    #[test]
    fn unknown_keys_and_versions_are_rejected_but_api_versions_answers() {
        assert_eq!(gate(9999, 0), Gate::Reject);
        assert_eq!(gate(-1, 0), Gate::Reject);
        assert_eq!(gate(1, 13), Gate::Reject);
        assert_eq!(gate(18, 5), Gate::ApiVersionsUnsupported);
        assert_eq!(gate(18, 4), Gate::Serve(ApiKey::ApiVersions, 4));
        // Not advertised at all, even though the codec knows it.
        assert_eq!(gate(ApiKey::SaslHandshake as i16, 1), Gate::Reject);
    }

    #[test]
    fn api_versions_response_header_never_has_tagged_fields() {
        let body = ApiVersionsResponse::default();
        let frame = encode_response(ApiKey::ApiVersions, 3, 7, &body).unwrap();
        let expected_len = 4 + body.compute_size(3).unwrap();
        assert_eq!(frame.len() - 4, expected_len);
        assert_eq!(&frame[4..8], &7i32.to_be_bytes());
    }

    #[test]
    fn short_or_garbage_frames_are_errors_not_panics() {
        assert!(parse_frame(Bytes::from_static(b"\x00")).is_err());
        assert!(parse_frame(Bytes::from_static(b"\x00\x03\x00\x09\x00\x00\x00\x01\xff")).is_err());
    }
}
