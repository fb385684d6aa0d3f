//! Transaction state of one partition: the transactions still open in it (producer id → the
//! offset of its first batch) and the index of aborted transactions, from which the last
//! stable offset and the Fetch response's `AbortedTransactions` list come.
//!
//! Kafka keeps the same two things: the ongoing transactions of `ProducerStateManager` (whose
//! smallest first offset is the "first unstable offset") and the `TransactionIndex` of each
//! segment (`storage/.../TransactionIndex.java`, entries `(producerId, firstOffset, lastOffset)`
//! where lastOffset is the ABORT marker's offset).
//!
//! Owns: that bookkeeping, fed with batch headers as they are appended or found at recovery.
//! Must not: read or write files (the log rebuilds it by scanning its segments at open).

use std::collections::HashMap;

/// One aborted transaction of this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// Offset of the ABORT marker.
    pub last_offset: i64,
}

#[derive(Debug, Default)]
pub struct TxnIndex {
    open: HashMap<i64, i64>,
    /// In marker order, so sorted by `last_offset`.
    aborted: Vec<AbortedTxn>,
}

impl TxnIndex {
    /// A transactional data batch of `producer_id` at `base_offset`: the first one opens the
    /// producer's transaction in this partition.
    pub fn on_data(&mut self, producer_id: i64, base_offset: i64) {
        self.open.entry(producer_id).or_insert(base_offset);
    }

    /// An end marker of `producer_id` at `marker_offset` closes its open transaction; an
    /// ABORT enters the aborted index. A marker without an open transaction (a partition that
    /// was added to the transaction but got no data) changes nothing, as in Kafka.
    pub fn on_marker(&mut self, producer_id: i64, marker_offset: i64, commit: bool) {
        let Some(first_offset) = self.open.remove(&producer_id) else {
            return;
        };
        if !commit {
            self.aborted.push(AbortedTxn {
                producer_id,
                first_offset,
                last_offset: marker_offset,
            });
        }
    }

    /// True while `producer_id` has data of an undecided transaction here.
    pub fn is_open(&self, producer_id: i64) -> bool {
        self.open.contains_key(&producer_id)
    }

    /// The first offset of the earliest open transaction (Kafka's first unstable offset).
    pub fn first_unstable(&self) -> Option<i64> {
        self.open.values().copied().min()
    }

    /// Aborted transactions that overlap `[fetch_offset, upper)`: `lastOffset >= fetchOffset &&
    /// firstOffset < upperBoundOffset`, Kafka's `TransactionIndex.collectAbortedTxns`.
    pub fn aborted_overlapping(&self, fetch_offset: i64, upper: i64) -> Vec<AbortedTxn> {
        let from = self
            .aborted
            .partition_point(|a| a.last_offset < fetch_offset);
        self.aborted[from..]
            .iter()
            .filter(|a| a.first_offset < upper)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions wholly below the log start (their segments were deleted).
    pub fn forget_before(&mut self, log_start: i64) {
        self.aborted.retain(|a| a.last_offset >= log_start);
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_open_transaction_holds_the_stable_offset_and_aborts_are_indexed() {
        let mut ix = TxnIndex::default();
        assert_eq!(ix.first_unstable(), None);
        ix.on_data(7, 10);
        ix.on_data(8, 12);
        ix.on_data(7, 14); // a later batch of the same transaction
        assert_eq!(ix.first_unstable(), Some(10));
        ix.on_marker(7, 16, false);
        assert_eq!(ix.first_unstable(), Some(12));
        assert!(!ix.is_open(7) && ix.is_open(8));
        ix.on_marker(8, 17, true);
        assert_eq!(ix.first_unstable(), None);
        let aborted = AbortedTxn {
            producer_id: 7,
            first_offset: 10,
            last_offset: 16,
        };
        assert_eq!(ix.aborted_overlapping(0, 100), vec![aborted]);
        assert_eq!(ix.aborted_overlapping(16, 100), vec![aborted]);
        assert!(ix.aborted_overlapping(17, 100).is_empty());
        assert!(ix.aborted_overlapping(0, 10).is_empty());
        // A marker for a partition without data of that producer is a no-op.
        ix.on_marker(9, 18, false);
        assert_eq!(ix.aborted_overlapping(0, 100).len(), 1);
        ix.forget_before(17);
        assert!(ix.aborted_overlapping(0, 100).is_empty());
    }
}
