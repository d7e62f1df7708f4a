//! Golden vectors from the Go reference adapter (data files copied from
//! `shared/vectors`): our encoder must reproduce `payload` byte for byte,
//! our decoder must accept it and return `session`, and must reject every
//! invalid payload.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use authsession_core::{decode, encode, DeviceSessionId, IndexScore, KeySpace, Session, UserId};
use base64::Engine as _;
use serde::Deserialize;

#[derive(Deserialize)]
struct Valid {
    cases: Vec<ValidCase>,
}

#[derive(Deserialize)]
struct ValidCase {
    name: String,
    device_session_id: String,
    session: Session,
    payload: String,
    payload_b64: String,
    created_at_score: f64,
    created_at_score_arg: String,
    session_key_component: String,
    user_key_component: String,
}

#[derive(Deserialize)]
struct Invalid {
    cases: Vec<InvalidCase>,
}

#[derive(Deserialize)]
struct InvalidCase {
    name: String,
    device_session_id: String,
    device_session_id_b64: String,
    payload_b64: String,
    error_kind: String,
}

fn valid() -> Vec<ValidCase> {
    serde_json::from_str::<Valid>(include_str!("data/valid.json"))
        .unwrap()
        .cases
}

fn invalid() -> Vec<InvalidCase> {
    serde_json::from_str::<Invalid>(include_str!("data/invalid.json"))
        .unwrap()
        .cases
}

fn b64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

#[test]
fn all_valid_vectors_encode_byte_for_byte() {
    let cases = valid();
    assert_eq!(cases.len(), 53);
    for case in &cases {
        let bytes = encode(&case.session);
        assert_eq!(bytes, b64(&case.payload_b64), "{}", case.name);
        assert_eq!(bytes, case.payload.as_bytes(), "{}", case.name);
    }
}

#[test]
fn all_valid_vectors_decode_to_their_session() {
    for case in valid() {
        let id = DeviceSessionId::parse(case.device_session_id.as_str()).unwrap();
        let decoded =
            decode(&id, &b64(&case.payload_b64)).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(decoded, case.session, "{}", case.name);
        // The session object form round-trips through serde too.
        let json = serde_json::to_value(&decoded).unwrap();
        assert_eq!(
            serde_json::from_value::<Session>(json).unwrap(),
            decoded,
            "{}",
            case.name
        );
    }
}

#[test]
fn all_valid_vectors_scores_and_keys() {
    let keys = KeySpace::default();
    for case in valid() {
        let score = IndexScore::of(case.session.created_at());
        assert_eq!(score.as_f64(), case.created_at_score, "{}", case.name);
        assert_eq!(
            score.to_string(),
            case.created_at_score_arg,
            "{}",
            case.name
        );
        let id = case.session.id();
        assert_eq!(
            keys.reference_record_key(id),
            format!("authsession:session:{}", case.session_key_component),
            "{}",
            case.name
        );
        let user: &UserId = case.session.user_id();
        assert_eq!(
            keys.user_sessions_key(user),
            format!("authsession:user_sessions:{}", case.user_key_component),
            "{}",
            case.name
        );
        assert_eq!(
            keys.user_active_sessions_key(user),
            format!(
                "authsession:user_active_sessions:{}",
                case.user_key_component
            ),
            "{}",
            case.name
        );
    }
}

#[test]
fn all_invalid_vectors_are_rejected_with_a_kind() {
    let cases = invalid();
    assert!(cases.len() >= 190);
    let mut checked = 0;
    for case in &cases {
        let raw_id = b64(&case.device_session_id_b64);
        let Ok(requested) = String::from_utf8(raw_id) else {
            // `id_mismatch_invalid_utf8_requested`: a UTF-8 API cannot ask for it.
            assert_eq!(case.name, "id_mismatch_invalid_utf8_requested");
            continue;
        };
        assert_eq!(requested, case.device_session_id, "{}", case.name);
        let payload = b64(&case.payload_b64);
        let kind = match DeviceSessionId::parse(requested.as_str()) {
            // The requested id itself is invalid (e.g. ""), so no record can match it.
            Err(err) => err.kind(),
            Ok(id) => match decode(&id, &payload) {
                Ok(session) => panic!("{}: accepted {session:?}", case.name),
                Err(err) => err.kind(),
            },
        };
        assert!(
            !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{}",
            case.name
        );
        checked += 1;
    }
    assert_eq!(checked, cases.len() - 1);
}

/// Our kinds refine the reference's coarse ones; where the mapping is
/// one-to-one it must hold.
#[test]
fn invalid_vector_kinds_refine_the_reference() {
    for case in invalid()
        .into_iter()
        .filter(|c| c.name != "id_mismatch_invalid_utf8_requested")
    {
        let Ok(id) = DeviceSessionId::parse(case.device_session_id.as_str()) else {
            continue;
        };
        let Err(err) = decode(&id, &b64(&case.payload_b64)) else {
            continue;
        };
        let expected: &[&str] = match case.error_kind.as_str() {
            "unknown_field" => &["unknown_field", "trailing_data"],
            "trailing_json" => &["trailing_data"],
            "json_syntax" => &["malformed_json", "trailing_data"],
            "json_eof" => &["malformed_json", "trailing_data"],
            "json_type" => &["invalid_type", "not_an_object", "trailing_data"],
            "timestamp_noncanonical" => &["non_canonical_timestamp"],
            "timestamp_parse" => &["invalid_timestamp"],
            "timestamp_empty" => &[
                "invalid_timestamp",
                "missing_field",
                "null_value",
                "not_an_object",
            ],
            "base64" => &["invalid_public_key"],
            "key_length" => &["invalid_public_key", "missing_field", "null_value"],
            "revocation_partial" => &[
                "partial_revocation",
                "null_value",
                "invalid_reason_code",
                "invalid_actor_type",
                "invalid_actor_id",
            ],
            "id_mismatch" => &["id_mismatch", "unknown_field", "duplicate_field"],
            _ => continue,
        };
        assert!(
            expected.contains(&err.kind()),
            "{}: reference {}, ours {} ({err})",
            case.name,
            case.error_kind,
            err.kind()
        );
    }
}
