//! Turning a profile into ordinary plans: one per matrix cell (the cartesian product of the
//! matrix values applied to the profile), or one per max-rate trial. Everything is validated
//! here, before the first record is sent; errors say which profile field and cell.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use toml::Value;

use crate::cli::{
    AmountArgs, ConsumerArgs, EmbeddedKind, OutputArgs, ProducerArgs, RunArgs, TargetArgs,
};
use crate::plan::{self, PhaseSpec, Plan, Timeline};
use crate::profile::file::{set_path, typed, value_text, MaxRateDef, PhaseDef, Profile};

/// The validated plans of a profile.
pub struct Plans {
    cells: Vec<Plan>,
    /// The profile's first cell, from which trials are made.
    base: Profile,
    args: RunArgs,
}

impl Plans {
    pub fn build(profile: &Profile, tree: &Value, args: &RunArgs) -> Result<Plans> {
        let file = args.source().display().to_string();
        if profile.mode != "e2e" && profile.mode != "produce" {
            bail!(
                "profile '{file}': mode must be \"e2e\" or \"produce\" (got \"{}\")",
                profile.mode
            );
        }
        if profile.find_max_rate.is_some() && !profile.matrix.is_empty() {
            bail!("profile '{file}': find_max_rate and matrix cannot be combined; search one configuration at a time");
        }
        if profile
            .matrix
            .keys()
            .any(|k| k.starts_with("target.bootstrap_server"))
        {
            bail!("profile '{file}': the matrix cannot vary target.bootstrap_server");
        }
        if let Some(cfg) = &profile.find_max_rate {
            crate::profile::max_rate::validate(cfg).with_context(|| format!("profile '{file}'"))?;
        }
        let cells = matrix_cells(&profile.matrix);
        let multi = !profile.matrix.is_empty();
        let mut plans = Vec::new();
        for (i, params) in cells.iter().enumerate() {
            let mut cell_tree = tree.clone();
            for (k, v) in params {
                set_path(&mut cell_tree, k, v.clone())
                    .with_context(|| format!("profile '{file}': matrix key '{k}'"))?;
            }
            let cell = typed(cell_tree, args.source())?;
            let label: Vec<String> = params
                .iter()
                .map(|(k, v)| match v {
                    // A table's entries name themselves.
                    Value::Table(_) => value_text(v),
                    _ => format!("{}={}", short_key(k), value_text(v)),
                })
                .collect();
            let label = label.join(",");
            let text_params: BTreeMap<String, String> = params
                .iter()
                .map(|(k, v)| (k.clone(), value_text(v)))
                .collect();
            let phases = if profile.find_max_rate.is_some() {
                Vec::new()
            } else {
                expand_phases(&cell.phases, &file)?
            };
            let plan = plan_for(
                &cell,
                args,
                phases,
                multi.then_some((i, label.as_str())),
                &text_params,
            )
            .with_context(|| {
                if multi {
                    format!("profile '{file}', matrix cell {label}")
                } else {
                    format!("profile '{file}'")
                }
            })?;
            plans.push(plan);
        }
        Ok(Plans {
            cells: plans,
            base: profile.clone(),
            args: args.clone(),
        })
    }

    pub fn first(&self) -> &Plan {
        &self.cells[0]
    }

    pub fn cells(&self) -> &[Plan] {
        &self.cells
    }

    /// The plan of max-rate trial `n`: one phase at `rate` for the step duration.
    pub fn trial(&self, n: usize, rate: f64, cfg: &MaxRateDef) -> Result<Plan> {
        let ms = duration_ms(&cfg.step_duration, "find_max_rate.step_duration")?;
        let mut phase = PhaseSpec::new(&format!("trial-{n}"), Some(rate), Some(ms));
        phase.params.insert("trial".into(), n.to_string());
        let mut plan = plan_for(
            &self.base,
            &self.args,
            vec![phase],
            Some((n, &format!("trial-{n}"))),
            &BTreeMap::new(),
        )?;
        // A trial's phase is named by itself; no cell prefix.
        if let Some(p) = plan.producer.as_mut() {
            for ph in &mut p.timeline.phases {
                ph.name = ph.name.rsplit('/').next().unwrap_or(&ph.name).to_string();
            }
        }
        Ok(plan)
    }
}

/// The cartesian product of the matrix, in key order; one empty cell without a matrix.
fn matrix_cells(matrix: &BTreeMap<String, Vec<Value>>) -> Vec<Vec<(String, Value)>> {
    let mut cells: Vec<Vec<(String, Value)>> = vec![Vec::new()];
    for (k, values) in matrix {
        cells = cells
            .into_iter()
            .flat_map(|c| {
                values
                    .iter()
                    .map(move |v| [c.clone(), vec![(k.clone(), v.clone())]].concat())
            })
            .collect();
    }
    cells
}

