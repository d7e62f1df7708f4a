//! The key space: where records and indexes live, and index scores.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;

use crate::error::ValidationError;
use crate::ids::{DeviceSessionId, UserId};
use crate::timestamp::Timestamp;

/// Default base of the three prefixes (the Go reference's layout).
pub const DEFAULT_KEY_BASE: &str = "authsession:";

/// How keys are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Layout {
    /// The Go reference adapter's layout (the only one it reads): the
    /// record key depends on the id alone. For a standalone server.
    #[default]
    Reference,
    /// Every key of one user carries the hash tag `{b64url(user)}`, so all
    /// of a user's keys live in one Redis Cluster slot and every mutation
    /// is one script there; an owner key per id (id → user, in the id's own
    /// slot) keeps ids unique across the cluster.
    Tagged,
}

impl Layout {
    /// `reference` or `tagged`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Layout::Reference => "reference",
            Layout::Tagged => "tagged",
        }
    }
}

impl std::str::FromStr for Layout {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reference" => Ok(Layout::Reference),
            "tagged" => Ok(Layout::Tagged),
            _ => Err(ValidationError::InvalidKeyPrefix {
                reason: "layout must be `reference` or `tagged`",
            }),
        }
    }
}

/// One of a user's three sorted-set indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Index {
    /// Every session of the user, scored by creation time (the Go
    /// adapter's `user_sessions`).
    All,
    /// The active sessions, scored by creation time (the Go adapter's
    /// `user_active_sessions`).
    Active,
    /// The revoked sessions, scored by revocation time (ours alone: what
    /// retention walks).
    Revoked,
}

impl Index {
    /// The three, in the order a walk visits them.
    pub const ALL: [Index; 3] = [Index::All, Index::Active, Index::Revoked];

    /// `all`, `active` or `revoked`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Index::All => "all",
            Index::Active => "active",
            Index::Revoked => "revoked",
        }
    }
}

/// What the keys under one prefix hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyKind {
    /// Session records (strings).
    Record,
    /// One of the users' indexes (sorted sets).
    Index(Index),
    /// Owner keys, id → user (strings; tagged layout).
    Owner,
}

impl KeyKind {
    /// Every kind, records first.
    pub const ALL: [KeyKind; 5] = [
        KeyKind::Record,
        KeyKind::Index(Index::All),
        KeyKind::Index(Index::Active),
        KeyKind::Index(Index::Revoked),
        KeyKind::Owner,
    ];
}

/// All key derivation. Plans name keys only through this value, so the
/// transitions are the same in every [`Layout`].
///
/// Reference layout: `session_prefix + b64url(id)` holds the record,
/// `user_sessions_prefix + b64url(user)` and
/// `user_active_sessions_prefix + b64url(user)` the two sorted-set indexes
/// (base64url without padding).
///
/// Tagged layout: `session_prefix + {b64url(user)} + b64url(id)`,
/// `user_sessions_prefix + {b64url(user)}`,
/// `user_active_sessions_prefix + {b64url(user)}` (one slot per user), and
/// the owner key `owner_prefix + {b64url(id)}` holding the user id.
///
/// Both layouts add the revoked index (`revoked_prefix`, members scored by
/// revocation time), which retention uses to find expired sessions without
/// reading records; the Go adapter never reads it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeySpace {
    layout: Layout,
    // Shared: every operation holds a key space, so cloning one must not
    // allocate.
    session_prefix: Arc<str>,
    user_sessions_prefix: Arc<str>,
    user_active_sessions_prefix: Arc<str>,
    revoked_prefix: Arc<str>,
    owner_prefix: Arc<str>,
}

impl KeySpace {
    /// A reference-layout key space from the three reference prefixes:
    /// non-empty, distinct, none a prefix of another (so no key of one kind
    /// can be read as another kind). The revoked indexes and owner keys get
    /// sibling prefixes (`…user_sessions_revoked:`, `…session_owner:`); name
    /// them yourself with [`KeySpace::with_prefixes`].
    pub fn new(
        session_prefix: impl Into<String>,
        user_sessions_prefix: impl Into<String>,
        user_active_sessions_prefix: impl Into<String>,
    ) -> Result<Self, ValidationError> {
        let session_prefix = session_prefix.into();
        let user_sessions_prefix = user_sessions_prefix.into();
        Self::with_prefixes(
            Layout::Reference,
            session_prefix.clone(),
            user_sessions_prefix.clone(),
            user_active_sessions_prefix.into(),
            derived_prefix(&user_sessions_prefix, "revoked"),
            derived_prefix(&session_prefix, "owner"),
        )
    }

