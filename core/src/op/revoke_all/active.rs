//! The active walk of `revoke all`: batches of the active index, oldest
//! first — members, their records, sorted into revoke / clear / confirm,
//! one guarded plan per batch. Apart from the all-sessions walk because
//! it guards on the index, not on record bytes.

use crate::codec;
use crate::op::decode::member_id;
use crate::op::replies::{range_members, values, violated_key, wrong_type};
use crate::op::{applied, replies, Input, Step, TransitionError};
use crate::plan::{
    Applied, IndexRange, KeyType, Member, OnViolation, Outline, Plan, Precondition, Read,
    ScoreBound, Write,
};
use crate::session::Session;

use super::report::{RevokeAllReport, Unrevocable};
use super::{RevokeAll, State, Todo};

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

impl RevokeAll {
    pub(super) fn read_batch(&mut self) -> Result<Step<RevokeAllReport>, TransitionError> {
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

    /// After an active range read.
    pub(super) fn index(&mut self, input: Input) -> Result<Step<RevokeAllReport>, TransitionError> {
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
    pub(super) fn batch_members(
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
    pub(super) fn records(
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

    /// The answer to the check of a batch's suspects: confirmed, they are
    /// named and skipped, and the batch is read again.
    pub(super) fn confirmed(
        &mut self,
        input: Input,
        plan: Outline,
        suspects: Vec<(Member, String, TransitionError)>,
    ) -> Result<Step<RevokeAllReport>, TransitionError> {
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

    /// The answer to a batch's plan: applied, its sessions count, and the
    /// walk goes on (to the all-sessions walk after the last batch).
    pub(super) fn batch_applied(
        &mut self,
        input: Input,
        plan: Outline,
        sessions: Vec<Session>,
        cleared: u64,
        record_keys: Vec<(String, Member)>,
        last: bool,
    ) -> Result<Step<RevokeAllReport>, TransitionError> {
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
}
