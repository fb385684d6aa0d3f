//! The cluster settings of one node, named after Kafka's (`node.id`,
//! `controller.quorum.voters`, `broker.session.timeout.ms`, ...), with the checks that turn
//! a mistake into an error naming the flag.

use std::net::SocketAddr;
use std::time::Duration;

use super::model::{Endpoint, NodeId};

/// One voter of the metadata quorum: `ID@HOST:PORT`, the address of its quorum listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub id: NodeId,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub node_id: NodeId,
    pub voters: Vec<Voter>,
    /// Kafka's `broker.session.timeout.ms` (9000): silent this long, a broker is fenced.
    pub session_timeout: Duration,
    /// Kafka's `broker.heartbeat.interval.ms` (2000).
    pub heartbeat_interval: Duration,
    /// Kafka's `replica.lag.time.max.ms` (30000): a follower behind this long leaves the ISR.
    pub replica_lag_time_max: Duration,
    /// Kafka's `replica.fetch.wait.max.ms` (500): how long a follower fetch may wait for data.
    pub replica_fetch_wait_max: Duration,
    /// The broker default of `min.insync.replicas` (Kafka's default: 1).
    pub min_insync_replicas: i32,
    /// `default.replication.factor` for auto-created topics and CreateTopics with -1. Kafka's
    /// default is 1; a bundled cluster defaults to min(3, voters) so that it is replicated.
    pub default_replication_factor: i32,
    /// Kafka's `unclean.leader.election.enable` (false).
    pub unclean_leader_election: bool,
    /// How often the metadata quorum's Raft leader heartbeats its followers (200 ms).
    pub quorum_heartbeat_interval: Duration,
    /// A follower that hears no Raft leader for its lease and then a random time between
    /// this and twice this calls an election (500 ms; openraft's lease is twice this, so a
    /// dead controller is replaced in 1.5–2 s).
    pub quorum_election_timeout: Duration,
    /// How long a starting node waits for the quorum to register it (60 s).
    pub quorum_start_timeout: Duration,
    /// Kafka's `offsets.topic.num.partitions` (50 there): partitions of `__consumer_offsets`
    /// (and `__transaction_state`). 5 here: a bundled cluster of 3 still spreads its group
    /// coordinators over every node, while each rebuild and the topic's creation stay small.
    pub offsets_topic_num_partitions: i32,
    /// Where followers replicate from this node (`--advertised-peer-listener`, e.g. its peer
    /// proxy); `None` = the advertised client listener.
    pub advertised_peer: Option<Endpoint>,
}

impl ClusterConfig {
    /// Kafka's defaults for a node of `voters`.
    pub fn new(node_id: NodeId, voters: Vec<Voter>) -> Self {
        let rf = voters.len().min(3) as i32;
        ClusterConfig {
            node_id,
            voters,
            session_timeout: Duration::from_millis(9000),
            heartbeat_interval: Duration::from_millis(2000),
            replica_lag_time_max: Duration::from_millis(30000),
            replica_fetch_wait_max: Duration::from_millis(500),
            min_insync_replicas: 1,
            default_replication_factor: rf,
            unclean_leader_election: false,
            quorum_heartbeat_interval: Duration::from_millis(200),
            quorum_election_timeout: Duration::from_millis(500),
            quorum_start_timeout: Duration::from_secs(60),
            offsets_topic_num_partitions: 5,
            advertised_peer: None,
        }
    }

    pub fn voter(&self, id: NodeId) -> Option<&Voter> {
        self.voters.iter().find(|v| v.id == id)
    }

    /// This node's own quorum address.
    pub fn own_quorum_addr(&self) -> SocketAddr {
        self.voter(self.node_id).expect("validated").addr
    }

