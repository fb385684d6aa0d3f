//! Transactions against the bundled broker with librdkafka's transactional producer (the
//! rdkafka crate): commits and aborts across topics and partitions as read_committed and
//! read_uncommitted consumers see them, the last stable offset, fencing of a second instance,
//! the broker's abort of a transaction past its timeout, offsets sent to a transaction, and
//! the coordinator's state across a SIGKILL of `kbench broker`.

mod broker_support;
mod kafka_common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use broker_support::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const T: Duration = Duration::from_secs(20);

fn txn_producer(bootstrap: &str, tid: &str, settings: &[(&str, &str)]) -> BaseProducer<Counting> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("transactional.id", tid)
        .set("linger.ms", "5");
    for (k, v) in settings {
        cfg.set(*k, *v);
    }
    let p: BaseProducer<Counting> = cfg
        .create_with_context(Counting::default())
        .expect("transactional producer");
    p.init_transactions(T).expect("init_transactions");
    p
}

/// Sends `values` round-robin over `partitions` partitions of `topic`, then flushes.
fn send(p: &BaseProducer<Counting>, topic: &str, partitions: i32, values: &[String]) {
    for (i, v) in values.iter().enumerate() {
        let part = i as i32 % partitions;
        let mut rec = BaseRecord::<(), _>::to(topic)
            .payload(v.as_bytes())
            .partition(part);
        let deadline = Instant::now() + T;
        while let Err((_, r)) = p.send(rec) {
            assert!(Instant::now() < deadline, "producer queue stayed full");
            rec = r;
            p.poll(Duration::from_millis(10));
        }
        p.poll(Duration::ZERO);
    }
    p.flush(T).expect("flush");
}

use kafka_common::create_topic;

fn consumer(bootstrap: &str, isolation: &str, settings: &[(&str, &str)]) -> BaseConsumer {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("group.id", "txn-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .set("fetch.wait.max.ms", "100");
    for (k, v) in settings {
        cfg.set(*k, *v);
    }
    cfg.create().expect("consumer")
}

/// Reads every partition of `topics` from the start with `isolation` until `done` holds for
/// the values seen (by count) or `timeout` passes.
fn read(
    bootstrap: &str,
    topics: &[(&str, i32)],
    isolation: &str,
    settings: &[(&str, &str)],
    timeout: Duration,
    done: impl Fn(&HashMap<String, usize>) -> bool,
) -> HashMap<String, usize> {
    let c = consumer(bootstrap, isolation, settings);
    let mut tpl = TopicPartitionList::new();
    for (t, n) in topics {
        for p in 0..*n {
            tpl.add_partition_offset(t, p, Offset::Beginning).unwrap();
        }
    }
    c.assign(&tpl).expect("assign");
    let mut seen = HashMap::new();
    let deadline = Instant::now() + timeout;
    while !done(&seen) && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.expect("no consumer error");
            let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            *seen.entry(v).or_default() += 1;
        }
    }
    seen
}

fn has_all(values: &[String]) -> impl Fn(&HashMap<String, usize>) -> bool + '_ {
    move |seen| values.iter().all(|v| seen.contains_key(v))
}

/// The high offset ListOffsets reports for `isolation`: the last stable offset for
/// read_committed, the high watermark for read_uncommitted (librdkafka asks with its own
/// isolation level).
fn high(bootstrap: &str, topic: &str, partition: i32, isolation: &str) -> i64 {
    consumer(bootstrap, isolation, &[])
        .fetch_watermarks(topic, partition, T)
        .expect("watermarks")
        .1
}

/// ListOffsets by timestamp 0 for partition 0 of `topic` with `isolation`.
fn by_time(bootstrap: &str, topic: &str, isolation: &str) -> Offset {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(0))
        .unwrap();
    let got = consumer(bootstrap, isolation, &[])
        .offsets_for_times(tpl, T)
        .expect("offsets for times");
    got.find_partition(topic, 0).expect("partition").offset()
}

