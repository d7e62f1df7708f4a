//! `list`: every session of a user, newest first.

use crate::ids::{DeviceSessionId, UserId};
use crate::keys::KeySpace;
use crate::op::expiry::{expire_plan, lazy_removals, OwnerRemovals};
use crate::op::members::{check_members, confirmed, ids_and_keys, split_expired, wrong_type};
use crate::op::{
    applied, best_effort_applied, out_of_sequence, replies, Input, Operation, Policy, Step,
    TransitionError,
};
use crate::order::sort_newest_first;
use crate::plan::{Applied, IndexRange, KeyType, Plan, Read, Reply, ScoreBound};
use crate::session::Session;
use crate::timestamp::Timestamp;

/// Lists every session of a user (the all-sessions index), newest
/// `created_at` first, ties by id bytes. 2 round trips (the index, then
/// the records), one large read for a huge user: use [`super::ListPage`]
/// for bounded reads. Sessions past retention are omitted and removed (at
/// most a batch of them per call, so the removal stays one short script).
#[derive(Debug)]
pub struct List {
    keys: KeySpace,
    policy: Policy,
    now: Timestamp,
    user: UserId,
    state: ListState,
}

#[derive(Debug)]
enum ListState {
    Start,
    Index,
    Records(Vec<DeviceSessionId>, Vec<String>),
    Confirm(Plan, TransitionError),
    Expiring(Plan, OwnerRemovals, Vec<Session>),
    /// The removed sessions' owner keys (tagged layout), one by one.
    RemovingOwners(OwnerRemovals, Vec<Session>),
    Finished,
}

impl List {
    /// Lists `user`'s sessions as of `now`.
    pub fn new(keys: &KeySpace, policy: Policy, now: Timestamp, user: UserId) -> Self {
        Self {
            keys: keys.clone(),
            policy,
            now,
            user,
            state: ListState::Start,
        }
    }
}

/// The members of a range reply.
pub(crate) fn range_members(
    reply: Option<Reply>,
    key: &str,
    op: &'static str,
) -> Result<Vec<Vec<u8>>, TransitionError> {
    match reply {
        Some(Reply::Names(members)) => Ok(members),
        Some(Reply::Members(members)) => Ok(members.into_iter().map(|(m, _)| m).collect()),
        Some(Reply::WrongType) => Err(TransitionError::WrongType {
            key: key.to_owned(),
            expected: KeyType::SortedSet,
        }),
        _ => out_of_sequence(op),
    }
}

/// The members with scores of a `Members` reply (a range read with
/// scores), or the index's wrong type.
pub(crate) fn scored_members(
    reply: Option<Reply>,
    key: &str,
    op: &'static str,
) -> Result<Vec<(Vec<u8>, f64)>, TransitionError> {
    match reply {
        Some(Reply::Members(members)) => Ok(members),
        Some(Reply::WrongType) => Err(TransitionError::WrongType {
            key: key.to_owned(),
            expected: KeyType::SortedSet,
        }),
        _ => out_of_sequence(op),
    }
}

/// The values of a `Values` reply.
pub(crate) fn values(
    reply: Option<Reply>,
    op: &'static str,
) -> Result<Vec<Option<Vec<u8>>>, TransitionError> {
    match reply {
        Some(Reply::Values(values)) => Ok(values),
        _ => out_of_sequence(op),
    }
}

impl List {
    /// The removed sessions' owner keys (tagged layout), then the answer
    /// (which stands whether or not the store can write them).
    fn remove_owners(
        &mut self,
        mut owners: OwnerRemovals,
        input: Option<Input>,
        visible: Vec<Session>,
    ) -> Result<Step<Vec<Session>>, TransitionError> {
        match owners.step(input, "list")?.into_step() {
            Some(step) => {
                self.state = ListState::RemovingOwners(owners, visible);
                Ok(step)
            }
            None => Ok(Step::Done(visible)),
        }
    }
}

impl Operation for List {
    type Output = Vec<Session>;

    fn name(&self) -> &'static str {
        "list"
    }

    fn resume(&mut self, input: Input) -> Result<Step<Vec<Session>>, TransitionError> {
        let index_key = self.keys.user_sessions_key(&self.user);
        match std::mem::replace(&mut self.state, ListState::Finished) {
            ListState::Start => {
                self.state = ListState::Index;
                Ok(Step::Read(vec![Read::IndexRange(IndexRange {
                    key: index_key,
                    min: ScoreBound::Unbounded,
                    max: ScoreBound::Unbounded,
                    newest_first: false,
                    limit: None,
                    with_scores: false,
                })]))
            }
            ListState::Index => {
                let members = range_members(
                    replies(input, "list")?.into_iter().next(),
                    &index_key,
                    "list",
                )?;
                let (ids, record_keys) =
                    ids_and_keys(&self.keys, &self.user, &index_key, &members)?;
                if ids.is_empty() {
                    return Ok(Step::Done(Vec::new()));
                }
                let read = Read::Values {
                    keys: record_keys.clone(),
                };
                self.state = ListState::Records(ids, record_keys);
                Ok(Step::Read(vec![read]))
            }
            ListState::Records(ids, record_keys) => {
                let records = values(replies(input, "list")?.into_iter().next(), "list")?;
                match check_members(&self.user, &index_key, &ids, &record_keys, records, false)? {
                    Ok(sessions) => {
                        let (mut visible, expired) =
                            split_expired(&self.policy, self.now, sessions);
                        sort_newest_first(&mut visible);
                        if expired.is_empty() {
                            return Ok(Step::Done(visible));
                        }
                        // One bounded script: the rest (omitted all the
                        // same) goes with the next calls or a sweep.
                        let mut expired = expired;
                        expired.truncate(lazy_removals(&self.keys, self.policy.batch_size.get()));
                        let plan =
                            expire_plan(&self.keys, expired.iter().map(|(s, b)| (s, &b[..])))
                                .best_effort();
                        let owners = OwnerRemovals::lazy(
                            &self.keys,
                            expired.iter().map(|(s, _)| (s.user_id(), s.id())),
                        );
                        self.state = ListState::Expiring(plan.clone(), owners, visible);
                        Ok(Step::Apply(plan))
                    }
                    Err((plan, error)) => {
                        self.state = ListState::Confirm(plan.clone(), error);
                        Ok(Step::Apply(plan))
                    }
                }
            }
            ListState::Confirm(plan, error) => {
                let step = confirmed(&plan, applied(input, "list")?, error)?;
                self.state = ListState::Start;
                Ok(step)
            }
            ListState::Expiring(plan, owners, visible) => match best_effort_applied(input, "list")?
            {
                Some(Applied::WrongType { key }) => Err(wrong_type(&plan, key)),
                // Removed by us: their owner keys go with them.
                Some(Applied::Done) => self.remove_owners(owners, None, visible),
                // Removed (or changed) by someone else meanwhile, or
                // skipped (the store could not write): hidden all the same.
                _ => Ok(Step::Done(visible)),
            },
            ListState::RemovingOwners(owners, visible) => {
                self.remove_owners(owners, Some(input), visible)
            }
            ListState::Finished => out_of_sequence("list"),
        }
    }
}
