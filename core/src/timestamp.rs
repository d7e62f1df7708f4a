//! UTC timestamps with nanosecond precision in Go's `RFC3339Nano` form.

use std::fmt;

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use crate::error::{Field, ValidationError};

/// An instant in UTC with nanosecond precision, years 0000..=9999.
///
/// Its text form is Go's `time.RFC3339Nano` in UTC — `2026-11-27T10:00:00Z`,
/// `…:00.5Z`, `…:00.123456789Z` — the only form [`Timestamp::parse`]
/// accepts. The core never reads a clock: callers pass "now" in.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Timestamp(OffsetDateTime);

/// Go's zero `time.Time`, which the domain treats as "unset".
const GO_ZERO_UNIX_SECONDS: i64 = -62_135_596_800;

impl Timestamp {
    /// Wraps an instant, converted to UTC; years outside 0000..=9999 are an
    /// error.
    pub fn from_offset_date_time(value: OffsetDateTime) -> Result<Self, ValidationError> {
        let utc = value.to_offset(time::UtcOffset::UTC);
        if !(0..=9999).contains(&utc.year()) {
            return Err(ValidationError::TimestampOutOfRange {
                field: Field::CreatedAt,
            });
        }
        Ok(Self(utc))
    }

    /// The instant `nanos` nanoseconds after the Unix epoch.
    pub fn from_unix_nanos(nanos: i128) -> Result<Self, ValidationError> {
        let value = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| {
            ValidationError::TimestampOutOfRange {
                field: Field::CreatedAt,
            }
        })?;
        Self::from_offset_date_time(value)
    }

    /// Nanoseconds since the Unix epoch.
    pub fn unix_nanos(&self) -> i128 {
        self.0.unix_timestamp_nanos()
    }

    /// Microseconds since the Unix epoch, rounded toward negative infinity
    /// (Go's `UnixMicro`).
    pub fn unix_micros_floor(&self) -> i64 {
        // Seconds are floor-based and nanos within the second are
        // non-negative, so this is floor division without i128 arithmetic.
        self.0.unix_timestamp() * 1_000_000 + i64::from(self.0.nanosecond() / 1_000)
    }

    /// The instant as a `time` value in UTC.
    pub fn to_offset_date_time(&self) -> OffsetDateTime {
        self.0
    }

    /// Whether this is Go's zero time, `0001-01-01T00:00:00Z`.
    pub fn is_go_zero(&self) -> bool {
        self.0.unix_timestamp() == GO_ZERO_UNIX_SECONDS && self.0.nanosecond() == 0
    }

    /// The earliest representable instant, `0000-01-01T00:00:00Z`.
    pub fn min_value() -> Self {
        Self(
            PrimitiveDateTime::new(
                Date::MIN.replace_year(0).unwrap_or(Date::MIN),
                Time::MIDNIGHT,
            )
            .assume_utc(),
        )
    }

    /// Adds (or subtracts) nanoseconds, failing outside years 0000..=9999.
    pub fn checked_add_nanos(&self, nanos: i128) -> Result<Self, ValidationError> {
        let total =
            self.unix_nanos()
                .checked_add(nanos)
                .ok_or(ValidationError::TimestampOutOfRange {
                    field: Field::CreatedAt,
                })?;
        Self::from_unix_nanos(total)
    }

    /// Parses the canonical text form. Anything else is an error:
    /// [`ValidationError::NonCanonicalTimestamp`] when it is otherwise valid
    /// RFC 3339 (an offset, trailing fraction zeros, …), else
    /// [`ValidationError::InvalidTimestamp`]. Errors name `created_at`;
    /// callers re-attribute them.
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        match parse_canonical(text.as_bytes()) {
            Some(result) => result,
            None if looks_like_rfc3339(text) => Err(ValidationError::NonCanonicalTimestamp {
                field: Field::CreatedAt,
            }),
            None => Err(ValidationError::InvalidTimestamp {
                field: Field::CreatedAt,
            }),
        }
    }

    /// The canonical text form, without allocating.
    pub fn canonical(&self) -> CanonicalText {
        let mut out = CanonicalText {
            bytes: [0; 30],
            len: 0,
        };
        let (year, month, day) = self.0.to_calendar_date();
        let (hour, minute, second, nanos) = self.0.to_hms_nano();
        out.push_digits(u32::try_from(year).unwrap_or(0), 4);
        out.push(b'-');
        out.push_digits(u32::from(u8::from(month)), 2);
        out.push(b'-');
        out.push_digits(u32::from(day), 2);
        out.push(b'T');
        out.push_digits(u32::from(hour), 2);
        out.push(b':');
        out.push_digits(u32::from(minute), 2);
        out.push(b':');
        out.push_digits(u32::from(second), 2);
        if nanos != 0 {
            // Go trims trailing zeros of the nine-digit fraction.
            let mut digits = 9;
            let mut fraction = nanos;
            while fraction % 10 == 0 {
                fraction /= 10;
                digits -= 1;
            }
            out.push(b'.');
            out.push_digits(fraction, digits);
        }
        out.push(b'Z');
        out
    }
}

