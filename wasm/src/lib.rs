//! JS API for validating stored session records at the edge.
//!
//! **Translation only.** Every rule lives in `authsession-core`: this crate
//! turns JS values into the core's validated types, calls the core, and
//! turns the results back into plain camelCase JS objects. Every failure
//! leaves through one adapter ([`Failure`]) as a JS `Error` whose `kind`
//! property is the core's stable kind, read through the core's one
//! vocabulary ([`authsession_core::Kind`]: decoding, validation, and
//! `requireActiveSession`'s checks, [`authsession_core::Expectation`]), or
//! the one kind this layer adds: `invalid_argument` (a JS value of the
//! wrong type or shape).
//!
//! JS objects cross as JSON text (`JSON.stringify`/`JSON.parse` on the JS
//! side, serde_json — already in the core — on this side), which keeps the
//! module small and fast. The pure halves ([`SessionParts`],
//! [`ExpectationInput`]) hold no `JsValue`, so they are unit-tested
//! natively; the JS halves are tested under Node by `wasm-bindgen-test` and
//! the `node --test` suites.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use authsession_core::{
    codec, prefixed_key, tagged_key, ClientPublicKey, DecodeError, DeviceSessionId, Expectation,
    Field, Kind, Layout, Revocation, RevokeActorId, RevokeActorType, RevokeReasonCode, Session,
    Status, Timestamp, UserId,
};
use js_sys::{JsString, Reflect, Uint8Array};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// The TypeScript declarations of the shapes and kinds (the functions'
/// own signatures are generated). Read by the custom section below, which
/// only a wasm build emits, and by the unit tests.
#[cfg_attr(not(test), allow(dead_code))]
const TYPES: &str = r#"
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

// ------------------------------------------------------------ the exports

#[wasm_bindgen]
extern "C" {
    /// The optional `expect` argument of `requireActiveSession`, typed as
    /// the `Expectation` interface in the TypeScript declarations.
    #[wasm_bindgen(typescript_type = "Expectation")]
    pub type ExpectationArg;
}

/// Strictly decodes the record stored under `id`'s key; throws unless it is
/// a valid record of exactly that id.
#[wasm_bindgen(js_name = decodeSessionRecord, unchecked_return_type = "Session")]
pub fn decode_session_record(
    #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
    #[wasm_bindgen(unchecked_param_type = "string | Uint8Array")] payload: JsValue,
) -> Result<JsValue, JsValue> {
    let session = decode(&id, &payload)?;
    Ok(to_js(&session)?)
}

/// Encodes a session into the exact bytes the reference stores.
#[wasm_bindgen(js_name = encodeSessionRecord)]
pub fn encode_session_record(
    #[wasm_bindgen(unchecked_param_type = "Session")] session: JsValue,
) -> Result<Vec<u8>, JsValue> {
    let session = SessionParts::from_js(&session)?.into_session()?;
    Ok(codec::encode(&session))
}

/// `prefix + base64url(id)`: the key of the record of `id` (reference
/// layout).
#[wasm_bindgen(js_name = sessionKey)]
pub fn session_key(
    #[wasm_bindgen(unchecked_param_type = "string")] prefix: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "string")] id: &JsValue,
) -> Result<String, JsValue> {
    derive_key(prefix, Layout::Reference, Part::Id(id), None)
}

/// `prefix + base64url(user)`: the key of the index of all sessions of
/// `user` (reference layout).
#[wasm_bindgen(js_name = userSessionsKey)]
pub fn user_sessions_key(
    #[wasm_bindgen(unchecked_param_type = "string")] prefix: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "string")] user: &JsValue,
) -> Result<String, JsValue> {
    derive_key(prefix, Layout::Reference, Part::User(user), None)
}

/// `prefix + base64url(user)`: the key of the index of active sessions of
/// `user` (reference layout).
#[wasm_bindgen(js_name = userActiveSessionsKey)]
pub fn user_active_sessions_key(
    #[wasm_bindgen(unchecked_param_type = "string")] prefix: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "string")] user: &JsValue,
) -> Result<String, JsValue> {
    derive_key(prefix, Layout::Reference, Part::User(user), None)
}