/// `producer_props.linger.ms` → `linger.ms`; `workload.record_size` → `record_size`.
fn short_key(k: &str) -> &str {
    for s in ["producer_props.", "consumer_props.", "workload.", "target."] {
        if let Some(rest) = k.strip_prefix(s) {
            return rest;
        }
    }
    k
}

fn duration_ms(text: &str, field: &str) -> Result<u64> {
    let d = humantime::parse_duration(text)
        .map_err(|e| anyhow!("{field}: '{text}' is not a duration like 30s or 2m: {e}"))?;
    if d.is_zero() {
        bail!("{field} must be longer than zero");
    }
    Ok(d.as_millis() as u64)
}

/// Steady phases and ramp steps, in order.
pub fn expand_phases(defs: &[PhaseDef], file: &str) -> Result<Vec<PhaseSpec>> {
    if defs.is_empty() {
        bail!("profile '{file}': no [[phases]]; add at least one, e.g. [[phases]] duration = \"30s\" rate = 1000");
    }
    let mut out = Vec::new();
    for (n, d) in defs.iter().enumerate() {
        let field = format!("phases[{n}]");
        match (&d.ramp, d.rate, &d.duration) {
            (Some(r), None, None) => {
                if !(r.step > 0.0 && r.start > 0.0 && r.end > 0.0) {
                    bail!("{field}.ramp: start, end and step must be > 0");
                }
                let ms = duration_ms(&r.step_duration, &format!("{field}.ramp.step_duration"))?;
                let steps = ((r.end - r.start).abs() / r.step).floor() as usize + 1;
                if steps > 100 {
                    bail!("{field}.ramp makes {steps} steps; at most 100 (raise step)");
                }
                let sign = if r.end >= r.start { 1.0 } else { -1.0 };
                let base = d.name.clone().unwrap_or_else(|| "ramp".into());
                for k in 0..steps {
                    let rate = r.start + sign * r.step * k as f64;
                    let mut p = PhaseSpec::new(&format!("{base}-{rate:.0}"), Some(rate), Some(ms));
                    p.params.insert("step".into(), (k + 1).to_string());
                    out.push(p);
                }
            }
            (Some(_), _, _) if d.consumers.is_some() => bail!("{field}: consumers = \"paused\" applies to a steady phase, not a ramp"),
            (Some(_), _, _) => bail!("{field}: a ramp phase takes no rate or duration of its own (the ramp has start, end, step, step_duration)"),
            (None, Some(rate), Some(dur)) => {
                let rate = if rate < 0.0 {
                    None
                } else if rate > 0.0 {
                    Some(rate)
                } else {
                    bail!("{field}.rate must be > 0 records/s, or -1 for unthrottled");
                };
                let name = d.name.clone().unwrap_or_else(|| format!("phase-{}", n + 1));
                let mut spec = PhaseSpec::new(&name, rate, Some(duration_ms(dur, &format!("{field}.duration"))?));
                spec.pause_consumers = match d.consumers.as_deref() {
                    None | Some("running") => false,
                    Some("paused") => true,
                    Some(other) => bail!("{field}.consumers must be \"paused\" or \"running\" (got \"{other}\")"),
                };
                out.push(spec);
            }
            (None, None, _) => bail!("{field}: give a rate (records/s, -1 = unthrottled) or a ramp"),
            (None, Some(_), None) => bail!("{field}: give a duration, e.g. duration = \"30s\""),
        }
    }
    let mut names = std::collections::HashSet::new();
    for p in &out {
        if !names.insert(p.name.clone()) {
            bail!(
                "profile '{file}': two phases are named '{}'; give them distinct names",
                p.name
            );
        }
    }
    Ok(out)
}

