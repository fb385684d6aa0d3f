//! Per-partition gaps between consecutive events (acks, or records received), measured in
//! windows around faults: for each window the longest interval between consecutive events of
//! each partition that ends inside it, and at the end the open interval from a partition's
//! last event to the end of the run.
//!
//! Running state only: the last event time per partition and one maximum per (window,
//! partition); no list of events, so memory does not grow with the run.

/// Gaps of every partition, per window.
#[derive(Debug, Clone, Default)]
pub struct GapTracker {
    /// `[from, to)` of each window, absolute ns.
    windows: Vec<(u64, u64)>,
    /// Last event per partition (0 before the first).
    last_ns: Vec<u64>,
    /// Longest gap per window and partition, ns.
    max_gap_ns: Vec<Vec<u64>>,
}

impl GapTracker {
    pub fn new(windows: Vec<(u64, u64)>, partitions: usize) -> Self {
        GapTracker {
            max_gap_ns: vec![vec![0; partitions]; windows.len()],
            windows,
            last_ns: vec![0; partitions],
        }
    }

    /// Records an event of `partition` at `now`.
    #[inline]
    pub fn observe(&mut self, partition: i32, now: u64) {
        let p = partition.max(0) as usize;
        if p >= self.last_ns.len() {
            self.last_ns.resize(p + 1, 0);
            for w in &mut self.max_gap_ns {
                w.resize(p + 1, 0);
            }
        }
        let last = self.last_ns[p];
        self.last_ns[p] = now.max(last);
        self.credit(p, last, now);
    }

    /// The interval (`last`, `now`) counts in every window it ends in. Before the partition's
    /// first event, the interval starts at the window's start (a partition silent since before
    /// the window has been silent for all of it). An interval still open at a window's end
    /// (the next event came after it) counts up to that end, from no earlier than its start,
    /// as the run's end closes the last window (`window_gaps_ns`).
    fn credit(&mut self, p: usize, last: u64, now: u64) {
        for (k, &(from, to)) in self.windows.iter().enumerate() {
            if now < from {
                continue;
            }
            let gap = if now < to {
                now.saturating_sub(if last == 0 { from } else { last })
            } else if last < to {
                to.saturating_sub(last.max(from))
            } else {
                continue;
            };
            let slot = &mut self.max_gap_ns[k][p];
            *slot = (*slot).max(gap);
        }
    }

    /// Longest gap per partition in window `k`, with the open interval to `end_ns` closed.
    pub fn window_gaps_ns(&self, k: usize, end_ns: u64) -> Vec<u64> {
        let Some(&(from, to)) = self.windows.get(k) else {
            return Vec::new();
        };
        let close = end_ns.min(to);
        self.max_gap_ns[k]
            .iter()
            .zip(&self.last_ns)
            .map(|(&g, &last)| {
                let begin = if last == 0 { from } else { last.max(from) };
                g.max(close.saturating_sub(begin))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn the_longest_gap_in_the_window_and_the_open_end_count() {
        let mut g = GapTracker::new(vec![(10 * S, u64::MAX)], 2);
        // Partition 0: every 100 ms, a 3 s hole from 12 s to 15 s.
        let mut t = 0;
        while t <= 20 * S {
            if !(12 * S..15 * S).contains(&t) {
                g.observe(0, t);
            }
            t += S / 10;
        }
        // Partition 1: last event at 18 s, the run ends at 20 s.
        g.observe(1, 5 * S);
        g.observe(1, 18 * S);
        let gaps = g.window_gaps_ns(0, 20 * S);
        // 11.9 s → 15.0 s.
        assert_eq!(gaps[0], 3 * S + S / 10);
        // 5 s → 18 s ended inside the window: 13 s.
        assert_eq!(gaps[1], 13 * S);
    }

    #[test]
    fn a_gap_that_outlasts_its_window_counts_up_to_the_window_s_end() {
        // Two faults' windows: [9 s, 12 s) and [12 s, end). Acks every 10 ms until 10 s, then
        // none until 20 s: the first window was silent from 10 s to its end, the second holds
        // the whole 10 s gap (it ended there).
        let mut g = GapTracker::new(vec![(9 * S, 12 * S), (12 * S, u64::MAX)], 1);
        (0..=1000).for_each(|i| g.observe(0, i * S / 100));
        (2000..2100).for_each(|i| g.observe(0, i * S / 100));
        assert_eq!(g.window_gaps_ns(0, 21 * S), vec![2 * S]);
        assert_eq!(g.window_gaps_ns(1, 21 * S), vec![10 * S]);
    }

    #[test]
    fn gaps_before_the_window_do_not_count() {
        let mut g = GapTracker::new(vec![(10 * S, 20 * S)], 1);
        g.observe(0, S);
        g.observe(0, 5 * S); // a 4 s gap, before the window
        (50..200).for_each(|i| g.observe(0, i * S / 10));
        let gaps = g.window_gaps_ns(0, 30 * S);
        // Inside the window events come every 0.1 s; the open end stops at the window's end.
        assert!(gaps[0] <= S / 10 + 1, "{gaps:?}");
    }
}
