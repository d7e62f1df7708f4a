//! Device-session stores executing `authsession-core`'s plans.
//!
//! - [`SessionStore`]: the operations of SPEC §6 (`get`, `list_by_user_id`,
//!   `count_active_by_user_id`, `create`, `revoke`,
//!   `revoke_all_by_user_id`), plus `ping`, `check` and `purge`.
//! - [`RedisSessionStore`]: one multiplexed, self-reconnecting connection;
//!   every mutation applies a core [`Plan`](authsession_core::Plan) in one
//!   generic Lua script (atomic, no `WATCH`), retried with jittered backoff
//!   when a concurrent change invalidated its reads.
//! - [`MemorySessionStore`]: the same flows over the core's in-memory
//!   model, for tests and the CLI's default.
//!
//! Both stores run each operation's flow from one generic implementation,
//! so outcomes, errors and ordering are identical. Domain rules (validation,
//! encoding, keys, ordering, what to write) live in the core only.
//!
//! Round trips per uncontended Redis operation: `get` 1 (`GET`), `count` 1
//! (`ZCARD`), `create` 1 (script), `list` ≤ 2 (`ZRANGE` + `MGET`),
//! `revoke` ≤ 2 (`GET` + script), `revoke_all` ≤ 3 (`ZRANGEBYSCORE` +
//! `MGET` + script) — independent of the number of sessions.
//!
//! ```
//! use authsession_driver::core::{
//!     ClientPublicKey, DeviceSessionId, KeySpace, Revocation, RevokeActorId, RevokeActorType,
//!     RevokeReasonCode, RevokeUserSessionsInput, Session, Timestamp, UserId,
//! };
//! use authsession_driver::{ErrorKind, MemorySessionStore, SessionStore};
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
//! assert!(store.check(false).await?.is_clean());
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

use std::future::Future;

use authsession_core::{
    DeviceSessionId, KeySpace, RevokeSessionInput, RevokeSessionOutcome, RevokeUserSessionsInput,
    RevokeUserSessionsOutcome, Session, UserId,
};

mod check;
mod config;
mod error;
mod exec;
mod memory;
mod ops;
mod redis_store;

pub use check::CheckReport;
pub use config::{RedisConfig, RetryPolicy};
pub use error::{Error, ErrorKind};
pub use memory::MemorySessionStore;
pub use redis_store::RedisSessionStore;

/// The core crate, re-exported so users name one version of its types.
pub use authsession_core as core;

/// A device-session store (SPEC §6). Every method validates its input
/// before any I/O, and every mutation is atomic.
pub trait SessionStore: Send + Sync {
    /// The server is reachable (within the operation timeout).
    fn ping(&self) -> impl Future<Output = Result<(), Error>> + Send;

    /// The session `id`, strictly decoded. Errors: `not_found`, `corrupt`
    /// (naming the record key).
    fn get(&self, id: &DeviceSessionId) -> impl Future<Output = Result<Session, Error>> + Send;

    /// Every session of `user` (the all-sessions index), newest
    /// `created_at` first, ties by id bytes ascending. Errors: `corrupt`
    /// when the index names a missing, foreign or undecodable session
    /// (confirmed on one consistent view; concurrent changes are retried).
    fn list_by_user_id(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<Vec<Session>, Error>> + Send;

    /// The number of entries in `user`'s active index.
    fn count_active_by_user_id(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Creates `session` if its id is free: the record plus its index
    /// entries (the active index only for an active session). Errors:
    /// `conflict` when the id exists.
    fn create(&self, session: &Session) -> impl Future<Output = Result<(), Error>> + Send;

    /// Revokes one active session (`Revoked` with the new state), or
    /// reports `AlreadyRevoked` with the stored session, writing nothing.
    /// Errors: `not_found`; `invalid_input` when the revocation is before
    /// the session's creation (nothing written); `corrupt`.
    fn revoke(
        &self,
        input: &RevokeSessionInput,
    ) -> impl Future<Output = Result<RevokeSessionOutcome, Error>> + Send;

    /// Revokes every active session of the user created at or before the
    /// revocation time (later ones stay active), newest first; or
    /// `NoActiveSessions`. Errors: `corrupt` when the active index names a
    /// missing, foreign, undecodable or revoked session on a consistent
    /// read (a concurrent change between reads is retried, never reported).
    fn revoke_all_by_user_id(
        &self,
        input: &RevokeUserSessionsInput,
    ) -> impl Future<Output = Result<RevokeUserSessionsOutcome, Error>> + Send;

    /// Audits this store's key space (`authsession_core::audit`): every
    /// record strictly decoded, both indexes compared with the records.
    /// With `repair`, also applies the audit's index repairs (re-auditing
    /// if the key space changed meanwhile); the report lists what was found
    /// before the repair.
    ///
    /// The scan takes many round trips (no overall deadline, each round
    /// trip bounded); the repair is one atomic plan guarded by every
    /// record's bytes, so on a very large key space it is a large script
    /// that holds the server while it runs. Keys of the wrong type (e.g. a
    /// string where an index belongs) are not reported by the scan; the
    /// operations report them as `corrupt`.
    fn check(&self, repair: bool) -> impl Future<Output = Result<CheckReport, Error>> + Send;

    /// Deletes every key of this store's key space (all three prefixes);
    /// returns how many. For benchmark cleanup and tests.
    fn purge(&self) -> impl Future<Output = Result<u64, Error>> + Send;

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

    fn list_by_user_id(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<Vec<Session>, Error>> + Send {
        (**self).list_by_user_id(user)
    }

    fn count_active_by_user_id(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<u64, Error>> + Send {
        (**self).count_active_by_user_id(user)
    }

    fn create(&self, session: &Session) -> impl Future<Output = Result<(), Error>> + Send {
        (**self).create(session)
    }

    fn revoke(
        &self,
        input: &RevokeSessionInput,
    ) -> impl Future<Output = Result<RevokeSessionOutcome, Error>> + Send {
        (**self).revoke(input)
    }

    fn revoke_all_by_user_id(
        &self,
        input: &RevokeUserSessionsInput,
    ) -> impl Future<Output = Result<RevokeUserSessionsOutcome, Error>> + Send {
        (**self).revoke_all_by_user_id(input)
    }

    fn check(&self, repair: bool) -> impl Future<Output = Result<CheckReport, Error>> + Send {
        (**self).check(repair)
    }

    fn purge(&self) -> impl Future<Output = Result<u64, Error>> + Send {
        (**self).purge()
    }

    fn key_space(&self) -> &KeySpace {
        (**self).key_space()
    }
}
