//! What a consumer group's rebalances cost, measured around each fault from the records the
//! members receive and their rebalance callbacks, three ways (`reference/ha_failover.md`, C):
//!
//! - (a) revoke → assign per member, as kafka-consumer-perf-test counts its `rebalance.time.ms`
//!   (from `onPartitionsRevoked`, or the join, to `onPartitionsAssigned`);
//! - (b) per partition, the last record the old owner received → the first at the new owner (a
//!   handover: the record flow as the group saw it, not the protocol's steps);
//! - (c) the whole seconds after the fault in which no member received anything.
//!
//! Beside them the consume gaps (`measure::gaps`). One `GroupWatch` is shared by a run's
//! consumers behind one mutex, taken once per batch of records and once per rebalance. Memory
//! is bounded: running state per partition and member, one flag per second of the run.

use crate::measure::gaps::GapTracker;

const SECOND_NS: u64 = 1_000_000_000;
/// Rebalances kept per member (they are rare: a few per fault).
const REBALANCES_MAX: usize = 10_000;

/// The group's running state, for every fault window.
#[derive(Debug, Clone)]
pub struct GroupWatch {
    start_ns: u64,
    /// `[from, to)` of each fault's window, absolute ns (as the gap tracker's).
    windows: Vec<(u64, u64)>,
    pub gaps: GapTracker,
    /// Per partition: the member that received its last record, and when.
    owner: Vec<Option<(u32, u64)>>,
    /// Per window and partition: the longest handover that ended in the window.
    handover_ns: Vec<Vec<Option<u64>>>,
    /// Per second of the run (from `start_ns`): whether any member received a record.
    active: Vec<bool>,
    /// Per member: (rebalance start, assigned), absolute ns.
    rebalances: Vec<Vec<(u64, u64)>>,
}

/// The rebalance pause of one fault, three ways.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pause {
    /// (a) Per member (by consumer index): the revoke (or join) → assign time of the
    /// rebalances whose assignment came in the window, summed, ns.
    pub revoke_to_assign_ns: Vec<u64>,
    /// How many rebalances completed in the window, over all members.
    pub rebalances: u64,
    /// (b) Per partition: the longest handover in the window, ns (None: no owner change).
    pub handover_ns: Vec<Option<u64>>,
    /// (c) The run's seconds (index from the start) after the fault with no record at all.
    pub idle_seconds: Vec<u64>,
}

impl GroupWatch {
    pub fn new(start_ns: u64, windows: Vec<(u64, u64)>, partitions: usize) -> Self {
        GroupWatch {
            start_ns,
            gaps: GapTracker::new(windows.clone(), partitions),
            owner: vec![None; partitions],
            handover_ns: vec![vec![None; partitions]; windows.len()],
            windows,
            active: Vec::new(),
            rebalances: Vec::new(),
        }
    }

    /// Member `member` received a record of `partition` at `now`.
    #[inline]
    pub fn observe(&mut self, member: u32, partition: i32, now: u64) {
        self.gaps.observe(partition, now);
        self.mark_active(now);
        let p = partition.max(0) as usize;
        if p >= self.owner.len() {
            self.owner.resize(p + 1, None);
            for w in &mut self.handover_ns {
                w.resize(p + 1, None);
            }
        }
        if let Some((m, last)) = self.owner[p] {
            if m != member {
                self.handover(p, now.saturating_sub(last), now);
            }
        }
        self.owner[p] = Some((member, now));
    }

    fn mark_active(&mut self, now: u64) {
        let s = (now.saturating_sub(self.start_ns) / SECOND_NS) as usize;
        if s >= self.active.len() {
            self.active.resize(s + 1, false);
        }
        self.active[s] = true;
    }

    fn handover(&mut self, p: usize, gap: u64, now: u64) {
        for (k, &(from, to)) in self.windows.iter().enumerate() {
            if (from..to).contains(&now) {
                let slot = &mut self.handover_ns[k][p];
                *slot = Some(slot.map_or(gap, |g| g.max(gap)));
            }
        }
    }

