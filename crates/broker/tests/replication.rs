//! The replicated data path on three in-process nodes sharing one `LocalController`: acks=all
//! waits for the followers and the replicas end byte-identical; min.insync.replicas; a new
//! leader at a higher epoch dedupes an idempotent retry from before the failover; a deposed
//! leader truncates its un-replicated suffix when it follows again; OffsetForLeaderEpoch and
//! the epoch checks. Requests are raw Kafka requests (the kafka-protocol crate), so each one
//! goes to the node the test chooses.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use kbench_broker::cluster::local::{start_nodes, LocalController};
use kbench_broker::cluster::{ClusterConfig, ClusterHandle, Command, EventLog, Voter};
use kbench_broker::protocol::batch::build_test_batch;
use kbench_broker::{BrokerConfig, EmbeddedBroker};

struct Client(TcpStream, i32);

impl Client {
    fn connect(boot: &str) -> Self {
        let s = TcpStream::connect(boot).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        Client(s, 0)
    }

    fn call<Q: Encodable, R: Decodable>(&mut self, key: ApiKey, version: i16, req: &Q) -> R {
        self.1 += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = self.1;
        header.client_id = Some(StrBytes::from_static_str("replication-test"));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        req.encode(&mut buf, version).unwrap();
        let n = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&n.to_be_bytes());
        self.0.write_all(&buf).unwrap();
        let mut size = [0u8; 4];
        self.0.read_exact(&mut size).expect("a response");
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.0.read_exact(&mut body).unwrap();
        let mut body = Bytes::from(body);
        ResponseHeader::decode(&mut body, key.response_header_version(version)).unwrap();
        R::decode(&mut body, version).unwrap()
    }
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Produce v10 of one batch to partition 0; the partition's response.
fn produce(boot: &str, topic: &str, batch: &[u8], acks: i16) -> (i16, i64, ProduceResponse) {
    produce_within(boot, topic, batch, acks, 5000)
}

fn produce_within(
    boot: &str,
    topic: &str,
    batch: &[u8],
    acks: i16,
    timeout_ms: i32,
) -> (i16, i64, ProduceResponse) {
    let mut pd = PartitionProduceData::default();
    pd.index = 0;
    pd.records = Some(Bytes::copy_from_slice(batch));
    let mut td = TopicProduceData::default();
    td.name = name(topic);
    td.partition_data = vec![pd];
    let mut r = ProduceRequest::default();
    r.acks = acks;
    r.timeout_ms = timeout_ms;
    r.topic_data = vec![td];
    let resp: ProduceResponse = Client::connect(boot).call(ApiKey::Produce, 10, &r);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset, resp.clone())
}

/// A consumer's (or with `replica_id` ≥ 0, a follower's) Fetch v12 of partition 0.
fn fetch(
    boot: &str,
    topic: &str,
    offset: i64,
    replica_id: i32,
    current_leader_epoch: i32,
    last_fetched_epoch: i32,
) -> fetch_response::PartitionData {
    let mut fp = FetchPartition::default();
    fp.partition = 0;
    fp.fetch_offset = offset;
    fp.current_leader_epoch = current_leader_epoch;
    fp.last_fetched_epoch = last_fetched_epoch;
    fp.partition_max_bytes = 1 << 20;
    let mut ft = FetchTopic::default();
    ft.topic = name(topic);
    ft.partitions = vec![fp];
    let mut r = FetchRequest::default();
    r.replica_id = BrokerId(replica_id);
    r.max_wait_ms = 0;
    r.min_bytes = 1;
    r.max_bytes = 10 << 20;
    r.session_epoch = -1;
    r.topics = vec![ft];
    let resp: FetchResponse = Client::connect(boot).call(ApiKey::Fetch, 12, &r);
    resp.responses[0].partitions[0].clone()
}

/// Every record value a consumer reads from the leader, from offset 0 up to the HW.
fn consume_all(boot: &str, topic: &str) -> Vec<Vec<u8>> {
    let mut values = Vec::new();
    let mut offset = 0;
    loop {
        let pd = fetch(boot, topic, offset, -1, -1, -1);
        assert_eq!(pd.error_code, 0, "consumer fetch at {offset}");
        let Some(mut records) = pd.records.filter(|r| !r.is_empty()) else {
            return values;
        };
        for set in RecordBatchDecoder::decode_all(&mut records).unwrap() {
            for r in set.records {
                values.push(r.value.unwrap().to_vec());
                offset = r.offset + 1;
            }
        }
    }
}

