//! `create`, with the owner key (tagged layout), the active-session limit
//! and lazy retention.

use crate::codec;
use crate::ids::{RevokeActorId, RevokeActorType, RevokeReasonCode};
use crate::keys::{IndexScore, KeySpace};
use crate::op::expiry::{lazy_removals, removal_writes, OwnerRemovals};
use crate::op::members::{
    check_members, confirmed, ids_and_keys, member_id, revoke_writes, violated_key, wrong_type,
};
use crate::op::{
    applied, out_of_sequence, replies, Input, OnLimit, Operation, Policy, Step, TransitionError,
};
use crate::plan::{
    Applied, IndexRange, Member, OnViolation, Outline, Plan, Precondition, Read, Reply, ScoreBound,
    Write,
};
use crate::session::{Revocation, Session};
use crate::timestamp::Timestamp;

/// At most this many expired sessions are removed by one `create`: enough
/// to keep pace with any steady churn, small enough to keep the script
/// short.
const EXPIRE_PER_CREATE: usize = 16;

/// `revoke-oldest` under contention: after `n` attempts whose evictions
/// another create took first, a create picks its evictions among the
/// oldest `needed + 2^n - 1` active sessions (at most this many extra), so
/// concurrent creators at the limit stop all racing for the one oldest
/// session (each of them retried until only one got it).
const MAX_EVICTION_SPREAD: usize = 31;

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
/// `revoke-oldest` evicts the oldest active sessions. When creators at the
/// limit race (each eviction can be taken by only one of them), one that
/// lost its eviction to another create picks, on its next attempts, among
/// a few more of the oldest: concurrent creates then evict the oldest few
/// between them instead of all retrying for the same one.
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
    /// Attempts whose evictions another create took first.
    contended: u32,
    /// The owner key was there before this create (tagged layout): claim
    /// it again after the record is written.
    reclaim_owner: bool,
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
        needed: usize,
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
        plan: Outline,
        /// The position of the "evictions still active" precondition.
        evict_guard: Option<usize>,
        evicted: Vec<Session>,
        /// The owner keys of the expired sessions the plan removes.
        owners: OwnerRemovals,
    },
    /// Created: the owner key claimed again (see `reclaim_owner`).
    Reclaiming(OwnerRemovals, Vec<Session>),
    /// Created: the removed sessions' owner keys (tagged layout), one by
    /// one.
    RemovingOwners(OwnerRemovals, Vec<Session>),
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
            contended: 0,
            reclaim_owner: false,
            state: CreateState::Start,
        }
    }

    fn active_key(&self) -> String {
        self.keys.user_active_sessions_key(self.session.user_id())
    }

    fn revoked_key(&self) -> String {
        self.keys.user_revoked_sessions_key(self.session.user_id())
    }

    /// How many more of the oldest active sessions than needed this attempt
    /// may choose its evictions from: none until an attempt was invalidated
    /// (then the evictions are exactly the oldest), then doubling.
    fn spread(&self) -> usize {
        match self.contended {
            0 => 0,
            n => (1usize << n.min(5))
                .saturating_sub(1)
                .min(MAX_EVICTION_SPREAD),
        }
    }

    /// A number that differs between creators (it hashes the new id) and
    /// between attempts: where in the spread window this one evicts.
    fn pick(&self) -> u64 {
        let attempt = self.contended.to_be_bytes();
        self.session
            .id()
            .as_str()
            .bytes()
            .chain(attempt)
            .fold(0xcbf2_9ce4_8422_2325, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            })
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
                limit: Some(lazy_removals(&self.keys, EXPIRE_PER_CREATE)),
                with_scores: false,
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
                limit: Some(1 + self.spread()),
                with_scores: false,
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
                    // At most `max - 1 + evicting` active now: the
                    // evictions (still active, checked below) and the new
                    // session then leave at most the limit, whatever the
                    // count and range reads saw (two reads of one round
                    // trip need not agree). Only above the limit by more
                    // than a batch (the limit was lowered) the bound is the
                    // count read: each create then shrinks it by a batch.
                    let max = u64::from(limit.max_active());
                    let evicting = u64::try_from(evicted.len()).unwrap_or(u64::MAX);
                    let batch = u64::try_from(self.policy.batch_size.get()).unwrap_or(u64::MAX);
                    let bound = if (len + 1).saturating_sub(max) > batch {
                        len
                    } else {
                        max.saturating_sub(1).saturating_add(evicting)
                    };
                    plan = plan.require(
                        Precondition::IndexCountAtMost {
                            key: self.active_key(),
                            max_score: None,
                            max: bound,
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
        let evict_guard = (!evicted.is_empty()).then(|| plan.preconditions().len());
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
        let mut removed = Vec::new();
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
                if let Ok(id) = member_id(&self.revoked_key(), member) {
                    writes.extend(removal_writes(&self.keys, user, &id));
                    removed.push(id);
                } else {
                    // Not an id (a foreign writer's): no record to remove,
                    // only the entries.
                    for key in [self.keys.user_sessions_key(user), self.revoked_key()] {
                        writes.push(Write::IndexRemove {
                            key,
                            member: member.clone(),
                        });
                    }
                }
            }
        }
        let mut revoked_now = Vec::with_capacity(evicted.len());
        for old in evicted {
            // Never before the session's creation, and never Go's zero
            // time (which a revocation may not carry): then one
            // nanosecond after it.
            let mut at = old.created_at().max(self.now);
            if at.is_go_zero() {
                at = at.checked_add_nanos(1).unwrap_or(at);
            }
            let revocation =
                Revocation::new(at, limit_reason(), system_actor(), RevokeActorId::empty());
            // With `at` adjusted above, both constructors succeed: `at` is
            // neither Go's zero time nor before the creation.
            if let Ok(next) = revocation.and_then(|r| old.revoked(r)) {
                let record_key = self.keys.record_key(next.user_id(), next.id());
                revoke_writes(&self.keys, &self.policy, &next, record_key, &mut writes);
                revoked_now.push(next);
            }
        }
        writes.extend(create_writes(&self.keys, &self.policy, &self.session));
        let plan = plan.with_writes(writes);
        let owners = OwnerRemovals::lazy(&self.keys, removed.iter().map(|id| (user, id)));
        self.state = CreateState::Applying {
            plan: plan.outline(),
            evict_guard,
            evicted: revoked_now,
            owners,
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

/// The writes that store `session` and index it (a revoked one in the
/// revoked index only when the policy keeps one).
pub(crate) fn create_writes(keys: &KeySpace, policy: &Policy, session: &Session) -> Vec<Write> {
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
        Some(revocation) if policy.indexes_revoked() => writes.push(Write::IndexAdd {
            key: keys.user_revoked_sessions_key(user),
            score: IndexScore::of(revocation.at()),
            member,
        }),
        Some(_) => {}
    }
    writes
}

