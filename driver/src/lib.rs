//! Device-session stores executing `authsession-core`'s plans.
//!
//! - [`SessionStore`]: the operations a service uses (`get`,
//!   `get_for_user`, `list_by_user_id`, `list_page`,
//!   `count_active_by_user_id`, `create`, `revoke`, `revoke_all_by_user_id`,
//!   `revoke_all_count`, `ping`); [`SessionAdmin`]: maintenance (`check`
//!   with or without repair, `sweep`, `purge`), in bounded batches.
//! - [`Store`]: the one implementation of both, generic over a
//!   [`Backend`]. Each operation is a core state machine
//!   (`authsession_core::op`) that [`Store`] drives with one loop:
//!   deadlines per batch and round trip, jittered backoff, one `tracing`
//!   span per operation.
//! - Backends translate the core's reads and plans: [`RedisBackend`] (one
//!   multiplexed, self-reconnecting connection; every plan is one generic
//!   Lua script — atomic, no `WATCH`), [`MemoryBackend`] (the core's model
//!   under a lock), and with the `cluster` feature `ClusterBackend` (a
//!   Redis Cluster through redis-rs's cluster client: each step's reads
//!   pipelined per hash slot, each plan one script on its slot's primary,
//!   scans over every primary). [`RedisSessionStore`],
//!   [`MemorySessionStore`] and `ClusterSessionStore` name them; a cluster
//!   needs the tagged layout (`ClusterConfig`).
//!
//! **Near cache** (opt-in, [`CacheConfig`] in [`StoreSettings::cache`] of
//! a `RedisConfig` or `ClusterConfig`): `get` and `get_for_user` of a session read
//! before are answered from memory, invalidated by the server (`CLIENT
//! TRACKING` over RESP3). Guarantees: read-your-writes (a write drops its
//! keys' entries before it returns); a barrier ([`Store::sync`]: once it
//! returns, no cached read returns a value older than what the server held
//! when it began); a lost tracking connection (drop, reconnect, restart,
//! failover) clears the whole cache before any further cached read;
//! `max_staleness` bounds any entry's age and `max_entries` the memory
//! (least recently used first out); `FLUSHALL`/`FLUSHDB` and the server's
//! tracking-table evictions are honoured; a server or proxy that cannot
//! track fails at connect (kind `config`, field `cache`). Only sessions the
//! core validated are cached. See [`NearCache`] and `docs/design.md`.
//!
//! Outcomes, errors and ordering are identical on every backend. Domain
//! rules (validation, encoding, keys, ordering, what to write) live in the
//! core only.
//!
//! Round trips per uncontended Redis operation: `get` 1 (`GET`), `count` 1
//! (`ZCARD`), `create` 1 (script), `list` ≤ 2 (`ZRANGE` + `MGET`),
//! `revoke` ≤ 2 (`GET` + script), `revoke_all` ≤ 3 (`ZRANGEBYSCORE` +
//! `MGET` + script) — independent of the number of sessions. In the
//! tagged layout (a cluster's) `get_for_user` 1, `get` 2 (owner key, then
//! record; 1 for an id whose owner the store has seen: owner keys are
//! immutable while they exist, so the store remembers a bounded number of
//! them, and a miss through a remembered owner reads the owner key again), `create` 2 (owner key, then record), `revoke` 3, `count` 1, a
//! `list_page` ≤ 2.
//!
//! ```
//! use authsession_driver::core::{
//!     ClientPublicKey, DeviceSessionId, KeySpace, Revocation, RevokeActorId, RevokeActorType,
//!     RevokeReasonCode, RevokeUserSessionsInput, Session, Timestamp, UserId,
//! };
//! use authsession_driver::{CheckMode, ErrorKind, MemorySessionStore, SessionAdmin, SessionStore};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! // `RedisSessionStore::connect(RedisConfig::from_url("redis://127.0.0.1:6379")?)`
//! // gives the same API on Redis.
//! let store = MemorySessionStore::new(KeySpace::default());
//! let user = UserId::parse("user-1")?;
//! let session = Session::active(
//!     DeviceSessionId::parse("device-1")?,
//!     user.clone(),
//!     ClientPublicKey::from_bytes(&[7; 32])?,
//!     Timestamp::parse("2026-11-27T10:00:00Z")?,
//! )?;
//! store.create(&session).await?;
//! assert_eq!(store.create(&session).await.unwrap_err().kind(), ErrorKind::Conflict);
//! assert_eq!(store.count_active_by_user_id(&user).await?, 1);
//!
//! let revocation = Revocation::new(
//!     Timestamp::parse("2026-11-27T11:00:00Z")?,
//!     RevokeReasonCode::parse("logout")?,
//!     RevokeActorType::parse("user")?,
//!     RevokeActorId::empty(),
//! )?;
//! let outcome = store
//!     .revoke_all_by_user_id(&RevokeUserSessionsInput { user_id: user.clone(), revocation })
//!     .await?;
//! assert_eq!(outcome.sessions().len(), 1);
//! assert!(store.check(CheckMode::Report).await?.is_clean());
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::future::Future;

