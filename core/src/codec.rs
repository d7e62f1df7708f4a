//! The stored record: one JSON object per session.
//!
//! [`encode`] writes exactly what Go's `encoding/json` writes for the
//! reference's `redisRecord` — same key order, omitted empty fields, Go's
//! HTML-safe escaping (done by [`GoEscapeFormatter`], a
//! `serde_json::ser::Formatter`) and `RFC3339Nano` UTC timestamps.
//!
//! [`decode`] is strict: one JSON object, nothing after it, no unknown,
//! duplicate or `null` fields, canonical timestamps, strict base64, a
//! revocation either whole or absent, a valid session whose id is the one
//! asked for. Any JSON-equivalent spelling of a valid record (key order,
//! whitespace, escapes) is accepted.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::io;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Serialize;

use crate::error::{Field, ValidationError};
use crate::ids::{
    ClientPublicKey, DeviceSessionId, RevokeActorId, RevokeActorType, RevokeReasonCode, UserId,
};
use crate::session::{Revocation, Session, Status};
use crate::timestamp::Timestamp;

/// Why a stored record was rejected. Every variant has a stable
/// [`DecodeError::kind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not well-formed JSON: syntax error, truncated input, invalid UTF-8,
    /// a lone surrogate escape, an empty payload.
    #[error("malformed JSON at line {line} column {column}: {message}")]
    MalformedJson {
        /// 1-based line of the error (0 when unknown).
        line: usize,
        /// 1-based column of the error (0 when unknown).
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// Well-formed JSON whose top-level value is not an object.
    #[error("record must be a JSON object")]
    NotAnObject,
    /// Something other than whitespace follows the object.
    #[error("unexpected data after the record object")]
    TrailingData,
    /// A key that is not a record field (keys are case-sensitive).
    #[error("unknown field {key:?}")]
    UnknownField {
        /// The key as written (truncated to 64 characters).
        key: String,
    },
    /// A field appears twice.
    #[error("duplicate field {field}")]
    DuplicateField {
        /// The repeated field.
        field: Field,
    },
    /// A field is `null`.
    #[error("{field} must not be null")]
    NullValue {
        /// The null field.
        field: Field,
    },
    /// A field is not a JSON string.
    #[error("{field} must be a JSON string")]
    InvalidType {
        /// The mistyped field.
        field: Field,
    },
    /// A required field is absent.
    #[error("missing field {field}")]
    MissingField {
        /// The absent field.
        field: Field,
    },
    /// Some but not all of `revoked_at`, `revoke_reason_code`,
    /// `revoke_actor_type` are present (or only `revoke_actor_id` is).
    #[error("revocation fields must be either all present or all absent")]
    PartialRevocation,
    /// A field value breaks a domain rule (its kind is the rule's kind,
    /// e.g. `invalid_id`, `non_canonical_timestamp`, `invalid_public_key`).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The record is valid but belongs to another id than the one asked
    /// for (it is stored under the wrong key).
    #[error("device_session_id {actual:?} does not match requested {expected:?}")]
    IdMismatch {
        /// The id the caller asked for.
        expected: String,
        /// The id inside the record.
        actual: String,
    },
}