/// A timestamp's canonical text on the stack (at most 30 bytes:
/// `9999-12-31T23:59:59.999999999Z`).
#[derive(Clone, Copy)]
pub struct CanonicalText {
    bytes: [u8; 30],
    len: usize,
}

impl fmt::Debug for CanonicalText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl CanonicalText {
    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever pushed.
        self.bytes
            .get(..self.len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
    }

    fn push(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    fn push_digits(&mut self, mut value: u32, width: usize) {
        let end = (self.len + width).min(self.bytes.len());
        if let Some(slots) = self.bytes.get_mut(self.len..end) {
            for slot in slots.iter_mut().rev() {
                // A single decimal digit, so the cast cannot truncate.
                *slot = b'0' + (value % 10) as u8;
                value /= 10;
            }
        }
        self.len = end;
    }
}

fn fixed_digits(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0u32, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

/// Parses exactly `YYYY-MM-DDTHH:MM:SS[.F{1,9}]Z` with a fraction that does
/// not end in `0`. `None`: not canonical; `Some(Err)`: canonical shape but
/// an impossible date or time.
fn parse_canonical(b: &[u8]) -> Option<Result<Timestamp, ValidationError>> {
    let invalid = ValidationError::InvalidTimestamp {
        field: Field::CreatedAt,
    };
    if b.len() < 20
        || b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || b.get(10) != Some(&b'T')
    {
        return None;
    }
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') || b.last() != Some(&b'Z') {
        return None;
    }
    let year = fixed_digits(b.get(0..4)?)?;
    let month = fixed_digits(b.get(5..7)?)?;
    let day = fixed_digits(b.get(8..10)?)?;
    let hour = fixed_digits(b.get(11..13)?)?;
    let minute = fixed_digits(b.get(14..16)?)?;
    let second = fixed_digits(b.get(17..19)?)?;
    let rest = b.get(19..b.len() - 1)?;
    let nanos = match rest {
        [] => 0,
        [b'.', fraction @ ..]
            if (1..=9).contains(&fraction.len()) && fraction.last() != Some(&b'0') =>
        {
            let value = fixed_digits(fraction)?;
            value * 10u32.pow(9 - fraction.len() as u32)
        }
        _ => return None,
    };
    let build = || -> Option<OffsetDateTime> {
        let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
        let date =
            Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?)
                .ok()?;
        let time = Time::from_hms_nano(
            u8::try_from(hour).ok()?,
            u8::try_from(minute).ok()?,
            u8::try_from(second).ok()?,
            nanos,
        )
        .ok()?;
        Some(PrimitiveDateTime::new(date, time).assume_utc())
    };
    Some(build().map(Timestamp).ok_or(invalid))
}

/// Whether `text` is RFC 3339 in some non-canonical spelling Go would parse
/// (numeric offset, trailing fraction zeros, comma fraction): decides
/// between `non_canonical_timestamp` and `invalid_timestamp` only.
fn looks_like_rfc3339(text: &str) -> bool {
    let Some(head) = text.get(..19) else {
        return false;
    };
    let Some(tail) = text.get(19..) else {
        return false;
    };
    if parse_canonical(format!("{head}Z").as_bytes()).is_none_or(|r| r.is_err()) {
        return false;
    }
    let (fraction, zone) = match tail.find(['Z', '+', '-']) {
        Some(at) => tail.split_at(at),
        None => return false,
    };
    let fraction_ok = fraction.is_empty()
        || ((fraction.starts_with('.') || fraction.starts_with(','))
            && (2..=10).contains(&fraction.len())
            && fraction.bytes().skip(1).all(|b| b.is_ascii_digit()));
    let zone = zone.as_bytes();
    let zone_ok = zone == b"Z"
        || (zone.len() == 6
            && zone.get(3) == Some(&b':')
            && zone
                .get(1..3)
                .and_then(fixed_digits)
                .is_some_and(|h| h < 24)
            && zone
                .get(4..6)
                .and_then(fixed_digits)
                .is_some_and(|m| m < 60));
    fraction_ok && zone_ok
}

