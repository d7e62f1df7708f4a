//! The assertions behind authsession's fuzz targets, in one place.
//!
//! Each `check_*` function takes the raw bytes of one fuzz input and panics
//! when a property fails. The cargo-fuzz targets (nightly, `fuzz/`) call
//! them, and so does the stable `tests/tests/fuzz_replay.rs`, which replays
//! the committed corpus and every regression input — so CI checks fuzz
//! findings without nightly, through exactly the same assertions.
#![forbid(unsafe_code)]

use arbitrary::{Arbitrary, Unstructured};
use authsession_core::codec::{self, DecodeError};
use authsession_core::{DeviceSessionId, Session};
use serde_json::{Map, Value};

mod seeds;
mod transitions;

pub use seeds::{encode_transitions, transitions_seeds};
pub use transitions::{check_transitions, describe_transitions};

/// The byte separating the expected id from the payload in a
/// `decode_record` input. An id can never contain it (no control
/// characters), so the format is unambiguous.
pub const ID_SEPARATOR: u8 = b'\n';

/// Builds a `decode_record` input: `id`, a newline, then the record bytes.
pub fn decode_record_input(id: &str, payload: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(id.len() + 1 + payload.len());
    input.extend_from_slice(id.as_bytes());
    input.push(ID_SEPARATOR);
    input.extend_from_slice(payload);
    input
}

/// `decode_record`: input is `<expected id>\n<record bytes>` (without a
/// newline, the whole input is the record and no id is checked).
///
/// - decoding never panics, and every error has a non-empty snake_case
///   kind;
/// - whatever is accepted is a JSON object whose fields say exactly what
///   the decoded session says (checked with plain `serde_json`, not the
///   codec);
/// - it re-encodes to bytes that decode to the same session, and
///   re-encoding those is a fixed point;
/// - with an expected id: decoding succeeds exactly when the record's id
///   is that id, else fails with `id_mismatch`; a rejected record fails
///   the same way with or without the id.
pub fn check_decode_record(data: &[u8]) {
    let (id, payload) = match data.iter().position(|&b| b == ID_SEPARATOR) {
        Some(at) => (
            data.get(..at)
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|s| DeviceSessionId::parse(s).ok()),
            data.get(at + 1..).unwrap_or_default(),
        ),
        None => (None, data),
    };

    let unchecked = codec::decode_unchecked(payload);
    match &unchecked {
        Ok(session) => {
            assert_same_fields(&json_object(payload), session);
            assert_reencodes(session);
        }
        Err(error) => assert_well_formed_error(error),
    }

    if let Some(id) = id {
        let checked = codec::decode(&id, payload);
        match (&unchecked, &checked) {
            (Ok(session), Ok(decoded)) => {
                assert_eq!(session, decoded);
                assert_eq!(decoded.id(), &id);
            }
            (Ok(session), Err(error)) => {
                assert_ne!(session.id(), &id, "rejected its own id: {error}");
                assert_eq!(error.kind(), "id_mismatch", "{error}");
            }
            (Err(first), Err(second)) => assert_eq!(first, second),
            (Err(error), Ok(decoded)) => {
                panic!("decode accepted {decoded:?} that decode_unchecked rejects: {error}")
            }
        }
    }
}

