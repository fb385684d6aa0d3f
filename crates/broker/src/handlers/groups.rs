//! Group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, DescribeGroups,
//! ListGroups — thin translations to `group::Coordinator`. A single node coordinates every
//! group and transaction; on a cluster node FindCoordinator names the leader of the key's
//! internal partition and group requests elsewhere get NOT_COORDINATOR (`cluster::coordinator`).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{decode, respond, str_of, ConnInfo, Response};
use crate::cluster::coordinator::{self, owner};
use crate::group::{JoinParams, COORDINATOR_NOT_AVAILABLE, NONE};
use crate::protocol::Request;
use crate::state::{Broker, NODE_ID};

fn sb(s: String) -> StrBytes {
    StrBytes::from_string(s)
}

pub async fn find_coordinator(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    if broker.cluster.is_some() {
        return find_coordinator_cluster(broker, req).await;
    }
    let r: FindCoordinatorRequest = decode(req)?;
    let mut resp = FindCoordinatorResponse::default();
    // key_type 0 = group, 1 = transaction: this node coordinates both. Other types (2, share
    // groups, FindCoordinator v6) are not advertised.
    let error = if matches!(r.key_type, 0 | 1) {
        NONE
    } else {
        COORDINATOR_NOT_AVAILABLE
    };
    let host = sb(broker.advertised_host.clone());
    let (node, port) = if error == NONE {
        (NODE_ID, broker.advertised_port)
    } else {
        (-1, -1)
    };
    if req.version >= 4 {
        resp.coordinators = r
            .coordinator_keys
            .into_iter()
            .map(|k| {
                let mut c = CoordinatorEntry::default();
                c.key = k;
                c.node_id = BrokerId(node);
                c.host = host.clone();
                c.port = port;
                c.error_code = error;
                c
            })
            .collect();
    } else {
        resp.error_code = error;
        resp.node_id = BrokerId(node);
        resp.host = host;
        resp.port = port;
    }
    respond(req, &resp)
}

/// (error, node, host, port) for one key on a cluster node.
async fn locate(broker: &Broker, key: &str, key_type: i8) -> (i16, i32, String, i32) {
    if !matches!(key_type, 0 | 1) {
        return (COORDINATOR_NOT_AVAILABLE, -1, String::new(), -1);
    }
    match coordinator::find(broker, key, key_type == 1).await {
        Ok((node, host, port)) => (NONE, node, host, port),
        Err(e) => (e, -1, String::new(), -1),
    }
}

async fn find_coordinator_cluster(
    broker: &Arc<Broker>,
    req: &mut Request,
) -> anyhow::Result<Response> {
    let r: FindCoordinatorRequest = decode(req)?;
    let mut resp = FindCoordinatorResponse::default();
    if req.version >= 4 {
        for k in r.coordinator_keys {
            let (error, node, host, port) = locate(broker, k.as_str(), r.key_type).await;
            let mut c = CoordinatorEntry::default();
            c.key = k;
            c.node_id = BrokerId(node);
            c.host = sb(host);
            c.port = port;
            c.error_code = error;
            resp.coordinators.push(c);
        }
    } else {
        let (error, node, host, port) = locate(broker, r.key.as_str(), r.key_type).await;
        resp.error_code = error;
        resp.node_id = BrokerId(node);
        resp.host = sb(host);
        resp.port = port;
    }
    respond(req, &resp)
}

pub async fn join(
    broker: &Arc<Broker>,
    req: &mut Request,
    conn: &ConnInfo,
) -> anyhow::Result<Response> {
    let r: JoinGroupRequest = decode(req)?;
    if let Err(e) = owner(broker, r.group_id.0.as_str()) {
        let mut resp = JoinGroupResponse::default();
        resp.error_code = e;
        resp.generation_id = -1;
        resp.member_id = r.member_id.clone();
        return respond(req, &resp);
    }
    let params = JoinParams {
        group_id: str_of(&r.group_id.0),
        member_id: str_of(&r.member_id),
        instance_id: r.group_instance_id.as_ref().map(str_of),
        client_id: req
            .header
            .client_id
            .as_ref()
            .map(str_of)
            .unwrap_or_default(),
        client_host: conn.client_host.clone(),
        session_timeout_ms: r.session_timeout_ms,
        rebalance_timeout_ms: if req.version >= 1 {
            r.rebalance_timeout_ms
        } else {
            -1
        },
        protocol_type: str_of(&r.protocol_type),
        protocols: r
            .protocols
            .iter()
            .map(|p| (str_of(&p.name), p.metadata.clone()))
            .collect(),
        version: req.version,
    };
    let o = broker.groups.join(params).await;
    let mut resp = JoinGroupResponse::default();
    resp.error_code = o.error;
    resp.generation_id = o.generation;
    resp.protocol_type = o.protocol_type.map(sb);
    resp.protocol_name = o.protocol_name.map(sb);
    resp.leader = sb(o.leader);
    resp.member_id = sb(o.member_id);
    resp.members = o
        .members
        .into_iter()
        .map(|(id, inst, meta)| {
            let mut m = JoinGroupResponseMember::default();
            m.member_id = sb(id);
            m.group_instance_id = inst.map(sb);
            m.metadata = meta;
            m
        })
        .collect();
    respond(req, &resp)
}