/// `prefix + "{" + base64url(userId) + "}" + base64url(id)`: the key of the
/// record of `id`, a session of `userId`, in the tagged layout (a Redis
/// Cluster deployment's: every key of a user carries the user's hash tag).
#[wasm_bindgen(js_name = taggedSessionKey)]
pub fn tagged_session_key(
    #[wasm_bindgen(unchecked_param_type = "string")] prefix: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "string", js_name = userId)] user: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "string")] id: &JsValue,
) -> Result<String, JsValue> {
    derive_key(prefix, Layout::Tagged, Part::User(user), Some(id))
}

/// `prefix + "{" + base64url(userId) + "}"`: the key of the index of all
/// sessions of `userId` in the tagged layout.
#[wasm_bindgen(js_name = taggedUserSessionsKey)]
pub fn tagged_user_sessions_key(
    #[wasm_bindgen(unchecked_param_type = "string")] prefix: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "string", js_name = userId)] user: &JsValue,
) -> Result<String, JsValue> {
    derive_key(prefix, Layout::Tagged, Part::User(user), None)
}

/// `prefix + "{" + base64url(userId) + "}"`: the key of the index of active
/// sessions of `userId` in the tagged layout.
#[wasm_bindgen(js_name = taggedUserActiveSessionsKey)]
pub fn tagged_user_active_sessions_key(
    #[wasm_bindgen(unchecked_param_type = "string")] prefix: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "string", js_name = userId)] user: &JsValue,
) -> Result<String, JsValue> {
    derive_key(prefix, Layout::Tagged, Part::User(user), None)
}

/// `prefix + "{" + base64url(id) + "}"`: the owner key of `id` in the
/// tagged layout (it holds the user id; it lives in the id's own slot).
#[wasm_bindgen(js_name = sessionOwnerKey)]
pub fn session_owner_key(
    #[wasm_bindgen(unchecked_param_type = "string")] prefix: &JsValue,
    #[wasm_bindgen(unchecked_param_type = "string")] id: &JsValue,
) -> Result<String, JsValue> {
    derive_key(prefix, Layout::Tagged, Part::Id(id), None)
}

/// Decodes like `decodeSessionRecord`, then returns the session only if it
/// is active and matches every expectation given.
#[wasm_bindgen(js_name = requireActiveSession, unchecked_return_type = "Session")]
pub fn require_active_session(
    #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
    #[wasm_bindgen(unchecked_param_type = "string | Uint8Array")] payload: JsValue,
    expect: Option<ExpectationArg>,
) -> Result<JsValue, JsValue> {
    // Every argument is checked before the record is looked at.
    let expectation = match expect {
        Some(expect) => ExpectationInput::from_js(&expect)?.parse()?,
        None => Expectation::default(),
    };
    let session = decode(&id, &payload)?;
    expectation.check(&session).map_err(Failure::from)?;
    Ok(to_js(&session)?)
}

// ------------------------------------------------------ the error adapter

/// The one way errors leave this crate: a JS `Error` named
/// `AuthsessionError` with a stable `kind` property. Kinds come from the
/// core's [`Kind`] vocabulary, whatever the error type; the one kind of
/// this layer's own is `invalid_argument`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    kind: &'static str,
    message: String,
}

impl Failure {
    /// The kind of a JS value of the wrong type or shape.
    const INVALID_ARGUMENT: &'static str = "invalid_argument";

    fn invalid_argument(message: impl Into<String>) -> Self {
        Self {
            kind: Self::INVALID_ARGUMENT,
            message: message.into(),
        }
    }

    /// The shared, non-generic half of `from` (one copy in the module).
    #[inline(never)]
    fn of(kind: &'static str, err: &dyn fmt::Display) -> Self {
        Self {
            kind,
            message: err.to_string(),
        }
    }
}

// `Failure` itself implements neither trait, so this does not overlap
// with `From<Failure> for Failure`.
impl<E: Kind + fmt::Display> From<E> for Failure {
    fn from(err: E) -> Self {
        Self::of(err.kind(), &err)
    }
}

impl From<Failure> for JsValue {
    fn from(failure: Failure) -> Self {
        let error = js_sys::Error::new(&failure.message);
        error.set_name("AuthsessionError");
        // Defining a property on a fresh, ordinary Error object cannot fail.
        let _ = Reflect::set(&error, &JsValue::from_str("kind"), &failure.kind.into());
        error.into()
    }
}

// ------------------------------------------------------- JS → Rust values

