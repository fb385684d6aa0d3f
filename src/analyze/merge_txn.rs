//! `kbench merge` for transactional runs: each worker's producers ran their own transactions,
//! so a phase's transaction counts and rates add, records per transaction is recomputed from
//! the sums, and the commit, abort and pause latencies come from the added histograms (done
//! by `merge` with the other histograms); the run's transactional ids and `init_transactions`
//! times are listed for every worker.

use serde_json::{json, Map, Value};

/// The phase's merged `produce.transactions` (null when no worker had transactions).
pub fn merge_phase_txn(produce: &[&Value]) -> Value {
    let parts: Vec<&Map<String, Value>> = produce
        .iter()
        .filter_map(|p| p.get("transactions")?.as_object())
        .collect();
    let Some(first) = parts.first() else {
        return Value::Null;
    };
    let mut out = (*first).clone();
    let sum_u = |k: &str| parts.iter().filter_map(|p| p.get(k)?.as_u64()).sum::<u64>();
    let sum_f = |k: &str| parts.iter().filter_map(|p| p.get(k)?.as_f64()).sum::<f64>();
    for k in ["committed", "aborted", "failed", "aborted_records"] {
        out.insert(k.into(), json!(sum_u(k)));
    }
    out.insert(
        "transactions_per_sec".into(),
        json!(sum_f("transactions_per_sec")),
    );
    // Records per transaction, weighted by each worker's transactions.
    let ended = |p: &Map<String, Value>| {
        ["committed", "aborted", "failed"]
            .iter()
            .filter_map(|k| p.get(*k)?.as_u64())
            .sum::<u64>() as f64
    };
    let total: f64 = parts.iter().map(|p| ended(p)).sum();
    let records: f64 = parts
        .iter()
        .map(|p| {
            ended(p)
                * p.get("records_per_transaction")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0)
        })
        .sum();
    let per = if total > 0.0 {
        (records / total * 10.0).round() / 10.0
    } else {
        0.0
    };
    out.insert("records_per_transaction".into(), json!(per));
    Value::Object(out)
}

/// The run's `transactions`: every worker's ids and `init_transactions` times, in input order
/// (null when no input had transactions).
pub fn merge_run_txn(inputs: &[Value]) -> Value {
    let parts: Vec<&Value> = inputs
        .iter()
        .filter_map(|v| v.get("transactions"))
        .filter(|t| t.is_object())
        .collect();
    let Some(first) = parts.first() else {
        return Value::Null;
    };
    let concat = |k: &str| {
        parts
            .iter()
            .filter_map(|p| p.get(k)?.as_array())
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
    };
    json!({
        "transactional_ids": concat("transactional_ids"),
        "init_transactions_ms": concat("init_transactions_ms"),
        "isolation_level": first.get("isolation_level").cloned().unwrap_or(Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_counts_add_and_records_per_transaction_is_weighted() {
        let a = json!({"transactions": {"committed": 8, "aborted": 2, "failed": 0,
            "aborted_records": 20, "transactions_per_sec": 5.0, "records_per_transaction": 10.0}});
        let b = json!({"transactions": {"committed": 30, "aborted": 0, "failed": 0,
            "aborted_records": 0, "transactions_per_sec": 15.0, "records_per_transaction": 20.0}});
        let m = merge_phase_txn(&[&a, &b]);
        assert_eq!(m["committed"], 38);
        assert_eq!(m["transactions_per_sec"], 20.0);
        // (10 * 10 + 30 * 20) / 40 = 17.5
        assert_eq!(m["records_per_transaction"], 17.5);
        assert!(merge_phase_txn(&[&json!({"transactions": null})]).is_null());
    }
}
