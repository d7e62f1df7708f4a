//! A decoded session handed back to JS as a plain object. It crosses as
//! JSON text: one `JSON.parse` is cheaper than setting properties one by
//! one, and the text is written into a reused buffer.

use std::cell::RefCell;

use authsession_core::Session;
use wasm_bindgen::prelude::*;

use crate::error::Failure;
use crate::parts::SessionParts;

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
pub(crate) fn to_js(session: &Session) -> Result<JsValue, Failure> {
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
