//! `revoke all`: every session of a user that is active when the call
//! begins, whatever its creation time, in atomic batches — and what cannot
//! be revoked is named, never a reason to stop.

use std::collections::BTreeSet;

use crate::codec;
use crate::ids::DeviceSessionId;
use crate::keys::{IndexScore, KeySpace};
use crate::op::decode::member_id;
use crate::op::maintenance::walk::{IndexWalk, Window};
use crate::op::replies::{range_members, values, violated_key, wrong_type};
use crate::op::revoke::revoke_writes;
use crate::op::{
    applied, out_of_sequence, replies, Input, Operation, Policy, Step, TransitionError,
};
use crate::order::sort_newest_first;
use crate::plan::{
    Applied, IndexRange, KeyType, Member, OnViolation, Outline, Plan, Precondition, Read, Reply,
    ScoreBound, Write,
};
use crate::session::{RevokeUserSessionsInput, RevokeUserSessionsOutcome, Session};

/// What a `revoke all` did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RevokeAllReport {
    /// The sessions revoked, newest first (empty when not collected).
    pub revoked: Vec<Session>,
    /// How many sessions were revoked.
    pub count: u64,
    /// How many batches were applied.
    pub batches: u64,
    /// Index drift found and repaired on the way: active sessions missing
    /// from the active index (found through the all-sessions index and
    /// revoked; also counted in `count`), and revoked sessions left in the
    /// active index (taken out of it).
    pub drift_repaired: u64,
    /// What could not be revoked, each with why; empty when the call
    /// revoked everything ([`RevokeAllReport::into_result`]).
    pub unrevocable: Vec<Unrevocable>,
}

/// One index member or key that `revoke all` could not revoke.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Unrevocable {
    /// The key concerned: the record, or the index itself.
    pub key: String,
    /// The index member (a session id; lossily shown when not UTF-8), when
    /// the problem is one member's.
    pub member: Option<String>,
    /// Why, as a stable kind: `corrupt_record` (undecodable),
    /// `foreign_index_member` (another user's), `dangling_index_member`
    /// (no record), `wrong_type` (the key holds another type),
    /// `invalid_index_member` (not a session id).
    pub reason: &'static str,
    /// The same in words, one line.
    pub message: String,
}

impl Unrevocable {
    fn of(error: &TransitionError, key: &str, member: Option<&[u8]>) -> Self {
        Self {
            key: key.to_owned(),
            member: member.map(|m| String::from_utf8_lossy(m).into_owned()),
            reason: error.kind(),
            // Messages are one line; keep it so whatever a member holds.
            message: error.to_string().replace(['\n', '\r'], " "),
        }
    }
}

impl RevokeAllReport {
    /// The outcome of the classic form (`Revoked` with every session, or
    /// `NoActiveSessions`).
    pub fn into_outcome(self) -> RevokeUserSessionsOutcome {
        if self.revoked.is_empty() {
            RevokeUserSessionsOutcome::NoActiveSessions
        } else {
            RevokeUserSessionsOutcome::Revoked(self.revoked)
        }
    }

    /// The one rule for the call's result: anything unrevocable makes it
    /// [`TransitionError::PartiallyRevoked`] (carrying this report), never
    /// a success.
    pub fn into_result(self) -> Result<Self, TransitionError> {
        if self.unrevocable.is_empty() {
            Ok(self)
        } else {
            Err(TransitionError::PartiallyRevoked(Box::new(self)))
        }
    }

    /// One line: what was revoked, what was not.
    pub fn summary(&self) -> String {
        let mut text = format!("revoked {} session(s)", self.count);
        if self.drift_repaired > 0 {
            text.push_str(&format!(
                " (repaired {} index drift entr{})",
                self.drift_repaired,
                if self.drift_repaired == 1 { "y" } else { "ies" }
            ));
        }
        if let Some(first) = self.unrevocable.first() {
            text.push_str(&format!(
                "; {} could not be revoked, first {} ({})",
                self.unrevocable.len(),
                first.member.as_deref().unwrap_or(&first.key),
                first.reason
            ));
        }
        text
    }

