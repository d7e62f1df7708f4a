//! Big users and growth on both stores: pages against `list`, retention
//! under an injected clock, the active-session limit and batched
//! revoke-all, with the raw data checked after every step.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod memory {
    use authsession_driver::core::op::Policy;
    use authsession_driver::core::KeySpace;
    use authsession_driver::{Clock, MemorySessionStore};
    use authsession_tests::fixtures::fresh_key_space;
    use authsession_tests::MemoryRaw;

    async fn make(policy: Policy, clock: Clock) -> ((), MemorySessionStore, MemoryRaw) {
        let store = MemorySessionStore::new(fresh_key_space("growth-memory"))
            .with_policy(policy)
            .with_clock(clock);
        ((), store.clone(), MemoryRaw(store))
    }

    authsession_tests::growth_suite!(make);

    async fn make_in(
        keys: KeySpace,
        policy: Policy,
        clock: Clock,
    ) -> ((), MemorySessionStore, MemoryRaw) {
        let store = MemorySessionStore::new(keys)
            .with_policy(policy)
            .with_clock(clock);
        ((), store.clone(), MemoryRaw(store))
    }

    #[tokio::test]
    async fn churn_in_the_tagged_layout_stays_within_twice_the_reference() {
        authsession_tests::growth::churn_in_the_tagged_layout_stays_within_twice_the_reference(
            make_in,
        )
        .await;
    }
}

mod redis {
    use authsession_driver::core::op::Policy;
    use authsession_driver::core::KeySpace;
    use authsession_driver::{Clock, RedisSessionStore};
    use authsession_tests::fixtures::fresh_key_space;
    use authsession_tests::{RedisRaw, RedisServer};

    async fn make(policy: Policy, clock: Clock) -> (RedisServer, RedisSessionStore, RedisRaw) {
        let server = RedisServer::start();
        let store = server
            .store(fresh_key_space("growth-redis"))
            .await
            .with_policy(policy)
            .with_clock(clock);
        let raw = server.raw().await;
        (server, store, raw)
    }

    authsession_tests::growth_suite!(make);

    async fn make_in(
        keys: KeySpace,
        policy: Policy,
        clock: Clock,
    ) -> (RedisServer, RedisSessionStore, RedisRaw) {
        let server = RedisServer::start();
        let store = server
            .store(keys)
            .await
            .with_policy(policy)
            .with_clock(clock);
        let raw = server.raw().await;
        (server, store, raw)
    }

    #[tokio::test]
    async fn churn_in_the_tagged_layout_stays_within_twice_the_reference() {
        authsession_tests::growth::churn_in_the_tagged_layout_stays_within_twice_the_reference(
            make_in,
        )
        .await;
    }
}
