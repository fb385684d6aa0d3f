//! ApiVersions: advertises the curated table, and answers versions it does not know in v0
//! format with UNSUPPORTED_VERSION so clients retry with one we do (Kafka's behaviour).

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

use super::{respond, Response};
use crate::protocol::{encode_response, Request, ADVERTISED};

fn table() -> Vec<ApiVersion> {
    ADVERTISED
        .iter()
        .map(|a| {
            let mut v = ApiVersion::default();
            v.api_key = a.key as i16;
            v.min_version = a.min;
            v.max_version = a.max;
            v
        })
        .collect()
}

pub fn handle(req: &mut Request) -> anyhow::Result<Response> {
    // The body (client software name/version) is not checked: Kafka's strict validation only
    // costs clients a retry (see the brief), so we accept anything, even an undecodable body.
    let mut resp = ApiVersionsResponse::default();
    resp.api_keys = table();
    resp.finalized_features_epoch = -1;
    respond(req, &resp)
}

/// The v0-format UNSUPPORTED_VERSION answer to an ApiVersions request of an unknown version.
pub fn unsupported_version_response(correlation_id: i32) -> anyhow::Result<Bytes> {
    let mut resp = ApiVersionsResponse::default();
    resp.error_code = super::code::UNSUPPORTED_VERSION;
    resp.api_keys = table();
    encode_response(ApiKey::ApiVersions, 0, correlation_id, &resp)
}