/// A JS argument that must be a string. Unpaired UTF-16 surrogates have no
/// UTF-8 form; rather than let them become U+FFFD silently, refuse them.
#[inline(never)]
fn text(value: &JsValue, what: &str) -> Result<String, Failure> {
    match value.as_string() {
        Some(text) if !has_unpaired_surrogates(value, &text) => Ok(text),
        Some(_) => Err(Failure::invalid_argument(format!(
            "{what} contains unpaired UTF-16 surrogates"
        ))),
        None => Err(Failure::invalid_argument(format!(
            "{what} must be a string"
        ))),
    }
}

/// `as_string` replaced any unpaired surrogate with U+FFFD, so only then is
/// the check of the original needed. Records are mostly ASCII, and
/// `is_ascii` is far cheaper than a substring search. The check itself is
/// the engine's `String.prototype.isWellFormed` (Node 20, workerd): one
/// call instead of one per code unit.
fn has_unpaired_surrogates(value: &JsValue, converted: &str) -> bool {
    !converted.is_ascii()
        && converted.contains('\u{FFFD}')
        && value
            .dyn_ref::<JsString>()
            .is_some_and(|s| !s.is_well_formed())
}

fn decode(id: &JsValue, payload: &JsValue) -> Result<Session, Failure> {
    let id = device_session_id(id)?;
    if let Some(text) = payload.dyn_ref::<JsString>() {
        return PAYLOAD.with(|scratch| {
            match scratch
                .try_borrow_mut()
                .ok()
                .as_mut()
                .and_then(|s| s.encode(text))
            {
                Some(utf8) => decode_text(&id, text, utf8),
                None => decode_text(&id, text, &text.as_string().unwrap_or_default()),
            }
        });
    }
    match payload.dyn_ref::<Uint8Array>() {
        Some(bytes) => PAYLOAD.with(|scratch| {
            match scratch
                .try_borrow_mut()
                .ok()
                .as_mut()
                .and_then(|s| s.copy(bytes))
            {
                Some(copy) => Ok(codec::decode(&id, copy)?),
                None => Ok(codec::decode(&id, &bytes.to_vec())?),
            }
        }),
        None => Err(Failure::invalid_argument(
            "payload must be a string or a Uint8Array",
        )),
    }
}

/// `text` as a `String` (U+FFFD for lone surrogates), like `as_string`
/// but through the scratch buffer when it fits (faster).
fn utf8_string(text: &JsString) -> String {
    PAYLOAD
        .with(|scratch| {
            let mut scratch = scratch.try_borrow_mut().ok()?;
            scratch.encode(text).map(str::to_owned)
        })
        .unwrap_or_else(|| text.as_string().unwrap_or_default())
}

fn decode_text(id: &DeviceSessionId, original: &JsString, utf8: &str) -> Result<Session, Failure> {
    // Lone surrogates are what invalid UTF-8 is to bytes: not JSON text.
    if has_unpaired_surrogates(original, utf8) {
        return Err(DecodeError::MalformedJson {
            line: 0,
            column: 0,
            message: "payload contains unpaired UTF-16 surrogates".to_owned(),
        }
        .into());
    }
    Ok(codec::decode(id, utf8.as_bytes())?)
}

#[wasm_bindgen]
extern "C" {
    /// The platform's `TextEncoder` (Node, workerd, browsers).
    type TextEncoder;
    #[wasm_bindgen(constructor)]
    fn new() -> TextEncoder;
    #[wasm_bindgen(method, js_name = encodeInto)]
    fn encode_into(this: &TextEncoder, source: &JsString, destination: &Uint8Array)
        -> EncodeResult;
    /// What `encodeInto` returns: `{ read, written }`.
    type EncodeResult;
    #[wasm_bindgen(method, getter)]
    fn written(this: &EncodeResult) -> u32;
}

thread_local! {
    static PAYLOAD: RefCell<Scratch> = RefCell::new(Scratch::new());
}

/// Payloads reach the decoder written by JS straight into this fixed buffer
/// through a cached view: strings by `TextEncoder.encodeInto` (measured
/// cheaper than wasm-bindgen's string hand-over, a JS loop per character
/// into a fresh allocation; same UTF-8, U+FFFD for lone surrogates), bytes by
/// one `Uint8Array.set` (no allocation, no per-call view of the memory).
struct Scratch {
    encoder: TextEncoder,
    buffer: Vec<u8>,
    /// A JS view of `buffer`; growing the wasm memory detaches it.
    view: Option<Uint8Array>,
}

