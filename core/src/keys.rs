//! The key space (SPEC §5): where records and indexes live, and index scores.

use std::fmt;

use base64::Engine as _;

use crate::error::ValidationError;
use crate::ids::{DeviceSessionId, UserId};
use crate::timestamp::Timestamp;

/// Default base of the three prefixes (the Go reference's layout).
pub const DEFAULT_KEY_BASE: &str = "authsession:";

/// All key derivation. Plans name keys only through this value, so another
/// layout (e.g. hash-tagged per user for Redis Cluster) can be added without
/// touching the transitions.
///
/// The reference layout: `session_prefix + b64url(id)` holds the record,
/// `user_sessions_prefix + b64url(user)` and
/// `user_active_sessions_prefix + b64url(user)` the two sorted-set indexes
/// (base64url without padding).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeySpace {
    session_prefix: String,
    user_sessions_prefix: String,
    user_active_sessions_prefix: String,
}

impl KeySpace {
    /// A key space from three prefixes: non-empty, distinct, none a prefix
    /// of another (so no key of one kind can be read as another kind).
    pub fn new(
        session_prefix: impl Into<String>,
        user_sessions_prefix: impl Into<String>,
        user_active_sessions_prefix: impl Into<String>,
    ) -> Result<Self, ValidationError> {
        let keys = Self {
            session_prefix: session_prefix.into(),
            user_sessions_prefix: user_sessions_prefix.into(),
            user_active_sessions_prefix: user_active_sessions_prefix.into(),
        };
        let all = keys.prefixes();
        if all.iter().any(|p| p.trim().is_empty()) {
            return Err(ValidationError::InvalidKeyPrefix {
                reason: "prefixes must not be empty",
            });
        }
        for (i, a) in all.iter().enumerate() {
            for (j, b) in all.iter().enumerate() {
                if i != j && b.starts_with(a) {
                    return Err(ValidationError::InvalidKeyPrefix {
                        reason: "prefixes must be distinct and none may be a prefix of another",
                    });
                }
            }
        }
        Ok(keys)
    }

    /// The layout the CLI's `--prefix BASE` selects: `{BASE}session:`,
    /// `{BASE}user_sessions:`, `{BASE}user_active_sessions:`.
    pub fn with_base(base: &str) -> Result<Self, ValidationError> {
        Self::new(
            format!("{base}session:"),
            format!("{base}user_sessions:"),
            format!("{base}user_active_sessions:"),
        )
    }

    /// The three prefixes: session, user sessions, user active sessions.
    pub fn prefixes(&self) -> [&str; 3] {
        [
            &self.session_prefix,
            &self.user_sessions_prefix,
            &self.user_active_sessions_prefix,
        ]
    }

    /// Key of the record of `id`.
    pub fn session_key(&self, id: &DeviceSessionId) -> String {
        join(&self.session_prefix, id.as_str())
    }

    /// Key of the sorted set of all sessions of `user`.
    pub fn user_sessions_key(&self, user: &UserId) -> String {
        join(&self.user_sessions_prefix, user.as_str())
    }

    /// Key of the sorted set of active sessions of `user`.
    pub fn user_active_sessions_key(&self, user: &UserId) -> String {
        join(&self.user_active_sessions_prefix, user.as_str())
    }

    /// The device session id a record key names, if `key` is one.
    pub fn parse_session_key(&self, key: &str) -> Option<DeviceSessionId> {
        split(&self.session_prefix, key).and_then(|t| DeviceSessionId::parse(t).ok())
    }

    /// The user an all-sessions index key names, if `key` is one.
    pub fn parse_user_sessions_key(&self, key: &str) -> Option<UserId> {
        split(&self.user_sessions_prefix, key).and_then(|t| UserId::parse(t).ok())
    }

    /// The user an active-sessions index key names, if `key` is one.
    pub fn parse_user_active_sessions_key(&self, key: &str) -> Option<UserId> {
        split(&self.user_active_sessions_prefix, key).and_then(|t| UserId::parse(t).ok())
    }
}

impl Default for KeySpace {
    fn default() -> Self {
        Self {
            session_prefix: format!("{DEFAULT_KEY_BASE}session:"),
            user_sessions_prefix: format!("{DEFAULT_KEY_BASE}user_sessions:"),
            user_active_sessions_prefix: format!("{DEFAULT_KEY_BASE}user_active_sessions:"),
        }
    }
}

impl fmt::Debug for KeySpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySpace")
            .field("session_prefix", &self.session_prefix)
            .field("user_sessions_prefix", &self.user_sessions_prefix)
            .field(
                "user_active_sessions_prefix",
                &self.user_active_sessions_prefix,
            )
            .finish()
    }
}

/// One key of the reference layout from a single prefix:
/// `prefix + base64url_nopad(component)`, where `component` is a validated
/// device session id or user id (`id.as_str()`). For callers that hold one
/// prefix rather than a [`KeySpace`] (the WASM key helpers). The prefix must
/// not be empty or blank, as in [`KeySpace::new`].
pub fn prefixed_key(prefix: &str, component: &str) -> Result<String, ValidationError> {
    if prefix.trim().is_empty() {
        return Err(ValidationError::InvalidKeyPrefix {
            reason: "prefixes must not be empty",
        });
    }
    Ok(join(prefix, component))
}

