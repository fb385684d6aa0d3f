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
}

/// On a VM every sleep costs the sleeping thread tens of microseconds of CPU in the kernel
/// (programming the timer), and a sender that slept until each deadline of a 500k records/s
/// schedule burned a whole core that way, taking it from the broker and the client. So the
/// sender wakes at most once per this interval: above 1 / interval records/s it sends what fell
/// due since it last woke, each record with its true send delay (at most this much, counted in
/// its latency from the intended time, as wrk2 does with its coarser ticks). Below that rate
/// every record still has its own wake-up at its deadline.
pub const MIN_WAKE_INTERVAL_NS: u64 = 100_000;

/// Waits for deadlines, waking at most once per `MIN_WAKE_INTERVAL_NS`.
#[derive(Debug, Default)]
pub struct Pacer {
    last_wake_ns: u64,
}

impl Pacer {
    /// Returns the clock once `due_ns` has come: at once if it is past; otherwise after
    /// sleeping until it, or until `MIN_WAKE_INTERVAL_NS` after the last wake-up if that is
    /// later. Never early; short waits are slept, not spun: a spinning sender would steal a
    /// core from the broker on small machines, and the oversleep shows honestly as send delay.
    #[inline]
    pub fn wait_until(&mut self, due_ns: u64) -> u64 {
        let mut now = clock::now_ns();
        if now >= due_ns {
            return now;
        }
        let wake_ns = due_ns.max(self.last_wake_ns + MIN_WAKE_INTERVAL_NS);
        while now < wake_ns {
            std::thread::sleep(Duration::from_nanos(wake_ns - now));
            now = clock::now_ns();
        }
        self.last_wake_ns = now;
        now
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
        let mut pacer = Pacer::default();
        let due = clock::now_ns() + 2_000_000;
        assert!(pacer.wait_until(due) >= due);
    }

    #[test]
    fn the_pacer_wakes_at_most_once_per_interval() {
        let mut pacer = Pacer::default();
        let first = pacer.wait_until(clock::now_ns() + 1_000);
        // Due sooner than the interval: it sleeps the whole interval since the last wake-up.
        let second = pacer.wait_until(first + 1_000);
        assert!(second >= first + MIN_WAKE_INTERVAL_NS, "{}", second - first);
        // Already due: no sleep at all (a thousand sleeps would take at least 200 ms).
        let before = clock::now_ns();
        for _ in 0..1000 {
            pacer.wait_until(before - 1);
        }
        let took = clock::now_ns() - before;
        assert!(took < 1000 * MIN_WAKE_INTERVAL_NS / 2, "{took} ns");
    }
}
