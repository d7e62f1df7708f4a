//! The TypeScript declarations of the shapes and kinds, shipped in the
//! generated `.d.ts` (the functions' own signatures are generated from
//! `exports.rs`). Kept as one text so the test below can hold `ErrorKind`
//! to the kinds actually thrown.

use wasm_bindgen::prelude::*;

/// The declarations. Read by the custom section below, which only a wasm
/// build emits, and by the unit tests.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const TYPES: &str = r#"
/** How a session's revocation is described (present exactly when `status` is `"revoked"`). */
export interface Revocation {
  /** Canonical RFC3339Nano UTC timestamp, e.g. `2026-11-27T10:00:00.5Z`. */
  at: string;
  /** `[a-z][a-z0-9_]*`, 1..=64 bytes. */
  reasonCode: string;
  /** `[a-z][a-z0-9_]*`, 1..=32 bytes. */
  actorType: string;
  /** 0..=256 bytes; `""` when there is none. */
  actorId: string;
}

/** A device session, as decoded from (or encoded to) a stored record. */
export interface Session {
  deviceSessionId: string;
  userId: string;
  /** The Ed25519 public key: standard base64 with padding (44 characters). */
  clientPublicKey: string;
  status: "active" | "revoked";
  /** Canonical RFC3339Nano UTC timestamp, e.g. `2026-11-27T10:00:00Z`. */
  createdAt: string;
  revocation: Revocation | null;
}

/** What `requireActiveSession` checks besides "valid and active". */
export interface Expectation {
  /** The session must belong to this user. */
  userId?: string;
  /** The session must carry this key (standard base64 with padding). */
  clientPublicKey?: string;
}

/** The `kind` of every error this package throws. */
export type ErrorKind =
  | "malformed_json" | "not_an_object" | "trailing_data" | "unknown_field"
  | "duplicate_field" | "null_value" | "invalid_type" | "missing_field"
  | "partial_revocation" | "id_mismatch"
  | "invalid_id" | "invalid_reason_code" | "invalid_actor_type" | "invalid_actor_id"
  | "invalid_key_prefix" | "invalid_status" | "invalid_public_key" | "invalid_timestamp"
  | "non_canonical_timestamp" | "timestamp_out_of_range" | "zero_timestamp"
  | "revoked_before_created" | "status_revocation_mismatch"
  | "not_active" | "user_mismatch" | "key_mismatch" | "invalid_argument";

/** Every function here throws an `Error` (named `AuthsessionError`) carrying a stable `kind`. */
export interface AuthsessionError extends Error {
  name: "AuthsessionError";
  kind: ErrorKind;
}
"#;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = TYPES;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::error::Failure;
    use authsession_core::{codec, DecodeError, DeviceSessionId, Field, Status};

    /// The kinds `ErrorKind` declares, from the TypeScript section.
    fn declared_kinds() -> Vec<&'static str> {
        let union = TYPES
            .split_once("export type ErrorKind =")
            .and_then(|(_, rest)| rest.split_once(';'))
            .map(|(union, _)| union)
            .unwrap();
        union
            .split('|')
            .map(|k| k.trim().trim_matches('"'))
            .filter(|k| !k.is_empty())
            .collect()
    }

    #[test]
    fn error_kind_declares_every_kind_thrown_exactly_once() {
        use authsession_core::{ExpectationError, ValidationError};
        let declared = declared_kinds();
        let mut unique = declared.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), declared.len(), "{declared:?}");
        let id = || "dev-1".to_owned();
        let thrown: Vec<Failure> = vec![
            ExpectationError::NotActive {
                id: id(),
                status: Status::Revoked,
            }
            .into(),
            ExpectationError::UserMismatch { id: id() }.into(),
            ExpectationError::KeyMismatch { id: id() }.into(),
            ValidationError::InvalidKeyPrefix { reason: "x" }.into(),
            ValidationError::Empty {
                field: Field::UserId,
            }
            .into(),
            DecodeError::MalformedJson {
                line: 0,
                column: 0,
                message: String::new(),
            }
            .into(),
            DecodeError::IdMismatch {
                expected: id(),
                actual: id(),
            }
            .into(),
            Failure::invalid_argument("x"),
        ];
        for failure in thrown {
            assert!(declared.contains(&failure.kind), "{failure:?}");
        }
        // Every record the core refuses is refused with a declared kind.
        let invalid: serde_json::Value =
            serde_json::from_str(include_str!("../../core/tests/data/invalid.json")).unwrap();
        let mut checked = 0;
        for case in invalid["cases"].as_array().unwrap() {
            // Those without a text form are covered by the Node suites.
            let (Some(id), Some(payload)) =
                (case["device_session_id"].as_str(), case["payload"].as_str())
            else {
                continue;
            };
            let failure = DeviceSessionId::parse(id)
                .map_err(Failure::from)
                .and_then(|id| codec::decode(&id, payload.as_bytes()).map_err(Failure::from))
                .unwrap_err();
            assert!(
                declared.contains(&failure.kind),
                "{}: {failure:?}",
                case["name"]
            );
            checked += 1;
        }
        assert!(checked >= 150, "{checked}");
    }
}