    /// Names `item`, once.
    fn name(&mut self, item: Unrevocable) {
        if !self
            .unrevocable
            .iter()
            .any(|u| u.key == item.key && u.member == item.member)
        {
            self.unrevocable.push(item);
        }
    }
}

/// Revokes every session of the user that was active in its indexes when
/// the call began, whatever its `created_at`, batch by batch (each batch's
/// records and index entries change together).
///
/// **Existence decides, not clocks.** The first round trip reads the
/// highest score of the active and the all-sessions index; the walks stop
/// there (or at the revocation's own score, if higher), so every session
/// present at the start is in reach and the call ends even while sessions
/// keep being created (those may stay active). A session created after
/// `revocation.at` (a clock ahead of the caller's) is revoked at its own
/// creation time, so the record stays valid.
///
/// **The active walk**: each batch reads at most [`Policy::batch_size`]
/// members of the active index (oldest first) scored up to that bound,
/// their records, and applies one plan guarded only by those members still
/// being active (a record changes only together with its active-index
/// entry) — on the last batch, by the range still holding exactly the
/// members read, so a session created concurrently within the bound is
/// never missed (not even when another one in range is revoked meanwhile
/// and makes room for it).
///
/// **The all-sessions walk** ([`IndexWalk`], a window per read) then reads
/// the records of the members not in the active index: an active session
/// there is drift (an eviction, a foreign writer, a refused write) and is
/// revoked in a plan guarded by its record's bytes.
///
/// **One bad record shields nothing.** A member whose record is missing
/// or another user's (confirmed on one consistent read, so a race is
/// retried instead), an undecodable record, a member that is no session id
/// and an index or record of the wrong type are named in
/// [`RevokeAllReport::unrevocable`] and skipped; members left in the active
/// index this way make every later read ask for that many more, so they
/// never fill a batch. The result is then
/// [`TransitionError::PartiallyRevoked`].
///
/// Interrupted (crash, timeout), every batch is whole; running it again
/// finishes the rest and never rewrites a session already revoked. A
/// driver may also [`RevokeAll::restart`] it after a lost answer.
///
/// Round trips: the first reads the bounds, the first active batch and
/// the first all-sessions window together; then 2 more for that batch
/// (records, plan) and 3 per further batch; then about 1 per all-sessions
/// window (its records, active scores and the next window share one), plus
/// one plan per window holding drift. A user with fewer sessions than a
/// batch: 4 (1 when it has none, 2 when none is active).
#[derive(Debug)]
pub struct RevokeAll {
    keys: KeySpace,
    policy: Policy,
    input: RevokeUserSessionsInput,
    collect: bool,
    report: RevokeAllReport,
    /// The highest score in either index at the start (or the revocation's
    /// own score, if higher): the walks end there.
    bound: IndexScore,
    /// Active-index members named and left in place: still in every range
    /// read, so each read asks for that many more.
    skipped: BTreeSet<Member>,
    /// Keys found holding another type: neither read nor written again.
    wrong: BTreeSet<String>,
    /// The all-sessions walk.
    walk: IndexWalk,
    /// The next all-sessions window, read ahead with the last records.
    ahead: Option<Reply>,
    state: State,
}

/// One member to handle: its bytes, id and record key.
type Todo = (Member, DeviceSessionId, String);

/// A batch's records, sorted by what becomes of them.
#[derive(Default)]
struct Sorted {
    /// Missing or another user's: confirmed by `suspect_checks` first.
    suspects: Vec<(Member, String, TransitionError)>,
    suspect_checks: Vec<Precondition>,
    /// Active: revoked.
    actives: Vec<(Member, Session, String)>,
    /// Revoked but in the active index: out of it.
    cleared: Vec<(Member, String, Vec<u8>)>,
}

