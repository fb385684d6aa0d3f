//! The record stamp: a fixed 36-byte header at the start of every value kbench produces.
//!
//! Layout (little endian): magic `KBS` (3) | phase (1: bits 0-6 the phase index, bit 7 set for
//! a warm-up record) | run id (4) | producer id (4: bits 0-30 the id, bit 31 set for a record of
//! a transaction its producer will abort) | sequence (8) | intended send time (8) | actual send
//! time (8). The producer decides whether a transaction aborts when it begins it, so the mark
//! tells any reader (a read_committed consumer must never see one) without a lookup. Such
//! records are numbered in a sequence of their own, so the committed records' sequence has no
//! gaps where transactions aborted. The producer decides the phase when it sends, so every reader (even
//! another process) agrees on it. Times are nanoseconds of `measure::clock`
//! (Unix-epoch based, monotonic within a process). Consumers read it for end-to-end latency and
//! to count lost, duplicated and reordered records per (producer, partition); the producer reads
//! it back from each delivery report for produce latency, so nothing is kept per record in
//! flight.

/// Bytes the stamp takes at the start of each value.
pub const STAMP_LEN: usize = 36;
const MAGIC: [u8; 3] = *b"KBS";
const EXCLUDED_BIT: u8 = 0x80;
const ABORTING_BIT: u32 = 1 << 31;
/// Phases a stamp can name.
pub const MAX_PHASES: usize = 127;

/// The decoded stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub run_id: u32,
    pub producer_id: u32,
    pub seq: u64,
    pub intended_ns: u64,
    pub sent_ns: u64,
    /// Index of the phase the record was sent in.
    pub phase: u8,
    /// Sent in a phase left out of the summary (the warm-up).
    pub excluded: bool,
    /// Sent in a transaction that its producer aborts.
    pub aborting: bool,
}

impl Stamp {
    /// Writes the stamp into the first `STAMP_LEN` bytes of `buf` (which must be that long).
    #[inline]
    pub fn write(&self, buf: &mut [u8]) {
        buf[0..3].copy_from_slice(&MAGIC);
        buf[3] = (self.phase & !EXCLUDED_BIT) | if self.excluded { EXCLUDED_BIT } else { 0 };
        buf[4..8].copy_from_slice(&self.run_id.to_le_bytes());
        let producer =
            (self.producer_id & !ABORTING_BIT) | if self.aborting { ABORTING_BIT } else { 0 };
        buf[8..12].copy_from_slice(&producer.to_le_bytes());
        buf[12..20].copy_from_slice(&self.seq.to_le_bytes());
        buf[20..28].copy_from_slice(&self.intended_ns.to_le_bytes());
        buf[28..36].copy_from_slice(&self.sent_ns.to_le_bytes());
    }

    /// Reads a stamp from the start of a value; `None` if the value does not carry one.
    #[inline]
    pub fn read(value: &[u8]) -> Option<Stamp> {
        if value.len() < STAMP_LEN || value[0..3] != MAGIC {
            return None;
        }
        let u32_at = |i: usize| u32::from_le_bytes(value[i..i + 4].try_into().unwrap_or_default());
        let u64_at = |i: usize| u64::from_le_bytes(value[i..i + 8].try_into().unwrap_or_default());
        Some(Stamp {
            run_id: u32_at(4),
            producer_id: u32_at(8) & !ABORTING_BIT,
            seq: u64_at(12),
            intended_ns: u64_at(20),
            sent_ns: u64_at(28),
            phase: value[3] & !EXCLUDED_BIT,
            excluded: value[3] & EXCLUDED_BIT != 0,
            aborting: u32_at(8) & ABORTING_BIT != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips() {
        let s = Stamp {
            run_id: 7,
            producer_id: 3,
            seq: 1 << 40,
            intended_ns: 11,
            sent_ns: 12,
            phase: 5,
            excluded: true,
            aborting: true,
        };
        let mut buf = [0u8; 64];
        s.write(&mut buf);
        assert_eq!(Stamp::read(&buf), Some(s));
    }

    #[test]
    fn values_without_the_magic_or_too_short_have_no_stamp() {
        assert_eq!(
            Stamp::read(b"hello world, this is not a kbench record at all"),
            None
        );
        let mut buf = [0u8; STAMP_LEN];
        Stamp {
            run_id: 1,
            producer_id: 1,
            seq: 1,
            intended_ns: 1,
            sent_ns: 1,
            phase: 0,
            excluded: false,
            aborting: false,
        }
        .write(&mut buf);
        assert_eq!(Stamp::read(&buf[..STAMP_LEN - 1]), None);
    }
}
