//! What this node is for one partition (Kafka's `Partition` state): not a replica, a follower
//! of some leader at some epoch, or the leader with its view of each follower (log end, last
//! caught-up time: Kafka's `Replica` state) and the ISR as the metadata last said.
//!
//! Owns: the in-sync rules (`Replica.updateFetchState`, `isCaughtUp`) and the
//! current_leader_epoch check every API shares. Must not: do I/O or touch the log.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::cluster::model::NodeId;

pub const FENCED_LEADER_EPOCH: i16 = 74;
pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
pub const LEADER_NOT_AVAILABLE: i16 = 5;

#[derive(Debug, Default)]
pub enum Role {
    /// Not a replica here (the single-node broker, or a partition assigned elsewhere).
    #[default]
    None,
    Follower {
        /// -1 while the partition has no leader.
        leader: NodeId,
        leader_epoch: i32,
    },
    Leader(LeaderState),
}

#[derive(Debug)]
pub struct LeaderState {
    /// This node (the leader).
    pub me: NodeId,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<NodeId>,
    /// The ISR as the metadata says (the leader included).
    pub isr: Vec<NodeId>,
    /// The topic's `min.insync.replicas`.
    pub min_isr: i32,
    /// Where this leader epoch began in the log: a follower joins the ISR only past it.
    pub epoch_start_offset: i64,
    pub followers: HashMap<NodeId, FollowerState>,
    /// An AlterPartition of this leader is on its way: do not send another.
    pub alter_in_flight: bool,
}

/// The leader's view of one follower.
#[derive(Debug, Clone, Copy)]
pub struct FollowerState {
    /// The follower's log end (its last fetch offset); -1 before its first fetch.
    pub log_end: i64,
    pub last_caught_up: Instant,
    pub last_fetch: Instant,
    /// The leader's log end at the follower's previous fetch.
    pub last_fetch_leader_end: i64,
}

impl FollowerState {
    /// A new leader's view: ISR members count as caught up now (Kafka resets them so).
    pub fn new(in_isr: bool, now: Instant, lag_max: Duration) -> Self {
        let long_ago = now.checked_sub(lag_max * 2).unwrap_or(now);
        FollowerState {
            log_end: -1,
            last_caught_up: if in_isr { now } else { long_ago },
            last_fetch: long_ago,
            last_fetch_leader_end: -1,
        }
    }

    /// Kafka's `Replica.updateFetchState`: the follower fetched at `fetch_offset` while the
    /// leader's log ended at `leader_end`.
    pub fn update(&mut self, fetch_offset: i64, leader_end: i64, now: Instant) {
        if fetch_offset >= leader_end {
            self.last_caught_up = self.last_caught_up.max(now);
        } else if fetch_offset >= self.last_fetch_leader_end {
            self.last_caught_up = self.last_caught_up.max(self.last_fetch);
        }
        self.log_end = fetch_offset;
        self.last_fetch_leader_end = self.last_fetch_leader_end.max(leader_end);
        self.last_fetch = now;
    }

    /// Kafka's `isCaughtUp`.
    pub fn is_caught_up(&self, leader_end: i64, now: Instant, lag_max: Duration) -> bool {
        self.log_end == leader_end || now.saturating_duration_since(self.last_caught_up) <= lag_max
    }
}

impl Role {
    /// The leader epoch this node knows for the partition.
    pub fn leader_epoch(&self) -> Option<i32> {
        match self {
            Role::None => None,
            Role::Follower { leader_epoch, .. } => Some(*leader_epoch),
            Role::Leader(l) => Some(l.leader_epoch),
        }
    }

    /// The check Fetch, ListOffsets and OffsetForLeaderEpoch make on `current_leader_epoch`
    /// (-1: the client does not say): older → FENCED_LEADER_EPOCH, newer → UNKNOWN_LEADER_EPOCH.
    pub fn check_epoch(&self, current_leader_epoch: i32) -> Result<(), i16> {
        match self.leader_epoch() {
            _ if current_leader_epoch < 0 => Ok(()),
            Some(e) if current_leader_epoch < e => Err(FENCED_LEADER_EPOCH),
            Some(e) if current_leader_epoch > e => Err(UNKNOWN_LEADER_EPOCH),
            _ => Ok(()),
        }
    }

    /// The epoch check, then: this node must lead (Kafka's `localLogWithEpochOrThrow` with
    /// `requireLeader`). Errors are Kafka codes.
    pub fn check_leader(&self, current_leader_epoch: i32) -> Result<&LeaderState, i16> {
        self.check_epoch(current_leader_epoch)?;
        match self {
            Role::Leader(l) => Ok(l),
            Role::Follower { leader, .. } if *leader < 0 => Err(LEADER_NOT_AVAILABLE),
            _ => Err(NOT_LEADER_OR_FOLLOWER),
        }
    }

    pub fn as_leader_mut(&mut self) -> Option<&mut LeaderState> {
        match self {
            Role::Leader(l) => Some(l),
            _ => None,
        }
    }
}

impl LeaderState {
    /// Kafka's HW rule: the smallest log end among the ISR (the leader's own included).
    pub fn high_watermark(&self, own_end: i64) -> i64 {
        self.isr
            .iter()
            .filter(|r| **r != self.me)
            .map(|r| self.followers.get(r).map_or(-1, |f| f.log_end))
            .fold(own_end, i64::min)
    }

    /// ISR members (other than the leader) not caught up for `lag_max`.
    pub fn out_of_sync(&self, own_end: i64, now: Instant, lag_max: Duration) -> Vec<NodeId> {
        self.isr
            .iter()
            .copied()
            .filter(|r| {
                self.followers
                    .get(r)
                    .is_some_and(|f| !f.is_caught_up(own_end, now, lag_max))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_checks_fence_older_and_refuse_newer_epochs() {
        let r = Role::Follower {
            leader: 2,
            leader_epoch: 5,
        };
        assert_eq!(r.check_epoch(-1), Ok(()));
        assert_eq!(r.check_epoch(5), Ok(()));
        assert_eq!(r.check_epoch(4), Err(FENCED_LEADER_EPOCH));
        assert_eq!(r.check_epoch(6), Err(UNKNOWN_LEADER_EPOCH));
        assert_eq!(r.check_leader(5).err(), Some(NOT_LEADER_OR_FOLLOWER));
        let offline = Role::Follower {
            leader: -1,
            leader_epoch: 6,
        };
        assert_eq!(offline.check_leader(-1).err(), Some(LEADER_NOT_AVAILABLE));
    }

    #[test]
    fn a_follower_is_caught_up_when_it_fetched_the_leaders_end_within_the_lag() {
        let lag = Duration::from_secs(10);
        let t0 = Instant::now();
        let mut f = FollowerState::new(true, t0, lag);
        assert!(f.is_caught_up(100, t0, lag), "a new leader's ISR member");
        assert!(!f.is_caught_up(100, t0 + lag * 2, lag));
        f.update(50, 100, t0 + lag);
        assert!(!f.is_caught_up(100, t0 + lag * 2, lag), "behind since t0");
        // Reaching the end the leader had at the previous fetch counts from that fetch.
        f.update(100, 120, t0 + lag * 2);
        assert_eq!(f.last_caught_up, t0 + lag);
        assert!(f.is_caught_up(120, t0 + lag * 2, lag));
        assert!(!f.is_caught_up(120, t0 + lag * 2 + lag / 2, lag));
        f.update(120, 120, t0 + lag * 3);
        assert_eq!(f.last_caught_up, t0 + lag * 3);
    }
}
