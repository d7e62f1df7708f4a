//! The conformance suite against every store and layout: identical
//! outcomes, errors and ordering (SPEC §6, §15).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use authsession_driver::core::{KeySpace, Layout};
use authsession_tests::fixtures::fresh_key_space;

fn tagged(tag: &str) -> KeySpace {
    fresh_key_space(tag).in_layout(Layout::Tagged).unwrap()
}

mod memory {
    use authsession_driver::MemorySessionStore;
    use authsession_tests::fixtures::fresh_key_space;
    use authsession_tests::MemoryRaw;

    async fn make() -> ((), MemorySessionStore, MemoryRaw) {
        let store = MemorySessionStore::new(fresh_key_space("conformance-memory"));
        ((), store.clone(), MemoryRaw(store))
    }

    authsession_tests::conformance_suite!(make);
}

mod memory_tagged {
    use authsession_driver::MemorySessionStore;
    use authsession_tests::MemoryRaw;

    async fn make() -> ((), MemorySessionStore, MemoryRaw) {
        let store = MemorySessionStore::new(super::tagged("conformance-memory-tagged"));
        ((), store.clone(), MemoryRaw(store))
    }

    authsession_tests::conformance_suite!(make, tagged);
}

mod redis {
    use authsession_driver::RedisSessionStore;
    use authsession_tests::fixtures::fresh_key_space;
    use authsession_tests::{RedisRaw, RedisServer};

    async fn make() -> (RedisServer, RedisSessionStore, RedisRaw) {
        let server = RedisServer::start();
        let store = server.store(fresh_key_space("conformance-redis")).await;
        let raw = server.raw().await;
        (server, store, raw)
    }

    authsession_tests::conformance_suite!(make);
}

mod redis_tagged {
    use authsession_driver::RedisSessionStore;
    use authsession_tests::{RedisRaw, RedisServer};

    async fn make() -> (RedisServer, RedisSessionStore, RedisRaw) {
        let server = RedisServer::start();
        let store = server
            .store(super::tagged("conformance-redis-tagged"))
            .await;
        let raw = server.raw().await;
        (server, store, raw)
    }

    authsession_tests::conformance_suite!(make, tagged);
}

/// One six-node cluster for the whole binary (a fresh key space per test).
mod cluster {
    use std::sync::Arc;

    use authsession_driver::ClusterSessionStore;
    use authsession_tests::{ClusterRaw, RedisCluster};

    async fn make() -> (Arc<RedisCluster>, ClusterSessionStore, ClusterRaw) {
        // Blocking start-up (once): nothing else runs on this test's runtime.
        let cluster = RedisCluster::shared();
        let store = cluster.store(super::tagged("conformance-cluster")).await;
        let raw = cluster.raw().await;
        (cluster, store, raw)
    }

    authsession_tests::conformance_suite!(make, tagged);
}

/// The near cache on: every raw planting is followed by the store's
/// `sync` barrier, after which the cached reads must see it.
mod redis_cached {
    use authsession_driver::{RedisBackend, RedisSessionStore};
    use authsession_tests::cached::{cache_config, SyncedRaw};
    use authsession_tests::fixtures::fresh_key_space;
    use authsession_tests::{RedisRaw, RedisServer};

    async fn make() -> (
        RedisServer,
        RedisSessionStore,
        SyncedRaw<RedisRaw, RedisBackend>,
    ) {
        let server = RedisServer::start();
        let mut config = server.config(fresh_key_space("conformance-redis-cached"));
        config.settings.cache = Some(cache_config());
        let store = RedisSessionStore::connect(config).await.unwrap();
        let raw = SyncedRaw {
            raw: server.raw().await,
            store: store.clone(),
        };
        (server, store, raw)
    }

    authsession_tests::conformance_suite!(make);
}

mod redis_tagged_cached {
    use authsession_driver::{RedisBackend, RedisSessionStore};
    use authsession_tests::cached::{cache_config, SyncedRaw};
    use authsession_tests::{RedisRaw, RedisServer};

    async fn make() -> (
        RedisServer,
        RedisSessionStore,
        SyncedRaw<RedisRaw, RedisBackend>,
    ) {
        let server = RedisServer::start();
        let mut config = server.config(super::tagged("conformance-redis-tagged-cached"));
        config.settings.cache = Some(cache_config());
        let store = RedisSessionStore::connect(config).await.unwrap();
        let raw = SyncedRaw {
            raw: server.raw().await,
            store: store.clone(),
        };
        (server, store, raw)
    }

    authsession_tests::conformance_suite!(make, tagged);
}

mod cluster_cached {
    use std::sync::Arc;

    use authsession_driver::{ClusterBackend, ClusterSessionStore};
    use authsession_tests::cached::{cache_config, SyncedRaw};
    use authsession_tests::{ClusterRaw, RedisCluster};

    async fn make() -> (
        Arc<RedisCluster>,
        ClusterSessionStore,
        SyncedRaw<ClusterRaw, ClusterBackend>,
    ) {
        let cluster = RedisCluster::shared();
        let mut config = cluster.config(super::tagged("conformance-cluster-cached"));
        config.settings.cache = Some(cache_config());
        let store = ClusterSessionStore::connect(config).await.unwrap();
        let raw = SyncedRaw {
            raw: cluster.raw().await,
            store: store.clone(),
        };
        (cluster, store, raw)
    }

    authsession_tests::conformance_suite!(make, tagged);
}

/// The suites above ran on the server the environment names
/// (`AUTHSESSION_TEST_REDIS_SERVER`, else `redis-server`): the server
/// answering is the binary the harness was told to start, standalone and
/// in the cluster.
mod server_under_test {
    use authsession_tests::server_info::binary_version_line;
    use authsession_tests::{RedisCluster, RedisServer};

    #[tokio::test]
    async fn standalone_is_the_named_binary() {
        let line = binary_version_line();
        let info = RedisServer::start().info().await;
        eprintln!("standalone: {info} ({line})");
        assert!(info.matches_version_line(&line), "{info} vs {line}");
    }

    #[test]
    fn cluster_nodes_are_the_named_binary() {
        let line = binary_version_line();
        let info = RedisCluster::shared().info();
        assert!(info.matches_version_line(&line), "{info} vs {line}");
    }
}
