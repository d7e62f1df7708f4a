//! `revoke all`: every active session of a user created at or before the
//! revocation instant, in atomic batches.

use std::collections::BTreeSet;

use crate::ids::DeviceSessionId;
use crate::keys::{IndexScore, KeySpace};
use crate::op::list::{range_members, values};
use crate::op::members::{
    check_members, confirmed, ids_and_keys, revoke_writes, violated_key, wrong_type,
};
use crate::op::{
    applied, out_of_sequence, replies, Input, Operation, Policy, Step, TransitionError,
};
use crate::order::sort_newest_first;
use crate::plan::{
    Applied, IndexRange, OnViolation, Outline, Plan, Precondition, Read, ScoreBound,
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
}

/// Revokes, batch by batch (each batch's records and index entries change
/// together), every active session of the user created at or before
/// `revocation.at`; later ones stay active. Each batch reads at most
/// [`Policy::batch_size`] members of the active index (oldest first), their
/// records, and applies one plan guarded only by those members still being
/// active (a record changes only together with its active-index entry) —
/// on the last batch, by the range still holding exactly the members read,
/// so a session created concurrently at or before the instant is never
/// missed.
///
/// Scores are floored microseconds, so the range also holds the sessions
/// created in the instant's microsecond but after it. They stay active
/// and stay in range: every later read asks for that many more members,
/// so they never fill a batch and hide an older session behind them.
///
/// Interrupted (crash, timeout), every batch is whole; running it again
/// finishes the rest and never rewrites a session already revoked (it is
/// no longer in the active index). 3 round trips per batch.
#[derive(Debug)]
pub struct RevokeAll {
    keys: KeySpace,
    policy: Policy,
    input: RevokeUserSessionsInput,
    collect: bool,
    report: RevokeAllReport,
    /// Active sessions in range (the instant's microsecond score) created
    /// after the instant: left alone, but still in every range read, so
    /// each read asks for that many more members.
    later: BTreeSet<DeviceSessionId>,
    state: RevokeAllState,
}

#[derive(Debug)]
enum RevokeAllState {
    Batch,
    Index,
    Records {
        ids: Vec<DeviceSessionId>,
        record_keys: Vec<String>,
        last: bool,
    },
    Confirm(Plan, TransitionError),
    Applying {
        plan: Outline,
        sessions: Vec<Session>,
        last: bool,
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
        Self {
            keys: keys.clone(),
            policy,
            input,
            collect,
            report: RevokeAllReport::default(),
            later: BTreeSet::new(),
            state: RevokeAllState::Batch,
        }
    }

    fn active_key(&self) -> String {
        self.keys.user_active_sessions_key(&self.input.user_id)
    }

    /// Members to read for one batch: the batch plus the known later ones.
    fn read_limit(&self) -> usize {
        self.policy
            .batch_size
            .get()
            .saturating_add(self.later.len())
    }

    fn max_score(&self) -> IndexScore {
        IndexScore::of(self.input.revocation.at())
    }

    fn finish(&mut self) -> Step<RevokeAllReport> {
        let mut report = std::mem::take(&mut self.report);
        sort_newest_first(&mut report.revoked);
        Step::Done(report)
    }
}

impl Operation for RevokeAll {
    type Output = RevokeAllReport;

