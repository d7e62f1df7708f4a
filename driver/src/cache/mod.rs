//! The hot path of reads: the owners of ids this process has seen (one
//! round trip `get` in the tagged layout) and the optional near cache.

mod get;
pub(crate) mod lru;
mod near;
mod owners;

use std::sync::Arc;

use authsession_core::{DeviceSessionId, KeySpace, Layout, Session, UserId};

pub use near::{CacheConfig, CacheStats, NearCache};
pub(crate) use near::{Links, Lookup, MakeClient, Node, TrackedError};
pub(crate) use owners::{Owners, OWNERS_REMEMBERED};

use authsession_core::plan::{Read, Reply};
use std::time::Duration;

/// With a near cache, a step's one `GET` goes through the tracking
/// connection to `node` (so the server tracks the key for the cache);
/// `None`: not such a step.
pub(crate) async fn tracked_read(
    near: &NearCache,
    node: &Node,
    budget: Duration,
    reads: &[Read],
) -> Option<Result<Vec<Reply>, TrackedError>> {
    if !matches!(reads, [Read::Value { .. }]) {
        return None;
    }
    tracing::Span::current().record("cache", "miss");
    direct_read(near.links(), node, budget, reads).await
}

/// A step's one `GET` on `links`' connection to `node` (the key's
/// server); `None`: not such a step.
pub(crate) async fn direct_read(
    links: &Links,
    node: &Node,
    budget: Duration,
    reads: &[Read],
) -> Option<Result<Vec<Reply>, TrackedError>> {
    let [read @ Read::Value { key }] = reads else {
        return None;
    };
    Some(match links.get(node, budget, key).await {
        Ok(value) => crate::backend::script::reply(read, value, "read", |_| None)
            .map(|reply| vec![reply])
            .map_err(TrackedError::Connect),
        Err(TrackedError::Redis(e)) if e.code() == Some("WRONGTYPE") => Ok(vec![Reply::WrongType]),
        Err(e) => Err(e),
    })
}
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
