//! `Arbitrary` impls for the fuzz targets (private `arbitrary` feature).
//! Sessions, revocations, operation inputs and outcomes.
//!
//! Every value is built through the validating constructors, so a fuzzer
//! only ever sees values that can exist. Raw fuzz bytes are *shaped* into
//! valid text first (controls dropped, trimmed, cut to the byte limit)
//! rather than rejected, so few inputs are wasted; the rare input that
//! still breaks a rule (Go's zero time) is reported as
//! [`arbitrary::Error::IncorrectFormat`].

use std::ops::ControlFlow;

use arbitrary::{Arbitrary, Error, Result, Unstructured};

use crate::ids::{
    ClientPublicKey, DeviceSessionId, RevokeActorId, RevokeActorType, RevokeReasonCode, UserId,
};
use crate::order::sort_newest_first;
use crate::session::{
    Revocation, RevokeSessionInput, RevokeSessionOutcome, RevokeUserSessionsInput,
    RevokeUserSessionsOutcome, Session, Status,
};
use crate::timestamp::Timestamp;

/// Characters the encoder must treat specially (Go's HTML-safe escapes,
/// JSON escapes) or that sit at the edge of the text rules (non-ASCII
/// whitespace, BOM, astral plane). Mixed into generated text so the fuzzer
/// does not have to discover them byte by byte.
const INTERESTING_CHARS: &[char] = &[
    '<', '>', '&', '\u{2028}', '\u{2029}', '"', '\\', '/', ' ', 'é', '\u{a0}', '\u{3000}',
    '\u{feff}', '\u{200b}', '\u{fffd}', '\u{ffff}', '😀', 'a', 'Z', '0', '-', '_', ':', '=',
];

/// Free text of at most `max` bytes that satisfies the identifier rules
/// (no control characters, equal to its Unicode-whitespace trim); may be
/// empty.
fn text(u: &mut Unstructured<'_>, max: usize) -> Result<String> {
    let mut out = String::new();
    let max_chars = u32::try_from(max).unwrap_or(u32::MAX);
    u.arbitrary_loop(None, Some(max_chars), |u| {
        let c: char = if u.ratio(1u8, 3u8)? {
            *u.choose(INTERESTING_CHARS)?
        } else {
            u.arbitrary()?
        };
        if out.len() + c.len_utf8() > max {
            return Ok(ControlFlow::Break(()));
        }
        if !c.is_control() {
            out.push(c);
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(out.trim().to_owned())
}

/// Non-empty identifier text (falls back to a one-letter id).
fn non_empty_text(u: &mut Unstructured<'_>, max: usize) -> Result<String> {
    let value = text(u, max)?;
    Ok(if value.is_empty() {
        "x".to_owned()
    } else {
        value
    })
}

/// A machine code: 1..=`max` bytes of `[a-z][a-z0-9_]*`.
fn code(u: &mut Unstructured<'_>, max: usize) -> Result<String> {
    const FIRST: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    const REST: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_";
    let len = u.int_in_range(1..=max)?;
    let mut value = String::with_capacity(len);
    value.push(char::from(*u.choose(FIRST)?));
    for _ in 1..len {
        value.push(char::from(*u.choose(REST)?));
    }
    Ok(value)
}

fn invalid<E>(_: E) -> Error {
    Error::IncorrectFormat
}

impl<'a> Arbitrary<'a> for DeviceSessionId {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Self::parse(non_empty_text(u, Self::MAX_LEN)?).map_err(invalid)
    }
}

impl<'a> Arbitrary<'a> for UserId {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Self::parse(non_empty_text(u, Self::MAX_LEN)?).map_err(invalid)
    }
}

impl<'a> Arbitrary<'a> for RevokeActorId {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Self::parse(text(u, Self::MAX_LEN)?).map_err(invalid)
    }
}

impl<'a> Arbitrary<'a> for RevokeReasonCode {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Self::parse(code(u, Self::MAX_LEN)?).map_err(invalid)
    }
}

impl<'a> Arbitrary<'a> for RevokeActorType {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Self::parse(code(u, Self::MAX_LEN)?).map_err(invalid)
    }
}

impl<'a> Arbitrary<'a> for ClientPublicKey {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Self::from(<[u8; Self::LEN]>::arbitrary(u)?))
    }
}

impl<'a> Arbitrary<'a> for Timestamp {
    /// Any instant of years 0000..=9999; the fraction is whole seconds,
    /// milli-, micro- or nanoseconds so that every length of Go's trimmed
    /// fraction shows up.
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        const NANOS_PER_SEC: i128 = 1_000_000_000;
        let min = Timestamp::min_value().unix_nanos() / NANOS_PER_SEC;
        // 9999-12-31T23:59:59Z
        let max = 253_402_300_799_i128;
        let seconds = u.int_in_range(min..=max)?;
        let unit = *u.choose(&[1_000_000_000_i128, 1_000_000, 1_000, 1])?;
        let fraction = u.int_in_range(0..=NANOS_PER_SEC / unit - 1)? * unit;
        Timestamp::from_unix_nanos(seconds * NANOS_PER_SEC + fraction).map_err(invalid)
    }
}

impl<'a> Arbitrary<'a> for Status {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(*u.choose(&[Status::Active, Status::Revoked])?)
    }
}

