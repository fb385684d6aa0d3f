//! Running a plan. `execute` reads like the run itself, one stage after another, each handing
//! what it made to the next: start the target (`open_target`, shared by a profile's cells),
//! ensure the topic and create every client (`prepare`: a bad property fails here, before any
//! load), start the consumers and wait for their partitions, start the producers on a common
//! start time (`workers`), drive the reporter until the end, Ctrl-C or an error (`drive`, whose
//! `Tick` is the seam for what acts on the run's clock), stop the workers (`workers`) and
//! finish (`final_report`).
//!
//! Results are written as the run goes (summary rewritten each interval), so an interrupted run
//! leaves what it measured. This module decides when things start and stop; it records nothing.

pub mod drive;
pub mod final_report;
pub mod prepare;
pub mod progress;
pub mod reporter;
pub mod workers;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Result};

use crate::fault::session::{FaultOutcome, FaultSession};
use crate::measure::clock;
use crate::measure::host::{host_info, HostSampler};
use crate::plan::{create_run_dir, PhaseSpec, Plan};
use crate::run::progress::{Goal, Progress};
use crate::run::reporter::{Reporter, ResultFiles};
use crate::run::workers::{Consuming, Producing};
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

/// One execution of a plan on a running target, into the session's result files: the run's
/// stages in order, each handing what it made to the next.
pub fn execute(
    plan: &Plan,
    target: &Target,
    session: &mut Session,
    frame: &final_report::Frame,
) -> Result<final_report::CellResult> {
    let run_id = run_id(plan, session);
    let partitions = prepare::ensure_topic(plan, target)?;
    crate::fault::session::check(plan, partitions)?;
    // Clients first: a bad property fails here, before any load.
    let clients = prepare::create_clients(plan, target, run_id)?;
    let host = HostSampler::start(Duration::from_secs(1));
    let consuming = workers::start_consumers(plan, clients.consumers, partitions)?;
    let producing = workers::start_producers(plan, clients.producers, clients.phases.len())?;
    target.start_faults();
    let mut faults = FaultSession::start(
        plan,
        target,
        partitions,
        run_id,
        producing.start_ns,
        &producing.shared,
        &consuming.shared,
    )?;

    let mut rep = reporter(plan, session, clients.phases, &producing, &consuming);
    rep.fault_marks = faults.as_ref().map(FaultSession::marks);
    let ctx = final_report::Context {
        plan,
        run_id,
        started_at: &session.started_at,
        host: session.host.clone(),
        target_kind: target.kind,
        bootstrap: target.bootstrap.clone(),
        frame,
    };
    let driven = drive::drive(
        plan,
        &ctx,
        &mut rep,
        &host,
        (&producing, &consuming),
        session.interval,
        &mut FaultTick(faults.as_mut()),
    )?;
    let producers = producing.shared.clone();
    let starts = producing.starts.clone();
    let stopped = workers::stop(plan, producing, consuming);
    let names: Vec<String> = rep.phases.iter().map(|p| p.name.clone()).collect();
    let outcome = faults
        .map(|f| f.finish(stopped.end_ns, &producers, (&names, &starts)))
        .transpose()?;
    let cell = finish(&ctx, &mut rep, host, &driven, &stopped, outcome);
    session.files = rep.files.take();
    cell
}

/// The fault scheduler on the run's clock (nothing to do without faults). Its lines go to
/// stderr as they happen.
struct FaultTick<'a>(Option<&'a mut FaultSession>);

impl drive::Tick for FaultTick<'_> {
    fn tick(&mut self, clock: drive::RunClock) -> Result<()> {
        if let Some(f) = self.0.as_mut() {
            for line in f.tick(clock.now_ns) {
                eprintln!("{line}");
            }
        }
        Ok(())
    }
}

/// Workers of one distributed run share a run id, derived from their common start time.
fn run_id(plan: &Plan, session: &Session) -> u32 {
    plan.worker
        .start_at_ns
        .map_or(session.run_id, |at| ((at / 1_000_000) as u32) ^ 0x6b62_656e)
}

/// The reporter over the started workers, writing into the session's files, with the lines
/// that precede the first interval.
fn reporter(
    plan: &Plan,
    session: &mut Session,
    phases: Vec<PhaseSpec>,
    producing: &Producing,
    consuming: &Consuming,
) -> Reporter {
    let mut rep = Reporter::new(
        producing.shared.clone(),
        consuming.shared.clone(),
        phases,
        producing.starts.clone(),
        producing.start_ns,
        session.files.take(),
        Progress::new(progress_goal(plan)),
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
    rep
}

/// What the progress bar counts toward.
fn progress_goal(plan: &Plan) -> Goal {
    match (&plan.producer, plan.consume_records) {
        (Some(p), _) => match (p.timeline.max_records, p.timeline.total_ms()) {
            (Some(n), _) => Goal::Records(n),
            (None, Some(ms)) => Goal::Millis(ms),
            (None, None) => Goal::Open,
        },
        (None, Some(n)) => Goal::Records(n),
        _ => Goal::Open,
    }
}

/// The last stage: the closing interval, the timeout warning, then verification and the final
/// summary.
fn finish(
    ctx: &final_report::Context,
    rep: &mut Reporter,
    host: HostSampler,
    driven: &drive::Driven,
    stopped: &workers::Stopped,
    faults: Option<FaultOutcome>,
) -> Result<final_report::CellResult> {
    let plan = ctx.plan;
    rep.last_interval = true;
    rep.interval(host.drain())?;
    rep.progress.finish();
    drop(host);
    if driven.timed_out && plan.command == "consume" {
        eprintln!(
            "WARNING: Exiting before consuming the expected number of messages: timeout ({} ms) exceeded. You can use the --timeout option to increase the timeout.",
            plan.consumer.as_ref().map_or(0, |c| c.timeout_ms)
        );
    }
    final_report::finish(
        ctx,
        rep,
        stopped.end_ns,
        &stopped.seen,
        stopped.acked.as_ref(),
        faults,
    )
}
