//! Helpers for stores with a near cache: raw writes followed by the
//! store's `sync` barrier (so a scenario written for any store sees its
//! own plantings through the cache, as the barrier promises), and a
//! default cache config.

use std::time::Duration;

use authsession_driver::backend::Backend;
use authsession_driver::{CacheConfig, Store};

use crate::raw::RawKv;

/// The cache settings the tests use: big enough to hold everything, and
/// an age bound far beyond any test.
pub fn cache_config() -> CacheConfig {
    CacheConfig {
        max_entries: 10_000,
        max_staleness: Duration::from_secs(600),
    }
}

/// Raw access whose every write is followed by `store.sync()`.
#[derive(Debug, Clone)]
pub struct SyncedRaw<R, B: Backend + std::fmt::Debug> {
    /// The raw access.
    pub raw: R,
    /// The cached store to sync.
    pub store: Store<B>,
}

impl<R: RawKv, B: Backend + std::fmt::Debug> SyncedRaw<R, B> {
    async fn synced(&self) {
        self.store.sync().await.expect("sync");
    }
}

impl<R: RawKv, B: Backend + std::fmt::Debug> RawKv for SyncedRaw<R, B> {
    async fn set(&self, key: &str, value: &[u8]) {
        self.raw.set(key, value).await;
        self.synced().await;
    }
    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.raw.get(key).await
    }
    async fn zadd(&self, key: &str, member: &str, score: f64) {
        self.raw.zadd(key, member, score).await;
        self.synced().await;
    }
    async fn zrem(&self, key: &str, member: &str) {
        self.raw.zrem(key, member).await;
        self.synced().await;
    }
    async fn zrange(&self, key: &str) -> Vec<(String, f64)> {
        self.raw.zrange(key).await
    }
    async fn del(&self, key: &str) {
        self.raw.del(key).await;
        self.synced().await;
    }
    async fn key_slot(&self, key: &str) -> Option<u16> {
        self.raw.key_slot(key).await
    }
}
