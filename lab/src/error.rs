//! The lab's one error type: a stable snake_case kind (the core's, the
//! driver's, or `bench` / `usage` / `config` / `backend` of its own) and a
//! one-line message. The CLI reports it as it reports its own.

use std::borrow::Cow;
use std::fmt;

use authsession_core::{Kind, TransitionError, ValidationError};

/// A failed bench run.
#[derive(Debug)]
pub struct LabError {
    kind: Cow<'static, str>,
    message: String,
}

impl LabError {
    pub(crate) fn new(kind: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            message: message.into(),
        }
    }

    /// A parameter or combination the bench cannot run.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new("usage", message)
    }

    /// The stable kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The message without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error with `context` in front of the message.
    pub(crate) fn context(mut self, context: &str) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (kind: {})", self.message, self.kind)
    }
}

impl std::error::Error for LabError {}

impl From<ValidationError> for LabError {
    fn from(error: ValidationError) -> Self {
        Self::new(Kind::kind(&error), error.to_string())
    }
}

impl From<TransitionError> for LabError {
    fn from(error: TransitionError) -> Self {
        Self::new(Kind::kind(&error), error.to_string())
    }
}

impl From<authsession_driver::Error> for LabError {
    fn from(error: authsession_driver::Error) -> Self {
        Self::new(error.kind().as_str(), error.to_string())
    }
}
