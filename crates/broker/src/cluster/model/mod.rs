//! The cluster's metadata as the controller quorum agrees on it, and the one function that
//! changes it: `ClusterMetadata::apply(command)`.
//!
//! Every node applies the same committed commands in the same order (the Raft log), so this
//! module must be deterministic: no clocks, no randomness, no I/O. Leader elections happen
//! here, as consequences of commands (a broker fenced, a broker back, a controlled shutdown),
//! so that every node computes the same leader and the same leader epoch.
//!
//! Kafka's rules kept here (KRaft's ReplicationControlManager):
//! * a leader is chosen only from the ISR, among unfenced brokers not shutting down, unless
//!   unclean election is on and no ISR member is available;
//! * every leader change bumps the partition's leader epoch; every leader or ISR change bumps
//!   its partition epoch (AlterPartition must name the current one);
//! * a fenced broker leaves every ISR, except that the last ISR member stays (the partition is
//!   then offline, leader -1, until that member comes back);
//! * a broker that registers again (a restart) is treated as fenced first: its old incarnation
//!   held nothing it can still vouch for.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub type NodeId = i32;
/// No leader (Kafka's `-1`).
pub const NO_LEADER: NodeId = -1;

/// Kafka error codes the controller answers with.
pub mod code {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const STALE_BROKER_EPOCH: i16 = 77;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_CONFIG: i16 = 40;
    pub const INVALID_REQUEST: i16 = 42;
    pub const NOT_CONTROLLER: i16 = 41;
    pub const BROKER_NOT_AVAILABLE: i16 = 8;
    pub const INVALID_UPDATE_VERSION: i16 = 108;
    pub const INELIGIBLE_REPLICA: i16 = 107;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRecord {
    pub id: NodeId,
    /// Where clients connect (the advertised listener).
    pub host: String,
    pub port: i32,
    /// Where followers replicate from (`--advertised-peer-listener`, e.g. a peer proxy);
    /// `None` = the client endpoint above (what metadata logs written before it hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<Endpoint>,
    /// Bumped at every registration; requests naming an older one are stale.
    pub epoch: i64,
    /// Fenced brokers lead nothing and are in no ISR (but the last member's place, see top).
    pub fenced: bool,
    /// In controlled shutdown: lead nothing, join no ISR, wait to exit.
    pub shutting_down: bool,
}

impl BrokerRecord {
    /// The address followers dial: the peer endpoint, else the client one.
    pub fn peer_endpoint(&self) -> (&str, i32) {
        match &self.peer {
            Some(e) => (&e.host, e.port),
            None => (&self.host, self.port),
        }
    }
}

/// A HOST and PORT a broker advertises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub host: String,
    pub port: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub replicas: Vec<NodeId>,
    pub isr: Vec<NodeId>,
    pub leader: NodeId,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

impl PartitionRecord {
    pub fn is_offline(&self) -> bool {
        self.leader == NO_LEADER
    }
    pub fn under_replicated(&self) -> bool {
        self.isr.len() < self.replicas.len()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub name: String,
    /// Kafka's topic id (a UUID's 16 bytes).
    pub id: [u8; 16],
    pub partitions: Vec<PartitionRecord>,
    /// The topic's `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// Other topic configs given at creation, as Kafka names them.
    pub configs: BTreeMap<String, String>,
}

/// Everything the quorum agrees on. `Default` is the empty cluster before any command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMetadata {
    pub brokers: BTreeMap<NodeId, BrokerRecord>,
    pub topics: BTreeMap<String, TopicRecord>,
    /// The next producer id the quorum hands out (blocks, as KIP-730).
    pub next_producer_id: i64,
    /// Elect outside the ISR when no ISR member is available (`unclean.leader.election.enable`).
    pub unclean_leader_election: bool,
    /// Topic ids handed out so far; the next id derives from it (deterministic on every node).
    pub topics_created: u64,
}

/// A change to the metadata. Only the active controller proposes fencing and unfencing (from
/// heartbeats it alone sees); brokers propose the rest through it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A broker process starting: a new epoch; an older incarnation is fenced first.
    RegisterBroker {
        id: NodeId,
        host: String,
        port: i32,
        /// The replication endpoint; `None` (and commands logged before it) = host:port.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<Endpoint>,
    },
    /// The session of `id` expired (no heartbeat for the session timeout).
    FenceBroker {
        id: NodeId,
        epoch: i64,
    },
    /// `id` heartbeats again with its current epoch.
    UnfenceBroker {
        id: NodeId,
        epoch: i64,
    },
    /// SIGTERM on `id`: move its leaderships away and take it out of every ISR.
    ControlledShutdown {
        id: NodeId,
        epoch: i64,
    },
    CreateTopic {
        name: String,
        partitions: i32,
        replication_factor: i32,
        min_insync_replicas: i32,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    /// A partition leader's request to change the ISR (Kafka's AlterPartition).
    AlterPartition {
        topic: String,
        partition: i32,
        leader: NodeId,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<NodeId>,
    },
    /// A block of `count` producer ids.
    AllocateProducerIds {
        count: i64,
    },
    SetUncleanLeaderElection {
        enabled: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Ok,
    /// A Kafka error code and a message saying why.
    Error(i16, String),
    BrokerEpoch(i64),
    PartitionEpoch(i32),
    ProducerIds {
        first: i64,
        count: i64,
    },
}

/// Something that happened to the metadata, for the event log and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Change {
    Registered {
        node: NodeId,
        epoch: i64,
    },
    Fenced {
        node: NodeId,
        epoch: i64,
    },
    Unfenced {
        node: NodeId,
        epoch: i64,
    },
    ControlledShutdown {
        node: NodeId,
    },
    TopicCreated {
        topic: String,
        partitions: i32,
        replication_factor: i32,
    },
    TopicDeleted {
        topic: String,
    },
    /// A new leader (or none: `leader` -1) with its epoch.
    Elected {
        topic: String,
        partition: i32,
        leader: NodeId,
        leader_epoch: i32,
        unclean: bool,
    },
    IsrShrink {
        topic: String,
        partition: i32,
        isr: Vec<NodeId>,
    },
    IsrExpand {
        topic: String,
        partition: i32,
        isr: Vec<NodeId>,
    },
}

/// Producer ids start here (below are left for tools that pick their own).
const FIRST_PRODUCER_ID: i64 = 1000;

impl ClusterMetadata {
    pub fn partition(&self, topic: &str, index: i32) -> Option<&PartitionRecord> {
        self.topics
            .get(topic)?
            .partitions
            .get(usize::try_from(index).ok()?)
    }

