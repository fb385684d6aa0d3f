//! Transactions in the results: the per-phase `produce.transactions` block of summary.json,
//! the run's `transactions` block (ids, `init_transactions` times), the console lines and the
//! table of a run with several phases (a profile's matrix, say). Nothing here measures.

use comfy_table::presets::NOTHING;
use comfy_table::{CellAlignment, Table};
use serde::Serialize;

use crate::measure::txn::TxnStats;
use crate::report::summary::{per_sec, LatencySummary, PhaseSummary};

/// One phase's transactions.
#[derive(Debug, Clone, Serialize)]
pub struct TxnSummary {
    pub committed: u64,
    pub aborted: u64,
    /// Commits that failed (then aborted); their records are not committed.
    pub failed: u64,
    /// Transactions ended (committed, aborted or failed) per second of the producing window.
    pub transactions_per_sec: f64,
    pub records_per_transaction: f64,
    /// Records of aborted and failed transactions (in `records` too: the broker took them).
    pub aborted_records: u64,
    /// The `commit_transaction` call: flush, EndTxn, markers written.
    pub commit_latency_us: LatencySummary,
    /// A flush then the `abort_transaction` call.
    pub abort_latency_us: LatencySummary,
    /// Per transaction after the first: how long its first record waited, past its due time,
    /// for the previous transaction to end (0 when it had ended in time).
    pub commit_pause_us: LatencySummary,
}

/// A phase's transactions (`None` when the producers are not transactional).
pub fn txn_summary(t: &TxnStats, transactional: bool, secs: f64) -> Option<TxnSummary> {
    transactional.then(|| TxnSummary {
        committed: t.committed,
        aborted: t.aborted,
        failed: t.failed,
        transactions_per_sec: per_sec(t.ended() as f64, secs),
        records_per_transaction: if t.ended() > 0 {
            ((t.records as f64 / t.ended() as f64) * 10.0).round() / 10.0
        } else {
            0.0
        },
        aborted_records: t.aborted_records,
        commit_latency_us: LatencySummary::of(&t.commit_latency_us),
        abort_latency_us: LatencySummary::of(&t.abort_latency_us),
        commit_pause_us: LatencySummary::of(&t.commit_pause_us),
    })
}

/// The run's transactional producers.
#[derive(Debug, Clone, Serialize)]
pub struct TxnRun {
    /// Each producer's transactional.id, in producer order.
    pub transactional_ids: Vec<String>,
    /// How long each producer's `init_transactions` took, in ms (before the load started).
    pub init_transactions_ms: Vec<f64>,
    /// The consumers' isolation.level (null without consumers).
    pub isolation_level: Option<String>,
}

/// The console lines of one phase's transactions, before its latency table.
pub fn lines(t: &TxnSummary) -> Vec<String> {
    vec![format!(
        "  transactions: {} committed, {} aborted, {} failed commits, {:.1} transactions/s, {:.1} records per transaction, {} records in aborted transactions",
        t.committed, t.aborted, t.failed, t.transactions_per_sec, t.records_per_transaction, t.aborted_records
    )]
}

/// The latency rows transactions add to a phase's table (only those with samples).
pub fn latency_rows(t: &TxnSummary) -> Vec<(&'static str, &LatencySummary)> {
    [
        ("commit", &t.commit_latency_us),
        ("abort", &t.abort_latency_us),
        ("commit pause", &t.commit_pause_us),
    ]
    .into_iter()
    .filter(|(_, l)| l.count > 0)
    .collect()
}

/// The run's line: ids and `init_transactions`.
pub fn run_line(r: &TxnRun) -> String {
    let init: Vec<String> = r
        .init_transactions_ms
        .iter()
        .map(|ms| format!("{ms:.1}"))
        .collect();
    let ids = match r.transactional_ids.as_slice() {
        [one] => format!("transactional.id {one}"),
        many => format!(
            "transactional.ids {}..",
            many.first().map_or("", |s| s.as_str())
        ),
    };
    format!("  {ids}; init_transactions {} ms", init.join(", "))
}

/// Several phases with transactions: one row each (records/s, produce latency, transactions/s,
/// records per transaction, commit latency and pause, e2e latency and LSO lag when there are
/// consumers; latency in µs). Phases without transactions show dashes for theirs.
pub fn phase_table(phases: &[PhaseSummary]) -> Option<String> {
    let rows: Vec<&PhaseSummary> = phases.iter().filter(|p| p.produce.is_some()).collect();
    if !rows.iter().any(|p| {
        p.produce
            .as_ref()
            .is_some_and(|pr| pr.transactions.is_some())
    }) {
        return None;
    }
    let mut t = Table::new();
    t.load_preset(NOTHING);
    t.set_header([
        "phase",
        "produced/s",
        "produce p50",
        "p99",
        "txn/s",
        "records/txn",
        "commit p50",
        "p99",
        "max",
        "pause p99",
        "aborted",
        "e2e p50",
        "e2e p99",
        "max LSO lag",
    ]);
    let dash = || "-".to_string();
    for ph in rows {
        let p = ph.produce.as_ref().expect("filtered on produce");
        let mut row = vec![
            ph.name.clone(),
            format!("{:.1}", p.records_per_sec),
            p.latency_us.p50.to_string(),
            p.latency_us.p99.to_string(),
        ];
        match &p.transactions {
            Some(x) => row.extend([
                format!("{:.1}", x.transactions_per_sec),
                format!("{:.1}", x.records_per_transaction),
                x.commit_latency_us.p50.to_string(),
                x.commit_latency_us.p99.to_string(),
                x.commit_latency_us.max.to_string(),
                x.commit_pause_us.p99.to_string(),
                x.aborted.to_string(),
            ]),
            None => row.extend([dash(), dash(), dash(), dash(), dash(), dash(), dash()]),
        }
        match ph.consume.as_ref().filter(|c| c.e2e_latency_us.count > 0) {
            Some(c) => row.extend([
                c.e2e_latency_us.p50.to_string(),
                c.e2e_latency_us.p99.to_string(),
                c.max_lso_lag.map_or(dash(), |l| l.to_string()),
            ]),
            None => row.extend([dash(), dash(), dash()]),
        }
        t.add_row(row);
    }
    for c in 1..14 {
        if let Some(col) = t.column_mut(c) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    Some(format!("transactions (latency in µs):\n{t}"))
}
