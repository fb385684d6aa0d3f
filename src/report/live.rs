//! Live monitoring: `--metrics-listen ADDR` serves the running benchmark's figures in
//! Prometheus text format at `/metrics`.
//!
//! Everything is a gauge set by the reporter once per interval from its own merged HDR
//! snapshot (percentiles as `quantile` labels), plus running totals; nothing is recorded per
//! record. The HTTP side is a tiny thread that answers GET with the encoded registry.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::measure::host::HostSummary;
use crate::measure::recorder::{ConsumeStats, ProduceStats};
use crate::report::summary::{per_sec, MB};

type G = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Quantile {
    quantile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: String,
}

const QUANTILES: [(f64, &str); 5] = [
    (0.5, "0.5"),
    (0.9, "0.9"),
    (0.99, "0.99"),
    (0.999, "0.999"),
    (1.0, "1"),
];

/// The gauges and their registry.
pub struct LiveMetrics {
    registry: Mutex<Registry>,
    produce_rate: G,
    produce_mb: G,
    produce_total: G,
    produce_errors: G,
    produce_latency: Family<Quantile, G>,
    send_delay: Family<Quantile, G>,
    transactions_rate: G,
    commit_latency: Family<Quantile, G>,
    consume_rate: G,
    consume_mb: G,
    consume_total: G,
    e2e_latency: Family<Quantile, G>,
    lag: G,
    cpu: G,
    process_cpu: G,
    rss: G,
    net_rx: G,
    net_tx: G,
    disk_read: G,
    disk_write: G,
    phase: Family<PhaseLabel, G>,
}

impl LiveMetrics {
    fn new() -> Self {
        let mut r = Registry::with_prefix("kbench");
        let g = |r: &mut Registry, name: &str, help: &str| {
            let m = G::default();
            r.register(name, help, m.clone());
            m
        };
        let q = |r: &mut Registry, name: &str, help: &str| {
            let m = Family::<Quantile, G>::default();
            r.register(name, help, m.clone());
            m
        };
        let m = LiveMetrics {
            produce_rate: g(&mut r, "produce_records_per_sec", "Records acknowledged per second in the last interval"),
            produce_mb: g(&mut r, "produce_mb_per_sec", "MiB acknowledged per second in the last interval"),
            produce_total: g(&mut r, "produce_records", "Records acknowledged so far"),
            produce_errors: g(&mut r, "produce_errors", "Records that failed so far"),
            produce_latency: q(&mut r, "produce_latency_us", "Produce latency in the last interval (from the intended send time in the open model), microseconds"),
            send_delay: q(&mut r, "send_delay_us", "Send call minus intended send time in the last interval, microseconds"),
            transactions_rate: g(&mut r, "transactions_per_sec", "Transactions ended (committed or aborted) per second in the last interval"),
            commit_latency: q(&mut r, "commit_latency_us", "commit_transaction calls in the last interval, microseconds"),
            consume_rate: g(&mut r, "consume_records_per_sec", "Records consumed per second in the last interval"),
            consume_mb: g(&mut r, "consume_mb_per_sec", "MiB consumed per second in the last interval"),
            consume_total: g(&mut r, "consume_records", "Records consumed so far"),
            e2e_latency: q(&mut r, "e2e_latency_us", "End-to-end latency in the last interval, microseconds"),
            lag: g(&mut r, "consumer_lag", "Records between the log end and the consumers' positions, all partitions"),
            cpu: g(&mut r, "host_cpu_pct", "Host CPU use, percent of all cores"),
            process_cpu: g(&mut r, "process_cpu_pct", "kbench's own CPU use, percent of one core"),
            rss: g(&mut r, "process_rss_bytes", "kbench's resident memory"),
            net_rx: g(&mut r, "host_net_rx_bytes_per_sec", "Bytes received per second, all interfaces"),
            net_tx: g(&mut r, "host_net_tx_bytes_per_sec", "Bytes sent per second, all interfaces"),
            disk_read: g(&mut r, "host_disk_read_bytes_per_sec", "Disk bytes read per second"),
            disk_write: g(&mut r, "host_disk_write_bytes_per_sec", "Disk bytes written per second"),
            phase: {
                let f = Family::<PhaseLabel, G>::default();
                r.register("phase", "1 for the phase the last interval belonged to", f.clone());
                f
            },
            registry: Mutex::new(Registry::default()),
        };
        *m.registry.lock().unwrap_or_else(|e| e.into_inner()) = r;
        m
    }

