//! The worker threads' lifecycle: consumers start first and (for e2e) wait until the group holds
//! the partitions, producers start on one common start time, and at the end producers stop and
//! flush before the consumers stop, so the consumers see the last acknowledged records.
//!
//! This module starts, stops and joins threads; it measures nothing and prints nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::load::consumer::{ConsumerShared, ConsumerWorker};
use crate::load::phase_starts::PhaseStarts;
use crate::load::producer::{ProducerShared, ProducerWorker};
use crate::measure::clock;
use crate::measure::verify::{Seen, SeqSet};
use crate::plan::Plan;
use crate::run::STOP;

const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
const FLUSH_ON_STOP: Duration = Duration::from_secs(5);
const ASSIGN_TIMEOUT: Duration = Duration::from_secs(60);
/// When the load starts without `--start-at`: a moment ahead, so every producer thread is
/// waiting for it.
const START_AHEAD_NS: u64 = 20_000_000;

/// Consumer threads running.
pub struct Consuming {
    pub shared: Vec<Arc<ConsumerShared>>,
    threads: Vec<JoinHandle<Seen>>,
    stop: Arc<AtomicBool>,
}

/// Starts every consumer; for e2e, returns once the group holds this worker's share of the
/// topic's partitions (a record sent before that would be skipped by a consumer starting at
/// the log end).
pub fn start_consumers(
    plan: &Plan,
    consumers: Vec<ConsumerWorker>,
    partitions: i32,
) -> Result<Consuming> {
    let stop = Arc::new(AtomicBool::new(false));
    let shared: Vec<_> = consumers.iter().map(|c| c.shared.clone()).collect();
    let threads = consumers
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(format!("kbench-consumer-{i}"))
                .spawn(move || c.run(&stop))
        })
        .collect::<std::io::Result<_>>()?;
    if plan.command == "e2e" {
        // A worker of a distributed run waits for its members' share of the partitions.
        // Members that join later (`consumer-join`) hold nothing yet.
        let total = plan.consumer.as_ref().map_or(1, |c| c.consumers).max(1) as usize;
        let members = shared.iter().filter(|c| !c.late).count();
        let share = (partitions as usize * members / total).max(1);
        wait_for_assignment(&shared, share)?;
    }
    Ok(Consuming {
        shared,
        threads,
        stop,
    })
}

/// Waits until the group's members hold `partitions` partitions.
fn wait_for_assignment(consumers: &[Arc<ConsumerShared>], partitions: usize) -> Result<()> {
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

/// Producer threads running from a common start.
pub struct Producing {
    pub shared: Vec<Arc<ProducerShared>>,
    /// The common start (clock ns): the first record's intended send time.
    pub start_ns: u64,
    /// When each phase began (set by the producers as they cross into it).
    pub starts: Arc<PhaseStarts>,
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

/// Starts every producer on one start time: `--start-at`, or a moment from now.
pub fn start_producers(
    plan: &Plan,
    producers: Vec<ProducerWorker>,
    phase_count: usize,
) -> Result<Producing> {
    let start_ns = common_start(plan)?;
    let starts = Arc::new(PhaseStarts::new(phase_count));
    if plan.producer.is_none() {
        // A standalone consumer's "measured" phase begins at once.
        starts.mark(1, start_ns);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let shared: Vec<_> = producers.iter().map(|p| p.shared.clone()).collect();
    let threads = producers
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let (stop, starts) = (stop.clone(), starts.clone());
            std::thread::Builder::new()
                .name(format!("kbench-producer-{i}"))
                .spawn(move || p.run(start_ns, &starts, &stop, FLUSH_TIMEOUT, FLUSH_ON_STOP))
        })
        .collect::<std::io::Result<_>>()?;
    Ok(Producing {
        shared,
        start_ns,
        starts,
        threads,
        stop,
    })
}

fn common_start(plan: &Plan) -> Result<u64> {
    Ok(match plan.worker.start_at_ns {
        Some(at) if at + 1_000_000_000 < clock::now_ns() => bail!("--start-at is {:.1} s in the past; give a time a little ahead, so every worker can be ready", (clock::now_ns() - at) as f64 / 1e9),
        Some(at) => at,
        None => clock::now_ns() + START_AHEAD_NS,
    })
}

/// What the workers left behind once stopped.
pub struct Stopped {
    /// Where the run's measured time ends (clock ns).
    pub end_ns: u64,
    /// What each consumer saw, for verification.
    pub seen: Vec<Seen>,
    /// Acknowledged sequence numbers per producer, when this process can check loss.
    pub acked: Option<HashMap<u32, SeqSet>>,
}

/// Stops the producers (at once when interrupted, else after their schedule) and lets them
/// flush, then stops the consumers.
pub fn stop(plan: &Plan, producing: Producing, consuming: Consuming) -> Stopped {
    producing
        .stop
        .store(STOP.load(Ordering::Relaxed), Ordering::Relaxed);
    for t in producing.threads {
        let _ = t.join();
    }
    let start_ns = producing.start_ns;
    let end_ns = if plan.command == "produce" {
        max_of(producing.shared.iter().map(|p| &p.done_ns)).max(start_ns)
    } else {
        max_of(consuming.shared.iter().map(|c| &c.last_record_ns)).max(start_ns)
    };
    consuming.stop.store(true, Ordering::Relaxed);
    let seen = consuming
        .threads
        .into_iter()
        .filter_map(|t| t.join().ok())
        .collect();
    Stopped {
        end_ns,
        seen,
        acked: acked(plan, &producing.shared),
    }
}

fn max_of<'a>(times: impl Iterator<Item = &'a std::sync::atomic::AtomicU64>) -> u64 {
    times.map(|t| t.load(Ordering::Relaxed)).max().unwrap_or(0)
}

/// Loss is checked against this process's acknowledgements, which only works when its
/// consumers read every partition: not for a worker of a distributed run.
fn acked(plan: &Plan, producers: &[Arc<ProducerShared>]) -> Option<HashMap<u32, SeqSet>> {
    (plan.command == "e2e" && plan.worker.workers == 1).then(|| {
        producers
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
    })
}
