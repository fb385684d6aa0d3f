//! A 3-node Apache Kafka cluster (`scripts/kafka.sh --nodes 3 start --proxied`) driven through
//! kbench's `fault::nodes::NodeSet`: a SIGKILL of a partition leader under an idempotent
//! acks=all producer (RF 3, min ISR 2) loses no acknowledged record, and the killed node
//! restarts; link faults reach the node's proxies, and the client side and the peer
//! (replication) side are different links.
//!
//! One cluster serves the binary, started on first use on free loopback ports and a private
//! state dir; a watchdog stops it (every node and proxy, by pid) when the binary exits. The
//! tests take turns (they fault the same cluster). Without Java or Maven they skip loudly,
//! except under `CI`, where they fail.

mod kafka_common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kafka_common::*;
use kbench::fault::nodes::{LinkFault, LinkSide, NodeSet};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

const NODES: usize = 3;

struct Cluster {
    bootstrap: String,
    cluster_file: PathBuf,
    /// Keeps the cluster (and its watchdog) for the test process's life.
    _kafka: ThreeNodeKafka,
}

/// The tests fault one cluster: one at a time.
static TURN: Mutex<()> = Mutex::new(());

impl Cluster {
    fn shared(test: &str) -> Option<&'static Cluster> {
        static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
        if !java_peers_available(test) {
            return None;
        }
        let started = CLUSTER.get_or_init(|| {
            std::panic::catch_unwind(Cluster::start).map_err(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic while starting the cluster".into())
            })
        });
        match started {
            Ok(c) => Some(c),
            Err(e) => panic!("the 3-node Kafka cluster did not start: {e}"),
        }
    }

    fn start() -> Cluster {
        let k = start_three_node_kafka("cluster");
        Cluster {
            bootstrap: k.bootstrap.clone(),
            cluster_file: k.cluster_file.clone(),
            _kafka: k,
        }
    }

    fn nodes(&self) -> NodeSet {
        NodeSet::from_cluster_file(&self.cluster_file).expect("the cluster file reads")
    }

    /// The cluster file, validated against schema/cluster.schema.json.
    fn file(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(&self.cluster_file).unwrap();
        let file: serde_json::Value = serde_json::from_str(&text).unwrap();
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../schema/cluster.schema.json")).unwrap();
        let validator = jsonschema::validator_for(&schema).expect("schema compiles");
        let errors: Vec<String> = validator
            .iter_errors(&file)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        assert!(
            errors.is_empty(),
            "{text}\ndoes not match the schema:\n{}",
            errors.join("\n")
        );
        file
    }

    /// The node's entry in the cluster file.
    fn entry(&self, id: i32) -> serde_json::Value {
        let file = self.file();
        file["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no node {id} in {file}"))
    }
}

/// Kafka answers an ApiVersions v0 request at `addr` within `timeout` (the same probe as
/// scripts/kafka.sh's).
fn answers_api_versions(addr: &str, timeout: Duration) -> bool {
    let addr: SocketAddr = addr.parse().unwrap();
    let Ok(mut s) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    s.set_read_timeout(Some(timeout)).unwrap();
    let request = b"\x00\x00\x00\x0e\x00\x12\x00\x00\x00\x00\x00\x2a\x00\x04kbpr";
    let mut reply = [0u8; 8];
    s.write_all(request).is_ok() && s.read_exact(&mut reply).is_ok() && reply[4..] == [0, 0, 0, 42]
}

fn admin_create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(15)));
    // Right after the start a node may not be unfenced yet: RF 3 then fails for a moment.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let topic_spec = NewTopic::new(topic, partitions, TopicReplication::Fixed(3))
            .set("min.insync.replicas", "2");
        let result = rt
            .block_on(admin.create_topics(&[topic_spec], &options))
            .map_err(|e| e.to_string())
            .and_then(|mut r| r.pop().unwrap().map_err(|(_, code)| code.to_string()));
        match result {
            Ok(_) => return,
            Err(e) if Instant::now() < deadline => {
                eprintln!("creating {topic}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("creating {topic} at {bootstrap}: {e}"),
        }
    }
}

/// (leader, ISR size) of each partition of `topic`.
fn leaders(bootstrap: &str, topic: &str) -> Vec<(i32, usize)> {
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let md = client
        .fetch_metadata(Some(topic), Duration::from_secs(15))
        .expect("metadata");
    let t = md.topics().iter().find(|t| t.name() == topic).unwrap();
    t.partitions()
        .iter()
        .map(|p| (p.leader(), p.isr().len()))
        .collect()
}

