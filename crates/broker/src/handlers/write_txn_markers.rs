//! WriteTxnMarkers (ApiKey 27), from a transaction coordinator to a partition leader: each
//! marker appended as the leader (`txn::cluster::leader`, acks=all), answered per partition
//! once replicated. Cluster nodes only: a single node writes its markers itself and refuses
//! this request as it always has (the connection is closed).

use std::sync::Arc;

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use super::{decode, respond, str_of, Response};
use crate::protocol::Request;
use crate::state::Broker;
use crate::txn::cluster::leader::MarkerSpec;
use crate::txn::cluster::markers::write_here;

pub async fn handle(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    if broker.cluster.is_none() {
        // What the version gate did before this API was served: close the connection.
        return Ok(Response::Close);
    }
    let r: WriteTxnMarkersRequest = decode(req)?;
    let mut resp = WriteTxnMarkersResponse::default();
    for m in &r.markers {
        let spec = MarkerSpec {
            producer_id: m.producer_id.0,
            producer_epoch: m.producer_epoch,
            commit: m.transaction_result,
            coordinator_epoch: m.coordinator_epoch,
        };
        let parts: Vec<(String, i32)> = m
            .topics
            .iter()
            .flat_map(|t| t.partition_indexes.iter().map(|i| (str_of(&t.name.0), *i)))
            .collect();
        let mut codes = write_here(broker, &parts, spec).await.into_iter();
        let mut mr = WritableTxnMarkerResult::default();
        mr.producer_id = m.producer_id;
        for t in &m.topics {
            let mut tr = WritableTxnMarkerTopicResult::default();
            tr.name = t.name.clone();
            for i in &t.partition_indexes {
                let mut pr = WritableTxnMarkerPartitionResult::default();
                pr.partition_index = *i;
                pr.error_code = codes.next().unwrap_or(-1);
                tr.partitions.push(pr);
            }
            mr.topics.push(tr);
        }
        resp.markers.push(mr);
    }
    respond(req, &resp)
}
