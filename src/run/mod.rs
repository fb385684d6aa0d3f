//! Running a plan: start the target, check the topic, create every client (bad properties fail
//! here, before any load), start consumers, wait for their partitions, start producers on a
//! common start time, and drive the reporter until the end, Ctrl-C or an error.
//!
//! Results are written as the run goes (summary rewritten each interval), so an interrupted run
//! leaves what it measured. This module decides when things start and stop; it records nothing.

pub mod final_report;
pub mod progress;
pub mod reporter;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::load::consumer::ConsumerWorker;
use crate::load::consumer::{ConsumerPhases, ConsumerSetup};
use crate::load::phase_starts::PhaseStarts;
use crate::load::producer::ProducerWorker;
use crate::measure::clock;
use crate::measure::host::{host_info, HostSampler};
use crate::measure::verify::{Seen, SeqSet};
use crate::plan::{create_run_dir, props::Props, PhaseSpec, Plan};
use crate::run::progress::{Goal, Progress};
use crate::run::reporter::{Reporter, ResultFiles};
use crate::target::Target;

/// Set by Ctrl-C (or SIGTERM): stop scheduling, drain briefly, write what was measured.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C handler: the first stops the run cleanly, the second exits at once
/// (results up to the last interval are already on disk).
pub fn install_ctrlc() {
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            eprintln!("kbench: interrupted again, exiting now");
            std::process::exit(130);
        }
        eprintln!("kbench: interrupted; stopping and writing the results measured so far (Ctrl-C again to quit at once)");
    });
}

const TICK: Duration = Duration::from_millis(100);
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
const FLUSH_ON_STOP: Duration = Duration::from_secs(5);
const ASSIGN_TIMEOUT: Duration = Duration::from_secs(60);

/// A run's identity and result files, shared by every execution in it (a profile runs one
/// execution per matrix cell or trial into the same run folder).
pub struct Session {
    pub run_id: u32,
    pub started_at: String,
    pub host: crate::measure::host::HostInfo,
    pub dir: Option<std::path::PathBuf>,
    pub files: Option<ResultFiles>,
    pub interval: Duration,
    /// The `--metrics-listen` endpoint, alive for the whole run.
    pub live: Option<crate::report::live::LiveServer>,
}

impl Session {
    pub fn create(output: &crate::plan::OutputPlan) -> Result<Session> {
        clock::init();
        let live = output
            .metrics_listen
            .map(crate::report::live::LiveServer::start)
            .transpose()?;
        if let Some(l) = &live {
            eprintln!("kbench: live metrics on http://{}/metrics", l.addr);
        }
        let dir = create_run_dir(output)?;
        let files = match &dir {
            Some(d) => Some(ResultFiles::create(d, clock::now_ns())?),
            None => None,
        };
        Ok(Session {
            run_id: rand::random(),
            started_at: chrono::Local::now().to_rfc3339(),
            host: host_info(),
            dir,
            files,
            interval: Duration::from_millis(output.reporting_interval_ms),
            live,
        })
    }

    /// A run that failed before measuring anything leaves no folder behind (its files would
    /// hold headers only and no summary); the error passes through.
    pub fn discard_if_empty<T>(&mut self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            if let Some(d) = &self.dir {
                if !d.join("summary.json").exists() {
                    self.files = None;
                    let _ = std::fs::remove_dir_all(d);
                    self.dir = None;
                }
            }
        }
        r
    }
}

/// Starts the target a plan asks for.
pub fn open_target(plan: &Plan) -> Result<Target> {
    let t = &plan.target;
    match &t.bootstrap_server {
        Some(b) => Ok(Target::external(b)),
        None if plan.command == "consume" => bail!(
            "kbench consume needs --bootstrap-server: an embedded broker would start empty. Use `kbench e2e` to produce and consume together on the embedded broker"
        ),
        None => Target::embedded(t.embedded, t.partitions, &t.mock_faults),
    }
}

/// Runs a produce, consume or e2e plan; returns the exit code (0, or 1 when a check failed).
pub fn run(plan: Plan) -> Result<ExitCode> {
    let target = open_target(&plan)?;
    let mut session = Session::create(&plan.output)?;
    let cell = execute(
        &plan,
        &target,
        &mut session,
        &final_report::Frame::default(),
    );
    let cell = session.discard_if_empty(cell)?;
    if let Some(d) = &session.dir {
        match crate::report::html::write_report(d) {
            Ok(page) => eprintln!(
                "kbench: results in {} (report: {})",
                d.display(),
                page.display()
            ),
            Err(e) => eprintln!(
                "kbench: results in {}; the HTML report could not be written: {e:#}",
                d.display()
            ),
        }
    }
    Ok(cell.exit)
}

