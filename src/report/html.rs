//! `kbench report RUN_DIR`: a self-contained `report.html` (inline SVG charts, a summary
//! table, inline CSS; no script, no external resource) plus each chart as its own `.svg`.
//!
//! It reads the run folder's `summary.json` (phases, exact percentiles, histograms) and
//! `timeseries.csv` (per-interval rows, warm-up included and shaded). It writes only into the
//! run folder and reads nothing else; the charts themselves are drawn in `charts`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use crate::analyze::{read_series, read_summary, RunPaths, SeriesRow, SummaryView};
use crate::report::charts::{self, FaultMark, LineChart, Series};
use crate::report::summary::decode_histogram;

/// Writes report.html and the chart SVGs into a run folder.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The run folder (results/<run>/, with summary.json and timeseries.csv).
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,
}

/// Runs `kbench report`; `Err` (exit 2) when the folder cannot be read or written.
pub fn run(args: ReportArgs) -> Result<ExitCode> {
    let path = write_report(&args.run_dir)?;
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// One chart: file name, heading, SVG text (None: no data, with the reason).
struct Figure {
    file: &'static str,
    heading: &'static str,
    svg: std::result::Result<String, &'static str>,
}

/// Writes `report.html` and the SVGs into `run_dir`; returns the report's path.
pub fn write_report(run_dir: &Path) -> Result<PathBuf> {
    let paths = RunPaths::resolve(run_dir)?;
    let summary = read_summary(&paths.summary)?;
    let rows = if paths.timeseries.is_file() {
        // The last, partial interval would plot as a drop to zero that never happened.
        crate::analyze::full_intervals(read_series(&paths.timeseries)?)
    } else {
        Vec::new()
    };
    let dir = paths
        .summary
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let faults = FaultView::read(&paths.summary);
    let figures = figures(&summary, &rows, &faults)?;
    for f in &figures {
        if let Ok(svg) = &f.svg {
            let p = dir.join(f.file);
            std::fs::write(&p, svg).with_context(|| format!("cannot write '{}'", p.display()))?;
        }
    }
    let fault_table = faults_tables(&paths.summary, &dir)?;
    let html = page(&summary, &rows, &figures, fault_table.as_deref());
    let out = dir.join("report.html");
    std::fs::write(&out, html).with_context(|| format!("cannot write '{}'", out.display()))?;
    Ok(out)
}

/// The fault table: written as faults.md beside the report (for a README or a CI job
/// summary); returned as HTML for the page. None for a run without faults.
fn faults_tables(summary: &Path, dir: &Path) -> Result<Option<String>> {
    let v: serde_json::Value = std::fs::read_to_string(summary)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    if let Some(md) = crate::report::faults::markdown(&v) {
        let p = dir.join("faults.md");
        std::fs::write(&p, md).with_context(|| format!("cannot write '{}'", p.display()))?;
    }
    Ok(crate::report::faults::html(&v, esc))
}

/// Rows of phases the summary does not hold (the warm-up) are drawn but shaded.
fn is_excluded(s: &SummaryView, r: &SeriesRow) -> bool {
    s.phase(&r.phase).is_none()
}

fn shaded(s: &SummaryView, rows: &[SeriesRow]) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for r in rows.iter().filter(|r| is_excluded(s, r)) {
        let span = ((r.elapsed_sec - r.interval_sec).max(0.0), r.elapsed_sec);
        match out.last_mut() {
            Some(last) if (last.1 - span.0).abs() < 1e-6 => last.1 = span.1,
            _ => out.push(span),
        }
    }
    out
}

fn series(name: &str, rows: &[SeriesRow], f: impl Fn(&SeriesRow) -> Option<f64>) -> Series {
    Series {
        name: name.to_string(),
        points: rows
            .iter()
            .filter_map(|r| Some((r.elapsed_sec, f(r)?)))
            .collect(),
    }
}

/// The faults of a run as the charts need them: marks, and the 100 ms series around them.
#[derive(Default)]
struct FaultView {
    marks: Vec<FaultMark>,
    /// Merged over the faults and sorted by time.
    points: Vec<Point>,
}

/// One 100 ms point: s, acks/s, errors/s, p99 ms.
type Point = (f64, f64, f64, f64);
/// A line of a fault chart: its name and what it plots of a point.
type Line<'a> = (&'a str, fn(&Point) -> f64);

