//! The pure model of authsession's device sessions.
//!
//! **Sans-IO contract:** this crate performs no I/O, reads no clock, spawns
//! nothing and has no async code. Time is always a parameter
//! ([`Timestamp`]); storage is only ever *described*: a state transition
//! takes the bytes the caller read and returns a [`Plan`] — preconditions
//! that must still hold plus the writes to make — which a driver applies
//! atomically (Lua against Redis, a mutex in memory) or discards. "Now" is
//! a parameter of every operation that needs it (retention, the session
//! limit). It builds for `wasm32-unknown-unknown`.
//!
//! What lives here, and only here:
//! - the domain types ([`DeviceSessionId`], [`UserId`], [`ClientPublicKey`],
//!   [`Session`], …): validating newtypes, so an invalid value cannot exist
//!   and serde cannot bypass the checks;
//! - the stored record format ([`codec`]): an encoder byte-identical to the
//!   Go reference adapter and a strict decoder;
//! - the key space and index scores ([`KeySpace`], [`IndexScore`]);
//! - ordering ([`newest_first`]);
//! - what a holder of a record requires of it before trusting it
//!   ([`Expectation`]: active, this user's, this key);
//! - the operations ([`op`]): sans-IO state machines that say what to read
//!   and which [`Plan`] to apply, own the whole sequence (including
//!   confirmation and retry decisions) and are run by one reference loop
//!   ([`op::run`]) over the pure model ([`model::MemoryKv`]) in tests and
//!   fuzzers, and by the driver's one async loop against every backend;
//!   the I/O vocabulary is [`plan`];
//! - the consistency audit behind `authsession check` ([`audit`]).
//!
//! Every error has a stable, machine-readable kind through one trait,
//! [`Kind`], shared by the driver, the CLI and the WASM build.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
pub mod codec;
mod error;
mod expect;
mod ids;
mod keys;
pub mod model;
pub mod op;
mod order;
pub mod plan;
mod session;
#[cfg(test)]
mod test_support;
mod timestamp;

#[cfg(feature = "arbitrary")]
mod arbitrary_impls;

pub use codec::{decode, encode, DecodeError};
pub use error::{Field, ValidationError};
pub use expect::{Expectation, ExpectationError};
pub use ids::{
    ClientPublicKey, DeviceSessionId, RevokeActorId, RevokeActorType, RevokeReasonCode, UserId,
};
pub use keys::{
    prefixed_key, tagged_key, Index, IndexScore, KeyKind, KeySpace, Layout, DEFAULT_KEY_BASE,
};
pub use op::{Kind, TransitionError};
pub use order::{newest_first, sort_newest_first};
pub use plan::Plan;
pub use session::{
    Revocation, RevokeSessionInput, RevokeSessionOutcome, RevokeUserSessionsInput,
    RevokeUserSessionsOutcome, Session, Status,
};
pub use timestamp::{CanonicalText, Timestamp};
