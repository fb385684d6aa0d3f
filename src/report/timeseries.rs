//! `timeseries.csv`: one flat row per reporting interval and phase (an interval that straddles
//! the end of the warm-up gives two rows), flushed as it is written.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::measure::host::HostSummary;
use crate::measure::recorder::{ConsumeStats, ProduceStats};
use crate::report::summary::{per_sec, MB};

/// One CSV row. Flat on purpose: the csv crate cannot serialize maps or nested structs.
/// Read back by column name (`analyze::read_series`): columns a reader does not know are
/// ignored and missing ones read as zero, so the file format can grow.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Row {
    pub elapsed_sec: f64,
    pub interval_sec: f64,
    pub phase: String,
    pub produce_records: u64,
    pub produce_records_per_sec: f64,
    pub produce_mb_per_sec: f64,
    pub produce_errors: u64,
    pub produce_late_sends: u64,
    pub produce_p50_us: u64,
    pub produce_p99_us: u64,
    pub produce_p999_us: u64,
    pub produce_max_us: u64,
    pub service_p50_us: u64,
    pub service_p99_us: u64,
    pub send_delay_p99_us: u64,
    pub send_delay_max_us: u64,
    pub consume_records: u64,
    pub consume_records_per_sec: f64,
    pub consume_mb_per_sec: f64,
    pub e2e_p50_us: u64,
    pub e2e_p99_us: u64,
    pub e2e_p999_us: u64,
    pub e2e_max_us: u64,
    pub lag: Option<u64>,
    pub cpu_pct: f64,
    pub process_cpu_pct: f64,
    pub rss_bytes: u64,
    pub net_rx_bytes_per_sec: f64,
    pub net_tx_bytes_per_sec: f64,
    pub disk_read_bytes_per_sec: f64,
    pub disk_write_bytes_per_sec: f64,
    /// Transactions ended in this interval (all zero without transactions).
    pub txn_committed: u64,
    pub txn_aborted: u64,
    pub txn_failed: u64,
    pub commit_p50_us: u64,
    pub commit_p99_us: u64,
    pub commit_max_us: u64,
    pub commit_pause_max_us: u64,
    /// Records of aborted transactions consumed in this interval.
    pub aborted_seen: u64,
    /// High watermark minus last stable offset over the consumers' partitions, when known.
    pub lso_lag: Option<u64>,
    /// Fault steps in this interval: `inject 0 kill leader-of:kbench/0 @2000ms`, `heal 0
    /// @5000ms`, separated by `; ` (empty in most rows).
    pub fault: String,
}

fn q(h: &hdrhistogram::Histogram<u64>, p: f64) -> u64 {
    if h.is_empty() {
        0
    } else {
        h.value_at_quantile(p)
    }
}

impl Row {
    pub fn new(
        elapsed_sec: f64,
        interval_sec: f64,
        phase: &str,
        produce: Option<&ProduceStats>,
        consume: Option<&ConsumeStats>,
        lag: Option<u64>,
        host: &HostSummary,
    ) -> Row {
        let mut r = Row {
            elapsed_sec: (elapsed_sec * 1000.0).round() / 1000.0,
            interval_sec: (interval_sec * 1000.0).round() / 1000.0,
            phase: phase.to_string(),
            lag,
            cpu_pct: host.cpu_pct_avg,
            process_cpu_pct: host.process_cpu_pct_avg,
            rss_bytes: host.rss_bytes_max,
            net_rx_bytes_per_sec: host.net_rx_bytes_per_sec,
            net_tx_bytes_per_sec: host.net_tx_bytes_per_sec,
            disk_read_bytes_per_sec: host.disk_read_bytes_per_sec,
            disk_write_bytes_per_sec: host.disk_write_bytes_per_sec,
            ..Row::default()
        };
        if let Some(p) = produce {
            r.produce_records = p.records;
            r.produce_records_per_sec = per_sec(p.records as f64, interval_sec);
            r.produce_mb_per_sec = per_sec(p.bytes as f64 / MB, interval_sec);
            r.produce_errors = p.errors;
            r.produce_late_sends = p.late_sends;
            r.produce_p50_us = q(&p.latency_us, 0.5);
            r.produce_p99_us = q(&p.latency_us, 0.99);
            r.produce_p999_us = q(&p.latency_us, 0.999);
            r.produce_max_us = p.latency_us.max();
            r.service_p50_us = q(&p.service_latency_us, 0.5);
            r.service_p99_us = q(&p.service_latency_us, 0.99);
            r.send_delay_p99_us = q(&p.send_delay_us, 0.99);
            r.send_delay_max_us = p.send_delay_us.max();
            r.txn_committed = p.txn.committed;
            r.txn_aborted = p.txn.aborted;
            r.txn_failed = p.txn.failed;
            r.commit_p50_us = q(&p.txn.commit_latency_us, 0.5);
            r.commit_p99_us = q(&p.txn.commit_latency_us, 0.99);
            r.commit_max_us = p.txn.commit_latency_us.max();
            r.commit_pause_max_us = p.txn.commit_pause_us.max();
        }
        if let Some(c) = consume {
            r.consume_records = c.records;
            r.consume_records_per_sec = per_sec(c.records as f64, interval_sec);
            r.consume_mb_per_sec = per_sec(c.bytes as f64 / MB, interval_sec);
            r.e2e_p50_us = q(&c.e2e_latency_us, 0.5);
            r.e2e_p99_us = q(&c.e2e_latency_us, 0.99);
            r.e2e_p999_us = q(&c.e2e_latency_us, 0.999);
            r.e2e_max_us = c.e2e_latency_us.max();
            r.aborted_seen = c.aborted_seen;
        }
        r
    }
}

/// The open CSV file.
pub struct TimeseriesWriter {
    w: csv::Writer<File>,
}

impl TimeseriesWriter {
    pub fn create(path: &Path) -> Result<Self> {
        let w = csv::Writer::from_path(path)
            .with_context(|| format!("cannot create '{}'", path.display()))?;
        Ok(TimeseriesWriter { w })
    }

    pub fn write(&mut self, row: &Row) -> Result<()> {
        self.w.serialize(row)?;
        self.w.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_serialize_with_a_header_and_one_line_each() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        let mut w = TimeseriesWriter::create(&p).unwrap();
        let mut ps = ProduceStats {
            records: 10,
            ..Default::default()
        };
        ps.latency_us.saturating_record(1500);
        w.write(&Row::new(
            5.0,
            5.0,
            "warmup",
            Some(&ps),
            None,
            Some(3),
            &HostSummary::default(),
        ))
        .unwrap();
        w.write(&Row::new(
            10.0,
            5.0,
            "measured",
            Some(&ps),
            None,
            None,
            &HostSummary::default(),
        ))
        .unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("elapsed_sec,interval_sec,phase,"));
        assert!(
            lines[1].starts_with("5.0,5.0,warmup,10,2.0,"),
            "{}",
            lines[1]
        );
    }
}