    /// Brokers that may lead and join ISRs.
    pub fn is_available(&self, id: NodeId) -> bool {
        self.brokers
            .get(&id)
            .is_some_and(|b| !b.fenced && !b.shutting_down)
    }

    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerRecord> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// Applies one committed command: the reply for whoever proposed it, and what changed.
    pub fn apply(&mut self, cmd: &Command) -> (Reply, Vec<Change>) {
        let mut changes = Vec::new();
        let reply = match cmd {
            Command::RegisterBroker {
                id,
                host,
                port,
                peer,
            } => self.register(*id, host, *port, peer.clone(), &mut changes),
            Command::FenceBroker { id, epoch } => self.fence(*id, *epoch, &mut changes),
            Command::UnfenceBroker { id, epoch } => self.unfence(*id, *epoch, &mut changes),
            Command::ControlledShutdown { id, epoch } => self.shut_down(*id, *epoch, &mut changes),
            Command::CreateTopic {
                name,
                partitions,
                replication_factor,
                min_insync_replicas,
                configs,
            } => self.create_topic(
                name,
                *partitions,
                *replication_factor,
                *min_insync_replicas,
                configs,
                &mut changes,
            ),
            Command::DeleteTopic { name } => match self.topics.remove(name) {
                Some(_) => {
                    changes.push(Change::TopicDeleted {
                        topic: name.clone(),
                    });
                    Reply::Ok
                }
                None => Reply::Error(code::UNKNOWN_TOPIC_OR_PARTITION, format!("no topic {name}")),
            },
            Command::AlterPartition {
                topic,
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                isr,
            } => self.alter_partition(
                topic,
                *partition,
                *leader,
                *leader_epoch,
                *partition_epoch,
                isr,
                &mut changes,
            ),
            Command::AllocateProducerIds { count } => {
                let count = (*count).max(1);
                let first = self.next_producer_id.max(FIRST_PRODUCER_ID);
                self.next_producer_id = first + count;
                Reply::ProducerIds { first, count }
            }
            Command::SetUncleanLeaderElection { enabled } => {
                self.unclean_leader_election = *enabled;
                self.elect_offline(&mut changes);
                Reply::Ok
            }
        };
        (reply, changes)
    }

    fn register(
        &mut self,
        id: NodeId,
        host: &str,
        port: i32,
        peer: Option<Endpoint>,
        changes: &mut Vec<Change>,
    ) -> Reply {
        let epoch = match self.brokers.get(&id) {
            Some(old) => {
                let old_epoch = old.epoch;
                if !old.fenced {
                    self.fence(id, old_epoch, changes);
                }
                old_epoch + 1
            }
            None => 1,
        };
        self.brokers.insert(
            id,
            BrokerRecord {
                id,
                host: host.to_string(),
                port,
                peer,
                epoch,
                fenced: false,
                shutting_down: false,
            },
        );
        changes.push(Change::Registered { node: id, epoch });
        // Partitions whose last ISR member was this broker come back online with it.
        self.elect_offline(changes);
        Reply::BrokerEpoch(epoch)
    }

