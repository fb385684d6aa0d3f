//! Sparse offset index of one segment: an entry (batch base offset → file position) every
//! `interval` bytes, kept in memory and rebuilt by scanning batch headers at startup.
//!
//! Owns: floor lookups from an offset to a file position. Must not: read files.
//! Why in memory only: Kafka itself rebuilds indexes after an unclean shutdown ("no attempt is
//! made to checksum"), and scanning headers is cheap; persisting it would buy start-up time only.

#[derive(Debug, Clone)]
pub struct OffsetIndex {
    entries: Vec<(i64, u64)>,
    interval: u64,
    bytes_since_last: u64,
}

impl OffsetIndex {
    pub fn new(interval: u64) -> Self {
        OffsetIndex {
            entries: Vec::new(),
            interval: interval.max(1),
            bytes_since_last: 0,
        }
    }

    /// Records a batch appended at `pos`; adds an entry when enough bytes went by.
    pub fn maybe_add(&mut self, base_offset: i64, pos: u64, len: u64) {
        if self.entries.is_empty() || self.bytes_since_last >= self.interval {
            self.entries.push((base_offset, pos));
            self.bytes_since_last = 0;
        }
        self.bytes_since_last += len;
    }

    /// Position of the last indexed batch whose base offset is <= `offset` (0 if none).
    pub fn floor(&self, offset: i64) -> u64 {
        match self.entries.partition_point(|&(o, _)| o <= offset) {
            0 => 0,
            i => self.entries[i - 1].1,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_finds_the_last_entry_at_or_below() {
        let mut ix = OffsetIndex::new(100);
        ix.maybe_add(0, 0, 60);
        ix.maybe_add(10, 60, 60); // 60 < 100: skipped
        ix.maybe_add(20, 120, 60); // 120 >= 100: indexed
        assert_eq!(ix.len(), 2);
        assert_eq!(ix.floor(5), 0);
        assert_eq!(ix.floor(19), 0);
        assert_eq!(ix.floor(20), 120);
        assert_eq!(ix.floor(1000), 120);
        assert_eq!(ix.floor(-1), 0);
    }
}
