//! The log of one partition: an ordered set of segments, offset assignment, reads for Fetch,
//! time lookups for ListOffsets, retention, flushing and crash recovery at open. In a cluster
//! also: the leader epoch stamped on what a leader appends, the leader-epoch cache, appends of
//! a leader's batches as they are (followers) and truncation to a common point.
//!
//! Owns: the partition directory. Must not: block on anything but its own files; callers hold
//! it behind a mutex only for the duration of one append or one lookup.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::log::epochs::EpochCache;
use crate::log::producers::{ProducerStates, SeqCheck};
use crate::log::segment::Segment;
use crate::log::txn_index::{AbortedTxn, TxnIndex};
use crate::log::{FlushPolicy, LogConfig};
use crate::protocol::batch::{self, BatchHeader, Marker};

/// Kafka's NOT_LEADER_OR_FOLLOWER, for a client batch sent to a follower's log.
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;

/// A byte range of a segment file to send to a consumer.
#[derive(Debug, Clone)]
pub struct FileSlice {
    pub file: Arc<File>,
    pub pos: u64,
    pub len: usize,
}

/// What `read` found.
#[derive(Debug)]
pub enum ReadResult {
    Data(FileSlice),
    /// Fetch offset == log end: nothing yet.
    Empty,
    OutOfRange,
}

/// Result of one append of a client batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Appended at this base offset.
    At(i64),
    /// An idempotent retry: already in the log at this base offset.
    Duplicate(i64),
    /// Refused with a Kafka error code.
    Refused(i16),
}

#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    segments: BTreeMap<i64, Segment>,
    cfg: LogConfig,
    next_offset: i64,
    unflushed_messages: u64,
    producers: ProducerStates,
    txns: TxnIndex,
    epochs: EpochCache,
    /// The leader epoch stamped on appends while this node leads the partition; `None` keeps
    /// a batch's own (single node: what the client sent; follower: what the leader wrote).
    stamp_epoch: Option<i32>,
    /// A follower's log takes only its leader's batches (`append_replicated`): a client batch
    /// or a marker written here would put a batch at an offset where the leader has another.
    follower: bool,
    /// Bytes cut off torn tails at open (reported by recovery tests and logs).
    pub recovered_truncated_bytes: u64,
}

/// The per-batch state rebuilt from the log: idempotence, transactions, leader epochs.
struct Tracked<'a> {
    producers: &'a mut ProducerStates,
    txns: &'a mut TxnIndex,
    epochs: &'a mut EpochCache,
}

/// Feeds one batch (appended, or found at recovery) to the producer, transaction and epoch
/// state; true if the epoch cache changed (a batch of a new epoch).
fn track(t: Tracked<'_>, h: &BatchHeader, m: Option<Marker>) -> bool {
    let (producers, txns) = (t.producers, t.txns);
    let new_epoch = t.epochs.assign(h.partition_leader_epoch, h.base_offset);
    track_txn(producers, txns, h, m);
    new_epoch
}

fn track_txn(
    producers: &mut ProducerStates,
    txns: &mut TxnIndex,
    h: &BatchHeader,
    m: Option<Marker>,
) {
    producers.record(h);
    if !h.is_transactional() {
        return;
    }
    if h.is_control() {
        // A marker carries the transaction's (possibly bumped) epoch: older ones are fenced.
        producers.fence(h.producer_id, h.producer_epoch);
        if let Some(m) = m {
            txns.on_marker(h.producer_id, h.base_offset, m == Marker::Commit);
        }
    } else {
        txns.on_data(h.producer_id, h.base_offset);
    }
}

