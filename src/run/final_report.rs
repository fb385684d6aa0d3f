//! The end of a run: the summary document, verification checks, and the final console blocks
//! (Kafka's total lines first, then kbench's microsecond tables and the correction note).

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Result;

use crate::measure::host::HostInfo;
use crate::measure::recorder::{Phase, ProduceStats};
use crate::measure::verify::{Seen, SeqSet};
use crate::plan::Plan;
use crate::report::console;
use crate::report::summary::{Check, Summary, SCHEMA_VERSION};
use crate::run::reporter::Reporter;

/// What the summary needs besides the measurements.
pub struct Context<'a> {
    pub plan: &'a Plan,
    pub run_id: u32,
    pub started_at: &'a str,
    pub host: HostInfo,
    pub target_kind: &'static str,
    pub bootstrap: String,
}

fn latency_model(plan: &Plan) -> (String, String) {
    match plan.producer.as_ref().and_then(|p| p.rate) {
        Some(rate) => (
            "open".into(),
            format!(
                "open model at {rate} records/s: produce and e2e latency are measured from each record's intended send time (corrected for coordinated omission); service latency from the send call, as kafka-producer-perf-test does (its ms lines above use it); send delay = send call - intended time"
            ),
        ),
        None if plan.producer.is_some() => (
            "closed".into(),
            "closed model (--throughput -1): records are sent as fast as the client accepts them; latency is measured from the send call (the same as service latency), so a stall delays sends instead of showing in latency; no send delay applies".into(),
        ),
        None => (
            "consumer".into(),
            "end-to-end latency is measured from the intended send time written in each record's kbench stamp by the producer that sent it".into(),
        ),
    }
}

/// The summary document as of `end_ns`.
pub fn summary(
    ctx: &Context,
    rep: &Reporter,
    end_ns: u64,
    complete: bool,
    checks: Vec<Check>,
) -> Summary {
    let (latency_model, latency_note) = latency_model(ctx.plan);
    let mut config = serde_json::to_value(ctx.plan).unwrap_or_default();
    if let Some(obj) = config.as_object_mut() {
        obj.insert("target_kind".into(), ctx.target_kind.into());
        obj.insert("bootstrap_servers".into(), ctx.bootstrap.clone().into());
    }
    Summary {
        schema_version: SCHEMA_VERSION,
        kbench_version: env!("CARGO_PKG_VERSION").into(),
        command: ctx.plan.command.clone(),
        run_id: format!("{:08x}", ctx.run_id),
        name: ctx.plan.output.name.clone(),
        started_at: ctx.started_at.into(),
        ended_at: complete.then(|| chrono::Local::now().to_rfc3339()),
        complete: complete && !crate::run::STOP.load(std::sync::atomic::Ordering::Relaxed),
        interrupted: crate::run::STOP.load(std::sync::atomic::Ordering::Relaxed),
        latency_model,
        latency_note,
        config,
        host: ctx.host.clone(),
        phases: vec![rep.measured_phase(end_ns)],
        checks,
    }
}