    /// Checks the settings together; the error names the flag to fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.voter(self.node_id).is_none() {
            let ids: Vec<String> = self.voters.iter().map(|v| v.id.to_string()).collect();
            return Err(format!(
                "--node-id {} is not in --controller-quorum (its ids: {}): give this node one of them",
                self.node_id,
                ids.join(", ")
            ));
        }
        if self.heartbeat_interval >= self.session_timeout {
            return Err(format!(
                "--broker-heartbeat-interval-ms ({} ms) must be below --broker-session-timeout-ms ({} ms)",
                self.heartbeat_interval.as_millis(),
                self.session_timeout.as_millis()
            ));
        }
        let rf = self.default_replication_factor;
        if rf < 1 || rf as usize > self.voters.len() {
            return Err(format!(
                "--default-replication-factor {rf} must be between 1 and the {} nodes of --controller-quorum",
                self.voters.len()
            ));
        }
        if self.min_insync_replicas < 1 || self.min_insync_replicas > rf {
            return Err(format!(
                "--min-insync-replicas {} must be between 1 and --default-replication-factor {rf}",
                self.min_insync_replicas
            ));
        }
        Ok(())
    }
}

/// Parses `--controller-quorum`: `ID@HOST:PORT` separated by commas, ids unique, at least one.
pub fn parse_quorum(s: &str) -> Result<Vec<Voter>, String> {
    let mut voters: Vec<Voter> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part.split_once('@').ok_or_else(|| {
            format!(
                "--controller-quorum: `{part}` is not ID@HOST:PORT (for example 1@127.0.0.1:19091)"
            )
        })?;
        let id: NodeId = id.parse().ok().filter(|i| *i >= 0).ok_or_else(|| {
            format!("--controller-quorum: `{id}` in `{part}` is not a node id (0 or more)")
        })?;
        let addr = resolve(addr).ok_or_else(|| {
            format!("--controller-quorum: `{addr}` in `{part}` is not HOST:PORT with a port")
        })?;
        if voters.iter().any(|v| v.id == id) {
            return Err(format!("--controller-quorum: node id {id} appears twice"));
        }
        if voters.iter().any(|v| v.addr == addr) {
            return Err(format!("--controller-quorum: address {addr} appears twice"));
        }
        voters.push(Voter { id, addr });
    }
    if voters.is_empty() {
        return Err("--controller-quorum is empty: give ID@HOST:PORT for every node".into());
    }
    Ok(voters)
}

/// Parses `--advertised-peer-listener`: HOST:PORT with a port from 1 to 65535.
pub fn parse_endpoint(flag: &str, s: &str) -> Result<Endpoint, String> {
    let bad = || format!("{flag} `{s}` is not HOST:PORT with a port (for example 127.0.0.1:19192)");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_matches(['[', ']']);
    let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok(Endpoint {
        host: host.to_string(),
        port: i32::from(port),
    })
}

fn resolve(addr: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs().ok()?.find(|a| a.port() != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quorum_parses_and_bad_ones_name_the_flag() {
        let v = parse_quorum("1@127.0.0.1:19091,2@127.0.0.1:19092, 3@localhost:19093").unwrap();
        assert_eq!(v.iter().map(|v| v.id).collect::<Vec<_>>(), vec![1, 2, 3]);
        for bad in [
            "",
            "1@",
            "x@127.0.0.1:1",
            "1@127.0.0.1",
            "1:127.0.0.1:5",
            "1@h:1,1@h:2",
        ] {
            let e = parse_quorum(bad).unwrap_err();
            assert!(e.contains("--controller-quorum"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_node_outside_the_quorum_is_refused() {
        let v = parse_quorum("1@127.0.0.1:19091,2@127.0.0.1:19092").unwrap();
        let e = ClusterConfig::new(3, v.clone()).validate().unwrap_err();
        assert!(e.contains("--node-id 3"), "{e}");
        let mut c = ClusterConfig::new(1, v);
        c.min_insync_replicas = 3;
        assert!(c.validate().unwrap_err().contains("--min-insync-replicas"));
    }

    #[test]
    fn a_peer_endpoint_parses_and_bad_ones_name_the_flag() {
        let e = parse_endpoint("--advertised-peer-listener", "127.0.0.1:19192").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 19192));
        for bad in ["127.0.0.1", ":1", "h:0", "h:x", "h:70000"] {
            let e = parse_endpoint("--advertised-peer-listener", bad).unwrap_err();
            assert!(e.contains("--advertised-peer-listener"), "{bad}: {e}");
        }
    }
}