fn fatal_code(r: rdkafka::error::KafkaResult<()>) -> RDKafkaErrorCode {
    match r {
        Err(KafkaError::Transaction(e)) => {
            assert!(e.is_fatal(), "a fenced producer's error is fatal: {e}");
            e.code()
        }
        other => panic!("expected a fatal transaction error, got {other:?}"),
    }
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in metrics"))
}

#[test]
fn read_committed_sees_committed_records_once_and_no_aborted_one_read_uncommitted_sees_both() {
    let b = start();
    let boot = b.bootstrap_servers();
    create_topic(&boot, "txn-a", 3);
    create_topic(&boot, "txn-b", 2);
    let p = txn_producer(&boot, "txn-both", &[]);
    // Empty transactions commit and abort without a round trip to the partitions.
    p.begin_transaction().unwrap();
    p.commit_transaction(T).expect("empty commit");
    p.begin_transaction().unwrap();
    p.abort_transaction(T).expect("empty abort");

    let (first_a, first_b) = (values("c1-a", 300), values("c1-b", 200));
    p.begin_transaction().unwrap();
    send(&p, "txn-a", 3, &first_a);
    send(&p, "txn-b", 2, &first_b);
    // While the transaction is open, the stable offset stays below the high watermark.
    let (lso, hw) = (
        high(&boot, "txn-a", 0, "read_committed"),
        high(&boot, "txn-a", 0, "read_uncommitted"),
    );
    assert_eq!(
        (lso, hw),
        (0, 100),
        "LSO and HW of txn-a-0 with a transaction open"
    );
    // A time lookup finds nothing at or past the stable offset for read_committed.
    assert_eq!(
        by_time(&boot, "txn-a", "read_uncommitted"),
        Offset::Offset(0)
    );
    assert_eq!(by_time(&boot, "txn-a", "read_committed"), Offset::End);
    p.commit_transaction(T).expect("commit");
    // After the commit both include the records and the COMMIT marker.
    assert_eq!(high(&boot, "txn-a", 0, "read_committed"), 101);
    assert_eq!(high(&boot, "txn-a", 0, "read_uncommitted"), 101);

    // An aborted transaction big enough to span many fetches of the consumers below.
    let (aborted_a, aborted_b) = (values("ab-a", 3000), values("ab-b", 1000));
    p.begin_transaction().unwrap();
    send(&p, "txn-a", 3, &aborted_a);
    send(&p, "txn-b", 2, &aborted_b);
    p.abort_transaction(T).expect("abort");

    let (last_a, last_b) = (values("c2-a", 90), values("c2-b", 60));
    p.begin_transaction().unwrap();
    send(&p, "txn-a", 3, &last_a);
    send(&p, "txn-b", 2, &last_b);
    p.commit_transaction(T).expect("second commit");

    let committed: Vec<String> = [first_a, first_b, last_a, last_b].concat();
    let aborted: Vec<String> = [aborted_a, aborted_b].concat();
    let topics = [("txn-a", 3), ("txn-b", 2)];
    let small_fetches = [
        ("fetch.max.bytes", "20000"),
        ("message.max.bytes", "20000"),
        ("max.partition.fetch.bytes", "8000"),
    ];
    // The committed records after the aborted ones come last: once they are all in, any
    // aborted record would have been delivered already.
    let seen = read(
        &boot,
        &topics,
        "read_committed",
        &small_fetches,
        T,
        has_all(&committed),
    );
    assert_exactly_once(&committed, &seen);
    let all: Vec<String> = [committed, aborted].concat();
    let seen = read(
        &boot,
        &topics,
        "read_uncommitted",
        &small_fetches,
        T,
        has_all(&all),
    );
    assert_exactly_once(&all, &seen);

    let m = b.metrics_text();
    assert_eq!(metric(&m, "kbroker_transactions_begun_total"), 3.0, "{m}");
    assert_eq!(metric(&m, "kbroker_transactions_committed_total"), 2.0);
    assert_eq!(metric(&m, "kbroker_transactions_aborted_total"), 1.0);
    assert_eq!(metric(&m, "kbroker_transactions_ongoing"), 0.0);
}

