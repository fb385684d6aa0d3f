//! `latency.hlog`: an HdrHistogram interval log (the format of Java's `HistogramLogWriter`),
//! one tagged, compressed histogram per metric and interval, readable by HdrHistogram's own
//! tools (`HistogramLogProcessor -tag produce -outputValueUnitRatio 1000` for milliseconds:
//! values are microseconds).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result};
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

/// An open interval log.
pub struct HlogWriter {
    file: BufWriter<File>,
    serializer: V2DeflateSerializer,
    base_ns: u64,
}

impl HlogWriter {
    /// Creates the file and writes the header; `base_ns` is the run's start (clock ns), which
    /// interval timestamps are relative to.
    pub fn create(path: &Path, base_ns: u64) -> Result<Self> {
        let mut file = BufWriter::new(
            File::create(path).with_context(|| format!("cannot create '{}'", path.display()))?,
        );
        let base = UNIX_EPOCH + Duration::from_nanos(base_ns);
        let mut serializer = V2DeflateSerializer::new();
        IntervalLogWriterBuilder::new()
            .add_comment(&format!("Logged with kbench {}", env!("CARGO_PKG_VERSION")))
            .add_comment("Values are microseconds; tags: produce, service, send_delay, e2e")
            .with_start_time(base)
            .with_base_time(base)
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut file, &mut serializer)?;
        writeln!(file, "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"")?;
        file.flush()?;
        Ok(HlogWriter {
            file,
            serializer,
            base_ns,
        })
    }

    /// Appends one interval's histogram under `tag` (skipped when empty) and flushes, so a crash
    /// keeps every interval written so far.
    pub fn write(
        &mut self,
        tag: &str,
        start_ns: u64,
        end_ns: u64,
        h: &Histogram<u64>,
    ) -> Result<()> {
        if h.is_empty() {
            return Ok(());
        }
        let mut w = IntervalLogWriterBuilder::new()
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut self.file, &mut self.serializer)?;
        let start = Duration::from_nanos(start_ns.saturating_sub(self.base_ns));
        let length = Duration::from_nanos(end_ns.saturating_sub(start_ns));
        w.write_histogram(h, start, length, Tag::new(tag))
            .map_err(|e| anyhow::anyhow!("writing latency.hlog: {e}"))?;
        self.file.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    #[test]
    fn written_log_reads_back_with_tags_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("latency.hlog");
        let base = 1_700_000_000_000_000_000u64;
        let mut w = HlogWriter::create(&p, base).unwrap();
        let mut h = crate::measure::recorder::new_histogram();
        for v in 1..=100 {
            h.saturating_record(v * 100);
        }
        w.write("produce", base, base + 5_000_000_000, &h).unwrap();
        w.write("e2e", base + 5_000_000_000, base + 10_000_000_000, &h)
            .unwrap();
        drop(w);
        let text = std::fs::read(&p).unwrap();
        let hists: Vec<_> = IntervalLogIterator::new(&text)
            .filter_map(|e| match e.unwrap() {
                LogEntry::Interval(i) => Some(i),
                _ => None,
            })
            .collect();
        assert_eq!(hists.len(), 2);
        assert_eq!(hists[0].tag().unwrap().as_str(), "produce");
        assert_eq!(hists[1].start_timestamp(), Duration::from_secs(5));
        let bytes = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            hists[0].encoded_histogram(),
        )
        .unwrap();
        let back: Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
            .deserialize(&mut &bytes[..])
            .unwrap();
        assert_eq!(back.len(), 100);
    }
}
