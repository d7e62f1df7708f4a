//! A stored record, as JS hands it in (a string or a `Uint8Array`), to the
//! core's strict decoder, through the scratch buffer when it fits.

use authsession_core::{codec, DecodeError, DeviceSessionId, Session};
use js_sys::{JsString, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};

use crate::args::{device_session_id, has_unpaired_surrogates};
use crate::error::Failure;
use crate::scratch::PAYLOAD;

/// The session stored under `id`'s key, if `payload` is a valid record of
/// exactly that id.
pub(crate) fn decode(id: &JsValue, payload: &JsValue) -> Result<Session, Failure> {
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
