//! The hot path of reads: the owners of ids this process has seen (one
//! round trip `get` in the tagged layout) and the optional near cache.

mod get;
pub(crate) mod lru;
mod owners;

use std::sync::Arc;

use authsession_core::{DeviceSessionId, KeySpace, Layout, Session, UserId};

pub(crate) use owners::{Owners, OWNERS_REMEMBERED};

/// What a store keeps between reads. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub(crate) struct HotPath {
    owners: Arc<Owners>,
}

impl Default for HotPath {
    fn default() -> Self {
        Self {
            owners: Arc::new(Owners::new(OWNERS_REMEMBERED)),
        }
    }
}

impl HotPath {
    /// The owner remembered for `id` (tagged layout only: elsewhere the
    /// record key is the id's alone).
    pub(crate) fn known_owner(&self, keys: &KeySpace, id: &DeviceSessionId) -> Option<UserId> {
        if keys.layout() != Layout::Tagged {
            return None;
        }
        self.owners.get(id)
    }

    /// After a read or write of `id`: remember its owner (the user of the
    /// session found or written), or forget it when it was not found.
    pub(crate) fn saw(&self, keys: &KeySpace, id: &DeviceSessionId, found: Option<&Session>) {
        if keys.layout() != Layout::Tagged {
            return;
        }
        match found {
            Some(session) => self.owners.remember(session.id(), session.user_id()),
            None => self.owners.forget(id),
        }
    }
}
