//! What a consumer does with the records it received together: per record, the stamp (its
//! phase, its own end-to-end latency, verification) and its bytes; per batch, one lock of the
//! stats and one receive time.
//!
//! The receive time is read once the batch is in hand, so it is no earlier than the moment the
//! application got any of its records; each record's latency is that time minus its own stamp.
//! Nothing here touches librdkafka or the shared counters (the consumer worker does that once
//! per batch), so the handling of a batch can be tested on its own.

use crate::load::stamp::Stamp;
use crate::measure::recorder::{ConsumeStats, PhaseStats};
use crate::measure::verify::Seen;

/// How the stamps of this run are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerPhases {
    /// The producers are part of this run (`e2e`): the stamp's phase index is ours.
    SameRun,
    /// Standalone `consume`: phase 0 = the producers' warm-up, phase 1 = everything else.
    WarmupAndMeasured,
}

/// One received record.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    pub value: &'a [u8],
    pub key_len: usize,
    pub partition: i32,
}

/// Reads the stamps of one consumer's records.
#[derive(Debug, Clone, Copy)]
pub struct Receiver {
    pub phases: ConsumerPhases,
    /// Only records of this run count (`e2e`); `None` accepts any kbench stamp.
    pub run_filter: Option<u32>,
    /// End-to-end latency from the intended send time (open model) or the send call.
    pub from_intended: bool,
}

impl Receiver {
    /// Records a batch of records received at `now_ns` (read after the batch was taken) under
    /// one lock of `stats`, and the errors that came with it, counted in the last phase.
    /// Returns how many records there were.
    pub fn record<'a>(
        &self,
        records: impl IntoIterator<Item = Received<'a>>,
        errors: u64,
        now_ns: u64,
        stats: &PhaseStats<ConsumeStats>,
        seen: &mut Seen,
    ) -> u64 {
        let mut guard = stats.lock();
        let mut n = 0;
        for r in records {
            n += 1;
            let stamp =
                Stamp::read(r.value).filter(|s| self.run_filter.is_none_or(|id| id == s.run_id));
            // Unstamped records count in the last (measured) phase.
            let phase = match (&stamp, self.phases) {
                (Some(s), ConsumerPhases::SameRun) => s.phase as usize,
                (Some(s), ConsumerPhases::WarmupAndMeasured) => usize::from(!s.excluded),
                (None, _) => usize::MAX,
            };
            let st = guard.phase(phase);
            st.records += 1;
            st.bytes += (r.value.len() + r.key_len) as u64;
            match stamp {
                Some(s) => {
                    let origin = if self.from_intended {
                        s.intended_ns
                    } else {
                        s.sent_ns
                    };
                    st.e2e_latency_us
                        .saturating_record(now_ns.saturating_sub(origin) / 1000);
                    // Lost, duplicated and reordered are about committed records: one of an
                    // aborted transaction is counted apart (visible only to read_uncommitted).
                    if s.aborting {
                        st.aborted_seen += 1;
                    } else {
                        seen.observe(s.producer_id, r.partition, s.seq);
                    }
                }
                None => st.unstamped += 1,
            }
        }
        if errors > 0 {
            guard.phase(usize::MAX).errors += errors;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::stamp::STAMP_LEN;

    fn stamped(seq: u64, intended_ns: u64) -> Vec<u8> {
        let mut v = vec![0u8; STAMP_LEN + 10];
        Stamp {
            run_id: 1,
            producer_id: 3,
            seq,
            intended_ns,
            sent_ns: intended_ns + 5_000,
            phase: 0,
            excluded: false,
            aborting: false,
        }
        .write(&mut v);
        v
    }

    fn receiver() -> Receiver {
        Receiver {
            phases: ConsumerPhases::WarmupAndMeasured,
            run_filter: None,
            from_intended: true,
        }
    }

    #[test]
    fn each_record_of_a_batch_gets_its_own_latency() {
        let stats: PhaseStats<ConsumeStats> = PhaseStats::new(2);
        let now = 10_000_000_000u64;
        // Sent 1, 2, ... 50 ms before the one receive time of the batch.
        let values: Vec<Vec<u8>> = (0..50)
            .map(|i| stamped(i, now - (i + 1) * 1_000_000))
            .collect();
        let batch = values.iter().map(|v| Received {
            value: v,
            key_len: 4,
            partition: 0,
        });
        let mut seen = Seen::default();
        assert_eq!(receiver().record(batch, 0, now, &stats, &mut seen), 50);
        let mut spare = Vec::new();
        stats.swap(&mut spare);
        let h = &spare[1].e2e_latency_us;
        assert_eq!(h.len(), 50);
        // 50 distinct values, 1 ms apart: not one latency for the batch.
        assert_eq!(h.iter_recorded().count(), 50);
        assert!(h.min() >= 999 && h.min() <= 1_001, "{}", h.min());
        assert!(h.max() >= 49_950 && h.max() <= 50_050, "{}", h.max());
        assert_eq!(spare[1].records, 50);
        assert_eq!(spare[1].bytes, 50 * (STAMP_LEN as u64 + 10 + 4));
    }

    #[test]
    fn a_gap_a_duplicate_and_a_reorder_inside_one_batch_are_all_counted() {
        let stats: PhaseStats<ConsumeStats> = PhaseStats::new(2);
        let now = 5_000_000_000u64;
        // 3 is missing, 4 comes twice, 5 comes after 6 on the same partition.
        let values: Vec<Vec<u8>> = [0, 1, 2, 4, 4, 6, 5]
            .iter()
            .map(|&s| stamped(s, now - 1_000_000))
            .collect();
        let batch = values.iter().map(|v| Received {
            value: v,
            key_len: 0,
            partition: 2,
        });
        let mut seen = Seen::default();
        receiver().record(batch, 0, now, &stats, &mut seen);
        assert_eq!(seen.gaps(), 1);
        assert_eq!(seen.duplicated, 1);
        assert_eq!(seen.reordered, 1);
        assert_eq!(seen.distinct(), 6);
        let mut spare = Vec::new();
        stats.swap(&mut spare);
        assert_eq!(
            spare[1].e2e_latency_us.len(),
            7,
            "every record, duplicates too"
        );
    }

    #[test]
    fn unstamped_records_other_runs_and_errors_count_in_the_last_phase() {
        let stats: PhaseStats<ConsumeStats> = PhaseStats::new(3);
        let now = 5_000_000_000u64;
        let mut other_run = stamped(0, now - 1_000);
        other_run[4] = 9; // run id 9
        let plain = b"not stamped".to_vec();
        let r = Receiver {
            phases: ConsumerPhases::SameRun,
            run_filter: Some(1),
            from_intended: false,
        };
        let mine = stamped(1, now - 2_000_000);
        let batch = [&other_run, &plain, &mine].map(|v| Received {
            value: v,
            key_len: 0,
            partition: 0,
        });
        let mut seen = Seen::default();
        assert_eq!(r.record(batch, 2, now, &stats, &mut seen), 3);
        let mut spare = Vec::new();
        stats.swap(&mut spare);
        assert_eq!(spare[2].unstamped, 2);
        assert_eq!(spare[2].errors, 2);
        assert_eq!(spare[0].records, 1);
        // From the send call (5 µs after the intended time) in the closed model.
        assert_eq!(spare[0].e2e_latency_us.max(), 1_995);
        assert_eq!(seen.distinct(), 1);
    }
}
