//! The input format: what the fuzzer's bytes are read as (the `arbitrary`
//! types of a setup and its steps) and the short lists they index, so that
//! operations collide.

use std::sync::OnceLock;

use arbitrary::Arbitrary;

use authsession_core::{DeviceSessionId, RevokeReasonCode, UserId};

/// Steps per input.
pub const MAX_STEPS: usize = 48;

/// A few ids and users, so operations collide. They include characters the
/// codec escapes and multi-byte text, which also reach the keys.
pub const IDS: &[&str] = &["dev-1", "dev-2", "d<3>&", "dév-4", "a\u{2028}5", "dev-6"];
/// See [`IDS`].
pub const USERS: &[&str] = &["user-1", "user<&>2", "ユーザー3"];
/// Revocation reason codes.
pub const REASONS: &[&str] = &["user_logout", "admin_revoke", "compromised"];

/// Where the clock starts (Unix nanoseconds).
pub(super) const ERAS_UNIX_NANOS: &[i128] = &[
    1_714_979_289_000_000_000,   // 2024-05-06T07:08:09Z
    -2_000_000_000,              // 1969-12-31T23:59:58Z: negative scores
    253_402_300_790_000_000_000, // 9999-12-31T23:59:50Z: f64 scores 32 µs apart
    // 0001-01-01T00:00:00.000000001Z: one nanosecond after Go's zero time
    // (an instant -1 ns from "now" is the zero time, which is not valid for
    // a session or a revocation; a clock at the zero time itself is
    // covered by `tests/open_bugs.rs`), f64 scores 8 µs apart.
    -62_135_596_799_999_999_999,
];

/// How far "now" moves before a step (never backwards).
pub(super) const ADVANCES_NANOS: &[i128] = &[
    0,
    0,
    0,
    1,
    500,
    1_000,
    1_001,
    1_000_000,
    1_000_000_000,
    2_000_000_000,
];

/// Instants of a step relative to its "now".
pub(super) const OFFSETS_NANOS: &[i128] = &[
    0,
    0,
    1,
    -1,
    999,
    1_000,
    1_001,
    -999,
    -1_000,
    -1_000_000_000,
    -3_000_000_000,
    2_000_000_000,
];

/// Revoked-session retentions.
pub(super) const RETENTIONS_NANOS: &[u64] = &[0, 1, 1_000, 1_000_000_000, 3_000_000_000];

/// The store's configuration for one input.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct Setup {
    /// Tagged layout instead of the reference one.
    pub tagged: bool,
    /// Index into [`ERAS_UNIX_NANOS`].
    pub era: u8,
    /// Batch size `1 + batch % 5`.
    pub batch: u8,
    /// Index into [`RETENTIONS_NANOS`].
    pub retention: Option<u8>,
    /// Limit `1 + max % 3`; `true`: revoke-oldest, else reject.
    pub limit: Option<(u8, bool)>,
}

/// One step: move the clock, then run the op.
#[derive(Debug, Clone, Arbitrary)]
pub struct Step {
    /// Index into [`ADVANCES_NANOS`].
    pub advance: u8,
    /// What to run.
    pub op: Op,
}

/// An operation with a serial reference model.
#[derive(Debug, Clone, Arbitrary)]
pub enum Action {
    /// Create a session created at `now + created`; `revoked` creates it
    /// already revoked (at the later of that instant and its creation).
    Create {
        /// Index into [`IDS`].
        id: u8,
        /// Index into [`USERS`].
        user: u8,
        /// The public key's bytes.
        key: u8,
        /// Index into [`OFFSETS_NANOS`].
        created: u8,
        /// Offset index and reason index.
        revoked: Option<(u8, u8)>,
    },
    /// Revoke one session at `now + at`.
    Revoke {
        /// Index into [`IDS`].
        id: u8,
        /// Index into [`OFFSETS_NANOS`].
        at: u8,
        /// Index into [`REASONS`].
        reason: u8,
    },
    /// Revoke all of a user's active sessions, revocation time `now + at`.
    RevokeAll {
        /// Index into [`USERS`].
        user: u8,
        /// Index into [`OFFSETS_NANOS`].
        at: u8,
        /// Index into [`REASONS`].
        reason: u8,
        /// Keep the revoked sessions (else only count them).
        collect: bool,
    },
    /// List a user's sessions.
    List {
        /// Index into [`USERS`].
        user: u8,
    },
    /// Get a session by id, or by user and id.
    Get {
        /// Index into [`IDS`].
        id: u8,
        /// Index into [`USERS`] (`get_for_user`).
        user: Option<u8>,
    },
    /// Count a user's active sessions.
    Count {
        /// Index into [`USERS`].
        user: u8,
    },
}

/// A page walk's parameters.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct Walk {
    /// Index into [`USERS`].
    pub user: u8,
    /// Active sessions only.
    pub active: bool,
    /// Page limits, cycled: `1 + l % 4`, or 1000 when `l % 5 == 4`.
    pub limits: [u8; 3],
}

/// One step's operation.
#[derive(Debug, Clone, Arbitrary)]
pub enum Op {
    /// Run an action alone.
    Do(Action),
    /// Walk a user's pages to the end.
    Pages(Walk),
    /// `other` runs to completion at the `point % 4`-th `between` call of
    /// `main` (after a read or an apply; after `main` if it has fewer).
    Concurrent {
        /// The interrupted action.
        main: Action,
        /// The interrupting action.
        other: Action,
        /// Which `between` call.
        point: u8,
    },
    /// `other` runs after page `(after & 0x7f) % 3`, or (`after & 0x80`) inside it,
    /// at its `((after & 0x7f) >> 3) % 3`-th `between` point.
    ConcurrentPages {
        /// The walk.
        walk: Walk,
        /// The interrupting action.
        other: Action,
        /// Where in the walk.
        after: u8,
    },
    /// `tamper` damages the state at the `point % 4`-th `between` call of
    /// `main`; the state is repaired afterwards.
    Tampered {
        /// The interrupted action.
        main: Action,
        /// The damage.
        tamper: Tamper,
        /// Which `between` call.
        point: u8,
    },
}