impl DecodeError {
    /// Stable machine-readable kind (snake_case).
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::MalformedJson { .. } => "malformed_json",
            DecodeError::NotAnObject => "not_an_object",
            DecodeError::TrailingData => "trailing_data",
            DecodeError::UnknownField { .. } => "unknown_field",
            DecodeError::DuplicateField { .. } => "duplicate_field",
            DecodeError::NullValue { .. } => "null_value",
            DecodeError::InvalidType { .. } => "invalid_type",
            DecodeError::MissingField { .. } => "missing_field",
            DecodeError::PartialRevocation => "partial_revocation",
            DecodeError::Invalid(inner) => inner.kind(),
            DecodeError::IdMismatch { .. } => "id_mismatch",
        }
    }

    /// The field the error is about, when there is one.
    pub fn field(&self) -> Option<Field> {
        match self {
            DecodeError::DuplicateField { field }
            | DecodeError::NullValue { field }
            | DecodeError::InvalidType { field }
            | DecodeError::MissingField { field } => Some(*field),
            DecodeError::Invalid(inner) => inner.field(),
            DecodeError::IdMismatch { .. } => Some(Field::DeviceSessionId),
            DecodeError::PartialRevocation => Some(Field::RevokedAt),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------- encode

/// Go `encoding/json` string escaping on top of serde_json's: additionally
/// `<`, `>`, `&`, U+2028 and U+2029 as `\u003c`, `\u003e`, `\u0026`,
/// `\u2028`, `\u2029`; control characters other than `\n`, `\r`, `\t` as
/// `\u00XX` (lowercase hex). Everything else non-ASCII is written raw.
#[derive(Debug, Clone, Copy, Default)]
pub struct GoEscapeFormatter;

/// Position of the first byte that may start a sequence Go escapes and
/// serde_json does not (`<`, `>`, `&`, or 0xE2, the lead byte of U+2028 and
/// U+2029). Eight bytes at a time: the encoder's hot loop.
fn find_go_extra_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Classic "has a zero byte" test on word ^ splat(c); may flag a false
    // positive only after a true one, so the exact scan below settles it.
    let has = |word: u64, c: u8| {
        let x = word ^ (ONES * u64::from(c));
        x.wrapping_sub(ONES) & !x & HIGHS
    };
    let is_special = |b: &u8| matches!(b, b'<' | b'>' | b'&' | 0xE2);
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        if has(word, b'<') | has(word, b'>') | has(word, b'&') | has(word, 0xE2) != 0 {
            return chunk.iter().position(is_special).map(|at| offset + at);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(is_special)
        .map(|at| offset + at)
}

impl serde_json::ser::Formatter for GoEscapeFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut rest = fragment;
        // U+2028/U+2029 are the only escaped non-ASCII chars; both start
        // with byte 0xE2, so a byte scan finds every candidate.
        while let Some(at) = find_go_extra_escape(rest.as_bytes()) {
            let (head, tail) = rest.split_at(at);
            writer.write_all(head.as_bytes())?;
            let ch = tail.chars().next().unwrap_or_default();
            let escape = match ch {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => tail.get(..ch.len_utf8()).unwrap_or_default(),
            };
            writer.write_all(escape.as_bytes())?;
            rest = tail.get(ch.len_utf8()..).unwrap_or_default();
        }
        writer.write_all(rest.as_bytes())
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        char_escape: serde_json::ser::CharEscape,
    ) -> io::Result<()> {
        use serde_json::ser::CharEscape;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let control = |byte: u8| {
            let hi = HEX.get(usize::from(byte >> 4)).copied().unwrap_or(b'0');
            let lo = HEX.get(usize::from(byte & 0xF)).copied().unwrap_or(b'0');
            [b'\\', b'u', b'0', b'0', hi, lo]
        };
        match char_escape {
            CharEscape::Quote => writer.write_all(b"\\\""),
            CharEscape::ReverseSolidus => writer.write_all(b"\\\\"),
            CharEscape::Solidus => writer.write_all(b"/"),
            CharEscape::LineFeed => writer.write_all(b"\\n"),
            CharEscape::CarriageReturn => writer.write_all(b"\\r"),
            CharEscape::Tab => writer.write_all(b"\\t"),
            CharEscape::Backspace => writer.write_all(&control(0x08)),
            CharEscape::FormFeed => writer.write_all(&control(0x0c)),
            CharEscape::AsciiControl(byte) => writer.write_all(&control(byte)),
        }
    }
}

#[derive(Serialize)]
struct RecordOut<'a> {
    device_session_id: &'a str,
    user_id: &'a str,
    client_public_key_base64: &'a str,
    status: &'static str,
    created_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoke_reason_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoke_actor_type: Option<&'a str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    revoke_actor_id: &'a str,
}

/// Encodes a session as the reference writes it, byte for byte.
pub fn encode(session: &Session) -> Vec<u8> {
    // Keys, punctuation, key text and timestamps take at most 330 bytes;
    // sizing for the variable fields too avoids a regrowth copy (escapes
    // are rare enough to ignore here).
    let variable = session.id().as_str().len()
        + session.user_id().as_str().len()
        + session.revocation().map_or(0, |r| {
            r.reason_code().as_str().len()
                + r.actor_type().as_str().len()
                + r.actor_id().as_str().len()
        });
    let mut out = Vec::with_capacity(330 + variable);
    encode_into(session, &mut out);
    out
}

