//! The coordinator's state machine without a network: epochs, fencing, timeouts, recovery.

use super::*;

fn coordinator(dir: &Path) -> TxnCoordinator {
    TxnCoordinator::open(dir, 900_000).unwrap()
}

fn ready(c: &TxnCoordinator, tid: &str, next_pid: i64) -> (i64, i16) {
    match c.init(tid, 60_000, None, || Ok(next_pid)) {
        Init::Ready(p, e) => (p, e),
        other => panic!("not ready: {other:?}"),
    }
}

fn tp(t: &str, p: i32) -> (String, i32) {
    (t.to_string(), p)
}

#[test]
fn a_new_instance_bumps_the_epoch_and_fences_the_old_one_aborting_its_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let c = coordinator(dir.path());
    let (pid, e0) = ready(&c, "t", 1000);
    assert_eq!(e0, 0);
    assert_eq!(c.add("t", pid, e0, &[tp("a", 0)], None), (NONE, true));
    assert_eq!(c.verify(pid, e0, "a", 0), Ok(()));
    assert_eq!(c.verify(pid, e0, "a", 1), Err(INVALID_TXN_STATE));
    // The second instance: the open transaction is aborted with a bumped epoch first.
    let Init::AbortFirst(p) = c.init("t", 60_000, None, || Ok(2000)) else {
        panic!("expected a fencing abort")
    };
    assert_eq!((p.producer_id, p.epoch, p.commit), (pid, 1, false));
    assert_eq!(p.partitions, vec![tp("a", 0)]);
    assert!(matches!(
        c.init("t", 60_000, None, || Ok(2000)),
        Init::Error(CONCURRENT_TRANSACTIONS)
    ));
    assert!(c.finish(&p).is_empty());
    assert_eq!(ready(&c, "t", 2000), (pid, 2));
    // The old instance is fenced everywhere.
    assert_eq!(c.add("t", pid, 0, &[tp("a", 0)], None).0, PRODUCER_FENCED);
    assert!(matches!(
        c.end("t", pid, 0, true),
        End::Answer(PRODUCER_FENCED)
    ));
    assert_eq!(c.verify(pid, 0, "a", 0), Err(INVALID_PRODUCER_EPOCH));
    assert!(matches!(
        c.init("t", 60_000, Some((pid, 0)), || Ok(3000)),
        Init::Error(PRODUCER_FENCED)
    ));
}

#[test]
fn end_txn_follows_kafkas_state_rules_and_offsets_apply_on_commit_only() {
    let dir = tempfile::tempdir().unwrap();
    let c = coordinator(dir.path());
    let (pid, e) = ready(&c, "t", 1000);
    assert!(matches!(
        c.end("t", pid, e, true),
        End::Answer(INVALID_TXN_STATE)
    ));
    c.add("t", pid, e, &[], Some("g"));
    let off = |o| PendingOffset {
        group: "g".into(),
        topic: "in".into(),
        partition: 0,
        committed: Committed {
            offset: o,
            leader_epoch: -1,
            metadata: None,
        },
    };
    assert_eq!(
        c.add_offsets("t", pid, e, "other", vec![off(1)]),
        INVALID_TXN_STATE
    );
    assert_eq!(c.add_offsets("t", pid, e, "g", vec![off(5)]), NONE);
    assert_eq!(c.add_offsets("t", pid, e, "g", vec![off(7)]), NONE);
    assert!(c.has_pending_offset("g", "in", 0));
    let End::Write(p) = c.end("t", pid, e, true) else {
        panic!("expected markers to write")
    };
    // While the markers are written, everything else waits.
    assert!(matches!(
        c.end("t", pid, e, true),
        End::Answer(CONCURRENT_TRANSACTIONS)
    ));
    assert!(matches!(
        c.end("t", pid, e, false),
        End::Answer(INVALID_TXN_STATE)
    ));
    assert_eq!(
        c.add("t", pid, e, &[tp("a", 0)], None).0,
        CONCURRENT_TRANSACTIONS
    );
    let applied = c.finish(&p);
    assert_eq!(applied, vec![off(7)]);
    assert!(!c.has_pending_offset("g", "in", 0));
    // A retried EndTxn of the same outcome succeeds; the other one does not.
    assert!(matches!(c.end("t", pid, e, true), End::Answer(NONE)));
    assert!(matches!(
        c.end("t", pid, e, false),
        End::Answer(INVALID_TXN_STATE)
    ));
}

#[test]
fn timeouts_above_the_maximum_are_refused_and_expired_transactions_are_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let c = TxnCoordinator::open(dir.path(), 1_000).unwrap();
    assert!(matches!(
        c.init("t", 1_001, None, || Ok(1)),
        Init::Error(INVALID_TRANSACTION_TIMEOUT)
    ));
    let Init::Ready(pid, e) = c.init("t", 1_000, None, || Ok(1)) else {
        panic!()
    };
    c.add("t", pid, e, &[tp("a", 0)], None);
    assert!(c.due(now_ms()).is_empty());
    let due = c.due(now_ms() + 1_000);
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].reason, due[0].epoch, due[0].commit),
        (EndReason::TimedOut, 1, false)
    );
    c.finish(&due[0]);
    // KIP-360: the timed-out producer may come back with its old epoch.
    assert!(matches!(
        c.init("t", 1_000, Some((pid, 0)), || Ok(2)),
        Init::Ready(p, 2) if p == pid
    ));
}

#[test]
fn state_survives_a_restart_and_half_ended_transactions_are_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let (pid, e) = {
        let c = coordinator(dir.path());
        let (pid, e) = ready(&c, "t", 1000);
        c.add("t", pid, e, &[tp("a", 0), tp("b", 1)], Some("g"));
        let End::Write(_) = c.end("t", pid, e, true) else {
            panic!()
        };
        (pid, e) // "crash" with the markers unwritten
    };
    let c = coordinator(dir.path());
    let due = c.due(now_ms());
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].reason, due[0].commit), (EndReason::Resumed, true));
    assert_eq!(due[0].partitions, vec![tp("a", 0), tp("b", 1)]);
    c.finish(&due[0]);
    drop(c);
    let c = coordinator(dir.path());
    assert!(c.due(now_ms() + 10_000_000).is_empty());
    assert_eq!(ready(&c, "t", 5000), (pid, e + 1));
}
