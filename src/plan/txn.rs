//! Transactions in the plan: whether they are on, with which transactional id, when a
//! transaction ends (after a time or a record count) and what share is aborted.
//!
//! Kafka's `kafka-producer-perf-test` rules, copied: transactions are on with
//! `--transactional-id`, `--transaction-duration-ms` or `transactional.id` in the producer
//! properties (and with kbench's own `--transaction-records` or `--transaction-abort-rate`); the id is the flag's, else the property's, else `performance-producer-<uuid>`;
//! the duration defaults to 3000 ms. kbench adds `--transaction-records` (end after N records)
//! and `--transaction-abort-rate`. Checks that need only the flags live here; the producer
//! worker carries the plan out.

use anyhow::{bail, Result};
use serde::Serialize;

use crate::cli::TransactionArgs;
use crate::plan::props::Props;

/// kafka-producer-perf-test's `DEFAULT_TRANSACTION_DURATION_MS`.
pub const DEFAULT_DURATION_MS: u64 = 3000;
/// kafka-producer-perf-test's `DEFAULT_TRANSACTION_ID_PREFIX`.
pub const DEFAULT_ID_PREFIX: &str = "performance-producer-";

/// How the producers use transactions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TxnPlan {
    /// The transactional id; with several producers each adds `-<index>`.
    pub transactional_id: String,
    /// End a transaction once it has been open this long (by intended send times).
    pub duration_ms: Option<u64>,
    /// End a transaction after this many records.
    pub records: Option<u64>,
    /// Share of transactions aborted instead of committed.
    pub abort_rate: f64,
}

impl TxnPlan {
    /// The transactional id of producer `index` of `producers`: the plain id for one producer
    /// (as Kafka's tool uses it), suffixed for several, so none fences another.
    pub fn id_of(&self, index: u32, producers: u32) -> String {
        if producers == 1 {
            self.transactional_id.clone()
        } else {
            format!("{}-{index}", self.transactional_id)
        }
    }
}

/// The transactions the flags and the producer properties ask for (`None`: not transactional).
/// Checks acks (transactions need acks=all) and sets it when nothing did.
pub fn txn_plan(a: &TransactionArgs, props: &mut Props) -> Result<Option<TxnPlan>> {
    let from_props = props.get("transactional.id").map(str::to_string);
    // Kafka's tool turns transactions on with the id or the duration; kbench's own two flags
    // only make sense with transactions, so they turn them on too.
    let on = a.transactional_id.is_some()
        || a.transaction_duration_ms.is_some()
        || a.transaction_records.is_some()
        || a.transaction_abort_rate.is_some()
        || from_props.is_some();
    if !on {
        return Ok(None);
    }
    if a.transaction_duration_ms == Some(0) {
        bail!("--transaction-duration-ms should be greater than zero (got 0)");
    }
    if a.transaction_records == Some(0) {
        bail!("--transaction-records must be at least 1 (got 0)");
    }
    let abort_rate = a.transaction_abort_rate.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&abort_rate) {
        bail!("--transaction-abort-rate must be between 0 and 1 (got {abort_rate})");
    }
    if let Some(acks) = props.get("acks").or(props.get("request.required.acks")) {
        if acks != "all" && acks != "-1" {
            let key = if props.get("acks").is_some() {
                "acks"
            } else {
                "request.required.acks"
            };
            bail!(
                "transactions need acks=all, but {key}={acks} (set by {}): drop it or use --acks all",
                props.source(key)
            );
        }
    }
    props.set_default("acks", "all");
    let transactional_id = match (&a.transactional_id, from_props) {
        (Some(id), _) => id.clone(),
        (None, Some(id)) => id,
        (None, None) => format!("{DEFAULT_ID_PREFIX}{}", uuid_v4()),
    };
    if transactional_id.trim().is_empty() {
        bail!("--transactional-id must not be empty");
    }
    let duration_ms = match (a.transaction_duration_ms, a.transaction_records) {
        (None, None) => Some(DEFAULT_DURATION_MS),
        (d, _) => d,
    };
    Ok(Some(TxnPlan {
        transactional_id,
        duration_ms,
        records: a.transaction_records,
        abort_rate,
    }))
}

/// A random (version 4) UUID in its usual text form, as Java's `Uuid.randomUuid()` prints.
fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> TransactionArgs {
        TransactionArgs::default()
    }

    #[test]
    fn without_any_transaction_setting_there_are_no_transactions() {
        assert_eq!(txn_plan(&args(), &mut Props::default()).unwrap(), None);
    }

    #[test]
    fn the_property_alone_turns_transactions_on_with_the_default_duration() {
        let mut p = Props::default();
        p.set("transactional.id", "from-props", "--producer-props");
        let t = txn_plan(&args(), &mut p).unwrap().unwrap();
        assert_eq!(t.transactional_id, "from-props");
        assert_eq!(t.duration_ms, Some(DEFAULT_DURATION_MS));
        assert_eq!(p.get("acks"), Some("all"));
    }

    #[test]
    fn the_default_id_is_kafkas_prefix_and_a_uuid() {
        let a = TransactionArgs {
            transaction_duration_ms: Some(100),
            ..args()
        };
        let t = txn_plan(&a, &mut Props::default()).unwrap().unwrap();
        let uuid = t.transactional_id.strip_prefix(DEFAULT_ID_PREFIX).unwrap();
        assert_eq!(uuid.len(), 36);
        assert_eq!(t.id_of(2, 3), format!("{}-2", t.transactional_id));
        assert_eq!(t.id_of(0, 1), t.transactional_id);
    }

    #[test]
    fn records_alone_replace_the_default_duration() {
        let a = TransactionArgs {
            transactional_id: Some("t".into()),
            transaction_records: Some(10),
            ..args()
        };
        let t = txn_plan(&a, &mut Props::default()).unwrap().unwrap();
        assert_eq!((t.duration_ms, t.records), (None, Some(10)));
    }

    #[test]
    fn records_and_duration_together_keep_both_and_the_abort_rate_alone_turns_them_on() {
        let a = TransactionArgs {
            transaction_duration_ms: Some(50),
            transaction_records: Some(10),
            ..args()
        };
        let t = txn_plan(&a, &mut Props::default()).unwrap().unwrap();
        assert_eq!((t.duration_ms, t.records), (Some(50), Some(10)));
        let a = TransactionArgs {
            transaction_abort_rate: Some(0.5),
            ..args()
        };
        let t = txn_plan(&a, &mut Props::default()).unwrap().unwrap();
        assert_eq!(
            (t.duration_ms, t.abort_rate),
            (Some(DEFAULT_DURATION_MS), 0.5)
        );
    }

    #[test]
    fn fails_with_acks_other_than_all() {
        let mut p = Props::default();
        p.set("acks", "1", "--acks");
        let a = TransactionArgs {
            transactional_id: Some("t".into()),
            ..args()
        };
        let e = txn_plan(&a, &mut p).unwrap_err().to_string();
        assert!(e.contains("acks=1") && e.contains("--acks"), "{e}");
    }
}
