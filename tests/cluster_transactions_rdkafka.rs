//! Transactions on a 3-node in-process cluster with librdkafka's transactional producer:
//! a topic whose 3 partitions (RF 3) are led by three different nodes, so the coordinator
//! must send its markers to the other leaders; commits and aborts as a read_committed
//! consumer sees them; the coordinator's node lost mid-stream (the producer, or a new
//! instance with the same transactional.id, carries on at the new coordinator, which
//! rebuilt the state from `__transaction_state` and aborts the open transaction it found);
//! offsets sent to a transaction, visible only once it commits; and `kbench e2e` with
//! transactions against `--embedded cluster:3`.
//! (In tests/, not the broker crate: the broker crate builds without librdkafka.)

mod broker_support;
mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_support::*;
use kbench_broker::cluster::coordinator::{partition_for, TRANSACTION_TOPIC};
use kbench_broker::cluster::local::{start_nodes, LocalController};
use kbench_broker::cluster::{Command, Reply};
use kbench_broker::{BrokerConfig, EmbeddedBroker};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const T: Duration = Duration::from_secs(30);
const TOPIC: &str = "txn-c";

fn bootstrap(nodes: &[EmbeddedBroker]) -> String {
    nodes
        .iter()
        .map(|n| n.bootstrap_servers())
        .collect::<Vec<_>>()
        .join(",")
}

/// Three nodes and `TOPIC`, 3 partitions of RF 3 (min ISR 2) led by three different nodes.
fn cluster() -> (Arc<LocalController>, Vec<EmbeddedBroker>) {
    let (c, nodes) = start_nodes(3, BrokerConfig::embedded()).expect("cluster");
    let reply = c.apply(&Command::CreateTopic {
        name: TOPIC.into(),
        partitions: 3,
        replication_factor: 3,
        min_insync_replicas: 2,
        configs: BTreeMap::new(),
    });
    assert_eq!(reply, Reply::Ok);
    let md = c.watch().borrow().clone();
    let leaders: BTreeSet<i32> = (0..3)
        .map(|p| md.partition(TOPIC, p).unwrap().leader)
        .collect();
    assert_eq!(leaders.len(), 3, "each partition led by another node");
    (c, nodes)
}

fn txn_producer(boot: &str, tid: &str) -> BaseProducer<Counting> {
    let p: BaseProducer<Counting> = ClientConfig::new()
        .set("bootstrap.servers", boot)
        .set("transactional.id", tid)
        .set("linger.ms", "5")
        .set("transaction.timeout.ms", "60000")
        .create_with_context(Counting::default())
        .expect("transactional producer");
    p.init_transactions(T).expect("init_transactions");
    p
}

/// Sends `values` round-robin over the 3 partitions, then flushes.
fn send(p: &BaseProducer<Counting>, values: &[String]) {
    for (i, v) in values.iter().enumerate() {
        let mut rec = BaseRecord::<(), _>::to(TOPIC)
            .payload(v.as_bytes())
            .partition(i as i32 % 3);
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

fn consumer(boot: &str, group: &str, isolation: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", boot)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("consumer")
}

/// Reads the 3 partitions from the start until `want` are all seen, then `settle` longer
/// (so that a record that should not be there has its chance to show up).
fn read(boot: &str, isolation: &str, want: &[String], settle: Duration) -> HashMap<String, usize> {
    let c = consumer(boot, "reader", isolation);
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).expect("assign");
    let mut seen: HashMap<String, usize> = HashMap::new();
    let deadline = Instant::now() + T;
    let mut until = None;
    while Instant::now() < until.unwrap_or(deadline) {
        if until.is_none() && want.iter().all(|v| seen.contains_key(v)) {
            until = Some(Instant::now() + settle);
        }
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.expect("no consumer error");
            let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            *seen.entry(v).or_default() += 1;
        }
    }
    seen
}

