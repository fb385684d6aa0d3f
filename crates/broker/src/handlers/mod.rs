//! Request handlers: one function per API, from a decoded request to a response.
//!
//! Owns: the meaning of each API, for the single-node broker and for a node of a cluster
//! (the `*_cluster` modules, chosen when `Broker::cluster` is set). Must not: touch sockets (the
//! server writes what handlers return), or encode Fetch records through the codec crate (that
//! would copy them; see `protocol::fetch_encode`).

mod admin;
mod admin_cluster;
mod api_versions;
mod fetch;
mod groups;
mod list_offsets;
mod metadata;
mod metadata_cluster;
mod offset_for_leader_epoch;
mod offsets;
mod offsets_cluster;
pub(crate) mod produce;
mod txn;
mod txn_cluster;
mod write_txn_markers;

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};

pub use api_versions::unsupported_version_response;

use crate::protocol::{encode_response, fetch_encode::Part, Request};
use crate::state::Broker;

/// What the server sends back for one request.
#[derive(Debug)]
pub enum Response {
    /// acks=0 produce: nothing at all.
    Nothing,
    /// A complete encoded frame.
    Frame(Bytes),
    /// A Fetch response: framing buffers interleaved with segment-file slices.
    Parts(Vec<Part>),
    /// Close the connection (e.g. a failed acks=0 produce, as Kafka does).
    Close,
}

/// Per-connection facts handlers may need.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub client_host: String,
}

pub(crate) fn decode<T: Decodable>(req: &mut Request) -> anyhow::Result<T> {
    T::decode(&mut req.body, req.version)
}

pub(crate) fn respond<M: Encodable>(req: &Request, body: &M) -> anyhow::Result<Response> {
    Ok(Response::Frame(encode_response(
        req.key,
        req.version,
        req.header.correlation_id,
        body,
    )?))
}

pub(crate) fn str_of(s: &kafka_protocol::protocol::StrBytes) -> String {
    s.as_str().to_string()
}

/// Handles one request. An `Err` means the request was malformed: the server closes the
/// connection, as Kafka does for requests it cannot parse.
pub async fn dispatch(
    broker: &Arc<Broker>,
    mut req: Request,
    conn: &ConnInfo,
) -> anyhow::Result<Response> {
    match req.key {
        ApiKey::ApiVersions => api_versions::handle(&mut req),
        ApiKey::Metadata => match &broker.cluster {
            None => metadata::handle(broker, &mut req),
            Some(c) => metadata_cluster::handle(broker, c, &mut req).await,
        },
        ApiKey::Produce => produce::handle(broker, &mut req).await,
        ApiKey::Fetch => fetch::handle(broker, &mut req).await,
        ApiKey::ListOffsets => list_offsets::handle(broker, &mut req),
        ApiKey::OffsetForLeaderEpoch => offset_for_leader_epoch::handle(broker, &mut req),
        ApiKey::CreateTopics => match &broker.cluster {
            None => admin::create_topics(broker, &mut req),
            Some(c) => admin_cluster::create_topics(broker, c, &mut req).await,
        },
        ApiKey::DeleteTopics => match &broker.cluster {
            None => admin::delete_topics(broker, &mut req),
            Some(c) => admin_cluster::delete_topics(broker, c, &mut req).await,
        },
        ApiKey::DescribeConfigs => admin::describe_configs(broker, &mut req),
        ApiKey::InitProducerId => admin::init_producer_id(broker, &mut req).await,
        ApiKey::FindCoordinator => groups::find_coordinator(broker, &mut req).await,
        ApiKey::JoinGroup => groups::join(broker, &mut req, conn).await,
        ApiKey::SyncGroup => groups::sync(broker, &mut req).await,
        ApiKey::Heartbeat => groups::heartbeat(broker, &mut req),
        ApiKey::LeaveGroup => groups::leave(broker, &mut req),
        ApiKey::DescribeGroups => groups::describe(broker, &mut req),
        ApiKey::ListGroups => groups::list(broker, &mut req),
        ApiKey::OffsetCommit => offsets::commit(broker, &mut req).await,
        ApiKey::OffsetFetch => offsets::fetch(broker, &mut req),
        ApiKey::AddPartitionsToTxn => match &broker.cluster {
            None => txn::add_partitions(broker, &mut req),
            Some(_) => txn_cluster::add_partitions(broker, &mut req).await,
        },
        ApiKey::AddOffsetsToTxn => match &broker.cluster {
            None => txn::add_offsets(broker, &mut req),
            Some(_) => txn_cluster::add_offsets(broker, &mut req).await,
        },
        ApiKey::TxnOffsetCommit => match &broker.cluster {
            None => txn::txn_offset_commit(broker, &mut req),
            Some(_) => txn_cluster::txn_offset_commit(broker, &mut req).await,
        },
        ApiKey::EndTxn => match &broker.cluster {
            None => txn::end(broker, &mut req),
            Some(_) => txn_cluster::end(broker, &mut req).await,
        },
        ApiKey::WriteTxnMarkers => write_txn_markers::handle(broker, &mut req).await,
        other => anyhow::bail!("api {other:?} passed the version gate but has no handler"),
    }
}

/// Kafka error codes used by handlers.
pub mod code {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_REQUEST: i16 = 42;
    pub const INVALID_RECORD: i16 = 87;
    pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;
}
