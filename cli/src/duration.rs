//! Durations on the command line (`--revoked-retention`): one or more
//! `<digits><unit>` parts, units `d`, `h`, `m`, `s`, `ms`, each at most
//! once and largest first — `30d`, `12h`, `1h30m`, `2d12h`, `1s`,
//! `1500ms`. Anything else is an error of kind `invalid_duration`.

use std::time::Duration;

use crate::error::CliError;

/// The units, largest first, with their length in milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

fn invalid(flag: &str, text: &str, reason: &str) -> CliError {
    CliError::new(
        "invalid_duration",
        format!("{flag}: {text:?} is not a duration ({reason}; e.g. 30d, 12h, 15m, 1s, 1h30m)"),
    )
}

/// Parses `text` (the value of `flag`): a positive duration.
pub(crate) fn parse(text: &str, flag: &str) -> Result<Duration, CliError> {
    let bad = |reason: &str| invalid(flag, text, reason);
    if text.is_empty() {
        return Err(bad("empty"));
    }
    let mut rest = text;
    let mut total_ms: u64 = 0;
    // Index into UNITS of the next unit allowed (each smaller than the last).
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad("expected a number"));
        }
        let (number, tail) = rest.split_at(digits);
        let letters = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        if letters == 0 {
            return Err(bad("every number needs a unit: d, h, m, s or ms"));
        }
        let (unit, tail) = tail.split_at(letters);
        let position = UNITS
            .iter()
            .position(|(name, _)| *name == unit)
            .ok_or_else(|| bad("units are d, h, m, s and ms"))?;
        if position < next_unit {
            return Err(bad("units must appear once each, largest first"));
        }
        next_unit = position + 1;
        let value: u64 = number.parse().map_err(|_| bad("number too large"))?;
        let ms = UNITS.get(position).map_or(1, |(_, ms)| *ms);
        total_ms = value
            .checked_mul(ms)
            .and_then(|part| total_ms.checked_add(part))
            .ok_or_else(|| bad("too large"))?;
        rest = tail;
    }
    if total_ms == 0 {
        return Err(bad("must be positive"));
    }
    Ok(Duration::from_millis(total_ms))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn accepts_units_and_combinations() {
        let ok = |t: &str| parse(t, "--x").unwrap();
        assert_eq!(ok("30d"), Duration::from_secs(30 * 86_400));
        assert_eq!(ok("12h"), Duration::from_secs(12 * 3_600));
        assert_eq!(ok("15m"), Duration::from_secs(15 * 60));
        assert_eq!(ok("1s"), Duration::from_secs(1));
        assert_eq!(ok("250ms"), Duration::from_millis(250));
        assert_eq!(ok("1h30m"), Duration::from_secs(5_400));
        assert_eq!(ok("2d12h30m15s5ms"), Duration::from_millis(217_815_005));
        assert_eq!(ok("90m"), Duration::from_secs(5_400));
        assert_eq!(ok("007s"), Duration::from_secs(7));
    }

    #[test]
    fn rejects_everything_else_as_invalid_duration() {
        for text in [
            "",
            "0s",
            "0d0h",
            "30",
            "d",
            "1x",
            "1 h",
            " 1h",
            "1h ",
            "1.5h",
            "-1h",
            "+1h",
            "1m1h",
            "1h1h",
            "1sms",
            "1H",
            "1hm",
            "30days",
            "99999999999999999999s",
            "213503982335d",
        ] {
            let err = parse(text, "--revoked-retention").unwrap_err();
            assert_eq!(err.kind(), "invalid_duration", "{text:?}");
            assert!(err.message().starts_with("--revoked-retention: "), "{err}");
        }
    }
}