/// Appends the encoding of `session` to `out`.
pub fn encode_into(session: &Session, out: &mut Vec<u8>) {
    let mut key_buffer = [0u8; 44];
    let public_key = session.client_public_key().encode_base64(&mut key_buffer);
    let created_at = session.created_at().canonical();
    let revoked_at = session.revocation().map(|r| r.at().canonical());
    let revocation = session.revocation();
    let record = RecordOut {
        device_session_id: session.id().as_str(),
        user_id: session.user_id().as_str(),
        client_public_key_base64: public_key,
        status: session.status().as_str(),
        created_at: created_at.as_str(),
        revoked_at: revoked_at.as_ref().map(|t| t.as_str()),
        revoke_reason_code: revocation.map(|r| r.reason_code().as_str()),
        revoke_actor_type: revocation.map(|r| r.actor_type().as_str()),
        revoke_actor_id: revocation.map_or("", |r| r.actor_id().as_str()),
    };
    let mut serializer = serde_json::Serializer::with_formatter(out, GoEscapeFormatter);
    // Writing plain strings into a Vec cannot fail.
    let written = record.serialize(&mut serializer);
    debug_assert!(written.is_ok());
}

// ---------------------------------------------------------------- decode

/// Decodes a stored record strictly and checks it is the record of
/// `expected_id`.
pub fn decode(expected_id: &DeviceSessionId, bytes: &[u8]) -> Result<Session, DecodeError> {
    let session = decode_unchecked(bytes)?;
    if session.id() != expected_id {
        return Err(DecodeError::IdMismatch {
            expected: expected_id.as_str().to_owned(),
            actual: session.id().as_str().to_owned(),
        });
    }
    Ok(session)
}

/// Decodes a stored record strictly without checking which id it is for.
/// Prefer [`decode`]: a record is only trustworthy under its own key.
pub fn decode_unchecked(bytes: &[u8]) -> Result<Session, DecodeError> {
    let fields = parse_fields(bytes)?;
    fields.into_session()
}

/// The raw string fields of a record, borrowed from the input when they
/// hold no escapes.
#[derive(Default)]
struct RawFields<'a> {
    values: [Option<Cow<'a, str>>; 9],
}

impl<'a> RawFields<'a> {
    fn slot(&mut self, field: Field) -> Option<&mut Option<Cow<'a, str>>> {
        let index = Field::RECORD_FIELDS.iter().position(|f| *f == field)?;
        self.values.get_mut(index)
    }

    fn take(&mut self, field: Field) -> Option<Cow<'a, str>> {
        self.slot(field).and_then(Option::take)
    }

    fn into_session(mut self) -> Result<Session, DecodeError> {
        let required = |value: Option<Cow<'a, str>>, field: Field| {
            value.ok_or(DecodeError::MissingField { field })
        };
        let timestamp =
            |text: &str, field: Field| Timestamp::parse(text).map_err(|e| e.for_field(field));

        // Same precedence as the reference: timestamps, key, revocation
        // shape, then the domain rules, then the id the caller asked for.
        let created_at = timestamp(
            &required(self.take(Field::CreatedAt), Field::CreatedAt)?,
            Field::CreatedAt,
        )?;
        let public_key = ClientPublicKey::from_base64(&required(
            self.take(Field::ClientPublicKey),
            Field::ClientPublicKey,
        )?)?;
        let revoked_at = self.take(Field::RevokedAt);
        let reason_code = self.take(Field::RevokeReasonCode);
        let actor_type = self.take(Field::RevokeActorType);
        let actor_id = self.take(Field::RevokeActorId);
        let revocation_parts = match (revoked_at, reason_code, actor_type, actor_id) {
            (None, None, None, None) => None,
            (Some(at), Some(reason), Some(actor), id) => Some((at, reason, actor, id)),
            _ => return Err(DecodeError::PartialRevocation),
        };
        let revoked_at = match &revocation_parts {
            Some((at, ..)) => Some(timestamp(at, Field::RevokedAt)?),
            None => None,
        };
        let id = DeviceSessionId::parse(required(
            self.take(Field::DeviceSessionId),
            Field::DeviceSessionId,
        )?)?;
        let user_id = UserId::parse(required(self.take(Field::UserId), Field::UserId)?)?;
        let status = Status::parse(&required(self.take(Field::Status), Field::Status)?)?;
        let session = Session::active(id, user_id, public_key, created_at)?;
        match (status, revocation_parts, revoked_at) {
            (Status::Active, None, _) => Ok(session),
            (Status::Active, Some(_), _) => Err(ValidationError::ActiveWithRevocation.into()),
            (Status::Revoked, Some((_, reason, actor, actor_id)), Some(at)) => {
                let revocation = Revocation::new(
                    at,
                    RevokeReasonCode::parse(reason)?,
                    RevokeActorType::parse(actor)?,
                    RevokeActorId::parse(actor_id.unwrap_or_default())?,
                )?;
                Ok(session.revoked(revocation)?)
            }
            (Status::Revoked, _, _) => Err(ValidationError::RevokedWithoutRevocation.into()),
        }
    }
}

