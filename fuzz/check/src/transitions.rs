//! `transitions`: arbitrary operation sequences run by the core's own
//! reference loop (`op::run_with` over `model::MemoryKv`), checked against a
//! reference model after every step.
//!
//! # Input format
//!
//! The raw input is read with `arbitrary` (`Unstructured`), in this order:
//!
//! 1. a [`Setup`]: the key-space layout (reference or tagged), the era the
//!    clock starts in (2024; 1969, where scores are negative; the last
//!    seconds of year 9999 and the first of year 1, where an `f64` score
//!    stands for 32 µs and 8 µs — year 1 starts one nanosecond after Go's
//!    zero time, so an instant 1 ns earlier is the zero time, which no
//!    session or revocation may carry), and the store's `Policy`: batch
//!    size 1..=5, an optional revoked-session retention (0 ns, 1 ns, 1 µs,
//!    1 s or 3 s) and an optional active-session limit (1..=3, reject or
//!    revoke-oldest);
//! 2. up to [`MAX_STEPS`] [`Step`]s, each moving "now" forward by a small
//!    amount (never backwards; it stops at the end of year 9999) and then
//!    running one [`Op`].
//!
//! Ids, users and reasons are indexes into short lists ([`IDS`], [`USERS`],
//! [`REASONS`]) so operations collide; instants are "now" plus an offset
//! from [`OFFSETS_NANOS`], so `created_at` values tie, differ by less than
//! the index's microsecond resolution, and precede or follow revocations
//! and the retention horizon by a nanosecond.
//!
//! An [`Op`] is one of:
//! - an [`Action`] (create, revoke, revoke all in its collecting or
//!   counting form, list, get, get for a user, count) built as the core's
//!   operation and run with `op::run_with`;
//! - a page walk: `ListPage` with a random limit per page, following
//!   `next_cursor` to the end, all sessions or active ones, then the last
//!   cursor replayed for another user and for the other status filter;
//! - a concurrent pair: another action runs to completion at the n-th
//!   `between` point of the main one (after one of its reads or applies);
//! - a page walk with an action run between two of its pages;
//! - a tampered action: the main action with a [`Tamper`] step at its n-th
//!   `between` point (drop or add an index entry, plant a member that is
//!   not UTF-8 or not an id, delete a record, overwrite it with bytes that
//!   do not decode or with another user's record, damage an owner key, put
//!   a value of the wrong type at a record or index key).
//!
//! # What is asserted
//!
//! On an untampered state every outcome equals the reference model's, and
//! after every step (and, for the limit, after every read and apply):
//! every key is one the key space derives; records decode to the model's
//! sessions; each index (all, active, revoked) holds exactly the members
//! its records call for, with their scores (so every index entry has its
//! record and vice versa — the Go adapter's view); the owner key of every
//! record names its user (tagged layout); the active count is at most the
//! limit; only sessions past their retention ever disappear, a get or
//! revoke that meets one removes it, and a list or a walk of all sessions
//! that meets `k` removes at least `min(k, batch size)`; pages followed to
//! the end concatenate exactly to `list`; a cursor is refused for another
//! user or status filter; `count` equals the active index size.
//! A concurrent pair equals one of its two serial orders (from the state
//! before, with or without the expired sessions that are gone; a create
//! that lost its eviction may take the second oldest on its retry), except
//! a revoke all whose range holds a batch or more (atomic per batch only:
//! it must revoke everything it covers and nothing else) and a list torn
//! by a change to two sessions at once (the sessions the index held
//! before, as their records are after). A page walk with a change between
//! pages never repeats a session, never skips one that was there unchanged
//! throughout, and returns only sessions visible before or after the
//! change.
//!
//! After a tamper step: every operation answers or reports corruption
//! (never panics, never runs out of attempts); in the reference layout the
//! audit reports a problem exactly when the records or the two reference
//! indexes are damaged, and repairing as an operator would (its repair
//! plan, deleting the records it leaves for a human, its repair plan again)
//! leaves an audit with no problem (a value of the wrong type at a record
//! or index key is outside what that audit handles, so it is skipped
//! there); then every other index is rebuilt from the records and the
//! state must be consistent again. At the end of the input, the reference
//! layout's state is audited, and every user is listed, walked and counted
//! and every id read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};

