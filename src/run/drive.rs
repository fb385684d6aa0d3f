//! Driving a started run: every `TICK` the loop checks for Ctrl-C, gives the run's clock to the
//! `Tick` seam, pauses consumers during backlog phases, decides whether the run is finished,
//! updates the progress bar, and once per reporting interval has the reporter close an interval
//! and rewrite summary.json.
//!
//! It reads the workers' shared counters and never touches a record.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::measure::clock;
use crate::measure::host::HostSampler;
use crate::plan::{timeline::Segment, Plan};
use crate::run::final_report;
use crate::run::reporter::Reporter;
use crate::run::workers::{Consuming, Producing};
use crate::run::STOP;

/// How often the loop wakes: the resolution of end conditions, pauses and `Tick`.
pub const TICK: Duration = Duration::from_millis(100);

/// The run's clock as of one tick.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    /// Now, on kbench's clock (`measure::clock`, realtime ns).
    pub now_ns: u64,
    /// Time since the common start (0 before it): the offset the plan's timeline is in.
    pub offset_ns: u64,
}

/// The seam for whatever acts on the run's clock while the load runs (the fault scheduler):
/// called once per `TICK`, after the Ctrl-C check and before the end check, on the thread that
/// drives the reporter. It must return quickly (a tick is 100 ms); an error ends the run with
/// that error, as a reporter error does.
pub trait Tick {
    fn tick(&mut self, clock: RunClock) -> Result<()>;
}

/// Nothing scheduled on the clock.
pub struct NoTick;

impl Tick for NoTick {
    fn tick(&mut self, _: RunClock) -> Result<()> {
        Ok(())
    }
}

/// How the drive ended.
pub struct Driven {
    /// The consumers went idle longer than `--timeout` before the end condition was met.
    pub timed_out: bool,
}

/// Runs the loop until the plan's end condition, Ctrl-C or an error.
pub fn drive(
    plan: &Plan,
    ctx: &final_report::Context,
    rep: &mut Reporter,
    host: &HostSampler,
    workers: (&Producing, &Consuming),
    interval: Duration,
    ticks: &mut dyn Tick,
) -> Result<Driven> {
    let (producing, consuming) = workers;
    let mut end = EndCheck::new(plan, producing.start_ns);
    let segments = plan
        .producer
        .as_ref()
        .map(|p| p.timeline.segments())
        .unwrap_or_default();
    let mut next_report = Instant::now() + interval;
    loop {
        std::thread::sleep(TICK);
        let now = clock::now_ns();
        if STOP.load(Ordering::Relaxed) {
            break;
        }
        let offset_ns = now.saturating_sub(producing.start_ns);
        ticks.tick(RunClock {
            now_ns: now,
            offset_ns,
        })?;
        pause_consumers(&segments, rep, consuming, offset_ns);
        let counts = Counts::read(producing, consuming);
        let finished = end.finished(now, &counts);
        rep.progress.update(
            if producing.shared.is_empty() {
                counts.received
            } else {
                counts.sent
            },
            progress_message(counts.sent, counts.received, rep.current_lag()),
        );
        if finished {
            break;
        }
        if Instant::now() >= next_report {
            next_report += interval;
            rep.interval(host.drain())?;
            rep.write_summary(&final_report::summary(
                ctx,
                rep,
                clock::now_ns(),
                false,
                Vec::new(),
            ))?;
        }
    }
    Ok(Driven {
        timed_out: end.timed_out,
    })
}

/// Consumers pause while the current phase builds a backlog.
fn pause_consumers(segments: &[Segment], rep: &Reporter, consuming: &Consuming, offset_ns: u64) {
    let current = segments
        .iter()
        .rev()
        .find(|seg| seg.start_offset_ns <= offset_ns)
        .map(|seg| seg.phase);
    let pause = current.is_some_and(|k| rep.phases[k].pause_consumers);
    for c in &consuming.shared {
        c.paused.store(pause, Ordering::Relaxed);
    }
}

/// The workers' counters as of one tick.
struct Counts {
    producers_done: bool,
    sent: u64,
    acked: u64,
    received: u64,
    last_record_ns: u64,
}

impl Counts {
    fn read(producing: &Producing, consuming: &Consuming) -> Counts {
        let p = &producing.shared;
        let c = &consuming.shared;
        Counts {
            producers_done: p.iter().all(|p| p.done.load(Ordering::Acquire)),
            sent: p.iter().map(|p| p.sent.load(Ordering::Relaxed)).sum(),
            acked: p
                .iter()
                .map(|p| {
                    p.acked
                        .as_ref()
                        .map_or(0, |a| a.lock().map(|s| s.len()).unwrap_or(0))
                })
                .sum(),
            received: c.iter().map(|c| c.received.load(Ordering::Relaxed)).sum(),
            last_record_ns: c
                .iter()
                .map(|c| c.last_record_ns.load(Ordering::Relaxed))
                .max()
                .unwrap_or(0),
        }
    }
}

/// The plan's end condition: producers done (produce); the records asked for, or idle
/// (consume); producers done and every acknowledged record received, or idle (e2e).
struct EndCheck<'a> {
    plan: &'a Plan,
    start_ns: u64,
    consume_timeout_ns: u64,
    drain_started_ns: Option<u64>,
    timed_out: bool,
}

impl<'a> EndCheck<'a> {
    fn new(plan: &'a Plan, start_ns: u64) -> Self {
        EndCheck {
            plan,
            start_ns,
            consume_timeout_ns: plan
                .consumer
                .as_ref()
                .map_or(u64::MAX, |c| c.timeout_ms * 1_000_000),
            drain_started_ns: None,
            timed_out: false,
        }
    }

    fn finished(&mut self, now: u64, n: &Counts) -> bool {
        if n.producers_done && self.drain_started_ns.is_none() {
            self.drain_started_ns = Some(now);
        }
        // Idle: no record for --timeout, counted from the start (consume) or from the end of
        // producing (e2e), whichever is later than the last record.
        let idle_from = match self.plan.command.as_str() {
            "e2e" => self.drain_started_ns.map(|d| d.max(n.last_record_ns)),
            _ => Some(self.start_ns.max(n.last_record_ns)),
        };
        let idle = idle_from.is_some_and(|from| now.saturating_sub(from) > self.consume_timeout_ns);
        match self.plan.command.as_str() {
            "produce" => n.producers_done,
            "consume" => {
                self.timed_out = idle;
                self.plan.consume_records.is_some_and(|r| n.received >= r) || idle
            }
            _ => {
                self.timed_out = n.producers_done && idle;
                n.producers_done && (n.received >= n.acked || idle)
            }
        }
    }
}

fn progress_message(sent: u64, received: u64, lag: Option<u64>) -> String {
    match lag {
        Some(l) => format!("sent {sent} received {received} lag {l}"),
        None => format!("sent {sent} received {received}"),
    }
}