impl TryFrom<String> for Timestamp {
    type Error = ValidationError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl TryFrom<&str> for Timestamp {
    type Error = ValidationError;
    fn try_from(text: &str) -> Result<Self, Self::Error> {
        Self::parse(text)
    }
}

impl std::str::FromStr for Timestamp {
    type Err = ValidationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<OffsetDateTime> for Timestamp {
    type Error = ValidationError;
    fn try_from(value: OffsetDateTime) -> Result<Self, Self::Error> {
        Self::from_offset_date_time(value)
    }
}

impl From<Timestamp> for OffsetDateTime {
    fn from(value: Timestamp) -> Self {
        value.0
    }
}

impl From<Timestamp> for String {
    fn from(value: Timestamp) -> String {
        value.to_string()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.canonical().as_str())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::rejects_each;

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    #[test]
    fn canonical_round_trip() {
        for text in [
            "2026-11-27T10:00:00Z",
            "2026-11-27T10:00:00.5Z",
            "2026-11-27T10:00:00.123456789Z",
            "2026-11-27T10:00:00.000000001Z",
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "2024-02-29T00:00:00Z",
            "1969-12-31T23:59:59.999999999Z",
        ] {
            assert_eq!(ts(text).to_string(), text);
        }
    }

    #[test]
    fn non_canonical_vs_invalid() {
        rejects_each(
            Timestamp::parse,
            &[
                "2024-05-06T07:08:09+00:00",
                "2024-05-06T07:08:09-00:00",
                "2024-05-06T08:08:09+01:00",
                "2024-05-06T07:08:09.10Z",
                "2024-05-06T07:08:09.0Z",
                "2024-05-06T07:08:09.000000000Z",
                "2024-05-06T07:08:09,5Z",
            ],
            &ValidationError::NonCanonicalTimestamp {
                field: Field::CreatedAt,
            },
        );
        rejects_each(
            Timestamp::parse,
            &[
                "",
                " ",
                "2024-05-06T07:08:09.1234567891Z",
                "2024-05-06T07:08:09.Z",
                "2024-05-06T07:08:09z",
                "2024-05-06t07:08:09Z",
                "2024-05-06 07:08:09Z",
                "2024-05-06T07:08Z",
                "2024-05-06T07:08:09",
                "2024-05-06",
                "2024-5-6T7:08:09Z",
                " 2024-05-06T07:08:09Z",
                "2024-05-06T07:08:09Z ",
                "2024-05-06T07:08:09Z+00:00",
                "2016-12-31T23:59:60Z",
                "2024-02-30T00:00:00Z",
                "2023-02-29T00:00:00Z",
                "2024-05-06T24:00:00Z",
                "10000-01-01T00:00:00Z",
                "-0001-01-01T00:00:00Z",
                "1714979289",
                "２０２４-05-06T07:08:09Z",
            ],
            &ValidationError::InvalidTimestamp {
                field: Field::CreatedAt,
            },
        );
    }

    #[test]
    fn micros_floor_and_zero() {
        assert_eq!(ts("1969-12-31T23:59:59.999999999Z").unix_micros_floor(), -1);
        assert_eq!(ts("1970-01-01T00:00:00Z").unix_micros_floor(), 0);
        assert_eq!(ts("1970-01-01T00:00:00.000001999Z").unix_micros_floor(), 1);
        assert!(ts("0001-01-01T00:00:00Z").is_go_zero());
        assert!(!ts("0001-01-01T00:00:00.000000001Z").is_go_zero());
        assert_eq!(Timestamp::min_value().to_string(), "0000-01-01T00:00:00Z");
    }

    #[test]
    fn range_is_enforced_from_every_constructor() {
        assert!(Timestamp::from_unix_nanos(253_402_300_800_000_000_000).is_err());
        assert!(Timestamp::from_unix_nanos(253_402_300_799_999_999_999).is_ok());
        assert!(Timestamp::min_value().checked_add_nanos(-1).is_err());
        let offset = OffsetDateTime::from_unix_timestamp(0)
            .unwrap()
            .to_offset(time::UtcOffset::from_hms(5, 30, 0).unwrap());
        assert_eq!(
            Timestamp::try_from(offset).unwrap().to_string(),
            "1970-01-01T00:00:00Z"
        );
    }
}