fn join(prefix: &str, component: &str) -> String {
    let mut key = String::with_capacity(prefix.len() + component.len().div_ceil(3) * 4);
    key.push_str(prefix);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(component.as_bytes(), &mut key);
    key
}

fn split(prefix: &str, key: &str) -> Option<String> {
    let encoded = key.strip_prefix(prefix)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    // Only the canonical encoding names a key (no alternative trailing bits).
    (join(prefix, &text) == key).then_some(text)
}

/// A sorted-set score: `created_at` in Unix microseconds (floor) as `f64`,
/// exactly what the reference writes. Its `Display` is the exact `ZADD`
/// argument text (`253402300800000000`, `-1`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct IndexScore(f64);

impl IndexScore {
    /// The score of a session created at `created_at`.
    pub fn of(created_at: Timestamp) -> Self {
        // Deliberately lossy above 2^53 µs: the reference does the same,
        // and ordering ties are resolved from the records, not the scores.
        #[allow(clippy::cast_precision_loss)]
        Self(created_at.unix_micros_floor() as f64)
    }

    /// The score as a float.
    pub fn as_f64(self) -> f64 {
        self.0
    }
}

impl fmt::Display for IndexScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Scores are integral; Rust prints integral f64 without exponent or
        // fraction, like Go's strconv.FormatFloat(f, 'f', -1, 64).
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn prefix_rules() {
        assert!(KeySpace::new("a:", "b:", "c:").is_ok());
        assert!(KeySpace::new("", "b:", "c:").is_err());
        assert!(KeySpace::new(" ", "b:", "c:").is_err());
        assert!(KeySpace::new("a:", "a:", "c:").is_err());
        assert!(KeySpace::new("a:", "a:b:", "c:").is_err());
        assert!(KeySpace::new("x:", "y:", "x").is_err());
        let err = KeySpace::new("a", "b", "").unwrap_err();
        assert_eq!(err.kind(), "invalid_key_prefix");
        assert!(KeySpace::with_base("").is_ok());
        assert_eq!(
            KeySpace::with_base(DEFAULT_KEY_BASE).unwrap(),
            KeySpace::default()
        );
    }

    #[test]
    fn keys_round_trip() {
        let keys = KeySpace::default();
        let id = DeviceSessionId::parse("dev-1").unwrap();
        let user = UserId::parse("user-1").unwrap();
        assert_eq!(keys.session_key(&id), "authsession:session:ZGV2LTE");
        assert_eq!(
            keys.user_sessions_key(&user),
            "authsession:user_sessions:dXNlci0x"
        );
        assert_eq!(
            keys.user_active_sessions_key(&user),
            "authsession:user_active_sessions:dXNlci0x"
        );
        assert_eq!(
            keys.parse_session_key("authsession:session:ZGV2LTE"),
            Some(id)
        );
        assert_eq!(
            keys.parse_user_sessions_key("authsession:user_sessions:dXNlci0x"),
            Some(user.clone())
        );
        assert_eq!(
            keys.parse_user_active_sessions_key("authsession:user_active_sessions:dXNlci0x"),
            Some(user)
        );
        assert_eq!(keys.parse_session_key("authsession:session:ZGV2LTF"), None);
        assert_eq!(
            keys.parse_session_key("authsession:user_sessions:dXNlci0x"),
            None
        );
    }

    #[test]
    fn prefixed_key_matches_the_key_space() {
        let keys = KeySpace::default();
        let id = DeviceSessionId::parse("dev-1").unwrap();
        let user = UserId::parse("user-1").unwrap();
        let [session, all, active] = keys.prefixes();
        assert_eq!(
            prefixed_key(session, id.as_str()).unwrap(),
            keys.session_key(&id)
        );
        assert_eq!(
            prefixed_key(all, user.as_str()).unwrap(),
            keys.user_sessions_key(&user)
        );
        assert_eq!(
            prefixed_key(active, user.as_str()).unwrap(),
            keys.user_active_sessions_key(&user)
        );
        assert_eq!(prefixed_key("p:", "\u{e9}").unwrap(), "p:w6k");
        for blank in ["", " ", "\t"] {
            assert_eq!(
                prefixed_key(blank, "dev-1").unwrap_err().kind(),
                "invalid_key_prefix"
            );
        }
    }

    #[test]
    fn score_text() {
        let t = |s: &str| IndexScore::of(Timestamp::parse(s).unwrap()).to_string();
        assert_eq!(t("9999-12-31T23:59:59.999999999Z"), "253402300800000000");
        assert_eq!(t("1969-12-31T23:59:59.999999999Z"), "-1");
        assert_eq!(t("1970-01-01T00:00:00Z"), "0");
        assert_eq!(t("2024-05-06T07:08:09.123456789Z"), "1714979289123456");
    }
}