impl Scratch {
    const LEN: usize = 4096;

    fn new() -> Self {
        Self {
            encoder: TextEncoder::new(),
            buffer: vec![0; Self::LEN],
            view: None,
        }
    }

    /// `text` as UTF-8, or `None` when it does not fit (the caller then
    /// takes the ordinary path).
    fn encode(&mut self, text: &JsString) -> Option<&str> {
        let view = self.take_view()?;
        let written = self.encoder.encode_into(text, &view).written() as usize;
        self.view = Some(view);
        // encodeInto stops before a character (≤ 4 bytes) that does not fit,
        // so only a result this far from the end is the whole string.
        if written + 4 > Self::LEN {
            return None;
        }
        std::str::from_utf8(self.buffer.get(..written)?).ok()
    }

    /// A copy of `bytes`, or `None` when they do not fit.
    fn copy(&mut self, bytes: &Uint8Array) -> Option<&[u8]> {
        let len = bytes.length() as usize;
        if len > Self::LEN {
            return None;
        }
        let view = self.take_view()?;
        view.set(bytes, 0);
        self.view = Some(view);
        self.buffer.get(..len)
    }

    /// The view of `buffer` (put it back after use), made afresh when
    /// growing the memory has detached it.
    fn take_view(&mut self) -> Option<Uint8Array> {
        match self.view.take() {
            Some(view) if view.length() != 0 => Some(view),
            _ => {
                let memory = wasm_bindgen::memory().unchecked_into::<js_sys::WebAssembly::Memory>();
                let start = u32::try_from(self.buffer.as_ptr() as usize).ok()?;
                let len = u32::try_from(self.buffer.len()).ok()?;
                Some(Uint8Array::new_with_byte_offset_and_length(
                    &memory.buffer(),
                    start,
                    len,
                ))
            }
        }
    }
}

/// The first component of a key: what its text must be.
#[derive(Clone, Copy)]
enum Part<'a> {
    /// A device session id (argument `id`).
    Id(&'a JsValue),
    /// A user id (argument `user` / `userId`).
    User(&'a JsValue),
}

/// The one body of every key function (seven exports share it, and take
/// their arguments by reference, which keeps the module small): the
/// components validated by the core first, then the prefix, then the core's
/// key derivation of `layout` — `prefix + b64url(first)`, or
/// `prefix + {b64url(first)}` followed by `b64url(id)` when given.
#[inline(never)]
fn derive_key(
    prefix: &JsValue,
    layout: Layout,
    first: Part<'_>,
    id: Option<&JsValue>,
) -> Result<String, JsValue> {
    Ok(key_text(prefix, layout, first, id)?)
}

fn key_text(
    prefix: &JsValue,
    layout: Layout,
    first: Part<'_>,
    id: Option<&JsValue>,
) -> Result<String, Failure> {
    let first = match first {
        Part::Id(id) => device_session_id(id)?.into_string(),
        Part::User(user) => UserId::parse(text(user, "user")?)?.into_string(),
    };
    let id = match id {
        Some(id) => Some(device_session_id(id)?),
        None => None,
    };
    let prefix = text(prefix, "prefix")?;
    Ok(match layout {
        Layout::Tagged => tagged_key(&prefix, &first, id.as_ref().map(DeviceSessionId::as_str))?,
        _ => prefixed_key(&prefix, &first)?,
    })
}

/// A device session id argument, validated by the core (one copy: every
/// function taking an id shares it).
#[inline(never)]
fn device_session_id(value: &JsValue) -> Result<DeviceSessionId, Failure> {
    Ok(DeviceSessionId::parse(text(value, "id")?)?)
}

/// A plain JS object argument, read through its JSON text: the conversion
/// `JSON.stringify` defines, then serde_json (already in the core) for the
/// shape. Unpaired surrogates come out of `stringify` as `\udXXX` escapes,
/// which serde_json refuses, so they cannot slip in as U+FFFD.
fn from_js_object<T: serde::de::DeserializeOwned>(
    value: &JsValue,
    what: &str,
) -> Result<T, Failure> {
    if !value.is_object() || js_sys::Array::is_array(value) {
        return Err(Failure::invalid_argument(format!(
            "{what} must be a plain object"
        )));
    }
    let json = js_sys::JSON::stringify(value)
        .ok()
        .filter(|json| json.is_string())
        .map(|json| utf8_string(&json))
        .ok_or_else(|| Failure::invalid_argument(format!("{what} is not JSON-serializable")))?;
    serde_json::from_str(&json).map_err(|err| Failure::invalid_argument(format!("{what}: {err}")))
}

thread_local! {
    /// The JSON text handed to `JSON.parse`, reused so that returning a
    /// session does not allocate (wasm is single-threaded and nothing here
    /// re-enters).
    static JSON_TEXT: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
}

#[wasm_bindgen]
extern "C" {
    // js_sys's binding catches exceptions through a wrapper closure per call;
    // JSON.parse of serde_json's output does not throw, so skip it.
    #[wasm_bindgen(js_namespace = JSON, js_name = parse)]
    fn parse_json(text: &str) -> JsValue;
}

/// The session as a plain JS object, via its JSON text (one `JSON.parse` is
/// cheaper than setting properties one by one).
fn to_js(session: &Session) -> Result<JsValue, Failure> {
    SessionParts::with(session, |parts| {
        JSON_TEXT.with(|cell| {
            // A JS exception passing through (stack overflow) would leave the
            // borrow held for good: then work in a fresh buffer.
            let mut fresh = Vec::new();
            let mut reused = cell.try_borrow_mut().ok();
            let json = reused.as_deref_mut().unwrap_or(&mut fresh);
            json.clear();
            serde_json::to_writer(&mut *json, parts)
                .map_err(|err| Failure::invalid_argument(err.to_string()))?;
            let text = std::str::from_utf8(json)
                .map_err(|_| Failure::invalid_argument("session JSON is not UTF-8"))?;
            Ok(parse_json(text))
        })
    })
}

impl SessionParts<'static> {
    fn from_js(value: &JsValue) -> Result<Self, Failure> {
        from_js_object(value, "session")
    }
}