fn offset_for_leader_epoch(
    boot: &str,
    topic: &str,
    current: i32,
    epoch: i32,
    version: i16,
) -> (i16, i32, i64) {
    let mut op = OffsetForLeaderPartition::default();
    op.partition = 0;
    op.current_leader_epoch = current;
    op.leader_epoch = epoch;
    let mut ot = OffsetForLeaderTopic::default();
    ot.topic = name(topic);
    ot.partitions = vec![op];
    let mut r = OffsetForLeaderEpochRequest::default();
    r.replica_id = BrokerId(-1);
    r.topics = vec![ot];
    let resp: OffsetForLeaderEpochResponse =
        Client::connect(boot).call(ApiKey::OffsetForLeaderEpoch, version, &r);
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.leader_epoch, p.end_offset)
}

/// ListOffsets v4 of partition 0: (error, offset, leader epoch).
fn list_offsets(boot: &str, topic: &str, timestamp: i64, current: i32) -> (i16, i64, i32) {
    let mut lp = list_offsets_request::ListOffsetsPartition::default();
    lp.partition_index = 0;
    lp.current_leader_epoch = current;
    lp.timestamp = timestamp;
    let mut lt = list_offsets_request::ListOffsetsTopic::default();
    lt.name = name(topic);
    lt.partitions = vec![lp];
    let mut r = ListOffsetsRequest::default();
    r.replica_id = BrokerId(-1);
    r.topics = vec![lt];
    let resp: ListOffsetsResponse = Client::connect(boot).call(ApiKey::ListOffsets, 4, &r);
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset, p.leader_epoch)
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn create_topic(c: &LocalController, topic: &str, min_isr: i32) {
    let reply = c.apply(&Command::CreateTopic {
        name: topic.into(),
        partitions: 1,
        replication_factor: 3,
        min_insync_replicas: min_isr,
        configs: BTreeMap::new(),
    });
    assert_eq!(reply, kbench_broker::cluster::Reply::Ok);
}

/// The partition's leader and epoch as the controller says.
fn leader_of(c: &LocalController, topic: &str) -> (i32, i32) {
    let md = c.watch().borrow().clone();
    let p = md.partition(topic, 0).unwrap();
    (p.leader, p.leader_epoch)
}

fn broker_epoch(c: &LocalController, id: i32) -> i64 {
    c.watch().borrow().brokers[&id].epoch
}

/// A produce with acks=1 that succeeds once the leader knows it leads.
fn produce_when_led(boot: &str, topic: &str, batch: &[u8], acks: i16) -> i64 {
    let mut base = -1;
    wait_for("the leader to take the produce", || {
        let (e, b, _) = produce(boot, topic, batch, acks);
        base = b;
        e == 0
    });
    base
}

fn node_dir(root: &Path, id: i32) -> PathBuf {
    root.join(format!("node-{id}"))
}

fn segment(root: &Path, id: i32, topic: &str) -> Vec<u8> {
    std::fs::read(node_dir(root, id).join(format!("{topic}-0/{:020}.log", 0))).unwrap_or_default()
}

fn cluster(root: &Path) -> (Arc<LocalController>, Vec<EmbeddedBroker>) {
    let base = BrokerConfig {
        data_dir: Some(root.to_path_buf()),
        ..BrokerConfig::embedded()
    };
    start_nodes(3, base).unwrap()
}

fn batch(values: &[&str], producer: Option<(i64, i16, i32)>) -> Vec<u8> {
    let v: Vec<&[u8]> = values.iter().map(|s| s.as_bytes()).collect();
    build_test_batch(&v, producer)
}

