//! Whether a record is warm-up, decided once by its producer at send time and carried in the
//! stamp's flags, so the delivery callback and every consumer (even in another process) agree.

use crate::plan::Warmup;

#[derive(Debug, Clone, Copy)]
pub struct Phasing {
    pub warmup: Warmup,
    pub start_ns: u64,
}

impl Phasing {
    /// Is the record with this global index (across producers), due at `intended_ns`, warm-up?
    #[inline]
    pub fn is_warmup(&self, global_index: u64, intended_ns: u64) -> bool {
        match self.warmup {
            Warmup::None => false,
            Warmup::Records(n) => global_index < n,
            Warmup::Duration { ms } => intended_ns < self.start_ns + ms * 1_000_000,
        }
    }

    /// When the measured phase starts, if that is known in advance (duration warm-up or none).
    pub fn measured_start_ns(&self) -> Option<u64> {
        match self.warmup {
            Warmup::None => Some(self.start_ns),
            Warmup::Records(_) => None,
            Warmup::Duration { ms } => Some(self.start_ns + ms * 1_000_000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_n_records_across_producers_are_warmup() {
        let p = Phasing { warmup: Warmup::Records(5), start_ns: 0 };
        assert!(p.is_warmup(4, 0));
        assert!(!p.is_warmup(5, 0));
        assert_eq!(p.measured_start_ns(), None);
    }

    #[test]
    fn records_due_before_the_warmup_ends_are_warmup() {
        let p = Phasing { warmup: Warmup::Duration { ms: 10 }, start_ns: 1_000 };
        assert!(p.is_warmup(99, 1_000 + 9_999_999));
        assert!(!p.is_warmup(0, 1_000 + 10_000_000));
        assert_eq!(p.measured_start_ns(), Some(1_000 + 10_000_000));
    }
}
