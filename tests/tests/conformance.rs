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

    /// Keys of the wrong Redis type (something the memory model cannot
    /// hold) are corrupt data naming the key, and a plan touching one
    /// writes nothing at all.
    #[tokio::test]
    async fn wrong_key_types_are_corrupt_and_write_nothing() {
        use authsession_driver::{ErrorKind, SessionStore};
        use authsession_tests::fixtures::{active, id, revoke_all_input, ts, user};
        use authsession_tests::RawKv;

        let (_server, store, raw) = make().await;
        let keys = store.key_space().clone();
        let u = user("u-1");
        let active_key = keys.user_active_sessions_key(&u);
        raw.set(&active_key, b"not a sorted set").await;

        let s = active("s-1", "u-1", ts(0, 0));
        let err = store.create(&s).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        assert_eq!(err.key(), Some(active_key.as_str()));
        assert_eq!(err.detail_kind(), Some("wrong_type"));
        assert_eq!(raw.get(&keys.session_key(s.id())).await, None);
        assert!(raw.zrange(&keys.user_sessions_key(&u)).await.is_empty());

        for err in [
            store
                .count_active_by_user_id(&u)
                .await
                .map(drop)
                .unwrap_err(),
            store
                .revoke_all_by_user_id(&revoke_all_input("u-1", ts(1, 0)))
                .await
                .map(drop)
                .unwrap_err(),
        ] {
            assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
            assert_eq!(err.key(), Some(active_key.as_str()));
        }

        let record_key = keys.session_key(&id("z"));
        raw.zadd(&record_key, "m", 1.0).await;
        let err = store.get(&id("z")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        assert_eq!(err.key(), Some(record_key.as_str()));
    }
}
