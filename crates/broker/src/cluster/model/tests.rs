//! The election and ISR rules of `ClusterMetadata::apply`, one scenario each.

use super::*;

fn three_nodes() -> ClusterMetadata {
    let mut m = ClusterMetadata::default();
    for id in 1..=3 {
        m.apply(&Command::RegisterBroker {
            id,
            host: "127.0.0.1".into(),
            port: 9000 + id,
            peer: None,
        });
    }
    m
}

fn create(m: &mut ClusterMetadata, name: &str, partitions: i32, rf: i32) -> Reply {
    m.apply(&Command::CreateTopic {
        name: name.into(),
        partitions,
        replication_factor: rf,
        min_insync_replicas: 2.min(rf),
        configs: BTreeMap::new(),
    })
    .0
}

#[test]
fn topics_spread_leaders_and_replicas() {
    let mut m = three_nodes();
    assert_eq!(create(&mut m, "t", 3, 3), Reply::Ok);
    let leaders: Vec<_> = m.topics["t"].partitions.iter().map(|p| p.leader).collect();
    assert_eq!(leaders, vec![1, 2, 3]);
    assert!(m.topics["t"]
        .partitions
        .iter()
        .all(|p| p.isr.len() == 3 && p.leader_epoch == 0));
    assert_ne!(m.topics["t"].id, [0; 16]);
}

#[test]
fn replication_factor_above_live_brokers_is_refused() {
    let mut m = three_nodes();
    let (r, _) = m.apply(&Command::FenceBroker { id: 3, epoch: 1 });
    assert_eq!(r, Reply::Ok);
    assert!(matches!(
        create(&mut m, "t", 1, 3),
        Reply::Error(code::INVALID_REPLICATION_FACTOR, _)
    ));
    let (r, _) = m.apply(&Command::CreateTopic {
        name: "u".into(),
        partitions: 1,
        replication_factor: 2,
        min_insync_replicas: 3,
        configs: BTreeMap::new(),
    });
    assert!(matches!(r, Reply::Error(code::INVALID_CONFIG, _)));
}

#[test]
fn fencing_the_leader_elects_from_the_isr_and_bumps_the_epoch() {
    let mut m = three_nodes();
    create(&mut m, "t", 1, 3);
    let (_, changes) = m.apply(&Command::FenceBroker { id: 1, epoch: 1 });
    let p = m.partition("t", 0).unwrap();
    assert_eq!(p.leader, 2);
    assert_eq!(p.leader_epoch, 1);
    assert_eq!(p.isr, vec![2, 3]);
    assert!(changes.iter().any(|c| matches!(
        c,
        Change::Elected {
            leader: 2,
            leader_epoch: 1,
            ..
        }
    )));
    assert!(changes
        .iter()
        .any(|c| matches!(c, Change::IsrShrink { .. })));
}

#[test]
fn the_last_isr_member_stays_and_leads_again_when_back() {
    let mut m = three_nodes();
    create(&mut m, "t", 1, 3);
    m.apply(&Command::FenceBroker { id: 1, epoch: 1 });
    m.apply(&Command::FenceBroker { id: 2, epoch: 1 });
    m.apply(&Command::FenceBroker { id: 3, epoch: 1 });
    let p = m.partition("t", 0).unwrap().clone();
    assert_eq!((p.leader, p.isr.clone()), (NO_LEADER, vec![3]));
    // Broker 1 comes back: not in the ISR, so the partition stays offline (clean election).
    m.apply(&Command::RegisterBroker {
        id: 1,
        host: "h".into(),
        port: 1,
        peer: None,
    });
    assert_eq!(m.partition("t", 0).unwrap().leader, NO_LEADER);
    // Broker 3, the last ISR member, comes back and leads at a higher epoch.
    m.apply(&Command::UnfenceBroker { id: 3, epoch: 1 });
    let q = m.partition("t", 0).unwrap();
    assert_eq!(q.leader, 3);
    assert!(q.leader_epoch > p.leader_epoch);
}

#[test]
fn unclean_election_takes_any_live_replica_when_turned_on() {
    let mut m = three_nodes();
    create(&mut m, "t", 1, 3);
    for id in 1..=3 {
        m.apply(&Command::FenceBroker { id, epoch: 1 });
    }
    m.apply(&Command::RegisterBroker {
        id: 1,
        host: "h".into(),
        port: 1,
        peer: None,
    });
    let (_, changes) = m.apply(&Command::SetUncleanLeaderElection { enabled: true });
    let p = m.partition("t", 0).unwrap();
    assert_eq!((p.leader, p.isr.clone()), (1, vec![1]));
    assert!(changes
        .iter()
        .any(|c| matches!(c, Change::Elected { unclean: true, .. })));
}

