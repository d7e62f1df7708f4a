//! The all-sessions walk of `revoke all`: window by window through the
//! index of every session, revoking the active ones the active index lost
//! (drift). Apart from the active walk because it guards each revocation
//! on the record's bytes, there being no active-index entry to guard on.

use crate::codec;
use crate::op::decode::member_id;
use crate::op::maintenance::walk::Window;
use crate::op::replies::{values, violated_key, wrong_type};
use crate::op::{applied, out_of_sequence, replies, Input, Step, TransitionError};
use crate::plan::{
    Applied, KeyType, Member, OnViolation, Outline, Plan, Precondition, Read, Reply,
};
use crate::session::Session;

use super::report::{RevokeAllReport, Unrevocable};
use super::{RevokeAll, State, Todo};

impl RevokeAll {
    pub(super) fn read_window(&mut self) -> Result<Step<RevokeAllReport>, TransitionError> {
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
    pub(super) fn read_drift(
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

    /// An all-sessions window (read now or ahead).
    pub(super) fn window(
        &mut self,
        reply: Option<Reply>,
    ) -> Result<Step<RevokeAllReport>, TransitionError> {
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
    pub(super) fn drift(
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

    /// The answer to a drift plan: applied, its sessions count as revoked
    /// and repaired; violated, the window's records are read again.
    pub(super) fn drift_applied(
        &mut self,
        input: Input,
        plan: Outline,
        sessions: Vec<Session>,
        pending: Vec<Todo>,
        done_after: bool,
    ) -> Result<Step<RevokeAllReport>, TransitionError> {
        match applied(input, "revoke_all")? {
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
        }
    }
}