/// `encode_roundtrip`: the input is shaped by `arbitrary` into a valid
/// session (core's private `arbitrary` feature: only valid values exist).
///
/// - encode → decode is the identity, and `encode_into` appends the same
///   bytes;
/// - the bytes are UTF-8 JSON with no raw `<`, `>`, `&`, U+2028, U+2029 or
///   control character (Go's HTML-safe escaping), whose fields say exactly
///   what the session says, in the reference's key order;
/// - decoding them for any other id fails with `id_mismatch`.
pub fn check_encode_roundtrip(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(session) = Session::arbitrary(&mut u) else {
        return;
    };
    let bytes = codec::encode(&session);

    let text = std::str::from_utf8(&bytes).expect("encoding is UTF-8");
    if let Some(raw) = text
        .chars()
        .find(|c| matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') || c.is_control())
    {
        panic!("unescaped {raw:?} in {text}");
    }
    assert_eq!(codec::decode(session.id(), &bytes).as_ref(), Ok(&session));

    let mut appended = b"prefix".to_vec();
    codec::encode_into(&session, &mut appended);
    assert_eq!(appended.get(6..), Some(bytes.as_slice()));

    assert_same_fields(&json_object(&bytes), &session);
    assert_eq!(key_order(&bytes), expected_key_order(&session), "{text}");

    let other = DeviceSessionId::arbitrary(&mut u)
        .ok()
        .filter(|other| other != session.id())
        .unwrap_or_else(|| {
            let fallback = if session.id().as_str() == "x" {
                "y"
            } else {
                "x"
            };
            DeviceSessionId::parse(fallback).expect("literal id is valid")
        });
    let error = codec::decode(&other, &bytes).expect_err("decoded under another id");
    assert_eq!(error.kind(), "id_mismatch", "{error}");
}

/// A stable kind is non-empty snake_case: `[a-z][a-z0-9_]*`, no `__`, no
/// trailing `_`.
pub fn is_snake_case(kind: &str) -> bool {
    let mut bytes = kind.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !kind.contains("__")
        && !kind.ends_with('_')
}

fn assert_well_formed_error(error: &DecodeError) {
    assert!(is_snake_case(error.kind()), "kind {:?}", error.kind());
    // Display and the field accessor must not panic either.
    assert!(!error.to_string().is_empty());
    let _ = error.field();
}

fn assert_reencodes(session: &Session) {
    let first = codec::encode(session);
    let again = codec::decode(session.id(), &first)
        .unwrap_or_else(|e| panic!("re-encoding {session:?} does not decode: {e}"));
    assert_eq!(&again, session, "re-encoded record decodes differently");
    assert_eq!(
        codec::encode(&again),
        first,
        "re-encoding is not a fixed point"
    );
}

/// The record parsed as a plain JSON object. serde_json keeps the last of
/// duplicate keys; the codec rejects duplicates, so for accepted records
/// it does not matter.
fn json_object(bytes: &[u8]) -> Map<String, Value> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(object)) => object,
        other => panic!("accepted record is not a JSON object: {other:?}"),
    }
}

/// Every field of `object` is a string saying what `session` says, and
/// nothing else is there.
fn assert_same_fields(object: &Map<String, Value>, session: &Session) {
    let revocation = session.revocation();
    let mut expected = vec![
        ("device_session_id", session.id().as_str().to_owned()),
        ("user_id", session.user_id().as_str().to_owned()),
        (
            "client_public_key_base64",
            session.client_public_key().to_base64(),
        ),
        ("status", session.status().as_str().to_owned()),
        ("created_at", session.created_at().to_string()),
    ];
    if let Some(r) = revocation {
        expected.push(("revoked_at", r.at().to_string()));
        expected.push(("revoke_reason_code", r.reason_code().as_str().to_owned()));
        expected.push(("revoke_actor_type", r.actor_type().as_str().to_owned()));
        // An empty actor id may be written or omitted; it means the same.
        if !r.actor_id().is_empty() || object.contains_key("revoke_actor_id") {
            expected.push(("revoke_actor_id", r.actor_id().as_str().to_owned()));
        }
    }
    for (key, value) in &expected {
        assert_eq!(
            object.get(*key).and_then(Value::as_str),
            Some(value.as_str()),
            "field {key}"
        );
    }
    assert_eq!(object.len(), expected.len(), "extra fields in {object:?}");
}

/// The top-level keys of a JSON object, in written order (serde_json's
/// `Map` sorts them unless a feature is enabled workspace-wide).
fn key_order(bytes: &[u8]) -> Vec<String> {
    struct Keys(Vec<String>);
    impl<'de> serde::Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct KeysVisitor;
            impl<'de> serde::de::Visitor<'de> for KeysVisitor {
                type Value = Keys;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some(key) = map.next_key::<String>()? {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        keys.push(key);
                    }
                    Ok(Keys(keys))
                }
            }
            deserializer.deserialize_map(KeysVisitor)
        }
    }
    serde_json::from_slice::<Keys>(bytes)
        .expect("encoding is a JSON object")
        .0
}

fn expected_key_order(session: &Session) -> Vec<&'static str> {
    let mut keys = vec![
        "device_session_id",
        "user_id",
        "client_public_key_base64",
        "status",
        "created_at",
    ];
    if let Some(r) = session.revocation() {
        keys.extend(["revoked_at", "revoke_reason_code", "revoke_actor_type"]);
        if !r.actor_id().is_empty() {
            keys.push("revoke_actor_id");
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case() {
        for good in ["a", "id_mismatch", "a1_b2"] {
            assert!(is_snake_case(good), "{good}");
        }
        for bad in ["", "A", "_a", "a_", "a__b", "1a", "a-b", "a b"] {
            assert!(!is_snake_case(bad), "{bad}");
        }
    }
}