fn wait_for_full_isr(bootstrap: &str, topic: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let l = leaders(bootstrap, topic);
        if l.iter().all(|&(leader, isr)| leader > 0 && isr == NODES) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: ISR not full after 60 s: {l:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What the delivery reports said, per record sequence number.
#[derive(Default)]
struct Deliveries {
    /// (partition, offset, when) of every acknowledged record, by sequence number.
    acked: Mutex<BTreeMap<u64, (i32, i64, Instant)>>,
    failed: Mutex<Vec<String>>,
}

struct Recorder(Arc<Deliveries>);

impl ClientContext for Recorder {}

impl ProducerContext for Recorder {
    type DeliveryOpaque = Box<u64>;
    fn delivery(&self, result: &DeliveryResult<'_>, seq: Box<u64>) {
        match result {
            Ok(m) => {
                self.0
                    .acked
                    .lock()
                    .unwrap()
                    .insert(*seq, (m.partition(), m.offset(), Instant::now()));
            }
            Err((e, _)) => self
                .0
                .failed
                .lock()
                .unwrap()
                .push(format!("record {seq}: {e}")),
        }
    }
}

/// Produces record i to partition i % partitions at about `per_sec`, until `stop`.
fn produce_until(
    producer: &ThreadedProducer<Recorder>,
    topic: &str,
    partitions: i32,
    per_sec: u64,
    stop: &AtomicBool,
) -> u64 {
    let mut seq = 0u64;
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let payload = seq.to_string();
        let mut record = BaseRecord::<(), String, Box<u64>>::with_opaque_to(topic, Box::new(seq))
            .partition((seq % partitions as u64) as i32)
            .payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        seq += 1;
        let due = started + Duration::from_micros(seq * 1_000_000 / per_sec);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    seq
}

/// Every record of every partition, read from the earliest offset: partition → sequence
/// numbers in offset order.
fn read_back(bootstrap: &str, topic: &str, ends: &[i64]) -> Vec<Vec<u64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "kafka-cluster-read-back")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..ends.len() as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut read = vec![Vec::new(); ends.len()];
    let deadline = Instant::now() + Duration::from_secs(60);
    while read
        .iter()
        .zip(ends)
        .any(|(r, &end)| (r.len() as i64) < end)
    {
        assert!(Instant::now() < deadline, "read-back incomplete after 60 s");
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("consume");
            let seq = std::str::from_utf8(m.payload().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            read[m.partition() as usize].push(seq);
        }
    }
    read
}

