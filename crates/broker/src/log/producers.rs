//! Idempotent-producer state of one partition: per producer id, its epoch and the last five
//! batches (sequence range → offsets), as Kafka's `ProducerStateEntry` keeps them.
//!
//! Owns: the sequence checks that make retries of idempotent producers neither duplicate nor
//! reorder records. Must not: write anything; it is rebuilt from batch headers at startup.

use std::collections::{HashMap, VecDeque};

use crate::protocol::batch::BatchHeader;

/// Kafka's `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`.
const BATCHES_TO_RETAIN: usize = 5;

#[derive(Debug, Clone, Copy)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    first_offset: i64,
}

#[derive(Debug, Default)]
struct Entry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
}

/// The verdict of the sequence check for an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCheck {
    /// Append it.
    Append,
    /// Exact retry of a batch already in the log: answer success with its original offset.
    Duplicate(i64),
    /// Refuse with this Kafka error code.
    Error(i16),
}

pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
pub const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
pub const INVALID_PRODUCER_EPOCH: i16 = 47;

#[derive(Debug, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, Entry>,
}

fn in_sequence(last_seq: i32, next_first: i32) -> bool {
    next_first == last_seq.wrapping_add(1) || (last_seq == i32::MAX && next_first == 0)
}

impl ProducerStates {
    /// Checks a batch before it is appended (`ProducerAppendInfo.checkSequence` semantics).
    pub fn check(&self, h: &BatchHeader) -> SeqCheck {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return SeqCheck::Append; // not idempotent
        }
        let Some(e) = self.producers.get(&h.producer_id) else {
            // Unknown producer (new, or its state aged out): Kafka accepts any sequence.
            return SeqCheck::Append;
        };
        if h.producer_epoch < e.epoch {
            return SeqCheck::Error(INVALID_PRODUCER_EPOCH);
        }
        if h.producer_epoch > e.epoch {
            // A bumped epoch restarts the sequence at 0.
            return if h.base_sequence == 0 {
                SeqCheck::Append
            } else {
                SeqCheck::Error(OUT_OF_ORDER_SEQUENCE_NUMBER)
            };
        }
        let last = h.last_sequence();
        if let Some(b) = e
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last)
        {
            return SeqCheck::Duplicate(b.first_offset);
        }
        let Some(newest) = e.batches.back() else {
            return SeqCheck::Append;
        };
        if in_sequence(newest.last_seq, h.base_sequence) {
            SeqCheck::Append
        } else if last <= newest.last_seq && h.base_sequence <= newest.first_seq {
            // Behind everything we remember but not an exact cached batch: an old retry.
            SeqCheck::Error(DUPLICATE_SEQUENCE_NUMBER)
        } else {
            SeqCheck::Error(OUT_OF_ORDER_SEQUENCE_NUMBER)
        }
    }

    /// An end-transaction marker at `epoch` was written for `producer_id`: batches of older
    /// epochs are refused from now on (the coordinator bumps the epoch when it fences a
    /// producer or aborts its timed-out transaction).
    pub fn fence(&mut self, producer_id: i64, epoch: i16) {
        let e = self.producers.entry(producer_id).or_default();
        if epoch > e.epoch {
            e.epoch = epoch;
            e.batches.clear();
        }
    }

    /// Records a batch that was appended (or found in the log at recovery).
    pub fn record(&mut self, h: &BatchHeader) {
        if h.producer_id < 0 || h.base_sequence < 0 {
            return;
        }
        let e = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != e.epoch {
            e.epoch = h.producer_epoch;
            e.batches.clear();
        }
        e.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            first_offset: h.base_offset,
        });
        while e.batches.len() > BATCHES_TO_RETAIN {
            e.batches.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::batch::build_test_batch;

    fn header(pid: i64, epoch: i16, seq: i32, n: usize, base: i64) -> BatchHeader {
        let vals: Vec<&[u8]> = (0..n).map(|_| &b"v"[..]).collect();
        let mut h = BatchHeader::parse(&build_test_batch(&vals, Some((pid, epoch, seq)))).unwrap();
        h.base_offset = base;
        h
    }

    #[test]
    fn retries_are_duplicates_and_gaps_are_out_of_order() {
        let mut s = ProducerStates::default();
        let a = header(7, 0, 0, 3, 0);
        assert_eq!(s.check(&a), SeqCheck::Append);
        s.record(&a);
        assert_eq!(s.check(&a), SeqCheck::Duplicate(0));
        let b = header(7, 0, 3, 2, 3);
        assert_eq!(s.check(&b), SeqCheck::Append);
        s.record(&b);
        assert_eq!(
            s.check(&header(7, 0, 9, 1, 0)),
            SeqCheck::Error(OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        assert_eq!(
            s.check(&header(7, 0, 1, 1, 0)),
            SeqCheck::Error(DUPLICATE_SEQUENCE_NUMBER)
        );
        assert_eq!(s.check(&header(7, 1, 0, 1, 0)), SeqCheck::Append);
        assert_eq!(
            s.check(&header(7, 1, 4, 1, 0)),
            SeqCheck::Error(OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        s.record(&header(7, 1, 0, 1, 5));
        assert_eq!(
            s.check(&header(7, 0, 5, 1, 0)),
            SeqCheck::Error(INVALID_PRODUCER_EPOCH)
        );
    }
}
