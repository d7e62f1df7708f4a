//! `create`, with the owner key (tagged layout), the active-session limit
//! and lazy retention.

use crate::codec;
use crate::ids::{RevokeActorId, RevokeActorType, RevokeReasonCode};
use crate::keys::{IndexScore, KeySpace};
use crate::op::members::{
    check_members, confirmed, ids_and_keys, revoke_writes, violated_key, wrong_type,
};
use crate::op::{
    applied, out_of_sequence, replies, Input, OnLimit, Operation, Policy, Step, TransitionError,
};
use crate::plan::{
    Applied, IndexRange, Member, OnViolation, Plan, Precondition, Read, Reply, ScoreBound, Write,
};
use crate::session::{Revocation, Session};
use crate::timestamp::Timestamp;

/// At most this many expired sessions are removed by one `create`: enough
/// to keep pace with any steady churn, small enough to keep the script
/// short.
const EXPIRE_PER_CREATE: usize = 16;

/// What `create` did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Created {
    /// The session as stored.
    pub session: Session,
    /// Sessions revoked in the same atomic step to stay within the
    /// active-session limit (`revoke-oldest`), oldest first.
    pub evicted: Vec<Session>,
}

/// Creates a session if its id is free: its record and index entries,
/// atomically. Tagged layout: the owner key first (an id belongs to one
/// user across the cluster). With a limit, the active count never exceeds
/// it; with retention, a few expired sessions of the user are removed in
/// the same step.
///
/// Round trips: 1 (reference layout, no limit or retention); +1 for the
/// owner key (tagged); +1 read when a limit of `revoke-oldest` or a
/// retention is set; +1 read of the records to revoke when at the limit.
#[derive(Debug)]
pub struct Create {
    keys: KeySpace,
    policy: Policy,
    now: Timestamp,
    session: Session,
    state: CreateState,
}

#[derive(Debug)]
enum CreateState {
    Start,
    Owner(String),
    Main,
    Reads,
    OldestMore {
        len: u64,
        expired: Vec<Member>,
    },
    Records {
        len: u64,
        expired: Vec<Member>,
        ids: Vec<crate::DeviceSessionId>,
        record_keys: Vec<String>,
    },
    Confirm {
        plan: Plan,
        error: TransitionError,
    },
    Applying {
        plan: Plan,
        evicted: Vec<Session>,
    },
    Finished,
}

impl Create {
    /// Creates `session` at `now` (the time the limit's revocations carry).
    pub fn new(keys: &KeySpace, policy: Policy, now: Timestamp, session: Session) -> Self {
        Self {
            keys: keys.clone(),
            policy,
            now,
            session,
            state: CreateState::Start,
        }
    }

    fn active_key(&self) -> String {
        self.keys.user_active_sessions_key(self.session.user_id())
    }

    fn revoked_key(&self) -> String {
        self.keys.user_revoked_sessions_key(self.session.user_id())
    }

    fn limit(&self) -> Option<crate::op::SessionLimit> {
        self.policy
            .session_limit
            .filter(|_| self.session.is_active())
    }

    /// The revoked-index score at or below which a session surely expired.
    fn expiry_score(&self) -> Option<IndexScore> {
        let cutoff = self.policy.expiry_cutoff(self.now)?;
        // Scores are floored microseconds: stay one below the cutoff's so
        // a session revoked later in the same microsecond is never taken.
        let micros = cutoff.unix_micros_floor().checked_sub(1)?;
        let score = IndexScore::of(Timestamp::from_unix_nanos(i128::from(micros) * 1000).ok()?);
        // Beyond 2^53 µs from the epoch (before 1685, after 2255) one f64
        // score stands for several microseconds: when the next microsecond
        // shares the bound's score, step below it, or a session revoked
        // after the cutoff would be taken (found by the transitions fuzzer).
        let next = Timestamp::from_unix_nanos((i128::from(micros) + 1) * 1000)
            .ok()
            .map(IndexScore::of);
        if next == Some(score) {
            return Some(IndexScore::from_f64(score.as_f64().next_down()));
        }
        Some(score)
    }

