//! The pure model of authsession's device sessions.
//!
//! **Sans-IO contract:** this crate performs no I/O, reads no clock, spawns
//! nothing and has no async code. Time is always a parameter
//! ([`Timestamp`]); storage is only ever *described*: a state transition
//! takes the bytes the caller read and returns a [`Plan`] — preconditions
//! that must still hold plus the writes to make — which a driver applies
//! atomically (Lua against Redis, a mutex in memory) or discards. It builds
//! for `wasm32-unknown-unknown`.
//!
//! What lives here, and only here:
//! - the domain types ([`DeviceSessionId`], [`UserId`], [`ClientPublicKey`],
//!   [`Session`], …): validating newtypes, so an invalid value cannot exist
//!   and serde cannot bypass the checks;
//! - the stored record format ([`codec`]): an encoder byte-identical to the
//!   Go reference adapter and a strict decoder;
//! - the key space and index scores ([`KeySpace`], [`IndexScore`]);
//! - ordering ([`newest_first`]);
//! - the state transitions ([`transition`]) and the plan vocabulary
//!   ([`plan`]), plus a pure in-memory plan executor ([`model::MemoryKv`])
//!   used by the in-memory store, tests and fuzzers;
//! - the consistency audit behind `authsession check` ([`audit`]).
//!
//! Every error has a stable, machine-readable `kind()` string shared by the
//! driver, the CLI and the WASM build.
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

pub mod audit;
pub mod codec;
mod error;
mod ids;
mod keys;
pub mod model;
mod order;
pub mod plan;
mod session;
mod timestamp;
pub mod transition;

#[cfg(feature = "arbitrary")]
mod arbitrary_impls;

pub use codec::{decode, encode, DecodeError};
pub use error::{Field, ValidationError};
pub use ids::{
    ClientPublicKey, DeviceSessionId, RevokeActorId, RevokeActorType, RevokeReasonCode, UserId,
};
pub use keys::{prefixed_key, IndexScore, KeySpace, DEFAULT_KEY_BASE};
pub use order::{newest_first, sort_newest_first};
pub use plan::Plan;
pub use session::{
    Revocation, RevokeSessionInput, RevokeSessionOutcome, RevokeUserSessionsInput,
    RevokeUserSessionsOutcome, Session, Status,
};
pub use timestamp::{CanonicalText, Timestamp};
pub use transition::TransitionError;