impl FaultView {
    /// From summary.json's `faults` (absent in older results: no marks).
    fn read(summary: &Path) -> FaultView {
        let v: serde_json::Value = std::fs::read_to_string(summary)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let mut view = FaultView::default();
        let mut seen = std::collections::BTreeMap::new();
        for f in v["faults"].as_array().into_iter().flatten() {
            let Some(at) = f["t_f_ms"].as_f64() else {
                continue;
            };
            view.marks.push(FaultMark {
                at: at / 1000.0,
                heal: f["t_h_ms"].as_f64().map(|h| h / 1000.0),
            });
            for p in f["produce"]["series_100ms"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let t = p["t_ms"].as_u64().unwrap_or(0);
                seen.entry(t).or_insert((
                    t as f64 / 1000.0,
                    p["acks_per_sec"].as_f64().unwrap_or(0.0),
                    p["errors_per_sec"].as_f64().unwrap_or(0.0),
                    p["p99_us"].as_f64().unwrap_or(0.0) / 1000.0,
                ));
            }
        }
        view.points = seen.into_values().collect();
        view
    }

    /// A chart of the 100 ms series (`pick` chooses the lines), or why there is none.
    fn chart(
        &self,
        title: &'static str,
        y_desc: &'static str,
        pick: &[Line],
    ) -> std::result::Result<String, &'static str> {
        if self.points.is_empty() {
            return Err("no faults in this run");
        }
        let series = pick
            .iter()
            .map(|(name, f)| Series {
                name: name.to_string(),
                points: self.points.iter().map(|p| (p.0, f(p))).collect(),
            })
            .collect();
        charts::line_chart(&LineChart {
            title,
            x_desc: "elapsed (s)",
            y_desc,
            series,
            shaded: Vec::new(),
            shaded_label: "",
            markers: false,
            x_from_zero: false,
            faults: self.marks.clone(),
        })
        .map_err(|_| "the chart could not be drawn")
    }
}

fn over_time(
    s: &SummaryView,
    rows: &[SeriesRow],
    title: &'static str,
    y_desc: &'static str,
    lines: Vec<Series>,
    faults: &FaultView,
) -> std::result::Result<String, &'static str> {
    let lines: Vec<Series> = lines.into_iter().filter(|l| !l.points.is_empty()).collect();
    if lines.is_empty() {
        return Err("no data for this chart in timeseries.csv");
    }
    charts::line_chart(&LineChart {
        title,
        x_desc: "elapsed (s)",
        y_desc,
        series: lines,
        shaded: shaded(s, rows),
        shaded_label: "warm-up (not in the summary)",
        markers: false,
        x_from_zero: true,
        faults: faults.marks.clone(),
    })
    .map_err(|_| "the chart could not be drawn")
}

fn ms(v: u64) -> f64 {
    v as f64 / 1000.0
}

fn figures(s: &SummaryView, rows: &[SeriesRow], faults: &FaultView) -> Result<Vec<Figure>> {
    let has_produce = s.phases.iter().any(|p| p.produce.is_some());
    let has_consume = s.phases.iter().any(|p| p.consume.is_some());
    let prod = |r: &SeriesRow, v: u64| (r.produce_records > 0).then_some(ms(v));
    let cons = |r: &SeriesRow, v: u64| (r.consume_records > 0).then_some(ms(v));
    let mut thr = Vec::new();
    if has_produce {
        thr.push(series("produced", rows, |r| {
            Some(r.produce_records_per_sec)
        }));
    }
    if has_consume {
        thr.push(series("consumed", rows, |r| {
            Some(r.consume_records_per_sec)
        }));
    }
    let mut lat = Vec::new();
    if has_produce {
        lat.push(series("produce p50", rows, |r| prod(r, r.produce_p50_us)));
        lat.push(series("produce p99", rows, |r| prod(r, r.produce_p99_us)));
        lat.push(series("produce p99.9", rows, |r| {
            prod(r, r.produce_p999_us)
        }));
    }
    if has_consume {
        lat.push(series("e2e p50", rows, |r| cons(r, r.e2e_p50_us)));
        lat.push(series("e2e p99", rows, |r| cons(r, r.e2e_p99_us)));
        lat.push(series("e2e p99.9", rows, |r| cons(r, r.e2e_p999_us)));
    }
    let mb = 1024.0 * 1024.0;
    let io = vec![
        series("net rx", rows, |r| Some(r.net_rx_bytes_per_sec / mb)),
        series("net tx", rows, |r| Some(r.net_tx_bytes_per_sec / mb)),
        series("disk read", rows, |r| Some(r.disk_read_bytes_per_sec / mb)),
        series("disk write", rows, |r| {
            Some(r.disk_write_bytes_per_sec / mb)
        }),
    ];
    let cpu = vec![
        series("host CPU", rows, |r| Some(r.cpu_pct)),
        series("kbench process CPU", rows, |r| Some(r.process_cpu_pct)),
    ];
    let lag = vec![series("consumer lag", rows, |r| r.lag.map(|l| l as f64))];
    Ok(vec![
        Figure {
            file: "throughput.svg",
            heading: "Throughput over time",
            svg: over_time(s, rows, "Throughput", "records/s", thr, faults),
        },
        Figure {
            file: "latency.svg",
            heading: "Latency percentiles over time",
            svg: over_time(s, rows, "Latency per interval", "latency (ms)", lat, faults),
        },
        Figure {
            file: "failover-acks.svg",
            heading: "Acknowledgements and errors around faults (100 ms)",
            svg: faults.chart(
                "Acks and errors per second, 100 ms buckets",
                "records/s",
                &[("acks/s", |p| p.1), ("errors/s", |p| p.2)],
            ),
        },
        Figure {
            file: "failover-latency.svg",
            heading: "Produce p99 around faults (100 ms)",
            svg: faults.chart(
                "Produce p99, 100 ms buckets",
                "latency (ms)",
                &[("p99", |p| p.3)],
            ),
        },
        Figure {
            file: "spectrum.svg",
            heading: "Percentile spectrum (HDR)",
            svg: spectrum(s)?,
        },
        Figure {
            file: "latency-vs-throughput.svg",
            heading: "Latency vs throughput across phases",
            svg: latency_vs_throughput(s),
        },
        Figure {
            file: "cells.svg",
            heading: "Phases and matrix cells side by side",
            svg: cells(s),
        },
        Figure {
            file: "host-cpu.svg",
            heading: "Host CPU over time",
            svg: over_time(s, rows, "CPU", "CPU (%)", cpu, faults),
        },
        Figure {
            file: "host-io.svg",
            heading: "Host network and disk over time",
            svg: over_time(s, rows, "Network and disk", "MB/s", io, faults),
        },
        Figure {
            file: "lag.svg",
            heading: "Consumer lag over time",
            svg: over_time(s, rows, "Consumer lag", "records", lag, faults),
        },
    ])
}

