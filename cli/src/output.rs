//! JSON on stdout, one value per line. Write errors become [`CliError`]s
//! instead of the panic `println!` would raise; a closed pipe is
//! [`CliError::STDOUT_CLOSED`], which ends the command quietly.
//!
//! Strings are escaped as in stored records (core's `GoEscapeFormatter`):
//! besides JSON's own escapes, U+2028 and U+2029 — line terminators to
//! JavaScript and many line-oriented tools — become `\u2028`/`\u2029`, so
//! an id holding one never splits an output line; `<`, `>`, `&` become
//! `\u003c`, `\u003e`, `\u0026`. Every JSON parser reads the same value.

use std::io::Write;

use authsession_core::codec::GoEscapeFormatter;
use authsession_core::{Session, UserId};
use serde::Serialize;

use crate::error::CliError;

/// Writes `value` as one compact JSON line to `out`.
pub(crate) fn write_line<W: Write + ?Sized>(
    out: &mut W,
    value: &impl Serialize,
) -> Result<(), CliError> {
    let mut serializer = serde_json::Serializer::with_formatter(&mut *out, GoEscapeFormatter);
    value
        .serialize(&mut serializer)
        .map_err(|e| match e.io_error_kind() {
            Some(kind) => CliError::output(&kind.into()),
            None => CliError::new("io", format!("writing output: {e}")),
        })?;
    out.write_all(b"\n").map_err(|e| CliError::output(&e))
}

/// Prints `value` as one JSON line on stdout.
pub(crate) fn print(value: &impl Serialize) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    write_line(&mut out, value)?;
    out.flush().map_err(|e| CliError::output(&e))
}

/// `revoke`'s answer.
#[derive(Serialize)]
pub(crate) struct RevokeOut<'a> {
    pub(crate) outcome: &'static str,
    pub(crate) session: &'a Session,
}

/// `revoke-all`'s answer: the outcome (`revoked`, `no_active_sessions` or
/// `partially_revoked`), the sessions revoked newest first (not with
/// `--count`), how many in how many atomic batches, how many index drift
/// entries were repaired on the way, and what could not be revoked.
#[derive(Serialize)]
pub(crate) struct RevokeAllOut<'a> {
    pub(crate) outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sessions: Option<&'a [Session]>,
    pub(crate) revoked: u64,
    pub(crate) batches: u64,
    pub(crate) drift_repaired: u64,
    pub(crate) unrevocable: Vec<UnrevocableOut<'a>>,
}

/// One member or key `revoke-all` could not revoke, and why (a stable
/// kind, and the same in words).
#[derive(Serialize)]
pub(crate) struct UnrevocableOut<'a> {
    pub(crate) key: &'a str,
    pub(crate) member: Option<&'a str>,
    pub(crate) reason: &'a str,
    pub(crate) message: &'a str,
}

/// `create`'s answer when the limit may revoke sessions to make room
/// (`--on-limit revoke-oldest`): the new session and those revoked in the
/// same atomic step, oldest first (often none).
#[derive(Serialize)]
pub(crate) struct CreatedOut<'a> {
    pub(crate) session: &'a Session,
    pub(crate) evicted: &'a [Session],
}

/// One page of `list` (`next_cursor` null on the last page).
#[derive(Serialize)]
pub(crate) struct PageOut<'a> {
    pub(crate) sessions: &'a [Session],
    pub(crate) next_cursor: Option<&'a str>,
}

/// `count`'s answer.
#[derive(Serialize)]
pub(crate) struct CountOut<'a> {
    pub(crate) user_id: &'a UserId,
    pub(crate) active: u64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn line_terminators_inside_strings_are_escaped() {
        let mut out = Vec::new();
        write_line(&mut out, &["a\u{2028}b\u{2029}c\nd", "<&>", "é"]).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "[\"a\\u2028b\\u2029c\\nd\",\"\\u003c\\u0026\\u003e\",\"é\"]\n"
        );
        let back: Vec<String> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, ["a\u{2028}b\u{2029}c\nd", "<&>", "é"]);
    }
}

/// `sweep`'s answer: users visited, expired revoked sessions removed (each
/// with its index entries, atomically), removal plans applied, owner keys
/// removed (tagged layout: those of the removed sessions and dangling ones
/// past the grace), members left alone for `check` to judge, and the
/// retention swept with (`null`: none configured, nothing removed).
#[derive(Serialize)]
pub(crate) struct SweepOut {
    pub(crate) users: u64,
    pub(crate) sessions_removed: u64,
    pub(crate) batches: u64,
    pub(crate) owner_keys_removed: u64,
    pub(crate) skipped: u64,
    pub(crate) retention_seconds: Option<f64>,
}