#[test]
fn acks_all_records_survive_a_sigkill_of_the_leader_and_its_restart() {
    let Some(cluster) = Cluster::shared("acks_all_records_survive_a_sigkill_of_the_leader") else {
        return;
    };
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    const TOPIC: &str = "failover";
    const PARTITIONS: i32 = 3;
    admin_create_topic(&cluster.bootstrap, TOPIC, PARTITIONS);
    wait_for_full_isr(&cluster.bootstrap, TOPIC);
    let nodes = cluster.nodes();
    assert_eq!(nodes.node_ids(), vec![1, 2, 3]);
    let file = cluster.file();
    assert_eq!(file["bootstrap"], cluster.bootstrap.as_str());
    for n in file["nodes"].as_array().unwrap() {
        assert!(
            n["client_proxy"].is_object() && n["peer_proxy"].is_object(),
            "proxied: {n}"
        );
        assert_eq!(
            n["bootstrap"], n["client_proxy"]["listen"],
            "clients go through the proxy"
        );
        assert_eq!(
            n["peer"], n["peer_proxy"]["listen"],
            "peers go through the proxy"
        );
    }

    let deliveries = Arc::new(Deliveries::default());
    let producer: ThreadedProducer<Recorder> = ClientConfig::new()
        .set("bootstrap.servers", &cluster.bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "120000")
        .create_with_context(Recorder(deliveries.clone()))
        .unwrap();
    let stop = AtomicBool::new(false);
    let (leader, old_pid, kill_at, sent) = std::thread::scope(|s| {
        let sender = s.spawn(|| produce_until(&producer, TOPIC, PARTITIONS, 300, &stop));
        std::thread::sleep(Duration::from_secs(2));
        let leader = leaders(&cluster.bootstrap, TOPIC)[0].0;
        let old_pid = cluster.entry(leader)["pid"].as_i64().unwrap();
        let kill_at = Instant::now();
        nodes
            .kill(leader)
            .expect("SIGKILL the leader of partition 0");
        eprintln!("killed node {leader} (pid {old_pid}), the leader of {TOPIC}/0");
        // Failover: the controller fences the node after broker.session.timeout.ms (6 s).
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let now_leader = leaders(&cluster.bootstrap, TOPIC)[0].0;
            if now_leader > 0 && now_leader != leader {
                eprintln!(
                    "{TOPIC}/0 led by node {now_leader} {:.1} s after the kill",
                    kill_at.elapsed().as_secs_f64()
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no new leader 40 s after the kill"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        std::thread::sleep(Duration::from_secs(1));
        let restart_at = Instant::now();
        nodes.restart(leader).expect("restart the killed node");
        eprintln!(
            "node {leader} restarted in {:.1} s",
            restart_at.elapsed().as_secs_f64()
        );
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        (leader, old_pid, kill_at, sender.join().unwrap())
    });
    producer.flush(Duration::from_secs(120)).expect("flush");

    let new_pid = cluster.entry(leader)["pid"].as_i64().unwrap();
    assert_ne!(
        new_pid, old_pid,
        "the cluster file holds the restarted node's pid"
    );
    assert!(
        answers_api_versions(
            cluster.entry(leader)["direct"].as_str().unwrap(),
            Duration::from_secs(5)
        ),
        "the restarted node answers"
    );

    // The restarted node catches up and is back in every ISR.
    wait_for_full_isr(&cluster.bootstrap, TOPIC);

    let failed = deliveries.failed.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "failed deliveries: {:?}",
        &failed[..failed.len().min(10)]
    );
    let acked = deliveries.acked.lock().unwrap().clone();
    assert_eq!(
        acked.len() as u64,
        sent,
        "every record sent was acknowledged"
    );

    // Partition 0's ack gap around the kill, for the report (not asserted tightly: the machine
    // is shared; the bound is the session timeout plus a lot of slack).
    let mut p0: Vec<Instant> = acked.values().filter(|a| a.0 == 0).map(|a| a.2).collect();
    p0.sort();
    let gap = p0
        .windows(2)
        .filter(|w| w[1] >= kill_at)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    eprintln!("{sent} records acked; longest ack gap of {TOPIC}/0 after the kill: {gap:?}");
    assert!(gap < Duration::from_secs(40), "{gap:?}");

    let ends = end_offsets(&cluster.bootstrap, TOPIC);
    let mut acked_per_partition = vec![Vec::new(); PARTITIONS as usize];
    for (&seq, &(p, offset, _)) in &acked {
        acked_per_partition[p as usize].push((offset, seq));
    }
    let read = read_back(&cluster.bootstrap, TOPIC, &ends);
    for p in 0..PARTITIONS as usize {
        let mut by_offset = acked_per_partition[p].clone();
        by_offset.sort();
        assert_eq!(
            by_offset.len() as i64,
            ends[p],
            "{TOPIC}/{p}: acknowledged records = end offset (idempotent: no duplicates)"
        );
        let expected: Vec<u64> = by_offset.iter().map(|&(_, seq)| seq).collect();
        assert_eq!(
            read[p][..ends[p] as usize],
            expected[..],
            "{TOPIC}/{p}: every acknowledged record is read back at its offset"
        );
    }
}

/// Heals both links of a node when dropped, so a failed assertion leaves the shared cluster
/// healthy for the next test.
struct Healer<'a> {
    nodes: &'a NodeSet,
    id: i32,
}

impl Drop for Healer<'_> {
    fn drop(&mut self) {
        for side in [LinkSide::Client, LinkSide::Peer] {
            let _ = self.nodes.link(self.id, side, LinkFault::None);
        }
    }
}

