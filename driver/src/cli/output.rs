//! JSON on stdout, one value per line. Write errors (a closed pipe) become
//! [`CliError`]s instead of the panic `println!` would raise.

use std::io::Write;

use serde::Serialize;

use super::error::CliError;

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