#[derive(Debug)]
enum State {
    Bounds,
    BoundsRead,
    Batch,
    Index,
    Records {
        /// Every member the range read returned (the last batch's guard).
        members: Vec<Member>,
        todo: Vec<Todo>,
        last: bool,
    },
    Confirm {
        plan: Outline,
        suspects: Vec<(Member, String, TransitionError)>,
    },
    Applying {
        plan: Outline,
        sessions: Vec<Session>,
        /// Revoked records taken out of the active index.
        cleared: u64,
        record_keys: Vec<(String, Member)>,
        last: bool,
    },
    Window,
    WindowRead,
    Drift {
        pending: Vec<Todo>,
        done_after: bool,
        /// The reply to a window read rides along.
        ahead: bool,
    },
    DriftApplying {
        plan: Outline,
        sessions: Vec<Session>,
        pending: Vec<Todo>,
        done_after: bool,
    },
    Finished,
}

impl RevokeAll {
    /// Revokes with `input`; `collect`: keep every revoked session for the
    /// report (else only count them, in constant memory).
    pub fn new(
        keys: &KeySpace,
        policy: Policy,
        input: RevokeUserSessionsInput,
        collect: bool,
    ) -> Self {
        let walk = IndexWalk::new(keys.user_sessions_key(&input.user_id));
        Self {
            keys: keys.clone(),
            policy,
            bound: IndexScore::of(input.revocation.at()),
            input,
            collect,
            report: RevokeAllReport::default(),
            skipped: BTreeSet::new(),
            wrong: BTreeSet::new(),
            walk,
            ahead: None,
            state: State::Bounds,
        }
    }

    /// What was done so far (for a caller that gives up part-way: how many
    /// were revoked, and what could not be).
    pub fn report(&self) -> &RevokeAllReport {
        &self.report
    }

    /// The answer to the last step was lost (a dropped connection, a
    /// timeout): the next [`Operation::resume`] (with [`Input::Resumed`] or
    /// [`Input::Start`]) reads again from where the walk stands. Every batch is idempotent:
    /// a plan that was applied after all is found done on the re-read (its
    /// sessions are then not counted again).
    pub fn restart(&mut self) {
        self.ahead = None;
        self.state = match std::mem::replace(&mut self.state, State::Finished) {
            State::Bounds | State::BoundsRead => State::Bounds,
            State::Batch
            | State::Index
            | State::Records { .. }
            | State::Confirm { .. }
            | State::Applying { .. } => State::Batch,
            State::Window | State::WindowRead => State::Window,
            State::Drift {
                pending,
                done_after,
                ..
            }
            | State::DriftApplying {
                pending,
                done_after,
                ..
            } => State::Drift {
                pending,
                done_after,
                ahead: false,
            },
            State::Finished => State::Finished,
        };
    }

    fn active_key(&self) -> String {
        self.keys.user_active_sessions_key(&self.input.user_id)
    }

    fn all_key(&self) -> String {
        self.keys.user_sessions_key(&self.input.user_id)
    }

    fn batch(&self) -> usize {
        self.policy.batch_size.get()
    }

    /// Members to read for one batch: the batch plus the skipped ones.
    fn read_limit(&self) -> usize {
        self.batch().saturating_add(self.skipped.len())
    }

    fn finish(&mut self) -> Result<Step<RevokeAllReport>, TransitionError> {
        self.state = State::Finished;
        let mut report = std::mem::take(&mut self.report);
        sort_newest_first(&mut report.revoked);
        report.into_result().map(Step::Done)
    }

    /// `key` holds another type: named, and left alone from now on.
    fn name_wrong_type(&mut self, key: &str, expected: KeyType) {
        let error = TransitionError::WrongType {
            key: key.to_owned(),
            expected,
        };
        self.report.name(Unrevocable::of(&error, key, None));
        self.wrong.insert(key.to_owned());
    }

    /// The writes that revoke `next`, without those to keys found of the
    /// wrong type (they would refuse the whole plan).
    fn writes_for(&self, next: &Session, record_key: String, out: &mut Vec<Write>) {
        let from = out.len();
        revoke_writes(&self.keys, &self.policy, next, record_key, out);
        if !self.wrong.is_empty() {
            let mut i = from;
            while i < out.len() {
                if out.get(i).is_some_and(|w| self.wrong.contains(w.key())) {
                    out.remove(i);
                } else {
                    i += 1;
                }
            }
        }
    }

