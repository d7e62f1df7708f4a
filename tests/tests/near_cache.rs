//! The near cache against a real server: every kind of writer invalidates
//! (another store, the Go adapter's commands, raw SET/DEL/EXPIRE,
//! FLUSHALL, the server's tracking-table evictions), each seen by a cached
//! reader after `sync`; hits cost no command; faults (CLIENT KILL of the
//! tracking connection, a server restart) never leave a value the server
//! no longer holds; a server that cannot track fails at connect.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use authsession_driver::core::codec;
use authsession_driver::core::{KeySpace, Session};
use authsession_driver::{ErrorKind, RedisSessionStore, SessionStore};
use authsession_tests::cached::cache_config;
use authsession_tests::fixtures::{active, fresh_key_space, id, revocation, revoke_input, ts};
use authsession_tests::{RawKv, RedisRaw, RedisServer};

async fn cached_store(server: &RedisServer, keys: KeySpace) -> RedisSessionStore {
    let mut config = server.config(keys);
    config.settings.cache = Some(cache_config());
    RedisSessionStore::connect(config).await.unwrap()
}

/// A created session, read once through the cache (so it is cached) and
/// once more (a hit).
async fn cached_session(store: &RedisSessionStore, name: &str) -> Session {
    let s = active(name, "user-1", ts(0, 0));
    store.create(&s).await.unwrap();
    assert_eq!(store.get(s.id()).await.unwrap(), s);
    let before = store.cache_stats().unwrap().hits;
    assert_eq!(store.get(s.id()).await.unwrap(), s);
    assert_eq!(store.cache_stats().unwrap().hits, before + 1, "a hit");
    s
}

fn record_key(store: &RedisSessionStore, s: &Session) -> String {
    store.key_space().record_key(s.user_id(), s.id())
}