pub async fn sync(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: SyncGroupRequest = decode(req)?;
    if let Err(e) = owner(broker, r.group_id.0.as_str()) {
        let mut resp = SyncGroupResponse::default();
        resp.error_code = e;
        return respond(req, &resp);
    }
    let assignments: Vec<(String, Bytes)> = r
        .assignments
        .iter()
        .map(|a| (str_of(&a.member_id), a.assignment.clone()))
        .collect();
    let inst = r.group_instance_id.as_ref().map(str_of);
    let o = broker
        .groups
        .sync(
            r.group_id.0.as_str(),
            r.generation_id,
            r.member_id.as_str(),
            inst.as_deref(),
            assignments,
        )
        .await;
    let mut resp = SyncGroupResponse::default();
    resp.error_code = o.error;
    resp.assignment = o.assignment;
    resp.protocol_type = o.protocol_type.map(sb);
    resp.protocol_name = o.protocol_name.map(sb);
    respond(req, &resp)
}

pub fn heartbeat(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: HeartbeatRequest = decode(req)?;
    let inst = r.group_instance_id.as_ref().map(str_of);
    let mut resp = HeartbeatResponse::default();
    resp.error_code = match owner(broker, r.group_id.0.as_str()) {
        Err(e) => e,
        Ok(_) => broker.groups.heartbeat(
            r.group_id.0.as_str(),
            r.generation_id,
            r.member_id.as_str(),
            inst.as_deref(),
        ),
    };
    respond(req, &resp)
}

pub fn leave(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: LeaveGroupRequest = decode(req)?;
    let members: Vec<(String, Option<String>)> = if req.version >= 3 {
        r.members
            .iter()
            .map(|m| {
                (
                    str_of(&m.member_id),
                    m.group_instance_id.as_ref().map(str_of),
                )
            })
            .collect()
    } else {
        vec![(str_of(&r.member_id), None)]
    };
    let mut resp = LeaveGroupResponse::default();
    if let Err(e) = owner(broker, r.group_id.0.as_str()) {
        resp.error_code = e;
        return respond(req, &resp);
    }
    let codes = broker.groups.leave(r.group_id.0.as_str(), &members);
    if req.version >= 3 {
        resp.members = members
            .into_iter()
            .zip(codes)
            .map(|((id, inst), c)| {
                let mut m = MemberResponse::default();
                m.member_id = sb(id);
                m.group_instance_id = inst.map(sb);
                m.error_code = c;
                m
            })
            .collect();
    } else {
        resp.error_code = codes.first().copied().unwrap_or(NONE);
    }
    respond(req, &resp)
}

pub fn describe(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: DescribeGroupsRequest = decode(req)?;
    let mut resp = DescribeGroupsResponse::default();
    for gid in r.groups {
        let mut g = DescribedGroup::default();
        g.group_id = gid.clone();
        if let Err(e) = owner(broker, gid.0.as_str()) {
            g.error_code = e;
            g.group_state = StrBytes::from_static_str("Dead");
            resp.groups.push(g);
            continue;
        }
        match broker.groups.describe(gid.0.as_str()) {
            Some(d) => {
                g.group_state = StrBytes::from_static_str(d.state);
                g.protocol_type = sb(d.protocol_type);
                g.protocol_data = sb(d.protocol);
                g.members = d
                    .members
                    .into_iter()
                    .map(|(id, inst, client, host, meta, assignment)| {
                        let mut m = DescribedGroupMember::default();
                        m.member_id = sb(id);
                        m.group_instance_id = inst.map(sb);
                        m.client_id = sb(client);
                        m.client_host = sb(host);
                        m.member_metadata = meta;
                        m.member_assignment = assignment;
                        m
                    })
                    .collect();
            }
            None if !broker.groups.offsets.for_group(gid.0.as_str()).is_empty() => {
                g.group_state = StrBytes::from_static_str("Empty");
                g.protocol_type = StrBytes::from_static_str("consumer");
            }
            None => g.group_state = StrBytes::from_static_str("Dead"),
        }
        resp.groups.push(g);
    }
    respond(req, &resp)
}

pub fn list(broker: &Arc<Broker>, req: &mut Request) -> anyhow::Result<Response> {
    let r: ListGroupsRequest = decode(req)?;
    let mut resp = ListGroupsResponse::default();
    resp.groups = broker
        .groups
        .list()
        .into_iter()
        .filter(|(_, _, state)| {
            r.states_filter.is_empty()
                || r.states_filter
                    .iter()
                    .any(|s| s.as_str().eq_ignore_ascii_case(state))
        })
        .map(|(id, ptype, state)| {
            let mut g = ListedGroup::default();
            g.group_id = GroupId(sb(id));
            g.protocol_type = sb(ptype);
            g.group_state = StrBytes::from_static_str(state);
            g.group_type = StrBytes::from_static_str("classic");
            g
        })
        .collect();
    respond(req, &resp)
}
