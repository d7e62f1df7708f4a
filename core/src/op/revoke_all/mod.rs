//! `revoke all`: every session of a user that is active when the call
//! begins, whatever its creation time, in atomic batches — and what cannot
//! be revoked is named, never a reason to stop.
//!
//! This file holds the operation, its set-up and the first round trip
//! (the bounds); the two walks and the report live beside it.

mod active;
mod drift;
mod report;

use std::collections::BTreeSet;

use crate::ids::DeviceSessionId;
use crate::keys::{IndexScore, KeySpace};
use crate::op::maintenance::walk::IndexWalk;
use crate::op::revoke::revoke_writes;
use crate::op::{out_of_sequence, replies, Input, Operation, Policy, Step, TransitionError};
use crate::order::sort_newest_first;
use crate::plan::{IndexRange, KeyType, Member, Outline, Read, Reply, ScoreBound, Write};
use crate::session::{RevokeUserSessionsInput, Session};

pub use report::{RevokeAllReport, Unrevocable};

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
/// **The all-sessions walk** (a window of ranks per read, never repeating
/// a member nor skipping one that stays) then reads the records of the
/// members not in the active index: an active session
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
            State::Confirm { plan, suspects } => self.confirmed(input, plan, suspects),
            State::Applying {
                plan,
                sessions,
                cleared,
                record_keys,
                last,
            } => self.batch_applied(input, plan, sessions, cleared, record_keys, last),
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
            } => self.drift_applied(input, plan, sessions, pending, done_after),
            State::Finished => out_of_sequence("revoke_all"),
        }
    }
}

#[cfg(test)]
mod tests;
