//! Unit tests of the coordinator's state machine (no network).

use super::*;

fn coordinator() -> (Coordinator, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let offsets = offsets::OffsetStore::open(dir.path()).unwrap();
    (Coordinator::new(offsets, Duration::ZERO), dir)
}

fn params(member_id: &str, version: i16) -> JoinParams {
    JoinParams {
        group_id: "g".into(),
        member_id: member_id.into(),
        instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 6000,
        rebalance_timeout_ms: 10000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
        version,
    }
}

#[tokio::test]
async fn new_members_must_come_back_with_their_id_then_form_a_generation() {
    let (c, _d) = coordinator();
    let first = c.join(params("", 5)).await;
    assert_eq!(first.error, MEMBER_ID_REQUIRED);
    assert!(!first.member_id.is_empty());
    let joined = c.join(params(&first.member_id, 5)).await;
    assert_eq!(joined.error, NONE);
    assert_eq!(joined.generation, 1);
    assert_eq!(joined.leader, first.member_id);
    assert_eq!(joined.members.len(), 1);
    let synced = c
        .sync(
            "g",
            1,
            &first.member_id,
            None,
            vec![(first.member_id.clone(), Bytes::from_static(b"a"))],
        )
        .await;
    assert_eq!(synced.error, NONE);
    assert_eq!(&synced.assignment[..], b"a");
    assert_eq!(c.heartbeat("g", 1, &first.member_id, None), NONE);
    assert_eq!(
        c.heartbeat("g", 0, &first.member_id, None),
        ILLEGAL_GENERATION
    );
    assert_eq!(c.heartbeat("g", 1, "nobody", None), UNKNOWN_MEMBER_ID);
    assert_eq!(c.validate_commit("g", 1, &first.member_id, None), NONE);
    assert_eq!(
        c.validate_commit("g", 2, &first.member_id, None),
        ILLEGAL_GENERATION
    );
}

#[tokio::test]
async fn a_second_member_triggers_a_rebalance_and_both_get_the_next_generation() {
    let (c, _d) = coordinator();
    let c = std::sync::Arc::new(c);
    let a = c.join(params("", 3)).await; // v3: no MEMBER_ID_REQUIRED
    assert_eq!(a.generation, 1);
    c.sync("g", 1, &a.member_id, None, vec![]).await;
    // B joins: the group goes to PreparingRebalance; A learns it from its heartbeat.
    let c2 = c.clone();
    let b = tokio::spawn(async move { c2.join(params("", 3)).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        c.heartbeat("g", 1, &a.member_id, None),
        REBALANCE_IN_PROGRESS
    );
    let a2 = c.join(params(&a.member_id, 3)).await;
    let b = b.await.unwrap();
    assert_eq!(a2.generation, 2);
    assert_eq!(b.generation, 2);
    assert_eq!(a2.leader, a.member_id, "the old leader stays leader");
    assert_eq!(a2.members.len(), 2);
    assert!(b.members.is_empty());
}

#[tokio::test]
async fn an_expired_session_removes_the_member_and_rebalances() {
    let (c, _d) = coordinator();
    let a = c.join(params("", 3)).await;
    c.sync("g", 1, &a.member_id, None, vec![]).await;
    c.tick(Instant::now() + Duration::from_secs(7));
    let d = c.describe("g").unwrap();
    assert!(d.members.is_empty());
    assert_eq!(d.state, "Empty");
}

#[tokio::test]
async fn leaving_empties_the_group_and_simple_commits_are_allowed_then() {
    let (c, _d) = coordinator();
    let a = c.join(params("", 3)).await;
    assert_eq!(c.leave("g", &[(a.member_id.clone(), None)]), vec![NONE]);
    assert_eq!(c.describe("g").unwrap().state, "Empty");
    assert_eq!(c.validate_commit("g", -1, "", None), NONE);
    assert_eq!(
        c.leave("g", &[("ghost".into(), None)]),
        vec![UNKNOWN_MEMBER_ID]
    );
}

#[tokio::test]
async fn a_static_member_rejoining_takes_over_without_a_rebalance() {
    let (c, _d) = coordinator();
    let mut p = params("", 5);
    p.instance_id = Some("i1".into());
    let a = c.join(p.clone()).await;
    assert_eq!(a.error, NONE);
    // The leader (only member) syncs, then a follower static member... keep it simple: one
    // member restarts; as it was leader, a rebalance is needed, but the old id is fenced.
    c.sync("g", a.generation, &a.member_id, Some("i1"), vec![])
        .await;
    let again = c.join(p).await;
    assert_eq!(again.error, NONE);
    assert_ne!(again.member_id, a.member_id);
    assert_eq!(
        c.heartbeat("g", again.generation, &a.member_id, Some("i1")),
        FENCED_INSTANCE_ID
    );
}

#[test]
fn session_timeouts_outside_kafkas_bounds_are_refused() {
    let (c, _d) = coordinator();
    let mut p = params("", 5);
    p.session_timeout_ms = 1000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(c.join(p)).error, INVALID_SESSION_TIMEOUT);
}

#[tokio::test]
async fn dropped_groups_answer_parked_joins_with_not_coordinator_and_are_forgotten() {
    let (c, _d) = coordinator();
    let c = std::sync::Arc::new(c);
    let a = c.join(params("", 5)).await.member_id;
    assert_eq!(c.join(params(&a, 5)).await.error, NONE);
    let b = c.join(params("", 5)).await.member_id;
    // B's join waits for A to rejoin the rebalance it started.
    let parked = tokio::spawn({
        let c = c.clone();
        async move { c.join(params(&b, 5)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!parked.is_finished());
    assert_eq!(c.drop_groups(|g| g == "other"), 0);
    assert_eq!(c.drop_groups(|g| g == "g"), 1);
    let answer = tokio::time::timeout(Duration::from_secs(5), parked)
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(answer.error, NOT_COORDINATOR);
    assert!(c.describe("g").is_none());
}