/// Raw damage to the key space (what a bug, a partial write or a human
/// with `redis-cli` could leave behind).
#[derive(Debug, Clone, Arbitrary)]
pub enum Tamper {
    /// Remove a member from one of a user's indexes (`index % 3`: all,
    /// active, revoked).
    DropIndexEntry {
        /// Index into [`USERS`].
        user: u8,
        /// Index into [`IDS`].
        id: u8,
        /// Which index.
        index: u8,
    },
    /// Add (or re-score) a member in one of a user's indexes.
    AddIndexEntry {
        /// Index into [`USERS`].
        user: u8,
        /// Index into [`IDS`].
        id: u8,
        /// Which index.
        index: u8,
        /// Index into [`OFFSETS_NANOS`] for the score.
        at: u8,
    },
    /// Add a member that is not valid UTF-8, or not a valid id.
    PlantBadMember {
        /// Index into [`USERS`].
        user: u8,
        /// Which index.
        index: u8,
        /// Index into [`BAD_MEMBERS`].
        member: u8,
    },
    /// Delete a record, leaving its index entries behind.
    DeleteRecord {
        /// Index into [`IDS`].
        id: u8,
    },
    /// Overwrite (or plant) a record with bytes that do not decode as the
    /// record of its key, or with a valid record of another user.
    CorruptRecord {
        /// Index into [`IDS`].
        id: u8,
        /// Index into [`CORRUPT_PAYLOADS`]; one past the end: another
        /// user's record for this id.
        payload: u8,
        /// Index into [`USERS`]: where to plant when the id has no owner
        /// (tagged), and the other user.
        user: u8,
    },
    /// Overwrite an owner key (tagged layout; a no-op in the reference
    /// one): not UTF-8, not a user id, another user, or a sorted set.
    CorruptOwner {
        /// Index into [`IDS`].
        id: u8,
        /// What to write.
        value: u8,
    },
    /// A sorted set where a record belongs.
    SortedSetAtRecord {
        /// Index into [`IDS`].
        id: u8,
        /// Index into [`USERS`] (tagged: when the id has no owner).
        user: u8,
    },
    /// A string where an index belongs.
    StringAtIndex {
        /// Index into [`USERS`].
        user: u8,
        /// Which index.
        index: u8,
    },
}

/// Members no store writes: not UTF-8, or UTF-8 but not a valid id.
pub const BAD_MEMBERS: &[&[u8]] = &[b"\xff", b"dev-\xc3\x28", b"\x80", b"", b" dev-1", b"a\x01"];

/// Record bytes that must be rejected under any id in [`IDS`].
pub const CORRUPT_PAYLOADS: &[&[u8]] = &[
    b"",
    b"{",
    b"null",
    b"{}",
    b"\xff\xfe",
    br#"{"device_session_id":"someone-else","user_id":"user-1","client_public_key_base64":"6CNOOq9vU5hNuRjuSnPSuoYdvt6iZpSYfEDOihlBz8I=","status":"active","created_at":"2024-05-06T07:08:09Z"}"#,
    br#"{"device_session_id":"dev-1","user_id":"user-1","client_public_key_base64":"6CNOOq9vU5hNuRjuSnPSuoYdvt6iZpSYfEDOihlBz8I=","status":"paused","created_at":"2024-05-06T07:08:09Z"}"#,
];

pub(super) fn pick<T: Copy>(items: &[T], index: u8) -> T {
    let at = usize::from(index) % items.len();
    *items.get(at).expect("index is reduced modulo the length")
}

/// The ids and users, parsed once.
pub(super) fn alphabet() -> &'static (Vec<DeviceSessionId>, Vec<UserId>) {
    static PARSED: OnceLock<(Vec<DeviceSessionId>, Vec<UserId>)> = OnceLock::new();
    PARSED.get_or_init(|| {
        (
            IDS.iter()
                .map(|i| DeviceSessionId::parse(*i).expect("listed ids are valid"))
                .collect(),
            USERS
                .iter()
                .map(|u| UserId::parse(*u).expect("listed users are valid"))
                .collect(),
        )
    })
}

pub(super) fn id(index: u8) -> DeviceSessionId {
    let ids = &alphabet().0;
    ids.get(usize::from(index) % ids.len())
        .expect("reduced")
        .clone()
}

pub(super) fn user(index: u8) -> UserId {
    let users = &alphabet().1;
    users
        .get(usize::from(index) % users.len())
        .expect("reduced")
        .clone()
}

/// The index of the user after `index`'s (never the same user).
pub(super) fn next_user(index: u8) -> u8 {
    let n = u8::try_from(USERS.len()).expect("few users");
    (index % n + 1) % n
}

pub(super) fn all_ids() -> impl Iterator<Item = DeviceSessionId> {
    alphabet().0.iter().cloned()
}

pub(super) fn all_users() -> impl Iterator<Item = UserId> {
    alphabet().1.iter().cloned()
}

pub(super) fn reason(index: u8) -> RevokeReasonCode {
    RevokeReasonCode::parse(pick(REASONS, index)).expect("listed codes are valid")
}