async fn gets(raw: &RedisRaw) -> u64 {
    raw.command_calls().await.get("get").copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_send_nothing_and_own_writes_are_read_back_at_once() {
    let server = RedisServer::start();
    let store = cached_store(&server, fresh_key_space("cache-own")).await;
    let raw = server.raw().await;
    let s = cached_session(&store, "own").await;
    let before = gets(&raw).await;
    for _ in 0..100 {
        assert_eq!(store.get(s.id()).await.unwrap(), s);
        assert_eq!(store.get_for_user(s.user_id(), s.id()).await.unwrap(), s);
    }
    assert_eq!(gets(&raw).await, before, "200 cached reads, no GET");

    // Read-your-writes: no sync, the revoke's own return is enough.
    store.revoke(&revoke_input("own", ts(10, 0))).await.unwrap();
    let got = store.get(s.id()).await.unwrap();
    assert!(got.revocation().is_some(), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_writer_invalidates_after_sync() {
    let server = RedisServer::start();
    let keys = fresh_key_space("cache-writers");
    let store = cached_store(&server, keys.clone()).await;
    let other = server.store(keys.clone()).await;
    let raw = server.raw().await;

    // Another store (another connection, another process as far as the
    // server knows).
    let s = cached_session(&store, "by-store").await;
    other
        .revoke(&revoke_input("by-store", ts(10, 0)))
        .await
        .unwrap();
    store.sync().await.unwrap();
    assert!(store.get(s.id()).await.unwrap().revocation().is_some());

    // The Go adapter's revoke: WATCH, GET, MULTI, SET record, ZREM active,
    // EXEC.
    let s = cached_session(&store, "by-go").await;
    let key = record_key(&store, &s);
    let revoked = s.clone().revoked(revocation(ts(20, 0))).unwrap();
    let mut conn = raw.connection();
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("SET")
        .arg(&key)
        .arg(codec::encode(&revoked))
        .ignore()
        .cmd("ZREM")
        .arg(keys.user_active_sessions_key(s.user_id()))
        .arg(s.id().as_str())
        .ignore();
    let () = pipe.query_async(&mut conn).await.unwrap();
    store.sync().await.unwrap();
    assert_eq!(store.get(s.id()).await.unwrap(), revoked);

    // Raw SET of other bytes.
    let s = cached_session(&store, "by-set").await;
    let revoked = s.clone().revoked(revocation(ts(30, 0))).unwrap();
    raw.set(&record_key(&store, &s), &codec::encode(&revoked))
        .await;
    store.sync().await.unwrap();
    assert_eq!(store.get(s.id()).await.unwrap(), revoked);

    // Raw DEL.
    let s = cached_session(&store, "by-del").await;
    raw.del(&record_key(&store, &s)).await;
    store.sync().await.unwrap();
    assert_eq!(
        store.get(s.id()).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // EXPIRE (an expiry in the past deletes at once).
    let s = cached_session(&store, "by-expire").await;
    let _: i64 = raw
        .query(redis::cmd("EXPIRE").arg(record_key(&store, &s)).arg(-1))
        .await;
    store.sync().await.unwrap();
    assert_eq!(
        store.get(s.id()).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // FLUSHALL: everything goes.
    let s = cached_session(&store, "by-flush").await;
    let flushes = store.cache_stats().unwrap().flushes;
    let _: String = raw.query(&redis::cmd("FLUSHALL")).await;
    store.sync().await.unwrap();
    assert!(store.cache_stats().unwrap().flushes > flushes);
    assert_eq!(
        store.get(s.id()).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_tracking_table_evictions_are_honoured() {
    let server = RedisServer::start();
    let store = cached_store(&server, fresh_key_space("cache-evict")).await;
    let raw = server.raw().await;
    let _: String = raw
        .query(
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("tracking-table-max-keys")
                .arg(1),
        )
        .await;
    let first = active("first", "user-1", ts(0, 0));
    let second = active("second", "user-1", ts(0, 0));
    store.create(&first).await.unwrap();
    store.create(&second).await.unwrap();
    let invalidations = store.cache_stats().unwrap().invalidations;
    // Tracking a second key pushes one of the two out of the server's
    // table (which one is the server's choice): the server invalidates it,
    // since it could no longer tell us about changes.
    assert_eq!(store.get(first.id()).await.unwrap(), first);
    assert_eq!(store.get(second.id()).await.unwrap(), second);
    store.sync().await.unwrap();
    assert!(store.cache_stats().unwrap().invalidations > invalidations);
    let misses = store.cache_stats().unwrap().misses;
    assert_eq!(store.get(first.id()).await.unwrap(), first);
    assert_eq!(store.get(second.id()).await.unwrap(), second);
    assert!(
        store.cache_stats().unwrap().misses > misses,
        "the evicted one is read again"
    );
}

/// The tracking connection's id, from CLIENT LIST (flag `t`: tracking).
async fn tracking_client_ids(raw: &RedisRaw) -> Vec<String> {
    let list: String = raw.query(redis::cmd("CLIENT").arg("LIST")).await;
    list.lines()
        .filter(|line| {
            line.split(' ')
                .any(|f| f.strip_prefix("flags=").is_some_and(|v| v.contains('t')))
        })
        .filter_map(|line| {
            line.split(' ')
                .find_map(|f| f.strip_prefix("id="))
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_tracking_connection_drops_the_cache() {
    let server = RedisServer::start();
    let store = cached_store(&server, fresh_key_space("cache-kill")).await;
    let raw = server.raw().await;
    let s = cached_session(&store, "killed").await;
    let ids = tracking_client_ids(&raw).await;
    assert_eq!(ids.len(), 1, "one tracking connection: {ids:?}");
    let _: i64 = raw
        .query(redis::cmd("CLIENT").arg("KILL").arg("ID").arg(&ids[0]))
        .await;
    // Written while nobody tracks the key for us: no invalidation can come.
    let revoked = s.clone().revoked(revocation(ts(40, 0))).unwrap();
    raw.set(&record_key(&store, &s), &codec::encode(&revoked))
        .await;
    store.sync().await.unwrap();
    assert_eq!(store.get(s.id()).await.unwrap(), revoked);
    // And the cache works again on a new tracking connection.
    assert_eq!(store.get(s.id()).await.unwrap(), revoked);
    let again = revoked.clone();
    let hits = store.cache_stats().unwrap().hits;
    assert_eq!(store.get(s.id()).await.unwrap(), again);
    assert_eq!(store.cache_stats().unwrap().hits, hits + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_drops_the_cache() {
    let mut server = RedisServer::start();
    let store = cached_store(&server, fresh_key_space("cache-restart")).await;
    let s = cached_session(&store, "restarted").await;
    server.restart();
    // The restarted server is empty (no persistence); write another value
    // for the key during the outage window.
    let raw = server.raw().await;
    let revoked = s.clone().revoked(revocation(ts(50, 0))).unwrap();
    raw.set(&record_key(&store, &s), &codec::encode(&revoked))
        .await;
    store.sync().await.unwrap();
    // The store's main connection may need a round trip to notice the
    // restart too; the cached reader must never return the old session.
    let mut got = store.get(s.id()).await;
    for _ in 0..3 {
        if got.is_ok() {
            break;
        }
        got = store.get(s.id()).await;
    }
    assert_eq!(got.unwrap(), revoked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_tracking_fails_at_connect() {
    // Tracking needs RESP3 (HELLO 3): an ACL user that may not run HELLO
    // or CLIENT stands for a server or proxy that cannot track.
    let server = RedisServer::start();
    let raw = server.raw().await;
    let _: String = raw
        .query(
            redis::cmd("ACL")
                .arg("SETUSER")
                .arg("app")
                .arg("on")
                .arg(">pw")
                .arg("~*")
                .arg("+@all")
                .arg("-client"),
        )
        .await;
    let mut config = server.config(fresh_key_space("cache-no-tracking"));
    config.settings.username = Some("app".to_owned());
    config.settings.password = Some("pw".to_owned());
    config.settings.cache = Some(cache_config());
    let err = RedisSessionStore::connect(config.clone())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert_eq!(err.config_field(), Some("cache"), "{err}");
    // Without the cache the same user connects.
    config.settings.cache = None;
    RedisSessionStore::connect(config).await.unwrap();
    let _ = id("unused");
}

mod interleavings {
    use std::collections::BTreeMap;

    use authsession_driver::core::Session;
    use authsession_driver::{ErrorKind, MemorySessionStore, RedisSessionStore, SessionStore};
    use authsession_tests::fixtures::{active, fresh_key_space, revoke_input, ts};
    use authsession_tests::{MemoryRaw, RawKv, RedisServer};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    const IDS: usize = 3;

    #[derive(Debug, Clone)]
    enum Step {
        /// Another store creates session `i`.
        Create(usize),
        /// Another store revokes it.
        Revoke(usize),
        /// The cached store revokes it itself.
        OwnRevoke(usize),
        /// A raw DEL of its record.
        Delete(usize),
        /// The cached store reads it.
        Get(usize),
        /// The barrier.
        Sync,
    }

    fn arb_step() -> impl Strategy<Value = Step> {
        let i = 0..IDS;
        prop_oneof![
            1 => i.clone().prop_map(Step::Create),
            1 => i.clone().prop_map(Step::Revoke),
            1 => i.clone().prop_map(Step::OwnRevoke),
            1 => i.clone().prop_map(Step::Delete),
            3 => i.prop_map(Step::Get),
            2 => Just(Step::Sync),
        ]
    }

    type Seen = Result<Session, ErrorKind>;

    fn name(case: u32, i: usize) -> String {
        format!("c{case}-s{i}")
    }

    /// Runs `steps` on the server (a cached reader, an uncached writer, a
    /// raw connection) and on the in-memory model alike. A cached read
    /// returns a state the session held since the last barrier (or the
    /// reader's own last write); right after a barrier, exactly the
    /// model's.
    async fn run(server: &RedisServer, case: u32, steps: &[Step]) -> Result<(), String> {
        let keys = fresh_key_space(&format!("cache-prop-{case}"));
        let mut config = server.config(keys.clone());
        config.settings.cache = Some(authsession_tests::cached::cache_config());
        let cached = RedisSessionStore::connect(config)
            .await
            .map_err(|e| e.to_string())?;
        let writer = server.store(keys.clone()).await;
        let raw = server.raw().await;
        let model = MemorySessionStore::new(keys.clone());
        let model_raw = MemoryRaw(model.clone());
        // Per id: every state held since the last barrier.
        let mut since: BTreeMap<usize, Vec<Seen>> = BTreeMap::new();
        let now = |i: usize| {
            let model = model.clone();
            async move {
                let id = authsession_tests::fixtures::id(&name(case, i));
                model.get(&id).await.map_err(|e| e.kind())
            }
        };
        for i in 0..IDS {
            since.insert(i, vec![now(i).await]);
        }
        for step in steps {
            match step {
                Step::Create(i) => {
                    let s = active(&name(case, *i), "user-1", ts(0, 0));
                    let a = writer.create(&s).await.map(|_| ()).map_err(|e| e.kind());
                    let b = model.create(&s).await.map(|_| ()).map_err(|e| e.kind());
                    if a != b {
                        return Err(format!("create {i}: {a:?} vs {b:?}"));
                    }
                }
                Step::Revoke(i) | Step::OwnRevoke(i) => {
                    let input = revoke_input(&name(case, *i), ts(10, 0));
                    let a = match step {
                        Step::OwnRevoke(_) => cached.revoke(&input).await,
                        _ => writer.revoke(&input).await,
                    };
                    let b = model.revoke(&input).await;
                    let (a, b) = (a.map(|o| o.as_str()), b.map(|o| o.as_str()));
                    if a.as_ref().map_err(|e| e.kind()) != b.as_ref().map_err(|e| e.kind()) {
                        return Err(format!("revoke {i}: {a:?} vs {b:?}"));
                    }
                }
                Step::Delete(i) => {
                    let id = authsession_tests::fixtures::id(&name(case, *i));
                    let user = authsession_tests::fixtures::user("user-1");
                    let key = keys.record_key(&user, &id);
                    raw.del(&key).await;
                    model_raw.del(&key).await;
                }
                Step::Get(i) => {
                    let id = authsession_tests::fixtures::id(&name(case, *i));
                    let got = cached.get(&id).await.map_err(|e| e.kind());
                    let allowed = since.get(i).cloned().unwrap_or_default();
                    if !allowed.contains(&got) {
                        return Err(format!("get {i}: {got:?}, allowed {allowed:?}"));
                    }
                }
                Step::Sync => {
                    cached.sync().await.map_err(|e| e.to_string())?;
                    for i in 0..IDS {
                        since.insert(i, Vec::new());
                    }
                }
            }
            // The states each id held since the barrier: the reader's own
            // writes are read back at once, so after its own write only
            // the new state counts.
            for i in 0..IDS {
                let state = now(i).await;
                let states = since.entry(i).or_default();
                if matches!(step, Step::OwnRevoke(j) if *j == i) {
                    states.clear();
                }
                if states.last() != Some(&state) {
                    states.push(state);
                }
            }
            if let Step::Sync = step {
                // Right after the barrier: exactly the model's state.
                for i in 0..IDS {
                    let id = authsession_tests::fixtures::id(&name(case, i));
                    let got = cached.get(&id).await.map_err(|e| e.kind());
                    let want = now(i).await;
                    if got != want {
                        return Err(format!("after sync, get {i}: {got:?} vs {want:?}"));
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn random_writers_and_cached_readers_agree_with_the_model_at_every_barrier() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = RedisServer::start();
        let mut runner = TestRunner::new(Config {
            cases: 64,
            failure_persistence: None,
            ..Config::default()
        });
        let case = std::cell::Cell::new(0u32);
        runner
            .run(&prop::collection::vec(arb_step(), 1..40), |steps| {
                case.set(case.get() + 1);
                rt.block_on(run(&server, case.get(), &steps))
                    .map_err(TestCaseError::fail)
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bounds_hold_age_and_entries() {
    let server = RedisServer::start();
    let keys = fresh_key_space("cache-bounds");
    let raw = server.raw().await;
    let a = active("bound-a", "user-1", ts(0, 0));
    let b = active("bound-b", "user-1", ts(0, 0));
    let writer = server.store(keys.clone()).await;
    writer.create(&a).await.unwrap();
    writer.create(&b).await.unwrap();

    // No entry may be older than a nanosecond: every read goes to the
    // server.
    let mut config = server.config(keys.clone());
    config.settings.cache = Some(authsession_driver::CacheConfig {
        max_entries: 100,
        max_staleness: std::time::Duration::from_nanos(1),
    });
    let stale = RedisSessionStore::connect(config).await.unwrap();
    let before = gets(&raw).await;
    for _ in 0..5 {
        assert_eq!(stale.get(a.id()).await.unwrap(), a);
    }
    assert_eq!(gets(&raw).await, before + 5);
    assert_eq!(stale.cache_stats().unwrap().hits, 0);

    // One entry at most: reading b pushes a out (least recently used).
    let mut config = server.config(keys);
    config.settings.cache = Some(authsession_driver::CacheConfig {
        max_entries: 1,
        max_staleness: std::time::Duration::from_secs(600),
    });
    let small = RedisSessionStore::connect(config).await.unwrap();
    small.get(a.id()).await.unwrap();
    small.get(a.id()).await.unwrap();
    assert_eq!(small.cache_stats().unwrap().hits, 1);
    small.get(b.id()).await.unwrap();
    let misses = small.cache_stats().unwrap().misses;
    small.get(a.id()).await.unwrap();
    assert_eq!(
        small.cache_stats().unwrap().misses,
        misses + 1,
        "a was evicted"
    );
    assert_eq!(small.cache_stats().unwrap().entries, 1);
}
