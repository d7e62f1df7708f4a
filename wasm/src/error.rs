//! The one way errors leave this crate. Every other file returns
//! [`Failure`]; only the exports turn it into a JS value, so the error's JS
//! shape is decided here and nowhere else.

use std::fmt;

use authsession_core::Kind;
use js_sys::Reflect;
use wasm_bindgen::JsValue;

/// A JS `Error` named `AuthsessionError` with a stable `kind` property, not
/// yet built. Kinds come from the core's [`Kind`] vocabulary, whatever the
/// error type; the one kind of this layer's own is `invalid_argument`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) kind: &'static str,
    pub(crate) message: String,
}

impl Failure {
    /// The kind of a JS value of the wrong type or shape.
    const INVALID_ARGUMENT: &'static str = "invalid_argument";

    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
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
