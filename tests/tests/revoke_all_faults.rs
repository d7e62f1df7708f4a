//! `revoke all` under real faults: connections dropped again and again
//! (`CLIENT KILL TYPE normal` from a second connection) and a server
//! restarted on the same port, mid-run. Every batch is idempotent, so the
//! store retries while it makes progress: the call ends with no session
//! that existed at its start still active — or, given up, with an error
//! saying how many it revoked. The faults are driven from the progress
//! callback (a round trip of ours after a batch), never by sleeping.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;
use std::time::Duration;

use authsession_driver::core::op::{BatchSize, Policy};
use authsession_driver::{
    CheckMode, RedisSessionStore, RevokeAllOptions, SessionAdmin, SessionStore,
};
use authsession_tests::fixtures::{active, fresh_key_space, revoke_all_input, ts, user};
use authsession_tests::{RedisRaw, RedisServer};
use tokio::sync::mpsc;

async fn store_with_batch(server: &RedisServer, tag: &str, batch: usize) -> RedisSessionStore {
    let mut config = server.config(fresh_key_space(tag));
    config.settings.policy = Policy {
        batch_size: BatchSize::new(batch).unwrap(),
        ..Policy::default()
    };
    RedisSessionStore::connect(config).await.unwrap()
}

/// Creates `n` active sessions of `user_text`, eight writers at a time.
async fn load(store: &RedisSessionStore, user_text: &str, n: usize) {
    let store = Arc::new(store.clone());
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = Arc::clone(&store);
        let user_text = user_text.to_owned();
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(8) {
                let s = active(&format!("s{i:05}"), &user_text, ts(i as i64, 0));
                store.create(&s).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Kills every normal client but its own each time the revoked count
/// passes another `every`; returns how many connections it killed.
fn killer(raw: RedisRaw, every: u64) -> (mpsc::UnboundedSender<u64>, tokio::task::JoinHandle<i64>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
    let task = tokio::spawn(async move {
        let mut next = every;
        let mut killed = 0i64;
        while let Some(done) = rx.recv().await {
            if done >= next {
                next = done + every;
                let n: i64 = raw
                    .query(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal"))
                    .await;
                killed += n;
            }
        }
        killed
    });
    (tx, task)
}

async fn assert_all_revoked(store: &RedisSessionStore, user_text: &str, n: usize) {
    let u = user(user_text);
    assert_eq!(store.count_active_by_user_id(&u).await.unwrap(), 0);
    let sessions = store.list_by_user_id(&u).await.unwrap();
    assert_eq!(sessions.len(), n);
    assert!(sessions.iter().all(|s| !s.is_active()));
    let report = store.check(CheckMode::Report).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_retried_while_batches_progress() {
    const N: usize = 3_000;
    let server = RedisServer::start();
    let store = store_with_batch(&server, "revoke-all-kill", 1).await;
    load(&store, "u", N).await;

    let (tx, kills) = killer(server.raw().await, 250);
    let options = RevokeAllOptions::new().on_progress(move |done| {
        let _ = tx.send(done);
    });
    let report = store
        .revoke_all_with(&revoke_all_input("u", ts(0, 0)), &options)
        .await
        .unwrap();
    drop(options);
    let killed = kills.await.unwrap();
    eprintln!(
        "revoked {} in {} batches; {killed} connection(s) killed",
        report.count, report.batches
    );
    // Each kill cost the store its connection mid-run at least once.
    assert!(killed >= 5, "{killed} kills");
    // A batch applied just before its answer was lost is not counted.
    let lost = u64::try_from(killed).unwrap();
    assert!(report.count <= N as u64 && report.count + lost >= N as u64);
    assert_all_revoked(&store, "u", N).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giving_up_says_how_many_and_running_again_finishes() {
    const N: usize = 400;
    let server = RedisServer::start();
    let store = store_with_batch(&server, "revoke-all-give-up", 1).await;
    load(&store, "u", N).await;

    // No retries at all: the first dropped connection ends the call.
    let (tx, kills) = killer(server.raw().await, 100);
    let options = RevokeAllOptions::new()
        .max_failures(1)
        .on_progress(move |done| {
            let _ = tx.send(done);
        });
    let err = store
        .revoke_all_with(&revoke_all_input("u", ts(0, 0)), &options)
        .await
        .expect_err("gave up at the first failure");
    drop(options);
    kills.await.unwrap();
    assert!(err.is_retryable(), "{err}");
    let so_far = err.revoke_all_report().expect("the report so far").count;
    assert!((100..N as u64).contains(&so_far), "{so_far}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("revoked {so_far} session(s)")),
        "{message}"
    );
    assert!(
        message.contains("running it again finishes the rest"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1);

    // Running again finishes the rest (and rewrites nothing).
    let rest = store
        .revoke_all_count(&revoke_all_input("u", ts(0, 0)))
        .await
        .unwrap();
    assert!(rest.count + so_far >= N as u64 && rest.count < N as u64);
    assert_all_revoked(&store, "u", N).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_mid_run_is_waited_out() {
    const N: usize = 300;
    // Every write on disk before it is acknowledged, so the restarted
    // server holds what the store was told it holds.
    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let store = store_with_batch(&server, "revoke-all-restart", 2).await;
    load(&store, "u", N).await;

    let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
    let options = RevokeAllOptions::new()
        .deadline(Duration::from_secs(60))
        .on_progress(move |done| {
            let _ = tx.send(done);
        });
    let run = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .revoke_all_with(&revoke_all_input("u", ts(0, 0)), &options)
                .await
        })
    };
    // A quarter of the way: restart the server on its port.
    while let Some(done) = rx.recv().await {
        if done >= N as u64 / 4 {
            tokio::task::block_in_place(|| server.restart());
            break;
        }
    }
    let report = run.await.unwrap().unwrap();
    eprintln!("revoked {} across a restart", report.count);
    assert!(report.count <= N as u64 && report.count >= N as u64 - 2);
    assert_all_revoked(&store, "u", N).await;
}