fn parse_fields(bytes: &[u8]) -> Result<RawFields<'_>, DecodeError> {
    // The visitor reports *why* it failed through this cell; serde_json's
    // own errors (syntax, EOF, non-object) are classified afterwards.
    let problem: Cell<Option<DecodeError>> = Cell::new(None);
    // Validating UTF-8 once up front (vectorised) is cheaper than
    // serde_json's per-string checks, and invalid UTF-8 is malformed
    // anywhere in a record, inside strings too.
    let text =
        std::str::from_utf8(bytes).map_err(|error| invalid_utf8(bytes, error.valid_up_to()))?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = RecordSeed { problem: &problem }.deserialize(&mut deserializer);
    let fields = match parsed {
        Ok(fields) => fields,
        Err(error) => {
            return Err(match problem.take() {
                // Like the reference, a syntax error anywhere in the object
                // outranks what the visitor saw first (this path only runs
                // on failure, so the second parse costs nothing otherwise).
                Some(found) => match first_value_syntax_error(text) {
                    Some(syntax) => syntax,
                    None => found,
                },
                None => classify(&error),
            });
        }
    };
    deserializer.end().map_err(|_| DecodeError::TrailingData)?;
    Ok(fields)
}

fn invalid_utf8(bytes: &[u8], at: usize) -> DecodeError {
    let before = bytes.get(..at).unwrap_or_default();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    DecodeError::MalformedJson {
        line: 1 + before.iter().filter(|&&b| b == b'\n').count(),
        column: 1 + at - line_start,
        message: format!("invalid UTF-8 at byte {at}"),
    }
}

fn first_value_syntax_error(text: &str) -> Option<DecodeError> {
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<de::IgnoredAny>();
    match values.next() {
        Some(Err(error)) if error.classify() != serde_json::error::Category::Data => {
            Some(classify(&error))
        }
        _ => None,
    }
}

fn classify(error: &serde_json::Error) -> DecodeError {
    match error.classify() {
        serde_json::error::Category::Data => DecodeError::NotAnObject,
        _ => DecodeError::MalformedJson {
            line: error.line(),
            column: error.column(),
            message: error.to_string(),
        },
    }
}

struct RecordSeed<'p> {
    problem: &'p Cell<Option<DecodeError>>,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = RawFields<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = RawFields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a session record object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = RawFields::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let field = match key {
                Key::Known(field) => field,
                Key::Unknown(key) => {
                    self.problem.set(Some(DecodeError::UnknownField { key }));
                    return Err(de::Error::custom("unknown field"));
                }
            };
            let value = map.next_value_seed(ValueSeed {
                field,
                problem: self.problem,
            })?;
            match fields.slot(field) {
                Some(slot @ None) => *slot = Some(value),
                _ => {
                    self.problem
                        .set(Some(DecodeError::DuplicateField { field }));
                    return Err(de::Error::custom("duplicate field"));
                }
            }
        }
        Ok(fields)
    }
}

enum Key {
    Known(Field),
    Unknown(String),
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(match Field::from_record_key(key) {
            Some(field) => Key::Known(field),
            None => Key::Unknown(key.chars().take(64).collect()),
        })
    }
}

struct ValueSeed<'p> {
    field: Field,
    problem: &'p Cell<Option<DecodeError>>,
}