/// One execution of a plan on a running target, into the session's result files.
pub fn execute(
    plan: &Plan,
    target: &Target,
    session: &mut Session,
    frame: &final_report::Frame,
) -> Result<final_report::CellResult> {
    let t = &plan.target;
    // Workers of one distributed run share a run id, derived from their common start time.
    let run_id = plan
        .worker
        .start_at_ns
        .map_or(session.run_id, |at| ((at / 1_000_000) as u32) ^ 0x6b62_656e);
    let mut admin_props = Props::default();
    for p in [
        plan.producer.as_ref().map(|p| &p.props),
        plan.consumer.as_ref().map(|c| &c.props),
    ]
    .into_iter()
    .flatten()
    {
        for (k, v) in p.iter() {
            if is_common_property(k) {
                admin_props.set(k, v, p.source(k));
            }
        }
    }
    let timeout = Duration::from_millis(t.connect_timeout_ms);
    let create = t.create_topic && plan.command != "consume";
    let partitions = target.ensure_topic(
        &admin_props,
        &t.topic,
        t.partitions,
        t.replication_factor,
        create,
        timeout,
    )?;
    eprintln!(
        "kbench: {} on topic '{}' ({partitions} partitions) at {} ({})",
        plan.command, t.topic, target.bootstrap, target.kind
    );

    // Clients first: a bad property fails here, before any load.
    let producers: Vec<ProducerWorker> = match &plan.producer {
        Some(p) => (0..p.producers)
            .filter(|&i| plan.worker.owns(i))
            .map(|i| {
                ProducerWorker::new(
                    i,
                    run_id,
                    &target.bootstrap,
                    &t.topic,
                    p,
                    plan.command == "e2e",
                )
            })
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    // The phases every recorder keeps apart: the producers' timeline, or for a standalone
    // consumer the producers' warm-up (from the stamp) and the rest.
    let phases: Vec<PhaseSpec> = match &plan.producer {
        Some(p) => p.timeline.phases.clone(),
        None => vec![
            PhaseSpec::warmup(None, None),
            PhaseSpec::new("measured", None, None),
        ],
    };
    let consumer_phases = if plan.producer.is_some() {
        ConsumerPhases::SameRun
    } else {
        ConsumerPhases::WarmupAndMeasured
    };
    let from_intended = plan
        .producer
        .as_ref()
        .is_some_and(|p| p.timeline.open_model());
    let run_filter = (plan.command == "e2e").then_some(run_id);
    let setup = ConsumerSetup {
        phases: consumer_phases,
        phase_count: phases.len(),
        run_filter,
        from_intended: from_intended || plan.command == "consume",
    };
    let consumers: Vec<ConsumerWorker> = match &plan.consumer {
        Some(c) => (0..c.consumers)
            .filter(|&i| plan.worker.owns(i))
            .map(|i| ConsumerWorker::new(i, &target.bootstrap, &t.topic, c, &setup))
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };

    let host = HostSampler::start(Duration::from_secs(1));

    // Consumers start first and, for e2e, get every partition before the first record is sent.
    let stop_consumers = Arc::new(AtomicBool::new(false));
    let consumer_shared: Vec<_> = consumers.iter().map(|c| c.shared.clone()).collect();
    let consumer_threads: Vec<JoinHandle<Seen>> = consumers
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let stop = stop_consumers.clone();
            std::thread::Builder::new()
                .name(format!("kbench-consumer-{i}"))
                .spawn(move || c.run(&stop))
        })
        .collect::<std::io::Result<_>>()?;
    if plan.command == "e2e" {
        // A worker of a distributed run waits for its members' share of the partitions.
        let total = plan.consumer.as_ref().map_or(1, |c| c.consumers).max(1) as usize;
        let share = (partitions as usize * consumer_shared.len() / total).max(1);
        wait_for_assignment(&consumer_shared, share)?;
    }

    let start_ns = match plan.worker.start_at_ns {
        Some(at) if at + 1_000_000_000 < clock::now_ns() => bail!("--start-at is {:.1} s in the past; give a time a little ahead, so every worker can be ready", (clock::now_ns() - at) as f64 / 1e9),
        Some(at) => at,
        None => clock::now_ns() + 20_000_000,
    };
    let starts = Arc::new(PhaseStarts::new(phases.len()));
    if plan.producer.is_none() {
        starts.mark(1, start_ns);
    }
    let stop_producers = Arc::new(AtomicBool::new(false));
    let producer_shared: Vec<_> = producers.iter().map(|p| p.shared.clone()).collect();
    let producer_threads: Vec<JoinHandle<()>> = producers
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let (stop, starts) = (stop_producers.clone(), starts.clone());
            std::thread::Builder::new()
                .name(format!("kbench-producer-{i}"))
                .spawn(move || p.run(start_ns, &starts, &stop, FLUSH_TIMEOUT, FLUSH_ON_STOP))
        })
        .collect::<std::io::Result<_>>()?;
    target.start_faults();

    let goal = match (&plan.producer, plan.consume_records) {
        (Some(p), _) => match (p.timeline.max_records, p.timeline.total_ms()) {
            (Some(n), _) => Goal::Records(n),
            (None, Some(ms)) => Goal::Millis(ms),
            (None, None) => Goal::Open,
        },
        (None, Some(n)) => Goal::Records(n),
        _ => Goal::Open,
    };
    let mut rep = Reporter::new(
        producer_shared.clone(),
        consumer_shared.clone(),
        phases.clone(),
        starts.clone(),
        start_ns,
        session.files.take(),
        Progress::new(goal),
    );
    rep.consumer_detailed_rows = plan.show_detailed_stats;
    rep.live = session.live.as_ref().map(|l| l.metrics.clone());
    rep.warmup_records = plan
        .producer
        .as_ref()
        .and_then(|p| p.timeline.warmup_records);
    if let Some(w) = rep.warmup_records {
        rep.progress.println(&format!("Warmup first {w} records. Steady state results will print after the complete test summary."));
    }
    if plan.command == "consume" {
        rep.progress
            .println(crate::report::console::kafka_consumer_header(
                plan.show_detailed_stats,
            ));
    }

    let ctx = final_report::Context {
        plan,
        run_id,
        started_at: &session.started_at,
        host: session.host.clone(),
        target_kind: target.kind,
        bootstrap: target.bootstrap.clone(),
        frame,
    };
    let interval = session.interval;
    let mut next_report = std::time::Instant::now() + interval;
    let consume_timeout_ns = plan
        .consumer
        .as_ref()
        .map_or(u64::MAX, |c| c.timeout_ms * 1_000_000);
    let mut timed_out = false;
    let mut drain_started_ns: Option<u64> = None;
    let segments = plan
        .producer
        .as_ref()
        .map(|p| p.timeline.segments())
        .unwrap_or_default();
    loop {
        std::thread::sleep(TICK);
        let now = clock::now_ns();
        if STOP.load(Ordering::Relaxed) {
            break;
        }
        // Consumers pause while the current phase builds a backlog.
        let offset = now.saturating_sub(start_ns);
        let current = segments
            .iter()
            .rev()
            .find(|seg| seg.start_offset_ns <= offset)
            .map(|seg| seg.phase);
        let pause = current.is_some_and(|k| phases[k].pause_consumers);
        for c in &consumer_shared {
            c.paused.store(pause, Ordering::Relaxed);
        }
        let producers_done = producer_shared
            .iter()
            .all(|p| p.done.load(Ordering::Acquire));
        let received: u64 = consumer_shared
            .iter()
            .map(|c| c.received.load(Ordering::Relaxed))
            .sum();
        let last_record = consumer_shared
            .iter()
            .map(|c| c.last_record_ns.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        if producers_done && drain_started_ns.is_none() {
            drain_started_ns = Some(now);
        }
        // Idle: no record for --timeout, counted from the start (consume) or from the end of
        // producing (e2e), whichever is later than the last record.
        let idle_from = match plan.command.as_str() {
            "e2e" => drain_started_ns.map(|d| d.max(last_record)),
            _ => Some(start_ns.max(last_record)),
        };
        let idle = idle_from.is_some_and(|from| now.saturating_sub(from) > consume_timeout_ns);
        let finished = match plan.command.as_str() {
            "produce" => producers_done,
            "consume" => {
                timed_out = idle;
                plan.consume_records.is_some_and(|n| received >= n) || idle
            }
            _ => {
                let acked: u64 = producer_shared
                    .iter()
                    .map(|p| {
                        p.acked
                            .as_ref()
                            .map_or(0, |a| a.lock().map(|s| s.len()).unwrap_or(0))
                    })
                    .sum();
                timed_out = producers_done && idle;
                producers_done && (received >= acked || idle)
            }
        };
        let sent: u64 = producer_shared
            .iter()
            .map(|p| p.sent.load(Ordering::Relaxed))
            .sum();
        rep.progress.update(
            if producer_shared.is_empty() {
                received
            } else {
                sent
            },
            progress_message(sent, received, rep.current_lag()),
        );
        if finished {
            break;
        }
        if std::time::Instant::now() >= next_report {
            next_report += interval;
            rep.interval(host.drain())?;
            rep.write_summary(&final_report::summary(
                &ctx,
                &rep,
                clock::now_ns(),
                false,
                Vec::new(),
            ))?;
        }
    }

    // Stop producers, let them flush, then consumers; collect the last interval.
    stop_producers.store(STOP.load(Ordering::Relaxed), Ordering::Relaxed);
    for t in producer_threads {
        let _ = t.join();
    }
    let end_ns = if plan.command == "produce" {
        producer_shared
            .iter()
            .map(|p| p.done_ns.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
            .max(start_ns)
    } else {
        consumer_shared
            .iter()
            .map(|c| c.last_record_ns.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
            .max(start_ns)
    };
    stop_consumers.store(true, Ordering::Relaxed);
    let seen: Vec<Seen> = consumer_threads
        .into_iter()
        .filter_map(|t| t.join().ok())
        .collect();
    rep.last_interval = true;
    rep.interval(host.drain())?;
    rep.progress.finish();
    drop(host);

    if timed_out && plan.command == "consume" {
        eprintln!(
            "WARNING: Exiting before consuming the expected number of messages: timeout ({} ms) exceeded. You can use the --timeout option to increase the timeout.",
            plan.consumer.as_ref().map_or(0, |c| c.timeout_ms)
        );
    }
    // Loss is checked against this process's acknowledgements, which only works when its
    // consumers read every partition: not for a worker of a distributed run.
    let acked: Option<HashMap<u32, SeqSet>> = (plan.command == "e2e" && plan.worker.workers == 1)
        .then(|| {
            producer_shared
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    (
                        i as u32,
                        p.acked
                            .as_ref()
                            .map(|a| a.lock().map(|s| s.clone()).unwrap_or_default())
                            .unwrap_or_default(),
                    )
                })
                .collect()
        });
    let cell = final_report::finish(&ctx, &mut rep, end_ns, &seen, acked.as_ref());
    session.files = rep.files.take();
    cell
}

