//! A run's faults from start to result, in one place the run calls at four points: `check`
//! (before any client: targets against the topic as it is), `start` (with the producers' common
//! start: the failover state on every producer, the consumers' group watch, the scheduler),
//! `tick` (every tick of the run loop) and `finish` (after the workers stopped: hooks collected,
//! figures computed, every partition read back).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Result};

use crate::fault::scheduler::{self, Scheduler, Setup};
use crate::load::consumer::ConsumerShared;
use crate::load::phase_starts::PhaseStarts;
use crate::load::producer::ProducerShared;
use crate::measure::failover::{Failover, LOOKBACK_NS};
use crate::measure::readback::{Durability, ReadBack};
use crate::measure::rebalance::GroupWatch;
use crate::measure::verify::SeqSet;
use crate::plan::props::Props;
use crate::plan::Plan;
use crate::report::faults::{ConsumeFigures, FaultResult};
use crate::target::Target;

/// The read-back gives up when nothing arrived for this long.
const READBACK_IDLE: Duration = Duration::from_secs(15);

/// What a finished run's faults came to.
pub struct FaultOutcome {
    pub faults: Vec<FaultResult>,
    pub durability: Option<Durability>,
    /// Lines for stderr (warnings from hooks that ended late).
    pub lines: Vec<String>,
}

pub struct FaultSession {
    scheduler: Scheduler,
    failover: Arc<Mutex<Failover>>,
    consume_gaps: Option<Arc<Mutex<GroupWatch>>>,
    /// Members of the group, late ones included.
    members: usize,
    start_ns: u64,
    bootstrap: String,
    props: Props,
    topic: String,
    run_id: u32,
    loss_expected: bool,
    readback: bool,
}

/// Checks the faults against the topic as it exists (an existing topic may have fewer
/// partitions than --partitions says), before any client is created.
pub fn check(plan: &Plan, partitions: i32) -> Result<()> {
    for f in &plan.faults {
        if let Some((topic, p)) = f.target.as_ref().and_then(|t| t.topic_partition()) {
            if p >= partitions {
                bail!(
                    "{}.target: topic '{topic}' has {partitions} partitions (0 to {}); partition {p} does not exist",
                    f.field,
                    partitions - 1
                );
            }
        }
    }
    Ok(())
}

/// Connection and security settings the producer and consumer properties carry: what the
/// metadata and read-back clients need.
fn connection_props(plan: &Plan) -> Props {
    let mut out = Props::default();
    let all = [
        plan.producer.as_ref().map(|p| &p.props),
        plan.consumer.as_ref().map(|c| &c.props),
    ];
    for p in all.into_iter().flatten() {
        for (k, v) in p.iter() {
            let common = ["security.", "sasl.", "ssl.", "socket.", "broker."]
                .iter()
                .any(|s| k.starts_with(s))
                || k == "client.dns.lookup";
            if common {
                out.set(k, v, p.source(k));
            }
        }
    }
    out
}

