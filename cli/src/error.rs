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

    /// Writing stdout failed; a reader that went away (`| head -1`) is
    /// [`CliError::STDOUT_CLOSED`], which ends the command quietly.
    pub(crate) fn output(error: &std::io::Error) -> Self {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            Self::new(Self::STDOUT_CLOSED, "stdout was closed")
        } else {
            Self::io("writing output", error)
        }
    }

    /// The kind of a write to a closed stdout.
    pub(crate) const STDOUT_CLOSED: &'static str = "stdout_closed";

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
    /// `MESSAGE (kind: KIND)` on one line, whatever the message holds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (kind: {})", one_line(&self.message), self.kind)
    }
}

/// `text` with every line break (`\n`, `\r`) replaced by a space, so an
/// error never spans two lines of stderr.
pub(crate) fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// Writes `authsession: TEXT` as one line on stderr. A closed or broken
/// stderr is ignored: the exit code still tells the outcome, and the
/// command never panics over a message it cannot deliver.
pub(crate) fn stderr_line(text: &str) {
    use std::io::Write as _;
    let line = format!("authsession: {}\n", one_line(text));
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(line.as_bytes());
    let _ = err.flush();
}

/// A failure the command reports after its output (`check` with problems
/// left, `migrate` with differences, …): `authsession: WHAT: MESSAGE
/// (kind: KIND)` on stderr.
pub(crate) fn report(what: &str, message: &str, kind: &str) {
    stderr_line(&format!("{what}: {message} (kind: {kind})"));
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

#[cfg(feature = "bench")]
impl From<authsession_lab::LabError> for CliError {
    fn from(error: authsession_lab::LabError) -> Self {
        Self::new(error.kind().to_owned(), error.message())
    }
}

impl From<authsession_driver::Error> for CliError {
    fn from(error: authsession_driver::Error) -> Self {
        Self::new(error.kind().as_str(), error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_one_line_with_its_kind() {
        let error = CliError::new("backend", "first\nsecond\r\nthird");
        assert_eq!(error.to_string(), "first second  third (kind: backend)");
        let closed = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert_eq!(CliError::output(&closed).kind(), CliError::STDOUT_CLOSED);
        let other = std::io::Error::from(std::io::ErrorKind::WriteZero);
        assert_eq!(CliError::output(&other).kind(), "io");
    }
}