    fn read_batch(&mut self) -> Result<Step<RevokeAllReport>, TransitionError> {
        if self.wrong.contains(&self.active_key()) {
            return self.read_window();
        }
        self.state = State::Index;
        Ok(Step::Read(vec![Read::IndexRange(IndexRange {
            key: self.active_key(),
            min: ScoreBound::Unbounded,
            max: ScoreBound::Inclusive(self.bound),
            newest_first: false,
            limit: Some(self.read_limit()),
            with_scores: false,
        })]))
    }

    fn read_window(&mut self) -> Result<Step<RevokeAllReport>, TransitionError> {
        if self.wrong.contains(&self.all_key()) {
            return self.finish();
        }
        if let Some(reply) = self.ahead.take() {
            return self.window(Some(reply));
        }
        self.state = State::WindowRead;
        Ok(Step::Read(vec![self.walk.read(self.batch())]))
    }

    /// The reads of `pending`'s records and active-index scores (and the
    /// next window, unless this is the last).
    fn read_drift(
        &mut self,
        pending: Vec<Todo>,
        done_after: bool,
    ) -> Result<Step<RevokeAllReport>, TransitionError> {
        let mut reads = vec![Read::Values {
            keys: pending.iter().map(|(_, _, k)| k.clone()).collect(),
        }];
        if !self.wrong.contains(&self.active_key()) {
            reads.push(Read::IndexScores {
                key: self.active_key(),
                members: pending.iter().map(|(m, _, _)| m.clone()).collect(),
            });
        }
        let ahead = !done_after && self.ahead.is_none();
        if ahead {
            reads.push(self.walk.read(self.batch()));
        }
        self.state = State::Drift {
            pending,
            done_after,
            ahead,
        };
        Ok(Step::Read(reads))
    }

    /// The first round trip: the highest score of each index, the first
    /// active batch (not yet bounded: filtered below) and the first
    /// all-sessions window (kept for when the active walk is done).
    fn read_bounds(&mut self) -> Step<RevokeAllReport> {
        self.state = State::BoundsRead;
        let newest = |key| {
            Read::IndexRange(IndexRange {
                key,
                min: ScoreBound::Unbounded,
                max: ScoreBound::Unbounded,
                newest_first: true,
                limit: Some(1),
                with_scores: true,
            })
        };
        Step::Read(vec![
            newest(self.active_key()),
            newest(self.all_key()),
            Read::IndexRange(IndexRange {
                key: self.active_key(),
                min: ScoreBound::Unbounded,
                max: ScoreBound::Unbounded,
                newest_first: false,
                limit: Some(self.read_limit()),
                with_scores: true,
            }),
            self.walk.read(self.batch()),
        ])
    }

    /// After the first round trip: the bound, then the first batch.
    fn bounds(&mut self, input: Input) -> Result<Step<RevokeAllReport>, TransitionError> {
        let mut replies = replies(input, "revoke_all")?.into_iter();
        let mut empty = [false, false];
        for (i, key) in [self.active_key(), self.all_key()].into_iter().enumerate() {
            match replies.next() {
                Some(Reply::Members(members)) => {
                    if let Some((_, score)) = members.first() {
                        if *score > self.bound.as_f64() {
                            self.bound = IndexScore::from_f64(*score);
                        }
                    } else if let Some(e) = empty.get_mut(i) {
                        *e = true;
                    }
                }
                Some(Reply::WrongType) => self.name_wrong_type(&key, KeyType::SortedSet),
                _ => return out_of_sequence("revoke_all"),
            }
        }
        let first = replies.next();
        self.ahead = replies.next();
        if empty == [true, true] {
            return self.finish();
        }
        if self.wrong.contains(&self.active_key()) {
            return self.read_window();
        }
        let active_key = self.active_key();
        let scored = match first {
            Some(Reply::Members(members)) => members,
            Some(Reply::WrongType) => {
                // Replaced since the bounds were read: read again.
                self.state = State::Bounds;
                return Ok(Step::Backoff { key: active_key });
            }
            _ => return out_of_sequence("revoke_all"),
        };
        // Members above the bound came after it was read (the reads of a
        // round trip are not one snapshot): past the walk's end.
        let mut last = scored.len() < self.read_limit();
        let mut members = Vec::with_capacity(scored.len());
        for (member, score) in scored {
            if score > self.bound.as_f64() {
                last = true;
                break;
            }
            members.push(member);
        }
        self.batch_members(members, last)
    }

