//! Server faults (SPEC §12): a server killed mid-load and restarted on the
//! same port, a stopped (SIGSTOP) server, a server that is not there.
//! Operations fail with `backend`/`timeout`, recover without a manual
//! reconnect, and leave no partial write.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authsession_driver::{
    CheckMode, ErrorKind, RedisConfig, RedisSessionStore, SessionAdmin, SessionStore,
};
use authsession_tests::fixtures::{
    active, fresh_key_space, id, now, revoke_all_input, revoke_input, ts, user,
};
use authsession_tests::server::free_port;
use authsession_tests::RedisServer;

#[derive(Default)]
struct Load {
    stop: AtomicBool,
    ok: AtomicU64,
    failed: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    non_retryable: Mutex<Vec<String>>,
}

impl Load {
    fn record(&self, result: Result<(), authsession_driver::Error>) {
        match result {
            Ok(()) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                if !e.is_retryable() {
                    self.non_retryable.lock().unwrap().push(e.to_string());
                }
                *self
                    .errors
                    .lock()
                    .unwrap()
                    .entry(e.kind().as_str())
                    .or_default() += 1;
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Polls `cond` (every few ms) until it holds; fails the test after
/// `limit` so a broken driver cannot hang it.
async fn wait_until(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let give_up = tokio::time::Instant::now() + limit;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < give_up,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_server_then_restarted_recovers_without_partial_writes() {
    // Persistence on (fsync every write) for this test only, so records
    // written before the kill are still there to audit after the restart.
    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let config = {
        let mut config = server.config(fresh_key_space("faults-kill"));
        config.settings.operation_timeout = Duration::from_millis(500);
        config
    };
    let store = RedisSessionStore::connect(config).await.unwrap();
    let load = Arc::new(Load::default());

    let mut workers = Vec::new();
    for worker in 0..16 {
        let store = store.clone();
        let load = Arc::clone(&load);
        workers.push(tokio::spawn(async move {
            let u = format!("user-{}", worker % 4);
            let mut n = 0u64;
            while !load.stop.load(Ordering::Relaxed) {
                n += 1;
                let sid = format!("w{worker}-{n}");
                let result = match n % 3 {
                    0 => store
                        .revoke(&revoke_input(&format!("w{worker}-{}", n - 1), now()))
                        .await
                        .map(drop),
                    1 => store.create(&active(&sid, &u, now())).await.map(drop),
                    _ => {
                        let created = store.create(&active(&sid, &u, now())).await;
                        match created {
                            Ok(_) => store
                                .revoke_all_by_user_id(&revoke_all_input(&u, now()))
                                .await
                                .map(drop),
                            Err(e) => Err(e),
                        }
                    }
                };
                // A revoke of a session whose create failed is not_found:
                // an expected outcome of the outage, not a fault.
                match result {
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    other => load.record(other),
                }
            }
        }));
    }

    let limit = Duration::from_secs(30);
    wait_until("load running", limit, || {
        load.ok.load(Ordering::Relaxed) >= 300
    })
    .await;
    server.kill();
    let failed_at_kill = load.failed.load(Ordering::Relaxed);
    wait_until("operations failing while the server is down", limit, || {
        load.failed.load(Ordering::Relaxed) >= failed_at_kill + 50
    })
    .await;
    let ok_while_down = load.ok.load(Ordering::Relaxed);
    tokio::task::block_in_place(|| server.restart());
    wait_until(
        "operations succeeding again after the restart",
        limit,
        || load.ok.load(Ordering::Relaxed) >= ok_while_down + 300,
    )
    .await;
    load.stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    let errors = load.errors.lock().unwrap().clone();
    eprintln!(
        "outage: {errors:?}; ok {} failed {}",
        load.ok.load(Ordering::Relaxed),
        load.failed.load(Ordering::Relaxed)
    );
    assert!(
        // The restarted server replays its append-only file before it
        // answers: requests meanwhile are `server_loading` (retryable).
        errors
            .keys()
            .all(|k| matches!(*k, "backend" | "timeout" | "server_loading")),
        "{errors:?}"
    );
    assert!(
        errors.get("backend").copied().unwrap_or(0) > 0,
        "{errors:?}"
    );
    assert!(load.non_retryable.lock().unwrap().is_empty());
    // No partial write: every record agrees with both indexes.
    let report = store.check(CheckMode::Report).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    assert!(
        report.records > 0,
        "writes before the kill survived the restart"
    );
    store.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_server_times_out_then_recovers() {
    let server = RedisServer::start();
    let config = {
        let mut config = server.config(fresh_key_space("faults-stop"));
        // Long enough that a busy machine does not time out the healthy
        // calls after SIGCONT; the stopped calls run concurrently.
        config.settings.operation_timeout = Duration::from_secs(1);
        config
    };
    let store = RedisSessionStore::connect(config).await.unwrap();
    let s = active("before", "u-1", ts(0, 0));
    store.create(&s).await.unwrap();

    server.signal("STOP");
    let late = active("during", "u-1", ts(1, 0));
    let u = user("u-1");
    let (ping, get, count, create) = tokio::join!(
        store.ping(),
        store.get(s.id()),
        store.count_active_by_user_id(&u),
        store.create(&late),
    );
    server.signal("CONT");
    for result in [ping, get.map(drop), count.map(drop), create.map(drop)] {
        let err = result.expect_err("a stopped server cannot answer");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
        assert!(err.is_retryable());
    }

    // Same store, no reconnect: answers again.
    store.ping().await.unwrap();
    assert_eq!(store.get(s.id()).await.unwrap(), s);
    // The timed-out create was queued on the server and ran after SIGCONT:
    // a timeout means "unknown", and the write is whole either way.
    match store.get(late.id()).await {
        Ok(got) => assert_eq!(got, late),
        Err(e) => assert_eq!(e.kind(), ErrorKind::NotFound),
    }
    assert!(store.check(CheckMode::Report).await.unwrap().is_clean());
}

#[tokio::test]
async fn nothing_listening_is_a_backend_error() {
    let mut config = RedisConfig {
        addr: format!("127.0.0.1:{}", free_port()),
        ..RedisConfig::default()
    };
    config.settings.operation_timeout = Duration::from_secs(5);
    let err = RedisSessionStore::connect(config).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
    assert!(err.is_retryable());
    assert!(std::error::Error::source(&err).is_some());
}

#[tokio::test]
async fn invalid_config_fails_before_connecting() {
    let config = RedisConfig {
        db: -1,
        ..RedisConfig::default()
    };
    let err = RedisSessionStore::connect(config).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!(err.config_field(), Some("db"));
    let _ = id("unused");
}
