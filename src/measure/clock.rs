//! The one clock kbench uses for record times: nanoseconds since the Unix epoch, read as the
//! wall-clock time at start-up plus a monotonic `Instant` offset.
//!
//! Monotonic within a process (an NTP step cannot make a latency negative), and comparable
//! across kbench processes on one host (both anchor to the wall clock), which is what the
//! end-to-end latency of a separate `kbench consume` needs. One `Instant::now()` per read.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

struct Anchor {
    instant: Instant,
    unix_ns: u64,
}

fn anchor() -> &'static Anchor {
    static ANCHOR: OnceLock<Anchor> = OnceLock::new();
    ANCHOR.get_or_init(|| Anchor {
        instant: Instant::now(),
        unix_ns: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    })
}

/// Now, in nanoseconds since the Unix epoch.
#[inline]
pub fn now_ns() -> u64 {
    let a = anchor();
    a.unix_ns + a.instant.elapsed().as_nanos() as u64
}

/// Makes sure the anchor is taken before any worker starts.
pub fn init() {
    anchor();
}

#[cfg(test)]
mod tests {
    #[test]
    fn clock_is_monotonic_and_close_to_wall_time() {
        let a = super::now_ns();
        let b = super::now_ns();
        assert!(b >= a);
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        assert!(wall.abs_diff(b) < 1_000_000_000);
    }
}