#[test]
fn acks_all_waits_for_the_followers_and_the_replicas_are_byte_identical() {
    let root = tempfile::tempdir().unwrap();
    let (c, nodes) = cluster(root.path());
    create_topic(&c, "rep", 2);
    let (leader, epoch) = leader_of(&c, "rep");
    let boot = nodes[(leader - 1) as usize].bootstrap_servers();
    produce_when_led(&boot, "rep", &batch(&["first"], None), -1);
    let mut expected = vec![b"first".to_vec()];
    for i in 0..20 {
        let vals = [format!("a{i}"), format!("b{i}")];
        let (err, _, _) = produce(&boot, "rep", &batch(&[&vals[0], &vals[1]], None), -1);
        assert_eq!(err, 0, "acks=all produce {i}");
        expected.extend(vals.iter().map(|v| v.as_bytes().to_vec()));
    }
    // acks=all answered: the high watermark covers everything, so a consumer sees it all.
    assert_eq!(consume_all(&boot, "rep"), expected);
    let leader_log = segment(root.path(), leader, "rep");
    for id in 1..=3 {
        wait_for("a follower to hold the leader's bytes", || {
            segment(root.path(), id, "rep") == leader_log
        });
    }
    // The leader stamped its epoch on every batch (bytes 12..16).
    assert_eq!(&leader_log[12..16], &epoch.to_be_bytes());
    // Followers do not serve consumers; a stale epoch is fenced, a future one unknown.
    let follower = nodes[(leader % 3) as usize].bootstrap_servers();
    assert_eq!(fetch(&follower, "rep", 0, -1, -1, -1).error_code, 6);
    assert_eq!(fetch(&boot, "rep", 0, -1, epoch + 1, -1).error_code, 75);
    let (err, _, resp) = produce(&follower, "rep", &batch(&["x"], None), 1);
    assert_eq!(err, 6, "a follower refuses produces");
    let cl = &resp.responses[0].partition_responses[0].current_leader;
    assert_eq!(
        (cl.leader_id.0, cl.leader_epoch),
        (leader, epoch),
        "KIP-951"
    );
    assert_eq!(resp.node_endpoints[0].node_id.0, leader);
}

#[test]
fn acks_all_needs_min_insync_replicas_while_acks_one_goes_on() {
    let root = tempfile::tempdir().unwrap();
    let (c, nodes) = cluster(root.path());
    create_topic(&c, "minisr", 2);
    let (leader, _) = leader_of(&c, "minisr");
    let boot = nodes[(leader - 1) as usize].bootstrap_servers();
    produce_when_led(&boot, "minisr", &batch(&["ok"], None), -1);
    // The quorum fences both followers (their sessions expired): the ISR is the leader alone.
    for id in (1..=3).filter(|id| *id != leader) {
        c.apply(&Command::FenceBroker {
            id,
            epoch: broker_epoch(&c, id),
        });
    }
    // Until this leader has applied the new ISR, acks=all still appends (and is answered
    // 0, or 20 if the ISR shrank while it waited): such values are in the log.
    let mut expected = vec![b"ok".to_vec()];
    let mut i = 0;
    wait_for("acks=all to be refused", || {
        i += 1;
        let v = format!("v{i}");
        match produce(&boot, "minisr", &batch(&[&v], None), -1).0 {
            19 => return true,
            0 | 20 => expected.push(v.into_bytes()),
            e => panic!("acks=all answered {e}"),
        }
        false
    });
    let (err, base, _) = produce(&boot, "minisr", &batch(&["one"], None), 1);
    assert_eq!(
        (err, base),
        (0, expected.len() as i64),
        "acks=1 still appends"
    );
    expected.push(b"one".to_vec());
    assert_eq!(consume_all(&boot, "minisr"), expected);
}