    /// After an active range read.
    fn index(&mut self, input: Input) -> Result<Step<RevokeAllReport>, TransitionError> {
        let active_key = self.active_key();
        let members = match range_members(
            replies(input, "revoke_all")?.into_iter().next(),
            &active_key,
            "revoke_all",
        ) {
            Ok(members) => members,
            Err(TransitionError::WrongType { .. }) => {
                self.name_wrong_type(&active_key, KeyType::SortedSet);
                return self.read_window();
            }
            Err(e) => return Err(e),
        };
        let last = members.len() < self.read_limit();
        self.batch_members(members, last)
    }

    /// The members of one active batch (every member of the range read,
    /// oldest first): read the records of those not skipped.
    fn batch_members(
        &mut self,
        members: Vec<Member>,
        last: bool,
    ) -> Result<Step<RevokeAllReport>, TransitionError> {
        let active_key = self.active_key();
        let mut todo = Vec::with_capacity(members.len().min(self.batch()));
        for member in &members {
            if self.skipped.contains(member) {
                continue;
            }
            match member_id(&active_key, member) {
                Ok(id) => {
                    let key = self.keys.record_key(&self.input.user_id, &id);
                    todo.push((member.clone(), id, key));
                }
                Err(error) => {
                    self.report
                        .name(Unrevocable::of(&error, &active_key, Some(member)));
                    self.skipped.insert(member.clone());
                }
            }
        }
        if todo.is_empty() {
            return if last {
                self.read_window()
            } else {
                self.read_batch()
            };
        }
        let read = Read::Values {
            keys: todo.iter().map(|(_, _, k)| k.clone()).collect(),
        };
        self.state = State::Records {
            members,
            todo,
            last,
        };
        Ok(Step::Read(vec![read]))
    }

    /// After the records of an active batch.
    fn records(
        &mut self,
        input: Input,
        members: Vec<Member>,
        todo: Vec<Todo>,
        last: bool,
    ) -> Result<Step<RevokeAllReport>, TransitionError> {
        let records = values(
            replies(input, "revoke_all")?.into_iter().next(),
            "revoke_all",
        )?;
        let Sorted {
            suspects,
            suspect_checks,
            actives,
            cleared,
        } = self.sort(todo, records);
        if !suspects.is_empty() {
            let active_key = self.active_key();
            // Missing or another user's: a race or the real state? One
            // consistent read decides; the batch is read again after.
            let mut plan = Plan::new(
                vec![Precondition::IndexContains {
                    key: active_key,
                    members: suspects.iter().map(|(m, _, _)| m.clone()).collect(),
                }],
                Vec::new(),
                OnViolation::Retry,
            );
            for check in suspect_checks {
                plan = plan.require(check, OnViolation::Retry);
            }
            self.state = State::Confirm {
                plan: plan.outline(),
                suspects,
            };
            return Ok(Step::Apply(plan));
        }
        self.batch_plan(members, actives, cleared, last)
    }

