//! What a transactional producer's transactions add up to, per phase: how many ended in a
//! commit or an abort (and how many commits failed), the records they held, and three
//! histograms: the `commit_transaction` call, the `abort_transaction` call, and the pause the
//! sender took because a transaction was still ending when its next record fell due.
//!
//! Recorded once per transaction (never per record) by the producer's transaction thread and
//! sending thread, merged by the reporter like the other stats. Latencies in microseconds.

use hdrhistogram::Histogram;

use crate::measure::recorder::new_histogram;

#[derive(Debug, Clone)]
pub struct TxnStats {
    /// Transactions committed.
    pub committed: u64,
    /// Transactions aborted on purpose (`--transaction-abort-rate`).
    pub aborted: u64,
    /// Transactions whose commit failed (then aborted); their records are not committed.
    pub failed: u64,
    /// Records in the transactions that ended (committed, aborted or failed).
    pub records: u64,
    /// Records in the aborted and failed transactions.
    pub aborted_records: u64,
    /// The `commit_transaction` call (it flushes, then sends EndTxn and waits for it).
    pub commit_latency_us: Histogram<u64>,
    /// The `abort_transaction` call.
    pub abort_latency_us: Histogram<u64>,
    /// Per transaction: how long the sender waited, when its next record was due, for the
    /// previous transaction to end and the next to begin (0 when it had ended in time).
    pub commit_pause_us: Histogram<u64>,
}

impl Default for TxnStats {
    fn default() -> Self {
        TxnStats {
            committed: 0,
            aborted: 0,
            failed: 0,
            records: 0,
            aborted_records: 0,
            commit_latency_us: new_histogram(),
            abort_latency_us: new_histogram(),
            commit_pause_us: new_histogram(),
        }
    }
}

impl TxnStats {
    pub fn add(&mut self, o: &TxnStats) {
        self.committed += o.committed;
        self.aborted += o.aborted;
        self.failed += o.failed;
        self.records += o.records;
        self.aborted_records += o.aborted_records;
        // Same bounds everywhere, so `add` cannot fail.
        let _ = self.commit_latency_us.add(&o.commit_latency_us);
        let _ = self.abort_latency_us.add(&o.abort_latency_us);
        let _ = self.commit_pause_us.add(&o.commit_pause_us);
    }

    pub fn reset(&mut self) {
        (self.committed, self.aborted, self.failed) = (0, 0, 0);
        (self.records, self.aborted_records) = (0, 0);
        self.commit_latency_us.reset();
        self.abort_latency_us.reset();
        self.commit_pause_us.reset();
    }

    /// Transactions that ended, however.
    pub fn ended(&self) -> u64 {
        self.committed + self.aborted + self.failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_reset_keep_counts_and_histograms_together() {
        let mut a = TxnStats {
            committed: 2,
            records: 20,
            ..Default::default()
        };
        a.commit_latency_us.saturating_record(1500);
        let mut b = TxnStats::default();
        b.add(&a);
        b.add(&a);
        assert_eq!(
            (b.committed, b.records, b.commit_latency_us.len()),
            (4, 40, 2)
        );
        assert_eq!(b.ended(), 4);
        b.reset();
        assert_eq!((b.committed, b.commit_latency_us.len()), (0, 0));
    }
}