use authsession_core::op::{Created, Page, PageRequest, RevokeAllReport};
use authsession_core::{
    DeviceSessionId, KeySpace, RevokeSessionInput, RevokeSessionOutcome, RevokeUserSessionsInput,
    RevokeUserSessionsOutcome, Session, UserId,
};

mod admin;
pub mod backend;
mod cache;
mod check;
#[cfg(feature = "cluster")]
mod cluster_config;
#[cfg(feature = "cluster")]
mod cluster_store;
mod config;
mod connect;
mod error;
mod memory;
mod migrate;
mod redis_store;
mod revoke_all;
mod store;
mod telemetry;

pub use admin::{CheckMode, SessionAdmin};
pub use authsession_core::op::SweepReport;
#[cfg(feature = "cluster")]
pub use backend::ClusterBackend;
pub use backend::{Backend, BackendInfo, MemoryBackend, RedisBackend};
pub use cache::{CacheConfig, CacheStats, NearCache};
pub use check::CheckReport;
#[cfg(feature = "cluster")]
pub use cluster_config::ClusterConfig;
pub use config::{RedisConfig, RetryPolicy, StoreSettings};
pub use error::{Error, ErrorKind};
pub use migrate::{MigrateDifference, MigrateReport};
pub use revoke_all::RevokeAllOptions;
pub use store::{Clock, Store};

/// The core crate, re-exported so users name one version of its types.
pub use authsession_core as core;

/// A store on the in-memory model (same semantics as Redis): for tests and
/// the CLI's default.
pub type MemorySessionStore = Store<MemoryBackend>;

/// A store on one standalone Redis server.
pub type RedisSessionStore = Store<RedisBackend>;

/// A store on a Redis Cluster (feature `cluster`), in the tagged layout.
#[cfg(feature = "cluster")]
pub type ClusterSessionStore = Store<ClusterBackend>;

/// The device-session operations a service uses. Every method validates
/// its input before any I/O, and every mutation is atomic.
pub trait SessionStore: Send + Sync {
    /// The server is reachable (within the operation timeout).
    fn ping(&self) -> impl Future<Output = Result<(), Error>> + Send;

    /// The session `id`, strictly decoded. Errors: `not_found` (also past
    /// its retention), `corrupt` (naming the record key). 1 round trip in
    /// the reference layout, 2 in the tagged one.
    fn get(&self, id: &DeviceSessionId) -> impl Future<Output = Result<Session, Error>> + Send;

    /// The session `id` if it is `user`'s (another user's is `not_found`):
    /// 1 round trip in every layout.
    fn get_for_user(
        &self,
        user: &UserId,
        id: &DeviceSessionId,
    ) -> impl Future<Output = Result<Session, Error>> + Send;