/// A revocation at `at`, with arbitrary reason and actor.
fn revocation_at(u: &mut Unstructured<'_>, at: Timestamp) -> Result<Revocation> {
    Revocation::new(at, u.arbitrary()?, u.arbitrary()?, u.arbitrary()?).map_err(invalid)
}

/// A revocation at or after `created_at` (at it exactly when the offset
/// would leave the representable range).
fn revocation_after(u: &mut Unstructured<'_>, created_at: Timestamp) -> Result<Revocation> {
    let delay = i128::from(u.arbitrary::<u64>()?);
    let at = created_at.checked_add_nanos(delay).unwrap_or(created_at);
    revocation_at(u, at)
}

impl<'a> Arbitrary<'a> for Revocation {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let at = u.arbitrary()?;
        revocation_at(u, at)
    }
}

/// `session` revoked by an arbitrary valid revocation.
fn revoke(u: &mut Unstructured<'_>, session: Session) -> Result<Session> {
    let revocation = revocation_after(u, session.created_at())?;
    session.revoked(revocation).map_err(invalid)
}

/// An active session of `user`.
fn active_session_of(u: &mut Unstructured<'_>, user: UserId) -> Result<Session> {
    Session::active(u.arbitrary()?, user, u.arbitrary()?, u.arbitrary()?).map_err(invalid)
}

impl<'a> Arbitrary<'a> for Session {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        // Decided first: the text fields may use up the rest of the input.
        let revoked: bool = u.arbitrary()?;
        let user = u.arbitrary()?;
        let session = active_session_of(u, user)?;
        if revoked {
            revoke(u, session)
        } else {
            Ok(session)
        }
    }
}

impl<'a> Arbitrary<'a> for RevokeSessionInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Self {
            device_session_id: u.arbitrary()?,
            revocation: u.arbitrary()?,
        })
    }
}

impl<'a> Arbitrary<'a> for RevokeUserSessionsInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Self {
            user_id: u.arbitrary()?,
            revocation: u.arbitrary()?,
        })
    }
}

impl<'a> Arbitrary<'a> for RevokeSessionOutcome {
    /// Either variant holds a revoked session, as the transitions return.
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let user = u.arbitrary()?;
        let active = active_session_of(u, user)?;
        let session = revoke(u, active)?;
        Ok(if u.arbitrary()? {
            RevokeSessionOutcome::Revoked(session)
        } else {
            RevokeSessionOutcome::AlreadyRevoked(session)
        })
    }
}

impl<'a> Arbitrary<'a> for RevokeUserSessionsOutcome {
    /// `Revoked` holds 1..=8 revoked sessions of one user with distinct
    /// ids, newest first — what [`RevokeUserSessionsOutcome::is_consistent_for`]
    /// accepts.
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        if u.arbitrary()? {
            return Ok(RevokeUserSessionsOutcome::NoActiveSessions);
        }
        let user: UserId = u.arbitrary()?;
        let count = u.int_in_range(1..=8usize)?;
        let mut sessions: Vec<Session> = Vec::with_capacity(count);
        for _ in 0..count {
            let active = active_session_of(u, user.clone())?;
            let session = revoke(u, active)?;
            if sessions.iter().all(|s| s.id() != session.id()) {
                sessions.push(session);
            }
        }
        sort_newest_first(&mut sessions);
        Ok(RevokeUserSessionsOutcome::Revoked(sessions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random bytes (xorshift), so the test needs no
    /// RNG crate and always sees the same inputs.
    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect()
    }

    #[test]
    fn generated_sessions_are_valid_and_varied() {
        let mut revoked = 0;
        let mut escaped = 0;
        let mut generated = 0;
        for seed in 0..2000 {
            let data = bytes(seed, 64 + (seed as usize % 512));
            let Ok(session) = Session::arbitrary(&mut Unstructured::new(&data)) else {
                continue;
            };
            generated += 1;
            // Re-validate through serde, which goes through every check.
            let json = serde_json::to_string(&session).unwrap();
            assert_eq!(serde_json::from_str::<Session>(&json).unwrap(), session);
            if !session.is_active() {
                revoked += 1;
                assert!(session.revocation().unwrap().at() >= session.created_at());
            }
            let text = format!("{}{}", session.id(), session.user_id());
            if text.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
                escaped += 1;
            }
        }
        assert!(generated > 1900, "{generated}");
        assert!(revoked > 500, "{revoked}");
        assert!(escaped > 100, "{escaped}");
    }

    #[test]
    fn empty_input_still_yields_valid_values() {
        let mut u = Unstructured::new(&[]);
        let session = Session::arbitrary(&mut u).unwrap();
        assert_eq!(session.id().as_str(), "x");
        assert!(RevokeActorId::arbitrary(&mut Unstructured::new(&[]))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn generated_outcomes_are_consistent() {
        for seed in 0..500 {
            let data = bytes(seed, 1024);
            if let Ok(outcome) = RevokeSessionOutcome::arbitrary(&mut Unstructured::new(&data)) {
                assert!(outcome.is_consistent());
            }
            if let Ok(outcome) = RevokeUserSessionsOutcome::arbitrary(&mut Unstructured::new(&data))
            {
                let user = outcome.sessions().first().map(|s| s.user_id().clone());
                if let Some(user) = user {
                    assert!(outcome.is_consistent_for(&user));
                }
            }
        }
    }
}
