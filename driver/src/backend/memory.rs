//! The in-memory backend: the core's [`MemoryKv`] behind a mutex. Reads
//! and plans go to the model itself, so every rule (types included) is the
//! core's.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use authsession_core::model::MemoryKv;
use authsession_core::plan::{Applied, Plan, Read, Reply};

use super::{Backend, BackendInfo};
use crate::error::Error;

/// The core's pure model behind a lock.
#[derive(Debug)]
pub struct MemoryBackend {
    kv: Mutex<MemoryKv>,
    info: BackendInfo,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self {
            kv: Mutex::default(),
            info: BackendInfo {
                system: "memory",
                address: None,
                port: None,
                namespace: None,
            },
        }
    }
}

impl MemoryBackend {
    pub(crate) fn lock(&self) -> MutexGuard<'_, MemoryKv> {
        // MemoryKv never panics mid-update, so a poisoned lock still
        // guards a consistent state.
        self.kv.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Backend for MemoryBackend {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    async fn ping(&self, _: Duration) -> Result<(), Error> {
        Ok(())
    }

    async fn read(&self, _: Duration, reads: &[Read]) -> Result<Vec<Reply>, Error> {
        Ok(self.lock().read_all(reads))
    }

    async fn apply(&self, _: Duration, plan: &Plan) -> Result<Applied, Error> {
        Ok(self.lock().apply(plan))
    }

    async fn delete(&self, _: Duration, keys: &[String]) -> Result<u64, Error> {
        let mut kv = self.lock();
        let mut deleted = 0;
        for key in keys {
            if kv.key_type(key).is_some() {
                kv.delete_raw(key);
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    async fn pause(&self, _: Duration) {
        // Contention here is between tasks of one process holding the lock
        // for microseconds: yielding lets the winner finish.
        tokio::task::yield_now().await;
    }
}
