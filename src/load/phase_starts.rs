//! When each phase of the run actually began (clock ns): set by the producers as they send the
//! first record of a phase, read by the reporter to split intervals between phases.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub struct PhaseStarts {
    starts: Vec<AtomicU64>,
}

impl PhaseStarts {
    pub fn new(phases: usize) -> Self {
        PhaseStarts {
            starts: (0..phases.max(1))
                .map(|_| AtomicU64::new(u64::MAX))
                .collect(),
        }
    }

    /// Records that `phase` had a record due at `t_ns`; the earliest such time wins.
    #[inline]
    pub fn mark(&self, phase: usize, t_ns: u64) {
        if let Some(a) = self.starts.get(phase) {
            a.fetch_min(t_ns, Ordering::Relaxed);
        }
    }

    /// When `phase` began, if it has.
    pub fn get(&self, phase: usize) -> Option<u64> {
        self.starts
            .get(phase)
            .map(|a| a.load(Ordering::Relaxed))
            .filter(|&t| t != u64::MAX)
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn earliest_mark_wins() {
        let s = super::PhaseStarts::new(2);
        assert_eq!(s.get(1), None);
        s.mark(1, 50);
        s.mark(1, 40);
        s.mark(1, 60);
        assert_eq!(s.get(1), Some(40));
        s.mark(7, 1); // out of range: ignored
    }
}