    /// Every session of `user` (the all-sessions index), newest
    /// `created_at` first, ties by id bytes ascending. One large read for
    /// a huge user: prefer [`SessionStore::list_page`]. Errors: `corrupt`
    /// when the index names a missing, foreign or undecodable session
    /// (confirmed on one consistent view; concurrent changes are retried).
    fn list_by_user_id(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<Vec<Session>, Error>> + Send;

    /// One page of `user`'s sessions in list order (keyset pagination:
    /// ≤ 2 round trips and O(limit) work per page at any size). Errors:
    /// `invalid_cursor`.
    fn list_page(
        &self,
        user: &UserId,
        request: &PageRequest,
    ) -> impl Future<Output = Result<Page, Error>> + Send;

    /// The number of entries in `user`'s active index.
    fn count_active_by_user_id(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Creates `session` if its id is free: the record plus its index
    /// entries. Errors: `conflict` when the id exists (or belongs to
    /// another user), `session_limit` at the active-session limit with the
    /// `reject` policy. With `revoke-oldest`, the sessions revoked to make
    /// room are in the outcome.
    fn create(&self, session: &Session) -> impl Future<Output = Result<Created, Error>> + Send;

    /// Revokes one active session (`Revoked` with the new state), or
    /// reports `AlreadyRevoked` with the stored session, writing nothing.
    /// Errors: `not_found`; `invalid_input` when the revocation is before
    /// the session's creation (nothing written); `corrupt`.
    fn revoke(
        &self,
        input: &RevokeSessionInput,
    ) -> impl Future<Output = Result<RevokeSessionOutcome, Error>> + Send;

    /// [`SessionStore::revoke`] in the "now" form: `input.revocation.at` is
    /// the caller's current time, not a time it chose, so a session dated
    /// after it (created by a service whose clock is ahead) is revoked all
    /// the same, at its own creation time. (An explicit time before the
    /// creation stays `invalid_input` with [`SessionStore::revoke`].)
    fn revoke_now(
        &self,
        input: &RevokeSessionInput,
    ) -> impl Future<Output = Result<RevokeSessionOutcome, Error>> + Send;

    /// Revokes every session of the user that is active when the call
    /// begins, whatever its creation time (one dated after the revocation
    /// is revoked at its own creation time; sessions created while the
    /// call runs may stay active), in atomic batches, also those the
    /// active index lost (found through the all-sessions index); returns
    /// them newest first, or `NoActiveSessions`. Retries retryable
    /// failures while batches keep being applied
    /// ([`RevokeAllOptions::default`]). Errors: `partially_revoked` when a
    /// member or key could not be revoked (undecodable, another user's,
    /// missing, wrong type) — every other session is revoked and
    /// [`Error::revoke_all_report`] names the rest; after giving up,
    /// the last failure's kind, with the report so far.
    fn revoke_all_by_user_id(
        &self,
        input: &RevokeUserSessionsInput,
    ) -> impl Future<Output = Result<RevokeUserSessionsOutcome, Error>> + Send;

    /// [`SessionStore::revoke_all_by_user_id`] that only counts: constant
    /// memory at any number of sessions.
    fn revoke_all_count(
        &self,
        input: &RevokeUserSessionsInput,
    ) -> impl Future<Output = Result<RevokeAllReport, Error>> + Send;

    /// [`SessionStore::revoke_all_by_user_id`] with `options` (collect or
    /// count, failures in a row before giving up, an overall deadline, a
    /// progress callback); the whole report, drift repaired included.
    fn revoke_all_with(
        &self,
        input: &RevokeUserSessionsInput,
        options: &RevokeAllOptions,
    ) -> impl Future<Output = Result<RevokeAllReport, Error>> + Send;

    /// Where this store keeps records and indexes.
    fn key_space(&self) -> &KeySpace;
}

/// A shared store is a store (e.g. one store behind many tasks).
impl<T: SessionStore + ?Sized> SessionStore for std::sync::Arc<T> {
    fn ping(&self) -> impl Future<Output = Result<(), Error>> + Send {
        (**self).ping()
    }

    fn get(&self, id: &DeviceSessionId) -> impl Future<Output = Result<Session, Error>> + Send {
        (**self).get(id)
    }

    fn get_for_user(
        &self,
        user: &UserId,
        id: &DeviceSessionId,
    ) -> impl Future<Output = Result<Session, Error>> + Send {
        (**self).get_for_user(user, id)
    }

    fn list_by_user_id(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<Vec<Session>, Error>> + Send {
        (**self).list_by_user_id(user)
    }

    fn list_page(
        &self,
        user: &UserId,
        request: &PageRequest,
    ) -> impl Future<Output = Result<Page, Error>> + Send {
        (**self).list_page(user, request)
    }

    fn count_active_by_user_id(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<u64, Error>> + Send {
        (**self).count_active_by_user_id(user)
    }

    fn create(&self, session: &Session) -> impl Future<Output = Result<Created, Error>> + Send {
        (**self).create(session)
    }

    fn revoke(
        &self,
        input: &RevokeSessionInput,
    ) -> impl Future<Output = Result<RevokeSessionOutcome, Error>> + Send {
        (**self).revoke(input)
    }

    fn revoke_now(
        &self,
        input: &RevokeSessionInput,
    ) -> impl Future<Output = Result<RevokeSessionOutcome, Error>> + Send {
        (**self).revoke_now(input)
    }

    fn revoke_all_by_user_id(
        &self,
        input: &RevokeUserSessionsInput,
    ) -> impl Future<Output = Result<RevokeUserSessionsOutcome, Error>> + Send {
        (**self).revoke_all_by_user_id(input)
    }

    fn revoke_all_with(
        &self,
        input: &RevokeUserSessionsInput,
        options: &RevokeAllOptions,
    ) -> impl Future<Output = Result<RevokeAllReport, Error>> + Send {
        (**self).revoke_all_with(input, options)
    }

    fn revoke_all_count(
        &self,
        input: &RevokeUserSessionsInput,
    ) -> impl Future<Output = Result<RevokeAllReport, Error>> + Send {
        (**self).revoke_all_count(input)
    }

    fn key_space(&self) -> &KeySpace {
        (**self).key_space()
    }
}

/// A shared store can be maintained.
impl<T: SessionAdmin + ?Sized> SessionAdmin for std::sync::Arc<T> {
    fn check(&self, mode: CheckMode) -> impl Future<Output = Result<CheckReport, Error>> + Send {
        (**self).check(mode)
    }

    fn check_with_progress(
        &self,
        mode: CheckMode,
        progress: &(dyn Fn(u64) + Sync),
    ) -> impl Future<Output = Result<CheckReport, Error>> + Send {
        (**self).check_with_progress(mode, progress)
    }

    fn sweep(&self) -> impl Future<Output = Result<SweepReport, Error>> + Send {
        (**self).sweep()
    }

    fn sweep_with_progress(
        &self,
        progress: &(dyn Fn(u64) + Sync),
    ) -> impl Future<Output = Result<SweepReport, Error>> + Send {
        (**self).sweep_with_progress(progress)
    }

    fn purge(&self) -> impl Future<Output = Result<u64, Error>> + Send {
        (**self).purge()
    }
}