#[test]
fn client_and_peer_link_faults_reach_the_node_proxies_and_are_different_links() {
    let Some(cluster) = Cluster::shared("client_and_peer_link_faults") else {
        return;
    };
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    const TOPIC: &str = "links";
    admin_create_topic(&cluster.bootstrap, TOPIC, 1);
    wait_for_full_isr(&cluster.bootstrap, TOPIC);
    let nodes = cluster.nodes();
    let leader = leaders(&cluster.bootstrap, TOPIC)[0].0;
    let entry = cluster.entry(leader);
    let client_addr = entry["bootstrap"].as_str().unwrap().to_string();
    let direct_addr = entry["direct"].as_str().unwrap().to_string();
    assert_ne!(
        client_addr, direct_addr,
        "clients are given the proxy's address"
    );

    // Client side: the node's advertised address stops answering, its own listener does not.
    let _heal = Healer {
        nodes: &nodes,
        id: leader,
    };
    nodes
        .link(leader, LinkSide::Client, LinkFault::Blackhole)
        .unwrap();
    assert!(!answers_api_versions(&client_addr, Duration::from_secs(1)));
    assert!(answers_api_versions(&direct_addr, Duration::from_secs(5)));
    nodes
        .link(leader, LinkSide::Client, LinkFault::None)
        .unwrap();
    assert!(answers_api_versions(&client_addr, Duration::from_secs(5)));

    // Peer side: followers replicate through the leader's peer proxy, so a blackhole there
    // holds acks=all while clients still reach the leader (acks=1 goes on).
    let producer = |acks: &str| -> rdkafka::producer::FutureProducer {
        ClientConfig::new()
            .set("bootstrap.servers", &cluster.bootstrap)
            .set("acks", acks)
            .set("linger.ms", "0")
            .set("message.timeout.ms", "60000")
            .create()
            .unwrap()
    };
    let (all, one) = (producer("all"), producer("1"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Enqueued at once; the future is the delivery report.
    let send = |p: &rdkafka::producer::FutureProducer, v: &str| {
        let record = rdkafka::producer::FutureRecord::<(), _>::to(TOPIC).payload(v);
        let report = p.send_result(record).map_err(|(e, _)| e).expect("enqueue");
        async move {
            match report.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((e, _))) => Err(e.to_string()),
                Err(_) => Err("producer gone".to_string()),
            }
        }
    };
    rt.block_on(send(&all, "warm-up"))
        .expect("acks=all before the fault");
    rt.block_on(send(&one, "warm-up"))
        .expect("acks=1 before the fault");

    nodes
        .link(leader, LinkSide::Peer, LinkFault::Blackhole)
        .unwrap();
    let started = Instant::now();
    let held = rt.spawn(send(&all, "held"));
    rt.block_on(send(&one, "passes"))
        .expect("acks=1 during the peer blackhole");
    let acks_1 = started.elapsed();
    rt.block_on(async { tokio::time::sleep(Duration::from_secs(2)).await });
    assert!(
        !held.is_finished(),
        "acks=all completed while followers were cut off"
    );
    nodes.link(leader, LinkSide::Peer, LinkFault::None).unwrap();
    rt.block_on(held)
        .unwrap()
        .expect("acks=all completes after the heal");
    eprintln!(
        "peer blackhole: acks=1 acked in {acks_1:?}, acks=all held until the heal ({:?})",
        started.elapsed()
    );
}

#[test]
fn kafka_sh_cluster_commands_reject_bad_input_with_exit_2_and_say_why() {
    let state = tempfile::tempdir().unwrap();
    for (args, says) in [
        (
            vec!["--nodes", "2", "status"],
            "--nodes wants 1 (one node) or 3..9",
        ),
        (
            vec!["--nodes", "3", "kill", "4"],
            "kill wants a node id 1..3, got '4'",
        ),
        (
            vec!["--nodes", "3", "pause"],
            "pause wants a node id 1..3, got ''",
        ),
        (
            vec!["--nodes", "3", "stop", "2"],
            "stop takes no node id: it stops the whole cluster (SIGSTOP of one node is: pause N)",
        ),
        (
            vec!["--nodes", "3", "start", "--base-port", "65530"],
            "--base-port 65530: node 3's ports would pass 65535",
        ),
        (vec!["--nodes", "3", "restart", "1"], "no cluster in"),
    ] {
        let done = run_bounded(
            Command::new(script("kafka.sh"))
                .args(["--state"])
                .arg(state.path())
                .args(&args),
            Duration::from_secs(30),
            "scripts/kafka.sh",
        );
        assert_eq!(done.status.code(), Some(2), "{args:?}: {}", done.stderr);
        assert!(done.stderr.contains(says), "{args:?}: {}", done.stderr);
    }
}