/// `requireActiveSession`'s `expect` argument as JS hands it in.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExpectationInput {
    // Absent means "do not check"; `null` is refused rather than read as
    // absent, so a missing value upstream cannot silently skip a check.
    #[serde(default, deserialize_with = "present_string")]
    user_id: Option<String>,
    #[serde(default, deserialize_with = "present_string")]
    client_public_key: Option<String>,
}

fn present_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

impl ExpectationInput {
    fn from_js(value: &JsValue) -> Result<Self, Failure> {
        from_js_object(value, "expect")
    }

    /// Through the core's validating constructors.
    fn parse(self) -> Result<Expectation, Failure> {
        Ok(Expectation::parse(
            self.user_id.as_deref(),
            self.client_public_key.as_deref(),
        )?)
    }
}

// ------------------------------------------ pure halves (tested natively)

/// The JS shape of a session with plain Rust strings: what `to_js`
/// writes (borrowing from the decoded session where it can, as decoding is
/// the hot path) and what a JS session object is read into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SessionParts<'a> {
    device_session_id: Cow<'a, str>,
    user_id: Cow<'a, str>,
    client_public_key: Cow<'a, str>,
    status: Cow<'a, str>,
    created_at: Cow<'a, str>,
    revocation: Option<RevocationParts<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RevocationParts<'a> {
    at: Cow<'a, str>,
    reason_code: Cow<'a, str>,
    actor_type: Cow<'a, str>,
    actor_id: Cow<'a, str>,
}

