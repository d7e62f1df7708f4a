//! Timestamps typed on the command line (`--created-at`, `--at`).
//!
//! An operator may write any RFC 3339 form — an offset (`+02:00`, `-05:30`,
//! `Z`), lowercase `t`/`z`, a space instead of `T`, any number of fraction
//! digits — and the instant is stored in the one canonical form every
//! record uses (UTC, `…:00Z`, `…:00.5Z`, `…:00.123456789Z`). Only input is
//! lenient: stored records are still parsed strictly by the core.

use authsession_core::{Field, Timestamp};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::CliError;

/// Examples shown when a value is not a timestamp.
const EXAMPLES: &str = "e.g. 2026-11-27T10:00:00Z or 2026-11-27T12:00:00.5+02:00";

/// Parses `text`, the value of `flag`, an instant of the record's `field`.
///
/// Errors (nothing is written): `invalid_timestamp` for text that is not
/// RFC 3339 or names an instant the record cannot hold exactly (a leap
/// second, a fraction finer than a nanosecond); the core's
/// `timestamp_out_of_range` when the instant falls outside years
/// 0000..=9999 once converted to UTC.
pub(crate) fn parse(text: &str, flag: &str, field: Field) -> Result<Timestamp, CliError> {
    let invalid =
        |why: &str| CliError::new("invalid_timestamp", format!("{flag}: {why} ({EXAMPLES})"));
    let bytes = text.as_bytes();
    // The `time` crate takes any byte between date and time; RFC 3339
    // allows `T`, `t` and (in its note) a space.
    if !matches!(bytes.get(10), Some(b'T' | b't' | b' ')) {
        return Err(invalid("not an RFC 3339 timestamp"));
    }
    // It would turn second 60 into …:59.999999999, a different instant.
    if bytes.get(17..19) == Some(b"60") {
        return Err(invalid("leap seconds cannot be stored"));
    }
    // It would drop digits after the ninth; only zeros may go.
    if bytes.get(19) == Some(&b'.') {
        let digits = bytes
            .get(20..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| b.is_ascii_digit());
        if digits.skip(9).any(|&d| d != b'0') {
            return Err(invalid(
                "precision finer than a nanosecond cannot be stored",
            ));
        }
    }
    let instant = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|e| invalid(&format!("not an RFC 3339 timestamp: {e}")))?;
    Timestamp::from_unix_nanos(instant.unix_timestamp_nanos())
        .map_err(|e| CliError::from(e.for_field(field)).context(flag))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn canonical(text: &str) -> Result<String, String> {
        parse(text, "--at", Field::RevokedAt)
            .map(|t| t.to_string())
            .map_err(|e| e.kind().to_owned())
    }

    #[test]
    fn every_rfc3339_form_becomes_canonical_utc() {
        for (input, stored) in [
            ("2025-03-01T10:00:00Z", "2025-03-01T10:00:00Z"),
            ("2025-03-01T10:00:00.100Z", "2025-03-01T10:00:00.1Z"),
            ("2025-03-01T10:00:00.100+02:00", "2025-03-01T08:00:00.1Z"),
            ("2025-03-01t10:00:00z", "2025-03-01T10:00:00Z"),
            ("2025-03-01 10:00:00Z", "2025-03-01T10:00:00Z"),
            ("2025-03-01T10:00:00-00:00", "2025-03-01T10:00:00Z"),
            ("2025-03-01T01:30:00-05:30", "2025-03-01T07:00:00Z"),
            ("2025-03-01T00:30:00+01:00", "2025-02-28T23:30:00Z"),
            ("2025-03-01T10:00:00.1Z", "2025-03-01T10:00:00.1Z"),
            (
                "2025-03-01T10:00:00.123456789Z",
                "2025-03-01T10:00:00.123456789Z",
            ),
            ("2025-03-01T10:00:00.000000000Z", "2025-03-01T10:00:00Z"),
            (
                "2025-03-01T10:00:00.1234567890000Z",
                "2025-03-01T10:00:00.123456789Z",
            ),
            ("0000-01-01T00:00:00Z", "0000-01-01T00:00:00Z"),
            (
                "9999-12-31T23:59:59.999999999Z",
                "9999-12-31T23:59:59.999999999Z",
            ),
            ("1969-12-31T23:59:59.5Z", "1969-12-31T23:59:59.5Z"),
        ] {
            assert_eq!(canonical(input).as_deref(), Ok(stored), "{input}");
        }
    }

    #[test]
    fn bad_input_has_a_stable_kind() {
        for input in [
            "",
            "yesterday",
            "2025-03-01",
            "2025-03-01T10:00:00",
            "2025-03-01X10:00:00Z",
            "2025-03-01T10:00Z",
            "2025-03-01T10:00:00.Z",
            "2025-03-01T10:00:00.1234567891Z",
            "2025-03-01T10:00:00+0200",
            "2025-03-01T10:00:00+24:00",
            "2025-03-01T10:00:00Z ",
            "2025-02-30T10:00:00Z",
            "2025-03-01T24:00:00Z",
            "2016-12-31T23:59:60Z",
            "+2025-03-01T10:00:00Z",
            "2025-03-01T10:00:00\u{2028}",
        ] {
            assert_eq!(
                canonical(input),
                Err("invalid_timestamp".into()),
                "{input:?}"
            );
        }
        for input in ["0000-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"] {
            assert_eq!(
                canonical(input),
                Err("timestamp_out_of_range".into()),
                "{input}"
            );
        }
        let error = parse("0000-01-01T00:30:00+01:00", "--at", Field::RevokedAt).unwrap_err();
        assert!(error.message().starts_with("--at: revoked_at"), "{error}");
    }
}
