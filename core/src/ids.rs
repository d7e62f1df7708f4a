//! Validating newtypes for identifiers, codes and the client public key.

use std::fmt;

use base64::Engine as _;

use crate::error::{Field, ValidationError};

/// Shared rule for free-text identifiers: byte length range, equal to its
/// Unicode-whitespace trim, no control characters (Unicode Cc).
fn check_text(
    value: &str,
    field: Field,
    allow_empty: bool,
    max: usize,
) -> Result<(), ValidationError> {
    if value.is_empty() {
        return if allow_empty {
            Ok(())
        } else {
            Err(ValidationError::Empty { field })
        };
    }
    if value.len() > max {
        return Err(ValidationError::TooLong {
            field,
            max,
            actual: value.len(),
        });
    }
    if value.trim() != value {
        return Err(ValidationError::SurroundingWhitespace { field });
    }
    if value.chars().any(char::is_control) {
        return Err(ValidationError::ControlCharacter { field });
    }
    Ok(())
}

/// Shared rule for machine codes: 1..=max bytes of `[a-z][a-z0-9_]*`.
fn check_code(value: &str, field: Field, max: usize) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::Empty { field });
    }
    if value.len() > max {
        return Err(ValidationError::TooLong {
            field,
            max,
            actual: value.len(),
        });
    }
    let mut bytes = value.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
    if !first_ok || !bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return Err(ValidationError::InvalidCode { field });
    }
    Ok(())
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `value` and wraps it.
            pub fn parse(value: impl Into<String>) -> Result<Self, ValidationError> {
                let value = value.into();
                let check: fn(&str) -> Result<(), ValidationError> = $check;
                check(&value)?;
                Ok(Self(value))
            }

            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The validated text, by value.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = ValidationError;
            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = ValidationError;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

string_newtype!(
    /// A device session id: 1..=256 bytes, equal to its Unicode-whitespace
    /// trim, no control characters.
    DeviceSessionId,
    |v| check_text(v, Field::DeviceSessionId, false, DeviceSessionId::MAX_LEN)
);
string_newtype!(
    /// A user id: 1..=256 bytes, equal to its Unicode-whitespace trim, no
    /// control characters.
    UserId,
    |v| check_text(v, Field::UserId, false, UserId::MAX_LEN)
);
string_newtype!(
    /// Why a session was revoked: 1..=64 bytes of `[a-z][a-z0-9_]*`.
    RevokeReasonCode,
    |v| check_code(v, Field::RevokeReasonCode, RevokeReasonCode::MAX_LEN)
);
string_newtype!(
    /// Who revoked a session (kind of actor): 1..=32 bytes of `[a-z][a-z0-9_]*`.
    RevokeActorType,
    |v| check_code(v, Field::RevokeActorType, RevokeActorType::MAX_LEN)
);
string_newtype!(
    /// Which actor revoked a session: 0..=256 bytes, equal to its trim, no
    /// control characters. May be empty (then omitted from the record).
    RevokeActorId,
    |v| check_text(v, Field::RevokeActorId, true, RevokeActorId::MAX_LEN)
);

impl DeviceSessionId {
    /// Maximum length in bytes.
    pub const MAX_LEN: usize = 256;
}
impl UserId {
    /// Maximum length in bytes.
    pub const MAX_LEN: usize = 256;
}
impl RevokeReasonCode {
    /// Maximum length in bytes.
    pub const MAX_LEN: usize = 64;
}
impl RevokeActorType {
    /// Maximum length in bytes.
    pub const MAX_LEN: usize = 32;
}
impl RevokeActorId {
    /// Maximum length in bytes.
    pub const MAX_LEN: usize = 256;

    /// The empty actor id (no actor named).
    pub fn empty() -> Self {
        Self(String::new())
    }

    /// Whether no actor is named.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Default for RevokeActorId {
    fn default() -> Self {
        Self::empty()
    }
}

/// A client's Ed25519 public key: exactly 32 raw bytes. Its text form is
/// standard base64 with padding (44 characters), parsed strictly: no
/// whitespace or line breaks, no URL alphabet, canonical trailing bits.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct ClientPublicKey([u8; ClientPublicKey::LEN]);

impl ClientPublicKey {
    /// Length of the raw key in bytes.
    pub const LEN: usize = 32;

    /// Wraps raw key bytes; any length other than 32 is an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ValidationError> {
        <[u8; Self::LEN]>::try_from(bytes).map(Self).map_err(|_| {
            ValidationError::InvalidKeyLength {
                actual: bytes.len(),
            }
        })
    }

    /// Parses the strict base64 text form.
    pub fn from_base64(text: &str) -> Result<Self, ValidationError> {
        let engine = &base64::engine::general_purpose::STANDARD;
        if text.len() == 44 {
            // The only length that can hold 32 bytes: decode on the stack.
            let mut raw = [0u8; 33];
            let len = engine
                .decode_slice(text.as_bytes(), &mut raw)
                .map_err(|_| ValidationError::InvalidBase64)?;
            return Self::from_bytes(raw.get(..len).unwrap_or_default());
        }
        let raw = engine
            .decode(text.as_bytes())
            .map_err(|_| ValidationError::InvalidBase64)?;
        Self::from_bytes(&raw)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }

    /// Writes the padded standard base64 text form into `buffer` and
    /// returns it, without allocating.
    pub fn encode_base64<'b>(&self, buffer: &'b mut [u8; 44]) -> &'b str {
        let written = base64::engine::general_purpose::STANDARD
            .encode_slice(self.0, buffer)
            .unwrap_or(0);
        buffer
            .get(..written)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
    }

    /// The padded standard base64 text form (44 characters).
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }
}

