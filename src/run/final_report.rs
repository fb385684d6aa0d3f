//! The end of a run: the summary document, verification checks, and the final console blocks
//! (Kafka's total lines first, then kbench's microsecond tables and the correction note).

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Result;

use crate::measure::host::HostInfo;
use crate::measure::recorder::ProduceStats;

use crate::measure::verify::{Seen, SeqSet};
use crate::plan::Plan;
use crate::report::console;
use crate::report::summary::{Check, PhaseSummary, Summary, Verification, SCHEMA_VERSION};
use crate::run::reporter::{sum, Reporter};

/// What the summary needs besides the measurements.
pub struct Context<'a> {
    pub plan: &'a Plan,
    pub run_id: u32,
    pub started_at: &'a str,
    pub host: HostInfo,
    pub target_kind: &'static str,
    pub bootstrap: String,
    pub frame: &'a Frame,
}

/// Where this execution sits: alone (a CLI command) or as one cell of a profile, whose earlier
/// cells' phases and whose own config and name the summary shows.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    /// Overrides the command name and config recorded in the summary (`run` and the profile).
    pub command: Option<String>,
    pub config: Option<serde_json::Value>,
    /// Phases of earlier cells, listed before this cell's.
    pub prior_phases: Vec<PhaseSummary>,
}

/// What one execution measured.
pub struct CellResult {
    pub summary: Summary,
    pub exit: ExitCode,
}