    /// A key space from every prefix, in either layout. Prefixes must be
    /// non-empty, distinct and none a prefix of another; in the tagged
    /// layout none may contain `{` or `}` (the tag must be the user's).
    pub fn with_prefixes(
        layout: Layout,
        session_prefix: String,
        user_sessions_prefix: String,
        user_active_sessions_prefix: String,
        revoked_prefix: String,
        owner_prefix: String,
    ) -> Result<Self, ValidationError> {
        let keys = Self {
            layout,
            session_prefix: session_prefix.into(),
            user_sessions_prefix: user_sessions_prefix.into(),
            user_active_sessions_prefix: user_active_sessions_prefix.into(),
            revoked_prefix: revoked_prefix.into(),
            owner_prefix: owner_prefix.into(),
        };
        let all: Vec<&str> = keys.prefixes().map(|(_, prefix)| prefix).collect();
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
        if layout == Layout::Tagged && all.iter().any(|p| p.contains(['{', '}'])) {
            return Err(ValidationError::InvalidKeyPrefix {
                reason: "prefixes of the tagged layout must not contain `{` or `}`",
            });
        }
        Ok(keys)
    }

    /// The layout the CLI's `--prefix BASE` selects: `{BASE}session:`,
    /// `{BASE}user_sessions:`, `{BASE}user_active_sessions:`, plus
    /// `{BASE}user_revoked_sessions:` and `{BASE}session_owner:`.
    pub fn with_base(base: &str) -> Result<Self, ValidationError> {
        Self::with_base_and_layout(base, Layout::Reference)
    }

    /// [`KeySpace::with_base`] in `layout`.
    pub fn with_base_and_layout(base: &str, layout: Layout) -> Result<Self, ValidationError> {
        Self::with_prefixes(
            layout,
            format!("{base}session:"),
            format!("{base}user_sessions:"),
            format!("{base}user_active_sessions:"),
            format!("{base}user_revoked_sessions:"),
            format!("{base}session_owner:"),
        )
    }

    /// The same prefixes in another layout.
    pub fn in_layout(&self, layout: Layout) -> Result<Self, ValidationError> {
        Self::with_prefixes(
            layout,
            self.session_prefix.to_string(),
            self.user_sessions_prefix.to_string(),
            self.user_active_sessions_prefix.to_string(),
            self.revoked_prefix.to_string(),
            self.owner_prefix.to_string(),
        )
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The prefix under which keys of `kind` live. The owner prefix is
    /// named in either layout, but only the tagged layout writes under it
    /// (see [`KeySpace::prefixes`]).
    pub fn prefix(&self, kind: KeyKind) -> &str {
        match kind {
            KeyKind::Record => &self.session_prefix,
            KeyKind::Index(Index::All) => &self.user_sessions_prefix,
            KeyKind::Index(Index::Active) => &self.user_active_sessions_prefix,
            KeyKind::Index(Index::Revoked) => &self.revoked_prefix,
            KeyKind::Owner => &self.owner_prefix,
        }
    }

    /// The three prefixes the Go adapter knows: records, all-sessions
    /// indexes, active indexes.
    pub fn reference_prefixes(&self) -> [&str; 3] {
        [
            KeyKind::Record,
            KeyKind::Index(Index::All),
            KeyKind::Index(Index::Active),
        ]
        .map(|kind| self.prefix(kind))
    }

    /// Every prefix this key space writes under, with what it holds (the
    /// owner prefix only in the tagged layout).
    pub fn prefixes(&self) -> impl Iterator<Item = (KeyKind, &str)> + '_ {
        KeyKind::ALL
            .into_iter()
            .filter(|kind| *kind != KeyKind::Owner || self.layout == Layout::Tagged)
            .map(|kind| (kind, self.prefix(kind)))
    }