#[test]
fn a_second_producer_with_the_same_transactional_id_fences_the_first() {
    let b = start();
    let boot = b.bootstrap_servers();
    create_topic(&boot, "txn-fence", 2);
    let first = txn_producer(&boot, "txn-fence", &[]);
    first.begin_transaction().unwrap();
    let zombie = values("zombie", 50);
    send(&first, "txn-fence", 2, &zombie);

    // The second instance fences the first and aborts its open transaction.
    let second = txn_producer(&boot, "txn-fence", &[]);
    second.begin_transaction().unwrap();
    let live = values("live", 50);
    send(&second, "txn-fence", 2, &live);
    second
        .commit_transaction(T)
        .expect("the new instance commits");

    let code = fatal_code(first.commit_transaction(T));
    assert!(
        matches!(
            code,
            RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::Fenced
        ),
        "the first instance is fenced: {code:?}"
    );
    let seen = read(
        &boot,
        &[("txn-fence", 2)],
        "read_committed",
        &[],
        T,
        has_all(&live),
    );
    assert_exactly_once(&live, &seen);
    let seen = read(
        &boot,
        &[("txn-fence", 2)],
        "read_uncommitted",
        &[],
        T,
        |s| s.len() >= 100,
    );
    assert_exactly_once(&[zombie, live].concat(), &seen);
}

#[test]
fn init_fails_when_the_transaction_timeout_exceeds_the_brokers_maximum() {
    let b = start_with(|c| c.transaction_max_timeout_ms = 5000);
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap_servers())
        .set("transactional.id", "txn-too-long")
        .set("transaction.timeout.ms", "6000")
        .create()
        .expect("producer");
    match p.init_transactions(T) {
        Err(KafkaError::Transaction(e)) => {
            assert_eq!(e.code(), RDKafkaErrorCode::InvalidTransactionTimeout, "{e}")
        }
        other => panic!("init_transactions over the maximum: {other:?}"),
    }
}

#[test]
fn a_transaction_past_its_timeout_is_aborted_by_the_broker_and_readers_move_past_it() {
    let b = start_with(|c| c.transaction_cleanup_interval_ms = 100);
    let boot = b.bootstrap_servers();
    create_topic(&boot, "txn-stall", 1);
    // librdkafka's smallest transaction.timeout.ms.
    let stalled = txn_producer(&boot, "txn-stall", &[("transaction.timeout.ms", "1000")]);
    stalled.begin_transaction().unwrap();
    let stuck = values("stuck", 20);
    send(&stalled, "txn-stall", 1, &stuck);
    // Plain records after the open transaction: read_committed waits for its end.
    let later = values("later", 20);
    let (ok, _) = produce(&boot, "txn-stall", &later, &[]);
    assert_eq!(ok, later.len());
    assert_eq!(high(&boot, "txn-stall", 0, "read_committed"), 0);

    let started = Instant::now();
    let seen = read(
        &boot,
        &[("txn-stall", 1)],
        "read_committed",
        &[],
        T,
        has_all(&later),
    );
    assert_exactly_once(&later, &seen);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "aborted within about its timeout"
    );
    assert!(
        stalled.commit_transaction(T).is_err(),
        "the stalled producer cannot commit"
    );
    let m = b.metrics_text();
    assert_eq!(
        metric(&m, "kbroker_transactions_timed_out_total"),
        1.0,
        "{m}"
    );
    assert_eq!(metric(&m, "kbroker_transactions_aborted_total"), 1.0);
}

