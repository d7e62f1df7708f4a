//! The exported functions: their JS names, parameter types and docs (the
//! generated `.d.ts` signatures come from here), and nothing more. Each
//! converts its arguments, calls one step of the layer below, and hands
//! the result back; the work is in the other files.

use authsession_core::{codec, Expectation, Layout};
use wasm_bindgen::prelude::*;

use crate::error::Failure;
use crate::keys::{derive_key, Part};
use crate::output::to_js;
use crate::parts::{ExpectationInput, SessionParts};
use crate::payload::decode;

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
