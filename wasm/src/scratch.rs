//! The hand-over of payloads from JS: a fixed scratch buffer in wasm
//! memory that JS writes into directly, so the hot decode path allocates
//! nothing. Callers borrow [`PAYLOAD`]; when it is busy or a payload does not
//! fit, they take the ordinary, allocating path.

use std::cell::RefCell;

use js_sys::{JsString, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

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
    /// The one scratch buffer (wasm is single-threaded); a caller that finds
    /// it borrowed takes the ordinary path.
    pub(crate) static PAYLOAD: RefCell<Scratch> = RefCell::new(Scratch::new());
}

/// `text` as a `String` (U+FFFD for lone surrogates), like `as_string`
/// but through the scratch buffer when it fits (faster).
pub(crate) fn utf8_string(text: &JsString) -> String {
    PAYLOAD
        .with(|scratch| {
            let mut scratch = scratch.try_borrow_mut().ok()?;
            scratch.encode(text).map(str::to_owned)
        })
        .unwrap_or_else(|| text.as_string().unwrap_or_default())
}

/// Payloads reach the decoder written by JS straight into this fixed buffer
/// through a cached view: strings by `TextEncoder.encodeInto` (measured
/// cheaper than wasm-bindgen's string hand-over, a JS loop per character
/// into a fresh allocation; same UTF-8, U+FFFD for lone surrogates), bytes by
/// one `Uint8Array.set` (no allocation, no per-call view of the memory).
pub(crate) struct Scratch {
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
    pub(crate) fn encode(&mut self, text: &JsString) -> Option<&str> {
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
    pub(crate) fn copy(&mut self, bytes: &Uint8Array) -> Option<&[u8]> {
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