    fn main(&mut self) -> Result<Step<Created>, TransitionError> {
        let mut reads = Vec::new();
        if let Some(score) = self.expiry_score() {
            reads.push(Read::IndexRange(IndexRange {
                key: self.revoked_key(),
                min: ScoreBound::Unbounded,
                max: ScoreBound::Inclusive(score),
                newest_first: false,
                limit: Some(EXPIRE_PER_CREATE),
            }));
        }
        if self
            .limit()
            .is_some_and(|l| l.on_limit == OnLimit::RevokeOldest)
        {
            reads.push(Read::IndexLen {
                key: self.active_key(),
            });
            reads.push(Read::IndexRange(IndexRange {
                key: self.active_key(),
                min: ScoreBound::Unbounded,
                max: ScoreBound::Unbounded,
                newest_first: false,
                limit: Some(1),
            }));
        }
        if reads.is_empty() {
            return Ok(self.apply(None, Vec::new(), Vec::new()));
        }
        self.state = CreateState::Reads;
        Ok(Step::Read(reads))
    }

    /// The create plan: the record if absent, its index entries, the
    /// evictions and the expired removals.
    fn apply(
        &mut self,
        observed_len: Option<u64>,
        evicted: Vec<Session>,
        expired: Vec<Member>,
    ) -> Step<Created> {
        let user = self.session.user_id();
        let record_key = self.keys.record_key(user, self.session.id());
        let mut plan = Plan::empty().require(
            Precondition::Absent {
                key: record_key.clone(),
            },
            OnViolation::Conflict,
        );
        if let Some(limit) = self.limit() {
            match (limit.on_limit, observed_len) {
                (OnLimit::RevokeOldest, Some(len)) => {
                    // The count read must not have grown: then the
                    // evictions below bring it to at most the limit.
                    plan = plan.require(
                        Precondition::IndexCountAtMost {
                            key: self.active_key(),
                            max_score: None,
                            max: len,
                        },
                        OnViolation::Retry,
                    );
                }
                _ => {
                    plan = plan.require(
                        Precondition::IndexCountAtMost {
                            key: self.active_key(),
                            max_score: None,
                            max: u64::from(limit.max_active()).saturating_sub(1),
                        },
                        OnViolation::SessionLimit,
                    );
                }
            }
        }
        if !evicted.is_empty() {
            plan = plan.require(
                Precondition::IndexContains {
                    key: self.active_key(),
                    members: evicted
                        .iter()
                        .map(|s| s.id().as_str().as_bytes().to_vec())
                        .collect(),
                },
                OnViolation::Retry,
            );
        }
        let mut writes = Vec::new();
        if !expired.is_empty() {
            // Membership of the revoked index means revoked (and revoked
            // records never change): no need to ship their bytes.
            plan = plan.require(
                Precondition::IndexContains {
                    key: self.revoked_key(),
                    members: expired.clone(),
                },
                OnViolation::Retry,
            );
            for member in &expired {
                // Members of our own revoked index are ids we wrote.
                if let Ok(id) = crate::op::members::member_id(&self.revoked_key(), member) {
                    writes.push(Write::Delete {
                        key: self.keys.record_key(user, &id),
                    });
                }
                writes.push(Write::IndexRemove {
                    key: self.keys.user_sessions_key(user),
                    member: member.clone(),
                });
                writes.push(Write::IndexRemove {
                    key: self.revoked_key(),
                    member: member.clone(),
                });
            }
        }
        let mut revoked_now = Vec::with_capacity(evicted.len());
        for old in evicted {
            let at = old.created_at().max(self.now);
            let revocation =
                Revocation::new(at, limit_reason(), system_actor(), RevokeActorId::empty());
            if let Ok(next) = revocation.and_then(|r| old.revoked(r)) {
                revoke_writes(&self.keys, &next, &mut writes);
                revoked_now.push(next);
            }
        }
        writes.extend(create_writes(&self.keys, &self.session));
        let plan = plan.with_writes(writes);
        self.state = CreateState::Applying {
            plan: plan.clone(),
            evicted: revoked_now,
        };
        Step::Apply(plan)
    }
}