impl SessionParts<'_> {
    /// Calls `f` with `session`'s parts, all borrowed (the key's base64 and
    /// the timestamps' text live on this stack frame): no allocation on the
    /// decode path.
    fn with<R>(session: &Session, f: impl FnOnce(&SessionParts<'_>) -> R) -> R {
        let mut key = [0u8; 44];
        let created_at = session.created_at().canonical();
        let revocation = session.revocation().map(|r| (r, r.at().canonical()));
        f(&SessionParts {
            device_session_id: session.id().as_str().into(),
            user_id: session.user_id().as_str().into(),
            client_public_key: session.client_public_key().encode_base64(&mut key).into(),
            status: session.status().as_str().into(),
            created_at: created_at.as_str().into(),
            revocation: revocation.as_ref().map(|(r, at)| RevocationParts {
                at: at.as_str().into(),
                reason_code: r.reason_code().as_str().into(),
                actor_type: r.actor_type().as_str().into(),
                actor_id: r.actor_id().as_str().into(),
            }),
        })
    }

    /// Through the core's validating constructors only.
    fn into_session(self) -> Result<Session, Failure> {
        let timestamp =
            |text: &str, field: Field| Timestamp::parse(text).map_err(|e| e.for_field(field));
        let revocation = match self.revocation {
            None => None,
            Some(r) => Some(Revocation::new(
                timestamp(&r.at, Field::RevokedAt)?,
                RevokeReasonCode::parse(r.reason_code.into_owned())?,
                RevokeActorType::parse(r.actor_type.into_owned())?,
                RevokeActorId::parse(r.actor_id.into_owned())?,
            )?),
        };
        Ok(Session::from_parts(
            DeviceSessionId::parse(self.device_session_id.into_owned())?,
            UserId::parse(self.user_id.into_owned())?,
            ClientPublicKey::from_base64(&self.client_public_key)?,
            Status::parse(&self.status)?,
            timestamp(&self.created_at, Field::CreatedAt)?,
            revocation,
        )?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const KEY: &str = "6CNOOq9vU5hNuRjuSnPSuoYdvt6iZpSYfEDOihlBz8I=";

    fn parts() -> SessionParts<'static> {
        SessionParts {
            device_session_id: "dev-1".into(),
            user_id: "user-1".into(),
            client_public_key: KEY.into(),
            status: "revoked".into(),
            created_at: "2024-05-06T07:08:09.5Z".into(),
            revocation: Some(RevocationParts {
                at: "2024-05-06T07:08:10Z".into(),
                reason_code: "logout".into(),
                actor_type: "user".into(),
                actor_id: "".into(),
            }),
        }
    }

    #[test]
    fn parts_round_trip_through_the_core() {
        let session = parts().into_session().unwrap();
        assert_eq!(session.status(), Status::Revoked);
        SessionParts::with(&session, |p| assert_eq!(p, &parts()));
        let bytes = codec::encode(&session);
        let id = DeviceSessionId::parse("dev-1").unwrap();
        assert_eq!(codec::decode(&id, &bytes).unwrap(), session);
    }

    #[test]
    fn parts_errors_carry_the_core_kinds() {
        let kind = |edit: fn(&mut SessionParts<'static>)| {
            let mut p = parts();
            edit(&mut p);
            p.into_session().unwrap_err()
        };
        assert_eq!(
            kind(|p| p.device_session_id = " x".into()).kind,
            "invalid_id"
        );
        assert_eq!(kind(|p| p.user_id = "".into()).kind, "invalid_id");
        assert_eq!(
            kind(|p| p.client_public_key = "AAAA".into()).kind,
            "invalid_public_key"
        );
        assert_eq!(kind(|p| p.status = "Active".into()).kind, "invalid_status");
        assert_eq!(
            kind(|p| p.created_at = "2024-05-06T07:08:09.50Z".into()).kind,
            "non_canonical_timestamp"
        );
        let revoked_at = kind(|p| {
            if let Some(r) = &mut p.revocation {
                r.at = "yesterday".into();
            }
        });
        assert_eq!(revoked_at.kind, "invalid_timestamp");
        assert!(
            revoked_at.message.starts_with("revoked_at"),
            "{revoked_at:?}"
        );
        assert_eq!(
            kind(|p| p.status = "active".into()).kind,
            "status_revocation_mismatch"
        );
        assert_eq!(
            kind(|p| p.revocation = None).kind,
            "status_revocation_mismatch"
        );
        assert_eq!(
            kind(|p| {
                if let Some(r) = &mut p.revocation {
                    r.at = "2024-05-06T07:08:09Z".into();
                }
            })
            .kind,
            "revoked_before_created"
        );
        assert_eq!(
            kind(|p| {
                if let Some(r) = &mut p.revocation {
                    r.reason_code = "Logout".into();
                }
            })
            .kind,
            "invalid_reason_code"
        );
    }

    #[test]
    fn the_js_shape_is_camel_case_with_null_revocation() {
        let mut p = parts();
        p.status = "active".into();
        p.revocation = None;
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"deviceSessionId":"dev-1","userId":"user-1","clientPublicKey":"{KEY}","status":"active","createdAt":"2024-05-06T07:08:09.5Z","revocation":null}}"#
            )
        );
        assert_eq!(serde_json::from_str::<SessionParts<'_>>(&json).unwrap(), p);
        let revoked = serde_json::to_string(&parts()).unwrap();
        assert!(revoked.contains(
            r#""revocation":{"at":"2024-05-06T07:08:10Z","reasonCode":"logout","actorType":"user","actorId":""}"#
        ));
        assert_eq!(
            serde_json::from_str::<SessionParts<'_>>(&revoked).unwrap(),
            parts()
        );
        // Unknown or misspelt fields are refused, not ignored.
        let extra = json.replacen('{', r#"{"extra":1,"#, 1);
        assert!(serde_json::from_str::<SessionParts<'_>>(&extra).is_err());
        let snake = json.replace("userId", "user_id");
        assert!(serde_json::from_str::<SessionParts<'_>>(&snake).is_err());
    }

    #[test]
    fn expectation_input_refuses_null_and_unknown_fields() {
        let read = |json: &str| serde_json::from_str::<ExpectationInput>(json);
        let empty = read("{}").unwrap();
        assert_eq!((empty.user_id, empty.client_public_key), (None, None));
        let user = read(r#"{"userId":"u"}"#).unwrap();
        assert_eq!(user.user_id.as_deref(), Some("u"));
        assert!(read(r#"{"userId":null}"#).is_err());
        assert!(read(r#"{"clientPublicKey":null}"#).is_err());
        assert!(read(r#"{"userID":"u"}"#).is_err());
        assert!(read(r#"{"userId":1}"#).is_err());
    }

    #[test]
    fn expectations_go_through_the_core() {
        let mut p = parts();
        p.status = "active".into();
        p.revocation = None;
        let active = p.into_session().unwrap();
        let revoked = parts().into_session().unwrap();
        let check = |user: Option<&str>, key: Option<&str>, session: &Session| {
            ExpectationInput {
                user_id: user.map(str::to_owned),
                client_public_key: key.map(str::to_owned),
            }
            .parse()
            .and_then(|e| e.check(session).map_err(Failure::from))
            .map_err(|f| f.kind)
        };
        assert_eq!(check(None, None, &active), Ok(()));
        assert_eq!(check(Some("user-1"), Some(KEY), &active), Ok(()));
        assert_eq!(check(Some("user-1"), None, &revoked), Err("not_active"));
        assert_eq!(
            check(Some("user-2"), Some(KEY), &active),
            Err("user_mismatch")
        );
        let other_key = ClientPublicKey::from_bytes(&[1; 32]).unwrap().to_base64();
        assert_eq!(
            check(Some("user-1"), Some(&other_key), &active),
            Err("key_mismatch")
        );
        assert_eq!(check(Some(""), None, &active), Err("invalid_id"));
        assert_eq!(
            check(None, Some("AAAA"), &active),
            Err("invalid_public_key")
        );
    }

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

    #[test]
    fn tagged_key_fixtures_are_the_core_key_space_s() {
        use authsession_core::KeySpace;
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../test/tagged-keys.json")).unwrap();
        let cases = doc["cases"].as_array().unwrap();
        assert!(cases.len() >= 5);
        for case in cases {
            let text = |field: &str| case[field].as_str().unwrap();
            let keys = KeySpace::with_base_and_layout(text("base"), Layout::Tagged).unwrap();
            let user = UserId::parse(text("user_id")).unwrap();
            let id = DeviceSessionId::parse(text("device_session_id")).unwrap();
            assert_eq!(keys.record_key(&user, &id), text("session"));
            assert_eq!(keys.user_sessions_key(&user), text("user_sessions"));
            assert_eq!(
                keys.user_active_sessions_key(&user),
                text("user_active_sessions")
            );
            assert_eq!(keys.owner_key(&id).unwrap(), text("session_owner"));
            // The key functions' one prefix each, as the JS tests pass them.
            let [session, all, active] = keys.prefixes();
            assert_eq!(
                tagged_key(session, user.as_str(), Some(id.as_str())).unwrap(),
                text("session")
            );
            assert_eq!(
                tagged_key(all, user.as_str(), None).unwrap(),
                text("user_sessions")
            );
            assert_eq!(
                tagged_key(active, user.as_str(), None).unwrap(),
                text("user_active_sessions")
            );
        }
    }
}