/// One cell's plan, built through the same validation as the command-line flags.
fn plan_for(
    p: &Profile,
    args: &RunArgs,
    mut phases: Vec<PhaseSpec>,
    cell: Option<(usize, &str)>,
    params: &BTreeMap<String, String>,
) -> Result<Plan> {
    let w = &p.workload;
    let t = &p.target;
    let topic = t
        .topic
        .clone()
        .unwrap_or_else(|| format!("kbench-{}", p.name.clone().unwrap_or_else(|| "run".into())));
    let base_topic = topic.clone();
    let topic = match cell {
        Some((i, _)) => format!("{topic}-{i}"),
        None => topic,
    };
    let target = plan::target_plan(&TargetArgs {
        bootstrap_server: t.bootstrap_server.clone(),
        topic,
        partitions: t.partitions.unwrap_or(1),
        replication_factor: t.replication_factor,
        create_topic: t.create_topic.unwrap_or(true),
        connect_timeout: t
            .connect_timeout
            .as_deref()
            .unwrap_or("10s")
            .parse()
            .map_err(|e| anyhow!("target.connect_timeout: {e}"))?,
        embedded: embedded_kind(t.embedded.as_deref(), t.nodes)?,
        mock_rtt: None,
        mock_outage: None,
        mock_brokers: t.mock_brokers.unwrap_or(1),
        cluster_file: t.cluster_file.clone().map(Into::into),
    })?;
    let props = |m: &BTreeMap<String, Value>| {
        m.iter()
            .map(|(k, v)| format!("{k}={}", value_text(v)))
            .collect::<Vec<_>>()
    };
    let producer_args = ProducerArgs {
        amount: AmountArgs {
            num_records: None,
            duration: None,
            warmup_records: None,
            warmup: None,
        },
        record_size: w.record_size.as_ref().map(value_text),
        payload_file: w.payload_file.as_ref().map(Into::into),
        payload_delimiter: w.payload_delimiter.clone().unwrap_or_else(|| "\\n".into()),
        payload_random_ratio: w.payload_random_ratio.unwrap_or(1.0),
        throughput: -1.0,
        acks: None,
        batch_size: None,
        linger_ms: None,
        compression_type: None,
        idempotence: w.idempotence.unwrap_or(false),
        producer_props: props(&p.producer_props),
        producer_config: None,
        keys: w.keys.clone().unwrap_or_else(|| "none".into()),
        producers: w.producers.unwrap_or(1),
        seed: w.seed.unwrap_or(0),
        transactions: crate::cli::TransactionArgs {
            transactional_id: w.transactional_id.clone(),
            transaction_duration_ms: w.transaction_duration_ms,
            transaction_records: w.transaction_records,
            transaction_abort_rate: w.transaction_abort_rate,
        },
    };
    let mut producer = plan::producer_plan(&producer_args).context("workload / producer_props")?;
    if let Some(wu) = &p.warmup {
        let rate = phases.first().and_then(|f| f.rate);
        phases.insert(0, PhaseSpec::warmup(rate, Some(duration_ms(wu, "warmup")?)));
    }
    if let Some((_, label)) = cell {
        for ph in phases.iter_mut().filter(|ph| !ph.excluded) {
            ph.name = format!("{label}/{}", ph.name);
        }
    }
    for ph in &mut phases {
        ph.params.extend(params.clone());
    }
    producer.timeline = Timeline {
        phases,
        warmup_records: None,
        max_records: None,
    };
    if !producer.timeline.phases.is_empty() {
        producer.timeline.validate()?;
    }
    let consumer = if p.mode == "e2e" {
        let timeout_ms = match &w.drain_timeout {
            Some(d) => duration_ms(d, "workload.drain_timeout")?,
            None => 10_000,
        };
        let c = ConsumerArgs {
            group: w
                .group
                .as_ref()
                .map(|g| format!("{g}-{}", cell.map_or(0, |c| c.0))),
            consumers: w.consumers.unwrap_or(1),
            consumer_props: props(&p.consumer_props),
            consumer_config: None,
            timeout: timeout_ms,
            isolation_level: w.isolation_level.clone(),
        };
        let mut c = plan::consumer_plan(&c, "kbench-run").context("workload / consumer_props")?;
        c.props.set_default("auto.offset.reset", "earliest");
        Some(c)
    } else {
        None
    };
    let output = plan::output_plan(
        &OutputArgs {
            reporting_interval: p
                .reporting_interval
                .as_deref()
                .unwrap_or("5s")
                .parse()
                .map_err(|e| anyhow!("reporting_interval: {e}"))?,
            output_dir: args.output_dir.clone(),
            name: Some(
                args.name
                    .clone()
                    .or_else(|| p.name.clone())
                    .unwrap_or_else(|| "run".into()),
            ),
            no_results: args.no_results,
            metrics_listen: args.metrics_listen,
        },
        "run",
    )?;
    Plan {
        command: p.mode.clone(),
        producer: Some(producer),
        consumer,
        consume_records: None,
        show_detailed_stats: false,
        output,
        worker: crate::plan::WorkerPlan::single(),
        faults: profile_faults(p, &base_topic, &target.topic)?,
        verify_readback: p.verify_readback.unwrap_or(false),
        target,
    }
    .with_bootstrap_from_props()
}