#[test]
fn a_new_leader_at_a_higher_epoch_dedupes_an_idempotent_retry_from_before_the_failover() {
    let root = tempfile::tempdir().unwrap();
    let (c, nodes) = cluster(root.path());
    create_topic(&c, "idem", 2);
    let (old, epoch) = leader_of(&c, "idem");
    let boot = nodes[(old - 1) as usize].bootstrap_servers();
    let first = batch(&["p0", "p1"], Some((4242, 0, 0)));
    assert_eq!(produce_when_led(&boot, "idem", &first, -1), 0);
    c.apply(&Command::FenceBroker {
        id: old,
        epoch: broker_epoch(&c, old),
    });
    let (new, new_epoch) = leader_of(&c, "idem");
    assert!(new != old && new_epoch > epoch, "{new}@{new_epoch}");
    let boot = nodes[(new - 1) as usize].bootstrap_servers();
    // The producer never saw its ack and retries on the new leader: the same offsets back.
    assert_eq!(produce_when_led(&boot, "idem", &first, -1), 0);
    let next = batch(&["p2"], Some((4242, 0, 2)));
    assert_eq!(produce(&boot, "idem", &next, -1).0, 0);
    assert_eq!(
        consume_all(&boot, "idem"),
        vec![b"p0".to_vec(), b"p1".to_vec(), b"p2".to_vec()]
    );
    // OffsetForLeaderEpoch, as a consumer validating its position: the old epoch ended at 2.
    for version in 2..=4 {
        assert_eq!(
            offset_for_leader_epoch(&boot, "idem", new_epoch, epoch, version),
            (0, epoch, 2),
            "v{version}"
        );
    }
    assert_eq!(
        offset_for_leader_epoch(&boot, "idem", new_epoch, new_epoch, 2),
        (0, new_epoch, 3)
    );
    assert_eq!(
        offset_for_leader_epoch(&boot, "idem", epoch, epoch, 3).0,
        74
    );
    assert_eq!(
        offset_for_leader_epoch(&boot, "idem", new_epoch + 1, 0, 3).0,
        75
    );
    // ListOffsets: the leader's high watermark and epochs; only the leader answers.
    assert_eq!(
        list_offsets(&boot, "idem", -1, new_epoch),
        (0, 3, new_epoch)
    );
    assert_eq!(list_offsets(&boot, "idem", -2, -1), (0, 0, epoch));
    assert_eq!(list_offsets(&boot, "idem", -1, epoch).0, 74);
    let old_boot = nodes[(old - 1) as usize].bootstrap_servers();
    assert_eq!(list_offsets(&old_boot, "idem", -1, -1).0, 6);
}

/// Starts node `id` again on its data dir, registered anew (as a restarted process would).
fn restart(c: &Arc<LocalController>, root: &Path, id: i32) -> EmbeddedBroker {
    start_node(c, root, id, |_| {})
}

/// Starts node `id` on `<root>/node-<id>` with its cluster settings tweaked, and registers it.
fn start_node(
    c: &Arc<LocalController>,
    root: &Path,
    id: i32,
    tweak: impl Fn(&mut ClusterConfig),
) -> EmbeddedBroker {
    let voters: Vec<Voter> = (1..=3)
        .map(|id| Voter {
            id,
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
        })
        .collect();
    let mut config = ClusterConfig::new(id, voters);
    tweak(&mut config);
    let dir = node_dir(root, id);
    std::fs::create_dir_all(&dir).unwrap();
    let handle = ClusterHandle {
        node_id: id,
        config: config.clone(),
        metadata: c.watch(),
        controller: c.clone(),
        events: EventLog::open(&dir, id).unwrap(),
    };
    let node = EmbeddedBroker::start_node(
        BrokerConfig {
            data_dir: Some(dir),
            cluster: Some(config),
            ..BrokerConfig::embedded()
        },
        Some(handle),
    )
    .unwrap();
    let addr = node.bootstrap_servers();
    let (host, port) = addr.rsplit_once(':').unwrap();
    c.apply(&Command::RegisterBroker {
        id,
        host: host.into(),
        port: port.parse().unwrap(),
        peer: None,
    });
    node
}

