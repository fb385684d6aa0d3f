//! librdkafka against three in-process replicated nodes (one `LocalController`): an
//! idempotent acks=all producer with compression, a consumer reading everything back
//! exactly once, and the three replicas' segment files byte-identical. The partition's
//! leader is node 1 and the client bootstraps from it (the cluster-wide Metadata is another
//! branch's; node 1's answer names itself the leader, which it is).

mod broker_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use broker_support::*;
use kbench_broker::cluster::local::start_nodes;
use kbench_broker::cluster::{Command, Reply};
use kbench_broker::BrokerConfig;

fn segment(root: &std::path::Path, id: i32, topic: &str) -> Vec<u8> {
    std::fs::read(root.join(format!("node-{id}/{topic}-0/{:020}.log", 0))).unwrap_or_default()
}

#[test]
fn an_idempotent_acks_all_producer_is_replicated_byte_for_byte_and_read_back_once() {
    let root = tempfile::tempdir().unwrap();
    let base = BrokerConfig {
        data_dir: Some(root.path().to_path_buf()),
        ..BrokerConfig::embedded()
    };
    let (c, nodes) = start_nodes(3, base).unwrap();
    let reply = c.apply(&Command::CreateTopic {
        name: "rk".into(),
        partitions: 1,
        replication_factor: 3,
        min_insync_replicas: 2,
        configs: BTreeMap::new(),
    });
    assert_eq!(reply, Reply::Ok);
    let md = c.watch().borrow().clone();
    assert_eq!(md.partition("rk", 0).unwrap().leader, 1);
    let boot = nodes[0].bootstrap_servers();
    let vals = values("rk", 3000);
    let settings = [
        ("acks", "all"),
        ("enable.idempotence", "true"),
        ("compression.type", "lz4"),
    ];
    assert_eq!(produce(&boot, "rk", &vals, &settings), (vals.len(), 0));
    let seen = consume(
        &boot,
        "rk",
        "g-rk",
        vals.len(),
        Duration::from_secs(30),
        &[],
    );
    assert_exactly_once(&vals, &seen);
    let leader = segment(root.path(), 1, "rk");
    assert!(leader.len() > 10_000);
    let deadline = Instant::now() + Duration::from_secs(10);
    for id in 2..=3 {
        while segment(root.path(), id, "rk") != leader {
            assert!(
                Instant::now() < deadline,
                "node {id} differs from the leader"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
