//! One segment file of a partition log: `<20-digit base offset>.log`, record batches back to
//! back in wire format, plus its sparse in-memory offset index.
//!
//! Owns: positional reads/writes of one file, the index, and scanning/recovering the file.
//! Must not: assign offsets or decide when to roll/delete (that is `partition`).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::log::index::OffsetIndex;
use crate::protocol::batch::{self, BatchHeader, Marker, HEADER_LEN};

/// Segment file name for a base offset, as Kafka names them.
pub fn file_name(base_offset: i64) -> String {
    format!("{base_offset:020}.log")
}

/// An open segment.
#[derive(Debug)]
pub struct Segment {
    pub base_offset: i64,
    pub file: Arc<File>,
    pub path: PathBuf,
    /// Bytes of valid batches in the file.
    pub size: u64,
    /// Offset after the last batch (== base_offset when empty).
    pub next_offset: i64,
    /// Largest batch max-timestamp seen, -1 when empty.
    pub max_timestamp: i64,
    pub index: OffsetIndex,
}

impl Segment {
    /// Creates a new, empty segment file.
    pub fn create(dir: &Path, base_offset: i64, index_interval: u64) -> io::Result<Self> {
        let path = dir.join(file_name(base_offset));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        Ok(Segment {
            base_offset,
            file: Arc::new(file),
            path,
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            index: OffsetIndex::new(index_interval),
        })
    }

    /// Opens an existing segment and scans it, rebuilding the index. With `verify`, each batch's
    /// CRC is checked and the file is truncated at the first torn or corrupt batch (crash
    /// recovery of the tail segment). `on_batch` sees every valid header, with the marker of a
    /// control batch (producer and transaction state rebuild).
    pub fn open(
        path: &Path,
        base_offset: i64,
        index_interval: u64,
        verify: bool,
        on_batch: &mut dyn FnMut(&BatchHeader, Option<Marker>),
    ) -> io::Result<(Self, u64)> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let file_len = file.metadata()?.len();
        let mut seg = Segment {
            base_offset,
            file: Arc::new(file),
            path: path.to_path_buf(),
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            index: OffsetIndex::new(index_interval),
        };
        let mut buf = Vec::new();
        let mut pos = 0u64;
        while let Some(h) = seg.read_header(pos)? {
            let total = h.total_len() as u64;
            let sane = h.magic == 2
                && h.total_len() >= HEADER_LEN
                && pos + total <= file_len
                && h.base_offset >= seg.next_offset
                && h.last_offset_delta >= 0;
            if !sane {
                break;
            }
            if verify || h.is_control() {
                buf.resize(total as usize, 0);
                seg.file.read_exact_at(&mut buf, pos)?;
                if verify && !batch::crc_ok(&buf) {
                    break;
                }
            }
            // Control batches are rare (one per transaction and partition): reading each
            // one's record to learn COMMIT or ABORT costs recovery little.
            let marker = if h.is_control() {
                batch::control_marker(&buf)
            } else {
                None
            };
            on_batch(&h, marker);
            seg.note_append(pos, &h);
            pos += total;
        }
        let truncated = file_len - pos;
        if truncated > 0 {
            // A torn or corrupt tail: everything after the last good batch goes.
            seg.file.set_len(pos)?;
            seg.file.sync_all()?;
        }
        Ok((seg, truncated))
    }

    /// Reads the header of the batch at `pos`; `None` at (or near) the end of the file.
    pub fn read_header(&self, pos: u64) -> io::Result<Option<BatchHeader>> {
        let mut h = [0u8; HEADER_LEN];
        let mut got = 0;
        while got < HEADER_LEN {
            let n = self.file.read_at(&mut h[got..], pos + got as u64)?;
            if n == 0 {
                return Ok(None);
            }
            got += n;
        }
        Ok(BatchHeader::parse(&h))
    }

    fn note_append(&mut self, pos: u64, h: &BatchHeader) {
        self.index
            .maybe_add(h.base_offset, pos, h.total_len() as u64);
        self.size = pos + h.total_len() as u64;
        self.next_offset = h.last_offset() + 1;
        self.max_timestamp = self.max_timestamp.max(h.max_timestamp);
    }

    /// Appends one batch with its base offset (bytes 0..8) and partition leader epoch (bytes
    /// 12..16) replaced by the header's, without copying the batch: a vectored positional
    /// write of the patches and the rest. Neither field is under the CRC.
    pub fn append(&mut self, batch_bytes: &[u8], h: &BatchHeader) -> io::Result<()> {
        let base = h.base_offset.to_be_bytes();
        let epoch = h.partition_leader_epoch.to_be_bytes();
        let pieces: [&[u8]; 4] = [&base, &batch_bytes[8..12], &epoch, &batch_bytes[16..]];
        let pos = self.size;
        let total = batch_bytes.len();
        let mut written = 0usize;
        while written < total {
            let bufs = remaining(&pieces, written);
            let n = rustix::io::pwritev(&*self.file, &bufs, pos + written as u64)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "segment write returned 0",
                ));
            }
            written += n;
        }
        self.note_append(pos, h);
        Ok(())
    }

    /// Finds the batch containing `offset` (or the first batch after it): its position and
    /// header. `None` if the segment has no batch ending at or after `offset`.
    pub fn find(&self, offset: i64) -> io::Result<Option<(u64, BatchHeader)>> {
        let mut pos = self.index.floor(offset);
        while pos < self.size {
            let Some(h) = self.read_header(pos)? else {
                return Ok(None);
            };
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    /// Iterates all batch headers with their positions (time lookups, tests).
    pub fn headers(&self) -> io::Result<Vec<(u64, BatchHeader)>> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < self.size {
            let Some(h) = self.read_header(pos)? else {
                break;
            };
            out.push((pos, h));
            pos += h.total_len() as u64;
        }
        Ok(out)
    }

    /// Reads `len` bytes at `pos` (copying path and time lookups).
    pub fn read_bytes(&self, pos: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, pos)?;
        Ok(buf)
    }

    /// Last-modified time in ms since the epoch, used when batches carry no timestamps.
    pub fn mtime_ms(&self) -> i64 {
        self.file
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64)
    }
}

/// The unwritten tail of `pieces` once `skip` bytes went out (fully written pieces become
/// empty slices: no allocation on the append path).
fn remaining<'a>(pieces: &[&'a [u8]; 4], mut skip: usize) -> [io::IoSlice<'a>; 4] {
    pieces.map(|p| {
        let from = skip.min(p.len());
        skip -= from;
        io::IoSlice::new(&p[from..])
    })
}