    /// Sorts the batch's records: actives to revoke, revoked ones to clear
    /// from the active index, suspects to confirm; undecodable ones are
    /// named and skipped.
    fn sort(&mut self, todo: Vec<Todo>, records: Vec<Option<Vec<u8>>>) -> Sorted {
        let active_key = self.active_key();
        let user = self.input.user_id.clone();
        let mut records = records.into_iter();
        let mut sorted = Sorted::default();
        for (member, id, record_key) in todo {
            let Some(bytes) = records.next().flatten() else {
                let error = TransitionError::DanglingIndexMember {
                    index_key: active_key.clone(),
                    member: id.as_str().to_owned(),
                    record_key: record_key.clone(),
                };
                sorted.suspect_checks.push(Precondition::Absent {
                    key: record_key.clone(),
                });
                sorted.suspects.push((member, record_key, error));
                continue;
            };
            match codec::decode(&id, &bytes) {
                Err(source) => {
                    // Never a race: no writer stores undecodable bytes.
                    let error = TransitionError::CorruptRecord {
                        key: record_key.clone(),
                        source,
                    };
                    self.report
                        .name(Unrevocable::of(&error, &record_key, Some(&member)));
                    self.skipped.insert(member);
                }
                Ok(session) if session.user_id() != &user => {
                    let error = TransitionError::ForeignIndexMember {
                        index_key: active_key.clone(),
                        member: id.as_str().to_owned(),
                        owner: session.user_id().as_str().to_owned(),
                    };
                    sorted.suspect_checks.push(Precondition::ValueEquals {
                        key: record_key.clone(),
                        value: bytes,
                    });
                    sorted.suspects.push((member, record_key, error));
                }
                Ok(session) if !session.is_active() => {
                    sorted.cleared.push((member, record_key, bytes))
                }
                Ok(session) => sorted.actives.push((member, session, record_key)),
            }
        }
        sorted
    }

    /// The batch's plan: revoke the actives, clear the revoked ones, as
    /// long as the active index still holds what was read.
    fn batch_plan(
        &mut self,
        members: Vec<Member>,
        mut actives: Vec<(Member, Session, String)>,
        cleared: Vec<(Member, String, Vec<u8>)>,
        mut last: bool,
    ) -> Result<Step<RevokeAllReport>, TransitionError> {
        let active_key = self.active_key();
        let batch = self.batch();
        if actives.len() > batch {
            // Sessions revoked meanwhile made room for more than a batch:
            // the rest is the next batch's.
            actives.truncate(batch);
            last = false;
        }
        if actives.is_empty() && cleared.is_empty() {
            return if last {
                self.read_window()
            } else {
                self.read_batch()
            };
        }
        let mut writes = Vec::with_capacity(actives.len() * 3 + cleared.len());
        let mut preconditions = Vec::with_capacity(1 + cleared.len());
        preconditions.push(if last {
            // The whole range was read: it must still hold exactly what
            // was read. (As many members as were read is not enough: one
            // revoked meanwhile would make room for one just created.)
            Precondition::IndexRangeEquals {
                key: active_key.clone(),
                max_score: Some(self.bound),
                members,
            }
        } else {
            Precondition::IndexContains {
                key: active_key.clone(),
                members: actives
                    .iter()
                    .map(|(m, _, _)| m.clone())
                    .chain(cleared.iter().map(|(m, _, _)| m.clone()))
                    .collect(),
            }
        });
        let mut record_keys = Vec::with_capacity(actives.len() + cleared.len());
        let mut sessions = Vec::with_capacity(actives.len());
        for (member, session, record_key) in actives {
            let next = session.revoked_no_earlier_than_creation(self.input.revocation.clone());
            record_keys.push((record_key.clone(), member));
            self.writes_for(&next, record_key, &mut writes);
            sessions.push(next);
        }
        let cleared_count = u64::try_from(cleared.len()).unwrap_or(u64::MAX);
        for (member, record_key, bytes) in cleared {
            // A revoked record left in the active index: out of it, as
            // long as the record is still the one read.
            preconditions.push(Precondition::ValueEquals {
                key: record_key.clone(),
                value: bytes,
            });
            writes.push(Write::IndexRemove {
                key: active_key.clone(),
                member: member.clone(),
            });
            record_keys.push((record_key, member));
        }
        let plan = Plan::new(preconditions, writes, OnViolation::Retry);
        self.state = State::Applying {
            plan: plan.outline(),
            sessions,
            cleared: cleared_count,
            record_keys,
            last,
        };
        Ok(Step::Apply(plan))
    }

    /// A batch's plan answered: `done` when it applied; a violated one
    /// reads the batch again after a backoff; a wrong type at one of the
    /// plan's own keys is named and the walk goes on.
    fn answered(
        &mut self,
        plan: &Outline,
        applied: Applied,
        record_keys: &[(String, Member)],
        done: impl FnOnce(&mut Self) -> Result<Step<RevokeAllReport>, TransitionError>,
    ) -> Result<Step<RevokeAllReport>, TransitionError> {
        match applied {
            Applied::Done => done(self),
            Applied::Violated { index } => {
                self.state = State::Batch;
                Ok(Step::Backoff {
                    key: violated_key(plan, index),
                })
            }
            Applied::WrongType { key } => {
                if self.wrong_type_at(&key, record_keys) {
                    self.read_batch()
                } else {
                    Err(wrong_type(plan, key))
                }
            }
        }
    }