/// The coordinator of `tid`: the leader of its `__transaction_state` partition.
fn coordinator(nodes: &[EmbeddedBroker], tid: &str) -> i32 {
    let meta = nodes[0].state().cluster.as_ref().unwrap().current();
    let t = &meta.topics[TRANSACTION_TOPIC];
    t.partitions[partition_for(tid, t.partitions.len()) as usize].leader
}

/// Shuts node `id` down and fences it, as the quorum would once its session expired.
fn lose(c: &LocalController, nodes: &mut Vec<EmbeddedBroker>, id: i32) {
    let epoch = nodes[0].state().cluster.as_ref().unwrap().current().brokers[&id].epoch;
    let at = nodes
        .iter()
        .position(|n| n.state().cluster.as_ref().unwrap().node_id == id)
        .unwrap();
    nodes.remove(at).shutdown();
    c.apply(&Command::FenceBroker { id, epoch });
}

#[test]
fn commits_and_aborts_across_partitions_led_by_three_nodes_as_read_committed_sees_them() {
    let (_c, nodes) = cluster();
    let boot = bootstrap(&nodes);
    let p = txn_producer(&boot, "txn-three");
    let first = values("first", 30);
    let aborted = values("aborted", 30);
    let second = values("second", 30);
    p.begin_transaction().unwrap();
    send(&p, &first);
    p.commit_transaction(T).expect("commit");
    p.begin_transaction().unwrap();
    send(&p, &aborted);
    p.abort_transaction(T).expect("abort");
    p.begin_transaction().unwrap();
    send(&p, &second);
    p.commit_transaction(T).expect("commit");

    let committed: Vec<String> = first.iter().chain(&second).cloned().collect();
    let seen = read(&boot, "read_committed", &committed, Duration::from_secs(1));
    assert_exactly_once(&committed, &seen);
    // The aborted records are in the logs all the same.
    let all: Vec<String> = committed.iter().chain(&aborted).cloned().collect();
    let seen = read(&boot, "read_uncommitted", &all, Duration::ZERO);
    assert_exactly_once(&all, &seen);
}

#[test]
fn the_same_producer_carries_on_at_the_new_coordinator_after_the_old_ones_node_is_lost() {
    let (c, mut nodes) = cluster();
    let boot = bootstrap(&nodes);
    let tid = "txn-carry-on";
    let p = txn_producer(&boot, tid);
    let before = values("before", 30);
    p.begin_transaction().unwrap();
    send(&p, &before);
    p.commit_transaction(T).expect("commit");

    let old = coordinator(&nodes, tid);
    lose(&c, &mut nodes, old);
    assert_ne!(coordinator(&nodes, tid), old, "a new coordinator");

    let aborted = values("aborted", 30);
    let after = values("after", 30);
    p.begin_transaction().unwrap();
    send(&p, &aborted);
    p.abort_transaction(T)
        .expect("abort at the new coordinator");
    p.begin_transaction().unwrap();
    send(&p, &after);
    p.commit_transaction(T)
        .expect("commit at the new coordinator");

    let boot = bootstrap(&nodes);
    let committed: Vec<String> = before.iter().chain(&after).cloned().collect();
    let seen = read(&boot, "read_committed", &committed, Duration::from_secs(1));
    assert_exactly_once(&committed, &seen);
}

#[test]
fn a_new_instance_after_the_coordinators_loss_aborts_the_open_transaction_and_commits() {
    let (c, mut nodes) = cluster();
    let boot = bootstrap(&nodes);
    let tid = "txn-failover";
    let p = txn_producer(&boot, tid);
    let committed1 = values("committed1", 30);
    let open = values("open", 30);
    p.begin_transaction().unwrap();
    send(&p, &committed1);
    p.commit_transaction(T).expect("commit");
    // Left open (its records in the partitions) when the coordinator's node goes.
    p.begin_transaction().unwrap();
    send(&p, &open);

    let old = coordinator(&nodes, tid);
    lose(&c, &mut nodes, old);
    let boot = bootstrap(&nodes);

    // The new coordinator knows the id and its open transaction from the replicated log:
    // the new instance fences the old one, whose transaction is aborted.
    let p2 = txn_producer(&boot, tid);
    let committed2 = values("committed2", 30);
    p2.begin_transaction().unwrap();
    send(&p2, &committed2);
    p2.commit_transaction(T)
        .expect("commit by the new instance");
    assert!(
        p.commit_transaction(T).is_err(),
        "the old instance is fenced"
    );

    let want: Vec<String> = committed1.iter().chain(&committed2).cloned().collect();
    let seen = read(&boot, "read_committed", &want, Duration::from_secs(1));
    // Nothing of the open transaction: had the new coordinator not known it, its records
    // would hold the stable offset back and hide `committed2` as well.
    assert_exactly_once(&want, &seen);
}

