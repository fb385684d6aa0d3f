//! Durability after a run with faults: a fresh consumer outside any group reads every partition
//! back from the earliest offset to the end offsets, and what it finds is compared with what
//! the producers had acknowledged and what failed, per producer (the verification sets of
//! `verify`): `acked_lost` (acknowledged, not in the log), `failed_but_present` (reported
//! failed, stored anyway: ambiguous, normal), `duplicated` (one record at two offsets) and
//! `reordered` (within a partition). Kafka's `validate_delivery` and Jepsen's definitions.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::load::client::client_config;
use crate::load::stamp::Stamp;
use crate::measure::verify::{Seen, SeqSet};
use crate::plan::props::Props;

/// The read-back's verdict.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Durability {
    pub acked: u64,
    pub failed: u64,
    /// Records of this run found in the log (distinct).
    pub read: u64,
    pub acked_lost: u64,
    pub failed_but_present: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// A fault said loss was expected: `acked_lost` is reported, not failed.
    pub loss_expected: bool,
    /// The read reached every partition's end offset.
    pub complete: bool,
    /// Offsets before the log start of the partitions (summed): records the log no longer
    /// holds (retention, or another run's records). Acknowledged records among them count as
    /// lost, so a non-zero value says to read `acked_lost` with care.
    pub log_start_offsets: u64,
}

/// Where to read and what counts.
pub struct ReadBack<'a> {
    pub bootstrap: &'a str,
    /// Connection and security properties.
    pub props: &'a Props,
    pub topic: &'a str,
    pub run_id: u32,
    /// Give up when nothing arrived for this long.
    pub idle: Duration,
}

impl ReadBack<'_> {
    /// Reads the topic back and compares it with the acknowledged and failed sets.
    pub fn run(
        &self,
        acked: &HashMap<u32, SeqSet>,
        failed: &HashMap<u32, SeqSet>,
        loss_expected: bool,
    ) -> Result<Durability> {
        let (seen, complete, log_start) = self.read()?;
        let mut d = compare(&seen, acked, failed, loss_expected, complete);
        d.log_start_offsets = log_start;
        Ok(d)
    }

    /// Every record of this run in the topic, whether the read reached the end offsets, and
    /// the partitions' log start offsets summed.
    fn read(&self) -> Result<(Seen, bool, u64)> {
        let mut cfg = client_config(self.bootstrap, self.props);
        cfg.set("group.id", format!("kbench-readback-{:08x}", self.run_id))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("client.id", "kbench-readback");
        let consumer: BaseConsumer = cfg
            .create()
            .context("read-back: cannot create the consumer")?;
        let timeout = Duration::from_secs(10);
        let md = consumer
            .fetch_metadata(Some(self.topic), timeout)
            .context("read-back: no metadata for the topic")?;
        let partitions: Vec<i32> = md
            .topics()
            .iter()
            .find(|t| t.name() == self.topic)
            .map(|t| t.partitions().iter().map(|p| p.id()).collect())
            .unwrap_or_default();
        let mut ends = HashMap::new();
        let mut log_start = 0u64;
        let mut tpl = TopicPartitionList::new();
        for &p in &partitions {
            let (low, high) = consumer
                .fetch_watermarks(self.topic, p, timeout)
                .with_context(|| format!("read-back: no end offset for partition {p}"))?;
            ends.insert(p, high);
            log_start += low.max(0) as u64;
            tpl.add_partition_offset(self.topic, p, Offset::Beginning)?;
        }
        consumer
            .assign(&tpl)
            .context("read-back: cannot assign the partitions")?;
        let mut seen = Seen::default();
        let mut next: HashMap<i32, i64> = partitions.iter().map(|&p| (p, 0)).collect();
        let mut last_progress = Instant::now();
        let done = |next: &HashMap<i32, i64>| {
            ends.iter()
                .all(|(p, end)| next.get(p).is_some_and(|n| n >= end))
        };
        while !done(&next) && last_progress.elapsed() < self.idle {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    last_progress = Instant::now();
                    next.insert(m.partition(), m.offset() + 1);
                    let stamp = m
                        .payload()
                        .and_then(Stamp::read)
                        .filter(|s| s.run_id == self.run_id && !s.aborting);
                    if let Some(s) = stamp {
                        seen.observe(s.producer_id, m.partition(), s.seq);
                    }
                }
                Some(Err(e)) => tracing::warn!("read-back: {e}"),
                None => {}
            }
        }
        let complete = done(&next);
        Ok((seen, complete, log_start))
    }
}

/// The read-back's figures from what was found and what the producers were told.
pub fn compare(
    seen: &Seen,
    acked: &HashMap<u32, SeqSet>,
    failed: &HashMap<u32, SeqSet>,
    loss_expected: bool,
    complete: bool,
) -> Durability {
    Durability {
        acked: acked.values().map(SeqSet::len).sum(),
        failed: failed.values().map(SeqSet::len).sum(),
        read: seen.distinct(),
        acked_lost: seen.lost_from(acked),
        failed_but_present: seen.present_of(failed),
        duplicated: seen.duplicated,
        reordered: seen.reordered,
        loss_expected,
        complete,
        log_start_offsets: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_the_log_with_what_was_acknowledged_and_failed() {
        let set = |r: std::ops::Range<u64>| {
            let mut s = SeqSet::default();
            r.for_each(|i| {
                s.insert(i);
            });
            s
        };
        let acked = HashMap::from([(0, set(0..90))]);
        let failed = HashMap::from([(0, set(90..100))]);
        let mut seen = Seen::default();
        // 0..85 and two of the failed ones are in the log; 10 is there twice.
        (0..85)
            .chain([92, 93, 10])
            .for_each(|i| seen.observe(0, 0, i));
        let d = compare(&seen, &acked, &failed, false, true);
        assert_eq!(
            (
                d.acked,
                d.failed,
                d.read,
                d.acked_lost,
                d.failed_but_present,
                d.duplicated
            ),
            (90, 10, 87, 5, 2, 1)
        );
    }
}
