//! `get` and `get_for_user`.

use crate::codec;
use crate::ids::{DeviceSessionId, UserId};
use crate::keys::KeySpace;
use crate::op::expiry::{expire_plan, OwnerRemovals};
use crate::op::replies::{owner, single_value, wrong_type};
use crate::op::{
    best_effort_applied, out_of_sequence, replies, Input, Operation, Policy, Step, TransitionError,
};
use crate::plan::Read;
use crate::session::Session;
use crate::timestamp::Timestamp;

/// Reads one session: by id (`get`: 1 round trip in the reference layout,
/// 2 in the tagged one — the owner key, then the record — or 1 when the
/// owner is already known, see [`Get::with_known_owner`]) or by user and
/// id (`get_for_user`: 1 in every layout; another user's session is
/// `not_found`). A session past its retention is `not_found` (and is
/// removed on the way).
#[derive(Debug)]
pub struct Get {
    keys: KeySpace,
    policy: Policy,
    now: Timestamp,
    id: DeviceSessionId,
    user: Option<UserId>,
    known_owner: Option<UserId>,
    remembered: Option<Session>,
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
    RemovingOwner(OwnerRemovals, String),
    /// The record under a remembered owner: anything but a valid session
    /// of that owner sends the read back to the owner key.
    Remembered {
        key: String,
        owner: UserId,
    },
    Finished,
}

impl Get {
    /// The expired session's owner key (tagged layout), then `not_found`.
    fn remove_owner(
        &mut self,
        mut owners: OwnerRemovals,
        input: Option<Input>,
        key: String,
    ) -> Result<Step<Session>, TransitionError> {
        match owners.step(input, "get")?.into_step() {
            Some(step) => {
                self.state = GetState::RemovingOwner(owners, key);
                Ok(step)
            }
            None => Err(TransitionError::NotFound { key }),
        }
    }

    /// `get(id)`.
    pub fn new(keys: &KeySpace, policy: Policy, now: Timestamp, id: DeviceSessionId) -> Self {
        Self {
            keys: keys.clone(),
            policy,
            now,
            id,
            user: None,
            known_owner: None,
            remembered: None,
            state: GetState::Start,
        }
    }

    /// `get(id)` in the tagged layout for an id whose owner the caller saw
    /// earlier (a store remembers them): the record is read under `owner`
    /// at once (1 round trip). Owner keys are immutable while they exist,
    /// so a remembered owner is right as long as its record is there; if
    /// the record is missing, foreign or unreadable the owner key is read
    /// after all and the get goes on as without the hint (an id removed and
    /// created again for another user is found there). Ignored in the
    /// reference layout and by `get_for_user`.
    pub fn with_known_owner(mut self, owner: UserId) -> Self {
        self.known_owner = Some(owner);
        self
    }

    /// The record key this get reads first, when it is known before any
    /// read: in the reference layout, for `get_for_user`, and with a known
    /// owner. `None` when the owner key must be read first.
    pub fn first_record_key(&self) -> Option<String> {
        self.first_record().map(|(key, _)| key)
    }

    /// Answers the first record read with `session`: what an earlier get
    /// validated (strictly decoded) from the record at
    /// [`Get::first_record_key`], known to be unchanged since (a near cache
    /// whose entries the server invalidates). The same rules apply as to a
    /// record just read: another user's session is `not_found` for
    /// `get_for_user`, a session not of the known owner is not trusted (the
    /// owner key is read), and a session past its retention is read again
    /// (its removal is guarded by the stored bytes). A session of another
    /// id is ignored.
    pub fn with_remembered(mut self, session: Session) -> Self {
        self.remembered = Some(session);
        self
    }

    /// The first record key and, with a known owner, that owner.
    fn first_record(&self) -> Option<(String, Option<&UserId>)> {
        if let Some(user) = &self.user {
            return Some((self.keys.record_key(user, &self.id), None));
        }
        if let Some(key) = self.keys.record_key_of_id(&self.id) {
            return Some((key, None));
        }
        let owner = self.known_owner.as_ref()?;
        Some((self.keys.record_key(owner, &self.id), Some(owner)))
    }

    /// The owner key read (the usual first step of a tagged `get`).
    fn read_owner(&mut self) -> Result<Step<Session>, TransitionError> {
        let Some(owner) = self.keys.owner_key(&self.id) else {
            return out_of_sequence("get");
        };
        self.state = GetState::Owner(owner.clone());
        Ok(Step::Read(vec![Read::Value { key: owner }]))
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

impl Get {
    /// A valid session read at `key`: done, or removed first when it is past
    /// its retention.
    fn found(
        &mut self,
        key: String,
        session: Session,
        bytes: Vec<u8>,
    ) -> Result<Step<Session>, TransitionError> {
        if self.policy.is_expired(&session, self.now) {
            // Lazy: the answer stands whether or not the store can write.
            let plan = expire_plan(&self.keys, [(&session, &bytes[..])]).best_effort();
            let user = session.user_id().clone();
            self.state = GetState::Expiring(plan.clone(), key, user);
            return Ok(Step::Apply(plan));
        }
        Ok(Step::Done(session))
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
                let Some((key, known)) = self.first_record() else {
                    return self.read_owner();
                };
                let known = known.cloned();
                if let Some(session) = self.remembered.take() {
                    let trusted = session.id() == &self.id
                        && known
                            .as_ref()
                            .is_none_or(|owner| session.user_id() == owner)
                        && !self.policy.is_expired(&session, self.now);
                    if trusted {
                        if let Some(user) = &self.user {
                            if session.user_id() != user {
                                return Err(TransitionError::NotFound { key });
                            }
                        }
                        return Ok(Step::Done(session));
                    }
                }
                match known {
                    Some(owner) => {
                        self.state = GetState::Remembered {
                            key: key.clone(),
                            owner,
                        };
                        Ok(Step::Read(vec![Read::Value { key }]))
                    }
                    None => Ok(self.read_record(key, None)),
                }
            }
            GetState::Remembered { key, owner } => {
                let replies = replies(input, "get")?;
                let session = match single_value(replies, &key, "get") {
                    Ok(Some(bytes)) => codec::decode(&self.id, &bytes)
                        .ok()
                        .filter(|s| s.user_id() == &owner)
                        .map(|s| (s, bytes)),
                    _ => None,
                };
                match session {
                    Some((session, bytes)) => self.found(key, session, bytes),
                    None => self.read_owner(),
                }
            }
            GetState::Owner(owner_key) => {
                let user = owner(input, owner_key, "get")?;
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
                self.found(key, session, bytes)
            }
            GetState::Expiring(plan, key, user) => {
                // Removed now or by someone else meanwhile: gone either way.
                // Skipped (best-effort: the store could not write) or
                // removed by someone else: gone either way.
                match best_effort_applied(input, "get")? {
                    Some(crate::plan::Applied::WrongType { key }) => Err(wrong_type(&plan, key)),
                    Some(crate::plan::Applied::Done) => {
                        // Removed by us: its owner key goes with it.
                        let id = self.id.clone();
                        let owners = OwnerRemovals::lazy(&self.keys, [(&user, &id)]);
                        self.remove_owner(owners, None, key)
                    }
                    _ => Err(TransitionError::NotFound { key }),
                }
            }
            // Whatever became of the owner key, the session is gone.
            GetState::RemovingOwner(owners, key) => self.remove_owner(owners, Some(input), key),
            GetState::Finished => out_of_sequence("get"),
        }
    }
}
