//! The reporter: once per interval it swaps every worker's recorders, merges them, prints the
//! interval lines, appends time-series rows and hlog intervals, and rewrites `summary.json`.
//! At the end it builds the summary and prints the final blocks. The only place that formats.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;

use crate::load::consumer::ConsumerShared;
use crate::load::producer::ProducerShared;
use crate::measure::clock;
use crate::measure::host::{HostSample, HostSummary};
use crate::measure::recorder::{ConsumeStats, Phase, ProduceStats};
use crate::report::console;
use crate::report::hlog::HlogWriter;
use crate::report::summary::{self, Histograms, PhaseSummary, Summary};
use crate::report::timeseries::{Row, TimeseriesWriter};
use crate::run::progress::Progress;

/// Result files of a run.
pub struct ResultFiles {
    pub dir: PathBuf,
    timeseries: TimeseriesWriter,
    hlog: HlogWriter,
}

impl ResultFiles {
    pub fn create(dir: &Path, base_ns: u64) -> Result<Self> {
        Ok(ResultFiles {
            dir: dir.to_path_buf(),
            timeseries: TimeseriesWriter::create(&dir.join("timeseries.csv"))?,
            hlog: HlogWriter::create(&dir.join("latency.hlog"), base_ns)?,
        })
    }
}

/// Totals per phase, kept for the summary.
#[derive(Default)]
pub struct Totals {
    pub produce: [ProduceStats; 2],
    pub consume: [ConsumeStats; 2],
    pub host: [Vec<HostSample>; 2],
    pub max_lag: Option<u64>,
}

/// Which kinds of workers this run has and how to print their lines.
pub struct Reporter {
    pub producers: Vec<Arc<ProducerShared>>,
    pub consumers: Vec<Arc<ConsumerShared>>,
    pub start_ns: u64,
    /// When the measured phase starts (clock ns); `start_ns` without a warm-up.
    pub measured_start_ns: Option<u64>,
    pub files: Option<ResultFiles>,
    pub totals: Totals,
    pub progress: Progress,
    /// Print `kafka-consumer-perf-test`'s detailed rows each interval.
    pub consumer_detailed_rows: bool,
    last_ns: u64,
    spare_p: [ProduceStats; 2],
    spare_c: [ConsumeStats; 2],
    announced_steady: bool,
    pub warmup_records: Option<u64>,
    /// The closing call: its console line is skipped when nothing happened in it.
    pub last_interval: bool,
}

impl Reporter {
    pub fn new(
        producers: Vec<Arc<ProducerShared>>,
        consumers: Vec<Arc<ConsumerShared>>,
        start_ns: u64,
        files: Option<ResultFiles>,
        progress: Progress,
    ) -> Self {
        Reporter {
            producers,
            consumers,
            start_ns,
            measured_start_ns: None,
            files,
            totals: Totals::default(),
            progress,
            consumer_detailed_rows: false,
            last_ns: start_ns,
            spare_p: Default::default(),
            spare_c: Default::default(),
            announced_steady: false,
            warmup_records: None,
            last_interval: false,
        }
    }

    fn out(&self, line: &str) {
        self.progress.println(line);
    }

    /// Closes one interval ending now: collects, prints, records. `host` are the samples taken
    /// during it.
    pub fn interval(&mut self, host: Vec<HostSample>) -> Result<()> {
        let now = clock::now_ns();
        let (from, to) = (self.last_ns, now);
        self.last_ns = now;

        let mut produce: [ProduceStats; 2] = Default::default();
        let mut consume: [ConsumeStats; 2] = Default::default();
        for p in &self.producers {
            p.stats.swap(&mut self.spare_p);
            for ph in Phase::ALL {
                produce[ph.index()].add(&self.spare_p[ph.index()]);
            }
        }
        for c in &self.consumers {
            c.stats.swap(&mut self.spare_c);
            for ph in Phase::ALL {
                consume[ph.index()].add(&self.spare_c[ph.index()]);
            }
        }
        let lag = self.current_lag();
        if let Some(l) = lag {
            self.totals.max_lag = Some(self.totals.max_lag.map_or(l, |m| m.max(l)));
        }

        // Console lines for the whole interval (phases together), as Kafka's tool prints them.
        let secs = (to - from) as f64 / 1e9;
        if !self.producers.is_empty() {
            let mut all = produce[0].clone();
            all.add(&produce[1]);
            if !self.announced_steady
                && self.warmup_records.is_some()
                && produce[Phase::Measured.index()].records > 0
            {
                self.announced_steady = true;
                self.out("In steady state.");
            }
            if !(self.last_interval && all.records + all.errors == 0) {
                self.out(&console::kafka_producer_interval(&all, secs));
            }
        }
        if !self.consumers.is_empty() {
            let mut all = consume[0].clone();
            all.add(&consume[1]);
            if self.consumer_detailed_rows {
                let row = console::ConsumerRow {
                    bytes: all.bytes,
                    records: all.records,
                    elapsed_ms: (to - from) / 1_000_000,
                    rebalance_ms: 0,
                };
                self.out(&console::kafka_consumer_row(
                    &console::kafka_date(to),
                    None,
                    &row,
                ));
            } else if !(self.producers.is_empty() || self.last_interval && all.records == 0) {
                self.out(&e2e_interval_line(&all, secs, lag));
            }
        }

        // Rows and histograms per phase that had a share of this interval.
        let measured_start = self.measured_start_ns.unwrap_or(u64::MAX);
        for ph in Phase::ALL {
            let (lo, hi) = match ph {
                Phase::Warmup => (from, to.min(measured_start)),
                Phase::Measured => (from.max(measured_start), to),
            };
            let p = &produce[ph.index()];
            let c = &consume[ph.index()];
            let active = p.records + p.errors + c.records > 0;
            if hi <= lo && !active {
                continue;
            }
            let (lo, hi) = if hi > lo { (lo, hi) } else { (from, to) };
            let hs: Vec<HostSample> = host
                .iter()
                .filter(|s| s.t_ns > lo && s.t_ns <= hi)
                .cloned()
                .collect();
            if let Some(f) = &mut self.files {
                let row = Row::new(
                    (hi - self.start_ns) as f64 / 1e9,
                    (hi - lo) as f64 / 1e9,
                    ph.name(),
                    (!self.producers.is_empty()).then_some(p),
                    (!self.consumers.is_empty()).then_some(c),
                    lag,
                    &HostSummary::of(&hs),
                );
                f.timeseries.write(&row)?;
                if !self.producers.is_empty() {
                    f.hlog.write("produce", lo, hi, &p.latency_us)?;
                    f.hlog.write("service", lo, hi, &p.service_latency_us)?;
                    f.hlog.write("send_delay", lo, hi, &p.send_delay_us)?;
                }
                if !self.consumers.is_empty() {
                    f.hlog.write("e2e", lo, hi, &c.e2e_latency_us)?;
                }
            }
            self.totals.produce[ph.index()].add(p);
            self.totals.consume[ph.index()].add(c);
            self.totals.host[ph.index()].extend(hs);
        }
        Ok(())
    }