/// The profile's `[[faults]]`, each named `faults[N]` in errors. A matrix cell runs on a topic
/// of its own (`TOPIC-N`), so targets naming the profile's topic follow it there.
fn profile_faults(
    p: &Profile,
    base_topic: &str,
    cell_topic: &str,
) -> Result<Vec<crate::plan::faults::FaultSpec>> {
    use crate::plan::faults::Target;
    p.faults
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut f = d.parse(&format!("faults[{i}]"))?;
            if let Some(Target::LeaderOf { topic, .. } | Target::FollowerOf { topic, .. }) =
                &mut f.target
            {
                if topic == base_topic {
                    *topic = cell_topic.to_string();
                }
            }
            Ok(f)
        })
        .collect()
}

/// `target.embedded` and `target.nodes` together (`nodes = N` above 1 is `cluster:N`).
fn embedded_kind(embedded: Option<&str>, nodes: Option<i32>) -> Result<EmbeddedKind> {
    let from_nodes = match nodes {
        None | Some(1) => None,
        Some(n) => Some(
            EmbeddedKind::parse(&format!("cluster:{n}"))
                .map_err(|e| anyhow!("target.nodes: {e}"))?,
        ),
    };
    let given = embedded
        .map(EmbeddedKind::parse)
        .transpose()
        .map_err(|e| anyhow!("target.embedded: {e}"))?;
    match (given, from_nodes) {
        (Some(g), Some(n)) if g != n => {
            bail!("target.nodes ({n}) and target.embedded = \"{g}\" disagree: give one of them")
        }
        (g, n) => Ok(g.or(n).unwrap_or(EmbeddedKind::Broker)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::file::RampDef;

    #[test]
    fn ramps_expand_into_named_steps_with_their_rates() {
        let defs = vec![
            PhaseDef {
                name: Some("steady".into()),
                duration: Some("5s".into()),
                rate: Some(100.0),
                ramp: None,
                consumers: None,
            },
            PhaseDef {
                name: None,
                duration: None,
                rate: None,
                ramp: Some(RampDef {
                    start: 1000.0,
                    end: 4000.0,
                    step: 1000.0,
                    step_duration: "10s".into(),
                }),
                consumers: None,
            },
        ];
        let phases = expand_phases(&defs, "p.toml").unwrap();
        let names: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["steady", "ramp-1000", "ramp-2000", "ramp-3000", "ramp-4000"]
        );
        assert_eq!(phases[4].rate, Some(4000.0));
        assert_eq!(phases[4].duration_ms, Some(10_000));
    }

    #[test]
    fn a_descending_ramp_steps_down() {
        let defs = vec![PhaseDef {
            name: Some("down".into()),
            duration: None,
            rate: None,
            ramp: Some(RampDef {
                start: 300.0,
                end: 100.0,
                step: 100.0,
                step_duration: "1s".into(),
            }),
            consumers: None,
        }];
        let rates: Vec<f64> = expand_phases(&defs, "p")
            .unwrap()
            .iter()
            .filter_map(|p| p.rate)
            .collect();
        assert_eq!(rates, [300.0, 200.0, 100.0]);
    }

    #[test]
    fn the_matrix_is_the_cartesian_product() {
        let mut m = BTreeMap::new();
        m.insert(
            "producer_props.acks".to_string(),
            vec![Value::String("1".into()), Value::String("all".into())],
        );
        m.insert(
            "workload.record_size".to_string(),
            vec![
                Value::Integer(100),
                Value::Integer(1000),
                Value::Integer(10000),
            ],
        );
        let cells = matrix_cells(&m);
        assert_eq!(cells.len(), 6);
        assert_eq!(cells[0][0].0, "producer_props.acks");
        assert!(cells.iter().all(|c| c.len() == 2));
        assert_eq!(matrix_cells(&BTreeMap::new()).len(), 1);
    }

    #[test]
    fn phase_errors_name_the_field() {
        let bad = vec![PhaseDef {
            name: None,
            duration: None,
            rate: Some(5.0),
            ramp: None,
            consumers: None,
        }];
        assert!(expand_phases(&bad, "p")
            .unwrap_err()
            .to_string()
            .contains("phases[0]: give a duration"));
        let bad = vec![PhaseDef {
            name: None,
            duration: Some("1s".into()),
            rate: None,
            ramp: None,
            consumers: None,
        }];
        assert!(expand_phases(&bad, "p")
            .unwrap_err()
            .to_string()
            .contains("give a rate"));
    }
}