#[test]
fn a_deposed_leader_truncates_its_unreplicated_suffix_when_it_follows_again() {
    let root = tempfile::tempdir().unwrap();
    let (c, mut nodes) = cluster(root.path());
    create_topic(&c, "div", 1);
    let (old, _) = leader_of(&c, "div");
    let boot = nodes[(old - 1) as usize].bootstrap_servers();
    produce_when_led(&boot, "div", &batch(&["kept"], None), -1);
    let committed = segment(root.path(), old, "div");
    let followers: Vec<i32> = (1..=3).filter(|id| *id != old).collect();
    for id in &followers {
        wait_for("the follower to catch up", || {
            segment(root.path(), *id, "div") == committed
        });
    }
    // Both followers stop; the leader takes acks=1 writes only it has.
    let mut stopped = Vec::new();
    for id in followers.iter().rev() {
        stopped.push(nodes.remove((*id - 1) as usize));
    }
    drop(stopped);
    for i in 0..3 {
        let (err, _, _) = produce(&boot, "div", &batch(&[&format!("lost{i}")], None), 1);
        assert_eq!(err, 0);
    }
    let diverged = segment(root.path(), old, "div");
    assert!(diverged.len() > committed.len());
    // The quorum fences the old leader; the followers come back and one of them leads.
    c.apply(&Command::FenceBroker {
        id: old,
        epoch: broker_epoch(&c, old),
    });
    let _back: Vec<EmbeddedBroker> = followers
        .iter()
        .map(|id| restart(&c, root.path(), *id))
        .collect();
    let (new, new_epoch) = leader_of(&c, "div");
    assert!(followers.contains(&new), "leader {new}");
    wait_for("the old leader to truncate to the new leader's log", || {
        segment(root.path(), old, "div") == committed
    });
    let events_file = node_dir(root.path(), old).join(EventLog::FILE);
    let truncations = || {
        let events = std::fs::read_to_string(&events_file).unwrap();
        let found: Vec<serde_json::Value> = events
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["event"] == "truncated")
            .collect();
        (events, found)
    };
    // The event follows the cut.
    wait_for("the truncation event", || !truncations().1.is_empty());
    let (events, truncated) = truncations();
    assert_eq!(truncated.len(), 1, "{events}");
    assert_eq!(truncated[0]["to"], 1);
    assert_eq!(truncated[0]["from"], 4);
    assert_eq!(truncated[0]["reason"], "diverging_epoch");
    // Its follower fetch at the old epoch: fenced.
    let new_boot = _back[followers.iter().position(|id| *id == new).unwrap()].bootstrap_servers();
    assert_eq!(
        fetch(&new_boot, "div", 1, old, new_epoch - 1, 0).error_code,
        74
    );
    drop(nodes);
}

fn events(root: &Path, id: i32, name: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(node_dir(root, id).join(EventLog::FILE)).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == name)
        .collect()
}

fn isr_of(c: &LocalController, topic: &str) -> Vec<i32> {
    let md = c.watch().borrow().clone();
    md.partition(topic, 0).unwrap().isr.clone()
}

#[test]
fn a_lagging_follower_leaves_the_isr_and_rejoins_once_caught_up() {
    let root = tempfile::tempdir().unwrap();
    let c = LocalController::new();
    let fast = |cfg: &mut ClusterConfig| {
        cfg.replica_lag_time_max = Duration::from_millis(1000);
        cfg.replica_fetch_wait_max = Duration::from_millis(100);
    };
    let mut nodes: Vec<Option<EmbeddedBroker>> = (1..=3)
        .map(|id| Some(start_node(&c, root.path(), id, fast)))
        .collect();
    create_topic(&c, "lag", 1);
    let (leader, _) = leader_of(&c, "lag");
    let boot = nodes[(leader - 1) as usize]
        .as_ref()
        .unwrap()
        .bootstrap_servers();
    produce_when_led(&boot, "lag", &batch(&["a"], None), -1);
    let lagging = leader % 3 + 1;
    nodes[(lagging - 1) as usize] = None;
    // A stopped follower as far as the leader's end is in sync (Kafka's isCaughtUp): it
    // falls behind once the leader appends.
    assert_eq!(produce(&boot, "lag", &batch(&["b"], None), 1).0, 0);
    let t0 = Instant::now();
    wait_for("the ISR to shrink", || {
        !isr_of(&c, "lag").contains(&lagging)
    });
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "not before the lag limit"
    );
    let shrinks = events(root.path(), leader, "isr_shrink_requested");
    assert_eq!(shrinks[0]["out_of_sync"], serde_json::json!([lagging]));
    for i in 0..5 {
        assert_eq!(
            produce(&boot, "lag", &batch(&[&format!("c{i}")], None), -1).0,
            0
        );
    }
    // Back, it fetches what it missed and is let into the ISR again.
    nodes[(lagging - 1) as usize] = Some(start_node(&c, root.path(), lagging, fast));
    wait_for("the ISR to expand", || isr_of(&c, "lag").len() == 3);
    assert_eq!(events(root.path(), leader, "isr_expand_requested").len(), 1);
    assert_eq!(
        segment(root.path(), lagging, "lag"),
        segment(root.path(), leader, "lag")
    );
}

