//! JS arguments → Rust values: strings (refusing what has no UTF-8 form)
//! and plain objects (through their JSON text). The kind of every failure
//! here is `invalid_argument`, or the core's for a value it refuses.

use authsession_core::DeviceSessionId;
use js_sys::JsString;
use wasm_bindgen::{JsCast, JsValue};

use crate::error::Failure;
use crate::parts::{ExpectationInput, SessionParts};
use crate::scratch::utf8_string;

/// A JS argument that must be a string. Unpaired UTF-16 surrogates have no
/// UTF-8 form; rather than let them become U+FFFD silently, refuse them.
#[inline(never)]
pub(crate) fn text(value: &JsValue, what: &str) -> Result<String, Failure> {
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
pub(crate) fn has_unpaired_surrogates(value: &JsValue, converted: &str) -> bool {
    !converted.is_ascii()
        && converted.contains('\u{FFFD}')
        && value
            .dyn_ref::<JsString>()
            .is_some_and(|s| !s.is_well_formed())
}

/// A device session id argument, validated by the core (one copy: every
/// function taking an id shares it).
#[inline(never)]
pub(crate) fn device_session_id(value: &JsValue) -> Result<DeviceSessionId, Failure> {
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

impl SessionParts<'static> {
    pub(crate) fn from_js(value: &JsValue) -> Result<Self, Failure> {
        from_js_object(value, "session")
    }
}

impl ExpectationInput {
    pub(crate) fn from_js(value: &JsValue) -> Result<Self, Failure> {
        from_js_object(value, "expect")
    }
}
