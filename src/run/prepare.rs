//! The stages before any load: make sure the topic is there, then create every client, so that
//! a missing topic or a bad client property fails the run before a record is sent.
//!
//! Nothing here starts a thread or sends a record; `workers` does that with what this returns.

use anyhow::Result;

use crate::load::consumer::{ConsumerPhases, ConsumerSetup, ConsumerWorker};
use crate::load::producer::ProducerWorker;
use crate::plan::{props::Props, PhaseSpec, Plan};
use crate::target::Target;

/// Checks the topic (creating it when allowed) and returns its partition count.
pub fn ensure_topic(plan: &Plan, target: &Target) -> Result<i32> {
    let t = &plan.target;
    let create = t.create_topic && plan.command != "consume";
    let partitions = target.ensure_topic(
        &admin_props(plan),
        &t.topic,
        t.partitions,
        t.replication_factor,
        create,
        std::time::Duration::from_millis(t.connect_timeout_ms),
    )?;
    eprintln!(
        "kbench: {} on topic '{}' ({partitions} partitions) at {} ({})",
        plan.command, t.topic, target.bootstrap, target.kind
    );
    Ok(partitions)
}

/// The admin client's properties: the connection and security settings the producer and
/// consumer properties carry (the admin client accepts no others).
fn admin_props(plan: &Plan) -> Props {
    let mut admin = Props::default();
    for p in [
        plan.producer.as_ref().map(|p| &p.props),
        plan.consumer.as_ref().map(|c| &c.props),
    ]
    .into_iter()
    .flatten()
    {
        for (k, v) in p.iter() {
            if is_common_property(k) {
                admin.set(k, v, p.source(k));
            }
        }
    }
    admin
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

/// This process's clients, created but not started, and the phases their recorders keep apart.
pub struct Clients {
    pub producers: Vec<ProducerWorker>,
    pub consumers: Vec<ConsumerWorker>,
    pub phases: Vec<PhaseSpec>,
}

/// Creates this worker's share of the plan's producers and consumers.
pub fn create_clients(plan: &Plan, target: &Target, run_id: u32) -> Result<Clients> {
    let t = &plan.target;
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
                    // The read-back compares the log with the acknowledged records.
                    plan.command == "e2e" || plan.verify_readback,
                )
            })
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let phases = recorded_phases(plan);
    let setup = consumer_setup(plan, run_id, phases.len());
    // Members that `consumer-join` faults add come after the others, created now (so their
    // properties are checked too) and subscribed when they join.
    let joins = crate::fault::consumers::joins(&plan.faults);
    if let Some(c) = &plan.consumer {
        let whose = match c.props.source("isolation.level") {
            "?" => "librdkafka's default; Java's is read_uncommitted".to_string(),
            source => format!("set by {source}"),
        };
        eprintln!(
            "kbench: consumers read with isolation.level={} ({whose})",
            c.isolation_level
        );
    }
    let consumers: Vec<ConsumerWorker> = match &plan.consumer {
        Some(c) => (0..c.consumers)
            .filter(|&i| plan.worker.owns(i))
            .map(|i| (i, false))
            .chain((c.consumers..c.consumers + joins).map(|i| (i, true)))
            .map(|(i, late)| ConsumerWorker::new(i, &target.bootstrap, &t.topic, c, &setup, late))
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    Ok(Clients {
        producers,
        consumers,
        phases,
    })
}

/// The phases every recorder keeps apart: the producers' timeline, or for a standalone
/// consumer the producers' warm-up (from the stamp) and the rest.
fn recorded_phases(plan: &Plan) -> Vec<PhaseSpec> {
    match &plan.producer {
        Some(p) => p.timeline.phases.clone(),
        None => vec![
            PhaseSpec::warmup(None, None),
            PhaseSpec::new("measured", None, None),
        ],
    }
}

/// How consumers attribute and time what they read.
fn consumer_setup(plan: &Plan, run_id: u32, phase_count: usize) -> ConsumerSetup {
    let phases = if plan.producer.is_some() {
        ConsumerPhases::SameRun
    } else {
        ConsumerPhases::WarmupAndMeasured
    };
    let from_intended = plan
        .producer
        .as_ref()
        .is_some_and(|p| p.timeline.open_model());
    ConsumerSetup {
        phases,
        phase_count,
        // e2e reads only its own run's records from a topic that may hold older ones.
        run_filter: (plan.command == "e2e").then_some(run_id),
        from_intended: from_intended || plan.command == "consume",
    }
}