    fn name(&self) -> &'static str {
        "revoke_all"
    }

    fn resume(&mut self, input: Input) -> Result<Step<RevokeAllReport>, TransitionError> {
        let active_key = self.active_key();
        match std::mem::replace(&mut self.state, RevokeAllState::Finished) {
            RevokeAllState::Batch => {
                self.state = RevokeAllState::Index;
                // Scores are floored microseconds: the range may include
                // sessions created up to 999 ns after the instant, which
                // are left alone below.
                Ok(Step::Read(vec![Read::IndexRange(IndexRange {
                    key: active_key,
                    min: ScoreBound::Unbounded,
                    max: ScoreBound::Inclusive(self.max_score()),
                    newest_first: false,
                    limit: Some(self.read_limit()),
                    with_scores: false,
                })]))
            }
            RevokeAllState::Index => {
                let members = range_members(
                    replies(input, "revoke_all")?.into_iter().next(),
                    &active_key,
                    "revoke_all",
                )?;
                let last = members.len() < self.read_limit();
                let (ids, record_keys) =
                    ids_and_keys(&self.keys, &self.input.user_id, &active_key, &members)?;
                if ids.is_empty() {
                    return Ok(self.finish());
                }
                let read = Read::Values {
                    keys: record_keys.clone(),
                };
                self.state = RevokeAllState::Records {
                    ids,
                    record_keys,
                    last,
                };
                Ok(Step::Read(vec![read]))
            }
            RevokeAllState::Records {
                ids,
                record_keys,
                last,
            } => {
                let records = values(
                    replies(input, "revoke_all")?.into_iter().next(),
                    "revoke_all",
                )?;
                let sessions = match check_members(
                    &self.input.user_id,
                    &active_key,
                    &ids,
                    &record_keys,
                    records,
                    true,
                )? {
                    Ok(sessions) => sessions,
                    Err((plan, error)) => {
                        self.state = RevokeAllState::Confirm(plan.clone(), error);
                        return Ok(Step::Apply(plan));
                    }
                };
                let at = self.input.revocation.at();
                let batch = self.policy.batch_size.get();
                let mut last = last;
                let mut revoked = Vec::with_capacity(sessions.len().min(batch));
                let mut writes = Vec::with_capacity(sessions.len().min(batch) * 3);
                for ((session, _), record_key) in sessions.into_iter().zip(record_keys) {
                    if session.created_at() > at {
                        self.later.insert(session.id().clone());
                        continue;
                    }
                    if revoked.len() == batch {
                        // Later sessions revoked meanwhile made room for
                        // more than a batch: the rest is the next batch's.
                        last = false;
                        break;
                    }
                    let next = session.revoked(self.input.revocation.clone())?;
                    revoke_writes(&self.keys, &self.policy, &next, record_key, &mut writes);
                    revoked.push(next);
                }
                if revoked.is_empty() {
                    if last {
                        // Only sessions created within the instant's
                        // microsecond but after it remain in range.
                        return Ok(self.finish());
                    }
                    // A whole read of later sessions: read past them.
                    self.state = RevokeAllState::Batch;
                    return self.resume(Input::Resumed);
                }
                let precondition = if last {
                    // The whole range was read: it must still hold exactly
                    // what was read. (As many members as were read is not
                    // enough: a later session revoked meanwhile would make
                    // room for one created before the instant.)
                    Precondition::IndexRangeEquals {
                        key: active_key,
                        max_score: Some(self.max_score()),
                        members: ids
                            .iter()
                            .map(|id| id.as_str().as_bytes().to_vec())
                            .collect(),
                    }
                } else {
                    Precondition::IndexContains {
                        key: active_key,
                        members: revoked
                            .iter()
                            .map(|s| s.id().as_str().as_bytes().to_vec())
                            .collect(),
                    }
                };
                let plan = Plan::new(vec![precondition], writes, OnViolation::Retry);
                self.state = RevokeAllState::Applying {
                    plan: plan.outline(),
                    sessions: revoked,
                    last,
                };
                Ok(Step::Apply(plan))
            }
            RevokeAllState::Confirm(plan, error) => {
                let step = confirmed(&plan, applied(input, "revoke_all")?, error)?;
                self.state = RevokeAllState::Batch;
                Ok(step)
            }
            RevokeAllState::Applying {
                plan,
                sessions,
                last,
            } => match applied(input, "revoke_all")? {
                Applied::Done => {
                    self.report.count += u64::try_from(sessions.len()).unwrap_or(u64::MAX);
                    self.report.batches += 1;
                    if self.collect {
                        self.report.revoked.extend(sessions);
                    }
                    if last {
                        return Ok(self.finish());
                    }
                    self.state = RevokeAllState::Batch;
                    self.resume(Input::Resumed)
                }
                Applied::Violated { index } => {
                    self.state = RevokeAllState::Batch;
                    Ok(Step::Backoff {
                        key: violated_key(&plan, index),
                    })
                }
                Applied::WrongType { key } => Err(wrong_type(&plan, key)),
            },
            RevokeAllState::Finished => out_of_sequence("revoke_all"),
        }
    }
}