#[test]
fn acks_all_times_out_on_silent_followers_then_fails_after_append_when_the_isr_shrinks() {
    let root = tempfile::tempdir().unwrap();
    let c = LocalController::new();
    let fast = |cfg: &mut ClusterConfig| {
        cfg.replica_lag_time_max = Duration::from_millis(1000);
        cfg.replica_fetch_wait_max = Duration::from_millis(100);
    };
    let mut nodes: Vec<Option<EmbeddedBroker>> = (1..=3)
        .map(|id| Some(start_node(&c, root.path(), id, fast)))
        .collect();
    create_topic(&c, "slow", 2);
    let (leader, _) = leader_of(&c, "slow");
    let boot = nodes[(leader - 1) as usize]
        .as_ref()
        .unwrap()
        .bootstrap_servers();
    produce_when_led(&boot, "slow", &batch(&["a"], None), -1);
    for id in (1..=3).filter(|id| *id != leader) {
        nodes[(id - 1) as usize] = None;
    }
    // Still in the ISR (within the lag), so the high watermark waits for them.
    let (err, base, _) = produce_within(&boot, "slow", &batch(&["b"], None), -1, 300);
    assert_eq!((err, base), (7, 1), "REQUEST_TIMED_OUT, appended");
    // The ISR shrinks below min.insync.replicas while this one waits.
    let (err, _, _) = produce_within(&boot, "slow", &batch(&["c"], None), -1, 5000);
    assert_eq!(err, 20, "NOT_ENOUGH_REPLICAS_AFTER_APPEND");
    assert_eq!(isr_of(&c, "slow"), vec![leader]);
    assert_eq!(produce(&boot, "slow", &batch(&["d"], None), -1).0, 19);
}

#[test]
fn a_deleted_topic_leaves_every_replica() {
    let root = tempfile::tempdir().unwrap();
    let (c, nodes) = cluster(root.path());
    create_topic(&c, "gone", 2);
    let (leader, _) = leader_of(&c, "gone");
    let boot = nodes[(leader - 1) as usize].bootstrap_servers();
    produce_when_led(&boot, "gone", &batch(&["x"], None), -1);
    c.apply(&Command::DeleteTopic {
        name: "gone".into(),
    });
    for id in 1..=3 {
        wait_for("the replica's directory to go, and its event", || {
            !node_dir(root.path(), id).join("gone-0").exists()
                && events(root.path(), id, "replica_deleted").len() == 1
        });
    }
    assert_eq!(produce(&boot, "gone", &batch(&["y"], None), 1).0, 3);
    // Deleted and created again at once: the new topic starts empty on every replica.
    create_topic(&c, "again", 2);
    let (leader, _) = leader_of(&c, "again");
    let boot = nodes[(leader - 1) as usize].bootstrap_servers();
    produce_when_led(&boot, "again", &batch(&["old"], None), -1);
    c.apply(&Command::DeleteTopic {
        name: "again".into(),
    });
    create_topic(&c, "again", 2);
    let (leader, _) = leader_of(&c, "again");
    let boot = nodes[(leader - 1) as usize].bootstrap_servers();
    assert_eq!(
        produce_when_led(&boot, "again", &batch(&["new"], None), -1),
        0
    );
    assert_eq!(consume_all(&boot, "again"), vec![b"new".to_vec()]);
}

#[test]
fn a_follower_learns_the_new_high_watermark_without_waiting_out_its_long_poll() {
    let root = tempfile::tempdir().unwrap();
    let (c, mut nodes) = cluster(root.path());
    create_topic(&c, "hw", 2);
    let (leader, _) = leader_of(&c, "hw");
    let boot = nodes[(leader - 1) as usize].bootstrap_servers();
    produce_when_led(&boot, "hw", &batch(&["a"], None), -1);
    assert_eq!(produce(&boot, "hw", &batch(&["b"], None), -1).0, 0);
    // Well inside replica.fetch.wait.max.ms (500): the follower's confirming fetch returned
    // as soon as the leader's high watermark moved. Its shutdown checkpoints what it knows.
    std::thread::sleep(Duration::from_millis(150));
    let follower = leader % 3 + 1;
    drop(nodes.remove((follower - 1) as usize));
    let text = std::fs::read_to_string(
        node_dir(root.path(), follower).join("replication-offset-checkpoint"),
    )
    .unwrap();
    assert!(text.lines().any(|l| l == "hw 0 2"), "{text}");
}