/// Properties every client type accepts: connection and security settings.
fn is_common_property(k: &str) -> bool {
    k.starts_with("security.")
        || k.starts_with("sasl.")
        || k.starts_with("ssl.")
        || k.starts_with("socket.")
        || k.starts_with("broker.")
        || k == "client.dns.lookup"
        || k == "api.version.request"
        || k == "broker.version.fallback"
}

fn progress_message(sent: u64, received: u64, lag: Option<u64>) -> String {
    match lag {
        Some(l) => format!("sent {sent} received {received} lag {l}"),
        None => format!("sent {sent} received {received}"),
    }
}

/// Waits until the group's members hold every partition (e2e must not send before that, or
/// records would be skipped by a consumer starting at the log end).
fn wait_for_assignment(
    consumers: &[Arc<crate::load::consumer::ConsumerShared>],
    partitions: usize,
) -> Result<()> {
    let deadline = std::time::Instant::now() + ASSIGN_TIMEOUT;
    loop {
        let assigned: usize = consumers
            .iter()
            .map(|c| c.assigned.load(Ordering::Acquire))
            .sum();
        if assigned >= partitions {
            return Ok(());
        }
        if STOP.load(Ordering::Relaxed) {
            bail!("interrupted while the consumers were joining the group");
        }
        if std::time::Instant::now() > deadline {
            let errors: Vec<String> = consumers
                .iter()
                .filter_map(|c| c.last_error.lock().ok().and_then(|e| e.clone()))
                .collect();
            return Err(anyhow::anyhow!(
                "the consumer group got {assigned} of {partitions} partitions within {}s{}",
                ASSIGN_TIMEOUT.as_secs(),
                if errors.is_empty() { String::new() } else { format!(": {}", errors.join("; ")) }
            ))
            .context("consumers did not join the group in time; check the broker's group coordinator and --consumer-props");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
