//! The conformance suite against both stores: identical outcomes, errors
//! and ordering (SPEC §6).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

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