#[test]
fn a_node_never_leads_at_an_epoch_older_than_its_logs() {
    let root = tempfile::tempdir().unwrap();
    {
        let (c, nodes) = cluster(root.path());
        create_topic(&c, "old", 1);
        // Two elections: the partition's epoch reaches 2 and its leader stamps it.
        for _ in 0..2 {
            let (leader, _) = leader_of(&c, "old");
            c.apply(&Command::FenceBroker {
                id: leader,
                epoch: broker_epoch(&c, leader),
            });
            c.apply(&Command::UnfenceBroker {
                id: leader,
                epoch: broker_epoch(&c, leader),
            });
        }
        let (leader, epoch) = leader_of(&c, "old");
        assert_eq!(epoch, 2);
        let boot = nodes[(leader - 1) as usize].bootstrap_servers();
        produce_when_led(&boot, "old", &batch(&["at2"], None), 1);
        for id in 1..=3 {
            wait_for("every replica to hold the epoch-2 batch", || {
                segment(root.path(), id, "old") == segment(root.path(), leader, "old")
            });
        }
    }
    // Metadata that lags the logs (here a fresh controller naming epoch 0): nobody whose log
    // holds epoch 2 takes leadership at epoch 0.
    let (c, nodes) = cluster(root.path());
    create_topic(&c, "old", 1);
    let (leader, epoch) = leader_of(&c, "old");
    assert_eq!(epoch, 0);
    let boot = nodes[(leader - 1) as usize].bootstrap_servers();
    let led_before = events(root.path(), leader, "became_leader").len();
    wait_for("the node to act on the metadata", || {
        events(root.path(), leader, "became_leader").len() > led_before
            || !events(root.path(), leader, "stale_leader_epoch").is_empty()
    });
    assert_eq!(
        events(root.path(), leader, "became_leader").len(),
        led_before
    );
    let stale = &events(root.path(), leader, "stale_leader_epoch")[0];
    assert_eq!(
        (
            stale["leader_epoch"].as_i64(),
            stale["log_leader_epoch"].as_i64()
        ),
        (Some(0), Some(2))
    );
    let (err, _, _) = produce(&boot, "old", &batch(&["at0"], None), 1);
    assert_eq!(err, 6, "refused rather than stamping an older epoch");
}

#[test]
fn a_followers_log_takes_no_transaction_marker_of_its_own() {
    let root = tempfile::tempdir().unwrap();
    let (c, nodes) = cluster(root.path());
    create_topic(&c, "txn", 2);
    let (leader, _) = leader_of(&c, "txn");
    let boot = nodes[(leader - 1) as usize].bootstrap_servers();
    produce_when_led(&boot, "txn", &batch(&["a"], None), -1);
    // A transaction ended on a follower node (its coordinator): the marker must not be
    // written into the follower's own log, where the leader puts its next batch; the
    // coordinator sends it to the partition's leader (WriteTxnMarkers) instead.
    let follower = nodes[(leader % 3) as usize].bootstrap_servers();
    let tid = TransactionalId(StrBytes::from_static_str("stray"));
    let mut init = InitProducerIdRequest::default();
    init.transactional_id = Some(tid.clone());
    init.transaction_timeout_ms = 60_000;
    let ids: InitProducerIdResponse =
        Client::connect(&follower).call(ApiKey::InitProducerId, 1, &init);
    assert_eq!(ids.error_code, 0);
    let mut topic = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default();
    topic.name = name("txn");
    topic.partitions = vec![0];
    let mut add = AddPartitionsToTxnRequest::default();
    add.v3_and_below_transactional_id = tid.clone();
    add.v3_and_below_producer_id = ids.producer_id;
    add.v3_and_below_producer_epoch = ids.producer_epoch;
    add.v3_and_below_topics = vec![topic];
    let _: AddPartitionsToTxnResponse =
        Client::connect(&follower).call(ApiKey::AddPartitionsToTxn, 3, &add);
    let mut end = EndTxnRequest::default();
    end.transactional_id = tid;
    end.producer_id = ids.producer_id;
    end.producer_epoch = ids.producer_epoch;
    end.committed = false;
    let ended: EndTxnResponse = Client::connect(&follower).call(ApiKey::EndTxn, 3, &end);
    assert_eq!(ended.error_code, 0, "the marker is written by the leader");
    assert_eq!(produce(&boot, "txn", &batch(&["b"], None), -1).0, 0);
    let leader_log = segment(root.path(), leader, "txn");
    for id in 1..=3 {
        wait_for("every replica to hold the leader's bytes", || {
            segment(root.path(), id, "txn") == leader_log
        });
    }
}
