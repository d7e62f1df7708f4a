//! The in-memory store's constructors: [`Store`] on [`MemoryBackend`].

use authsession_core::model::MemoryKv;
use authsession_core::KeySpace;

use crate::backend::MemoryBackend;
use crate::store::Store;

impl Store<MemoryBackend> {
    /// An empty in-memory store over `keys` (default policy, system clock).
    /// Memory operations never wait on I/O: no deadline, only the retry
    /// policy's attempts bound contended operations.
    pub fn new(keys: KeySpace) -> Self {
        let mut store = Self::with_backend(MemoryBackend::default()).with_key_space(keys);
        store.timeout = std::time::Duration::MAX;
        store
    }

    /// Runs `f` on the raw state under the lock: tests plant corruption
    /// with [`MemoryKv::set_raw`] and friends, or inspect it.
    pub fn with_kv<R>(&self, f: impl FnOnce(&mut MemoryKv) -> R) -> R {
        f(&mut self.backend.lock())
    }
}

impl Default for Store<MemoryBackend> {
    fn default() -> Self {
        Self::new(KeySpace::default())
    }
}
