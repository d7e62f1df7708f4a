//! JS API for validating stored session records at the edge.
//!
//! **Translation only.** Every rule lives in `authsession-core`: this crate
//! turns JS values into the core's validated types, calls the core, and
//! turns the results back into plain camelCase JS objects. Every failure
//! leaves through one adapter (`error::Failure`) as a JS `Error` whose
//! `kind` property is the core's stable kind, read through the core's one
//! vocabulary ([`authsession_core::Kind`]: decoding, validation, and
//! `requireActiveSession`'s checks, [`authsession_core::Expectation`]), or
//! the one kind this layer adds: `invalid_argument` (a JS value of the
//! wrong type or shape).
//!
//! JS objects cross as JSON text (`JSON.stringify`/`JSON.parse` on the JS
//! side, serde_json — already in the core — on this side), which keeps the
//! module small and fast. The pure halves (`parts::SessionParts`,
//! `parts::ExpectationInput`) hold no `JsValue`, so they are unit-tested
//! natively; the JS halves are tested under Node by `wasm-bindgen-test` and
//! the `node --test` suites.
//!
//! One job per file, so a change to one concern touches one file:
//!
//! | file | job |
//! |---|---|
//! | `exports.rs` | the exported functions: the JS names and signatures, nothing else |
//! | `types.rs` | the TypeScript declarations shipped in the `.d.ts` |
//! | `error.rs` | the one error adapter, `error::Failure` → `AuthsessionError` |
//! | `args.rs` | JS arguments → Rust strings and plain objects |
//! | `payload.rs` | a stored record (string or bytes) → the core's decoder |
//! | `scratch.rs` | the scratch buffer JS writes payloads into |
//! | `keys.rs` | the one body of the seven key functions |
//! | `parts.rs` | the JS shapes as plain Rust (pure, tested natively) |
//! | `output.rs` | a decoded session → a plain JS object |
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod args;
mod error;
mod exports;
mod keys;
mod output;
mod parts;
mod payload;
mod scratch;
mod types;

// The crate-root paths are the Rust API (the wasm-bindgen tests call them).
pub use exports::{
    decode_session_record, encode_session_record, require_active_session, session_key,
    session_owner_key, tagged_session_key, tagged_user_active_sessions_key,
    tagged_user_sessions_key, user_active_sessions_key, user_sessions_key, ExpectationArg,
};
