//! Console output: Kafka's exact perf-tool lines (existing parsers keep working) and kbench's
//! own blocks with microsecond precision. The only place, with `report::*`, that formats.
//!
//! Everything here returns `String`s; the reporter decides where they go (stdout for results).

use comfy_table::{presets::NOTHING, Cell, CellAlignment, Table};

use crate::measure::recorder::ProduceStats;
use crate::report::summary::{per_sec, LatencySummary, MB};

/// `kafka-producer-perf-test`'s interval line. Latency is from the send call, as in Kafka.
pub fn kafka_producer_interval(p: &ProduceStats, secs: f64) -> String {
    let ms = |us: f64| us / 1000.0;
    format!(
        "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
        p.records,
        per_sec(p.records as f64, secs),
        per_sec(p.bytes as f64 / MB, secs),
        ms(mean(&p.service_latency_us)),
        ms(p.service_latency_us.max() as f64),
    )
}

/// `kafka-producer-perf-test`'s total line (`steady` adds Kafka's " steady state").
pub fn kafka_producer_total(p: &ProduceStats, secs: f64, steady: bool) -> String {
    let h = &p.service_latency_us;
    let ms_int = |q: f64| {
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(q) / 1000
        }
    };
    format!(
        "{}{} records sent, {:.6} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th.",
        p.records,
        if steady { " steady state" } else { "" },
        per_sec(p.records as f64, secs),
        per_sec(p.bytes as f64 / MB, secs),
        mean(h) / 1000.0,
        h.max() as f64 / 1000.0,
        ms_int(0.50),
        ms_int(0.95),
        ms_int(0.99),
        ms_int(0.999),
    )
}

fn mean(h: &hdrhistogram::Histogram<u64>) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.mean()
    }
}

/// kbench's consumer line of an `e2e` interval (Kafka's tools have none).
pub fn e2e_interval_line(
    c: &crate::measure::recorder::ConsumeStats,
    secs: f64,
    lag: Option<u64>,
) -> String {
    let h = &c.e2e_latency_us;
    let ms = |q: f64| {
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(q) as f64 / 1000.0
        }
    };
    format!(
        "{} records consumed, {:.1} records/sec ({:.2} MB/sec), e2e {:.1} ms p50, {:.1} ms p99, {:.1} ms p99.9, {:.1} ms max, lag {}.",
        c.records,
        per_sec(c.records as f64, secs),
        per_sec(c.bytes as f64 / MB, secs),
        ms(0.5),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0,
        lag.map_or("unknown".to_string(), |l| l.to_string()),
    )
}

/// `kafka-consumer-perf-test`'s header (the summary form, or the detailed per-interval form).
pub fn kafka_consumer_header(detailed: bool) -> &'static str {
    if detailed {
        "time, threadId, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec"
    } else {
        "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec"
    }
}

/// The figures of one consumer row.
pub struct ConsumerRow {
    pub bytes: u64,
    pub records: u64,
    pub elapsed_ms: u64,
    pub rebalance_ms: u64,
}

/// `kafka-consumer-perf-test`'s row; `first` is `start.time` (summary) or `time` (detailed).
pub fn kafka_consumer_row(first: &str, end: Option<&str>, r: &ConsumerRow) -> String {
    let secs = r.elapsed_ms as f64 / 1000.0;
    let fetch_ms = r.elapsed_ms.saturating_sub(r.rebalance_ms);
    let fetch_secs = fetch_ms as f64 / 1000.0;
    let mb = r.bytes as f64 / MB;
    let lead = match end {
        Some(end) => format!("{first}, {end}"),
        None => format!("{first}, 0"),
    };
    format!(
        "{lead}, {:.4}, {:.4}, {}, {:.4}, {}, {}, {:.4}, {:.4}",
        mb,
        per_sec(mb, secs),
        r.records,
        per_sec(r.records as f64, secs),
        r.rebalance_ms,
        fetch_ms,
        per_sec(mb, fetch_secs),
        per_sec(r.records as f64, fetch_secs),
    )
}

/// Kafka's consumer date format, `yyyy-MM-dd HH:mm:ss:SSS`, local time.
pub fn kafka_date(unix_ns: u64) -> String {
    let dt = chrono::DateTime::from_timestamp_nanos(unix_ns as i64).with_timezone(&chrono::Local);
    dt.format("%Y-%m-%d %H:%M:%S:%3f").to_string()
}

