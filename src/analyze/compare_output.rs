//! Formatting a `Comparison`: a terminal table (comfy-table) and a Markdown table that fits a
//! CI job summary (`>> $GITHUB_STEP_SUMMARY`). Both put the workload differences above the
//! table and the untested rows' notes below it. Decides nothing; `compare` has judged already.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, Table};

use super::compare::{Comparison, MetricChange, Verdict};
use super::config_diff::show;

fn value(v: f64, unit: &str) -> String {
    match unit {
        "records/s" => format!("{v:.0}"),
        "ms" => format!("{v:.3}"),
        _ => format!("{v:.2}"),
    }
}

fn change(c: &MetricChange) -> String {
    match c.change_pct {
        Some(pct) => format!("{pct:+.1}%"),
        None => "n/a".to_string(),
    }
}

fn p_value(c: &MetricChange) -> String {
    match c.p_value {
        Some(p) if p < 0.001 => "<0.001".to_string(),
        Some(p) => format!("{p:.3}"),
        // Say why there is no test rather than leaving a blank.
        None => format!("n/a ({}+{} intervals)", c.base_samples, c.new_samples),
    }
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Regression => "REGRESSION",
        Verdict::Improvement => "improvement",
        Verdict::Untested => "UNTESTED",
        Verdict::Unchanged => "ok",
    }
}

const DIFFERENT_WORKLOADS: &str = "the runs asked for different workloads, so a change below may come from that, not from the system";

/// `field: base → new`, one per difference.
fn difference_lines(cmp: &Comparison) -> Vec<String> {
    cmp.config_differences
        .iter()
        .map(|d| format!("{}: {} → {}", d.field, show(&d.base), show(&d.new)))
        .collect()
}

/// `phase / metric: note`, one per untested row.
fn untested_lines(cmp: &Comparison) -> Vec<String> {
    cmp.changes
        .iter()
        .filter_map(|c| Some(format!("{} / {}: {}", c.phase, c.metric, c.note.as_ref()?)))
        .collect()
}

fn footer(cmp: &Comparison) -> String {
    let rule = format!(
        "a regression is worse by more than {}% with p < {}; Welch's t-test on per-interval samples",
        cmp.max_regression_pct, cmp.alpha
    );
    let found = match cmp.regressions {
        0 => "no regression".to_string(),
        n => format!("{n} regression(s)"),
    };
    let untested = |n| format!("{n} untested change(s) for the worse beyond the limit");
    match (cmp.untested, cmp.accept_untested) {
        (0, _) => format!("{found} ({rule})"),
        (n, false) => format!(
            "FAILED: {found} and {}: too few intervals to test them (--accept-untested lets them pass)\n({rule})",
            untested(n)
        ),
        (n, true) => format!(
            "{found} and {}, accepted with --accept-untested\n({rule})",
            untested(n)
        ),
    }
}

/// A terminal table, one row per phase and metric.
pub fn text(cmp: &Comparison) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "phase", "metric", "unit", "base", "new", "change", "p-value", "verdict",
    ]);
    for c in &cmp.changes {
        t.add_row(vec![
            c.phase.clone(),
            c.metric.clone(),
            c.unit.clone(),
            value(c.base, &c.unit),
            value(c.new, &c.unit),
            change(c),
            p_value(c),
            verdict_word(c.verdict).to_string(),
        ]);
    }
    for col in 3..=6 {
        if let Some(column) = t.column_mut(col) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = format!("kbench compare: BASE {} → NEW {}\n", cmp.base, cmp.new);
    let diffs = difference_lines(cmp);
    if !diffs.is_empty() {
        out.push_str(&format!("warning: {DIFFERENT_WORKLOADS}:\n"));
        diffs.iter().for_each(|d| out.push_str(&format!("  {d}\n")));
    }
    out.push_str(&format!("{t}\n"));
    let untested = untested_lines(cmp);
    if !untested.is_empty() {
        out.push_str("UNTESTED:\n");
        untested
            .iter()
            .for_each(|u| out.push_str(&format!("  {u}\n")));
    }
    out.push_str(&format!("{}\n", footer(cmp)));
    out
}

/// A GitHub-flavoured Markdown table with ✅/❌, for a CI job summary.
pub fn markdown(cmp: &Comparison) -> String {
    let mut out = String::new();
    let head = match (cmp.passed, cmp.untested) {
        (false, _) => "❌",
        (true, 0) => "✅",
        (true, _) => "⚠️",
    };
    out.push_str(&format!("### {head} kbench compare\n\n"));
    out.push_str(&format!("BASE `{}` → NEW `{}`\n\n", cmp.base, cmp.new));
    let diffs = difference_lines(cmp);
    if !diffs.is_empty() {
        out.push_str(&format!("> ⚠️ **Warning:** {DIFFERENT_WORKLOADS}:\n>\n"));
        diffs
            .iter()
            .for_each(|d| out.push_str(&format!("> - `{d}`\n")));
        out.push('\n');
    }
    out.push_str("| | phase | metric | base | new | change | p-value |\n");
    out.push_str("|---|---|---|---:|---:|---:|---:|\n");
    for c in &cmp.changes {
        let mark = match c.verdict {
            Verdict::Regression => "❌",
            Verdict::Improvement => "✅ 🚀",
            Verdict::Untested if cmp.accept_untested => "⚠️ untested",
            Verdict::Untested => "❌ untested",
            Verdict::Unchanged => "✅",
        };
        out.push_str(&format!(
            "| {mark} | {} | {} ({}) | {} | {} | {} | {} |\n",
            md_escape(&c.phase),
            c.metric,
            c.unit,
            value(c.base, &c.unit),
            value(c.new, &c.unit),
            change(c),
            p_value(c)
        ));
    }
    let untested = untested_lines(cmp);
    if !untested.is_empty() {
        out.push_str("\n**Untested:**\n\n");
        untested
            .iter()
            .for_each(|u| out.push_str(&format!("- {u}\n")));
    }
    out.push_str(&format!("\n{}\n", footer(cmp)));
    for u in &cmp.unmatched_phases {
        out.push_str(&format!("\n> phase {} is not compared\n", md_escape(u)));
    }
    out
}

/// Phase names come from profiles; a `|` would split the table cell.
fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}