use crate::is_snake_case;
use authsession_core::audit::{CheckMode, CheckReport, Problem};
use authsession_core::model::MemoryKv;
use authsession_core::op::{
    self, Between, Count, Create, Get, List, ListPage, OnLimit, Page, PageCursor, PageLimit,
    PageRequest, Policy, Revoke, RevokeAll, SessionLimit, StatusFilter,
};
use authsession_core::plan::KeyType;
use authsession_core::{
    codec, newest_first, sort_newest_first, ClientPublicKey, DeviceSessionId, IndexScore, KeySpace,
    Layout, Revocation, RevokeActorId, RevokeActorType, RevokeReasonCode, RevokeSessionInput,
    RevokeSessionOutcome, RevokeUserSessionsInput, Session, Timestamp, TransitionError, UserId,
    ValidationError, DEFAULT_KEY_BASE,
};

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
const ERAS_UNIX_NANOS: &[i128] = &[
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
const ADVANCES_NANOS: &[i128] = &[
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
const OFFSETS_NANOS: &[i128] = &[
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
const RETENTIONS_NANOS: &[u64] = &[0, 1, 1_000, 1_000_000_000, 3_000_000_000];

/// The attempts the loop allows per batch: with at most one concurrent
/// change, the second attempt must succeed.
const MAX_ATTEMPTS: u32 = 2;

/// Pages a walk may take before it is declared endless (at most
/// `IDS.len()` sessions, each page makes progress).
const MAX_PAGES: usize = 4 * 6 + 4;

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

fn pick<T: Copy>(items: &[T], index: u8) -> T {
    let at = usize::from(index) % items.len();
    *items.get(at).expect("index is reduced modulo the length")
}

/// The ids and users, parsed once.
fn alphabet() -> &'static (Vec<DeviceSessionId>, Vec<UserId>) {
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

fn id(index: u8) -> DeviceSessionId {
    let ids = &alphabet().0;
    ids.get(usize::from(index) % ids.len())
        .expect("reduced")
        .clone()
}

fn user(index: u8) -> UserId {
    let users = &alphabet().1;
    users
        .get(usize::from(index) % users.len())
        .expect("reduced")
        .clone()
}

/// The index of the user after `index`'s (never the same user).
fn next_user(index: u8) -> u8 {
    let n = u8::try_from(USERS.len()).expect("few users");
    (index % n + 1) % n
}

fn all_ids() -> impl Iterator<Item = DeviceSessionId> {
    alphabet().0.iter().cloned()
}

fn all_users() -> impl Iterator<Item = UserId> {
    alphabet().1.iter().cloned()
}

fn reason(index: u8) -> RevokeReasonCode {
    RevokeReasonCode::parse(pick(REASONS, index)).expect("listed codes are valid")
}

fn revocation(at: Timestamp, reason_index: u8) -> Result<Revocation, ValidationError> {
    let actor_id = if reason_index.is_multiple_of(2) {
        ""
    } else {
        "admin<1>"
    };
    Revocation::new(
        at,
        reason(reason_index),
        RevokeActorType::parse("user").expect("literal code is valid"),
        RevokeActorId::parse(actor_id).expect("literal actor id is valid"),
    )
}

fn nanos_of(duration: Duration) -> i128 {
    i128::try_from(duration.as_nanos()).unwrap_or(i128::MAX)
}

/// Whether `session` is past its retention at `now`: revoked at `at`, and
/// `at + retention < now` (written here from the rule, not taken from the
/// core).
fn expired(policy: &Policy, session: &Session, now: Timestamp) -> bool {
    match (policy.revoked_retention, session.revocation()) {
        (Some(retention), Some(r)) => {
            r.at().unix_nanos().saturating_add(nanos_of(retention)) < now.unix_nanos()
        }
        _ => false,
    }
}

fn score(at: Timestamp) -> f64 {
    IndexScore::of(at).as_f64()
}

/// Whether `stored` is `predicted` except for sessions past their
/// retention at `ctx.now` that are gone — each with its owner key, when
/// that named the session's user (owner keys go with their sessions).
fn same_modulo_expired(ctx: &Ctx, stored: &Model, predicted: &Model) -> bool {
    let owners_ok = predicted.owners.iter().all(|(id, owner)| {
        let removed_with_session = !stored.sessions.contains_key(id)
            && predicted
                .sessions
                .get(id)
                .is_some_and(|s| s.user_id().as_str() == owner && expired(&ctx.policy, s, ctx.now));
        match stored.owners.get(id) {
            Some(kept) => kept == owner && !removed_with_session,
            None => removed_with_session,
        }
    }) && stored
        .owners
        .keys()
        .all(|id| predicted.owners.contains_key(id));
    owners_ok
        && stored
            .sessions
            .iter()
            .all(|(id, s)| predicted.sessions.get(id) == Some(s))
        && predicted
            .sessions
            .iter()
            .all(|(id, s)| stored.sessions.contains_key(id) || expired(&ctx.policy, s, ctx.now))
}

/// The clock and the configuration an operation runs with.
#[derive(Debug, Clone)]
struct Ctx {
    keys: KeySpace,
    policy: Policy,
    now: Timestamp,
    /// Users above the limit after a repair (damage hid active sessions
    /// from the limit), with the most active sessions they may hold: never
    /// more than then, and less as sessions go.
    over_limit: BTreeMap<String, usize>,
}

impl Ctx {
    fn at(&self, offset: u8) -> Option<Timestamp> {
        self.now
            .checked_add_nanos(pick(OFFSETS_NANOS, offset))
            .ok()
            .filter(|t| !t.is_go_zero())
    }

    fn tagged(&self) -> bool {
        self.keys.layout() == Layout::Tagged
    }

    fn index_key(&self, user: &UserId, index: u8) -> String {
        match index % 3 {
            0 => self.keys.user_sessions_key(user),
            1 => self.keys.user_active_sessions_key(user),
            _ => self.keys.user_revoked_sessions_key(user),
        }
    }
}

/// An [`Action`] with its domain values built.
#[derive(Debug, Clone)]
enum Prepared {
    Create(Session),
    Revoke(RevokeSessionInput),
    RevokeAll(RevokeUserSessionsInput, bool),
    List(UserId),
    Get(DeviceSessionId, Option<UserId>),
    Count(UserId),
    /// The action names an instant that is not valid (Go's zero time, or
    /// outside years 0000..=9999).
    Nothing,
}

fn prepare(ctx: &Ctx, action: &Action) -> Prepared {
    match *action {
        Action::Create {
            id: i,
            user: w,
            key,
            created,
            revoked,
        } => {
            let Some(created) = ctx.at(created) else {
                return Prepared::Nothing;
            };
            let Ok(session) =
                Session::active(id(i), user(w), ClientPublicKey::from([key; 32]), created)
            else {
                return Prepared::Nothing;
            };
            match revoked {
                None => Prepared::Create(session),
                Some((at, reason)) => {
                    let Some(at) = ctx.at(at) else {
                        return Prepared::Nothing;
                    };
                    let at = at.max(session.created_at());
                    match revocation(at, reason).and_then(|r| session.revoked(r)) {
                        Ok(session) => Prepared::Create(session),
                        Err(_) => Prepared::Nothing,
                    }
                }
            }
        }
        Action::Revoke { id: i, at, reason } => match ctx.at(at).map(|at| revocation(at, reason)) {
            Some(Ok(revocation)) => Prepared::Revoke(RevokeSessionInput {
                device_session_id: id(i),
                revocation,
            }),
            _ => Prepared::Nothing,
        },
        Action::RevokeAll {
            user: w,
            at,
            reason,
            collect,
        } => match ctx.at(at).map(|at| revocation(at, reason)) {
            Some(Ok(revocation)) => Prepared::RevokeAll(
                RevokeUserSessionsInput {
                    user_id: user(w),
                    revocation,
                },
                collect,
            ),
            _ => Prepared::Nothing,
        },
        Action::List { user: w } => Prepared::List(user(w)),
        Action::Get { id: i, user: w } => Prepared::Get(id(i), w.map(user)),
        Action::Count { user: w } => Prepared::Count(user(w)),
    }
}

/// What an action reported, comparable between the store and the model.
/// Errors are compared by kind.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Nothing,
    /// The session and the sessions evicted by the limit.
    Created(Result<(Session, Vec<Session>), &'static str>),
    Revoked(Result<RevokeSessionOutcome, &'static str>),
    /// The revoked sessions (empty when not collected) and the count.
    RevokedAll(Result<(Vec<Session>, u64), &'static str>),
    Listed(Result<Vec<Session>, &'static str>),
    Got(Result<Session, &'static str>),
    Counted(Result<u64, &'static str>),
}

/// The reference model: the physically stored sessions by id (including
/// those past their retention that no operation has removed yet), and, in
/// the tagged layout, the owner keys (which outlive their records).
#[derive(Debug, Clone, Default, PartialEq)]
struct Model {
    sessions: BTreeMap<String, Session>,
    owners: BTreeMap<String, String>,
}

impl Model {
    /// Removes the expired session `id`, and its owner key when that names
    /// the session's user: they go together.
    fn remove_expired(&mut self, id: &str) {
        if let Some(session) = self.sessions.remove(id) {
            if self.owners.get(id).map(String::as_str) == Some(session.user_id().as_str()) {
                self.owners.remove(id);
            }
        }
    }

    fn of_user<'m>(&'m self, user: &'m UserId) -> impl Iterator<Item = &'m Session> + 'm {
        self.sessions.values().filter(move |s| s.user_id() == user)
    }

    fn active_count(&self, user: &UserId) -> usize {
        self.of_user(user).filter(|s| s.is_active()).count()
    }

    /// The user's sessions visible at `now`, newest first.
    fn visible(&self, ctx: &Ctx, user: &UserId, active_only: bool) -> Vec<Session> {
        let mut sessions: Vec<Session> = self
            .of_user(user)
            .filter(|s| !expired(&ctx.policy, s, ctx.now) && (!active_only || s.is_active()))
            .cloned()
            .collect();
        sort_newest_first(&mut sessions);
        sessions
    }

    /// The stored session `id` resolves to by id alone (tagged: through
    /// the owner key), if any.
    fn by_id(&self, ctx: &Ctx, id: &DeviceSessionId) -> Option<&Session> {
        let session = self.sessions.get(id.as_str())?;
        if ctx.tagged()
            && self.owners.get(id.as_str()).map(String::as_str) != Some(session.user_id().as_str())
        {
            return None;
        }
        Some(session)
    }
}

fn kind_of(e: &TransitionError) -> &'static str {
    let kind = e.kind();
    assert!(is_snake_case(kind), "error kind {kind:?} of {e}");
    assert!(!e.to_string().is_empty());
    kind
}

/// The oldest active sessions of `user` a `revoke-oldest` create revokes:
/// the first `needed` in active-index order (score, then member bytes),
/// after skipping `skip` of them (see [`predict_evicting`]).
fn oldest_active(model: &Model, user: &UserId, needed: usize, skip: usize) -> Vec<Session> {
    let mut active: Vec<&Session> = model.of_user(user).filter(|s| s.is_active()).collect();
    active.sort_by(|a, b| {
        score(a.created_at())
            .total_cmp(&score(b.created_at()))
            .then_with(|| a.id().as_str().as_bytes().cmp(b.id().as_str().as_bytes()))
    });
    active
        .into_iter()
        .skip(skip)
        .take(needed)
        .cloned()
        .collect()
}

fn limit_revocation(at: Timestamp) -> Revocation {
    Revocation::new(
        at,
        RevokeReasonCode::parse("session_limit").expect("valid code"),
        RevokeActorType::parse("system").expect("valid code"),
        RevokeActorId::empty(),
    )
    .expect("a valid instant")
}

/// What `prepared` must report on `model` at `ctx.now`, and the model
/// afterwards.
fn predict(ctx: &Ctx, prepared: &Prepared, model: &Model) -> (Outcome, Model) {
    predict_evicting(ctx, prepared, model, 0)
}

/// [`predict`], where a `revoke-oldest` create skips the `skip` oldest
/// sessions: a create that lost its eviction to a concurrent one may pick
/// among a few of the oldest on its next attempt, so the creators at the
/// limit do not all race for one session.
fn predict_evicting(
    ctx: &Ctx,
    prepared: &Prepared,
    model: &Model,
    skip: usize,
) -> (Outcome, Model) {
    let mut next = model.clone();
    let outcome = match prepared {
        Prepared::Nothing => Outcome::Nothing,
        Prepared::Create(session) => {
            Outcome::Created(predict_create(ctx, model, &mut next, session, skip))
        }
        Prepared::Revoke(input) => {
            let id = &input.device_session_id;
            Outcome::Revoked(match model.by_id(ctx, id) {
                None => Err("not_found"),
                Some(current) if expired(&ctx.policy, current, ctx.now) => {
                    next.remove_expired(id.as_str());
                    Err("not_found")
                }
                Some(current) if !current.is_active() => {
                    Ok(RevokeSessionOutcome::AlreadyRevoked(current.clone()))
                }
                Some(current) => match current.clone().revoked(input.revocation.clone()) {
                    Err(e) => Err(e.kind()),
                    Ok(revoked) => {
                        next.sessions
                            .insert(revoked.id().as_str().to_owned(), revoked.clone());
                        Ok(RevokeSessionOutcome::Revoked(revoked))
                    }
                },
            })
        }
        Prepared::RevokeAll(input, collect) => {
            // Existence decides, not clocks: every active session, one
            // dated after the revocation revoked at its own creation time.
            let mut revoked: Vec<Session> = model
                .of_user(&input.user_id)
                .filter(|s| s.is_active())
                .map(|s| {
                    s.clone()
                        .revoked_no_earlier_than_creation(input.revocation.clone())
                })
                .collect();
            sort_newest_first(&mut revoked);
            for session in &revoked {
                next.sessions
                    .insert(session.id().as_str().to_owned(), session.clone());
            }
            let count = u64::try_from(revoked.len()).expect("few sessions");
            if !collect {
                revoked.clear();
            }
            Outcome::RevokedAll(Ok((revoked, count)))
        }
        // Which expired sessions a list removes on the way (at most a
        // batch) is checked by `assert_lazy_removal`.
        Prepared::List(user) => Outcome::Listed(Ok(model.visible(ctx, user, false))),
        Prepared::Get(id, for_user) => {
            let found = match for_user {
                None => model.by_id(ctx, id),
                Some(user) => model
                    .sessions
                    .get(id.as_str())
                    .filter(|s| s.user_id() == user),
            };
            Outcome::Got(match found {
                None => Err("not_found"),
                Some(session) if expired(&ctx.policy, session, ctx.now) => {
                    next.remove_expired(id.as_str());
                    Err("not_found")
                }
                Some(session) => Ok(session.clone()),
            })
        }
        Prepared::Count(user) => Outcome::Counted(Ok(
            u64::try_from(model.active_count(user)).expect("few sessions")
        )),
    };
    (outcome, next)
}

/// [`predict`] for a create of `session`.
fn predict_create(
    ctx: &Ctx,
    model: &Model,
    next: &mut Model,
    session: &Session,
    skip: usize,
) -> Result<(Session, Vec<Session>), &'static str> {
    let user = session.user_id();
    let key = session.id().as_str();
    if ctx.tagged() {
        // The owner key is claimed first, in its own step: it stays even
        // when the create then fails.
        match model.owners.get(key) {
            Some(owner) if owner != user.as_str() => return Err("conflict"),
            _ => {
                next.owners.insert(key.to_owned(), user.as_str().to_owned());
            }
        }
    }
    if model.sessions.contains_key(key) {
        return Err("conflict");
    }
    let mut evicted = Vec::new();
    if let (Some(limit), true) = (ctx.policy.session_limit, session.is_active()) {
        let max = usize::try_from(limit.max_active()).expect("small limit");
        let len = model.active_count(user);
        match limit.on_limit {
            OnLimit::Reject if len >= max => return Err("session_limit"),
            OnLimit::RevokeOldest if len >= max => {
                let needed = (len + 1 - max).min(ctx.policy.batch_size.get());
                for old in oldest_active(model, user, needed, skip) {
                    let at = old.created_at().max(ctx.now);
                    let revoked = old
                        .revoked(limit_revocation(at))
                        .expect("not before creation");
                    next.sessions
                        .insert(revoked.id().as_str().to_owned(), revoked.clone());
                    evicted.push(revoked);
                }
            }
            _ => {}
        }
    }
    // Which of the user's expired sessions the create removes on the way
    // is its own business (see `World::settle`).
    next.sessions.insert(key.to_owned(), session.clone());
    Ok((session.clone(), evicted))
}

/// Called at every `between` point of an operation.
type Hook<'h> = &'h mut dyn FnMut(&mut MemoryKv, Between);

fn no_hook(_: &mut MemoryKv, _: Between) {}

/// What running an action returned.
struct Executed {
    outcome: Outcome,
}

/// Runs `prepared` with the core's reference loop, calling `hook` at every
/// `between` point. Checks what holds of any run: kinds are snake_case,
/// the attempts never run out, reports are self-consistent.
fn execute(ctx: &Ctx, kv: &mut MemoryKv, prepared: &Prepared, hook: Hook<'_>) -> Executed {
    let keys = &ctx.keys;
    let (policy, now) = (ctx.policy, ctx.now);
    let mut between = |kv: &mut MemoryKv, b: Between| hook(kv, b);
    let outcome = match prepared {
        Prepared::Nothing => {
            between(kv, Between::Read);
            Outcome::Nothing
        }
        Prepared::Create(session) => {
            let run = op::run_with(
                kv,
                Create::new(keys, policy, now, session.clone()),
                MAX_ATTEMPTS,
                &mut between,
            );
            Outcome::Created(
                run.map(|created| {
                    assert_eq!(&created.session, session);
                    (created.session, created.evicted)
                })
                .map_err(|e| kind_of(&e)),
            )
        }
        Prepared::Revoke(input) => {
            let run = op::run_with(
                kv,
                Revoke::new(keys, policy, now, input.clone()),
                MAX_ATTEMPTS,
                &mut between,
            );
            if let Ok(outcome) = &run {
                assert!(outcome.is_consistent(), "{outcome:?}");
                assert_eq!(outcome.session().id(), &input.device_session_id);
            }
            Outcome::Revoked(run.map_err(|e| kind_of(&e)))
        }
        Prepared::RevokeAll(input, collect) => {
            let run = op::run_with(
                kv,
                RevokeAll::new(keys, policy, input.clone(), *collect),
                MAX_ATTEMPTS,
                &mut between,
            );
            Outcome::RevokedAll(
                run.map(|report| {
                    let batch = u64::try_from(policy.batch_size.get()).expect("small batch");
                    // Every batch revokes a session or repairs drift (a
                    // revoked record left in the active index).
                    assert!(
                        report.batches <= report.count + report.drift_repaired
                            && report.batches >= report.count.div_ceil(batch),
                        "{} batches of at most {batch} for {} sessions ({} drift repaired)",
                        report.batches,
                        report.count,
                        report.drift_repaired
                    );
                    if *collect {
                        assert_eq!(u64::try_from(report.revoked.len()).ok(), Some(report.count));
                        let outcome = report.clone().into_outcome();
                        assert!(outcome.is_consistent_for(&input.user_id), "{outcome:?}");
                    } else {
                        assert!(report.revoked.is_empty(), "counting form collected");
                    }
                    (report.revoked, report.count)
                })
                .map_err(|e| kind_of(&e)),
            )
        }
        Prepared::List(user) => {
            let run = op::run_with(
                kv,
                List::new(keys, policy, now, user.clone()),
                MAX_ATTEMPTS,
                &mut between,
            );
            if let Ok(sessions) = &run {
                assert_strictly_newest_first(sessions);
                assert!(sessions.iter().all(|s| s.user_id() == user));
            }
            Outcome::Listed(run.map_err(|e| kind_of(&e)))
        }
        Prepared::Get(id, for_user) => {
            let get = match for_user {
                None => Get::new(keys, policy, now, id.clone()),
                Some(user) => Get::for_user(keys, policy, now, user.clone(), id.clone()),
            };
            let run = op::run_with(kv, get, MAX_ATTEMPTS, &mut between);
            if let Ok(session) = &run {
                assert_eq!(session.id(), id);
            }
            Outcome::Got(run.map_err(|e| kind_of(&e)))
        }
        Prepared::Count(user) => Outcome::Counted(
            op::run_with(kv, Count::new(keys, user), MAX_ATTEMPTS, &mut between)
                .map_err(|e| kind_of(&e)),
        ),
    };
    if let Some(kind) = error_kind(&outcome) {
        assert_ne!(kind, "contention_exhausted", "{prepared:?}");
    }
    Executed { outcome }
}

fn error_kind(outcome: &Outcome) -> Option<&'static str> {
    match outcome {
        Outcome::Nothing => None,
        Outcome::Created(r) => r.as_ref().err().copied(),
        Outcome::Revoked(r) => r.as_ref().err().copied(),
        Outcome::RevokedAll(r) => r.as_ref().err().copied(),
        Outcome::Listed(r) => r.as_ref().err().copied(),
        Outcome::Got(r) => r.as_ref().err().copied(),
        Outcome::Counted(r) => r.as_ref().err().copied(),
    }
}

fn assert_strictly_newest_first(sessions: &[Session]) {
    assert!(
        sessions.windows(2).all(|pair| match pair {
            [a, b] => newest_first(a, b).is_lt(),
            _ => true,
        }),
        "not strictly newest first: {sessions:?}"
    );
}

fn page_limit(walk: &Walk, page: usize) -> PageLimit {
    let l = walk.limits[page % walk.limits.len()];
    let n = if l % 5 == 4 {
        1000
    } else {
        1 + usize::from(l % 4)
    };
    PageLimit::new(n).expect("limit in range")
}

fn status_of(walk: &Walk) -> StatusFilter {
    if walk.active {
        StatusFilter::Active
    } else {
        StatusFilter::All
    }
}

/// A page walk: the pages read (or the error that stopped it) and the last
/// cursor issued. `between_pages` runs after each page (with its index).
struct Walked {
    pages: Vec<Page>,
    error: Option<&'static str>,
    last_cursor: Option<PageCursor>,
}

/// Where a page walk calls its hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InWalk {
    /// At the `call`-th `between` point of page `page` (after one of its
    /// reads or applies).
    Inside { page: usize, call: usize },
    /// After page `page`, before the next.
    After { page: usize },
}

fn walk_pages(
    ctx: &Ctx,
    kv: &mut MemoryKv,
    walk: &Walk,
    hook: &mut dyn FnMut(&mut MemoryKv, InWalk),
) -> Walked {
    let user = user(walk.user);
    let status = status_of(walk);
    let mut walked = Walked {
        pages: Vec::new(),
        error: None,
        last_cursor: None,
    };
    let mut cursor = None;
    for page_index in 0..MAX_PAGES {
        let limit = page_limit(walk, page_index);
        let request = PageRequest {
            limit,
            cursor: cursor.clone(),
            status,
        };
        let mut call = 0;
        let run = op::run_with(
            kv,
            ListPage::new(&ctx.keys, ctx.policy, ctx.now, user.clone(), request),
            MAX_ATTEMPTS,
            |kv, _| {
                hook(
                    kv,
                    InWalk::Inside {
                        page: page_index,
                        call,
                    },
                );
                call += 1;
            },
        );
        let page = match run {
            Ok(page) => page,
            Err(e) => {
                let kind = kind_of(&e);
                assert_ne!(kind, "contention_exhausted");
                walked.error = Some(kind);
                return walked;
            }
        };
        assert!(page.sessions.len() <= limit.get(), "page over its limit");
        assert_strictly_newest_first(&page.sessions);
        assert!(page.sessions.iter().all(|s| s.user_id() == &user));
        if status == StatusFilter::Active {
            assert!(page.sessions.iter().all(Session::is_active));
        }
        cursor.clone_from(&page.next_cursor);
        if let Some(c) = &page.next_cursor {
            // The text round-trips.
            assert_eq!(PageCursor::parse(c.as_str()).as_ref(), Ok(c));
            walked.last_cursor = Some(c.clone());
        }
        walked.pages.push(page);
        if cursor.is_none() {
            return walked;
        }
        hook(kv, InWalk::After { page: page_index });
    }
    panic!("page walk of {walk:?} does not end after {MAX_PAGES} pages");
}

/// The consistency oracle: what the records say every other key must
/// hold, written here from the key-space rules (not the core's audit).
#[derive(Debug, Default)]
struct Derived {
    /// Valid records, by id.
    sessions: BTreeMap<String, Session>,
    /// Owner keys holding a valid user id (tagged layout).
    owners: BTreeMap<String, String>,
    /// Everything wrong, each with whether the reference audit covers it
    /// (records and the two reference indexes).
    problems: Vec<(bool, String)>,
}

impl Derived {
    fn reference_problems(&self) -> impl Iterator<Item = &String> {
        self.problems.iter().filter(|(r, _)| *r).map(|(_, p)| p)
    }

    fn is_consistent(&self) -> bool {
        self.problems.is_empty()
    }

    fn model(&self) -> Model {
        Model {
            sessions: self.sessions.clone(),
            owners: self.owners.clone(),
        }
    }
}

/// A record key and the user it names (tagged layout), by index.
type RecordKey = (String, Option<usize>);

/// Every key the key space derives for the alphabet, built once per
/// layout: the oracle looks keys up instead of deriving them again.
struct KeyTable {
    keys: KeySpace,
    /// Per id (as in [`IDS`]): its record keys, with the user (as in
    /// [`USERS`]) in the tagged layout, and its owner key (tagged).
    records: Vec<(Vec<RecordKey>, Option<String>)>,
    /// Per user: the all, active and revoked index keys.
    indexes: Vec<[String; 3]>,
    known: BTreeSet<String>,
}

fn key_table(keys: &KeySpace) -> &'static KeyTable {
    static TABLES: [OnceLock<KeyTable>; 2] = [OnceLock::new(), OnceLock::new()];
    let tagged = keys.layout() == Layout::Tagged;
    let table = TABLES
        .get(usize::from(tagged))
        .expect("two layouts")
        .get_or_init(|| {
            let (ids, users) = alphabet();
            let records: Vec<_> = ids
                .iter()
                .map(|id| {
                    let record_keys = if tagged {
                        users
                            .iter()
                            .enumerate()
                            .map(|(u, user)| (keys.record_key(user, id), Some(u)))
                            .collect()
                    } else {
                        vec![(keys.session_key(id), None)]
                    };
                    (record_keys, keys.owner_key(id))
                })
                .collect();
            let indexes: Vec<[String; 3]> = users
                .iter()
                .map(|user| {
                    [
                        keys.user_sessions_key(user),
                        keys.user_active_sessions_key(user),
                        keys.user_revoked_sessions_key(user),
                    ]
                })
                .collect();
            let known = records
                .iter()
                .flat_map(|(r, o)| r.iter().map(|(k, _)| k.clone()).chain(o.clone()))
                .chain(indexes.iter().flatten().cloned())
                .collect();
            KeyTable {
                keys: keys.clone(),
                records,
                indexes,
                known,
            }
        });
    assert_eq!(
        &table.keys, keys,
        "the oracle knows the default key spaces only"
    );
    table
}

/// Every record key of `id` (one per user in the tagged layout), with
/// the user the key names.
fn record_keys_of(keys: &KeySpace, id: &DeviceSessionId) -> Vec<(String, Option<UserId>)> {
    let i = IDS
        .iter()
        .position(|i| *i == id.as_str())
        .expect("an id of the alphabet");
    key_table(keys)
        .records
        .get(i)
        .expect("one entry per id")
        .0
        .iter()
        .map(|(k, u)| {
            (
                k.clone(),
                u.map(|u| alphabet().1.get(u).expect("a user").clone()),
            )
        })
        .collect()
}

fn index_keys_of(keys: &KeySpace, user: &UserId) -> [(String, u8); 3] {
    let u = USERS
        .iter()
        .position(|u| *u == user.as_str())
        .expect("a user of the alphabet");
    let [all, active, revoked] = key_table(keys)
        .indexes
        .get(u)
        .expect("one entry per user")
        .clone();
    [(all, 0), (active, 1), (revoked, 2)]
}

/// Derives the consistent state from the records of `kv` and lists every
/// way `kv` departs from it.
fn derive(keys: &KeySpace, policy: &Policy, kv: &MemoryKv) -> Derived {
    let mut derived = Derived::default();
    let table = key_table(keys);
    let (ids, users) = alphabet();

    for (id, (record_keys, owner_key)) in ids.iter().zip(&table.records) {
        let mut found = Vec::new();
        for (key, key_user) in record_keys {
            match kv.key_type(key) {
                None => {}
                Some(KeyType::SortedSet) => derived
                    .problems
                    .push((true, format!("{key}: a sorted set at a record key"))),
                Some(_) => {
                    let bytes = kv.get(key).unwrap_or_default();
                    let key_user = key_user.and_then(|u| users.get(u));
                    match codec::decode(id, bytes) {
                        Ok(session) if key_user.is_none_or(|u| u == session.user_id()) => {
                            found.push(session);
                        }
                        Ok(session) => derived.problems.push((
                            true,
                            format!(
                                "{key}: a record of {} under another user's tag",
                                session.user_id()
                            ),
                        )),
                        Err(e) => derived
                            .problems
                            .push((true, format!("{key}: corrupt: {e}"))),
                    }
                }
            }
        }
        if let Some(owner_key) = owner_key {
            let owner = match kv.key_type(owner_key) {
                Some(KeyType::SortedSet) => {
                    derived
                        .problems
                        .push((false, format!("{owner_key}: a sorted set at an owner key")));
                    None
                }
                None => None,
                Some(_) => {
                    let bytes = kv.get(owner_key).unwrap_or_default();
                    match std::str::from_utf8(bytes)
                        .ok()
                        .and_then(|t| UserId::parse(t).ok())
                    {
                        Some(owner) => Some(owner),
                        None => {
                            derived
                                .problems
                                .push((false, format!("{owner_key}: not a user id: {bytes:?}")));
                            None
                        }
                    }
                }
            };
            if let Some(owner) = &owner {
                derived
                    .owners
                    .insert(id.as_str().to_owned(), owner.as_str().to_owned());
            }
            if found.len() > 1 {
                derived
                    .problems
                    .push((false, format!("{id}: records under {} users", found.len())));
                found.retain(|s| Some(s.user_id()) == owner.as_ref());
            }
            if let Some(session) = found.first() {
                if owner.as_ref() != Some(session.user_id()) {
                    derived.problems.push((
                        false,
                        format!(
                            "{id}: owner {owner:?} is not the record's user {}",
                            session.user_id()
                        ),
                    ));
                }
            }
        }
        if let Some(session) = found.into_iter().next() {
            derived.sessions.insert(id.as_str().to_owned(), session);
        }
    }

    // What each index must hold: all, active, revoked. The revoked index
    // exists under a retention only: without one it may hold a subset (an
    // index a store under a retention wrote), never a wrong entry.
    let revoked_complete = policy.indexes_revoked();
    let mut want: Vec<[BTreeMap<&[u8], f64>; 3]> =
        users.iter().map(|_| Default::default()).collect();
    for s in derived.sessions.values() {
        let u = users
            .iter()
            .position(|u| u == s.user_id())
            .expect("a user of the alphabet");
        let w = want.get_mut(u).expect("one entry per user");
        let member = s.id().as_str().as_bytes();
        let [all, active, revoked] = w;
        all.insert(member, score(s.created_at()));
        match s.revocation() {
            None => active.insert(member, score(s.created_at())),
            Some(r) => revoked.insert(member, score(r.at())),
        };
    }
    for (keys_of_user, want_of_user) in table.indexes.iter().zip(&want) {
        for (index, (key, want)) in keys_of_user.iter().zip(want_of_user).enumerate() {
            let reference = index < 2;
            match kv.key_type(key) {
                Some(KeyType::String) => {
                    derived
                        .problems
                        .push((reference, format!("{key}: a string at an index key")));
                    continue;
                }
                None if !want.is_empty() && (index < 2 || revoked_complete) => {
                    derived
                        .problems
                        .push((reference, format!("{key}: missing, wants {want:?}")));
                    continue;
                }
                _ => {}
            }
            let have = kv.index_range(key, None);
            let entries_right = have.iter().all(|(m, s)| want.get(m.as_slice()) == Some(s));
            let same =
                entries_right && (have.len() == want.len() || (index == 2 && !revoked_complete));
            if !same {
                derived
                    .problems
                    .push((reference, format!("{key}: holds {have:?}, wants {want:?}")));
            }
        }
    }

    for key in kv.keys() {
        if !table.known.contains(key) {
            derived
                .problems
                .push((true, format!("{key}: not a key of the key space")));
        }
    }
    derived
}

/// Repairs `kv` to what its records say, as the oracle sees it: deletes
/// records that do not decode (or sit under another user's tag), values of
/// the wrong type and stray keys, rebuilds every index from the records and
/// sets every record's owner key.
fn heal(keys: &KeySpace, policy: &Policy, kv: &mut MemoryKv) {
    let derived = derive(keys, policy, kv);
    let keep: BTreeSet<String> = derived
        .sessions
        .values()
        .map(|s| keys.record_key(s.user_id(), s.id()))
        .collect();
    let owner_keys: BTreeMap<String, DeviceSessionId> = if keys.layout() == Layout::Tagged {
        all_ids()
            .filter_map(|id| Some((keys.owner_key(&id)?, id)))
            .collect()
    } else {
        BTreeMap::new()
    };
    let doomed: Vec<String> = kv
        .keys()
        .filter(|k| {
            if keep.contains(*k) {
                return false;
            }
            match owner_keys.get(*k) {
                // Orphan owners are legitimate when they hold a user id.
                Some(id) => !derived.owners.contains_key(id.as_str()),
                None => true,
            }
        })
        .map(str::to_owned)
        .collect();
    for key in doomed {
        kv.delete_raw(&key);
    }
    for s in derived.sessions.values() {
        let member = s.id().as_str().as_bytes().to_vec();
        kv.index_add_raw(
            keys.user_sessions_key(s.user_id()),
            member.clone(),
            score(s.created_at()),
        );
        match s.revocation() {
            None => kv.index_add_raw(
                keys.user_active_sessions_key(s.user_id()),
                member,
                score(s.created_at()),
            ),
            // As the store writes it: only under a retention.
            Some(r) if policy.indexes_revoked() => kv.index_add_raw(
                keys.user_revoked_sessions_key(s.user_id()),
                member,
                score(r.at()),
            ),
            Some(_) => {}
        }
        if let Some(owner) = keys.owner_key(s.id()) {
            kv.set_raw(owner, s.user_id().as_str());
        }
    }
}

/// Everything the store holds, by id (every record must decode).
fn stored(keys: &KeySpace, policy: &Policy, kv: &MemoryKv) -> Model {
    let derived = derive(keys, policy, kv);
    assert!(
        derived.is_consistent(),
        "inconsistent state: {:#?}",
        derived.problems
    );
    derived.model()
}

/// The core's bounded check over the whole key space (batches of three,
/// so multi-batch walks run), on `kv` itself when repairing; with the
/// second look at owner keys without their record, as the driver takes it
/// once the grace has passed (no create is in flight here).
fn run_check(keys: &KeySpace, kv: &mut MemoryKv, mode: CheckMode) -> CheckReport {
    let batch = authsession_core::op::BatchSize::new(3).unwrap_or_default();
    let mut report = op::run(kv, op::Check::new(keys, mode, batch), 16).expect("check runs");
    let repair = mode == CheckMode::Repair;
    if let Some(recheck) = report.owner_recheck(keys, repair, batch) {
        let outcome = op::run(kv, recheck, 16).expect("the second look runs");
        report.absorb_owner_recheck(keys, outcome, repair);
    }
    report
}

/// The check's verdict on an unchanged copy of `kv`.
fn reference_audit(keys: &KeySpace, kv: &MemoryKv) -> CheckReport {
    run_check(keys, &mut kv.clone(), CheckMode::Report)
}

/// The decoded input, for triage: the setup and every step, as the target
/// reads them.
pub fn describe_transitions(data: &[u8]) -> String {
    let mut u = Unstructured::new(data);
    let Ok(setup) = Setup::arbitrary(&mut u) else {
        return "(no setup)".to_owned();
    };
    let mut out = format!("{setup:?}\n");
    if let Ok(steps) = u.arbitrary_iter::<Step>() {
        for (n, step) in steps.take(MAX_STEPS).enumerate() {
            let Ok(step) = step else { break };
            out.push_str(&format!("{n}: {step:?}\n"));
        }
    }
    out
}

/// The entry point: see the module documentation.
pub fn check_transitions(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(setup) = Setup::arbitrary(&mut u) else {
        return;
    };
    let mut world = World::new(setup);
    let Ok(steps) = u.arbitrary_iter::<Step>() else {
        return;
    };
    for step in steps.take(MAX_STEPS) {
        let Ok(step) = step else { break };
        world.advance(step.advance);
        world.step(&step.op);
        world.assert_consistent();
    }
    world.finish();
}

struct World {
    ctx: Ctx,
    kv: MemoryKv,
    model: Model,
}

impl World {
    fn new(setup: Setup) -> Self {
        let layout = if setup.tagged {
            Layout::Tagged
        } else {
            Layout::Reference
        };
        let keys = KeySpace::with_base_and_layout(DEFAULT_KEY_BASE, layout)
            .expect("the default base is valid");
        let policy = Policy {
            revoked_retention: setup
                .retention
                .map(|r| Duration::from_nanos(pick(RETENTIONS_NANOS, r))),
            session_limit: setup.limit.and_then(|(max, oldest)| {
                SessionLimit::new(
                    1 + u32::from(max % 3),
                    if oldest {
                        OnLimit::RevokeOldest
                    } else {
                        OnLimit::Reject
                    },
                )
            }),
            batch_size: op::BatchSize::new(1 + usize::from(setup.batch % 5)).expect("1..=5"),
            ..Policy::default()
        };
        let now = Timestamp::from_unix_nanos(pick(ERAS_UNIX_NANOS, setup.era))
            .expect("eras are in range");
        Self {
            ctx: Ctx {
                keys,
                policy,
                now,
                over_limit: BTreeMap::new(),
            },
            kv: MemoryKv::new(),
            model: Model::default(),
        }
    }

    /// Moves the clock forward (it stays put at the end of year 9999).
    fn advance(&mut self, advance: u8) {
        if let Ok(now) = self
            .ctx
            .now
            .checked_add_nanos(pick(ADVANCES_NANOS, advance))
        {
            self.ctx.now = now;
        }
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Do(action) => {
                let prepared = prepare(&self.ctx, action);
                let before = self.model.clone();
                let ctx = self.ctx.clone();
                let executed = execute(&ctx, &mut self.kv, &prepared, &mut limit_holds(&ctx));
                let (expected, next) = predict(&self.ctx, &prepared, &self.model);
                assert_eq!(
                    executed.outcome, expected,
                    "{prepared:?} at {}",
                    self.ctx.now
                );
                self.settle(&before, next, &prepared);
            }
            Op::Pages(walk) => self.pages(walk),
            Op::Concurrent { main, other, point } => {
                let main = prepare(&self.ctx, main);
                let other = prepare(&self.ctx, other);
                self.concurrent(&main, &other, *point);
            }
            Op::ConcurrentPages { walk, other, after } => {
                let other = prepare(&self.ctx, other);
                self.concurrent_pages(walk, &other, *after);
            }
            Op::Tampered {
                main,
                tamper,
                point,
            } => {
                let main = prepare(&self.ctx, main);
                self.tampered(&main, tamper, *point);
            }
        }
    }

    /// Checks the stored state against `next` (the model's prediction, up
    /// to sessions past their retention that an operation removed on the
    /// way) and that only such sessions disappeared since `before`. A get
    /// or revoke that met one, or a list or full walk of all sessions, must
    /// have removed what it met; a create of a user with sessions long
    /// past their retention removes at least one of them.
    fn settle(&mut self, before: &Model, next: Model, prepared: &Prepared) {
        let ctx = &self.ctx;
        let stored = stored(&ctx.keys, &ctx.policy, &self.kv);
        self.assert_only_expired_removed(before, &stored);
        assert!(
            same_modulo_expired(ctx, &stored, &next),
            "after {prepared:?} at {}:\nstored {stored:#?}\npredicted {next:#?}",
            ctx.now
        );
        let gone = |id: &DeviceSessionId| !stored.sessions.contains_key(id.as_str());
        let expired_before = |id: &DeviceSessionId| {
            before
                .sessions
                .get(id.as_str())
                .is_some_and(|s| expired(&ctx.policy, s, ctx.now))
        };
        match prepared {
            Prepared::Revoke(input) => {
                let id = &input.device_session_id;
                if before.by_id(ctx, id).is_some() && expired_before(id) {
                    assert!(gone(id), "revoke met expired {id} and left it");
                }
            }
            Prepared::Get(id, for_user) => {
                let found = match for_user {
                    None => before.by_id(ctx, id),
                    Some(user) => before
                        .sessions
                        .get(id.as_str())
                        .filter(|s| s.user_id() == user),
                };
                if found.is_some() && expired_before(id) {
                    assert!(gone(id), "get met expired {id} and left it");
                }
            }
            Prepared::List(user) => assert_lazy_removal(ctx, before, &stored, user),
            Prepared::Create(session)
                if matches!(next.sessions.get(session.id().as_str()), Some(s) if s == session)
                    && !before.sessions.contains_key(session.id().as_str()) =>
            {
                let long_expired = |s: &&Session| {
                    let later = Ctx {
                        now: ctx.now.checked_add_nanos(-1_000_000).unwrap_or(ctx.now),
                        ..ctx.clone()
                    };
                    expired(&ctx.policy, s, later.now)
                };
                let stale: Vec<&Session> = before
                    .of_user(session.user_id())
                    .filter(long_expired)
                    .collect();
                if !stale.is_empty() {
                    assert!(
                        stale.iter().any(|s| gone(s.id())),
                        "create left every long-expired session of {}: {stale:?}",
                        session.user_id()
                    );
                }
            }
            _ => {}
        }
        self.model = stored;
    }

    fn assert_only_expired_removed(&self, before: &Model, after: &Model) {
        self.assert_only_expired_removed_of(&[before], after);
    }

    /// Every session of `versions[0]` missing from `after` was past its
    /// retention in one of the `versions` of the state it went through (a
    /// concurrent revoke may have revoked it in the past, then it expired).
    fn assert_only_expired_removed_of(&self, versions: &[&Model], after: &Model) {
        let Some(before) = versions.first() else {
            return;
        };
        for (id, session) in &before.sessions {
            if after.sessions.contains_key(id) {
                continue;
            }
            let was_expired = versions.iter().any(|m| {
                m.sessions
                    .get(id)
                    .is_some_and(|s| expired(&self.ctx.policy, s, self.ctx.now))
            });
            assert!(
                was_expired,
                "{session:?} disappeared at {} before its retention ({:?})",
                self.ctx.now, self.ctx.policy.revoked_retention
            );
        }
    }

    fn pages(&mut self, walk: &Walk) {
        let user = user(walk.user);
        let before = self.model.clone();
        let expected = self.model.visible(&self.ctx, &user, walk.active);
        let ctx = self.ctx.clone();
        let walked = walk_pages(&ctx, &mut self.kv, walk, &mut |_, _| {});
        assert_eq!(walked.error, None, "{walk:?}");
        let got: Vec<Session> = walked
            .pages
            .iter()
            .flat_map(|p| p.sessions.iter().cloned())
            .collect();
        assert_eq!(got, expected, "pages of {walk:?} at {}", self.ctx.now);
        if let Some(cursor) = walked.last_cursor {
            self.assert_cursor_refused(walk, &cursor);
        }
        // A walk of all sessions meets (and must remove) the expired
        // sessions a list does; an active walk meets none.
        let like = if walk.active {
            Prepared::Nothing
        } else {
            Prepared::List(user)
        };
        self.settle(&before, self.model.clone(), &like);
    }

    /// A cursor is only good for the user and status filter it was issued
    /// for.
    fn assert_cursor_refused(&mut self, walk: &Walk, cursor: &PageCursor) {
        // Malformed text: cut short, another version byte, not base64.
        let text = cursor.as_str();
        let mut other_version = text.to_owned();
        other_version.replace_range(..1, if text.starts_with('B') { "C" } else { "B" });
        for bad in [
            &text[..text.len() / 2],
            &text[..text.len() - 1],
            other_version.as_str(),
            "",
            "!!",
        ] {
            let parsed = PageCursor::parse(bad);
            assert_eq!(
                parsed.as_ref().map_err(kind_of).err(),
                Some("invalid_cursor"),
                "{bad:?}: {parsed:?}"
            );
        }
        let this = user(walk.user);
        let other_user = user(next_user(walk.user));
        let other_status = if walk.active {
            StatusFilter::All
        } else {
            StatusFilter::Active
        };
        for (user, status) in [(other_user, status_of(walk)), (this, other_status)] {
            let request = PageRequest {
                limit: PageLimit::default(),
                cursor: Some(cursor.clone()),
                status,
            };
            let run = op::run(
                &mut self.kv,
                ListPage::new(
                    &self.ctx.keys,
                    self.ctx.policy,
                    self.ctx.now,
                    user.clone(),
                    request,
                ),
                MAX_ATTEMPTS,
            );
            assert_eq!(
                run.as_ref().map_err(kind_of).err(),
                Some("invalid_cursor"),
                "{user:?} {status:?} {cursor:?} {run:?}"
            );
        }
    }

    fn concurrent(&mut self, main: &Prepared, other: &Prepared, point: u8) {
        let ctx = self.ctx.clone();
        let before = self.model.clone();
        let point = point % 4;
        let mut calls = 0;
        let mut other_run: Option<Executed> = None;
        let mut check_limit = limit_holds(&ctx);
        let main_run = execute(&ctx, &mut self.kv, main, &mut |kv, b| {
            check_limit(kv, b);
            if calls == point && other_run.is_none() {
                other_run = Some(execute(&ctx, kv, other, &mut limit_holds(&ctx)));
            }
            calls += 1;
        });
        let other_run =
            other_run.unwrap_or_else(|| execute(&ctx, &mut self.kv, other, &mut limit_holds(&ctx)));

        let stored = stored(&ctx.keys, &ctx.policy, &self.kv);
        {
            let (_, after_main) = predict(&ctx, main, &before);
            let (_, after_other) = predict(&ctx, other, &before);
            let (_, main_then_other) = predict(&ctx, other, &after_main);
            let (_, other_then_main) = predict(&ctx, main, &after_other);
            self.assert_only_expired_removed_of(
                &[
                    &before,
                    &after_main,
                    &after_other,
                    &main_then_other,
                    &other_then_main,
                ],
                &stored,
            );
        }
        // Expired sessions may be removed by either operation at any point;
        // they are invisible, so the serial orders start from the state
        // before with or without the ones that are gone by now.
        // (A removed id may have been created again since.)
        let mut pruned = before.clone();
        let gone: Vec<String> = before
            .sessions
            .iter()
            .filter(|(id, s)| {
                stored.sessions.get(*id) != Some(*s) && expired(&ctx.policy, s, ctx.now)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            pruned.remove_expired(id);
        }
        let linearizable = [&before, &pruned].into_iter().any(|start| {
            let (main_first, after_main) = predict(&ctx, main, start);
            let (other_second, main_then_other) = predict(&ctx, other, &after_main);
            let main_then_other_ok = main_first == main_run.outcome
                && other_second == other_run.outcome
                && same_modulo_expired(&ctx, &stored, &main_then_other);
            let (other_first, after_other) = predict(&ctx, other, start);
            // Interrupted by `other`, `main` retried: it may have lost its
            // eviction to `other` and picked among the two oldest.
            let other_then_main_ok = (0..2).any(|skip| {
                let (main_second, other_then_main) =
                    predict_evicting(&ctx, main, &after_other, skip);
                main_second == main_run.outcome
                    && other_first == other_run.outcome
                    && same_modulo_expired(&ctx, &stored, &other_then_main)
            });
            main_then_other_ok || other_then_main_ok
        });
        // A list reads the index, then the records: with a change in
        // between that touches two sessions at once (a revoke-oldest create
        // revokes one and adds another), it returns the sessions the index
        // held before, as their records are after. Not a snapshot; accepted
        // as that and nothing else.
        let torn_list = match (main, &main_run.outcome) {
            (Prepared::List(user), Outcome::Listed(Ok(listed))) => {
                let mut torn: Vec<Session> = before
                    .of_user(user)
                    .filter_map(|s| stored.sessions.get(s.id().as_str()))
                    .filter(|s| s.user_id() == user && !expired(&ctx.policy, s, ctx.now))
                    .cloned()
                    .collect();
                sort_newest_first(&mut torn);
                *listed == torn
            }
            _ => false,
        };
        if torn_list && !linearizable {
            // `other` ran whole inside the list.
            let (expected, after_other) = predict(&ctx, other, &before);
            assert_eq!(other_run.outcome, expected, "{other:?} inside a list");
            assert!(same_modulo_expired(&ctx, &stored, &after_other));
        }
        if !linearizable && !torn_list {
            // A revoke all whose range held a batch or more may take
            // several batches, each atomic but not the whole: it must still
            // revoke everything it covers, and only sessions it covers.
            let (_, after_other) = predict(&ctx, other, &before);
            let (_, after_main) = predict(&ctx, main, &before);
            let batched = [
                (main, &main_run, &after_other),
                (other, &other_run, &after_main),
            ]
            .into_iter()
            .find(|(p, _, after)| {
                may_take_batches(&ctx, p, &before) || may_take_batches(&ctx, p, after)
            });
            let Some((Prepared::RevokeAll(input, _), _, _)) = batched else {
                panic!(
                    "not linearizable: main {main:?} -> {:?}, other {other:?} -> {:?}, \
                     stored {stored:?}, before {before:?}",
                    main_run.outcome, other_run.outcome
                );
            };
            for (id, session) in &before.sessions {
                if session.user_id() == &input.user_id {
                    assert!(
                        stored.sessions.get(id).is_none_or(|s| !s.is_active()),
                        "batched revoke all left {id} active"
                    );
                }
            }
            for (prepared, run) in [(main, &main_run), (other, &other_run)] {
                let (Prepared::RevokeAll(input, _), Outcome::RevokedAll(Ok((revoked, _)))) =
                    (prepared, &run.outcome)
                else {
                    continue;
                };
                for s in revoked {
                    let expected = s
                        .clone()
                        .revoked_no_earlier_than_creation(input.revocation.clone());
                    assert!(
                        s.user_id() == &input.user_id && s == &expected,
                        "batched revoke all revoked {s:?}"
                    );
                }
            }
        }
        self.model = stored;
    }

    fn concurrent_pages(&mut self, walk: &Walk, other: &Prepared, after: u8) {
        let ctx = self.ctx.clone();
        let user = user(walk.user);
        let before = self.model.clone();
        let visible_before = before.visible(&ctx, &user, walk.active);
        // `after`: the page (`(after & 0x7f) % 3`); with the high bit, inside it at a
        // `between` point (`((after & 0x7f) >> 3) % 3`), else after it.
        let page = usize::from((after & 0x7f) % 3);
        let at = if after & 0x80 != 0 {
            InWalk::Inside {
                page,
                call: usize::from(((after & 0x7f) >> 3) % 3),
            }
        } else {
            InWalk::After { page }
        };
        let mut other_next = None;
        let mut walked = walk_pages(&ctx, &mut self.kv, walk, &mut |kv, here| {
            if here == at && other_next.is_none() {
                other_next = Some(run_checked(&ctx, kv, other));
            }
        });
        assert_eq!(walked.error, None, "{walk:?}");
        let other_next = match other_next {
            Some(next) => next,
            None => run_checked(&ctx, &mut self.kv, other),
        };
        let stored = stored(&ctx.keys, &ctx.policy, &self.kv);
        self.assert_only_expired_removed_of(&[&before, &other_next], &stored);
        let visible_after = stored.visible(&ctx, &user, walk.active);

        let got: Vec<Session> = walked.pages.drain(..).flat_map(|p| p.sessions).collect();
        assert_strictly_newest_first(&got);
        let known = |s: &Session| visible_before.contains(s) || visible_after.contains(s);
        for session in &got {
            assert!(known(session), "page returned {session:?}, never visible");
        }
        for session in visible_before.iter().filter(|s| visible_after.contains(s)) {
            assert!(
                got.iter().any(|g| g == session),
                "pages skipped {session:?}, unchanged throughout"
            );
        }
        self.model = stored;
    }

    /// Damages the state at the `point`-th `between` call of `main`, checks
    /// that every operation answers or reports corruption, audits, repairs
    /// and re-derives the model.
    fn tampered(&mut self, main: &Prepared, tamper: &Tamper, point: u8) {
        let ctx = self.ctx.clone();
        let point = point % 4;
        let mut calls = 0;
        let mut done = false;
        let run = execute(&ctx, &mut self.kv, main, &mut |kv, _| {
            if calls == point && !done {
                done = true;
                apply_tamper(&ctx, kv, tamper);
            }
            calls += 1;
        });
        if !done {
            apply_tamper(&ctx, &mut self.kv, tamper);
        }
        assert_survivable(&run.outcome);
        self.assert_reads_survive_damage();
        if ctx.keys.layout() == Layout::Reference {
            self.audit_and_repair();
        }
        heal(&ctx.keys, &ctx.policy, &mut self.kv);
        let derived = derive(&ctx.keys, &ctx.policy, &self.kv);
        assert!(
            derived.is_consistent(),
            "after repair: {:#?}",
            derived.problems
        );
        self.model = derived.model();
        // Damage can hide active sessions from the limit (a dropped active
        // entry): after the repair a user may be above it.
        if let Some(limit) = self.ctx.policy.session_limit {
            let max = usize::try_from(limit.max_active()).expect("small");
            for user in all_users() {
                let active = self.model.active_count(&user);
                if active > max {
                    let allowed = self
                        .ctx
                        .over_limit
                        .entry(user.as_str().to_owned())
                        .or_default();
                    *allowed = (*allowed).max(active);
                }
            }
        }
    }

    /// On a damaged store, every operation either answers or reports
    /// corruption (or a refusal the input calls for); "revoke all" and
    /// "create" run on a copy so the damage stays as is.
    fn assert_reads_survive_damage(&mut self) {
        let ctx = self.ctx.clone();
        let far = Timestamp::from_unix_nanos(253_402_300_799_999_999_999).expect("in range");
        for (w, user) in all_users().enumerate() {
            let w = u8::try_from(w).expect("few users");
            for prepared in [Prepared::List(user.clone()), Prepared::Count(user.clone())] {
                assert_survivable(&execute(&ctx, &mut self.kv, &prepared, &mut no_hook).outcome);
            }
            let revoke_all = Prepared::RevokeAll(
                RevokeUserSessionsInput {
                    user_id: user.clone(),
                    revocation: revocation(far, 0).expect("valid instant"),
                },
                true,
            );
            let mut copy = self.kv.clone();
            assert_survivable(&execute(&ctx, &mut copy, &revoke_all, &mut no_hook).outcome);
            assert_revoke_all_fails_safe(&ctx, &self.kv, &user);
            let fresh =
                Session::active(id(w), user.clone(), ClientPublicKey::from([w; 32]), ctx.now);
            if let Ok(fresh) = fresh {
                let mut copy = self.kv.clone();
                let run = execute(&ctx, &mut copy, &Prepared::Create(fresh), &mut no_hook);
                assert_survivable(&run.outcome);
            }
            for active in [false, true] {
                let walk = Walk {
                    user: w,
                    active,
                    limits: [1, 2, 4],
                };
                let walked = walk_pages(&ctx, &mut self.kv, &walk, &mut |_, _| {});
                if let Some(kind) = walked.error {
                    assert!(is_corruption_kind(kind), "page on damage: {kind}");
                }
            }
        }
        for id in all_ids() {
            let get = Prepared::Get(id.clone(), None);
            assert_survivable(&execute(&ctx, &mut self.kv, &get, &mut no_hook).outcome);
            for user in all_users() {
                let get = Prepared::Get(id.clone(), Some(user));
                assert_survivable(&execute(&ctx, &mut self.kv, &get, &mut no_hook).outcome);
            }
        }
    }

    /// The reference layout's audit: it reports a problem exactly when the
    /// oracle finds the records or the two reference indexes damaged, and
    /// repairing as an operator would leaves no problem.
    fn audit_and_repair(&mut self) {
        let keys = self.ctx.keys.clone();
        let derived = derive(&keys, &self.ctx.policy, &self.kv);
        // A value of the wrong type at a record or index key is outside
        // what the old audit handles: a string at an index key is not read,
        // and for a sorted set at a record key it plans `Absent` on the key
        // it also removes members from, which can never apply.
        let wrong_type = all_users().any(|u| {
            index_keys_of(&keys, &u)
                .iter()
                .any(|(k, _)| self.kv.key_type(k) == Some(KeyType::String))
        }) || all_ids().any(|id| {
            record_keys_of(&keys, &id)
                .iter()
                .any(|(k, _)| self.kv.key_type(k) == Some(KeyType::SortedSet))
        });
        if wrong_type {
            return;
        }
        let report = reference_audit(&keys, &self.kv);
        let damaged: Vec<&String> = derived.reference_problems().collect();
        // Damage the oracle sees is found (the check also audits the
        // revoked index and owner keys, which the oracle does not).
        if !damaged.is_empty() {
            assert!(
                !report.problems.is_empty(),
                "check finds nothing, oracle finds {damaged:?}"
            );
        }
        for problem in &report.problems {
            assert!(is_snake_case(problem.kind()));
        }
        let repaired = run_check(&keys, &mut self.kv, CheckMode::Repair);
        // What the repair leaves for a human: undecodable records and keys
        // that name nothing; an operator deletes them, then repairs again.
        for left in &repaired.unrepaired {
            match &left.problem {
                Problem::CorruptRecord { key, .. } | Problem::UnparsableKey { key } => {
                    self.kv.delete_raw(key);
                }
                _ => {}
            }
        }
        let again = run_check(&keys, &mut self.kv, CheckMode::Repair);
        for left in &again.unrepaired {
            if let Problem::CorruptRecord { key, .. } | Problem::UnparsableKey { key } =
                &left.problem
            {
                self.kv.delete_raw(key);
            }
        }
        let _ = run_check(&keys, &mut self.kv, CheckMode::Repair);
        let report = reference_audit(&keys, &self.kv);
        assert!(
            report.problems.is_empty(),
            "after repair: {:?}",
            report.problems
        );
        let derived = derive(&keys, &self.ctx.policy, &self.kv);
        let left: Vec<&String> = derived.reference_problems().collect();
        assert!(left.is_empty(), "check clean, oracle finds {left:?}");
    }

    /// The stored state agrees with the model and with itself.
    ///
    /// Every step ends by re-deriving the model from the stored state
    /// (`stored`, which asserts consistency), so this only adds the limit
    /// and the Go adapter's view.
    fn assert_consistent(&mut self) {
        assert_limit(&self.ctx, &self.kv);
        shrink_over_limit(&mut self.ctx, &self.kv);
        if self.ctx.tagged() {
            return;
        }
        // The Go adapter's view: reference keys only.
        for user in all_users() {
            for key in [
                self.ctx.keys.user_sessions_key(&user),
                self.ctx.keys.user_active_sessions_key(&user),
            ] {
                for (member, _) in self.kv.index_range(&key, None) {
                    let id = std::str::from_utf8(&member)
                        .ok()
                        .and_then(|m| DeviceSessionId::parse(m).ok())
                        .expect("index members are ids");
                    let record = self.kv.get(&self.ctx.keys.session_key(&id));
                    let session = codec::decode(&id, record.expect("index entry has its record"))
                        .expect("record decodes");
                    assert_eq!(session.user_id(), &user);
                }
            }
        }
    }

    /// The end of the input: audit, and read everything once more.
    fn finish(&mut self) {
        if self.ctx.keys.layout() == Layout::Reference {
            let report = reference_audit(&self.ctx.keys, &self.kv);
            assert!(report.problems.is_empty(), "{:?}", report.problems);
            assert_eq!(report.records, self.model.sessions.len());
        }
        // Outcomes against the model as it is now (reads change nothing a
        // later read could see: only expired sessions go), one settle at
        // the end.
        let ctx = self.ctx.clone();
        let before = self.model.clone();
        for (w, user) in all_users().enumerate() {
            let w = u8::try_from(w).expect("few users");
            for prepared in [Prepared::Count(user.clone()), Prepared::List(user.clone())] {
                let run = execute(&ctx, &mut self.kv, &prepared, &mut no_hook);
                assert_eq!(
                    run.outcome,
                    predict(&ctx, &prepared, &before).0,
                    "{prepared:?}"
                );
            }
            for active in [false, true] {
                let walk = Walk {
                    user: w,
                    active,
                    limits: [0, 1, 2],
                };
                let walked = walk_pages(&ctx, &mut self.kv, &walk, &mut |_, _| {});
                assert_eq!(walked.error, None, "{walk:?}");
                let got: Vec<Session> = walked.pages.into_iter().flat_map(|p| p.sessions).collect();
                assert_eq!(got, before.visible(&ctx, &user, active), "{walk:?}");
            }
        }
        for id in all_ids() {
            let prepared = Prepared::Get(id, None);
            let run = execute(&ctx, &mut self.kv, &prepared, &mut no_hook);
            assert_eq!(
                run.outcome,
                predict(&ctx, &prepared, &before).0,
                "{prepared:?}"
            );
        }
        let stored = stored(&ctx.keys, &ctx.policy, &self.kv);
        self.assert_only_expired_removed(&before, &stored);
        assert!(same_modulo_expired(&ctx, &stored, &before));
        // Every user was listed and walked.
        for user in all_users() {
            assert_lazy_removal(&ctx, &before, &stored, &user);
        }
        self.model = stored;
        self.assert_consistent();
    }
}

/// Runs `prepared` on the untampered `kv` and checks its outcome and the
/// state afterwards against the model of the state it started from.
fn run_checked(ctx: &Ctx, kv: &mut MemoryKv, prepared: &Prepared) -> Model {
    // Earlier steps may have removed expired sessions: start from what is
    // stored.
    let current = stored(&ctx.keys, &ctx.policy, kv);
    let (expected, next) = predict(ctx, prepared, &current);
    let run = execute(ctx, kv, prepared, &mut limit_holds(ctx));
    assert_eq!(run.outcome, expected, "{prepared:?}");
    let after = stored(&ctx.keys, &ctx.policy, kv);
    assert!(
        same_modulo_expired(ctx, &after, &next),
        "after {prepared:?}"
    );
    next
}

/// A list (or a full walk) of `user` that met `k` sessions past their
/// retention removed at least `min(k, batch size)` of them: each call
/// removes what it meets, a batch at most, in one short script.
fn assert_lazy_removal(ctx: &Ctx, before: &Model, after: &Model, user: &UserId) {
    let met: Vec<&Session> = before
        .of_user(user)
        .filter(|s| expired(&ctx.policy, s, ctx.now))
        .collect();
    let removed = met
        .iter()
        .filter(|s| !after.sessions.contains_key(s.id().as_str()))
        .count();
    // At most 4 a call in the tagged layout, where each removal costs a
    // round trip more for its owner key.
    let mut batch = ctx.policy.batch_size.get();
    if ctx.tagged() {
        batch = batch.min(4);
    }
    assert!(
        removed >= met.len().min(batch),
        "a list of {user} met {} expired sessions and removed {removed} (batch {batch}): {met:?}",
        met.len()
    );
}

/// Whether `prepared` is a revoke all whose range on `model` holds at
/// least a batch of active sessions (so it may read more than once).
fn may_take_batches(ctx: &Ctx, prepared: &Prepared, model: &Model) -> bool {
    let Prepared::RevokeAll(input, _) = prepared else {
        return false;
    };
    let in_range = model
        .of_user(&input.user_id)
        .filter(|s| s.is_active())
        .count();
    in_range >= ctx.policy.batch_size.get()
}

/// A `between` hook that checks the limit after every read and apply.
fn limit_holds(ctx: &Ctx) -> impl FnMut(&mut MemoryKv, Between) + '_ {
    move |kv, _| assert_limit(ctx, kv)
}

fn assert_limit(ctx: &Ctx, kv: &MemoryKv) {
    let Some(limit) = ctx.policy.session_limit else {
        return;
    };
    let max = usize::try_from(limit.max_active()).expect("small");
    for user in all_users() {
        let active = kv.index_len(&ctx.keys.user_active_sessions_key(&user));
        let allowed = ctx
            .over_limit
            .get(user.as_str())
            .copied()
            .unwrap_or(0)
            .max(max);
        assert!(
            active <= allowed,
            "{user} holds {active} active sessions, limit {max} (allowed {allowed}): {:?}",
            kv.index_range(&ctx.keys.user_active_sessions_key(&user), None)
        );
    }
}

/// After a step: the users above the limit may hold only as many active
/// sessions as they hold now.
fn shrink_over_limit(ctx: &mut Ctx, kv: &MemoryKv) {
    let Some(limit) = ctx.policy.session_limit else {
        return;
    };
    let max = usize::try_from(limit.max_active()).expect("small");
    let keys = ctx.keys.clone();
    ctx.over_limit.retain(|user, allowed| {
        let user = UserId::parse(user.as_str()).expect("a user of the alphabet");
        *allowed = (*allowed).min(kv.index_len(&keys.user_active_sessions_key(&user)));
        *allowed > max
    });
}

/// Revoke all never fails open, whatever the damage: afterwards no
/// decodable active session of `user` reachable from either of its indexes
/// at the start is still active (each revoked no earlier than created),
/// and every active-index member left from the start is named (or the
/// index itself is). Runs on a copy of `kv`.
fn assert_revoke_all_fails_safe(ctx: &Ctx, kv: &MemoryKv, user: &UserId) {
    let keys = &ctx.keys;
    let input = RevokeUserSessionsInput {
        user_id: user.clone(),
        revocation: revocation(ctx.now, 0).expect("valid instant"),
    };
    let mut after = kv.clone();
    let run = op::run(
        &mut after,
        RevokeAll::new(keys, ctx.policy, input, false),
        MAX_ATTEMPTS,
    );
    let report = match run {
        Ok(report) => {
            assert!(report.unrevocable.is_empty(), "{report:?}");
            report
        }
        Err(TransitionError::PartiallyRevoked(report)) => *report,
        // Contention cannot happen here: no one else writes.
        Err(e) => panic!("revoke all on damage: {} {e}", e.kind()),
    };
    let active_key = keys.user_active_sessions_key(user);
    for index in [active_key.clone(), keys.user_sessions_key(user)] {
        for (member, _) in kv.index_range(&index, None) {
            let Some(sid) = std::str::from_utf8(&member)
                .ok()
                .and_then(|t| DeviceSessionId::parse(t).ok())
            else {
                continue;
            };
            let record_key = keys.record_key(user, &sid);
            let Some(was) = kv
                .get(&record_key)
                .and_then(|b| codec::decode(&sid, b).ok())
            else {
                continue;
            };
            if was.user_id() != user || !was.is_active() {
                continue;
            }
            let now = after
                .get(&record_key)
                .and_then(|b| codec::decode(&sid, b).ok())
                .unwrap_or_else(|| panic!("{record_key} lost by revoke all"));
            let revocation = now
                .revocation()
                .unwrap_or_else(|| panic!("revoke all left {sid:?} active: {report:?}"));
            assert!(revocation.at() >= now.created_at());
        }
    }
    let index_named = report.unrevocable.iter().any(|u| u.key == active_key);
    let before: Vec<Vec<u8>> = kv
        .index_range(&active_key, None)
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    for (member, _) in after.index_range(&active_key, None) {
        if !before.contains(&member) {
            continue;
        }
        let text = String::from_utf8_lossy(&member).into_owned();
        let named = report
            .unrevocable
            .iter()
            .any(|u| u.member.as_deref() == Some(text.as_str()));
        assert!(
            named || index_named,
            "revoke all left {text:?} in {active_key} unnamed: {report:?}"
        );
    }
}

/// Kinds that report damaged stored data.
fn is_corruption_kind(kind: &str) -> bool {
    matches!(
        kind,
        "corrupt_record"
            | "foreign_record"
            | "corrupt_owner"
            | "wrong_type"
            | "invalid_index_member"
            | "dangling_index_member"
            | "foreign_index_member"
            | "inactive_index_member"
    )
}

/// On damage, an operation answers, reports corruption, or refuses as its
/// input calls for (not found, conflict, the limit, a revocation before
/// creation).
fn assert_survivable(outcome: &Outcome) {
    if let Some(kind) = error_kind(outcome) {
        assert!(
            is_corruption_kind(kind)
                || matches!(
                    kind,
                    "not_found"
                        | "conflict"
                        | "session_limit"
                        | "revoked_before_created"
                        // revoke all: every valid session revoked, the
                        // damage named.
                        | "partially_revoked"
                ),
            "{kind} on a damaged state: {outcome:?}"
        );
    }
}

/// Applies `tamper` to `kv`.
fn apply_tamper(ctx: &Ctx, kv: &mut MemoryKv, tamper: &Tamper) {
    let keys = &ctx.keys;
    // The record key an id resolves to now (tagged: through its owner).
    let record_key = |kv: &MemoryKv, id: &DeviceSessionId, fallback: u8| -> String {
        match keys.owner_key(id) {
            None => keys.session_key(id),
            Some(owner_key) => {
                let owner = kv
                    .get(&owner_key)
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .and_then(|t| UserId::parse(t).ok())
                    .unwrap_or_else(|| user(fallback));
                keys.record_key(&owner, id)
            }
        }
    };
    match *tamper {
        Tamper::DropIndexEntry {
            user: w,
            id: i,
            index,
        } => {
            let key = ctx.index_key(&user(w), index);
            let mut members = kv.index_range(&key, None);
            members.retain(|(m, _)| m.as_slice() != id(i).as_str().as_bytes());
            if kv.key_type(&key) == Some(KeyType::SortedSet) {
                kv.delete_raw(&key);
                for (m, s) in members {
                    kv.index_add_raw(key.clone(), m, s);
                }
            }
        }
        Tamper::AddIndexEntry {
            user: w,
            id: i,
            index,
            at,
        } => {
            let key = ctx.index_key(&user(w), index);
            let s = ctx.at(at).map_or(0.0, score);
            kv.index_add_raw(key, id(i).as_str().as_bytes().to_vec(), s);
        }
        Tamper::PlantBadMember {
            user: w,
            index,
            member,
        } => {
            let key = ctx.index_key(&user(w), index);
            kv.index_add_raw(key, pick(BAD_MEMBERS, member).to_vec(), score(ctx.now));
        }
        Tamper::DeleteRecord { id: i } => {
            let key = record_key(kv, &id(i), 0);
            kv.delete_raw(&key);
        }
        Tamper::CorruptRecord {
            id: i,
            payload,
            user: w,
        } => {
            let key = record_key(kv, &id(i), w);
            let index = usize::from(payload) % (CORRUPT_PAYLOADS.len() + 1);
            let bytes = match CORRUPT_PAYLOADS.get(index) {
                Some(bytes) => bytes.to_vec(),
                None => {
                    // Another user's valid record for this id.
                    let owner = kv
                        .get(&key)
                        .and_then(|b| codec::decode(&id(i), b).ok())
                        .map(|s| s.user_id().clone());
                    let mut other = user(w);
                    if owner.as_ref() == Some(&other) {
                        other = user(next_user(w));
                    }
                    // Revoked, so that healing it does not take the user
                    // past the limit.
                    let created = if ctx.now.is_go_zero() {
                        Timestamp::from_unix_nanos(0).expect("the epoch")
                    } else {
                        ctx.now
                    };
                    let session =
                        Session::active(id(i), other, ClientPublicKey::from([9; 32]), created)
                            .and_then(|s| s.revoked(revocation(created, w)?))
                            .expect("a valid instant");
                    codec::encode(&session)
                }
            };
            kv.delete_raw(&key);
            kv.set_raw(key, bytes);
        }
        Tamper::CorruptOwner { id: i, value } => {
            let Some(owner_key) = keys.owner_key(&id(i)) else {
                return;
            };
            match value % 4 {
                0 => kv.set_raw(owner_key, b"\xff\xfe".to_vec()),
                1 => kv.set_raw(owner_key, b" ".to_vec()),
                2 => kv.set_raw(owner_key, user(value / 4).as_str()),
                _ => {
                    kv.delete_raw(&owner_key);
                    kv.index_add_raw(owner_key, b"m".to_vec(), 1.0);
                }
            }
        }
        Tamper::SortedSetAtRecord { id: i, user: w } => {
            let key = record_key(kv, &id(i), w);
            kv.delete_raw(&key);
            kv.index_add_raw(key, b"m".to_vec(), 1.0);
        }
        Tamper::StringAtIndex { user: w, index } => {
            let key = ctx.index_key(&user(w), index);
            kv.delete_raw(&key);
            kv.set_raw(key, b"x".to_vec());
        }
    }
}
