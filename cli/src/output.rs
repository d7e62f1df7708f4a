//! JSON on stdout, one value per line. Write errors (a closed pipe) become
//! [`CliError`]s instead of the panic `println!` would raise.

use std::io::Write;

use authsession_core::{Session, UserId};
use serde::Serialize;

use crate::error::CliError;

/// Writes `value` as one compact JSON line to `out`.
pub(crate) fn write_line<W: Write + ?Sized>(
    out: &mut W,
    value: &impl Serialize,
) -> Result<(), CliError> {
    serde_json::to_writer(&mut *out, value)
        .map_err(|e| CliError::new("io", format!("writing output: {e}")))?;
    out.write_all(b"\n")
        .map_err(|e| CliError::io("writing output", &e))
}

/// Prints `value` as one JSON line on stdout.
pub(crate) fn print(value: &impl Serialize) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    write_line(&mut out, value)?;
    out.flush().map_err(|e| CliError::io("writing output", &e))
}

/// `revoke`'s answer.
#[derive(Serialize)]
pub(crate) struct RevokeOut<'a> {
    pub(crate) outcome: &'static str,
    pub(crate) session: &'a Session,
}

/// `revoke-all`'s answer (sessions newest first).
#[derive(Serialize)]
pub(crate) struct RevokeAllOut<'a> {
    pub(crate) outcome: &'static str,
    pub(crate) sessions: &'a [Session],
}

/// `count`'s answer.
#[derive(Serialize)]
pub(crate) struct CountOut<'a> {
    pub(crate) user_id: &'a UserId,
    pub(crate) active: u64,
}
