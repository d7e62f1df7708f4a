//! `get`, `get_for_user` and `count`.

use crate::codec;
use crate::ids::{DeviceSessionId, UserId};
use crate::keys::KeySpace;
use crate::op::expiry::{expire_plan, owner_removal};
use crate::op::members::wrong_type;
use crate::op::{
    best_effort_applied, out_of_sequence, replies, Input, Operation, Policy, Step, TransitionError,
};
use crate::plan::{KeyType, Read, Reply};
use crate::session::Session;
use crate::timestamp::Timestamp;

/// Reads one session: by id (`get`: 1 round trip in the reference layout,
/// 2 in the tagged one — the owner key, then the record) or by user and id
/// (`get_for_user`: 1 in every layout; another user's session is
/// `not_found`). A session past its retention is `not_found` (and is
/// removed on the way).
#[derive(Debug)]
pub struct Get {
    keys: KeySpace,
    policy: Policy,
    now: Timestamp,
    id: DeviceSessionId,
    user: Option<UserId>,
    state: GetState,
}

#[derive(Debug)]
enum GetState {
    Start,
    Owner(String),
    Record {
        key: String,
        owner: Option<UserId>,
    },
    Expiring(crate::plan::Plan, String, UserId),
    /// The record is gone: its owner key next (tagged layout).
    RemovingOwner(String),
    Finished,
}

impl Get {
    /// `get(id)`.
    pub fn new(keys: &KeySpace, policy: Policy, now: Timestamp, id: DeviceSessionId) -> Self {
        Self {
            keys: keys.clone(),
            policy,
            now,
            id,
            user: None,
            state: GetState::Start,
        }
    }

    /// `get_for_user(user, id)`.
    pub fn for_user(
        keys: &KeySpace,
        policy: Policy,
        now: Timestamp,
        user: UserId,
        id: DeviceSessionId,
    ) -> Self {
        Self {
            user: Some(user),
            ..Self::new(keys, policy, now, id)
        }
    }

    fn read_record(&mut self, key: String, owner: Option<UserId>) -> Step<Session> {
        self.state = GetState::Record {
            key: key.clone(),
            owner,
        };
        Step::Read(vec![Read::Value { key }])
    }
}

/// The single reply of a one-read step, type-checked.
pub(crate) fn single_value(
    replies: Vec<Reply>,
    key: &str,
    op: &'static str,
) -> Result<Option<Vec<u8>>, TransitionError> {
    match replies.into_iter().next() {
        Some(Reply::Value(value)) => Ok(value),
        Some(Reply::WrongType) => Err(TransitionError::WrongType {
            key: key.to_owned(),
            expected: KeyType::String,
        }),
        _ => out_of_sequence(op),
    }
}

impl Operation for Get {
    type Output = Session;

    fn name(&self) -> &'static str {
        if self.user.is_some() {
            "get_for_user"
        } else {
            "get"
        }
    }

    fn resume(&mut self, input: Input) -> Result<Step<Session>, TransitionError> {
        match std::mem::replace(&mut self.state, GetState::Finished) {
            GetState::Start => {
                if let Some(user) = &self.user {
                    let key = self.keys.record_key(user, &self.id);
                    return Ok(self.read_record(key, None));
                }
                match (
                    self.keys.record_key_of_id(&self.id),
                    self.keys.owner_key(&self.id),
                ) {
                    (Some(key), _) => Ok(self.read_record(key, None)),
                    (None, Some(owner)) => {
                        self.state = GetState::Owner(owner.clone());
                        Ok(Step::Read(vec![Read::Value { key: owner }]))
                    }
                    (None, None) => out_of_sequence("get"),
                }
            }
            GetState::Owner(owner_key) => {
                let Some(bytes) = single_value(replies(input, "get")?, &owner_key, "get")? else {
                    return Err(TransitionError::NotFound { key: owner_key });
                };
                let user = std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|text| UserId::parse(text).ok())
                    .ok_or(TransitionError::CorruptOwner { key: owner_key })?;
                let key = self.keys.record_key(&user, &self.id);
                Ok(self.read_record(key, Some(user)))
            }
            GetState::Record { key, owner } => {
                // A dangling owner key (a crash between owner and record)
                // reads as not found.
                let Some(bytes) = single_value(replies(input, "get")?, &key, "get")? else {
                    return Err(TransitionError::NotFound { key });
                };
                let session = codec::decode(&self.id, &bytes).map_err(|source| {
                    TransitionError::CorruptRecord {
                        key: key.clone(),
                        source,
                    }
                })?;
                if let Some(user) = &self.user {
                    if session.user_id() != user {
                        return Err(TransitionError::NotFound { key });
                    }
                }
                if let Some(owner) = &owner {
                    if session.user_id() != owner {
                        return Err(TransitionError::ForeignRecord {
                            key,
                            owner: session.user_id().as_str().to_owned(),
                        });
                    }
                }
                if self.policy.is_expired(&session, self.now) {
                    let plan = expire_plan(&self.keys, [(&session, &bytes[..])]).best_effort();
                    let user = session.user_id().clone();
                    self.state = GetState::Expiring(plan.clone(), key, user);
                    return Ok(Step::Apply(plan));
                }
                Ok(Step::Done(session))
            }
            GetState::Expiring(plan, key, user) => {
                // Removed now or by someone else meanwhile: gone either way.
                // Skipped (best-effort: the store could not write) or
                // removed by someone else: gone either way.
                match best_effort_applied(input, "get")? {
                    Some(crate::plan::Applied::WrongType { key }) => Err(wrong_type(&plan, key)),
                    Some(crate::plan::Applied::Done) => {
                        // Removed by us: its owner key goes with it.
                        match owner_removal(&self.keys, &user, &self.id) {
                            Some(owner) => {
                                self.state = GetState::RemovingOwner(key);
                                Ok(Step::Apply(owner.best_effort()))
                            }
                            None => Err(TransitionError::NotFound { key }),
                        }
                    }
                    _ => Err(TransitionError::NotFound { key }),
                }
            }
            // Whatever became of the owner key, the session is gone.
            GetState::RemovingOwner(key) => {
                best_effort_applied(input, "get")?;
                Err(TransitionError::NotFound { key })
            }
            GetState::Finished => out_of_sequence("get"),
        }
    }
}

/// `count`: the cardinality of the user's active index (1 round trip).
#[derive(Debug)]
pub struct Count {
    key: String,
    started: bool,
}

impl Count {
    /// Counts `user`'s active sessions.
    pub fn new(keys: &KeySpace, user: &UserId) -> Self {
        Self {
            key: keys.user_active_sessions_key(user),
            started: false,
        }
    }
}

impl Operation for Count {
    type Output = u64;

    fn name(&self) -> &'static str {
        "count"
    }

    fn resume(&mut self, input: Input) -> Result<Step<u64>, TransitionError> {
        if !self.started {
            self.started = true;
            return Ok(Step::Read(vec![Read::IndexLen {
                key: self.key.clone(),
            }]));
        }
        match replies(input, "count")?.into_iter().next() {
            Some(Reply::Len(n)) => Ok(Step::Done(n)),
            Some(Reply::WrongType) => Err(TransitionError::WrongType {
                key: self.key.clone(),
                expected: KeyType::SortedSet,
            }),
            _ => out_of_sequence("count"),
        }
    }
}