    /// Sets every gauge from one interval (all phases merged) and the running totals.
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &self,
        phase: &str,
        secs: f64,
        p: Option<&ProduceStats>,
        totals_p: (u64, u64),
        c: Option<&ConsumeStats>,
        total_c: u64,
        lag: Option<u64>,
        host: &HostSummary,
    ) {
        let quantiles = |fam: &Family<Quantile, G>, h: &Histogram<u64>| {
            for (q, label) in QUANTILES {
                let v = if h.is_empty() {
                    0
                } else if q >= 1.0 {
                    h.max()
                } else {
                    h.value_at_quantile(q)
                };
                fam.get_or_create(&Quantile {
                    quantile: label.into(),
                })
                .set(v as f64);
            }
        };
        if let Some(p) = p {
            self.produce_rate.set(per_sec(p.records as f64, secs));
            self.produce_mb.set(per_sec(p.bytes as f64 / MB, secs));
            quantiles(&self.produce_latency, &p.latency_us);
            quantiles(&self.send_delay, &p.send_delay_us);
            self.transactions_rate
                .set(per_sec(p.txn.ended() as f64, secs));
            quantiles(&self.commit_latency, &p.txn.commit_latency_us);
        }
        self.produce_total.set(totals_p.0 as f64);
        self.produce_errors.set(totals_p.1 as f64);
        if let Some(c) = c {
            self.consume_rate.set(per_sec(c.records as f64, secs));
            self.consume_mb.set(per_sec(c.bytes as f64 / MB, secs));
            quantiles(&self.e2e_latency, &c.e2e_latency_us);
        }
        self.consume_total.set(total_c as f64);
        if let Some(l) = lag {
            self.lag.set(l as f64);
        }
        if host.samples > 0 {
            self.cpu.set(host.cpu_pct_avg);
            self.process_cpu.set(host.process_cpu_pct_avg);
            self.rss.set(host.rss_bytes_max as f64);
            self.net_rx.set(host.net_rx_bytes_per_sec);
            self.net_tx.set(host.net_tx_bytes_per_sec);
            self.disk_read.set(host.disk_read_bytes_per_sec);
            self.disk_write.set(host.disk_write_bytes_per_sec);
        }
        self.phase.clear();
        self.phase
            .get_or_create(&PhaseLabel {
                phase: phase.into(),
            })
            .set(1.0);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(
            &mut out,
            &self.registry.lock().unwrap_or_else(|e| e.into_inner()),
        );
        out
    }
}

/// The endpoint: stops when dropped.
pub struct LiveServer {
    pub metrics: Arc<LiveMetrics>,
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl LiveServer {
    pub fn start(addr: SocketAddr) -> Result<LiveServer> {
        let listener = TcpListener::bind(addr)
            .with_context(|| format!("--metrics-listen: cannot listen on {addr}"))?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let metrics = Arc::new(LiveMetrics::new());
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (metrics.clone(), stop.clone());
        std::thread::Builder::new()
            .name("kbench-metrics".into())
            .spawn(move || serve(&listener, &m, &s))?;
        Ok(LiveServer {
            metrics,
            addr,
            stop,
        })
    }
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(listener: &TcpListener, metrics: &LiveMetrics, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((mut conn, _)) => {
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 2048];
                let n = conn.read(&mut buf).unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let (status, body) =
                    if request.starts_with("GET /metrics") || request.starts_with("GET / ") {
                        ("200 OK", metrics.render())
                    } else {
                        ("404 Not Found", "try /metrics\n".to_string())
                    };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_gauges_from_an_interval_over_http() {
        let server = LiveServer::start("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut p = ProduceStats {
            records: 500,
            bytes: 500 * 1024,
            ..Default::default()
        };
        (1..=500).for_each(|v| p.latency_us.saturating_record(v * 10));
        server.metrics.update(
            "steady",
            1.0,
            Some(&p),
            (500, 0),
            None,
            0,
            Some(7),
            &HostSummary::default(),
        );
        let mut conn = std::net::TcpStream::connect(server.addr).unwrap();
        conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        conn.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        assert!(
            text.contains("kbench_produce_records_per_sec 500.0"),
            "{text}"
        );
        assert!(
            text.contains("kbench_produce_latency_us{quantile=\"0.99\"} 49"),
            "{text}"
        );
        assert!(text.contains("kbench_consumer_lag 7.0"), "{text}");
        assert!(
            text.contains("kbench_phase{phase=\"steady\"} 1.0"),
            "{text}"
        );
    }
}