fn latency_model(plan: &Plan) -> (String, String) {
    let rates: Vec<f64> = plan
        .producer
        .as_ref()
        .map(|p| p.timeline.phases.iter().filter_map(|ph| ph.rate).collect())
        .unwrap_or_default();
    let rate = match rates.as_slice() {
        [] => None,
        [r, rest @ ..] if rest.iter().all(|x| x == r) => Some(format!("at {r} records/s")),
        _ => Some("at each phase's target rate".to_string()),
    };
    match rate {
        Some(rate) => (
            "open".into(),
            format!(
                "open model {rate}: produce and e2e latency are measured from each record's intended send time (corrected for coordinated omission); service latency from the send call, as kafka-producer-perf-test does (its ms lines above use it); send delay = send call - intended time"
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
    let (latency_model, mut latency_note) = latency_model(ctx.plan);
    if let Some(note) = visible_note(ctx.plan) {
        latency_note.push_str(note);
    }
    let mut config = ctx
        .frame
        .config
        .clone()
        .unwrap_or_else(|| serde_json::to_value(ctx.plan).unwrap_or_default());
    if ctx.target_kind == "external" {
        if let Some(t) = config.get_mut("target").and_then(|t| t.as_object_mut()) {
            t.remove("embedded");
        }
    }
    if let Some(obj) = config.as_object_mut() {
        obj.insert("target_kind".into(), ctx.target_kind.into());
        obj.insert("bootstrap_servers".into(), ctx.bootstrap.clone().into());
        obj.insert("client_timing".into(), client_timing(ctx.plan));
    }
    Summary {
        schema_version: SCHEMA_VERSION,
        kbench_version: env!("CARGO_PKG_VERSION").into(),
        command: ctx
            .frame
            .command
            .clone()
            .unwrap_or_else(|| ctx.plan.command.clone()),
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
        phases: ctx
            .frame
            .prior_phases
            .iter()
            .cloned()
            .chain(rep.reported_phases(end_ns))
            .collect(),
        verification: None,
        max_rate_search: None,
        checks,
        faults: Vec::new(),
        durability: None,
        transactions: txn_run(ctx.plan, rep),
    }
}

/// What end-to-end latency means with transactional producers.
fn visible_note(plan: &Plan) -> Option<&'static str> {
    plan.producer.as_ref()?.transactions.as_ref()?;
    Some(match plan.consumer.as_ref()?.isolation_level.as_str() {
        "read_committed" => "; with transactions and read_committed consumers, end-to-end latency is produce-to-visible: a record becomes visible when its transaction commits, so it includes the rest of its transaction and the commit",
        _ => "; with read_uncommitted consumers, end-to-end latency is produce-to-fetch: records are seen before their transaction commits (or aborts)",
    })
}

/// The run's transactional producers (`None` without transactions).
fn txn_run(plan: &Plan, rep: &Reporter) -> Option<crate::report::txn::TxnRun> {
    plan.producer.as_ref()?.transactions.as_ref()?;
    let ids = rep.producers.iter();
    Some(crate::report::txn::TxnRun {
        transactional_ids: ids
            .clone()
            .filter_map(|p| p.transactional_id.clone())
            .collect(),
        init_transactions_ms: ids
            .map(|p| {
                let us = p
                    .init_transactions_us
                    .load(std::sync::atomic::Ordering::Relaxed);
                (us as f64 / 100.0).round() / 10.0
            })
            .collect(),
        isolation_level: plan.consumer.as_ref().map(|c| c.isolation_level.clone()),
    })
}

/// The settings that decide failover times, as each client type has them.
fn client_timing(plan: &Plan) -> serde_json::Value {
    use crate::load::timing;
    serde_json::json!({
        "librdkafka_version": timing::librdkafka_version(),
        "producer": plan.producer.as_ref().map(|p| timing::effective(&p.props)),
        "consumer": plan.consumer.as_ref().map(|c| timing::effective(&c.props)),
    })
}

/// Verifies, prints the final blocks, writes the final summary; returns the exit code.
pub fn finish(
    ctx: &Context,
    rep: &mut Reporter,
    end_ns: u64,
    seen: &[Seen],
    acked: Option<&HashMap<u32, SeqSet>>,
    faults: Option<crate::fault::session::FaultOutcome>,
) -> Result<CellResult> {
    let plan = ctx.plan;
    if !rep.producers.is_empty() {
        print_producer_totals(rep, end_ns);
    }
    if plan.command == "consume" && !plan.show_detailed_stats {
        let all = sum(&rep
            .totals
            .iter()
            .map(|t| t.consume.clone())
            .collect::<Vec<_>>());
        let row = console::ConsumerRow {
            bytes: all.bytes,
            records: all.records,
            elapsed_ms: (end_ns.saturating_sub(rep.start_ns) / 1_000_000).max(1),
            rebalance_ms: rep.rebalance_ms(),
        };
        rep.progress.println(&console::kafka_consumer_row(
            &console::kafka_date(rep.start_ns),
            Some(&console::kafka_date(end_ns)),
            &row,
        ));
    }

    let mut s = summary(ctx, rep, end_ns, true, Vec::new());
    if ctx.plan.worker.workers > 1 && !rep.consumers.is_empty() {
        rep.progress.println("  verification: not done by a worker of a distributed run (its consumers see a share of the partitions); verify with a separate `kbench consume` of the topic");
    }
    if !rep.consumers.is_empty() && ctx.plan.worker.workers == 1 {
        let merged = Seen::merge(seen);
        let mut v = verification(&merged, acked);
        v.isolation_level = plan.consumer.as_ref().map(|c| c.isolation_level.clone());
        v.aborted_seen = aborted_seen(rep, &merged, acked.is_some());
        if acked.is_some() {
            s.checks
                .push(loss_check(v.lost, v.acknowledged.unwrap_or(0)));
        }
        let transactional = plan
            .producer
            .as_ref()
            .is_some_and(|p| p.transactions.is_some());
        if let Some(c) = aborted_check(transactional, &v) {
            s.checks.push(c);
        }
        // With one reported phase, the whole-run counts are that phase's.
        if let ([], [phase]) = (ctx.frame.prior_phases.as_slice(), s.phases.as_mut_slice()) {
            if let Some(c) = phase.consume.as_mut() {
                if v.consumed_distinct > 0 || acked.is_some() {
                    (c.lost, c.duplicated, c.reordered) =
                        (Some(v.lost), Some(v.duplicated), Some(v.reordered));
                }
            }
        }
        s.verification = Some(v);
    }
    if let Some(f) = faults {
        attach_faults(&mut s, f);
    }
    print_kbench_block(rep, &s);
    rep.write_summary(&s)?;
    // After the summary is written, so a run that failed keeps what it measured.
    if let Some(why) = nothing_acknowledged(rep) {
        anyhow::bail!(why);
    }
    for c in s.checks.iter().filter(|c| !c.passed) {
        eprintln!("kbench: check failed: {}: {}", c.name, c.detail);
    }
    let exit = exit_code(&s.checks);
    Ok(CellResult { summary: s, exit })
}

/// Kafka's total line over every record, then its "steady state" line without the warm-up;
/// both over the producing window (to the last acknowledgement, as Kafka's tool counts), not
/// the wait for an e2e run's consumers.
fn print_producer_totals(rep: &Reporter, end_ns: u64) {
    let all = all_produced(rep);
    let end_ns = rep.produce_end_ns(end_ns);
    let total_secs = end_ns.saturating_sub(rep.starts.get(0).unwrap_or(rep.start_ns)) as f64 / 1e9;
    rep.progress
        .println(&console::kafka_producer_total(&all, total_secs, false));
    let excluded: Vec<usize> = (0..rep.phases.len())
        .filter(|&k| rep.phases[k].excluded)
        .collect();
    if !excluded.is_empty() {
        let steady: Vec<usize> = (0..rep.phases.len())
            .filter(|&k| !rep.phases[k].excluded)
            .collect();
        let stats = sum(&steady
            .iter()
            .map(|&k| rep.totals[k].produce.clone())
            .collect::<Vec<_>>());
        let secs: f64 = steady.iter().map(|&k| rep.phase_secs(k, end_ns)).sum();
        rep.progress
            .println(&console::kafka_producer_total(&stats, secs, true));
    }
}

/// What every producer's reports added up to, over the whole run.
fn all_produced(rep: &Reporter) -> ProduceStats {
    sum(&rep
        .totals
        .iter()
        .map(|t| t.produce.clone())
        .collect::<Vec<_>>())
}

/// Producers sent records and the cluster acknowledged none of them: the run measured nothing
/// and fails (exit 2), naming the last error.
fn nothing_acknowledged(rep: &Reporter) -> Option<String> {
    let all = all_produced(rep);
    if rep.producers.is_empty() || all.records > 0 || all.errors == 0 {
        return None;
    }
    let last = rep
        .producers
        .iter()
        .find_map(|p| p.last_error.lock().ok().and_then(|e| e.clone()))
        .unwrap_or_default();
    Some(format!("no record was acknowledged ({} failed; last error: {last}); check the broker and the producer properties", all.errors))
}

/// Whole-run verification from what the consumers saw (and, in `e2e`, what was acknowledged).
fn verification(merged: &Seen, acked: Option<&HashMap<u32, SeqSet>>) -> Verification {
    match acked {
        Some(acked) => Verification {
            method: "acknowledged".into(),
            acknowledged: Some(acked.values().map(SeqSet::len).sum()),
            consumed_distinct: merged.distinct(),
            lost: merged.lost_from(acked),
            duplicated: merged.duplicated,
            reordered: merged.reordered,
            isolation_level: None,
            aborted_seen: 0,
        },
        None => Verification {
            method: "sequence_gaps".into(),
            acknowledged: None,
            consumed_distinct: merged.distinct(),
            lost: merged.gaps(),
            duplicated: merged.duplicated,
            reordered: merged.reordered,
            isolation_level: None,
            aborted_seen: 0,
        },
    }
}

/// The faults' results and the read-back go into the summary; an acknowledged record missing
/// from the log fails the run unless a fault said loss was expected.
fn attach_faults(s: &mut Summary, f: crate::fault::session::FaultOutcome) {
    for line in &f.lines {
        eprintln!("{line}");
    }
    if let Some(d) = &f.durability {
        s.checks.push(Check {
            name: "no acknowledged record lost (read-back)".into(),
            passed: d.acked_lost == 0 || d.loss_expected,
            detail: format!(
                "{} of {} acknowledged records are not in the log{}",
                d.acked_lost,
                d.acked,
                if d.loss_expected && d.acked_lost > 0 {
                    " (loss expected by the fault: reported, not failed)"
                } else {
                    ""
                }
            ),
        });
        if !d.complete {
            s.checks.push(Check {
                name: "read-back reached the end of every partition".into(),
                passed: false,
                detail:
                    "the read-back stopped before the end offsets: records not read count as lost"
                        .into(),
            });
        }
    }
    s.faults = f.faults;
    s.durability = f.durability;
}

/// Records of aborted transactions the consumers saw: those marked in their stamps, and in
/// e2e those of transactions whose commit failed (the producers know which).
fn aborted_seen(rep: &Reporter, merged: &Seen, same_run: bool) -> u64 {
    let marked: u64 = rep.totals.iter().map(|t| t.consume.aborted_seen).sum();
    if !same_run {
        return marked;
    }
    let failed: HashMap<u32, SeqSet> = rep
        .producers
        .iter()
        .map(|p| {
            let nc = p.not_committed.lock().unwrap_or_else(|e| e.into_inner());
            (p.index, nc.clone())
        })
        .filter(|(_, s)| !s.is_empty())
        .collect();
    marked + merged.present_of(&failed)
}

/// The name of `aborted_check`'s check.
pub const ABORTED_CHECK: &str = "no record of an aborted transaction visible (read_committed)";

/// A read_committed consumer must never see a record of an aborted transaction (checked when
/// the run is transactional, or when one was seen anyway).
pub fn aborted_check(transactional: bool, v: &Verification) -> Option<Check> {
    let committed_only = v.isolation_level.as_deref() == Some("read_committed");
    (committed_only && (transactional || v.aborted_seen > 0)).then(|| Check {
        name: ABORTED_CHECK.into(),
        passed: v.aborted_seen == 0,
        detail: format!(
            "{} records of aborted transactions were consumed with isolation.level=read_committed",
            v.aborted_seen
        ),
    })
}

/// The verification check of an e2e run.
pub fn loss_check(lost: u64, acked: u64) -> Check {
    Check {
        name: "no acknowledged record lost".into(),
        passed: lost == 0,
        detail: format!("{lost} of {acked} acknowledged records were never consumed"),
    }
}

/// 0 when every check passed, 1 otherwise (the run itself worked).
pub fn exit_code(checks: &[Check]) -> ExitCode {
    if checks.iter().all(|c| c.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_kbench_block(rep: &Reporter, s: &Summary) {
    let mut lines = vec![String::new()];
    // This execution's own phases (a profile's earlier cells were printed when they ran).
    let own = rep.phases.iter().filter(|p| !p.excluded).count();
    match &s.phases[s.phases.len().saturating_sub(own)..] {
        [ph] => lines.extend(phase_block(s, ph)),
        phases => {
            lines.push(format!(
                "kbench {} summary: {} phases (warm-up excluded); latency in µs",
                s.command,
                phases.len()
            ));
            lines.push(console::phase_table(phases));
            lines.extend(crate::report::txn::phase_table(phases));
        }
    }
    if let Some(t) = &s.transactions {
        lines.push(crate::report::txn::run_line(t));
    }
    if let Some(v) = &s.verification {
        let what = if v.method == "acknowledged" {
            "lost (acknowledged, never consumed)"
        } else {
            "missing (sequence gaps)"
        };
        lines.push(format!(
            "  verification (whole run): {} {what}, {} duplicated, {} reordered{}",
            v.lost,
            v.duplicated,
            v.reordered,
            aborted_text(s, v)
        ));
    }
    lines.extend(crate::report::faults::lines(
        &s.faults,
        s.durability.as_ref(),
    ));
    lines.push(format!("  note: {}", s.latency_note));
    for l in lines {
        rep.progress.println(&l);
    }
}

/// The verification line's part about aborted transactions (empty when there were none).
fn aborted_text(s: &Summary, v: &Verification) -> String {
    let level = v.isolation_level.as_deref().unwrap_or("read_committed");
    if s.transactions.is_none() && v.aborted_seen == 0 {
        return String::new();
    }
    let note = if level == "read_committed" {
        "must be 0"
    } else {
        "read_uncommitted sees them; not an error"
    };
    format!(
        ", {} records of aborted transactions seen ({level}: {note}); counts above are of committed records",
        v.aborted_seen
    )
}

fn phase_block(s: &Summary, ph: &PhaseSummary) -> Vec<String> {
    // Rates are over each side's window; with both sides (e2e) the two differ, so name them.
    let both = ph.produce.is_some() && ph.consume.is_some();
    let over = |window: Option<f64>| match window {
        Some(w) if both => format!(" over {w:.2} s"),
        _ => String::new(),
    };
    let consume_window = ph.consume_window_sec;
    let mut lines = vec![format!(
        "kbench {} summary: {} phase, {:.2} s (warm-up excluded)",
        s.command, ph.name, ph.duration_sec
    )];
    let mut rows = Vec::new();
    if let Some(p) = &ph.produce {
        lines.push(format!("  produced: {} records, {:.1} records/s{}, {:.2} MB/s, {} errors, {} sends more than 1 ms late", p.records, p.records_per_sec, over(ph.produce_window_sec), p.mb_per_sec, p.errors, p.late_sends));
        rows.push(("produce", &p.latency_us));
        rows.push(("service", &p.service_latency_us));
        if s.latency_model == "open" {
            rows.push(("send delay", &p.send_delay_us));
        }
        if let Some(t) = &p.transactions {
            lines.extend(crate::report::txn::lines(t));
            rows.extend(crate::report::txn::latency_rows(t));
        }
    }
    if let Some(c) = &ph.consume {
        lines.push(format!(
            "  consumed: {} records, {:.1} records/s{}, {:.2} MB/s, {} without a kbench stamp{}",
            c.records,
            c.records_per_sec,
            over(consume_window),
            c.mb_per_sec,
            c.unstamped,
            c.max_lag
                .map_or(String::new(), |l| format!(", max lag {l}"))
                + &c.max_lso_lag.map_or(String::new(), |l| format!(
                    ", max LSO lag {l} (high watermark - last stable offset)"
                ))
        ));
        if c.e2e_latency_us.count > 0 {
            rows.push(("end-to-end", &c.e2e_latency_us));
        }
    }
    if !rows.is_empty() {
        lines.push(console::latency_table(&rows));
    }
    lines
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