impl ValueSeed<'_> {
    fn reject<T, E: de::Error>(self, problem: DecodeError) -> Result<T, E> {
        self.problem.set(Some(problem));
        Err(E::custom("invalid field value"))
    }

    fn wrong_type<T, E: de::Error>(self) -> Result<T, E> {
        let field = self.field;
        self.reject(DecodeError::InvalidType { field })
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        // `any`, not `str`: serde_json then calls the visitor for every
        // token type, so a mistyped value is reported with its field.
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a string for {}", self.field)
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(value))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        let field = self.field;
        self.reject(DecodeError::NullValue { field })
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        self.wrong_type()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        self.wrong_type()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        self.wrong_type()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        self.wrong_type()
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        self.wrong_type()
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        self.wrong_type()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "dev-1";
    const KEY: &str = "AomOzxhjVtkranWNshKJecwziOH8uxuMgYlmXg9X7Bw=";

    fn record(extra: &str) -> String {
        format!(
            "{{\"device_session_id\":\"dev-1\",\"user_id\":\"user-1\",\"client_public_key_base64\":\"{KEY}\",\
             \"status\":\"active\",\"created_at\":\"2024-05-06T07:08:09.123456789Z\"{extra}}}"
        )
    }

    fn revoked(extra: &str) -> String {
        format!(
            "{{\"device_session_id\":\"dev-1\",\"user_id\":\"user-1\",\"client_public_key_base64\":\"{KEY}\",\
             \"status\":\"revoked\",\"created_at\":\"2024-05-06T07:08:09.123456789Z\",\
             \"revoked_at\":\"2024-05-06T08:00:00Z\",\"revoke_reason_code\":\"logout\",\
             \"revoke_actor_type\":\"user\"{extra}}}"
        )
    }

    fn kind_of(payload: &str) -> &'static str {
        decode(&DeviceSessionId::parse(ID).unwrap(), payload.as_bytes())
            .unwrap_err()
            .kind()
    }

    fn ok(payload: &str) -> Session {
        decode(&DeviceSessionId::parse(ID).unwrap(), payload.as_bytes()).unwrap()
    }

    #[test]
    fn accepts_and_reencodes() {
        let s = ok(&record(""));
        assert_eq!(String::from_utf8(encode(&s)).unwrap(), record(""));
        let r = ok(&revoked(""));
        assert_eq!(String::from_utf8(encode(&r)).unwrap(), revoked(""));
        // An explicit empty actor id is the omitted one.
        assert_eq!(ok(&revoked(",\"revoke_actor_id\":\"\"")), r);
    }

    #[test]
    fn json_equivalent_spellings_are_accepted() {
        let canonical = ok(&record(""));
        let spaced = format!(
            " \n\t{} \r\n",
            record("").replace(',', " ,\n ").replace("\":", "\" : ")
        );
        assert_eq!(ok(&spaced), canonical);
        assert_eq!(
            ok(&record("").replace("\"dev-1\"", "\"\\u0064ev-1\"")),
            canonical
        );
        assert_eq!(
            ok(&record("").replace("\"status\"", "\"st\\u0061tus\"")),
            canonical
        );
        assert_eq!(
            ok(&record("").replace(KEY, &KEY.replace('/', "\\/"))),
            canonical
        );
        let reordered = format!(
            "{{\"created_at\":\"2024-05-06T07:08:09.123456789Z\",\"status\":\"active\",\
             \"client_public_key_base64\":\"{KEY}\",\"user_id\":\"user-1\",\"device_session_id\":\"dev-1\"}}"
        );
        assert_eq!(ok(&reordered), canonical);
    }

    #[test]
    fn stricter_than_the_reference() {
        assert_eq!(
            kind_of(&record(",\"status\":\"active\"")),
            "duplicate_field"
        );
        assert_eq!(kind_of(&record(",\"STATUS\":\"active\"")), "unknown_field");
        assert_eq!(kind_of(&record(",\"revoke_actor_id\":null")), "null_value");
        assert_eq!(
            kind_of(&record("").replace("\"user-1\"", "null")),
            "null_value"
        );
        assert_eq!(
            kind_of(&record("").replace("user-1", "user-\\ud800")),
            "malformed_json"
        );
        let mut bytes = record("").into_bytes();
        let at = bytes.windows(6).position(|w| w == b"user-1").unwrap();
        bytes[at + 5] = 0xff;
        let err = decode(&DeviceSessionId::parse(ID).unwrap(), &bytes).unwrap_err();
        assert_eq!(err.kind(), "malformed_json");
        assert_eq!(
            kind_of(&record("").replace(KEY, &format!("{}\\n{}", &KEY[..20], &KEY[20..]))),
            "invalid_public_key"
        );
        assert_eq!(
            kind_of(&record(",\"revoke_reason_code\":\" \"")),
            "partial_revocation"
        );
        assert_eq!(
            kind_of(&record(",\"revoke_actor_id\":\"\"")),
            "partial_revocation"
        );
        assert_eq!(
            kind_of(&revoked(",\"revoke_actor_id\":\" \"")),
            "invalid_actor_id"
        );
    }

    #[test]
    fn error_kinds() {
        for (input, kind) in [
            ("".to_owned(), "malformed_json"),
            (" ".to_owned(), "malformed_json"),
            ("[]".to_owned(), "not_an_object"),
            ("\"x\"".to_owned(), "not_an_object"),
            ("null".to_owned(), "not_an_object"),
            ("{}".to_owned(), "missing_field"),
            (format!("{}{{}}", record("")), "trailing_data"),
            (format!("{}x", record("")), "trailing_data"),
            (record(",\"extra\":1"), "unknown_field"),
            (
                record(",\"revoked_at\":\"2024-05-06T08:00:00Z\""),
                "partial_revocation",
            ),
        ] {
            assert_eq!(kind_of(&input), kind, "{input}");
        }
        // One field of a valid record (active or revoked) changed.
        for (revoked_record, from, to, kind) in [
            (false, "\"active\"", "5", "invalid_type"),
            (false, "\"active\"", "\"Active\"", "invalid_status"),
            (false, "09.123456789Z", "09.120Z", "non_canonical_timestamp"),
            (false, "09.123456789Z", "09z", "invalid_timestamp"),
            (false, KEY, "AAAA", "invalid_public_key"),
            (true, "\"dev-1\"", "\"dev-2\"", "id_mismatch"),
            (
                true,
                "08:00:00Z",
                "07:08:09.123456788Z",
                "revoked_before_created",
            ),
            (
                false,
                "2024-05-06T07:08:09.123456789Z",
                "0001-01-01T00:00:00Z",
                "zero_timestamp",
            ),
            (
                true,
                "\"revoked\"",
                "\"active\"",
                "status_revocation_mismatch",
            ),
            (
                false,
                "\"active\"",
                "\"revoked\"",
                "status_revocation_mismatch",
            ),
            (false, "\"dev-1\"", "\" dev-1\"", "invalid_id"),
        ] {
            let valid = if revoked_record {
                revoked("")
            } else {
                record("")
            };
            let input = valid.replace(from, to);
            assert_ne!(input, valid, "{from} is in the record");
            assert_eq!(kind_of(&input), kind, "{input}");
        }
    }

    #[test]
    fn revoked_at_equal_to_created_at_is_valid() {
        let s = ok(&revoked("").replace("2024-05-06T08:00:00Z", "2024-05-06T07:08:09.123456789Z"));
        assert_eq!(s.revocation().unwrap().at(), s.created_at());
    }

    #[test]
    fn word_scan_finds_the_first_special_byte_anywhere() {
        for len in 0..40 {
            for at in 0..len {
                for special in [b'<', b'>', b'&', 0xE2] {
                    // Neighbours one bit away from each special byte.
                    let mut bytes: Vec<u8> = (0..len)
                        .map(|i| [b'=', b'?', b'\'', 0xE3, b'a'][i % 5])
                        .collect();
                    assert_eq!(find_go_extra_escape(&bytes), None);
                    bytes[at] = special;
                    if at + 1 < len {
                        bytes[at + 1] = b'<';
                    }
                    assert_eq!(
                        find_go_extra_escape(&bytes),
                        Some(at),
                        "{len} {at} {special}"
                    );
                }
            }
        }
    }

    #[test]
    fn go_escaping() {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut out, GoEscapeFormatter);
        "<a>&\u{2028}\u{2029}\"\\/é😀\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f}\u{e2}"
            .serialize(&mut ser)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"\\u003ca\\u003e\\u0026\\u2028\\u2029\\\"\\\\/é😀\\u0008\\u000c\\n\\r\\t\\u0001\\u001f\u{7f}\u{e2}\""
        );
    }
}
