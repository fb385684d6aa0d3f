//! Host sampling on its own thread at 1 Hz: CPU (total, per core, this process), memory, disk
//! read/write and network rx/tx per interface, loopback included.
//!
//! One long-lived `sysinfo` instance refreshed with `refresh_specifics`-style calls; the first
//! CPU reading (always 0, it needs two refreshes) is discarded. Samples go to a shared vector
//! that the reporter drains; this module never prints.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sysinfo::{
    CpuRefreshKind, Disks, MemoryRefreshKind, Networks, Pid, ProcessRefreshKind, ProcessesToUpdate,
    System,
};

use super::clock;

/// One reading; rates are per second over the time since the previous reading.
#[derive(Debug, Clone, Default)]
pub struct HostSample {
    pub t_ns: u64,
    pub cpu_pct: f64,
    pub cpu_pct_per_core: Vec<f64>,
    /// This process, in percent of one core (200% = two cores busy).
    pub process_cpu_pct: f64,
    pub mem_used_bytes: u64,
    pub rss_bytes: u64,
    pub disk_read_bytes_per_sec: f64,
    pub disk_write_bytes_per_sec: f64,
    /// Interface name → (rx, tx) bytes per second.
    pub net_bytes_per_sec: BTreeMap<String, (f64, f64)>,
}

/// Static facts about the machine, for the summary.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HostInfo {
    pub hostname: String,
    pub os: String,
    pub kernel: String,
    pub cpu_model: String,
    pub logical_cpus: usize,
    pub memory_bytes: u64,
}

pub fn host_info() -> HostInfo {
    let mut sys = System::new();
    sys.refresh_cpu_list(CpuRefreshKind::nothing());
    sys.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
    HostInfo {
        hostname: System::host_name().unwrap_or_default(),
        os: System::long_os_version().unwrap_or_default(),
        kernel: System::kernel_version().unwrap_or_default(),
        cpu_model: sys
            .cpus()
            .first()
            .map(|c| c.brand().to_string())
            .unwrap_or_default(),
        logical_cpus: sys.cpus().len(),
        memory_bytes: sys.total_memory(),
    }
}