impl PartitionLog {
    /// Opens (recovering) or creates the log in `dir`.
    pub fn open(dir: &Path, cfg: LogConfig) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut bases = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(".log") {
                if let Ok(base) = stem.parse::<i64>() {
                    bases.push(base);
                }
            }
        }
        bases.sort_unstable();
        let epochs = EpochCache::open(dir);
        let had_checkpoint = dir.join(super::epochs::CHECKPOINT_FILE).exists();
        let mut log = PartitionLog {
            dir: dir.to_path_buf(),
            segments: BTreeMap::new(),
            cfg,
            next_offset: 0,
            unflushed_messages: 0,
            producers: ProducerStates::default(),
            txns: TxnIndex::default(),
            epochs,
            stamp_epoch: None,
            follower: false,
            recovered_truncated_bytes: 0,
        };
        let last = bases.last().copied();
        let mut epochs_changed = false;
        for base in bases {
            let path = dir.join(super::segment::file_name(base));
            let verify = Some(base) == last;
            let tracked = &mut epochs_changed;
            let (producers, txns, epochs) = (&mut log.producers, &mut log.txns, &mut log.epochs);
            let (seg, truncated) = Segment::open(
                &path,
                base,
                log.cfg.index_interval_bytes,
                verify,
                &mut |h, m| {
                    let t = Tracked {
                        producers: &mut *producers,
                        txns: &mut *txns,
                        epochs: &mut *epochs,
                    };
                    *tracked |= track(t, h, m);
                },
            )?;
            log.recovered_truncated_bytes += truncated;
            log.next_offset = seg.next_offset.max(log.next_offset);
            log.segments.insert(base, seg);
        }
        if log.segments.is_empty() {
            let seg = Segment::create(dir, 0, log.cfg.index_interval_bytes)?;
            log.segments.insert(0, seg);
        }
        let log_start = log.log_start_offset();
        log.txns.forget_before(log_start);
        // The checkpoint may name epochs past a torn tail, or miss some batches' (a crash
        // between the append and its write): the log's own headers decide.
        epochs_changed |= log.epochs.truncate_from_end(log.next_offset);
        epochs_changed |= log.epochs.truncate_from_start(log_start);
        if epochs_changed || (!had_checkpoint && !log.epochs.entries().is_empty()) {
            log.epochs.persist()?;
        }
        Ok(log)
    }

    /// This node now leads the partition at `epoch`: the epoch starts at the log end (Kafka's
    /// `makeLeader`), and everything appended from now on is stamped with it.
    pub fn become_leader(&mut self, epoch: i32) -> io::Result<()> {
        self.stamp_epoch = Some(epoch);
        self.follower = false;
        if self.epochs.assign(epoch, self.next_offset) {
            self.epochs.persist()?;
        }
        Ok(())
    }

    /// Whether this log follows a leader (takes only `append_replicated` batches).
    pub fn is_follower(&self) -> bool {
        self.follower
    }

    /// This node follows the partition: only the leader's batches are appended from now on.
    pub fn become_follower(&mut self) {
        self.stamp_epoch = None;
        self.follower = true;
    }

    /// The largest epoch ≤ `epoch` known here and the offset where it ended (Kafka's
    /// `UnifiedLog.endOffsetForEpoch`); `None`: undefined (no such epoch or a newer one).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.epochs.end_offset_for(epoch, self.next_offset)
    }

    /// The epoch of the newest entry of the epoch cache (a follower's `LastFetchedEpoch`).
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// The leader epoch `offset` was written in, if known.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.epochs.epoch_for_offset(offset)
    }

    /// (epoch, start offset) pairs of the epoch cache, oldest first.
    pub fn epoch_entries(&self) -> &[(i32, i64)] {
        self.epochs.entries()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.next_offset
    }

    /// Kafka's last stable offset: the first offset of the earliest open transaction, else the
    /// high watermark (the log end on this single node); never beyond the high watermark.
    pub fn last_stable_offset(&self) -> i64 {
        self.txns
            .first_unstable()
            .map_or(self.next_offset, |f| f.min(self.next_offset))
    }

    /// Aborted transactions overlapping `[fetch_offset, upper)` (Fetch, read_committed).
    pub fn aborted_transactions(&self, fetch_offset: i64, upper: i64) -> Vec<AbortedTxn> {
        self.txns.aborted_overlapping(fetch_offset, upper)
    }

    /// True while `producer_id` has data of an undecided transaction in this partition.
    pub fn has_open_transaction(&self, producer_id: i64) -> bool {
        self.txns.is_open(producer_id)
    }

    pub fn open_transactions(&self) -> usize {
        self.txns.open_count()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.segments.keys().next().copied().unwrap_or(0)
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    fn active(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    /// Appends one validated client batch: sequence check, base-offset patch, write, and the
    /// flush when the policy says so. Returns where it went.
    pub fn append(&mut self, batch_bytes: &[u8], header: &BatchHeader) -> io::Result<Appended> {
        if self.follower {
            return Ok(Appended::Refused(NOT_LEADER_OR_FOLLOWER));
        }
        match self.producers.check(header) {
            SeqCheck::Append => {}
            SeqCheck::Duplicate(at) => return Ok(Appended::Duplicate(at)),
            SeqCheck::Error(code) => return Ok(Appended::Refused(code)),
        }
        let h = self.placed(header);
        self.write(batch_bytes, &h, None)
    }

    /// The header as this log writes it: at the log end, with the leader's epoch if leading.
    fn placed(&self, header: &BatchHeader) -> BatchHeader {
        let mut h = *header;
        h.base_offset = self.next_offset;
        if let Some(e) = self.stamp_epoch {
            h.partition_leader_epoch = e;
        }
        h
    }

    /// A follower's append of batches as its leader wrote them (offsets and epochs already
    /// assigned), byte for byte; a trailing partial batch is ignored. The first batch must
    /// start at the log end. Feeds the producer, transaction and epoch state like any append,
    /// so a follower that becomes leader dedupes retries from before the failover. Returns
    /// the batches appended.
    pub fn append_replicated(&mut self, records: &[u8]) -> io::Result<usize> {
        let batches = batch::split_replicated(records)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        for (h, range) in &batches {
            if h.base_offset != self.next_offset {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "replicated batch at offset {} but the log ends at {}",
                        h.base_offset, self.next_offset
                    ),
                ));
            }
            let bytes = &records[range.clone()];
            let marker = h
                .is_control()
                .then(|| batch::control_marker(bytes))
                .flatten();
            self.write(bytes, h, marker)?;
        }
        Ok(batches.len())
    }

    /// Cuts the log back to `offset` (the batch holding it goes too, as Kafka's
    /// `truncateTo`): later segments are deleted, the epoch cache truncated, and the producer
    /// and transaction state rebuilt from what remains, so idempotence stays right. Returns
    /// whether anything was removed.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<bool> {
        if offset >= self.next_offset {
            return Ok(false);
        }
        if offset <= self.log_start_offset() {
            self.reset_to(offset.max(0))?;
            return Ok(true);
        }
        let later: Vec<i64> = self.segments.range(offset..).map(|(k, _)| *k).collect();
        for base in later {
            if let Some(seg) = self.segments.remove(&base) {
                std::fs::remove_file(&seg.path)?;
            }
        }
        let cut = {
            let seg = self.active();
            let pos = seg.find(offset)?.map_or(seg.size, |(pos, _)| pos);
            seg.file.set_len(pos)?;
            seg.file.sync_all()?;
            pos
        };
        tracing::debug!(dir = %self.dir.display(), offset, cut, "log truncated");
        self.reload()
    }

    /// Empties the log and starts it again at `offset` (Kafka's `truncateFullyAndStartAt`).
    pub fn reset_to(&mut self, offset: i64) -> io::Result<()> {
        for (_, seg) in std::mem::take(&mut self.segments) {
            std::fs::remove_file(&seg.path)?;
        }
        Segment::create(&self.dir, offset, self.cfg.index_interval_bytes)?;
        self.epochs.truncate_from_end(i64::MIN);
        self.epochs.persist()?;
        self.reload().map(|_| ())
    }

    /// Reopens the directory: segments rescanned, producer, transaction and epoch state
    /// rebuilt from the batches. The leader epoch being stamped is kept.
    fn reload(&mut self) -> io::Result<bool> {
        let (stamp, follower) = (self.stamp_epoch, self.follower);
        *self = PartitionLog::open(&self.dir, self.cfg.clone())?;
        self.stamp_epoch = stamp;
        self.follower = follower;
        Ok(true)
    }

    /// Appends an end-transaction marker (a control batch) for `producer_id` at `epoch`;
    /// returns its offset. Written by the transaction coordinator, never by clients.
    pub fn append_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        marker: Marker,
        coordinator_epoch: i32,
        timestamp_ms: i64,
    ) -> io::Result<i64> {
        if self.follower {
            return Err(io::Error::other(
                "a follower's log takes no markers: write them on the leader",
            ));
        }
        let bytes =
            batch::build_control_batch(producer_id, epoch, marker, coordinator_epoch, timestamp_ms);
        let header = BatchHeader::parse(&bytes)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "control batch header"))?;
        let h = self.placed(&header);
        match self.write(&bytes, &h, Some(marker))? {
            Appended::At(o) => Ok(o),
            other => Err(io::Error::other(format!("marker not appended: {other:?}"))),
        }
    }

    /// Writes a batch at `h.base_offset` (the log end) with `h`'s epoch.
    fn write(
        &mut self,
        batch_bytes: &[u8],
        h: &BatchHeader,
        marker: Option<Marker>,
    ) -> io::Result<Appended> {
        let needs_roll = {
            let a = self.active();
            a.size > 0 && a.size + batch_bytes.len() as u64 > self.cfg.segment_bytes
        };
        if needs_roll {
            self.roll()?;
        }
        self.active().append(batch_bytes, h)?;
        self.next_offset = h.last_offset() + 1;
        let t = Tracked {
            producers: &mut self.producers,
            txns: &mut self.txns,
            epochs: &mut self.epochs,
        };
        if track(t, h, marker) {
            self.epochs.persist()?;
        }
        self.unflushed_messages += h.records_count.max(0) as u64;
        if let FlushPolicy::Messages(n) = self.cfg.flush {
            if self.unflushed_messages >= n {
                self.flush()?;
            }
        }
        Ok(Appended::At(h.base_offset))
    }

    fn roll(&mut self) -> io::Result<()> {
        if self.cfg.flush != FlushPolicy::None {
            self.active().file.sync_data()?;
        }
        let seg = Segment::create(&self.dir, self.next_offset, self.cfg.index_interval_bytes)?;
        self.segments.insert(self.next_offset, seg);
        Ok(())
    }

    /// Fsyncs the active segment (older ones were synced when rolled).
    pub fn flush(&mut self) -> io::Result<()> {
        if self.unflushed_messages > 0 {
            self.active().file.sync_data()?;
            self.unflushed_messages = 0;
        }
        Ok(())
    }

    /// Finds up to `max_bytes` of log from the batch containing `offset`, always at least one
    /// whole batch (KIP-74). The slice may end inside a batch, as Kafka's does; clients drop a
    /// trailing partial batch. Reads stay inside one segment.
    pub fn read(&self, offset: i64, max_bytes: usize) -> io::Result<ReadResult> {
        self.read_below(offset, max_bytes, self.next_offset)
    }

    /// `read`, but nothing at or past `upper` (the last stable offset of a read_committed
    /// fetch, Kafka's `FetchIsolation.TXN_COMMITTED`). `upper` is always a batch boundary: the
    /// first offset of a batch, or the log end.
    pub fn read_below(&self, offset: i64, max_bytes: usize, upper: i64) -> io::Result<ReadResult> {
        if offset == self.next_offset {
            return Ok(ReadResult::Empty);
        }
        if offset < self.log_start_offset() || offset > self.next_offset {
            return Ok(ReadResult::OutOfRange);
        }
        if offset >= upper {
            return Ok(ReadResult::Empty);
        }
        let start_key = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(i64::MIN, |(k, _)| *k);
        for seg in self.segments.range(start_key..).map(|(_, s)| s) {
            if let Some((pos, h)) = seg.find(offset)? {
                if h.base_offset >= upper {
                    return Ok(ReadResult::Empty);
                }
                let end = match upper < seg.next_offset {
                    true => seg.find(upper)?.map_or(seg.size, |(p, _)| p),
                    false => seg.size,
                };
                let avail = (end - pos) as usize;
                let len = avail.min(max_bytes.max(h.total_len()));
                return Ok(ReadResult::Data(FileSlice {
                    file: seg.file.clone(),
                    pos,
                    len,
                }));
            }
        }
        Ok(ReadResult::Empty)
    }

    /// ListOffsets by timestamp: the first offset whose record timestamp is >= `ts`, with that
    /// timestamp; `None` when every record is older.
    pub fn offset_for_timestamp(&self, ts: i64) -> io::Result<Option<(i64, i64)>> {
        for seg in self.segments.values() {
            if seg.max_timestamp < ts {
                continue;
            }
            for (pos, h) in seg.headers()? {
                if h.max_timestamp >= ts {
                    let bytes = seg.read_bytes(pos, h.total_len())?;
                    let exact =
                        record_times(&bytes).and_then(|rs| rs.into_iter().find(|&(_, t)| t >= ts));
                    return Ok(Some(exact.unwrap_or((h.base_offset, h.max_timestamp))));
                }
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP (-3): the record with the largest timestamp.
    pub fn max_timestamp_offset(&self) -> io::Result<Option<(i64, i64)>> {
        let Some(seg) = self.segments.values().max_by_key(|s| s.max_timestamp) else {
            return Ok(None);
        };
        if seg.max_timestamp < 0 {
            return Ok(None);
        }
        let target = seg.max_timestamp;
        for (pos, h) in seg.headers()? {
            if h.max_timestamp == target {
                let bytes = seg.read_bytes(pos, h.total_len())?;
                let exact =
                    record_times(&bytes).and_then(|rs| rs.into_iter().find(|&(_, t)| t == target));
                return Ok(Some(exact.unwrap_or((h.last_offset(), target))));
            }
        }
        Ok(None)
    }

    /// A follower follows its leader's log start (Kafka's `maybeIncrementLogStartOffset`):
    /// sealed segments wholly below `offset` go. Returns bytes deleted.
    pub fn advance_log_start(&mut self, offset: i64) -> io::Result<u64> {
        let mut deleted = 0;
        while self.segments.len() > 1 {
            let mut bases = self.segments.keys();
            let (Some(&first), Some(&second)) = (bases.next(), bases.next()) else {
                break;
            };
            if second > offset {
                break;
            }
            if let Some(seg) = self.segments.remove(&first) {
                deleted += seg.size;
                std::fs::remove_file(&seg.path)?;
            }
        }
        if deleted > 0 {
            let log_start = self.log_start_offset();
            self.txns.forget_before(log_start);
            if self.epochs.truncate_from_start(log_start) {
                self.epochs.persist()?;
            }
        }
        Ok(deleted)
    }

    /// Deletes whole sealed segments beyond the size or time limits. Returns bytes deleted.
    pub fn apply_retention(&mut self, now_ms: i64) -> io::Result<u64> {
        let mut deleted = 0;
        while self.segments.len() > 1 {
            let total = self.size_bytes();
            let Some((&base, oldest)) = self.segments.iter().next() else {
                break;
            };
            let by_size = self
                .cfg
                .retention_bytes
                .is_some_and(|limit| total - oldest.size >= limit);
            let newest_ts = if oldest.max_timestamp >= 0 {
                oldest.max_timestamp
            } else {
                oldest.mtime_ms()
            };
            let by_time = self
                .cfg
                .retention_ms
                .is_some_and(|ms| newest_ts < now_ms - ms as i64);
            if !(by_size || by_time) {
                break;
            }
            if let Some(seg) = self.segments.remove(&base) {
                deleted += seg.size;
                // Readers holding the Arc<File> keep reading the unlinked file safely.
                std::fs::remove_file(&seg.path)?;
            }
        }
        let log_start = self.log_start_offset();
        self.txns.forget_before(log_start);
        if self.epochs.truncate_from_start(log_start) {
            self.epochs.persist()?;
        }
        Ok(deleted)
    }
}

/// (offset, timestamp) of every record of one stored batch, decoding it with the codec crate.
fn record_times(batch: &[u8]) -> Option<Vec<(i64, i64)>> {
    let mut b = bytes::Bytes::copy_from_slice(batch);
    let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut b).ok()?;
    Some(
        set.records
            .iter()
            .map(|r| (r.offset, r.timestamp))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::batch::{build_test_batch, validate_all};

    fn cfg(segment_bytes: u64) -> LogConfig {
        LogConfig {
            segment_bytes,
            index_interval_bytes: 64,
            ..LogConfig::default()
        }
    }

    fn append(log: &mut PartitionLog, vals: &[&[u8]]) -> Appended {
        let b = build_test_batch(vals, None);
        let (h, _) = validate_all(&b).unwrap()[0].clone();
        log.append(&b, &h).unwrap()
    }

    #[test]
    fn appends_assign_offsets_and_reads_find_the_containing_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), cfg(1 << 20)).unwrap();
        assert_eq!(append(&mut log, &[b"a", b"b", b"c"]), Appended::At(0));
        assert_eq!(append(&mut log, &[b"d"]), Appended::At(3));
        assert_eq!(log.log_end_offset(), 4);
        let ReadResult::Data(s) = log.read(1, 1).unwrap() else {
            panic!("no data")
        };
        assert_eq!(s.pos, 0);
        let mut buf = vec![0; s.len];
        std::os::unix::fs::FileExt::read_exact_at(&*s.file, &mut buf, s.pos).unwrap();
        assert_eq!(validate_all(&buf).unwrap()[0].0.base_offset, 0);
        let ReadResult::Data(s) = log.read(3, 1 << 20).unwrap() else {
            panic!("no data")
        };
        assert!(s.pos > 0);
        assert!(matches!(log.read(4, 100).unwrap(), ReadResult::Empty));
        assert!(matches!(log.read(5, 100).unwrap(), ReadResult::OutOfRange));
    }

    #[test]
    fn segments_roll_by_size_and_retention_drops_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg(200);
        c.retention_bytes = Some(300);
        let mut log = PartitionLog::open(dir.path(), c).unwrap();
        for _ in 0..10 {
            append(&mut log, &[&[7u8; 60]]);
        }
        assert!(
            log.segment_count() > 3,
            "rolled into {} segments",
            log.segment_count()
        );
        let deleted = log.apply_retention(0).unwrap();
        assert!(deleted > 0);
        assert!(log.size_bytes() < 300 + 200);
        assert!(log.log_start_offset() > 0);
        assert!(matches!(log.read(0, 100).unwrap(), ReadResult::OutOfRange));
        let ReadResult::Data(_) = log.read(log.log_start_offset(), 100).unwrap() else {
            panic!()
        };
    }

    #[test]
    fn retention_by_time_uses_batch_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg(100);
        c.retention_ms = Some(1000);
        let mut log = PartitionLog::open(dir.path(), c).unwrap();
        for _ in 0..4 {
            append(&mut log, &[&[1u8; 60]]);
        }
        // build_test_batch stamps 1_700_000_000_000: far in the past relative to this "now".
        assert!(log.apply_retention(1_700_000_000_000 + 500).unwrap() == 0);
        assert!(log.apply_retention(1_700_000_000_000 + 5000).unwrap() > 0);
        assert_eq!(log.segment_count(), 1);
    }

    #[test]
    fn recovery_truncates_a_torn_tail_and_keeps_offsets() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = PartitionLog::open(dir.path(), cfg(1 << 20)).unwrap();
            append(&mut log, &[b"one"]);
            append(&mut log, &[b"two", b"three"]);
        }
        let seg = dir.path().join(super::super::segment::file_name(0));
        let good_len = std::fs::metadata(&seg).unwrap().len();
        // A torn write: half a batch at the end.
        let half = build_test_batch(&[b"torn"], None);
        let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
        std::io::Write::write_all(&mut f, &half[..half.len() / 2]).unwrap();
        drop(f);
        let mut log = PartitionLog::open(dir.path(), cfg(1 << 20)).unwrap();
        assert_eq!(log.recovered_truncated_bytes, (half.len() / 2) as u64);
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), good_len);
        assert_eq!(log.log_end_offset(), 3);
        assert_eq!(append(&mut log, &[b"four"]), Appended::At(3));
    }

    #[test]
    fn recovery_truncates_a_corrupt_last_batch() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = PartitionLog::open(dir.path(), cfg(1 << 20)).unwrap();
            append(&mut log, &[b"one"]);
            append(&mut log, &[b"two"]);
        }
        let seg = dir.path().join(super::super::segment::file_name(0));
        let mut bytes = std::fs::read(&seg).unwrap();
        let n = bytes.len();
        bytes[n - 2] ^= 0xff;
        std::fs::write(&seg, &bytes).unwrap();
        let log = PartitionLog::open(dir.path(), cfg(1 << 20)).unwrap();
        assert_eq!(log.log_end_offset(), 1);
    }

    #[test]
    fn idempotent_retries_are_not_appended_twice_even_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let b = build_test_batch(&[b"x", b"y"], Some((42, 0, 0)));
        let (h, _) = validate_all(&b).unwrap()[0].clone();
        {
            let mut log = PartitionLog::open(dir.path(), cfg(1 << 20)).unwrap();
            assert_eq!(log.append(&b, &h).unwrap(), Appended::At(0));
            assert_eq!(log.append(&b, &h).unwrap(), Appended::Duplicate(0));
        }
        let mut log = PartitionLog::open(dir.path(), cfg(1 << 20)).unwrap();
        assert_eq!(log.append(&b, &h).unwrap(), Appended::Duplicate(0));
        assert_eq!(log.log_end_offset(), 2);
    }

    fn txn_batch(pid: i64, seq: i32, vals: &[&[u8]]) -> (Vec<u8>, BatchHeader) {
        let mut b = build_test_batch(vals, Some((pid, 0, seq)));
        b[21..23].copy_from_slice(&0x10i16.to_be_bytes()); // transactional
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        let (h, _) = validate_all(&b).unwrap()[0];
        (b, h)
    }

    #[test]
    fn open_transactions_hold_the_stable_offset_and_reads_below_it_stop_there() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = PartitionLog::open(dir.path(), cfg(1 << 20)).unwrap();
            append(&mut log, &[b"plain"]);
            let (b, h) = txn_batch(5, 0, &[b"t1", b"t2"]);
            assert_eq!(log.append(&b, &h).unwrap(), Appended::At(1));
            append(&mut log, &[b"after"]);
            assert_eq!((log.last_stable_offset(), log.log_end_offset()), (1, 4));
            let ReadResult::Data(s) = log.read_below(0, 1 << 20, 1).unwrap() else {
                panic!("the batch below the stable offset")
            };
            let ReadResult::Data(all) = log.read(0, 1 << 20).unwrap() else {
                panic!()
            };
            assert!(s.len < all.len);
            assert!(matches!(
                log.read_below(1, 1 << 20, 1).unwrap(),
                ReadResult::Empty
            ));
            assert_eq!(log.append_marker(5, 0, Marker::Abort, 0, 1).unwrap(), 4);
            assert_eq!(log.last_stable_offset(), 5);
            let aborted = log.aborted_transactions(0, 5);
            assert_eq!((aborted[0].first_offset, aborted[0].last_offset), (1, 4));
        }
        // Rebuilt from the log at open: the marker closed the transaction.
        let mut log = PartitionLog::open(dir.path(), cfg(1 << 20)).unwrap();
        assert_eq!(log.last_stable_offset(), 5);
        assert_eq!(log.aborted_transactions(0, 5).len(), 1);
        let (b, h) = txn_batch(6, 0, &[b"open"]);
        log.append(&b, &h).unwrap();
        drop(log);
        let log = PartitionLog::open(dir.path(), cfg(1 << 20)).unwrap();
        assert_eq!((log.last_stable_offset(), log.log_end_offset()), (5, 6));
        assert!(log.has_open_transaction(6));
    }

    #[test]
    fn a_marker_fences_the_older_epoch_of_its_producer() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), cfg(1 << 20)).unwrap();
        let (b, h) = txn_batch(9, 0, &[b"x"]);
        log.append(&b, &h).unwrap();
        log.append_marker(9, 1, Marker::Abort, 0, 1).unwrap();
        let (b, h) = txn_batch(9, 1, &[b"late"]);
        assert_eq!(
            log.append(&b, &h).unwrap(),
            Appended::Refused(crate::log::producers::INVALID_PRODUCER_EPOCH)
        );
    }

    #[test]
    fn timestamp_lookup_finds_the_first_newer_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), cfg(1 << 20)).unwrap();
        append(&mut log, &[b"a", b"b"]);
        assert_eq!(
            log.offset_for_timestamp(0).unwrap(),
            Some((0, 1_700_000_000_000))
        );
        assert_eq!(log.offset_for_timestamp(i64::MAX).unwrap(), None);
        assert!(log.max_timestamp_offset().unwrap().is_some());
    }

    fn segment_bytes(dir: &Path) -> Vec<u8> {
        std::fs::read(dir.join(super::super::segment::file_name(0))).unwrap()
    }

    #[test]
    fn a_leader_stamps_its_epoch_outside_the_crc_and_the_cache_survives_a_lost_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = PartitionLog::open(dir.path(), cfg(1 << 20)).unwrap();
            append(&mut log, &[b"before"]);
            log.become_leader(3).unwrap();
            append(&mut log, &[b"a", b"b"]);
            log.become_leader(5).unwrap();
            append(&mut log, &[b"c"]);
            assert_eq!(log.epoch_entries(), &[(3, 1), (5, 3)]);
            assert_eq!(log.end_offset_for_epoch(3), Some((3, 3)));
            assert_eq!(log.end_offset_for_epoch(4), Some((3, 3)));
            assert_eq!(log.end_offset_for_epoch(5), Some((5, 4)));
            assert_eq!(log.latest_epoch(), Some(5));
        }
        let bytes = segment_bytes(dir.path());
        let batches = validate_all(&bytes).unwrap();
        let epochs: Vec<i32> = batches
            .iter()
            .map(|(h, _)| h.partition_leader_epoch)
            .collect();
        assert_eq!(
            epochs,
            vec![-1, 3, 5],
            "stamped, and every CRC still checks"
        );
        std::fs::remove_file(dir.path().join(super::super::epochs::CHECKPOINT_FILE)).unwrap();
        let log = PartitionLog::open(dir.path(), cfg(1 << 20)).unwrap();
        assert_eq!(
            log.epoch_entries(),
            &[(3, 1), (5, 3)],
            "rebuilt from batch headers"
        );
        assert!(dir
            .path()
            .join(super::super::epochs::CHECKPOINT_FILE)
            .exists());
    }

    #[test]
    fn replicated_appends_are_byte_identical_and_must_start_at_the_log_end() {
        let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut leader = PartitionLog::open(ld.path(), cfg(1 << 20)).unwrap();
        leader.become_leader(2).unwrap();
        let b = build_test_batch(&[b"x", b"y"], Some((42, 0, 0)));
        let (h, _) = validate_all(&b).unwrap()[0];
        leader.append(&b, &h).unwrap();
        append(&mut leader, &[b"z"]);
        leader.append_marker(42, 0, Marker::Commit, 0, 1).unwrap();
        let wire = segment_bytes(ld.path());
        let mut follower = PartitionLog::open(fd.path(), cfg(1 << 20)).unwrap();
        follower.become_follower();
        // A fetch slice may end inside a batch: the partial tail is left for the next fetch.
        assert_eq!(
            follower.append_replicated(&wire[..wire.len() - 3]).unwrap(),
            2
        );
        let err = follower.append_replicated(&wire).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "offset 0 again");
        let rest = &wire[segment_bytes(fd.path()).len()..];
        assert_eq!(follower.append_replicated(rest).unwrap(), 1);
        assert_eq!(segment_bytes(fd.path()), wire);
        assert_eq!(follower.log_end_offset(), 4);
        assert_eq!(follower.latest_epoch(), Some(2));
        assert_eq!(
            follower.last_stable_offset(),
            4,
            "the marker closed the transaction"
        );
        // Only the leader's batches: no client batch, no marker.
        assert_eq!(
            follower.append(&b, &h).unwrap(),
            Appended::Refused(NOT_LEADER_OR_FOLLOWER)
        );
        assert!(follower.append_marker(42, 0, Marker::Abort, 0, 1).is_err());
        assert_eq!(follower.log_end_offset(), 4);
        // The follower, now leading, knows the producer: its retry is a duplicate.
        follower.become_leader(3).unwrap();
        assert_eq!(follower.append(&b, &h).unwrap(), Appended::Duplicate(0));
    }

    #[test]
    fn truncation_cuts_batches_segments_epochs_and_producer_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), cfg(200)).unwrap();
        log.become_leader(1).unwrap();
        for _ in 0..4 {
            append(&mut log, &[&[7u8; 60]]);
        }
        log.become_leader(2).unwrap();
        let b = build_test_batch(&[b"idem"], Some((9, 0, 0)));
        let (h, _) = validate_all(&b).unwrap()[0];
        assert_eq!(log.append(&b, &h).unwrap(), Appended::At(4));
        append(&mut log, &[&[7u8; 60]]);
        assert!(log.segment_count() > 2);
        assert!(log.truncate_to(4).unwrap());
        assert_eq!(log.log_end_offset(), 4);
        assert_eq!(log.epoch_entries(), &[(1, 0)]);
        assert!(matches!(log.read(4, 100).unwrap(), ReadResult::Empty));
        // The idempotent batch is gone, so its retry is appended again, not a duplicate.
        assert_eq!(log.append(&b, &h).unwrap(), Appended::At(4));
        assert_eq!(
            log.latest_epoch(),
            Some(2),
            "still stamping as leader of epoch 2"
        );
        assert!(!log.truncate_to(99).unwrap());
        assert!(log.truncate_to(0).unwrap());
        assert_eq!((log.log_end_offset(), log.segment_count()), (0, 1));
        assert_eq!(log.latest_epoch(), None);
    }

    #[test]
    fn a_follower_drops_whole_segments_below_its_leaders_log_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), cfg(200)).unwrap();
        for _ in 0..6 {
            append(&mut log, &[&[7u8; 60]]);
        }
        let bases: Vec<i64> = log.segments.keys().copied().collect();
        assert!(bases.len() >= 3, "{bases:?}");
        // The second segment's first offset: only the first segment is wholly below it.
        assert!(log.advance_log_start(bases[1]).unwrap() > 0);
        assert_eq!(log.log_start_offset(), bases[1]);
        assert_eq!(log.advance_log_start(bases[1]).unwrap(), 0);
        assert!(log.advance_log_start(i64::MAX).unwrap() > 0);
        assert_eq!(log.segment_count(), 1, "the active segment stays");
        assert_eq!(log.log_end_offset(), 6);
    }
}