fn limit_reason() -> RevokeReasonCode {
    // A valid code by construction; parse keeps it one rule.
    RevokeReasonCode::parse("session_limit").unwrap_or_else(|_| unreachable_code())
}

fn system_actor() -> RevokeActorType {
    RevokeActorType::parse("system").unwrap_or_else(|_| unreachable_actor())
}

#[allow(clippy::panic)]
fn unreachable_code() -> RevokeReasonCode {
    panic!("`session_limit` is a valid reason code")
}

#[allow(clippy::panic)]
fn unreachable_actor() -> RevokeActorType {
    panic!("`system` is a valid actor type")
}

/// The writes that store `session` and index it.
pub(crate) fn create_writes(keys: &KeySpace, session: &Session) -> Vec<Write> {
    let user = session.user_id();
    let score = IndexScore::of(session.created_at());
    let member = session.id().as_str().to_owned();
    let mut writes = vec![
        Write::Set {
            key: keys.record_key(user, session.id()),
            value: codec::encode(session),
        },
        Write::IndexAdd {
            key: keys.user_sessions_key(user),
            score,
            member: member.clone(),
        },
    ];
    match session.revocation() {
        None => writes.push(Write::IndexAdd {
            key: keys.user_active_sessions_key(user),
            score,
            member,
        }),
        Some(revocation) => writes.push(Write::IndexAdd {
            key: keys.user_revoked_sessions_key(user),
            score: IndexScore::of(revocation.at()),
            member,
        }),
    }
    writes
}

fn members_of(reply: Option<Reply>, key: &str) -> Result<Vec<Member>, TransitionError> {
    match reply {
        Some(Reply::Members(members)) => Ok(members.into_iter().map(|(m, _)| m).collect()),
        Some(Reply::WrongType) => Err(TransitionError::WrongType {
            key: key.to_owned(),
            expected: crate::plan::KeyType::SortedSet,
        }),
        _ => out_of_sequence("create"),
    }
}

impl Operation for Create {
    type Output = Created;

