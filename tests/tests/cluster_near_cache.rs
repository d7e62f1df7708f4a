//! The near cache on a cluster through a failover: the primary holding a
//! cached session's record is SIGKILLed, its replica takes over, another
//! value is written there; after `sync` the cached reader returns the new
//! value, never the one the cluster no longer holds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use authsession_driver::core::{codec, Layout};
use authsession_driver::{ClusterSessionStore, SessionStore};
use authsession_tests::cached::cache_config;
use authsession_tests::fixtures::{active, fresh_key_space, revocation, ts};
use authsession_tests::{RawKv, RedisCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_drops_the_cached_sessions_of_the_lost_primary() {
    let mut c = tokio::task::block_in_place(RedisCluster::start);
    let keys = fresh_key_space("cache-failover")
        .in_layout(Layout::Tagged)
        .unwrap();
    let mut config = c.config(keys.clone());
    config.settings.cache = Some(cache_config());
    let store = ClusterSessionStore::connect(config).await.unwrap();
    let raw = c.raw().await;

    let s = active("fo-1", "fo-user", ts(0, 0));
    store.create(&s).await.unwrap();
    assert_eq!(store.get(s.id()).await.unwrap(), s);
    let hits = store.cache_stats().unwrap().hits;
    assert_eq!(store.get(s.id()).await.unwrap(), s);
    assert_eq!(store.cache_stats().unwrap().hits, hits + 1, "cached");

    let record = keys.record_key(s.user_id(), s.id());
    let doomed = tokio::task::block_in_place(|| c.primary_for_key(&record));
    c.kill_primary(doomed);
    tokio::task::block_in_place(|| c.wait_failover_of(doomed));

    // Written on the new primary, which never tracked the key for us.
    let revoked = s.clone().revoked(revocation(ts(60, 0))).unwrap();
    let bytes = codec::encode(&revoked);
    let mut written = false;
    for _ in 0..200 {
        // The raw client may need a moment to follow the new topology.
        let mut conn = raw.connection();
        let set: redis::RedisResult<()> = redis::cmd("SET")
            .arg(&record)
            .arg(&bytes)
            .query_async(&mut conn)
            .await;
        if set.is_ok() {
            written = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(written, "the new primary takes the write");
    assert_eq!(raw.get(&record).await.unwrap(), bytes);

    store.sync().await.unwrap();
    // A read may fail while the store's own connection follows the
    // topology; none may return the session the cluster no longer holds.
    let mut got = None;
    for _ in 0..200 {
        match store.get(s.id()).await {
            Ok(session) => {
                got = Some(session);
                break;
            }
            Err(e) => assert!(e.is_retryable(), "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(got.unwrap(), revoked);
}
