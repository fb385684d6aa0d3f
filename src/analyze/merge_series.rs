//! Merging workers' `timeseries.csv` files: rows are aligned by phase and interval index
//! (the k-th interval of phase P on every worker) and combined column by column, by a rule
//! chosen from the column's name so columns added later merge without a code change.
//!
//! Rates, counts and byte rates sum; time columns and peaks take the maximum; CPU percentages
//! are averaged. Per-interval percentiles cannot be added from their values: the merged row
//! holds the worst worker's (an upper bound). Exact percentiles are in the merged
//! summary.json, from added histograms.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Same,
    Sum,
    Max,
    Mean,
}

fn rule(column: &str) -> Rule {
    let is_percentile =
        column.ends_with("_us") && (column.contains("_p") || column.ends_with("_max_us"));
    match column {
        "phase" => Rule::Same,
        "elapsed_sec" | "interval_sec" | "rss_bytes" => Rule::Max,
        "cpu_pct" | "process_cpu_pct" => Rule::Mean,
        _ if is_percentile => Rule::Max,
        _ => Rule::Sum,
    }
}

struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

fn read(path: &Path) -> Result<Table> {
    let mut r = csv::Reader::from_path(path)
        .with_context(|| format!("cannot read '{}'", path.display()))?;
    let header: Vec<String> = r
        .headers()
        .with_context(|| format!("'{}': no header", path.display()))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    for rec in r.records() {
        let rec = rec.with_context(|| format!("'{}': bad row", path.display()))?;
        rows.push(rec.iter().map(str::to_string).collect());
    }
    Ok(Table { header, rows })
}

/// Combines one column's cells; empty cells (e.g. lag without consumers) are skipped and an
/// all-empty column stays empty. Sums stay integers when every input is one.
fn combine(rule: Rule, cells: &[&str]) -> String {
    let present: Vec<&str> = cells.iter().copied().filter(|c| !c.is_empty()).collect();
    if present.is_empty() {
        return String::new();
    }
    if rule == Rule::Same {
        return present[0].to_string();
    }
    if let Ok(ints) = present
        .iter()
        .map(|c| c.parse::<u64>())
        .collect::<Result<Vec<_>, _>>()
    {
        match rule {
            Rule::Sum => return ints.iter().sum::<u64>().to_string(),
            Rule::Max => return ints.iter().max().copied().unwrap_or(0).to_string(),
            _ => {}
        }
    }
    let floats: Vec<f64> = present
        .iter()
        .filter_map(|c| c.parse::<f64>().ok())
        .collect();
    if floats.is_empty() {
        return present[0].to_string();
    }
    let v = match rule {
        Rule::Sum => floats.iter().sum::<f64>(),
        Rule::Max => floats.iter().copied().fold(f64::MIN, f64::max),
        _ => floats.iter().sum::<f64>() / floats.len() as f64,
    };
    v.to_string()
}

/// Whether the file has a data row: an empty file, or one with a header alone, has none.
pub fn has_rows(path: &Path) -> Result<bool> {
    let mut r = csv::Reader::from_path(path)
        .with_context(|| format!("cannot read '{}'", path.display()))?;
    let mut row = csv::StringRecord::new();
    r.read_record(&mut row)
        .with_context(|| format!("'{}': bad row", path.display()))
}

/// Merges the files into `out`, with the first file's columns.
pub fn merge_files(inputs: &[&Path], out: &Path) -> Result<()> {
    let tables = inputs.iter().map(|p| read(p)).collect::<Result<Vec<_>>>()?;
    let header = tables[0].header.clone();
    let Some(phase_col) = header.iter().position(|h| h == "phase") else {
        bail!("'{}' has no 'phase' column", inputs[0].display());
    };
    // (phase, interval index) -> one row per worker, keys in order of first appearance.
    let mut order: Vec<(String, usize)> = Vec::new();
    let mut cells: BTreeMap<(String, usize), Vec<Vec<String>>> = BTreeMap::new();
    for (t, path) in tables.iter().zip(inputs) {
        let index: Vec<Option<usize>> = header
            .iter()
            .map(|h| t.header.iter().position(|x| x == h))
            .collect();
        if index[phase_col].is_none() {
            bail!("'{}' has no 'phase' column", path.display());
        }
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for row in &t.rows {
            let phase = index[phase_col]
                .and_then(|i| row.get(i))
                .cloned()
                .unwrap_or_default();
            let k = seen.entry(phase.clone()).or_default();
            let key = (phase, *k);
            *k += 1;
            // Reorder into the first file's columns; a column this file lacks reads empty.
            let aligned = index
                .iter()
                .map(|i| i.and_then(|i| row.get(i)).cloned().unwrap_or_default())
                .collect();
            if !cells.contains_key(&key) {
                order.push(key.clone());
            }
            cells.entry(key).or_default().push(aligned);
        }
    }
    // Keep phases together, in the order they first appear, intervals in index order.
    let phase_rank: Vec<String> = order.iter().fold(Vec::new(), |mut v, (p, _)| {
        if !v.contains(p) {
            v.push(p.clone());
        }
        v
    });
    order.sort_by_key(|(p, i)| (phase_rank.iter().position(|x| x == p), *i));

    let mut w =
        csv::Writer::from_path(out).with_context(|| format!("cannot write '{}'", out.display()))?;
    w.write_record(&header)?;
    for key in &order {
        let rows = &cells[key];
        let merged: Vec<String> = header
            .iter()
            .enumerate()
            .map(|(c, name)| {
                let col: Vec<&str> = rows.iter().map(|r| r[c].as_str()).collect();
                combine(rule(name), &col)
            })
            .collect();
        w.write_record(&merged)?;
    }
    w.flush()
        .with_context(|| format!("cannot write '{}'", out.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_merge_by_their_kind() {
        assert_eq!(rule("produce_records_per_sec"), Rule::Sum);
        assert_eq!(rule("produce_p99_us"), Rule::Max);
        assert_eq!(rule("e2e_max_us"), Rule::Max);
        assert_eq!(rule("lag"), Rule::Sum);
        assert_eq!(rule("cpu_pct"), Rule::Mean);
        assert_eq!(combine(Rule::Sum, &["3", "4"]), "7");
        assert_eq!(combine(Rule::Sum, &["1.5", "2"]), "3.5");
        assert_eq!(combine(Rule::Sum, &["", ""]), "");
        assert_eq!(combine(Rule::Mean, &["50", "100"]), "75");
    }

    #[test]
    fn rows_align_by_phase_and_interval_index() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        let b = dir.path().join("b.csv");
        std::fs::write(
            &a,
            "elapsed_sec,phase,produce_records\n1.0,warmup,5\n2.0,measured,10\n3.0,measured,10\n",
        )
        .unwrap();
        std::fs::write(
            &b,
            "elapsed_sec,phase,produce_records\n1.1,warmup,6\n2.1,measured,20\n",
        )
        .unwrap();
        let out = dir.path().join("m.csv");
        merge_files(&[&a, &b], &out).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            text,
            "elapsed_sec,phase,produce_records\n1.1,warmup,11\n2.1,measured,30\n3,measured,10\n"
        );
    }
}
