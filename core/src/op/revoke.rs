//! `revoke`: one session, active → revoked.

use crate::codec;
use crate::ids::UserId;
use crate::keys::KeySpace;
use crate::op::expiry::{expire_plan, OwnerRemovals};
use crate::op::get::single_value;
use crate::op::members::{revoke_writes, violated_key, wrong_type};
use crate::op::{
    applied, best_effort_applied, out_of_sequence, replies, Input, Operation, Policy, Step,
    TransitionError,
};
use crate::plan::{Applied, OnViolation, Outline, Plan, Precondition, Read};
use crate::session::{RevokeSessionInput, RevokeSessionOutcome};
use crate::timestamp::Timestamp;

/// Revokes one session. Round trips: 2 in the reference layout (the
/// record, then the plan), 3 in the tagged one (the owner key first). An
/// already revoked session is `AlreadyRevoked` with nothing written; one
/// past its retention is `not_found`.
#[derive(Debug)]
pub struct Revoke {
    keys: KeySpace,
    policy: Policy,
    now: Timestamp,
    input: RevokeSessionInput,
    /// The "now" form: a session created after the revocation time is
    /// revoked at its own creation time instead of refused.
    raise_to_creation: bool,
    state: RevokeState,
}

#[derive(Debug)]
enum RevokeState {
    Start,
    Owner(String),
    Record(String),
    Applying(Outline, RevokeSessionOutcome),
    Expiring(Plan, String, UserId),
    /// The record is gone: its owner key next (tagged layout).
    RemovingOwner(OwnerRemovals, String),
    Finished,
}

impl Revoke {
    /// The expired session's owner key (tagged layout), then `not_found`.
    fn remove_owner(
        &mut self,
        mut owners: OwnerRemovals,
        input: Option<Input>,
        key: String,
    ) -> Result<Step<RevokeSessionOutcome>, TransitionError> {
        match owners.step(input, "revoke")?.into_step() {
            Some(step) => {
                self.state = RevokeState::RemovingOwner(owners, key);
                Ok(step)
            }
            None => Err(TransitionError::NotFound { key }),
        }
    }

    /// Revokes `input.device_session_id` with `input.revocation`; `now` is
    /// for retention.
    pub fn new(keys: &KeySpace, policy: Policy, now: Timestamp, input: RevokeSessionInput) -> Self {
        Self {
            keys: keys.clone(),
            policy,
            now,
            input,
            raise_to_creation: false,
            state: RevokeState::Start,
        }
    }

    /// The "now" form: `input.revocation.at` is the caller's current time,
    /// not a time it chose. A session dated after it (created by a service
    /// whose clock is ahead) is revoked all the same, at its own creation
    /// time, so the record stays valid. [`Revoke::new`] refuses that case
    /// (`revoked_before_created`): an explicit time before creation is an
    /// error in the input.
    pub fn now(keys: &KeySpace, policy: Policy, now: Timestamp, input: RevokeSessionInput) -> Self {
        Self {
            raise_to_creation: true,
            ..Self::new(keys, policy, now, input)
        }
    }

    fn read_record(&mut self, key: String) -> Step<RevokeSessionOutcome> {
        self.state = RevokeState::Record(key.clone());
        Step::Read(vec![Read::Value { key }])
    }

    fn start(&mut self) -> Result<Step<RevokeSessionOutcome>, TransitionError> {
        let id = &self.input.device_session_id;
        match (self.keys.record_key_of_id(id), self.keys.owner_key(id)) {
            (Some(key), _) => Ok(self.read_record(key)),
            (None, Some(owner)) => {
                self.state = RevokeState::Owner(owner.clone());
                Ok(Step::Read(vec![Read::Value { key: owner }]))
            }
            (None, None) => out_of_sequence("revoke"),
        }
    }
}

impl Operation for Revoke {
    type Output = RevokeSessionOutcome;

    fn name(&self) -> &'static str {
        "revoke"
    }

    fn resume(&mut self, input: Input) -> Result<Step<RevokeSessionOutcome>, TransitionError> {
        match std::mem::replace(&mut self.state, RevokeState::Finished) {
            RevokeState::Start => self.start(),
            RevokeState::Owner(owner_key) => {
                let Some(bytes) = single_value(replies(input, "revoke")?, &owner_key, "revoke")?
                else {
                    return Err(TransitionError::NotFound { key: owner_key });
                };
                let user = std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|text| UserId::parse(text).ok())
                    .ok_or(TransitionError::CorruptOwner { key: owner_key })?;
                let key = self.keys.record_key(&user, &self.input.device_session_id);
                Ok(self.read_record(key))
            }
            RevokeState::Record(key) => {
                let Some(bytes) = single_value(replies(input, "revoke")?, &key, "revoke")? else {
                    return Err(TransitionError::NotFound { key });
                };
                let current =
                    codec::decode(&self.input.device_session_id, &bytes).map_err(|source| {
                        TransitionError::CorruptRecord {
                            key: key.clone(),
                            source,
                        }
                    })?;
                if self.policy.is_expired(&current, self.now) {
                    let plan = expire_plan(&self.keys, [(&current, &bytes[..])]).best_effort();
                    let user = current.user_id().clone();
                    self.state = RevokeState::Expiring(plan.clone(), key, user);
                    return Ok(Step::Apply(plan));
                }
                if !current.is_active() {
                    return Ok(Step::Done(RevokeSessionOutcome::AlreadyRevoked(current)));
                }
                let next = if self.raise_to_creation {
                    current.revoked_no_earlier_than_creation(self.input.revocation.clone())
                } else {
                    current.revoked(self.input.revocation.clone())?
                };
                let mut writes = Vec::with_capacity(3);
                revoke_writes(&self.keys, &self.policy, &next, key.clone(), &mut writes);
                let plan = Plan::new(
                    vec![Precondition::ValueEquals { key, value: bytes }],
                    writes,
                    OnViolation::Retry,
                );
                self.state =
                    RevokeState::Applying(plan.outline(), RevokeSessionOutcome::Revoked(next));
                Ok(Step::Apply(plan))
            }
            RevokeState::Applying(plan, outcome) => match applied(input, "revoke")? {
                Applied::Done => Ok(Step::Done(outcome)),
                Applied::Violated { index } => {
                    self.state = RevokeState::Start;
                    Ok(Step::Backoff {
                        key: violated_key(&plan, index),
                    })
                }
                Applied::WrongType { key } => Err(wrong_type(&plan, key)),
            },
            RevokeState::Expiring(plan, key, user) => match best_effort_applied(input, "revoke")? {
                Some(Applied::WrongType { key }) => Err(wrong_type(&plan, key)),
                // Removed by us: its owner key goes with it.
                Some(Applied::Done) => {
                    let id = self.input.device_session_id.clone();
                    let owners = OwnerRemovals::lazy(&self.keys, [(&user, &id)]);
                    self.remove_owner(owners, None, key)
                }
                // Removed by someone else, or skipped: gone either way.
                _ => Err(TransitionError::NotFound { key }),
            },
            // Whatever became of the owner key, the session is gone.
            RevokeState::RemovingOwner(owners, key) => self.remove_owner(owners, Some(input), key),
            RevokeState::Finished => {
                // Resumed after a backoff lands in Start.
                out_of_sequence("revoke")
            }
        }
    }
}