    /// Key of the record of `id`, a session of `user`.
    pub fn record_key(&self, user: &UserId, id: &DeviceSessionId) -> String {
        match self.layout {
            Layout::Reference => join(&self.session_prefix, id.as_str()),
            Layout::Tagged => {
                let mut key = tagged(&self.session_prefix, user.as_str());
                encode_into(id.as_str(), &mut key);
                key
            }
        }
    }

    /// Key of the record of `id` when it depends on the id alone (the
    /// reference layout); `None` in the tagged layout, where the owner key
    /// says whose it is.
    pub fn record_key_of_id(&self, id: &DeviceSessionId) -> Option<String> {
        (self.layout == Layout::Reference).then(|| join(&self.session_prefix, id.as_str()))
    }

    /// The reference layout's record key of `id`, whatever this key
    /// space's layout: what the Go adapter reads.
    pub fn reference_record_key(&self, id: &DeviceSessionId) -> String {
        join(&self.session_prefix, id.as_str())
    }

    /// Key of the owner of `id` (tagged layout only).
    pub fn owner_key(&self, id: &DeviceSessionId) -> Option<String> {
        (self.layout == Layout::Tagged).then(|| tagged(&self.owner_prefix, id.as_str()))
    }

    /// Key of the sorted set of all sessions of `user`.
    pub fn user_sessions_key(&self, user: &UserId) -> String {
        self.index_key(Index::All, user)
    }

    /// Key of the sorted set of active sessions of `user`.
    pub fn user_active_sessions_key(&self, user: &UserId) -> String {
        self.index_key(Index::Active, user)
    }

    /// Key of the sorted set of revoked sessions of `user`, scored by
    /// revocation time.
    pub fn user_revoked_sessions_key(&self, user: &UserId) -> String {
        self.index_key(Index::Revoked, user)
    }

    /// Key of `index` of `user`.
    pub fn index_key(&self, index: Index, user: &UserId) -> String {
        let prefix = self.prefix(KeyKind::Index(index));
        match self.layout {
            Layout::Reference => join(prefix, user.as_str()),
            Layout::Tagged => tagged(prefix, user.as_str()),
        }
    }

    /// The record a record key names, if `key` is one: the user (tagged
    /// layout only) and the id.
    pub fn parse_record_key(&self, key: &str) -> Option<(Option<UserId>, DeviceSessionId)> {
        let rest = key.strip_prefix(&*self.session_prefix)?;
        match self.layout {
            Layout::Reference => {
                let id = decode_component(rest)?;
                Some((None, DeviceSessionId::parse(id).ok()?))
            }
            Layout::Tagged => {
                let (user, id) = rest.strip_prefix('{')?.split_once('}')?;
                let user = UserId::parse(decode_component(user)?).ok()?;
                let id = DeviceSessionId::parse(decode_component(id)?).ok()?;
                (self.record_key(&user, &id) == key).then_some((Some(user), id))
            }
        }
    }

    /// The device session id a reference-layout record key names.
    pub fn parse_reference_record_key(&self, key: &str) -> Option<DeviceSessionId> {
        split(&self.session_prefix, key).and_then(|t| DeviceSessionId::parse(t).ok())
    }

    /// The device session id an owner key names, if `key` is one (tagged
    /// layout only).
    pub fn parse_owner_key(&self, key: &str) -> Option<DeviceSessionId> {
        if self.layout != Layout::Tagged {
            return None;
        }
        let inner = key.strip_prefix(&*self.owner_prefix)?.strip_prefix('{')?;
        let text = decode_component(inner.strip_suffix('}')?)?;
        (tagged(&self.owner_prefix, &text) == key).then_some(())?;
        DeviceSessionId::parse(text).ok()
    }

    /// The user `key` names if it is a key of `index`.
    pub fn parse_index_key(&self, index: Index, key: &str) -> Option<UserId> {
        self.parse_user_key(self.prefix(KeyKind::Index(index)), key)
    }