    fn check_epoch(&self, id: NodeId, epoch: i64) -> Result<(), Reply> {
        match self.brokers.get(&id) {
            Some(b) if b.epoch == epoch => Ok(()),
            Some(b) => Err(Reply::Error(
                code::STALE_BROKER_EPOCH,
                format!("broker {id} has epoch {}, not {epoch}", b.epoch),
            )),
            None => Err(Reply::Error(
                code::BROKER_NOT_AVAILABLE,
                format!("broker {id} is not registered"),
            )),
        }
    }

    fn fence(&mut self, id: NodeId, epoch: i64, changes: &mut Vec<Change>) -> Reply {
        if let Err(r) = self.check_epoch(id, epoch) {
            return r;
        }
        let b = self.brokers.get_mut(&id).expect("checked");
        if b.fenced {
            return Reply::Ok;
        }
        b.fenced = true;
        changes.push(Change::Fenced { node: id, epoch });
        self.remove_from_all(id, changes);
        Reply::Ok
    }

    fn unfence(&mut self, id: NodeId, epoch: i64, changes: &mut Vec<Change>) -> Reply {
        if let Err(r) = self.check_epoch(id, epoch) {
            return r;
        }
        let b = self.brokers.get_mut(&id).expect("checked");
        if b.fenced && !b.shutting_down {
            b.fenced = false;
            changes.push(Change::Unfenced { node: id, epoch });
            self.elect_offline(changes);
        }
        Reply::Ok
    }

    fn shut_down(&mut self, id: NodeId, epoch: i64, changes: &mut Vec<Change>) -> Reply {
        if let Err(r) = self.check_epoch(id, epoch) {
            return r;
        }
        let b = self.brokers.get_mut(&id).expect("checked");
        if !b.shutting_down {
            b.shutting_down = true;
            changes.push(Change::ControlledShutdown { node: id });
            self.remove_from_all(id, changes);
        }
        Reply::Ok
    }

    /// Takes `id` out of every ISR (keeping a last member) and moves its leaderships away.
    fn remove_from_all(&mut self, id: NodeId, changes: &mut Vec<Change>) {
        let names: Vec<String> = self.topics.keys().cloned().collect();
        for name in names {
            let count = self.topics[&name].partitions.len();
            for index in 0..count {
                let mut p = self.topics[&name].partitions[index].clone();
                if !p.replicas.contains(&id) {
                    continue;
                }
                if p.isr.len() > 1 && p.isr.contains(&id) {
                    p.isr.retain(|r| *r != id);
                    p.partition_epoch += 1;
                    changes.push(Change::IsrShrink {
                        topic: name.clone(),
                        partition: index as i32,
                        isr: p.isr.clone(),
                    });
                }
                if p.leader == id {
                    self.elect(&name, index as i32, &mut p, changes);
                }
                self.topics.get_mut(&name).expect("listed").partitions[index] = p;
            }
        }
    }

    /// Chooses a new leader for `p` (the current one is gone): the first available ISR
    /// member in replica order, else (unclean on) any available replica, else none.
    fn elect(&self, topic: &str, index: i32, p: &mut PartitionRecord, changes: &mut Vec<Change>) {
        let clean = p
            .replicas
            .iter()
            .copied()
            .find(|r| p.isr.contains(r) && self.is_available(*r));
        let (leader, unclean) = match clean {
            Some(l) => (l, false),
            None if self.unclean_leader_election => {
                match p.replicas.iter().copied().find(|r| self.is_available(*r)) {
                    Some(l) => (l, true),
                    None => (NO_LEADER, false),
                }
            }
            None => (NO_LEADER, false),
        };
        if unclean {
            p.isr = vec![leader];
        }
        if leader == p.leader {
            return;
        }
        p.leader = leader;
        p.leader_epoch += 1;
        p.partition_epoch += 1;
        changes.push(Change::Elected {
            topic: topic.to_string(),
            partition: index,
            leader,
            leader_epoch: p.leader_epoch,
            unclean,
        });
    }

    /// Gives offline partitions a leader if one became available.
    fn elect_offline(&mut self, changes: &mut Vec<Change>) {
        let names: Vec<String> = self.topics.keys().cloned().collect();
        for name in names {
            let count = self.topics[&name].partitions.len();
            for index in 0..count {
                let mut p = self.topics[&name].partitions[index].clone();
                if p.is_offline() {
                    self.elect(&name, index as i32, &mut p, changes);
                    self.topics.get_mut(&name).expect("listed").partitions[index] = p;
                }
            }
        }
    }

    fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        rf: i32,
        min_isr: i32,
        configs: &BTreeMap<String, String>,
        changes: &mut Vec<Change>,
    ) -> Reply {
        if self.topics.contains_key(name) {
            return Reply::Error(
                code::TOPIC_ALREADY_EXISTS,
                format!("topic {name} already exists"),
            );
        }
        if partitions < 1 {
            return Reply::Error(
                code::INVALID_PARTITIONS,
                format!("{partitions} partitions: need at least 1"),
            );
        }
        let live: Vec<NodeId> = self
            .brokers
            .values()
            .filter(|b| !b.fenced && !b.shutting_down)
            .map(|b| b.id)
            .collect();
        if rf < 1 || rf as usize > live.len() {
            return Reply::Error(
                code::INVALID_REPLICATION_FACTOR,
                format!(
                    "replication factor {rf}: {} brokers are available",
                    live.len()
                ),
            );
        }
        if min_isr < 1 || min_isr > rf {
            return Reply::Error(
                code::INVALID_CONFIG,
                format!("min.insync.replicas {min_isr} must be between 1 and the replication factor {rf}"),
            );
        }
        // Kafka's round-robin placement: partition i starts at broker (start + i) and takes
        // the next rf brokers, so leaders spread evenly. The start varies per topic.
        let start = self.topics_created as usize;
        let parts = (0..partitions as usize)
            .map(|i| {
                let replicas: Vec<NodeId> = (0..rf as usize)
                    .map(|k| live[(start + i + k) % live.len()])
                    .collect();
                PartitionRecord {
                    leader: replicas[0],
                    isr: replicas.clone(),
                    replicas,
                    leader_epoch: 0,
                    partition_epoch: 0,
                }
            })
            .collect();
        self.topics_created += 1;
        self.topics.insert(
            name.to_string(),
            TopicRecord {
                name: name.to_string(),
                id: topic_id(self.topics_created, name),
                partitions: parts,
                min_insync_replicas: min_isr,
                configs: configs.clone(),
            },
        );
        changes.push(Change::TopicCreated {
            topic: name.to_string(),
            partitions,
            replication_factor: rf,
        });
        Reply::Ok
    }

    #[allow(clippy::too_many_arguments)]
    fn alter_partition(
        &mut self,
        topic: &str,
        index: i32,
        leader: NodeId,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: &[NodeId],
        changes: &mut Vec<Change>,
    ) -> Reply {
        let Some(current) = self.partition(topic, index).cloned() else {
            return Reply::Error(
                code::UNKNOWN_TOPIC_OR_PARTITION,
                format!("no partition {topic}-{index}"),
            );
        };
        if current.leader != leader || current.leader_epoch != leader_epoch {
            return Reply::Error(
                code::FENCED_LEADER_EPOCH,
                format!(
                    "{topic}-{index} is led by {} at epoch {}, not {leader} at {leader_epoch}",
                    current.leader, current.leader_epoch
                ),
            );
        }
        if current.partition_epoch != partition_epoch {
            return Reply::Error(
                code::INVALID_UPDATE_VERSION,
                format!(
                    "{topic}-{index} is at partition epoch {}, not {partition_epoch}",
                    current.partition_epoch
                ),
            );
        }
        if !isr.contains(&leader) || isr.iter().any(|r| !current.replicas.contains(r)) {
            return Reply::Error(
                code::INVALID_REQUEST,
                format!("ISR {isr:?} must hold the leader and only replicas"),
            );
        }
        let added: Vec<NodeId> = isr
            .iter()
            .copied()
            .filter(|r| !current.isr.contains(r))
            .collect();
        if added.iter().any(|r| !self.is_available(*r)) {
            return Reply::Error(
                code::INELIGIBLE_REPLICA,
                format!("ISR {isr:?} names a fenced or shutting-down broker"),
            );
        }
        let mut p = current.clone();
        p.isr = current
            .replicas
            .iter()
            .copied()
            .filter(|r| isr.contains(r))
            .collect();
        p.partition_epoch += 1;
        let removed = current.isr.iter().any(|r| !p.isr.contains(r));
        if removed {
            changes.push(Change::IsrShrink {
                topic: topic.to_string(),
                partition: index,
                isr: p.isr.clone(),
            });
        }
        if !added.is_empty() {
            changes.push(Change::IsrExpand {
                topic: topic.to_string(),
                partition: index,
                isr: p.isr.clone(),
            });
        }
        let epoch = p.partition_epoch;
        self.topics.get_mut(topic).expect("found").partitions[index as usize] = p;
        Reply::PartitionEpoch(epoch)
    }
}

/// A topic id every node derives alike: a UUID (version 4 layout) from the creation count and
/// the name, never all zeros (Kafka's "no id").
fn topic_id(count: u64, name: &str) -> [u8; 16] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&count.to_be_bytes());
    id[8..].copy_from_slice(&h.to_be_bytes());
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    id
}

#[cfg(test)]
mod tests;
