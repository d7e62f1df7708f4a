//! A backend that counts the store's round trips: every backend call is
//! one (a step's reads go as one pipeline).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use authsession_driver::backend::{Backend, BackendInfo};
use authsession_driver::core::plan::{Applied, Plan, Read, Reply};
use authsession_driver::{Error, RedisBackend};

/// `RedisBackend` with a shared count of its calls.
#[derive(Debug)]
pub struct CountingBackend {
    inner: RedisBackend,
    calls: Arc<AtomicU64>,
}

impl CountingBackend {
    /// Counts `inner`'s calls into `calls`.
    pub fn new(inner: RedisBackend, calls: Arc<AtomicU64>) -> Self {
        Self { inner, calls }
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}

impl Backend for CountingBackend {
    fn info(&self) -> &BackendInfo {
        self.inner.info()
    }
    async fn ping(&self, budget: Duration) -> Result<(), Error> {
        self.count();
        self.inner.ping(budget).await
    }
    async fn read(&self, budget: Duration, reads: &[Read]) -> Result<Vec<Reply>, Error> {
        self.count();
        self.inner.read(budget, reads).await
    }
    async fn apply(&self, budget: Duration, plan: &Plan) -> Result<Applied, Error> {
        self.count();
        self.inner.apply(budget, plan).await
    }
    async fn delete(&self, budget: Duration, keys: &[String]) -> Result<u64, Error> {
        self.count();
        self.inner.delete(budget, keys).await
    }
}