    /// Which index of which user `key` is, if it is an index key.
    pub fn parse_any_index_key(&self, key: &str) -> Option<(Index, UserId)> {
        Index::ALL
            .into_iter()
            .find_map(|index| Some((index, self.parse_index_key(index, key)?)))
    }

    fn parse_user_key(&self, prefix: &str, key: &str) -> Option<UserId> {
        let user = match self.layout {
            Layout::Reference => split(prefix, key)?,
            Layout::Tagged => {
                let inner = key.strip_prefix(prefix)?.strip_prefix('{')?;
                let inner = inner.strip_suffix('}')?;
                let text = decode_component(inner)?;
                (tagged(prefix, &text) == key).then_some(())?;
                text
            }
        };
        UserId::parse(user).ok()
    }
}

fn derived_prefix(base_prefix: &str, what: &str) -> String {
    // `{prefix}` minus its trailing separator, then `_{what}:`: a sibling
    // prefix that neither contains nor is contained in the others.
    let stem = base_prefix.strip_suffix(':').unwrap_or(base_prefix);
    format!("{stem}_{what}:")
}

fn tagged(prefix: &str, component: &str) -> String {
    let mut key = String::with_capacity(prefix.len() + 2 + component.len().div_ceil(3) * 4);
    key.push_str(prefix);
    key.push('{');
    encode_into(component, &mut key);
    key.push('}');
    key
}

fn encode_into(component: &str, key: &mut String) {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(component.as_bytes(), key);
}

fn decode_component(encoded: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .ok()?;
    String::from_utf8(raw).ok()
}

impl Default for KeySpace {
    fn default() -> Self {
        // The default base yields valid prefixes by construction.
        Self {
            layout: Layout::Reference,
            session_prefix: format!("{DEFAULT_KEY_BASE}session:").into(),
            user_sessions_prefix: format!("{DEFAULT_KEY_BASE}user_sessions:").into(),
            user_active_sessions_prefix: format!("{DEFAULT_KEY_BASE}user_active_sessions:").into(),
            revoked_prefix: format!("{DEFAULT_KEY_BASE}user_revoked_sessions:").into(),
            owner_prefix: format!("{DEFAULT_KEY_BASE}session_owner:").into(),
        }
    }
}

impl fmt::Debug for KeySpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySpace")
            .field("layout", &self.layout)
            .field("session_prefix", &self.session_prefix)
            .field("user_sessions_prefix", &self.user_sessions_prefix)
            .field(
                "user_active_sessions_prefix",
                &self.user_active_sessions_prefix,
            )
            .field("revoked_prefix", &self.revoked_prefix)
            .field("owner_prefix", &self.owner_prefix)
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

