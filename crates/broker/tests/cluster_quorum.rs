//! The metadata quorum with three in-process voters on loopback (free ports, temp dirs,
//! short timeouts): agreement with writes forwarded from followers, fencing of a silent
//! node and its return with a higher epoch, controller failover, a full restart, controlled
//! shutdown, and a data dir of another node refused.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kbench_broker::cluster::config::Voter;
use kbench_broker::cluster::model::{Change, ClusterMetadata, Command, NodeId, Reply};
use kbench_broker::cluster::quorum::Quorum;
use kbench_broker::cluster::{ClusterConfig, EventLog};

const SESSION: Duration = Duration::from_millis(1500);

struct Cluster {
    dirs: Vec<tempfile::TempDir>,
    cfgs: Vec<ClusterConfig>,
    nodes: Vec<Option<Arc<Quorum>>>,
}

/// `n` loopback ports free right now (all bound at once, so they differ).
fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

fn config(id: NodeId, voters: &[Voter]) -> ClusterConfig {
    let mut c = ClusterConfig::new(id, voters.to_vec());
    c.session_timeout = SESSION;
    c.heartbeat_interval = Duration::from_millis(250);
    c.quorum_heartbeat_interval = Duration::from_millis(100);
    c.quorum_election_timeout = Duration::from_millis(300);
    c.quorum_start_timeout = Duration::from_secs(15);
    c
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        let voters: Vec<Voter> = free_ports(n)
            .into_iter()
            .enumerate()
            .map(|(i, p)| Voter {
                id: i as NodeId + 1,
                addr: ([127, 0, 0, 1], p).into(),
            })
            .collect();
        Cluster {
            dirs: (0..n).map(|_| tempfile::tempdir().unwrap()).collect(),
            cfgs: (1..=n as NodeId).map(|id| config(id, &voters)).collect(),
            nodes: (0..n).map(|_| None).collect(),
        }
    }

    fn start_node(
        &self,
        i: usize,
    ) -> impl std::future::Future<Output = anyhow::Result<Arc<Quorum>>> + Send + 'static {
        let (cfg, dir) = (self.cfgs[i].clone(), self.dirs[i].path().to_path_buf());
        async move {
            let events = EventLog::open(&dir, cfg.node_id)?;
            let port = 9000 + cfg.node_id;
            Quorum::start(&cfg, &dir, "127.0.0.1".into(), port, events).await
        }
    }

    /// Starts every node that is down, concurrently (each waits for a majority).
    async fn start_all(&mut self) {
        let starts: Vec<_> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_none())
            .map(|i| (i, tokio::spawn(self.start_node(i))))
            .collect();
        for (i, t) in starts {
            let q = t.await.unwrap();
            self.nodes[i] =
                Some(q.unwrap_or_else(|e| panic!("node {} did not start: {e:#}", i + 1)));
        }
    }

    fn node(&self, i: usize) -> &Arc<Quorum> {
        self.nodes[i].as_ref().expect("running")
    }

    fn running(&self) -> impl Iterator<Item = &Arc<Quorum>> {
        self.nodes.iter().flatten()
    }

    async fn stop(&mut self, i: usize) {
        if let Some(q) = self.nodes[i].take() {
            q.shutdown().await;
        }
    }

    async fn stop_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i).await;
        }
    }

    /// The index of the running node that is the active controller, waiting for one.
    async fn controller(&self, within: Duration) -> usize {
        let found = wait_until(within, || {
            (0..self.nodes.len()).find(|i| {
                self.nodes[*i]
                    .as_ref()
                    .is_some_and(|q| q.is_active_controller())
            })
        })
        .await;
        found.expect("an active controller")
    }
}

/// Polls `f` every 20 ms until it gives `Some`, at most `within`.
async fn wait_until<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn create_topic(name: &str, partitions: i32) -> Command {
    Command::CreateTopic {
        name: name.into(),
        partitions,
        replication_factor: 3,
        min_insync_replicas: 2,
        configs: BTreeMap::new(),
    }
}

/// (partition, leader, leader epoch) of every partition of `topic`.
fn leaders(md: &ClusterMetadata, topic: &str) -> Vec<(usize, NodeId, i32)> {
    md.topics[topic]
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| (i, p.leader, p.leader_epoch))
        .collect()
}