impl From<[u8; ClientPublicKey::LEN]> for ClientPublicKey {
    fn from(bytes: [u8; ClientPublicKey::LEN]) -> Self {
        Self(bytes)
    }
}

impl TryFrom<&[u8]> for ClientPublicKey {
    type Error = ValidationError;
    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        Self::from_bytes(bytes)
    }
}

impl TryFrom<&str> for ClientPublicKey {
    type Error = ValidationError;
    fn try_from(text: &str) -> Result<Self, Self::Error> {
        Self::from_base64(text)
    }
}

impl TryFrom<String> for ClientPublicKey {
    type Error = ValidationError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::from_base64(&text)
    }
}

impl std::str::FromStr for ClientPublicKey {
    type Err = ValidationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::from_base64(text)
    }
}

impl From<ClientPublicKey> for String {
    fn from(key: ClientPublicKey) -> String {
        key.to_base64()
    }
}

impl fmt::Display for ClientPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for ClientPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientPublicKey({})", self.to_base64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::rejects_each;

    #[test]
    fn id_length_boundaries() {
        assert!(DeviceSessionId::parse("a".repeat(256)).is_ok());
        let err = DeviceSessionId::parse("a".repeat(257)).unwrap_err();
        assert_eq!(
            err,
            ValidationError::TooLong {
                field: Field::DeviceSessionId,
                max: 256,
                actual: 257
            }
        );
        assert_eq!(err.kind(), "invalid_id");
        assert!(UserId::parse("é".repeat(128)).is_ok());
        assert!(UserId::parse(format!("{}a", "é".repeat(128))).is_err());
        assert_eq!(
            UserId::parse("").unwrap_err(),
            ValidationError::Empty {
                field: Field::UserId
            }
        );
    }

    #[test]
    fn id_whitespace_and_controls() {
        rejects_each(
            |s| DeviceSessionId::parse(s),
            &[" a", "a ", "a\n", "\u{a0}a", "a\u{3000}", "\u{2028}", "   "],
            &ValidationError::SurroundingWhitespace {
                field: Field::DeviceSessionId,
            },
        );
        rejects_each(
            |s| UserId::parse(s),
            &[
                "a\0b", "a\u{1}b", "a\tb", "a\u{7f}b", "a\u{85}b", "a\u{9f}b",
            ],
            &ValidationError::ControlCharacter {
                field: Field::UserId,
            },
        );
        for good in [
            "a b",
            "a\u{a0}b",
            "a\u{feff}b",
            "a\u{200b}",
            "\u{ffff}\u{fffd}",
            "日本",
        ] {
            assert!(DeviceSessionId::parse(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn code_boundaries() {
        assert!(RevokeReasonCode::parse("a".repeat(64)).is_ok());
        assert_eq!(
            RevokeReasonCode::parse("a".repeat(65)).unwrap_err().kind(),
            "invalid_reason_code"
        );
        assert!(RevokeActorType::parse("a".repeat(32)).is_ok());
        assert_eq!(
            RevokeActorType::parse("a".repeat(33)).unwrap_err().kind(),
            "invalid_actor_type"
        );
        assert!(RevokeReasonCode::parse("a1_b").is_ok());
        for bad in ["", "A", "1a", "_a", "a-b", " a", "aé", "a "] {
            assert!(RevokeReasonCode::parse(bad).is_err(), "{bad:?}");
            assert!(RevokeActorType::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn actor_id_may_be_empty_but_not_padded() {
        assert!(RevokeActorId::parse("").unwrap().is_empty());
        assert!(RevokeActorId::parse("x".repeat(256)).is_ok());
        assert!(RevokeActorId::parse("x".repeat(257)).is_err());
        assert!(RevokeActorId::parse(" ").is_err());
        assert!(RevokeActorId::parse("a\u{1}").is_err());
        assert!(RevokeActorId::parse("a b").is_ok());
    }

    #[test]
    fn public_key_lengths_and_strictness() {
        use base64::engine::general_purpose::STANDARD;
        assert!(ClientPublicKey::from_bytes(&[0; 32]).is_ok());
        assert_eq!(
            ClientPublicKey::from_bytes(&[0; 31]).unwrap_err(),
            ValidationError::InvalidKeyLength { actual: 31 }
        );
        assert!(ClientPublicKey::from_bytes(&[0; 33]).is_err());
        assert!(ClientPublicKey::from_base64(&STANDARD.encode([0u8; 31])).is_err());
        assert!(ClientPublicKey::from_base64(&STANDARD.encode([0u8; 33])).is_err());
        let text = STANDARD.encode([0xfbu8; 32]);
        assert_eq!(text.len(), 44);
        let key = ClientPublicKey::from_base64(&text).unwrap();
        assert_eq!(key.to_base64(), text);
        // URL alphabet, missing padding, embedded line break, non-canonical tail.
        assert!(ClientPublicKey::from_base64(&text.replace('+', "-").replace('/', "_")).is_err());
        assert!(ClientPublicKey::from_base64(text.trim_end_matches('=')).is_err());
        assert!(
            ClientPublicKey::from_base64(&format!("{}\n{}", &text[..20], &text[20..])).is_err()
        );
        assert!(
            ClientPublicKey::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=").is_err()
        );
    }

    #[test]
    fn serde_cannot_bypass_validation() {
        assert!(serde_json::from_str::<DeviceSessionId>("\" x\"").is_err());
        assert!(serde_json::from_str::<RevokeReasonCode>("\"X\"").is_err());
        assert!(serde_json::from_str::<ClientPublicKey>("\"AAAA\"").is_err());
        assert_eq!(
            serde_json::from_str::<UserId>("\"u\"").unwrap().as_str(),
            "u"
        );
    }
}