    /// Member `member` got its assignment at `assigned_ns`, after a rebalance (or join) that
    /// started at `started_ns`.
    pub fn rebalanced(&mut self, member: u32, started_ns: u64, assigned_ns: u64) {
        let m = member as usize;
        if m >= self.rebalances.len() {
            self.rebalances.resize(m + 1, Vec::new());
        }
        if self.rebalances[m].len() < REBALANCES_MAX {
            self.rebalances[m].push((started_ns, assigned_ns));
        }
    }

    /// The pause of fault `k`, injected at `t_f_ns`, for a run that ended at `end_ns`.
    pub fn pause(&self, k: usize, t_f_ns: u64, end_ns: u64, members: usize) -> Pause {
        let Some(&(from, to)) = self.windows.get(k) else {
            return Pause::default();
        };
        let mut revoke_to_assign_ns = vec![0; members.max(self.rebalances.len())];
        let mut rebalances = 0;
        for (m, list) in self.rebalances.iter().enumerate() {
            for &(s, a) in list.iter().filter(|(_, a)| (from..to).contains(a)) {
                revoke_to_assign_ns[m] += a.saturating_sub(s);
                rebalances += 1;
            }
        }
        Pause {
            revoke_to_assign_ns,
            rebalances,
            handover_ns: self.handover_ns[k].clone(),
            idle_seconds: self.idle_seconds(t_f_ns, end_ns.min(to)),
        }
    }

    /// Whole seconds of the run inside [`from_ns`, `to_ns`) in which no record arrived.
    fn idle_seconds(&self, from_ns: u64, to_ns: u64) -> Vec<u64> {
        let first = from_ns.saturating_sub(self.start_ns).div_ceil(SECOND_NS);
        let end = to_ns.saturating_sub(self.start_ns) / SECOND_NS;
        (first..end)
            .filter(|&s| !self.active.get(s as usize).copied().unwrap_or(false))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = SECOND_NS;
    const MS: u64 = 1_000_000;

    #[test]
    fn a_partition_moving_to_another_member_is_one_handover() {
        // Run starts at 100 s; a fault at 105 s; partitions 0 and 1.
        let mut w = GroupWatch::new(100 * S, vec![(104 * S, u64::MAX)], 2);
        let mut t = 100 * S;
        // Member 0 has both partitions until 105.2 s; nothing arrives until 108.5 s, then
        // member 1 has partition 1 and member 0 keeps partition 0.
        while t < 105 * S + 200 * MS {
            w.observe(0, 0, t);
            w.observe(0, 1, t);
            t += 100 * MS;
        }
        let last = t - 100 * MS;
        t = 108 * S + 500 * MS;
        while t < 112 * S {
            w.observe(0, 0, t);
            w.observe(1, 1, t);
            t += 100 * MS;
        }
        w.rebalanced(0, 105 * S + 300 * MS, 108 * S + 400 * MS);
        w.rebalanced(1, 106 * S, 108 * S + 450 * MS);
        let p = w.pause(0, 105 * S, 112 * S, 2);
        assert_eq!(p.handover_ns[0], None, "partition 0 stayed with member 0");
        assert_eq!(p.handover_ns[1], Some(108 * S + 500 * MS - last));
        assert_eq!(p.revoke_to_assign_ns, vec![3100 * MS, 2450 * MS]);
        assert_eq!(p.rebalances, 2);
        // Seconds 6 and 7 of the run (106-108 s) were silent; 5 and 8 had records.
        assert_eq!(p.idle_seconds, vec![6, 7]);
    }

    #[test]
    fn rebalances_and_handovers_outside_the_window_do_not_count() {
        let mut w = GroupWatch::new(0, vec![(10 * S, 20 * S)], 1);
        w.observe(0, 0, S);
        w.observe(1, 0, 2 * S); // a handover at 2 s: before the window
        w.rebalanced(0, S, 2 * S);
        w.observe(1, 0, 15 * S);
        let p = w.pause(0, 11 * S, 30 * S, 2);
        assert_eq!(p.handover_ns, vec![None]);
        assert_eq!(p.rebalances, 0);
        assert_eq!(p.revoke_to_assign_ns, vec![0, 0]);
        // Seconds 11..20 except 15 (the window ends at 20 s).
        assert_eq!(p.idle_seconds, vec![11, 12, 13, 14, 16, 17, 18, 19]);
    }
}