fn committed_offset(boot: &str, group: &str) -> Offset {
    let c = consumer(boot, group, "read_uncommitted");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(TOPIC, 0);
    let got = c.committed_offsets(tpl, T).expect("committed offsets");
    got.find_partition(TOPIC, 0).expect("partition").offset()
}

#[test]
fn offsets_sent_to_a_transaction_are_committed_only_when_it_commits() {
    let (_c, nodes) = cluster();
    let boot = bootstrap(&nodes);
    let group = "txn-eos";
    let member = consumer(&boot, group, "read_committed");
    member.subscribe(&[TOPIC]).unwrap();
    let deadline = Instant::now() + T;
    while member.assignment().map_or(0, |a| a.count()) == 0 {
        assert!(Instant::now() < deadline, "the member got no assignment");
        member.poll(Duration::from_millis(100));
    }
    let cgm = member.group_metadata().expect("group metadata");
    let p = txn_producer(&boot, "txn-offsets");
    let at = |o| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(TOPIC, 0, Offset::Offset(o))
            .unwrap();
        tpl
    };

    p.begin_transaction().unwrap();
    send(&p, &values("out-aborted", 6));
    p.send_offsets_to_transaction(&at(10), &cgm, T).unwrap();
    p.abort_transaction(T).unwrap();
    assert_eq!(
        committed_offset(&boot, group),
        Offset::Invalid,
        "abort drops them"
    );

    p.begin_transaction().unwrap();
    send(&p, &values("out-committed", 6));
    p.send_offsets_to_transaction(&at(20), &cgm, T).unwrap();
    assert_eq!(
        committed_offset(&boot, group),
        Offset::Invalid,
        "not before the commit"
    );
    p.commit_transaction(T).unwrap();
    assert_eq!(committed_offset(&boot, group), Offset::Offset(20));
}

#[test]
fn kbench_e2e_with_transactions_on_an_embedded_cluster_reads_exactly_the_committed_records() {
    let dir = tempfile::tempdir().unwrap();
    common::kbench(
        dir.path(),
        &[
            "e2e",
            "--embedded",
            "cluster:3",
            "--partitions",
            "3",
            "--acks",
            "all",
            "--num-records",
            "2000",
            "--record-size",
            "100",
            "--throughput",
            "2000",
            "--transaction-records",
            "50",
            "--transaction-abort-rate",
            "0.3",
            "--seed",
            "7",
        ],
    )
    .timeout(Duration::from_secs(120))
    .assert()
    .success();
    let s = common::summary(dir.path());
    let at = |v: &serde_json::Value, path: &str| {
        v.pointer(path)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or_else(|| panic!("no number at {path} in {v:#}"))
    };
    let t = &s["phases"][0]["produce"]["transactions"];
    let (committed, aborted) = (at(t, "/committed"), at(t, "/aborted"));
    assert_eq!(committed + aborted, 40, "{t:#}");
    assert!(committed > 0 && aborted > 0, "{t:#}");
    let v = &s["verification"];
    assert_eq!(v["aborted_seen"], 0, "{v:#}");
    assert_eq!(v["lost"], 0, "{v:#}");
    assert_eq!(v["duplicated"], 0, "{v:#}");
    assert_eq!(at(&s, "/phases/0/consume/records"), committed * 50);
}
