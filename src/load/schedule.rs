//! The open-loop schedule: record i of a producer is due at `start + (offset + i) / rate`.
//!
//! Deadlines are absolute, so a stall is never hidden: records due during it are sent late (the
//! gap is the "send delay") and their latency is measured from the deadline, not from the
//! delayed send. There is no token bucket and no catch-up burst limit to tune; being behind is
//! measured, not smoothed. In the closed model (`rate = None`) every record is due at once.

use std::time::Duration;

use crate::measure::clock;

/// One producer's deadlines.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start_ns: u64,
    /// Nanoseconds between this producer's records; `None` in the closed model.
    interval_ns: Option<f64>,
    /// Phase shift so that producers interleave instead of sending together.
    offset_ns: f64,
}

impl Schedule {
    /// A schedule for producer `index` of `producers` sharing `total_rate` records/s.
    pub fn new(start_ns: u64, total_rate: Option<f64>, index: u32, producers: u32) -> Self {
        let interval_ns = total_rate.map(|r| 1e9 * producers as f64 / r);
        let offset_ns = total_rate.map_or(0.0, |r| 1e9 * index as f64 / r);
        Schedule {
            start_ns,
            interval_ns,
            offset_ns,
        }
    }

    /// When record `i` of this producer is due; in the closed model, `None`.
    #[inline]
    pub fn due_ns(&self, i: u64) -> Option<u64> {
        self.interval_ns
            .map(|iv| self.start_ns + (self.offset_ns + i as f64 * iv) as u64)
    }

    /// Sleeps until `due_ns` and returns the clock then. Short waits are slept too: a spinning
    /// sender would steal a core from the broker on small machines; the oversleep (tens of µs)
    /// shows up honestly as send delay.
    #[inline]
    pub fn wait_until(due_ns: u64) -> u64 {
        loop {
            let now = clock::now_ns();
            if now >= due_ns {
                return now;
            }
            std::thread::sleep(Duration::from_nanos(due_ns - now));
        }
    }
}

/// Lowers this thread's timer slack so short sleeps wake close to their deadline (the default
/// 50 µs slack would add to every send delay). Best effort: failure changes nothing else.
pub fn tighten_timer_slack() {
    let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1_000));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producers_share_the_rate_and_interleave() {
        let a = Schedule::new(1_000, Some(1000.0), 0, 2);
        let b = Schedule::new(1_000, Some(1000.0), 1, 2);
        assert_eq!(a.due_ns(0), Some(1_000));
        assert_eq!(b.due_ns(0), Some(1_000 + 1_000_000));
        assert_eq!(a.due_ns(1), Some(1_000 + 2_000_000));
        assert_eq!(b.due_ns(1), Some(1_000 + 3_000_000));
    }

    #[test]
    fn closed_model_has_no_deadlines() {
        assert_eq!(Schedule::new(5, None, 0, 1).due_ns(10), None);
    }

    #[test]
    fn wait_until_never_returns_early() {
        let due = clock::now_ns() + 2_000_000;
        assert!(Schedule::wait_until(due) >= due);
    }
}