/// One key of the tagged layout from a single prefix:
/// `prefix + "{" + base64url_nopad(tag) + "}"`, followed by
/// `base64url_nopad(component)` when there is one. `tag` is a validated
/// user id for a user's record (`component`: its device session id) and
/// indexes, or a device session id for its owner key (no component). For
/// callers that hold one prefix rather than a [`KeySpace`] (the WASM key
/// helpers); the same rules as [`KeySpace::with_prefixes`] in the tagged
/// layout: not empty or blank, no `{` or `}`.
pub fn tagged_key(
    prefix: &str,
    tag: &str,
    component: Option<&str>,
) -> Result<String, ValidationError> {
    if prefix.trim().is_empty() {
        return Err(ValidationError::InvalidKeyPrefix {
            reason: "prefixes must not be empty",
        });
    }
    if prefix.contains(['{', '}']) {
        return Err(ValidationError::InvalidKeyPrefix {
            reason: "prefixes of the tagged layout must not contain `{` or `}`",
        });
    }
    let mut key = tagged(prefix, tag);
    if let Some(component) = component {
        encode_into(component, &mut key);
    }
    Ok(key)
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

    /// A score as read from an index.
    pub(crate) fn from_f64(score: f64) -> Self {
        Self(score)
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
        assert_eq!(
            keys.reference_record_key(&id),
            "authsession:session:ZGV2LTE"
        );
        assert_eq!(
            keys.user_sessions_key(&user),
            "authsession:user_sessions:dXNlci0x"
        );
        assert_eq!(
            keys.user_active_sessions_key(&user),
            "authsession:user_active_sessions:dXNlci0x"
        );
        assert_eq!(
            keys.parse_reference_record_key("authsession:session:ZGV2LTE"),
            Some(id)
        );
        assert_eq!(
            keys.parse_index_key(Index::All, "authsession:user_sessions:dXNlci0x"),
            Some(user.clone())
        );
        assert_eq!(
            keys.parse_index_key(Index::Active, "authsession:user_active_sessions:dXNlci0x"),
            Some(user)
        );
        assert_eq!(
            keys.parse_reference_record_key("authsession:session:ZGV2LTF"),
            None
        );
        assert_eq!(
            keys.parse_reference_record_key("authsession:user_sessions:dXNlci0x"),
            None
        );
    }

    #[test]
    fn prefixes_are_named_by_what_they_hold_and_parse_back() {
        let user = UserId::parse("user-1").unwrap();
        for layout in [Layout::Reference, Layout::Tagged] {
            let keys = KeySpace::with_base_and_layout(DEFAULT_KEY_BASE, layout).unwrap();
            let kinds: Vec<KeyKind> = keys.prefixes().map(|(kind, _)| kind).collect();
            let owner = layout == Layout::Tagged;
            assert_eq!(kinds.contains(&KeyKind::Owner), owner, "{layout:?}");
            assert_eq!(kinds.len(), 4 + usize::from(owner));
            for index in Index::ALL {
                let key = keys.index_key(index, &user);
                assert!(key.starts_with(keys.prefix(KeyKind::Index(index))));
                assert_eq!(keys.parse_any_index_key(&key), Some((index, user.clone())));
                for other in Index::ALL.into_iter().filter(|o| *o != index) {
                    assert_eq!(keys.parse_index_key(other, &key), None);
                }
            }
            let record = keys.record_key(&user, &DeviceSessionId::parse("d").unwrap());
            assert_eq!(keys.parse_any_index_key(&record), None);
        }
    }

    #[test]
    fn prefixed_key_matches_the_key_space() {
        let keys = KeySpace::default();
        let id = DeviceSessionId::parse("dev-1").unwrap();
        let user = UserId::parse("user-1").unwrap();
        let [session, all, active] = keys.reference_prefixes();
        assert_eq!(
            prefixed_key(session, id.as_str()).unwrap(),
            keys.reference_record_key(&id)
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
    fn tagged_key_matches_the_tagged_key_space() {
        let keys = KeySpace::with_base_and_layout(DEFAULT_KEY_BASE, Layout::Tagged).unwrap();
        let id = DeviceSessionId::parse("dev-1").unwrap();
        let user = UserId::parse("user-1").unwrap();
        let [session, all, active, revoked] = [
            KeyKind::Record,
            KeyKind::Index(Index::All),
            KeyKind::Index(Index::Active),
            KeyKind::Index(Index::Revoked),
        ]
        .map(|kind| keys.prefix(kind));
        let tagged = |prefix, tag, component| tagged_key(prefix, tag, component).unwrap();
        assert_eq!(
            tagged(session, user.as_str(), Some(id.as_str())),
            keys.record_key(&user, &id)
        );
        assert_eq!(
            keys.record_key(&user, &id),
            "authsession:session:{dXNlci0x}ZGV2LTE"
        );
        assert_eq!(
            tagged(all, user.as_str(), None),
            keys.user_sessions_key(&user)
        );
        assert_eq!(
            tagged(active, user.as_str(), None),
            keys.user_active_sessions_key(&user)
        );
        assert_eq!(
            tagged(revoked, user.as_str(), None),
            keys.user_revoked_sessions_key(&user)
        );
        assert_eq!(
            Some(tagged("authsession:session_owner:", id.as_str(), None)),
            keys.owner_key(&id)
        );
        assert_eq!(tagged("p:", "\u{e9}", Some("\u{e9}")), "p:{w6k}w6k");
        for bad in ["", " ", "a{b:", "a}:"] {
            assert_eq!(
                tagged_key(bad, "user-1", None).unwrap_err().kind(),
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