/// The sampling thread; stops when dropped.
pub struct HostSampler {
    samples: Arc<Mutex<Vec<HostSample>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl HostSampler {
    pub fn start(period: Duration) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (samples.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name("kbench-host".into())
            .spawn(move || sample_loop(period, &s, &st))
            .ok();
        HostSampler {
            samples,
            stop,
            handle,
        }
    }

    /// Takes the samples collected since the last call.
    pub fn drain(&self) -> Vec<HostSample> {
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for HostSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn sample_loop(period: Duration, out: &Mutex<Vec<HostSample>>, stop: &AtomicBool) {
    let pid = Pid::from_u32(std::process::id());
    let mut sys = System::new();
    let mut networks = Networks::new_with_refreshed_list();
    let mut disks = Disks::new_with_refreshed_list();
    let refresh = |sys: &mut System| {
        sys.refresh_cpu_specifics(CpuRefreshKind::nothing().with_cpu_usage());
        sys.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            false,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
    };
    refresh(&mut sys); // discarded: CPU usage needs two readings
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // Sleep in short steps so a stop is quick.
        let until = last + period;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(
                Duration::from_millis(50).min(until.saturating_duration_since(Instant::now())),
            );
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        refresh(&mut sys);
        networks.refresh(true);
        disks.refresh(true);
        let secs = last.elapsed().as_secs_f64().max(1e-3);
        last = Instant::now();
        let (mut rd, mut wr) = (0u64, 0u64);
        let mut seen = std::collections::HashSet::new();
        for d in disks.list() {
            // The same device can be mounted several times; count it once.
            if seen.insert(d.name().to_os_string()) {
                let u = d.usage();
                rd += u.read_bytes;
                wr += u.written_bytes;
            }
        }
        let proc_ = sys.process(pid);
        let sample = HostSample {
            t_ns: clock::now_ns(),
            cpu_pct: sys.global_cpu_usage() as f64,
            cpu_pct_per_core: sys.cpus().iter().map(|c| c.cpu_usage() as f64).collect(),
            process_cpu_pct: proc_.map_or(0.0, |p| p.cpu_usage() as f64),
            mem_used_bytes: sys.used_memory(),
            rss_bytes: proc_.map_or(0, |p| p.memory()),
            disk_read_bytes_per_sec: rd as f64 / secs,
            disk_write_bytes_per_sec: wr as f64 / secs,
            net_bytes_per_sec: networks
                .iter()
                .map(|(name, n)| {
                    (
                        name.clone(),
                        (n.received() as f64 / secs, n.transmitted() as f64 / secs),
                    )
                })
                .collect(),
        };
        out.lock().unwrap_or_else(|e| e.into_inner()).push(sample);
    }
}

/// Host figures over a span of samples, as the summary and the time series show them.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct HostSummary {
    pub samples: usize,
    pub cpu_pct_avg: f64,
    pub cpu_pct_max: f64,
    pub cpu_pct_per_core_avg: Vec<f64>,
    pub process_cpu_pct_avg: f64,
    pub mem_used_bytes_max: u64,
    pub rss_bytes_max: u64,
    pub net_rx_bytes_per_sec: f64,
    pub net_tx_bytes_per_sec: f64,
    pub disk_read_bytes_per_sec: f64,
    pub disk_write_bytes_per_sec: f64,
    /// Interface → average rx/tx bytes per second.
    pub net_interfaces: BTreeMap<String, NetRates>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NetRates {
    pub rx_bytes_per_sec: f64,
    pub tx_bytes_per_sec: f64,
}

impl HostSummary {
    pub fn of(samples: &[HostSample]) -> HostSummary {
        let n = samples.len();
        if n == 0 {
            return HostSummary::default();
        }
        let avg = |f: &dyn Fn(&HostSample) -> f64| samples.iter().map(f).sum::<f64>() / n as f64;
        let cores = samples
            .iter()
            .map(|s| s.cpu_pct_per_core.len())
            .max()
            .unwrap_or(0);
        let mut net_interfaces: BTreeMap<String, NetRates> = BTreeMap::new();
        for s in samples {
            for (name, (rx, tx)) in &s.net_bytes_per_sec {
                let e = net_interfaces.entry(name.clone()).or_default();
                e.rx_bytes_per_sec += rx / n as f64;
                e.tx_bytes_per_sec += tx / n as f64;
            }
        }
        HostSummary {
            samples: n,
            cpu_pct_avg: avg(&|s| s.cpu_pct),
            cpu_pct_max: samples.iter().map(|s| s.cpu_pct).fold(0.0, f64::max),
            cpu_pct_per_core_avg: (0..cores)
                .map(|c| avg(&|s| s.cpu_pct_per_core.get(c).copied().unwrap_or(0.0)))
                .collect(),
            process_cpu_pct_avg: avg(&|s| s.process_cpu_pct),
            mem_used_bytes_max: samples.iter().map(|s| s.mem_used_bytes).max().unwrap_or(0),
            rss_bytes_max: samples.iter().map(|s| s.rss_bytes).max().unwrap_or(0),
            net_rx_bytes_per_sec: net_interfaces.values().map(|r| r.rx_bytes_per_sec).sum(),
            net_tx_bytes_per_sec: net_interfaces.values().map(|r| r.tx_bytes_per_sec).sum(),
            disk_read_bytes_per_sec: avg(&|s| s.disk_read_bytes_per_sec),
            disk_write_bytes_per_sec: avg(&|s| s.disk_write_bytes_per_sec),
            net_interfaces,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_reports_cpu_memory_and_loopback_traffic() {
        let sampler = HostSampler::start(Duration::from_millis(200));
        // Make some loopback traffic between two samples.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            use std::io::Read;
            let (mut s, _) = l.accept().unwrap();
            let mut buf = vec![0u8; 1 << 16];
            while s.read(&mut buf).unwrap_or(0) > 0 {}
        });
        {
            use std::io::Write;
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            let chunk = vec![7u8; 1 << 16];
            let end = Instant::now() + Duration::from_millis(700);
            while Instant::now() < end {
                c.write_all(&chunk).unwrap();
            }
        }
        t.join().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let samples = sampler.drain();
        assert!(samples.len() >= 3, "{} samples", samples.len());
        let s = HostSummary::of(&samples);
        assert!(s.rss_bytes_max > 0);
        assert!(s.mem_used_bytes_max > 0);
        assert!(!s.cpu_pct_per_core_avg.is_empty());
        let lo = s
            .net_interfaces
            .get("lo")
            .map_or(0.0, |r| r.rx_bytes_per_sec);
        assert!(lo > 1e6, "loopback rx {lo} B/s");
    }
}