    /// Total lag over all consumers, if any consumer knows its lag.
    pub fn current_lag(&self) -> Option<u64> {
        let known: Vec<i64> = self
            .consumers
            .iter()
            .map(|c| c.lag.load(std::sync::atomic::Ordering::Relaxed))
            .filter(|&l| l >= 0)
            .collect();
        (!known.is_empty()).then(|| known.iter().sum::<i64>() as u64)
    }

    /// Seconds each phase lasted, given the run's end.
    pub fn phase_secs(&self, end_ns: u64) -> [f64; 2] {
        let m = self
            .measured_start_ns
            .unwrap_or(self.start_ns)
            .clamp(self.start_ns, end_ns.max(self.start_ns));
        [
            (m - self.start_ns) as f64 / 1e9,
            (end_ns.saturating_sub(m)) as f64 / 1e9,
        ]
    }

    /// The measured phase as the summary shows it.
    pub fn measured_phase(&self, end_ns: u64) -> PhaseSummary {
        let i = Phase::Measured.index();
        let secs = self.phase_secs(end_ns)[i];
        let p = &self.totals.produce[i];
        let c = &self.totals.consume[i];
        let has_p = !self.producers.is_empty();
        let has_c = !self.consumers.is_empty();
        let mut consume = has_c.then(|| summary::consume_summary(c, secs));
        if let Some(cs) = &mut consume {
            cs.max_lag = self.totals.max_lag;
            cs.rebalance_time_ms = self.rebalance_ms();
        }
        PhaseSummary {
            name: "measured".into(),
            duration_sec: (secs * 1000.0).round() / 1000.0,
            produce: has_p.then(|| summary::produce_summary(p, secs)),
            consume,
            host: HostSummary::of(&self.totals.host[i]),
            histograms: Histograms {
                produce_latency_us: has_p.then(|| summary::encode_histogram(&p.latency_us)),
                service_latency_us: has_p.then(|| summary::encode_histogram(&p.service_latency_us)),
                send_delay_us: has_p.then(|| summary::encode_histogram(&p.send_delay_us)),
                e2e_latency_us: has_c.then(|| summary::encode_histogram(&c.e2e_latency_us)),
            },
        }
    }

    /// Longest time any member spent joining or rebalancing.
    pub fn rebalance_ms(&self) -> u64 {
        self.consumers
            .iter()
            .map(|c| c.rebalance_ns.load(std::sync::atomic::Ordering::Relaxed) / 1_000_000)
            .max()
            .unwrap_or(0)
    }

    /// Rewrites summary.json (no-op without result files).
    pub fn write_summary(&self, s: &Summary) -> Result<()> {
        if let Some(f) = &self.files {
            summary::write(s, &f.dir.join("summary.json"))?;
        }
        Ok(())
    }
}

fn e2e_interval_line(c: &ConsumeStats, secs: f64, lag: Option<u64>) -> String {
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
        summary::per_sec(c.records as f64, secs),
        summary::per_sec(c.bytes as f64 / summary::MB, secs),
        ms(0.5),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0,
        lag.map_or("unknown".to_string(), |l| l.to_string()),
    )
}

/// Writes to stdout, treating a closed pipe as "nobody is reading" rather than an error.
pub fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}