fn members_of(reply: Option<Reply>, key: &str) -> Result<Vec<Member>, TransitionError> {
    match reply {
        Some(Reply::Members(members)) => Ok(members.into_iter().map(|(m, _)| m).collect()),
        Some(Reply::Names(members)) => Ok(members),
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
                    // Absent or this user's (else `conflict`); and absent
                    // (else it was this user's already: see
                    // `reclaim_owner`). One round trip either way.
                    let plan = self.owner_claim(&owner).require(
                        Precondition::Absent { key: owner.clone() },
                        OnViolation::Retry,
                    );
                    self.state = CreateState::Owner(owner);
                    Ok(Step::Apply(plan))
                }
                None => self.main(),
            },
            CreateState::Owner(owner) => match applied(input, "create")? {
                Applied::Done => self.main(),
                Applied::Violated { index: 0 } => Err(TransitionError::Conflict { key: owner }),
                Applied::Violated { .. } => {
                    // The owner key was already this user's (an earlier
                    // session of this id, or a create that stopped
                    // half-way): a retention removal of that session may
                    // take it away before this record lands, so it is
                    // claimed again once the record is written.
                    self.reclaim_owner = true;
                    self.main()
                }
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
                // The first read holds 1 + spread members: enough unless
                // more than one eviction is needed (or it saw none).
                if needed > 1 || oldest.is_empty() {
                    self.state = CreateState::OldestMore {
                        len,
                        needed,
                        expired,
                    };
                    return Ok(Step::Read(vec![Read::IndexRange(IndexRange {
                        key: self.active_key(),
                        min: ScoreBound::Unbounded,
                        max: ScoreBound::Unbounded,
                        newest_first: false,
                        limit: Some(needed.saturating_add(self.spread())),
                        with_scores: false,
                    })]));
                }
                self.read_oldest(len, needed, expired, oldest)
            }
            CreateState::OldestMore {
                len,
                needed,
                expired,
            } => {
                let oldest = members_of(
                    replies(input, "create")?.into_iter().next(),
                    &self.active_key(),
                )?;
                self.read_oldest(len, needed, expired, oldest)
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
            CreateState::Applying {
                plan,
                evict_guard,
                evicted,
                owners,
            } => match applied(input, "create")? {
                Applied::Done => match self.reclaim() {
                    Some(plan) => {
                        self.state = CreateState::Reclaiming(owners, evicted);
                        Ok(Step::Apply(plan))
                    }
                    None => self.remove_owners(owners, None, evicted),
                },
                Applied::Violated { index } => match plan.on_violation(index) {
                    OnViolation::Conflict => Err(TransitionError::Conflict {
                        key: violated_key(&plan, index),
                    }),
                    OnViolation::SessionLimit => Err(TransitionError::SessionLimit {
                        user: self.session.user_id().as_str().to_owned(),
                        max: self.limit().map_or(0, |l| l.max_active()),
                    }),
                    _ => {
                        // Another create took the sessions this one meant
                        // to evict: spread out next time.
                        if evict_guard == Some(index) {
                            self.contended = self.contended.saturating_add(1);
                        }
                        self.state = CreateState::Main;
                        Ok(Step::Backoff {
                            key: violated_key(&plan, index),
                        })
                    }
                },
                Applied::WrongType { key } => Err(wrong_type(&plan, key)),
            },
            // Created whatever the answer: an owner key that went to
            // another user meanwhile is `check`'s to report.
            CreateState::Reclaiming(owners, evicted) => {
                applied(input, "create")?;
                self.remove_owners(owners, None, evicted)
            }
            CreateState::RemovingOwners(owners, evicted) => {
                self.remove_owners(owners, Some(input), evicted)
            }
            CreateState::Finished => out_of_sequence("create"),
        }
    }
}