async fn all_registered(c: &Cluster) {
    let ok = wait_until(Duration::from_secs(5), || {
        c.running()
            .all(|q| q.metadata().brokers.values().filter(|b| !b.fenced).count() == 3)
            .then_some(())
    })
    .await;
    assert!(ok.is_some(), "every node sees 3 live brokers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_a_follower_is_forwarded_and_every_node_agrees() {
    let mut c = Cluster::new(3);
    c.start_all().await;
    all_registered(&c).await;
    let leader = c.controller(Duration::from_secs(5)).await;
    let follower = (leader + 1) % 3;
    let handle = c.node(follower).handle();
    let reply = handle
        .controller
        .submit(create_topic("t", 3))
        .await
        .unwrap();
    assert_eq!(reply, Reply::Ok);
    // Applied on the proposer before submit returned.
    assert_eq!(handle.current().topics["t"].partitions.len(), 3);
    let same = wait_until(Duration::from_secs(5), || {
        let first = c.node(0).metadata();
        c.running().all(|q| *q.metadata() == *first).then_some(())
    })
    .await;
    assert!(same.is_some(), "all nodes hold the same metadata");
    // A second creation is refused by the model, through the forwarding path too.
    let again = handle
        .controller
        .submit(create_topic("t", 3))
        .await
        .unwrap();
    assert!(matches!(again, Reply::Error(36, _)), "{again:?}");
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_live_broker_is_unfenced_and_a_stale_one_registers_again() {
    let mut c = Cluster::new(3);
    c.start_all().await;
    all_registered(&c).await;
    let leader = c.controller(Duration::from_secs(5)).await;
    let target = (leader + 1) % 3;
    let id = target as NodeId + 1;
    let epoch = c.node(target).broker_epoch();
    let ctl = c.node(leader).handle().controller.clone();
    // Fenced while it still heartbeats (as after a pause): its next heartbeat unfences it.
    let r = ctl
        .submit(Command::FenceBroker { id, epoch })
        .await
        .unwrap();
    assert_eq!(r, Reply::Ok);
    assert!(c.node(leader).metadata().brokers[&id].fenced);
    let unfenced = wait_until(Duration::from_secs(3), || {
        (!c.node(leader).metadata().brokers[&id].fenced).then_some(())
    })
    .await;
    assert!(
        unfenced.is_some(),
        "a heartbeat with the current epoch unfences"
    );
    // Another registration of its id makes its epoch stale: it registers itself again.
    let r = ctl
        .submit(Command::RegisterBroker {
            id,
            host: "elsewhere".into(),
            port: 1,
            peer: None,
        })
        .await
        .unwrap();
    let Reply::BrokerEpoch(usurper) = r else {
        panic!("{r:?}")
    };
    let back = wait_until(Duration::from_secs(3), || {
        let md = c.node(leader).metadata();
        let b = &md.brokers[&id];
        (b.host == "127.0.0.1" && b.epoch > usurper && c.node(target).broker_epoch() == b.epoch)
            .then_some(())
    })
    .await;
    assert!(
        back.is_some(),
        "the stale broker registered again with its own address"
    );
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_is_fenced_its_partitions_move_and_it_returns_with_a_higher_epoch() {
    let mut c = Cluster::new(3);
    c.start_all().await;
    all_registered(&c).await;
    let leader = c.controller(Duration::from_secs(5)).await;
    let handle = c.node(leader).handle();
    assert_eq!(
        handle
            .controller
            .submit(create_topic("t", 3))
            .await
            .unwrap(),
        Reply::Ok
    );
    let victim = (leader + 1) % 3;
    let victim_id = victim as NodeId + 1;
    let old_epoch = c.node(victim).broker_epoch();
    let before = leaders(&c.node(leader).metadata(), "t");
    assert!(before.iter().any(|(_, l, _)| *l == victim_id), "{before:?}");

    c.stop(victim).await;
    let t0 = Instant::now();
    let fenced = wait_until(SESSION + Duration::from_secs(3), || {
        c.running()
            .all(|q| q.metadata().brokers[&victim_id].fenced)
            .then_some(t0.elapsed())
    })
    .await
    .expect("the silent node is fenced on every running node");
    eprintln!("fenced {fenced:?} after it stopped (session {SESSION:?})");
    assert!(
        fenced <= SESSION + Duration::from_millis(1500),
        "fenced after {fenced:?}"
    );
    for q in c.running() {
        let after = leaders(&q.metadata(), "t");
        for ((_, l0, e0), (_, l1, e1)) in before.iter().zip(&after) {
            assert_ne!(*l1, victim_id, "{after:?}");
            if *l0 == victim_id {
                assert!(e1 > e0, "new leader epoch {e1} > {e0}");
            }
        }
        assert_eq!(q.fenced_brokers(), 1);
    }
    let survivors = leaders(&c.node(leader).metadata(), "t");

    // Back from its data dir: epochs never below what it knew, a new broker epoch.
    c.nodes[victim] = Some(c.start_node(victim).await.unwrap());
    let back = c.node(victim);
    assert!(
        back.broker_epoch() > old_epoch,
        "{} > {old_epoch}",
        back.broker_epoch()
    );
    for ((_, _, e0), (_, _, e1)) in before.iter().zip(leaders(&back.metadata(), "t")) {
        assert!(e1 >= *e0, "after restart epoch {e1} >= {e0}");
    }
    let caught_up = wait_until(Duration::from_secs(5), || {
        let md = back.metadata();
        let now = leaders(&md, "t");
        (!md.brokers[&victim_id].fenced && now.iter().zip(&survivors).all(|(a, b)| a.2 >= b.2))
            .then_some(())
    })
    .await;
    assert!(
        caught_up.is_some(),
        "the restarted node catches up and is live"
    );
    assert_eq!(
        c.node(leader).metadata().brokers[&victim_id].epoch,
        back.broker_epoch()
    );
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_raft_leader_elects_a_new_active_controller_and_writes_go_on() {
    let mut c = Cluster::new(3);
    c.start_all().await;
    all_registered(&c).await;
    let leader = c.controller(Duration::from_secs(5)).await;
    c.stop(leader).await;
    let t0 = Instant::now();
    // Proposed at once, during the election: it retries until a new leader commits it.
    let during = c.node((leader + 1) % 3).handle();
    let during =
        tokio::spawn(async move { during.controller.submit(create_topic("during", 1)).await });
    let next = c.controller(Duration::from_secs(5)).await;
    assert_ne!(next, leader);
    let took = t0.elapsed();
    eprintln!("a new active controller {took:?} after the old one stopped");
    assert!(
        took < Duration::from_secs(4),
        "a new controller after {took:?}"
    );
    let other = (0..3).find(|i| *i != leader && *i != next).unwrap();
    let reply = c
        .node(other)
        .handle()
        .controller
        .submit(create_topic("after", 2))
        .await;
    assert_eq!(reply.unwrap(), Reply::Ok);
    assert_eq!(during.await.unwrap().unwrap(), Reply::Ok);
    // The new controller gave the old one a full session, then fenced it.
    let fenced = wait_until(SESSION + Duration::from_secs(3), || {
        c.node(next).metadata().brokers[&(leader as NodeId + 1)]
            .fenced
            .then_some(())
    })
    .await;
    assert!(fenced.is_some(), "the dead controller's broker is fenced");
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_restart_keeps_the_metadata_and_epochs_only_grow() {
    let mut c = Cluster::new(3);
    c.start_all().await;
    all_registered(&c).await;
    let h = c.node(0).handle();
    assert_eq!(
        h.controller.submit(create_topic("kept", 4)).await.unwrap(),
        Reply::Ok
    );
    let before = c.node(0).metadata();
    let epochs: Vec<i64> = (0..3).map(|i| c.node(i).broker_epoch()).collect();
    c.stop_all().await;

    // A crash mid-append leaves a torn record at the tail of node 1's log: cut at start.
    let log = c.dirs[0].path().join("__cluster_metadata/log.bin");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(&[0, 0, 0, 99, 1, 2, 3]);
    std::fs::write(&log, bytes).unwrap();
    // Restarted with unclean leader election on: the flag reaches the metadata.
    for cfg in &mut c.cfgs {
        cfg.unclean_leader_election = true;
    }
    c.start_all().await;
    let flag = wait_until(Duration::from_secs(3), || {
        c.running()
            .all(|q| q.metadata().unclean_leader_election)
            .then_some(())
    })
    .await;
    assert!(
        flag.is_some(),
        "unclean.leader.election.enable applied on every node"
    );
    // Its own RegisterBroker comes after the CreateTopic in the log, so every node that
    // started has applied the topic too.
    for (i, old) in epochs.iter().enumerate() {
        let q = c.node(i);
        let now = q.broker_epoch();
        assert!(now > *old, "node {} epoch {now} > {old}", i + 1);
        let md = q.metadata();
        assert_eq!(md.topics["kept"].id, before.topics["kept"].id);
        for ((_, _, e0), (_, _, e1)) in leaders(&before, "kept").iter().zip(leaders(&md, "kept")) {
            assert!(e1 >= *e0, "epoch {e1} >= {e0}");
        }
    }
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controlled_shutdown_moves_leaderships_away_and_logs_its_steps() {
    let mut c = Cluster::new(3);
    c.start_all().await;
    all_registered(&c).await;
    let h = c.node(0).handle();
    assert_eq!(
        h.controller.submit(create_topic("t", 3)).await.unwrap(),
        Reply::Ok
    );
    let q = c.node(1).clone();
    // Submitted on node 1, applied there at once (node 0 may lag behind).
    let reply = q
        .handle()
        .controller
        .submit(create_topic("t2", 3))
        .await
        .unwrap();
    assert_eq!(reply, Reply::Ok);
    assert!(leaders(&q.metadata(), "t2").iter().any(|(_, l, _)| *l == 2));
    let mut changes = q.changes();
    let report = q.controlled_shutdown(Duration::from_secs(5)).await.unwrap();
    let seen = std::iter::from_fn(|| changes.try_recv().ok())
        .any(|ch| ch == Change::ControlledShutdown { node: 2 });
    assert!(seen, "the change reached the subscribers");
    assert_eq!(report.leaders_left, 0);
    assert!(leaders(&q.metadata(), "t2").iter().all(|(_, l, _)| *l != 2));
    let events = std::fs::read_to_string(c.dirs[1].path().join(EventLog::FILE)).unwrap();
    let names: Vec<String> = events
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let req = names
        .iter()
        .position(|n| n == "controlled_shutdown_requested")
        .expect("requested");
    let done = names
        .iter()
        .position(|n| n == "controlled_shutdown_done")
        .expect("done");
    assert!(req < done, "{names:?}");
    assert!(names.iter().any(|n| n == "elected"), "{names:?}");
    c.stop_all().await;
}

#[tokio::test]
async fn a_data_dir_of_another_node_is_refused_before_anything_is_written() {
    let c = Cluster::new(3);
    kbench_broker::cluster::quorum::meta_properties::write_if_absent(c.dirs[0].path(), &c.cfgs[0])
        .unwrap();
    let events = EventLog::disabled(2);
    let e = Quorum::start(
        &c.cfgs[1],
        c.dirs[0].path(),
        "127.0.0.1".into(),
        9002,
        events,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("--data-dir") && e.contains("--node-id 2"), "{e}");
    assert!(!c.dirs[0].path().join("__cluster_metadata").exists());
}

#[tokio::test]
async fn a_node_without_a_majority_gives_up_and_says_how_many_voters_answered() {
    let mut c = Cluster::new(3);
    c.cfgs[0].quorum_start_timeout = Duration::from_millis(800);
    let e = c.start_node(0).await.unwrap_err().to_string();
    assert!(e.contains("1 of 3 voters answered"), "{e}");
    assert!(e.contains("--controller-quorum"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_a_purged_log_gets_the_snapshot_and_restarts_from_it() {
    let mut c = Cluster::new(3);
    c.start_all().await;
    all_registered(&c).await;
    let leader = c.controller(Duration::from_secs(5)).await;
    let victim = (leader + 1) % 3;
    c.stop(victim).await;
    let h = c.node(leader).handle();
    for name in ["s1", "s2"] {
        assert_eq!(
            h.controller.submit(create_topic(name, 2)).await.unwrap(),
            Reply::Ok
        );
    }
    let purged = c
        .node(leader)
        .compact_now(Duration::from_secs(5))
        .await
        .unwrap();
    assert!(purged > 0);
    // The entries it lacks are gone from the leader's log: it must install the snapshot.
    c.nodes[victim] = Some(c.start_node(victim).await.unwrap());
    let md = c.node(victim).metadata();
    assert!(
        md.topics.contains_key("s1") && md.topics.contains_key("s2"),
        "{:?}",
        md.topics.keys()
    );
    let events = std::fs::read_to_string(c.dirs[victim].path().join(EventLog::FILE)).unwrap();
    assert!(events.contains("metadata_snapshot_installed"), "{events}");
    // Restarted again, it starts from its own snapshot (and the log after it).
    c.node(victim)
        .compact_now(Duration::from_secs(5))
        .await
        .unwrap();
    c.stop(victim).await;
    c.nodes[victim] = Some(c.start_node(victim).await.unwrap());
    let again = c.node(victim).metadata();
    assert_eq!(again.topics["s1"], md.topics["s1"]);
    c.stop_all().await;
}