/// The group's committed offset of `topic`-0, asked without require_stable (read_uncommitted).
fn committed(bootstrap: &str, group: &str, topic: &str) -> Offset {
    let c = consumer(bootstrap, "read_uncommitted", &[("group.id", group)]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let got = c.committed_offsets(tpl, T).expect("committed offsets");
    got.find_partition(topic, 0).expect("partition").offset()
}

#[test]
fn offsets_sent_to_a_transaction_are_committed_only_when_it_commits() {
    let b = start();
    let boot = b.bootstrap_servers();
    create_topic(&boot, "txn-in", 1);
    create_topic(&boot, "txn-out", 1);
    produce(&boot, "txn-in", &values("in", 30), &[]);
    // A group member whose metadata goes with the offsets (KIP-447).
    let member = consumer(&boot, "read_committed", &[("group.id", "txn-eos")]);
    member.subscribe(&["txn-in"]).unwrap();
    let deadline = Instant::now() + T;
    while member.assignment().map_or(0, |a| a.count()) == 0 {
        assert!(Instant::now() < deadline, "the member got no assignment");
        member.poll(Duration::from_millis(100));
    }
    let cgm = member.group_metadata().expect("group metadata");
    let p = txn_producer(&boot, "txn-eos", &[]);
    let at = |o| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("txn-in", 0, Offset::Offset(o))
            .unwrap();
        tpl
    };

    p.begin_transaction().unwrap();
    send(&p, "txn-out", 1, &values("out-aborted", 5));
    p.send_offsets_to_transaction(&at(10), &cgm, T).unwrap();
    p.abort_transaction(T).unwrap();
    assert_eq!(
        committed(&boot, "txn-eos", "txn-in"),
        Offset::Invalid,
        "abort drops them"
    );

    p.begin_transaction().unwrap();
    send(&p, "txn-out", 1, &values("out-committed", 5));
    p.send_offsets_to_transaction(&at(20), &cgm, T).unwrap();
    assert_eq!(
        committed(&boot, "txn-eos", "txn-in"),
        Offset::Invalid,
        "not before the commit"
    );
    p.commit_transaction(T).unwrap();
    assert_eq!(committed(&boot, "txn-eos", "txn-in"), Offset::Offset(20));
}

#[test]
fn transaction_state_survives_a_sigkill_of_the_broker_process() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let boot = format!("127.0.0.1:{port}");
    let mut broker = spawn_broker_process(port, dir.path(), &["--num-partitions", "2"]);
    let (kept, dropped, open) = (
        values("kept", 100),
        values("dropped", 100),
        values("open", 40),
    );
    {
        let p = txn_producer(&boot, "txn-restart", &[]);
        p.begin_transaction().unwrap();
        send(&p, "txn-restart", 2, &kept);
        p.commit_transaction(T).unwrap();
        p.begin_transaction().unwrap();
        send(&p, "txn-restart", 2, &dropped);
        p.abort_transaction(T).unwrap();
        // Left open across the crash.
        p.begin_transaction().unwrap();
        send(&p, "txn-restart", 2, &open);
    }
    kill9(&mut broker);
    let mut broker = spawn_broker_process(port, dir.path(), &["--num-partitions", "2"]);

    // Rebuilt from the log: the open transaction still holds the stable offset back.
    let lso = high(&boot, "txn-restart", 0, "read_committed");
    let hw = high(&boot, "txn-restart", 0, "read_uncommitted");
    assert_eq!(
        (lso, hw),
        (102, 122),
        "LSO and HW of txn-restart-0 after the restart"
    );
    // From the journal: a new instance finds that transaction, fences it and aborts it.
    let p = txn_producer(&boot, "txn-restart", &[]);
    p.begin_transaction().unwrap();
    let after = values("after", 20);
    send(&p, "txn-restart", 2, &after);
    p.commit_transaction(T).unwrap();
    let expected = [kept, after].concat();
    let seen = read(
        &boot,
        &[("txn-restart", 2)],
        "read_committed",
        &[],
        T,
        has_all(&expected),
    );
    assert_exactly_once(&expected, &seen);
    drop(p);
    kill9(&mut broker);
}

#[test]
fn transaction_flags_of_kbench_broker_refuse_zero_naming_the_flag() {
    for flag in [
        "--transaction-max-timeout-ms",
        "--transaction-cleanup-interval-ms",
    ] {
        assert_cmd::Command::cargo_bin("kbench")
            .unwrap()
            .args(["broker", "--listen", "127.0.0.1:0", flag, "0"])
            .timeout(T)
            .assert()
            .code(2)
            .stderr(predicates::str::contains(format!(
                "{flag} must be at least 1"
            )));
    }
}
