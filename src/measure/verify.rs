//! Per-record verification from the stamp: lost, duplicated and reordered records.
//!
//! Each consumer keeps, per producer, a bitset of the sequence numbers it saw, and per
//! (producer, partition) the highest sequence so far. A bit already set is a duplicate; a
//! sequence below the partition's highest is a reorder. Consumers keep their own sets (no lock
//! shared on the hot path); `merge` unions them at the end, counting records seen by two
//! consumers as duplicates too. "Lost" is what the producers had acknowledged and no consumer saw.
//! The per-record maps hash with FxHash: their keys are small ids kbench assigns, so SipHash's
//! defence against chosen keys buys nothing, and it cost a tenth of the consuming thread.

use std::collections::HashMap;

use rustc_hash::FxHashMap;

/// A growable set of sequence numbers, one bit each.
#[derive(Debug, Clone, Default)]
pub struct SeqSet {
    words: Vec<u64>,
    count: u64,
}

impl SeqSet {
    /// Adds `seq`; returns false if it was already there.
    #[inline]
    pub fn insert(&mut self, seq: u64) -> bool {
        let (w, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if w >= self.words.len() {
            // Grow geometrically so a long run reallocates O(log n) times.
            let len = (w + 1).max(self.words.len() * 2).max(1024);
            self.words.resize(len, 0);
        }
        let was = self.words[w] & bit != 0;
        self.words[w] |= bit;
        self.count += (!was) as u64;
        !was
    }

    /// Takes `seq` out (a record of a transaction whose commit failed).
    pub fn remove(&mut self, seq: u64) {
        let (w, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if let Some(word) = self.words.get_mut(w) {
            self.count -= (*word & bit != 0) as u64;
            *word &= !bit;
        }
    }

    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds every member of `other`; returns how many were already present.
    pub fn union_with(&mut self, other: &SeqSet) -> u64 {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        let mut overlap = 0;
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            overlap += (*a & *b).count_ones() as u64;
            *a |= *b;
        }
        self.count = self.words.iter().map(|w| w.count_ones() as u64).sum();
        overlap
    }

    /// Members of `self` that are not in `other`.
    pub fn count_missing_from(&self, other: &SeqSet) -> u64 {
        self.words
            .iter()
            .enumerate()
            .map(|(i, a)| (a & !other.words.get(i).copied().unwrap_or(0)).count_ones() as u64)
            .sum()
    }

    /// Sequence numbers between the lowest and highest member that are not members (gaps).
    pub fn gaps(&self) -> u64 {
        let first = self.words.iter().position(|&w| w != 0);
        let last = self.words.iter().rposition(|&w| w != 0);
        match (first, last) {
            (Some(f), Some(l)) => {
                let lowest = f as u64 * 64 + self.words[f].trailing_zeros() as u64;
                let highest = l as u64 * 64 + 63 - self.words[l].leading_zeros() as u64;
                highest + 1 - lowest - self.count
            }
            _ => 0,
        }
    }
}

/// What one consumer saw.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    per_producer: FxHashMap<u32, SeqSet>,
    highest: FxHashMap<(u32, i32), u64>,
    pub duplicated: u64,
    pub reordered: u64,
}

impl Seen {
    /// Records one received record.
    #[inline]
    pub fn observe(&mut self, producer: u32, partition: i32, seq: u64) {
        if !self.per_producer.entry(producer).or_default().insert(seq) {
            self.duplicated += 1;
            return;
        }
        let top = self.highest.entry((producer, partition)).or_insert(seq);
        if seq < *top {
            self.reordered += 1;
        } else {
            *top = seq;
        }
    }

    /// Unions several consumers' views.
    pub fn merge(all: &[Seen]) -> Seen {
        let mut out = Seen::default();
        for s in all {
            out.duplicated += s.duplicated;
            out.reordered += s.reordered;
            for (p, set) in &s.per_producer {
                out.duplicated += out.per_producer.entry(*p).or_default().union_with(set);
            }
        }
        out
    }

    /// Acknowledged records (per producer) that were never seen.
    pub fn lost_from(&self, acked: &HashMap<u32, SeqSet>) -> u64 {
        let empty = SeqSet::default();
        acked
            .iter()
            .map(|(p, a)| a.count_missing_from(self.per_producer.get(p).unwrap_or(&empty)))
            .sum()
    }

    /// Members of `sets` (per producer) that were seen: failed records found in the log.
    pub fn present_of(&self, sets: &HashMap<u32, SeqSet>) -> u64 {
        let empty = SeqSet::default();
        sets.iter()
            .map(|(p, s)| {
                s.len() - s.count_missing_from(self.per_producer.get(p).unwrap_or(&empty))
            })
            .sum()
    }

    /// Without the producers' acknowledgements: sequence gaps inside each producer's seen range.
    pub fn gaps(&self) -> u64 {
        self.per_producer.values().map(SeqSet::gaps).sum()
    }

    /// Distinct records seen.
    pub fn distinct(&self) -> u64 {
        self.per_producer.values().map(SeqSet::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_duplicates_and_reorders_per_partition() {
        let mut s = Seen::default();
        for seq in [0, 1, 2, 1, 5, 4] {
            s.observe(1, 0, seq);
        }
        // 1 again is a duplicate; 4 after 5 on the same partition is a reorder.
        assert_eq!((s.duplicated, s.reordered), (1, 1));
        // Interleaving across partitions is not a reorder.
        s.observe(1, 1, 3);
        assert_eq!(s.reordered, 1);
        assert_eq!(s.gaps(), 0);
        // A reader that started late sees no gap below its first record.
        let mut late = Seen::default();
        [100, 101, 103].iter().for_each(|&q| late.observe(2, 0, q));
        assert_eq!(late.gaps(), 1);
    }

    #[test]
    fn merge_counts_records_seen_by_two_consumers_as_duplicates() {
        let mut a = Seen::default();
        let mut b = Seen::default();
        (0..10).for_each(|i| a.observe(1, 0, i));
        (8..20).for_each(|i| b.observe(1, 1, i));
        let m = Seen::merge(&[a, b]);
        assert_eq!(m.duplicated, 2);
        assert_eq!(m.distinct(), 20);
    }

    #[test]
    fn lost_is_acknowledged_but_never_seen() {
        let mut acked = HashMap::new();
        let mut set = SeqSet::default();
        (0..100).for_each(|i| {
            set.insert(i);
        });
        acked.insert(7, set);
        let mut s = Seen::default();
        (0..100)
            .filter(|i| i % 10 != 3)
            .for_each(|i| s.observe(7, 0, i));
        assert_eq!(s.lost_from(&acked), 10);
        assert_eq!(s.gaps(), 10);
    }
}
