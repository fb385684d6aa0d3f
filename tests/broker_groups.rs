//! Consumer-group failover: three kafka-python members, one SIGKILLed; the others take over
//! its partitions after the session timeout; committed offsets survive a broker restart.

mod broker_support;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use broker_support::*;
use kbench_broker::{BrokerConfig, EmbeddedBroker};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

struct Member {
    child: Child,
    lines: mpsc::Receiver<String>,
    assigned: BTreeSet<i32>,
    seen: Vec<String>,
}

impl Member {
    fn spawn(boot: &str, topic: &str, group: &str) -> Member {
        let mut child = Command::new("python3")
            .arg(peers_dir().join("kp_consume.py"))
            .args([boot, topic, group, "90"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Member {
            child,
            lines: rx,
            assigned: BTreeSet::new(),
            seen: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            if let Some(rest) = line.strip_prefix("assigned") {
                self.assigned = rest
                    .trim()
                    .split(',')
                    .filter_map(|p| p.parse().ok())
                    .collect();
            } else if let Some((_, v)) = line.strip_prefix("msg ").and_then(|r| r.split_once(' ')) {
                self.seen.push(v.to_string());
            }
        }
    }
}

fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn committed(boot: &str, group: &str, topic: &str, partitions: i32) -> (Vec<i64>, Vec<i64>) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", boot)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    let committed = (0..partitions)
        .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => -1,
        })
        .collect();
    let ends = (0..partitions)
        .map(|p| {
            c.fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .collect();
    (committed, ends)
}

#[test]
fn survivors_take_over_a_killed_members_partitions_and_offsets_survive_a_restart() {
    if !require_peer(have_kafka_python(), "python3 with kafka-python") {
        return;
    }
    let data = tempfile::tempdir().expect("temp dir");
    let mut cfg = BrokerConfig::embedded();
    cfg.data_dir = Some(data.path().to_path_buf());
    cfg.num_partitions = 3;
    cfg.group_initial_rebalance_delay_ms = 3000;
    let broker = EmbeddedBroker::start(cfg.clone()).expect("broker");
    let boot = broker.bootstrap_servers();
    let before = values("before", 300);
    assert_eq!(produce(&boot, "failover", &before, &[]), (300, 0));

    let mut members: Vec<Member> = (0..3)
        .map(|_| Member::spawn(&boot, "failover", "fg"))
        .collect();
    wait_until(
        Duration::from_secs(40),
        "three members with one partition each",
        || {
            members.iter_mut().for_each(Member::drain);
            members.iter().all(|m| m.assigned.len() == 1)
                && members
                    .iter()
                    .flat_map(|m| m.assigned.iter())
                    .collect::<BTreeSet<_>>()
                    .len()
                    == 3
        },
    );
    let mut victim = members.remove(0);
    let orphan: BTreeSet<i32> = victim.assigned.clone();
    kill9(&mut victim.child);

    let after = values("after", 600);
    assert_eq!(produce(&boot, "failover", &after, &[]), (600, 0));
    let started = Instant::now();
    wait_until(
        Duration::from_secs(40),
        "survivors to cover every partition and consume the new records",
        || {
            members.iter_mut().for_each(Member::drain);
            let covered: BTreeSet<i32> = members
                .iter()
                .flat_map(|m| m.assigned.iter().copied())
                .collect();
            let seen: HashMap<&str, ()> = members
                .iter()
                .flat_map(|m| m.seen.iter().map(|s| (s.as_str(), ())))
                .collect();
            covered.len() == 3 && after.iter().all(|v| seen.contains_key(v.as_str()))
        },
    );
    let took = started.elapsed();
    assert!(
        members.iter().any(|m| m.assigned.is_superset(&orphan)),
        "the orphaned partition {orphan:?} moved to a survivor"
    );
    // The takeover waits for the 6 s session timeout of the killed member.
    assert!(
        took >= Duration::from_secs(3),
        "takeover after {took:?} is faster than a session timeout"
    );

    // Let the survivors commit what they printed, then stop them.
    std::thread::sleep(Duration::from_secs(2));
    for m in &mut members {
        kill9(&mut m.child);
    }
    let (committed_before, ends) = committed(&boot, "fg", "failover", 3);
    assert_eq!(ends.iter().sum::<i64>(), 900);
    assert_eq!(committed_before, ends, "everything consumed was committed");

    broker.shutdown();
    let broker = EmbeddedBroker::start(cfg).expect("broker restarts");
    let (committed_after, ends_after) = committed(&broker.bootstrap_servers(), "fg", "failover", 3);
    assert_eq!(
        committed_after, committed_before,
        "committed offsets survive a restart"
    );
    assert_eq!(ends_after, ends, "log end offsets survive a restart");
}