/// Verifies, prints the final blocks, writes the final summary; returns the exit code.
pub fn finish(
    ctx: &Context,
    rep: &mut Reporter,
    end_ns: u64,
    seen: &[Seen],
    acked: Option<&HashMap<u32, SeqSet>>,
) -> Result<ExitCode> {
    let plan = ctx.plan;
    let secs = rep.phase_secs(end_ns);
    let total_secs = secs[0] + secs[1];
    let mut checks = Vec::new();

    if !rep.producers.is_empty() {
        let m = &rep.totals.produce[Phase::Measured.index()];
        let mut all: ProduceStats = rep.totals.produce[Phase::Warmup.index()].clone();
        all.add(m);
        rep.progress
            .println(&console::kafka_producer_total(&all, total_secs, false));
        if rep.warmup_records.is_some() || rep.totals.produce[Phase::Warmup.index()].records > 0 {
            rep.progress
                .println(&console::kafka_producer_total(m, secs[1], true));
        }
        if all.records == 0 && all.errors > 0 {
            let last = rep
                .producers
                .iter()
                .find_map(|p| p.last_error.lock().ok().and_then(|e| e.clone()))
                .unwrap_or_default();
            anyhow::bail!("no record was acknowledged ({} failed; last error: {last}); check the broker and the producer properties", all.errors);
        }
    }

    let mut s = summary(ctx, rep, end_ns, true, Vec::new());
    let merged = Seen::merge(seen);
    if let Some(c) = s.phases[0].consume.as_mut() {
        let consumed_any = merged.distinct() > 0;
        match acked {
            Some(acked) => {
                let lost = merged.lost_from(acked);
                c.lost = Some(lost);
                checks.push(Check {
                    name: "no acknowledged record lost".into(),
                    passed: lost == 0,
                    detail: format!(
                        "{lost} of {} acknowledged records were never consumed",
                        acked.values().map(SeqSet::len).sum::<u64>()
                    ),
                });
            }
            None if consumed_any => c.lost = Some(merged.gaps()),
            None => {}
        }
        if consumed_any || acked.is_some() {
            c.duplicated = Some(merged.duplicated);
            c.reordered = Some(merged.reordered);
        }
        if plan.command == "consume" {
            let all_records = rep.totals.consume.iter().map(|c| c.records).sum::<u64>();
            let all_bytes = rep.totals.consume.iter().map(|c| c.bytes).sum::<u64>();
            let row = console::ConsumerRow {
                bytes: all_bytes,
                records: all_records,
                elapsed_ms: ((end_ns.saturating_sub(rep.start_ns)) / 1_000_000).max(1),
                rebalance_ms: rep.rebalance_ms(),
            };
            if !plan.show_detailed_stats {
                rep.progress.println(&console::kafka_consumer_row(
                    &console::kafka_date(rep.start_ns),
                    Some(&console::kafka_date(end_ns)),
                    &row,
                ));
            }
        }
    }
    s.checks = checks;

    print_kbench_block(rep, &s);
    rep.write_summary(&s)?;
    let failed: Vec<&Check> = s.checks.iter().filter(|c| !c.passed).collect();
    for c in &failed {
        eprintln!("kbench: check failed: {}: {}", c.name, c.detail);
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_kbench_block(rep: &Reporter, s: &Summary) {
    let ph = &s.phases[0];
    let mut lines = vec![
        String::new(),
        format!(
            "kbench {} summary: measured phase, {:.2} s (warm-up excluded)",
            s.command, ph.duration_sec
        ),
    ];
    let mut rows = Vec::new();
    if let Some(p) = &ph.produce {
        lines.push(format!(
            "  produced: {} records, {:.1} records/s, {:.2} MB/s, {} errors, {} sends more than 1 ms late",
            p.records, p.records_per_sec, p.mb_per_sec, p.errors, p.late_sends
        ));
        rows.push(("produce", &p.latency_us));
        rows.push(("service", &p.service_latency_us));
        if s.latency_model == "open" {
            rows.push(("send delay", &p.send_delay_us));
        }
    }
    if let Some(c) = &ph.consume {
        lines.push(format!(
            "  consumed: {} records, {:.1} records/s, {:.2} MB/s, {} without a kbench stamp{}",
            c.records,
            c.records_per_sec,
            c.mb_per_sec,
            c.unstamped,
            c.max_lag
                .map_or(String::new(), |l| format!(", max lag {l}"))
        ));
        if c.e2e_latency_us.count > 0 {
            rows.push(("end-to-end", &c.e2e_latency_us));
        }
        if let (Some(l), Some(d), Some(r)) = (c.lost, c.duplicated, c.reordered) {
            let what = if s.command == "e2e" {
                "lost (acknowledged, never consumed)"
            } else {
                "missing (sequence gaps)"
            };
            lines.push(format!(
                "  verification: {l} {what}, {d} duplicated, {r} reordered"
            ));
        }
    }
    if !rows.is_empty() {
        lines.push(console::latency_table(&rows));
    }
    lines.push(format!("  note: {}", s.latency_note));
    for l in lines {
        rep.progress.println(&l);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_that_lost_an_acknowledged_record_exits_1() {
        assert_eq!(exit_code(&[loss_check(0, 100)]), ExitCode::SUCCESS);
        let lost = loss_check(3, 100);
        assert!(!lost.passed && lost.detail.starts_with("3 of 100"));
        assert_eq!(exit_code(&[loss_check(0, 100), lost]), ExitCode::from(1));
    }
}
