//! The CLI's one error type: a stable machine-readable kind plus a message.
//! Every failure ends as one of these, printed on stderr with a non-zero
//! exit code.

use std::borrow::Cow;
use std::fmt;

use authsession_core::{DecodeError, Kind, TransitionError, ValidationError};

/// A failed command: `kind` is the stable snake_case kind of the underlying
/// error (core's, the driver's, or one of the CLI's own below).
#[derive(Debug)]
pub(crate) struct CliError {
    kind: Cow<'static, str>,
    message: String,
}

impl CliError {
    pub(crate) fn new(kind: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            message: message.into(),
        }
    }

    /// Reading input or writing output failed.
    pub(crate) fn io(what: &str, error: &std::io::Error) -> Self {
        Self::new("io", format!("{what}: {error}"))
    }

    /// A command-line value or combination the command cannot use.
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new("usage", message)
    }

    pub(crate) fn kind(&self) -> &str {
        &self.kind
    }

    /// The message without the kind.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    /// The same error with `context` in front of the message.
    pub(crate) fn context(mut self, context: &str) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (kind: {})", self.message, self.kind)
    }
}

impl CliError {
    /// Any core error, through the core's one kind vocabulary.
    fn of_core(error: &(impl Kind + fmt::Display)) -> Self {
        Self::new(Kind::kind(error), error.to_string())
    }
}

impl From<ValidationError> for CliError {
    fn from(error: ValidationError) -> Self {
        Self::of_core(&error)
    }
}

impl From<DecodeError> for CliError {
    fn from(error: DecodeError) -> Self {
        Self::of_core(&error)
    }
}

impl From<TransitionError> for CliError {
    fn from(error: TransitionError) -> Self {
        Self::of_core(&error)
    }
}

impl From<authsession_driver::Error> for CliError {
    fn from(error: authsession_driver::Error) -> Self {
        Self::new(error.kind().as_str(), error.to_string())
    }
}