/// x = 1/(1-q) from 1 (q=0) in tenth-decade steps up to the histogram's resolution: beyond
/// 1/(1-q) = count, every quantile is the maximum.
fn spectrum(s: &SummaryView) -> Result<std::result::Result<String, &'static str>> {
    let mut lines = Vec::new();
    for p in &s.phases {
        let hs = [
            ("produce", &p.histograms.produce_latency_us),
            ("e2e", &p.histograms.e2e_latency_us),
        ];
        for (what, enc) in hs {
            let Some(enc) = enc else { continue };
            let h = decode_histogram(enc)
                .with_context(|| format!("phase '{}': {what} histogram", p.name))?;
            if h.is_empty() {
                continue;
            }
            let limit = (h.len() as f64).min(1e7);
            let points = (0..)
                .map(|k| 10f64.powf(k as f64 / 10.0))
                .take_while(|&x| x <= limit)
                .map(|x| (x, ms(h.value_at_quantile(1.0 - 1.0 / x))))
                .collect();
            lines.push(Series {
                name: format!("{} {what}", p.name),
                points,
            });
        }
    }
    if lines.is_empty() {
        return Ok(Err("no latency histograms in summary.json"));
    }
    Ok(charts::spectrum_chart("Latency by percentile", &lines)
        .map_err(|_| "the chart could not be drawn"))
}

/// One point per phase: achieved throughput (x) and its latency percentiles (y).
fn latency_vs_throughput(s: &SummaryView) -> std::result::Result<String, &'static str> {
    type Pick = fn(&crate::analyze::PhaseView) -> Option<(f64, u64)>;
    let picks: [(&str, Pick); 4] = [
        ("produce p50", |p| {
            p.produce
                .as_ref()
                .map(|t| (t.records_per_sec, t.latency_us.p50))
        }),
        ("produce p99", |p| {
            p.produce
                .as_ref()
                .map(|t| (t.records_per_sec, t.latency_us.p99))
        }),
        ("e2e p50", |p| {
            p.consume
                .as_ref()
                .map(|c| (c.records_per_sec, c.e2e_latency_us.p50))
        }),
        ("e2e p99", |p| {
            p.consume
                .as_ref()
                .map(|c| (c.records_per_sec, c.e2e_latency_us.p99))
        }),
    ];
    let lines: Vec<Series> = picks
        .iter()
        .map(|(name, f)| Series {
            name: name.to_string(),
            points: s
                .phases
                .iter()
                .filter_map(f)
                .map(|(x, y)| (x, ms(y)))
                .collect(),
        })
        .filter(|l| !l.points.is_empty())
        .collect();
    if lines.is_empty() {
        return Err("no phase with throughput and latency");
    }
    charts::line_chart(&LineChart {
        title: "Latency vs throughput (one point per phase)",
        x_desc: "throughput (records/s)",
        y_desc: "latency (ms)",
        series: lines,
        shaded: vec![],
        shaded_label: "",
        markers: true,
        x_from_zero: false,
        faults: Vec::new(),
    })
    .map_err(|_| "the chart could not be drawn")
}