#[test]
fn a_restart_fences_the_old_incarnation_first() {
    let mut m = three_nodes();
    create(&mut m, "t", 1, 3);
    let (r, _) = m.apply(&Command::RegisterBroker {
        id: 1,
        host: "h".into(),
        port: 1,
        peer: None,
    });
    assert_eq!(r, Reply::BrokerEpoch(2));
    let p = m.partition("t", 0).unwrap();
    assert_eq!(p.leader, 2, "the restarted broker's partitions moved away");
    assert_eq!(p.isr, vec![2, 3], "it rejoins the ISR only once caught up");
    let (r, _) = m.apply(&Command::FenceBroker { id: 1, epoch: 1 });
    assert!(matches!(r, Reply::Error(code::STALE_BROKER_EPOCH, _)));
}

#[test]
fn controlled_shutdown_moves_leadership_and_leaves_the_isr() {
    let mut m = three_nodes();
    create(&mut m, "t", 3, 3);
    m.apply(&Command::ControlledShutdown { id: 2, epoch: 1 });
    for p in &m.topics["t"].partitions {
        assert_ne!(p.leader, 2);
        assert!(!p.isr.contains(&2));
    }
    assert!(!m.is_available(2));
}

#[test]
fn alter_partition_checks_epochs_and_eligibility() {
    let mut m = three_nodes();
    create(&mut m, "t", 1, 3);
    let shrink = Command::AlterPartition {
        topic: "t".into(),
        partition: 0,
        leader: 1,
        leader_epoch: 0,
        partition_epoch: 0,
        isr: vec![1, 2],
    };
    let (r, changes) = m.apply(&shrink);
    assert_eq!(r, Reply::PartitionEpoch(1));
    assert!(matches!(changes[0], Change::IsrShrink { .. }));
    // The same request again names a stale partition epoch.
    assert!(matches!(
        m.apply(&shrink).0,
        Reply::Error(code::INVALID_UPDATE_VERSION, _)
    ));
    // Expanding to a fenced broker is refused.
    m.apply(&Command::FenceBroker { id: 3, epoch: 1 });
    let expand = Command::AlterPartition {
        topic: "t".into(),
        partition: 0,
        leader: 1,
        leader_epoch: 0,
        partition_epoch: 1,
        isr: vec![1, 2, 3],
    };
    assert!(matches!(
        m.apply(&expand).0,
        Reply::Error(code::INELIGIBLE_REPLICA, _)
    ));
    // A deposed leader is fenced by its epoch.
    m.apply(&Command::FenceBroker { id: 1, epoch: 1 });
    let stale = Command::AlterPartition {
        topic: "t".into(),
        partition: 0,
        leader: 1,
        leader_epoch: 0,
        partition_epoch: 2,
        isr: vec![1, 2],
    };
    assert!(matches!(
        m.apply(&stale).0,
        Reply::Error(code::FENCED_LEADER_EPOCH, _)
    ));
}

#[test]
fn producer_id_blocks_never_overlap() {
    let mut m = ClusterMetadata::default();
    let (a, _) = m.apply(&Command::AllocateProducerIds { count: 1000 });
    let (b, _) = m.apply(&Command::AllocateProducerIds { count: 1000 });
    assert_eq!(
        a,
        Reply::ProducerIds {
            first: 1000,
            count: 1000
        }
    );
    assert_eq!(
        b,
        Reply::ProducerIds {
            first: 2000,
            count: 1000
        }
    );
}

#[test]
fn a_broker_registered_with_a_peer_endpoint_keeps_it_apart_from_the_client_one() {
    let mut m = ClusterMetadata::default();
    m.apply(&Command::RegisterBroker {
        id: 1,
        host: "127.0.0.1".into(),
        port: 9001,
        peer: Some(Endpoint {
            host: "127.0.0.1".into(),
            port: 9101,
        }),
    });
    let b = &m.brokers[&1];
    assert_eq!((b.host.as_str(), b.port), ("127.0.0.1", 9001));
    assert_eq!(b.peer_endpoint(), ("127.0.0.1", 9101));
}

#[test]
fn metadata_written_before_peer_endpoints_loads_with_the_client_endpoint_for_peers() {
    // A broker record and a RegisterBroker command as logs held them before `peer` existed.
    let old =
        r#"{"id":2,"host":"127.0.0.1","port":9002,"epoch":3,"fenced":false,"shutting_down":false}"#;
    let b: BrokerRecord = serde_json::from_str(old).unwrap();
    assert_eq!(b.peer_endpoint(), ("127.0.0.1", 9002));
    let cmd = r#"{"RegisterBroker":{"id":2,"host":"127.0.0.1","port":9002}}"#;
    let mut m = ClusterMetadata::default();
    m.apply(&serde_json::from_str::<Command>(cmd).unwrap());
    assert_eq!(m.brokers[&2].peer_endpoint(), ("127.0.0.1", 9002));
}