impl Create {
    fn owner_write(&self, owner: &str) -> Write {
        Write::Set {
            key: owner.to_owned(),
            value: self.session.user_id().as_str().as_bytes().to_vec(),
        }
    }

    /// The owner key set to this user unless it names another.
    fn owner_claim(&self, owner: &str) -> Plan {
        Plan::new(
            vec![Precondition::AbsentOrEquals {
                key: owner.to_owned(),
                value: self.session.user_id().as_str().as_bytes().to_vec(),
            }],
            vec![self.owner_write(owner)],
            OnViolation::Conflict,
        )
    }

    /// The claim again after the record, when the owner key was there.
    fn reclaim(&self) -> Option<Plan> {
        if !self.reclaim_owner {
            return None;
        }
        let owner = self.keys.owner_key(self.session.id())?;
        Some(self.owner_claim(&owner))
    }

    /// The removed sessions' owner keys (tagged layout), then the answer
    /// (which stands whether or not the store can write them).
    fn remove_owners(
        &mut self,
        mut owners: OwnerRemovals,
        input: Option<Input>,
        evicted: Vec<Session>,
    ) -> Result<Step<Created>, TransitionError> {
        match owners.step(input, "create")?.into_step() {
            Some(step) => {
                self.state = CreateState::RemovingOwners(owners, evicted);
                Ok(step)
            }
            None => Ok(Step::Done(Created {
                session: self.session.clone(),
                evicted,
            })),
        }
    }

    /// Reads the records of the `needed` sessions to evict: the oldest
    /// ones, or (once contended) a run of them at this creator's place in
    /// the window of the oldest.
    fn read_oldest(
        &mut self,
        len: u64,
        needed: usize,
        expired: Vec<Member>,
        mut oldest: Vec<Member>,
    ) -> Result<Step<Created>, TransitionError> {
        let take = needed.min(oldest.len());
        let slack = oldest.len() - take;
        if slack > 0 {
            let slots = u64::try_from(slack + 1).unwrap_or(u64::MAX);
            let offset = usize::try_from(self.pick() % slots).unwrap_or(0);
            oldest.drain(..offset);
        }
        oldest.truncate(take);
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