    /// A plan answered `WrongType` at `key`: the index is named and left
    /// alone, or the record's member named and skipped; `false` when the
    /// key is none of the plan's own.
    fn wrong_type_at(&mut self, key: &str, record_keys: &[(String, Member)]) -> bool {
        if key == self.active_key()
            || key == self.all_key()
            || key == self.keys.user_revoked_sessions_key(&self.input.user_id)
        {
            self.name_wrong_type(key, KeyType::SortedSet);
            return true;
        }
        match record_keys.iter().find(|(k, _)| k == key) {
            Some((_, member)) => {
                let error = TransitionError::WrongType {
                    key: key.to_owned(),
                    expected: KeyType::String,
                };
                self.report.name(Unrevocable::of(&error, key, Some(member)));
                self.skipped.insert(member.clone());
                true
            }
            None => false,
        }
    }

    /// An all-sessions window (read now or ahead).
    fn window(&mut self, reply: Option<Reply>) -> Result<Step<RevokeAllReport>, TransitionError> {
        let all_key = self.all_key();
        let window = match reply {
            Some(Reply::Members(members)) => members,
            Some(Reply::WrongType) => {
                self.name_wrong_type(&all_key, KeyType::SortedSet);
                return self.finish();
            }
            _ => return out_of_sequence("revoke_all"),
        };
        let (members, last) = match self.walk.advance(window, self.batch()) {
            Window::Members { members, last } => (members, last),
            Window::Again => return self.read_window(),
        };
        let mut pending = Vec::with_capacity(members.len());
        let mut past = false;
        for (member, score) in members {
            if score > self.bound.as_f64() {
                // Added after the start: the walk ends here.
                past = true;
                break;
            }
            // A member that is no session id names no record to revoke.
            if let Ok(id) = member_id(&all_key, &member) {
                let key = self.keys.record_key(&self.input.user_id, &id);
                pending.push((member, id, key));
            }
        }
        let done_after = last || past;
        if done_after {
            self.ahead = None;
        }
        if pending.is_empty() {
            return if done_after {
                self.finish()
            } else {
                self.read_window()
            };
        }
        self.read_drift(pending, done_after)
    }

    /// After the records (and active scores) of a window's members.
    fn drift(
        &mut self,
        input: Input,
        pending: Vec<Todo>,
        done_after: bool,
        ahead: bool,
    ) -> Result<Step<RevokeAllReport>, TransitionError> {
        let active_key = self.active_key();
        let mut replies = replies(input, "revoke_all")?.into_iter();
        let records = values(replies.next(), "revoke_all")?;
        let scores = if self.wrong.contains(&active_key) {
            None
        } else {
            match replies.next() {
                Some(Reply::Scores(scores)) => Some(scores),
                Some(Reply::WrongType) => {
                    self.name_wrong_type(&active_key, KeyType::SortedSet);
                    None
                }
                _ => return out_of_sequence("revoke_all"),
            }
        };
        if ahead {
            self.ahead = replies.next();
        }
        let mut preconditions = Vec::new();
        let mut writes = Vec::new();
        let mut sessions = Vec::new();
        for (i, ((member, id, record_key), stored)) in pending.iter().zip(records).enumerate() {
            let in_active = scores
                .as_ref()
                .and_then(|s| s.get(i).copied().flatten())
                .is_some();
            // In the active index: the active walk's (or created since).
            // No record, or another user's: no session of this user.
            let (false, Some(bytes)) = (in_active, stored) else {
                continue;
            };
            let session = match codec::decode(id, &bytes) {
                Ok(session) => session,
                Err(source) => {
                    let error = TransitionError::CorruptRecord {
                        key: record_key.clone(),
                        source,
                    };
                    self.report
                        .name(Unrevocable::of(&error, record_key, Some(member)));
                    continue;
                }
            };
            if session.user_id() != &self.input.user_id || !session.is_active() {
                continue;
            }
            let next = session.revoked_no_earlier_than_creation(self.input.revocation.clone());
            preconditions.push(Precondition::ValueEquals {
                key: record_key.clone(),
                value: bytes,
            });
            self.writes_for(&next, record_key.clone(), &mut writes);
            sessions.push(next);
        }
        if sessions.is_empty() {
            return if done_after {
                self.finish()
            } else {
                self.read_window()
            };
        }
        let plan = Plan::new(preconditions, writes, OnViolation::Retry);
        self.state = State::DriftApplying {
            plan: plan.outline(),
            sessions,
            pending,
            done_after,
        };
        Ok(Step::Apply(plan))
    }

