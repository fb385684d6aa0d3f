//! The high watermark of a partition this node leads: min log end over the ISR, raised (never
//! lowered) after the leader's appends and its followers' fetches. Raising it wakes the
//! acks=all produces waiting on the partition.
//!
//! Must not: block; it runs under the partition's role lock for a moment.

use crate::topics::Partition;

use super::Role;

/// Recomputes the leader's high watermark; true if it advanced. Followers' high watermarks
/// come from their leader (the fetcher), so this does nothing on them.
pub fn maybe_advance(p: &Partition) -> bool {
    let hw = match &*p.role() {
        Role::Leader(l) => l.high_watermark(p.log_end_offset()),
        _ => return false,
    };
    p.raise_high_watermark(hw)
}