/// kbench's latency table: one row per metric, microseconds throughout.
pub fn latency_table(rows: &[(&str, &LatencySummary)]) -> String {
    let mut t = Table::new();
    t.load_preset(NOTHING);
    t.set_header([
        "latency (µs)",
        "count",
        "mean",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "p99.99",
        "max",
    ]);
    for (name, s) in rows {
        let mut row = vec![Cell::new(name)];
        row.push(Cell::new(s.count));
        row.push(Cell::new(format!("{:.1}", s.mean)));
        for v in [s.p50, s.p90, s.p99, s.p999, s.p9999, s.max] {
            row.push(Cell::new(v));
        }
        t.add_row(row);
    }
    for c in 1..9 {
        if let Some(col) = t.column_mut(c) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    t.to_string()
}

/// One row per phase (ramp steps, matrix cells): rate asked and achieved, latency percentiles.
pub fn phase_table(phases: &[crate::report::summary::PhaseSummary]) -> String {
    let mut t = Table::new();
    t.load_preset(NOTHING);
    t.set_header([
        "phase",
        "target/s",
        "produced/s",
        "produce p50",
        "p99",
        "p99.9",
        "consumed/s",
        "e2e p50",
        "p99",
        "p99.9",
        "errors",
    ]);
    let dash = || "-".to_string();
    for ph in phases {
        let mut row = vec![
            ph.name.clone(),
            ph.target_rate_per_sec.map_or(dash(), |r| format!("{r:.0}")),
        ];
        match &ph.produce {
            Some(p) => row.extend([
                format!("{:.1}", p.records_per_sec),
                p.latency_us.p50.to_string(),
                p.latency_us.p99.to_string(),
                p.latency_us.p999.to_string(),
            ]),
            None => row.extend([dash(), dash(), dash(), dash()]),
        }
        match &ph.consume {
            Some(c) => row.extend([
                format!("{:.1}", c.records_per_sec),
                c.e2e_latency_us.p50.to_string(),
                c.e2e_latency_us.p99.to_string(),
                c.e2e_latency_us.p999.to_string(),
            ]),
            None => row.extend([dash(), dash(), dash(), dash()]),
        }
        row.push(ph.produce.as_ref().map_or(0, |p| p.errors).to_string());
        t.add_row(row);
    }
    for c in 1..11 {
        if let Some(col) = t.column_mut(c) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::recorder::ProduceStats;

    fn sample() -> ProduceStats {
        let mut p = ProduceStats::default();
        for v in 1..=1000u64 {
            p.service_latency_us.saturating_record(v * 1000);
        }
        p.records = 1000;
        p.bytes = 1000 * 1024;
        p
    }

    #[test]
    fn producer_lines_match_kafkas_format() {
        let p = sample();
        let line = kafka_producer_interval(&p, 2.0);
        assert_eq!(line, "1000 records sent, 500.0 records/sec (0.49 MB/sec), 500.5 ms avg latency, 1000.4 ms max latency.");
        let total = kafka_producer_total(&p, 2.0, false);
        let re = regex_like(&total);
        assert!(re, "{total}");
        assert!(total.starts_with("1000 records sent, 500.000000 records/sec (0.49 MB/sec), "));
        // Integer ms percentiles of 1..=1000 ms, truncated as Kafka's int arithmetic does.
        assert!(total.ends_with(", 500.50 ms avg latency, 1000.45 ms max latency, 500 ms 50th, 950 ms 95th, 990 ms 99th, 999 ms 99.9th."), "{total}");
        assert!(kafka_producer_total(&p, 2.0, true).starts_with("1000 steady state records sent"));
    }

    /// The shape Kafka's ducktape `parse_stats` expects: comma-separated fields.
    fn regex_like(line: &str) -> bool {
        let fields: Vec<&str> = line.trim_end_matches('.').split(", ").collect();
        fields.len() == 8 && fields[0].ends_with("records sent") && fields[7].ends_with("ms 99.9th")
    }

    #[test]
    fn consumer_row_matches_kafkas_format() {
        let r = ConsumerRow {
            bytes: 10 * 1024 * 1024,
            records: 1000,
            elapsed_ms: 2000,
            rebalance_ms: 500,
        };
        let row = kafka_consumer_row(
            "2026-01-01 00:00:00:000",
            Some("2026-01-01 00:00:02:000"),
            &r,
        );
        assert_eq!(row, "2026-01-01 00:00:00:000, 2026-01-01 00:00:02:000, 10.0000, 5.0000, 1000, 500.0000, 500, 1500, 6.6667, 666.6667");
        assert_eq!(kafka_consumer_header(false).split(", ").count(), 10);
    }

    #[test]
    fn latency_table_has_every_percentile_column() {
        let s = LatencySummary {
            count: 3,
            mean: 2.0,
            p50: 2,
            p90: 3,
            p99: 3,
            p999: 3,
            p9999: 3,
            max: 3,
        };
        let t = latency_table(&[("produce", &s)]);
        for col in ["p50", "p99.9", "p99.99", "max", "produce"] {
            assert!(t.contains(col), "{t}");
        }
    }
}
