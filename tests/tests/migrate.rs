//! `migrate`: data exactly as the Go adapter writes it (records plus the
//! two reference indexes, nothing else) moves from a standalone server in
//! the reference layout to another server in the tagged layout, reads back
//! identical, and a second run copies nothing. A planted difference is
//! reported.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use authsession_driver::core::op::{BatchSize, Policy};
use authsession_driver::core::{codec, IndexScore, KeySpace, Layout, Session};
use authsession_driver::{
    CheckMode, ClusterConfig, ClusterSessionStore, RedisSessionStore, SessionAdmin, SessionStore,
};
use authsession_tests::cluster::RedisCluster;
use authsession_tests::fixtures::{active, revocation, ts, user};
use authsession_tests::{RedisRaw, RedisServer};

/// Writes `sessions` the way the Go adapter does: SET record, ZADD to the
/// all-sessions index, ZADD to the active index when active.
async fn write_like_go(raw: &RedisRaw, keys: &KeySpace, sessions: &[Session]) {
    let mut pipe = redis::pipe();
    for s in sessions {
        let score = IndexScore::of(s.created_at()).to_string();
        pipe.cmd("SET")
            .arg(keys.reference_record_key(s.id()))
            .arg(codec::encode(s))
            .ignore();
        pipe.cmd("ZADD")
            .arg(keys.user_sessions_key(s.user_id()))
            .arg(&score)
            .arg(s.id().as_str())
            .ignore();
        if s.is_active() {
            pipe.cmd("ZADD")
                .arg(keys.user_active_sessions_key(s.user_id()))
                .arg(&score)
                .arg(s.id().as_str())
                .ignore();
        }
    }
    let mut conn = raw.connection();
    let () = pipe.query_async(&mut conn).await.unwrap();
}

fn go_data() -> Vec<Session> {
    let mut sessions = Vec::new();
    // One big user (several pages at batch size 100), two small ones, a
    // same-microsecond tie, revoked sessions.
    for i in 0..250i64 {
        let s = active(
            &format!("big-{i}"),
            "big-user",
            ts(1_700_000_000 + i / 3, (i % 3) * 10),
        );
        sessions.push(if i % 7 == 0 {
            s.revoked(revocation(ts(1_800_000_000, 0))).unwrap()
        } else {
            s
        });
    }
    sessions.push(active("small-1", "alice", ts(1_700_000_000, 5)));
    sessions.push(
        active("small-2", "alice", ts(1_700_000_000, 5))
            .revoked(revocation(ts(1_700_000_100, 0)))
            .unwrap(),
    );
    sessions.push(active("bob-<&>-\u{2028}-x", "bob", ts(1_600_000_000, 1)));
    sessions
}

#[tokio::test]
async fn go_written_data_migrates_to_the_tagged_layout_and_reads_back_identical() {
    let source_server = RedisServer::start();
    let target_server = RedisServer::start();
    let source_keys = KeySpace::with_base("mig:").unwrap();
    let target_keys = KeySpace::with_base_and_layout("mig:", Layout::Tagged).unwrap();
    let policy = Policy {
        batch_size: BatchSize::new(100).unwrap(),
        ..Policy::default()
    };
    let source = RedisSessionStore::connect({
        let mut config = source_server.config(source_keys.clone());
        config.settings.policy = policy;
        config
    })
    .await
    .unwrap();
    let target = RedisSessionStore::connect(target_server.config(target_keys.clone()))
        .await
        .unwrap();
    let data = go_data();
    write_like_go(&source_server.raw().await, &source_keys, &data).await;

    let report = source.migrate_to(&target).await.unwrap();
    assert_eq!(report.users, 3);
    assert_eq!(report.sessions, data.len() as u64);
    assert_eq!(report.copied, data.len() as u64);
    assert!(report.is_identical(), "{:?}", report.differences);

    for s in &data {
        assert_eq!(&target.get(s.id()).await.unwrap(), s);
        assert_eq!(&target.get_for_user(s.user_id(), s.id()).await.unwrap(), s);
    }
    for u in ["big-user", "alice", "bob"] {
        assert_eq!(
            source.list_by_user_id(&user(u)).await.unwrap(),
            target.list_by_user_id(&user(u)).await.unwrap()
        );
        assert_eq!(
            source.count_active_by_user_id(&user(u)).await.unwrap(),
            target.count_active_by_user_id(&user(u)).await.unwrap()
        );
    }
    let report = target.check(CheckMode::Report).await.unwrap();
    assert!(report.is_clean(), "{report:?}");

    // Idempotent: nothing to copy the second time.
    let again = source.migrate_to(&target).await.unwrap();
    assert_eq!(
        (again.copied, again.already_present),
        (0, data.len() as u64)
    );
    assert!(again.is_identical());

    // Resumable: a session missing in the target is copied again; a
    // different one is reported, never overwritten.
    let target_raw = target_server.raw().await;
    let gone = &data[3];
    let _: () = target_raw
        .query(redis::cmd("DEL").arg(target_keys.record_key(gone.user_id(), gone.id())))
        .await;
    let _: () = target_raw
        .query(
            redis::cmd("ZREM")
                .arg(target_keys.user_sessions_key(gone.user_id()))
                .arg(gone.id().as_str()),
        )
        .await;
    let changed = &data[1];
    let other = changed
        .clone()
        .revoked(revocation(ts(1_900_000_000, 0)))
        .unwrap();
    let _: () = target_raw
        .query(
            redis::cmd("SET")
                .arg(target_keys.record_key(changed.user_id(), changed.id()))
                .arg(codec::encode(&other)),
        )
        .await;
    let third = source.migrate_to(&target).await.unwrap();
    assert_eq!(third.copied, 1);
    assert_eq!(third.differences.len(), 1, "{:?}", third.differences);
    assert_eq!(third.differences[0].id, changed.id().as_str());
    assert_eq!(third.differences[0].kind, "differs");
    assert_eq!(target.get(changed.id()).await.unwrap(), other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_written_data_migrates_from_a_standalone_server_to_a_cluster() {
    let source_server = RedisServer::start();
    let cluster = RedisCluster::start();
    let source_keys = KeySpace::with_base("mig:").unwrap();
    let target_keys = KeySpace::with_base_and_layout("mig:", Layout::Tagged).unwrap();
    let source = RedisSessionStore::connect(source_server.config(source_keys.clone()))
        .await
        .unwrap();
    let target = ClusterSessionStore::connect({
        let mut config = ClusterConfig::from_urls(cluster.seed_urls()).unwrap();
        config.settings.key_space = target_keys;
        config
    })
    .await
    .unwrap();
    let data = go_data();
    write_like_go(&source_server.raw().await, &source_keys, &data).await;

    let report = source.migrate_to(&target).await.unwrap();
    assert_eq!((report.users, report.sessions), (3, data.len() as u64));
    assert_eq!(report.copied, data.len() as u64);
    assert!(report.is_identical(), "{:?}", report.differences);
    for s in &data {
        assert_eq!(&target.get(s.id()).await.unwrap(), s);
    }
    for u in ["big-user", "alice", "bob"] {
        assert_eq!(
            source.list_by_user_id(&user(u)).await.unwrap(),
            target.list_by_user_id(&user(u)).await.unwrap()
        );
    }
    let check = target.check(CheckMode::Report).await.unwrap();
    assert!(check.is_clean(), "{check:?}");
    let again = source.migrate_to(&target).await.unwrap();
    assert_eq!(
        (again.copied, again.already_present),
        (0, data.len() as u64)
    );
}