    fn revoked(&mut self, sessions: Vec<Session>) {
        self.report.count += u64::try_from(sessions.len()).unwrap_or(u64::MAX);
        self.report.batches += 1;
        if self.collect {
            self.report.revoked.extend(sessions);
        }
    }
}

impl Operation for RevokeAll {
    type Output = RevokeAllReport;

    fn name(&self) -> &'static str {
        "revoke_all"
    }

    fn resume(&mut self, input: Input) -> Result<Step<RevokeAllReport>, TransitionError> {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Bounds => Ok(self.read_bounds()),
            State::BoundsRead => self.bounds(input),
            State::Batch => self.read_batch(),
            State::Index => self.index(input),
            State::Records {
                members,
                todo,
                last,
            } => self.records(input, members, todo, last),
            State::Confirm { plan, suspects } => {
                let applied = applied(input, "revoke_all")?;
                let keys: Vec<(String, Member)> = suspects
                    .iter()
                    .map(|(m, k, _)| (k.clone(), m.clone()))
                    .collect();
                self.answered(&plan, applied, &keys, |this| {
                    for (member, record_key, error) in suspects {
                        this.report
                            .name(Unrevocable::of(&error, &record_key, Some(&member)));
                        this.skipped.insert(member);
                    }
                    this.read_batch()
                })
            }
            State::Applying {
                plan,
                sessions,
                cleared,
                record_keys,
                last,
            } => {
                let applied = applied(input, "revoke_all")?;
                self.answered(&plan, applied, &record_keys, |this| {
                    this.report.drift_repaired += cleared;
                    this.revoked(sessions);
                    if last {
                        this.read_window()
                    } else {
                        this.read_batch()
                    }
                })
            }
            State::Window => self.read_window(),
            State::WindowRead => {
                let reply = replies(input, "revoke_all")?.into_iter().next();
                self.window(reply)
            }
            State::Drift {
                pending,
                done_after,
                ahead,
            } => match input {
                input @ Input::Replies(_) => self.drift(input, pending, done_after, ahead),
                // After a backoff or a restart: read the records again.
                _ => self.read_drift(pending, done_after),
            },
            State::DriftApplying {
                plan,
                sessions,
                pending,
                done_after,
            } => match applied(input, "revoke_all")? {
                Applied::Done => {
                    self.report.drift_repaired += u64::try_from(sessions.len()).unwrap_or(0);
                    self.revoked(sessions);
                    if done_after {
                        self.finish()
                    } else {
                        self.read_window()
                    }
                }
                Applied::Violated { index } => {
                    self.state = State::Drift {
                        pending,
                        done_after,
                        ahead: false,
                    };
                    Ok(Step::Backoff {
                        key: violated_key(&plan, index),
                    })
                }
                Applied::WrongType { key } => {
                    let keys: Vec<(String, Member)> = pending
                        .iter()
                        .map(|(m, _, k)| (k.clone(), m.clone()))
                        .collect();
                    if self.wrong_type_at(&key, &keys) {
                        self.read_drift(pending, done_after)
                    } else {
                        Err(wrong_type(&plan, key))
                    }
                }
            },
            State::Finished => out_of_sequence("revoke_all"),
        }
    }
}

#[cfg(test)]
#[path = "revoke_all_tests.rs"]
mod tests;