impl FaultSession {
    /// With faults or `--verify-readback`: sets up the measuring and the scheduler on the
    /// producers' common start. `None` for a run without either.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        plan: &Plan,
        target: &Target,
        partitions: i32,
        run_id: u32,
        start_ns: u64,
        producers: &[Arc<ProducerShared>],
        consumers: &[Arc<ConsumerShared>],
    ) -> Result<Option<FaultSession>> {
        if plan.faults.is_empty() && !plan.verify_readback {
            return Ok(None);
        }
        let instances = scheduler::instances(&plan.faults, start_ns);
        let planned = scheduler::planned(&instances);
        let failover = Arc::new(Mutex::new(Failover::new(
            start_ns,
            &planned,
            partitions.max(1) as usize,
        )));
        for p in producers {
            let _ = p.failover.set(failover.clone());
        }
        let consume_gaps = (!consumers.is_empty() && !planned.is_empty()).then(|| {
            let windows = planned
                .iter()
                .enumerate()
                .map(|(k, p)| {
                    let to = planned
                        .get(k + 1)
                        .map_or(u64::MAX, |n| n.at_ns.saturating_sub(LOOKBACK_NS));
                    (p.at_ns.saturating_sub(LOOKBACK_NS), to)
                })
                .collect();
            Arc::new(Mutex::new(GroupWatch::new(
                start_ns,
                windows,
                partitions.max(1) as usize,
            )))
        });
        if let Some(g) = &consume_gaps {
            for c in consumers {
                let _ = c.watch.set(g.clone());
            }
        }
        let props = connection_props(plan);
        let scheduler = Scheduler::new(
            &plan.faults,
            start_ns,
            Setup {
                bootstrap: &target.bootstrap,
                props: &props,
                mock: target.mock_control(),
                cluster_file: plan
                    .target
                    .cluster_file
                    .as_deref()
                    .or(target.cluster_file()),
                consumers: consumers.to_vec(),
            },
            Some(failover.clone()),
        )?;
        Ok(Some(FaultSession {
            scheduler,
            failover,
            consume_gaps,
            members: consumers.len(),
            start_ns,
            bootstrap: target.bootstrap.clone(),
            props,
            topic: plan.target.topic.clone(),
            run_id,
            loss_expected: plan.faults.iter().any(|f| f.loss_expected),
            readback: plan.verify_readback,
        }))
    }

    /// The fault steps taken, for the time series.
    pub fn marks(&self) -> scheduler::FaultMarks {
        self.scheduler.marks.clone()
    }

    /// Runs the steps due now; returns console lines.
    pub fn tick(&mut self, now_ns: u64) -> Vec<String> {
        self.scheduler.tick(now_ns)
    }

    /// After the workers stopped: every fault's figures and the read-back. `phases` names the
    /// run's phases with their starts, to say which phase a fault fell in.
    pub fn finish(
        self,
        end_ns: u64,
        producers: &[Arc<ProducerShared>],
        phases: (&[String], &PhaseStarts),
    ) -> Result<FaultOutcome> {
        let (records, lines) = self.scheduler.finish();
        let (figures, failed) = {
            let mut fo = self.failover.lock().unwrap_or_else(|p| p.into_inner());
            (fo.finish(end_ns), fo.failed_sets().clone())
        };
        let consume: Vec<Option<ConsumeFigures>> = records
            .iter()
            .enumerate()
            .map(|(k, r)| {
                self.consume_gaps.as_ref().map(|g| {
                    let g = g.lock().unwrap_or_else(|p| p.into_inner());
                    let t_f = r.t_f_ms.map(|t| self.start_ns + t * 1_000_000);
                    ConsumeFigures::from_watch(&g, k, t_f, end_ns, self.members)
                })
            })
            .collect();
        let has_producers = !producers.is_empty();
        let faults = records
            .into_iter()
            .zip(figures)
            .zip(consume)
            .map(|((record, produce), consume)| FaultResult {
                phase: record
                    .t_f_ms
                    .and_then(|t| phase_at(phases, self.start_ns + t * 1_000_000)),
                record,
                produce: has_producers.then_some(produce),
                consume,
                durability: None,
                cell: Default::default(),
            })
            .collect::<Vec<_>>();
        let durability = if self.readback {
            let acked = acked_sets(producers);
            Some(
                ReadBack {
                    bootstrap: &self.bootstrap,
                    props: &self.props,
                    topic: &self.topic,
                    run_id: self.run_id,
                    idle: READBACK_IDLE,
                }
                .run(&acked, &failed, self.loss_expected)?,
            )
        } else {
            None
        };
        let faults = faults
            .into_iter()
            .map(|f| FaultResult {
                durability: durability.clone(),
                ..f
            })
            .collect();
        Ok(FaultOutcome {
            faults,
            durability,
            lines,
        })
    }
}

/// The acknowledged sequences of every producer, by its stamp's producer id.
fn acked_sets(producers: &[Arc<ProducerShared>]) -> HashMap<u32, SeqSet> {
    producers
        .iter()
        .filter_map(|p| {
            let set = p.acked.as_ref()?.lock().ok()?.clone();
            Some((p.index, set))
        })
        .collect()
}

/// The name of the phase running at `t_ns`.
fn phase_at(phases: (&[String], &PhaseStarts), t_ns: u64) -> Option<String> {
    let (names, starts) = phases;
    (0..names.len())
        .rev()
        .find(|&k| starts.get(k).is_some_and(|s| s <= t_ns))
        .map(|k| names[k].clone())
}
