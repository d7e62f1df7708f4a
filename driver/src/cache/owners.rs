//! Which user owns an id, as this process has seen it (tagged layout):
//! owner keys are immutable while they exist, so a `get(id)` of an id seen
//! before reads its record at once (1 round trip instead of 2). The core's
//! `Get` decides what a miss through a remembered owner means (it reads
//! the owner key after all); this is only the bounded memory.

use std::sync::{Mutex, PoisonError};

use authsession_core::{DeviceSessionId, UserId};

use super::lru::Lru;

/// Ids remembered at most (the least recently used is forgotten first):
/// about 100 bytes each.
pub(crate) const OWNERS_REMEMBERED: usize = 65_536;

/// id → owner, bounded, least recently used forgotten first.
#[derive(Debug)]
pub(crate) struct Owners(Mutex<Lru<DeviceSessionId, UserId>>);

impl Owners {
    pub(crate) fn new(capacity: usize) -> Self {
        Self(Mutex::new(Lru::new(capacity)))
    }

    /// The owner remembered for `id`.
    pub(crate) fn get(&self, id: &DeviceSessionId) -> Option<UserId> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get_mut(id).map(|owner| owner.clone())
    }

    /// `id` belongs to `owner` (seen in a record read or written).
    pub(crate) fn remember(&self, id: &DeviceSessionId, owner: &UserId) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get_mut(id) {
            Some(known) if known == owner => {}
            _ => {
                map.insert(id.clone(), owner.clone());
            }
        }
    }

    /// `id` was not found: forget it.
    pub(crate) fn forget(&self, id: &DeviceSessionId) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(id);
    }
}