/// Cell label: the matrix parameters when the phase has them, else its name.
fn cell_label(p: &crate::analyze::PhaseView) -> String {
    let params = p.params_label();
    if params.is_empty() {
        p.name.clone()
    } else {
        params
    }
}

fn cells(s: &SummaryView) -> std::result::Result<String, &'static str> {
    let bars: Vec<(String, f64)> = s
        .phases
        .iter()
        .filter_map(|p| {
            let us = match (&p.consume, &p.produce) {
                (Some(c), _) if c.e2e_latency_us.count > 0 => c.e2e_latency_us.p99,
                (_, Some(t)) => t.latency_us.p99,
                _ => return None,
            };
            Some((cell_label(p), ms(us)))
        })
        .collect();
    if bars.is_empty() {
        return Err("no phase with latency");
    }
    charts::bar_chart(
        "p99 latency per phase (e2e where measured, else produce)",
        "p99 latency (ms)",
        &bars,
    )
    .map_err(|_| "the chart could not be drawn")
}

/// Escapes text for HTML (run names, phase names and params come from the user).
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1000px}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px}\
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\
th{background:#f3f3f3}td.l,th.l{text-align:left}.note{color:#666;font-size:13px}\
.warm{background:#ffe0b2;padding:0 4px}figure{margin:0}svg{max-width:100%;height:auto}";

fn page(s: &SummaryView, rows: &[SeriesRow], figures: &[Figure], faults: Option<&str>) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>kbench report: {name}</title><style>{STYLE}</style></head><body>\n\
         <h1>kbench report: {name}</h1>\n<p class=\"note\">run {id} · {cmd} · started {start} · \
         latency model: {model}</p>\n",
        name = esc(&s.name),
        id = esc(&s.run_id),
        cmd = esc(&s.command),
        start = esc(&s.started_at),
        model = esc(&s.latency_model),
    );
    h.push_str(&summary_table(s));
    h.push_str(faults.unwrap_or_default());
    let warm = rows.iter().filter(|r| is_excluded(s, r)).count();
    if warm > 0 {
        let _ = writeln!(
            h,
            "<p class=\"note\"><span class=\"warm\">shaded</span> on the time charts: {warm} \
             warm-up interval(s), shown but excluded from the summary.</p>"
        );
    }
    for f in figures {
        let _ = writeln!(h, "<h2>{}</h2>", f.heading);
        match &f.svg {
            Ok(svg) => {
                let _ = writeln!(h, "<figure>{svg}</figure>");
            }
            Err(why) => {
                let _ = writeln!(h, "<p class=\"note\">Not drawn: {why}.</p>");
            }
        }
    }
    h.push_str("</body></html>\n");
    h
}

fn summary_table(s: &SummaryView) -> String {
    let params = s.phases.iter().any(|p| !p.params_label().is_empty());
    let mut h =
        String::from("<h2>Summary (warm-up excluded)</h2>\n<table><tr><th class=\"l\">phase</th>");
    if params {
        h.push_str("<th class=\"l\">params</th>");
    }
    h.push_str(
        "<th>duration s</th><th>target rec/s</th><th>produced rec/s</th><th>MB/s</th>\
         <th>produce p50 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>consumed rec/s</th>\
         <th>e2e p50 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>lost</th><th>max lag</th></tr>\n",
    );
    let opt = |v: Option<String>| v.unwrap_or_else(|| "–".to_string());
    for p in &s.phases {
        let _ = write!(h, "<tr><td class=\"l\">{}</td>", esc(&p.name));
        if params {
            let _ = write!(h, "<td class=\"l\">{}</td>", esc(&p.params_label()));
        }
        let t = p.produce.as_ref();
        let c = p.consume.as_ref();
        let cells = [
            format!("{:.2}", p.duration_sec),
            opt(p.target_rate_per_sec.map(|r| format!("{r:.0}"))),
            opt(t.map(|t| format!("{:.0}", t.records_per_sec))),
            opt(t.map(|t| format!("{:.2}", t.mb_per_sec))),
            opt(t.map(|t| format!("{:.3}", ms(t.latency_us.p50)))),
            opt(t.map(|t| format!("{:.3}", ms(t.latency_us.p99)))),
            opt(t.map(|t| format!("{:.3}", ms(t.latency_us.p999)))),
            opt(c.map(|c| format!("{:.0}", c.records_per_sec))),
            opt(c.map(|c| format!("{:.3}", ms(c.e2e_latency_us.p50)))),
            opt(c.map(|c| format!("{:.3}", ms(c.e2e_latency_us.p99)))),
            opt(c.map(|c| format!("{:.3}", ms(c.e2e_latency_us.p999)))),
            opt(c.and_then(|c| c.lost).map(|v| v.to_string())),
            opt(c.and_then(|c| c.max_lag).map(|v| v.to_string())),
        ];
        for cell in cells {
            let _ = write!(h, "<td>{cell}</td>");
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
    h
}
