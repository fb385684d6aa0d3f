//! The leader-epoch cache of one partition: for each leader epoch, the first offset written
//! in it (Kafka's `LeaderEpochFileCache`), persisted as `leader-epoch-checkpoint` in Kafka's
//! text format (version `0`, the entry count, then `epoch start_offset` lines).
//!
//! Owns: answering "where did epoch E end?" (`end_offset_for`, the basis of follower
//! truncation, Fetch's DivergingEpoch and OffsetForLeaderEpoch) and the checkpoint file.
//! Must not: read segments; the partition log feeds it batch epochs and truncations.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

#[derive(Debug)]
pub struct EpochCache {
    path: PathBuf,
    /// (epoch, start offset), both strictly increasing.
    entries: Vec<(i32, i64)>,
}

impl EpochCache {
    /// Loads the checkpoint in `dir`; an absent or unreadable one gives an empty cache (the
    /// log then rebuilds it from batch headers while it recovers).
    pub fn open(dir: &Path) -> Self {
        let path = dir.join(CHECKPOINT_FILE);
        let entries = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| parse(&text))
            .unwrap_or_default();
        EpochCache { path, entries }
    }

    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.0)
    }

    /// Notes that `epoch` starts at `start_offset` (a batch of a new epoch, or a new leader
    /// at its log end). Older or equal epochs change nothing. Returns whether it changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || self.latest_epoch().is_some_and(|l| l >= epoch) {
            return false;
        }
        // Kafka's rule: an entry starting at or after the new one cannot be right any more.
        self.entries.retain(|&(_, o)| o < start_offset);
        self.entries.push((epoch, start_offset));
        true
    }

    /// Drops epochs starting at or after `end_offset` (the log was truncated there).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|&(_, o)| o < end_offset);
        before != self.entries.len()
    }

    /// The log now starts at `start`: earlier epochs go, the one covering `start` moves to it.
    pub fn truncate_from_start(&mut self, start: i64) -> bool {
        let covering = self.entries.iter().rposition(|&(_, o)| o <= start);
        match covering {
            Some(i) if i > 0 || self.entries[0].1 < start => {
                self.entries.drain(..i);
                self.entries[0].1 = start;
                true
            }
            _ => false,
        }
    }

    /// The epoch `offset` was written in (the newest entry starting at or before it).
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.entries
            .iter()
            .rev()
            .find(|&&(_, o)| o <= offset)
            .map(|e| e.0)
    }

    /// Kafka's `endOffsetFor(requestedEpoch, logEndOffset)`: the largest epoch ≤ `epoch` and
    /// where it ended (the start of the next epoch, or the log end for the latest one).
    /// `None` is Kafka's (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET).
    pub fn end_offset_for(&self, epoch: i32, log_end: i64) -> Option<(i32, i64)> {
        if epoch < 0 {
            return None;
        }
        if self.latest_epoch() == Some(epoch) {
            return Some((epoch, log_end));
        }
        let higher = self.entries.iter().find(|&&(e, _)| e > epoch)?;
        match self.entries.iter().rev().find(|&&(e, _)| e <= epoch) {
            // Smaller than every known epoch: it ended where the first known one starts.
            None => Some((epoch, higher.1)),
            Some(&(floor, _)) => Some((floor, higher.1)),
        }
    }

    /// Writes the checkpoint (a temp file renamed over the old one, fsynced: it changes only
    /// when an epoch starts or a truncation happens).
    pub fn persist(&self) -> io::Result<()> {
        let mut text = format!("0\n{}\n", self.entries.len());
        for (e, o) in &self.entries {
            text.push_str(&format!("{e} {o}\n"));
        }
        let tmp = self.path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_data()?;
        std::fs::rename(&tmp, &self.path)
    }
}

fn parse(text: &str) -> Option<Vec<(i32, i64)>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut entries = Vec::with_capacity(count);
    for line in lines.take(count) {
        let (e, o) = line.trim().split_once(' ')?;
        entries.push((e.parse().ok()?, o.trim().parse().ok()?));
    }
    (entries.len() == count).then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> EpochCache {
        let mut c = EpochCache {
            path: PathBuf::new(),
            entries: Vec::new(),
        };
        for &(e, o) in entries {
            c.assign(e, o);
        }
        c
    }

    #[test]
    fn end_offsets_follow_kafkas_end_offset_for() {
        let c = cache(&[(1, 0), (3, 10), (4, 25)]);
        assert_eq!(c.end_offset_for(4, 40), Some((4, 40)));
        assert_eq!(c.end_offset_for(3, 40), Some((3, 25)));
        // Epoch 2 was never seen here: the floor epoch 1, ended where 3 starts.
        assert_eq!(c.end_offset_for(2, 40), Some((1, 10)));
        assert_eq!(c.end_offset_for(0, 40), Some((0, 0)));
        assert_eq!(c.end_offset_for(5, 40), None);
        assert_eq!(c.end_offset_for(-1, 40), None);
    }

    #[test]
    fn truncation_drops_later_epochs_and_retention_moves_the_first() {
        let mut c = cache(&[(1, 0), (3, 10), (4, 25)]);
        assert!(c.truncate_from_end(25));
        assert_eq!(c.entries(), &[(1, 0), (3, 10)]);
        assert!(c.truncate_from_start(12));
        assert_eq!(c.entries(), &[(3, 12)]);
        assert!(!c.assign(2, 30), "older epochs are ignored");
        assert!(c.assign(5, 30));
    }

    #[test]
    fn the_checkpoint_round_trips_in_kafkas_format() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EpochCache::open(dir.path());
        c.assign(0, 0);
        c.assign(2, 7);
        c.persist().unwrap();
        let text = std::fs::read_to_string(dir.path().join(CHECKPOINT_FILE)).unwrap();
        assert_eq!(text, "0\n2\n0 0\n2 7\n");
        assert_eq!(EpochCache::open(dir.path()).entries(), &[(0, 0), (2, 7)]);
    }
}
