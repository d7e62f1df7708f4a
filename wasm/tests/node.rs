//! The exports called as JS calls them, inside a real JS engine:
//! `cargo test -p authsession-wasm --target wasm32-unknown-unknown` with
//! `wasm-bindgen-test-runner` (Node). On native targets there is no JS
//! engine, so this file is empty there.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use authsession_core::{DeviceSessionId, KeySpace, Layout, UserId};
use authsession_wasm::{
    decode_session_record, encode_session_record, require_active_session, session_key,
    session_owner_key, tagged_session_key, tagged_user_active_sessions_key,
    tagged_user_sessions_key, user_active_sessions_key, user_sessions_key,
};
use js_sys::{Reflect, Uint8Array, JSON};
use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::wasm_bindgen_test;

fn cases(json: &str) -> Vec<Value> {
    let doc: Value = serde_json::from_str(json).unwrap();
    doc["cases"].as_array().unwrap().clone()
}

fn valid() -> Vec<Value> {
    cases(include_str!("../../core/tests/data/valid.json"))
}

fn invalid() -> Vec<Value> {
    cases(include_str!("../../core/tests/data/invalid.json"))
}

fn s(value: &Value) -> JsValue {
    JsValue::from_str(value.as_str().unwrap())
}

fn b64(text: &str) -> Vec<u8> {
    // A tiny standard-base64 decoder keeps the test free of extra crates.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = alphabet.iter().position(|&a| a == c).unwrap() as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn kind_of(err: JsValue) -> String {
    assert!(err.is_instance_of::<js_sys::Error>());
    let error: &js_sys::Error = err.unchecked_ref();
    assert_eq!(String::from(error.name()), "AuthsessionError");
    Reflect::get(&err, &JsValue::from_str("kind"))
        .unwrap()
        .as_string()
        .unwrap()
}

fn json(value: &JsValue) -> Value {
    serde_json::from_str(&String::from(JSON::stringify(value).unwrap())).unwrap()
}

#[wasm_bindgen_test]
fn valid_vectors_decode_from_text_and_bytes_and_re_encode_exactly() {
    let cases = valid();
    assert!(cases.len() >= 50);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let bytes = b64(case["payload_b64"].as_str().unwrap());
        let id = s(&case["device_session_id"]);
        let from_text = decode_session_record(id.clone(), s(&case["payload"])).unwrap();
        let from_bytes =
            decode_session_record(id.clone(), Uint8Array::from(bytes.as_slice()).into()).unwrap();
        assert_eq!(json(&from_text), json(&from_bytes), "{name}");
        let session = json(&from_text);
        assert_eq!(session["deviceSessionId"], case["session"]["id"], "{name}");
        assert_eq!(session["userId"], case["session"]["user_id"], "{name}");
        assert_eq!(
            session["clientPublicKey"], case["session"]["client_public_key_b64"],
            "{name}"
        );
        assert_eq!(
            session["createdAt"], case["session"]["created_at"],
            "{name}"
        );
        assert_eq!(encode_session_record(from_text).unwrap(), bytes, "{name}");
    }
}

#[wasm_bindgen_test]
fn invalid_vectors_throw_errors_with_a_kind() {
    let mut checked = 0;
    for case in invalid() {
        let name = case["name"].as_str().unwrap();
        if name == "id_mismatch_invalid_utf8_requested" {
            continue;
        }
        let bytes = b64(case["payload_b64"].as_str().unwrap());
        let err = decode_session_record(
            s(&case["device_session_id"]),
            Uint8Array::from(bytes.as_slice()).into(),
        )
        .unwrap_err();
        let kind = kind_of(err);
        assert!(
            !kind.is_empty() && kind != "invalid_argument",
            "{name}: {kind}"
        );
        checked += 1;
    }
    assert!(checked >= 190);
}

#[wasm_bindgen_test]
fn require_active_session_checks_status_user_and_key() {
    let cases = valid();
    let active = cases.iter().find(|c| c["name"] == "active_basic").unwrap();
    let revoked = cases
        .iter()
        .find(|c| c["session"]["status"] == "revoked")
        .unwrap();
    let expect = |text: &str| Some(JSON::parse(text).unwrap().unchecked_into());
    let call = |case: &Value, e| {
        require_active_session(s(&case["device_session_id"]), s(&case["payload"]), e)
    };
    assert!(call(active, None).is_ok());
    assert!(call(active, expect(r#"{"userId":"user-1"}"#)).is_ok());
    assert_eq!(kind_of(call(revoked, None).unwrap_err()), "not_active");
    assert_eq!(
        kind_of(call(active, expect(r#"{"userId":"user-2"}"#)).unwrap_err()),
        "user_mismatch"
    );
    let other_key = r#"{"clientPublicKey":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}"#;
    assert_eq!(
        kind_of(call(active, expect(other_key)).unwrap_err()),
        "key_mismatch"
    );
    assert_eq!(
        kind_of(call(active, expect(r#"{"user":"user-1"}"#)).unwrap_err()),
        "invalid_argument"
    );
}

#[wasm_bindgen_test]
fn keys_and_wrong_argument_types() {
    assert_eq!(
        session_key(&"authsession:session:".into(), &"dev-1".into()).unwrap(),
        "authsession:session:ZGV2LTE"
    );
    assert_eq!(
        user_sessions_key(&"u:".into(), &"user-1".into()).unwrap(),
        "u:dXNlci0x"
    );
    assert_eq!(
        user_active_sessions_key(&"a:".into(), &"user-1".into()).unwrap(),
        "a:dXNlci0x"
    );
    assert_eq!(
        kind_of(session_key(&"".into(), &"dev-1".into()).unwrap_err()),
        "invalid_key_prefix"
    );
    assert_eq!(
        kind_of(session_key(&"p:".into(), &JsValue::from_f64(1.0)).unwrap_err()),
        "invalid_argument"
    );
    assert_eq!(
        kind_of(decode_session_record("dev-1".into(), JsValue::NULL).unwrap_err()),
        "invalid_argument"
    );
    assert_eq!(
        kind_of(encode_session_record(JsValue::from_str("{}")).unwrap_err()),
        "invalid_argument"
    );
}

#[wasm_bindgen_test]
fn tagged_keys_are_the_core_key_space_s() {
    let keys = KeySpace::with_base_and_layout("authsession:", Layout::Tagged).unwrap();
    let (user, id) = ("user-1", "dev-1");
    let (u, i) = (
        UserId::parse(user).unwrap(),
        DeviceSessionId::parse(id).unwrap(),
    );
    let [session, all, active] = keys.reference_prefixes();
    let js = |s: &str| JsValue::from_str(s);
    assert_eq!(
        tagged_session_key(&js(session), &js(user), &js(id)).unwrap(),
        keys.record_key(&u, &i)
    );
    assert_eq!(
        tagged_user_sessions_key(&js(all), &js(user)).unwrap(),
        keys.user_sessions_key(&u)
    );
    assert_eq!(
        tagged_user_active_sessions_key(&js(active), &js(user)).unwrap(),
        keys.user_active_sessions_key(&u)
    );
    assert_eq!(
        Some(session_owner_key(&js("authsession:session_owner:"), &js(id)).unwrap()),
        keys.owner_key(&i)
    );
    assert_eq!(
        kind_of(tagged_user_sessions_key(&js("a{b}:"), &js(user)).unwrap_err()),
        "invalid_key_prefix"
    );
    assert_eq!(
        kind_of(tagged_session_key(&js(session), &js(user), &js("")).unwrap_err()),
        "invalid_id"
    );
}