    fn name(&self) -> &'static str {
        "create"
    }

    fn resume(&mut self, input: Input) -> Result<Step<Created>, TransitionError> {
        match std::mem::replace(&mut self.state, CreateState::Finished) {
            CreateState::Start => match self.keys.owner_key(self.session.id()) {
                Some(owner) => {
                    let plan = Plan::new(
                        vec![Precondition::AbsentOrEquals {
                            key: owner.clone(),
                            value: self.session.user_id().as_str().as_bytes().to_vec(),
                        }],
                        vec![Write::Set {
                            key: owner.clone(),
                            value: self.session.user_id().as_str().as_bytes().to_vec(),
                        }],
                        OnViolation::Conflict,
                    );
                    self.state = CreateState::Owner(owner);
                    Ok(Step::Apply(plan))
                }
                None => self.main(),
            },
            CreateState::Owner(owner) => match applied(input, "create")? {
                Applied::Done => self.main(),
                Applied::Violated { .. } => Err(TransitionError::Conflict { key: owner }),
                Applied::WrongType { key } => Err(TransitionError::WrongType {
                    key,
                    expected: crate::plan::KeyType::String,
                }),
            },
            CreateState::Main => self.main(),
            CreateState::Reads => {
                let mut replies = replies(input, "create")?.into_iter();
                let expired = if self.expiry_score().is_some() {
                    members_of(replies.next(), &self.revoked_key())?
                } else {
                    Vec::new()
                };
                let Some(limit) = self.limit().filter(|l| l.on_limit == OnLimit::RevokeOldest)
                else {
                    return Ok(self.apply(None, Vec::new(), expired));
                };
                let len = match replies.next() {
                    Some(Reply::Len(n)) => n,
                    Some(Reply::WrongType) => {
                        return Err(TransitionError::WrongType {
                            key: self.active_key(),
                            expected: crate::plan::KeyType::SortedSet,
                        })
                    }
                    _ => return out_of_sequence("create"),
                };
                let oldest = members_of(replies.next(), &self.active_key())?;
                let max = u64::from(limit.max_active());
                let needed = (len + 1).saturating_sub(max);
                if needed == 0 {
                    return Ok(self.apply(Some(len), Vec::new(), expired));
                }
                let needed = usize::try_from(needed)
                    .unwrap_or(usize::MAX)
                    .min(self.policy.batch_size.get());
                if oldest.len() < needed {
                    self.state = CreateState::OldestMore { len, expired };
                    return Ok(Step::Read(vec![Read::IndexRange(IndexRange {
                        key: self.active_key(),
                        min: ScoreBound::Unbounded,
                        max: ScoreBound::Unbounded,
                        newest_first: false,
                        limit: Some(needed),
                    })]));
                }
                self.read_oldest(len, expired, oldest)
            }
            CreateState::OldestMore { len, expired } => {
                let oldest = members_of(
                    replies(input, "create")?.into_iter().next(),
                    &self.active_key(),
                )?;
                self.read_oldest(len, expired, oldest)
            }
            CreateState::Records {
                len,
                expired,
                ids,
                record_keys,
            } => {
                let records = match replies(input, "create")?.into_iter().next() {
                    Some(Reply::Values(values)) => values,
                    _ => return out_of_sequence("create"),
                };
                let active_key = self.active_key();
                match check_members(
                    self.session.user_id(),
                    &active_key,
                    &ids,
                    &record_keys,
                    records,
                    true,
                )? {
                    Ok(sessions) => {
                        let evicted = sessions.into_iter().map(|(s, _)| s).collect();
                        Ok(self.apply(Some(len), evicted, expired))
                    }
                    Err((plan, error)) => {
                        self.state = CreateState::Confirm {
                            plan: plan.clone(),
                            error,
                        };
                        Ok(Step::Apply(plan))
                    }
                }
            }
            CreateState::Confirm { plan, error } => {
                let step = confirmed(&plan, applied(input, "create")?, error)?;
                self.state = CreateState::Main;
                Ok(step)
            }
            CreateState::Applying { plan, evicted } => match applied(input, "create")? {
                Applied::Done => Ok(Step::Done(Created {
                    session: self.session.clone(),
                    evicted,
                })),
                Applied::Violated { index } => match plan.on_violation(index) {
                    OnViolation::Conflict => Err(TransitionError::Conflict {
                        key: violated_key(&plan, index),
                    }),
                    OnViolation::SessionLimit => Err(TransitionError::SessionLimit {
                        user: self.session.user_id().as_str().to_owned(),
                        max: self.limit().map_or(0, |l| l.max_active()),
                    }),
                    _ => {
                        self.state = CreateState::Main;
                        Ok(Step::Backoff {
                            key: violated_key(&plan, index),
                        })
                    }
                },
                Applied::WrongType { key } => Err(wrong_type(&plan, key)),
            },
            CreateState::Finished => out_of_sequence("create"),
        }
    }
}

impl Create {
    fn read_oldest(
        &mut self,
        len: u64,
        expired: Vec<Member>,
        oldest: Vec<Member>,
    ) -> Result<Step<Created>, TransitionError> {
        let (ids, record_keys) = ids_and_keys(
            &self.keys,
            self.session.user_id(),
            &self.active_key(),
            &oldest,
        )?;
        if record_keys.is_empty() {
            return Ok(self.apply(Some(len), Vec::new(), expired));
        }
        let read = Read::Values {
            keys: record_keys.clone(),
        };
        self.state = CreateState::Records {
            len,
            expired,
            ids,
            record_keys,
        };
        Ok(Step::Read(vec![read]))
    }
}
