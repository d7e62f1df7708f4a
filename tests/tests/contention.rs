//! 64 concurrent writers on ONE user (SPEC §6): creators, single revokers
//! and revoke-all callers interleave. Only expected outcomes, never
//! `contention_exhausted` (or any error), and afterwards every record
//! agrees with both indexes. Bounded by operation count, not time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use authsession_driver::core::{
    RevokeSessionInput, RevokeSessionOutcome, RevokeUserSessionsInput, RevokeUserSessionsOutcome,
    Session,
};
use authsession_driver::{
    CheckMode, MemorySessionStore, RedisSessionStore, SessionAdmin, SessionStore,
};
use authsession_tests::fixtures::{active, fresh_key_space, id, now, revocation, user};
use authsession_tests::RedisServer;

const WORKERS: usize = 64;
const CREATORS: usize = WORKERS / 2;
const OPS_PER_WORKER: usize = 60;
const USER: &str = "the-one-user";

#[derive(Debug, Default)]
struct Tally {
    created: Vec<String>,
    revoked_one: usize,
    already_revoked: usize,
    revoked_all_calls: usize,
    revoked_by_all: usize,
    no_active: usize,
}

async fn hammer<S: SessionStore + Clone + 'static>(store: S) -> Tally {
    let recent: Arc<Mutex<Vec<String>>> = Arc::default();
    let tally: Arc<Mutex<Tally>> = Arc::default();
    let mut tasks = Vec::new();
    for worker in 0..WORKERS {
        let store = store.clone();
        let recent = Arc::clone(&recent);
        let tally = Arc::clone(&tally);
        tasks.push(tokio::spawn(async move {
            for op in 0..OPS_PER_WORKER {
                if worker < CREATORS {
                    let sid = format!("w{worker}-{op}");
                    store
                        .create(&active(&sid, USER, now()))
                        .await
                        .unwrap_or_else(|e| panic!("create {sid}: {} {e}", e.kind().as_str()));
                    recent.lock().unwrap().push(sid.clone());
                    tally.lock().unwrap().created.push(sid);
                } else if op % 4 == 3 {
                    let Some(sid) = recent.lock().unwrap().last().cloned() else {
                        continue;
                    };
                    let input = RevokeSessionInput {
                        device_session_id: id(&sid),
                        revocation: revocation(now()),
                    };
                    let outcome = store
                        .revoke(&input)
                        .await
                        .unwrap_or_else(|e| panic!("revoke {sid}: {} {e}", e.kind().as_str()));
                    assert!(outcome.is_consistent());
                    let mut t = tally.lock().unwrap();
                    match outcome {
                        RevokeSessionOutcome::Revoked(_) => t.revoked_one += 1,
                        RevokeSessionOutcome::AlreadyRevoked(_) => t.already_revoked += 1,
                        other => panic!("unexpected {other:?}"),
                    }
                } else {
                    let input = RevokeUserSessionsInput {
                        user_id: user(USER),
                        revocation: revocation(now()),
                    };
                    let outcome = store
                        .revoke_all_by_user_id(&input)
                        .await
                        .unwrap_or_else(|e| panic!("revoke_all: {} {e}", e.kind().as_str()));
                    assert!(outcome.is_consistent_for(&input.user_id), "{outcome:?}");
                    // Existence decides: a session created after `at` by a
                    // creator's clock is revoked at its own creation time.
                    let at = input.revocation.at();
                    assert!(outcome.sessions().iter().all(|s| s
                        .revocation()
                        .is_some_and(|r| r.at() == s.created_at().max(at))));
                    let mut t = tally.lock().unwrap();
                    t.revoked_all_calls += 1;
                    match outcome {
                        RevokeUserSessionsOutcome::Revoked(s) => t.revoked_by_all += s.len(),
                        RevokeUserSessionsOutcome::NoActiveSessions => t.no_active += 1,
                        other => panic!("unexpected {other:?}"),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("worker finished without error");
    }
    Arc::try_unwrap(tally).unwrap().into_inner().unwrap()
}

/// After the load: the audit is clean, every created session is listed
/// exactly once, and the active count matches the listed statuses.
async fn assert_consistent<S: SessionStore + SessionAdmin>(store: &S, tally: &Tally) {
    let report = store.check(CheckMode::Report).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    let listed: Vec<Session> = store.list_by_user_id(&user(USER)).await.unwrap();
    let mut listed_ids: Vec<&str> = listed.iter().map(|s| s.id().as_str()).collect();
    listed_ids.sort_unstable();
    let mut created: Vec<&str> = tally.created.iter().map(String::as_str).collect();
    created.sort_unstable();
    assert_eq!(listed_ids, created);
    let active_now = listed.iter().filter(|s| s.is_active()).count();
    let count = store.count_active_by_user_id(&user(USER)).await.unwrap();
    assert_eq!(count, u64::try_from(active_now).unwrap());
    // Every revocation reported happened exactly once.
    let revoked_now = listed.len() - active_now;
    assert_eq!(
        revoked_now,
        tally.revoked_one + tally.revoked_by_all,
        "{tally:?}"
    );
    assert_eq!(report.records, listed.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_writers_on_one_user_redis() {
    let server = RedisServer::start();
    let config = {
        let mut config = server.config(fresh_key_space("contention"));
        // A generous deadline: this machine may be busy compiling; the
        // point is that the retry *count* is never exhausted.
        config.settings.operation_timeout = Duration::from_secs(20);
        config
    };
    let store = RedisSessionStore::connect(config).await.unwrap();
    let tally = hammer(store.clone()).await;
    assert_eq!(tally.created.len(), CREATORS * OPS_PER_WORKER);
    assert!(
        tally.revoked_all_calls > 0 && tally.revoked_by_all > 0,
        "{tally:?}"
    );
    assert_consistent(&store, &tally).await;

    // Purge walks many SCAN pages and UNLINK batches: every record plus
    // the all-sessions index, plus the active index if not empty (no
    // retention: no revoked index).
    let active = store.count_active_by_user_id(&user(USER)).await.unwrap();
    let expected = tally.created.len() + 1 + usize::from(active > 0);
    assert_eq!(
        store.purge().await.unwrap(),
        u64::try_from(expected).unwrap()
    );
    assert_eq!(store.check(CheckMode::Report).await.unwrap().records, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_writers_on_one_user_memory() {
    // Shared through `Arc` (itself a store) rather than `Clone`.
    let store = Arc::new(MemorySessionStore::new(fresh_key_space(
        "contention-memory",
    )));
    let tally = hammer(Arc::clone(&store)).await;
    assert_eq!(tally.created.len(), CREATORS * OPS_PER_WORKER);
    assert_consistent(&store, &tally).await;
}
