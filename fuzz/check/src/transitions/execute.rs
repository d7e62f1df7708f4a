//! Execution: an action built as the core's operation and run with the
//! core's own reference loop over the in-memory store, with a hook at its
//! `between` points for concurrent actions and tampering.

use std::collections::BTreeMap;

use authsession_core::model::MemoryKv;
use authsession_core::op::{Between, Count, Create, Get, List, Policy, Revoke, RevokeAll};
use authsession_core::{
    op, ClientPublicKey, DeviceSessionId, KeySpace, Layout, RevokeSessionInput,
    RevokeUserSessionsInput, Session, Timestamp, UserId,
};

use super::assertions::limit_holds;
use super::input::{id, pick, user, Action, OFFSETS_NANOS};
use super::model::{kind_of, predict, revocation, same_modulo_expired, Model, Outcome};
use super::state::stored;
use super::walk::assert_strictly_newest_first;

/// The attempts the loop allows per batch: with at most one concurrent
/// change, the second attempt must succeed.
pub(super) const MAX_ATTEMPTS: u32 = 2;

/// The clock and the configuration an operation runs with.
#[derive(Debug, Clone)]
pub(super) struct Ctx {
    pub(super) keys: KeySpace,
    pub(super) policy: Policy,
    pub(super) now: Timestamp,
    /// Users above the limit after a repair (damage hid active sessions
    /// from the limit), with the most active sessions they may hold: never
    /// more than then, and less as sessions go.
    pub(super) over_limit: BTreeMap<String, usize>,
}

impl Ctx {
    pub(super) fn at(&self, offset: u8) -> Option<Timestamp> {
        self.now
            .checked_add_nanos(pick(OFFSETS_NANOS, offset))
            .ok()
            .filter(|t| !t.is_go_zero())
    }

    pub(super) fn tagged(&self) -> bool {
        self.keys.layout() == Layout::Tagged
    }

    pub(super) fn index_key(&self, user: &UserId, index: u8) -> String {
        match index % 3 {
            0 => self.keys.user_sessions_key(user),
            1 => self.keys.user_active_sessions_key(user),
            _ => self.keys.user_revoked_sessions_key(user),
        }
    }
}

/// An [`Action`] with its domain values built.
#[derive(Debug, Clone)]
pub(super) enum Prepared {
    Create(Session),
    Revoke(RevokeSessionInput),
    RevokeAll(RevokeUserSessionsInput, bool),
    List(UserId),
    Get(DeviceSessionId, Option<UserId>),
    Count(UserId),
    /// The action names an instant that is not valid (Go's zero time, or
    /// outside years 0000..=9999).
    Nothing,
}

pub(super) fn prepare(ctx: &Ctx, action: &Action) -> Prepared {
    match *action {
        Action::Create {
            id: i,
            user: w,
            key,
            created,
            revoked,
        } => {
            let Some(created) = ctx.at(created) else {
                return Prepared::Nothing;
            };
            let Ok(session) =
                Session::active(id(i), user(w), ClientPublicKey::from([key; 32]), created)
            else {
                return Prepared::Nothing;
            };
            match revoked {
                None => Prepared::Create(session),
                Some((at, reason)) => {
                    let Some(at) = ctx.at(at) else {
                        return Prepared::Nothing;
                    };
                    let at = at.max(session.created_at());
                    match revocation(at, reason).and_then(|r| session.revoked(r)) {
                        Ok(session) => Prepared::Create(session),
                        Err(_) => Prepared::Nothing,
                    }
                }
            }
        }
        Action::Revoke { id: i, at, reason } => match ctx.at(at).map(|at| revocation(at, reason)) {
            Some(Ok(revocation)) => Prepared::Revoke(RevokeSessionInput {
                device_session_id: id(i),
                revocation,
            }),
            _ => Prepared::Nothing,
        },
        Action::RevokeAll {
            user: w,
            at,
            reason,
            collect,
        } => match ctx.at(at).map(|at| revocation(at, reason)) {
            Some(Ok(revocation)) => Prepared::RevokeAll(
                RevokeUserSessionsInput {
                    user_id: user(w),
                    revocation,
                },
                collect,
            ),
            _ => Prepared::Nothing,
        },
        Action::List { user: w } => Prepared::List(user(w)),
        Action::Get { id: i, user: w } => Prepared::Get(id(i), w.map(user)),
        Action::Count { user: w } => Prepared::Count(user(w)),
    }
}

/// Called at every `between` point of an operation.
pub(super) type Hook<'h> = &'h mut dyn FnMut(&mut MemoryKv, Between);

pub(super) fn no_hook(_: &mut MemoryKv, _: Between) {}

/// What running an action returned.
pub(super) struct Executed {
    pub(super) outcome: Outcome,
}

/// Runs `prepared` with the core's reference loop, calling `hook` at every
/// `between` point. Checks what holds of any run: kinds are snake_case,
/// the attempts never run out, reports are self-consistent.
pub(super) fn execute(
    ctx: &Ctx,
    kv: &mut MemoryKv,
    prepared: &Prepared,
    hook: Hook<'_>,
) -> Executed {
    let keys = &ctx.keys;
    let (policy, now) = (ctx.policy, ctx.now);
    let mut between = |kv: &mut MemoryKv, b: Between| hook(kv, b);
    let outcome = match prepared {
        Prepared::Nothing => {
            between(kv, Between::Read);
            Outcome::Nothing
        }
        Prepared::Create(session) => {
            let run = op::run_with(
                kv,
                Create::new(keys, policy, now, session.clone()),
                MAX_ATTEMPTS,
                &mut between,
            );
            Outcome::Created(
                run.map(|created| {
                    assert_eq!(&created.session, session);
                    (created.session, created.evicted)
                })
                .map_err(|e| kind_of(&e)),
            )
        }
        Prepared::Revoke(input) => {
            let run = op::run_with(
                kv,
                Revoke::new(keys, policy, now, input.clone()),
                MAX_ATTEMPTS,
                &mut between,
            );
            if let Ok(outcome) = &run {
                assert!(outcome.is_consistent(), "{outcome:?}");
                assert_eq!(outcome.session().id(), &input.device_session_id);
            }
            Outcome::Revoked(run.map_err(|e| kind_of(&e)))
        }
        Prepared::RevokeAll(input, collect) => {
            let run = op::run_with(
                kv,
                RevokeAll::new(keys, policy, input.clone(), *collect),
                MAX_ATTEMPTS,
                &mut between,
            );
            Outcome::RevokedAll(
                run.map(|report| {
                    let batch = u64::try_from(policy.batch_size.get()).expect("small batch");
                    // Every batch revokes a session or repairs drift (a
                    // revoked record left in the active index).
                    assert!(
                        report.batches <= report.count + report.drift_repaired
                            && report.batches >= report.count.div_ceil(batch),
                        "{} batches of at most {batch} for {} sessions ({} drift repaired)",
                        report.batches,
                        report.count,
                        report.drift_repaired
                    );
                    if *collect {
                        assert_eq!(u64::try_from(report.revoked.len()).ok(), Some(report.count));
                        let outcome = report.clone().into_outcome();
                        assert!(outcome.is_consistent_for(&input.user_id), "{outcome:?}");
                    } else {
                        assert!(report.revoked.is_empty(), "counting form collected");
                    }
                    (report.revoked, report.count)
                })
                .map_err(|e| kind_of(&e)),
            )
        }
        Prepared::List(user) => {
            let run = op::run_with(
                kv,
                List::new(keys, policy, now, user.clone()),
                MAX_ATTEMPTS,
                &mut between,
            );
            if let Ok(sessions) = &run {
                assert_strictly_newest_first(sessions);
                assert!(sessions.iter().all(|s| s.user_id() == user));
            }
            Outcome::Listed(run.map_err(|e| kind_of(&e)))
        }
        Prepared::Get(id, for_user) => {
            let get = match for_user {
                None => Get::new(keys, policy, now, id.clone()),
                Some(user) => Get::for_user(keys, policy, now, user.clone(), id.clone()),
            };
            let run = op::run_with(kv, get, MAX_ATTEMPTS, &mut between);
            if let Ok(session) = &run {
                assert_eq!(session.id(), id);
            }
            Outcome::Got(run.map_err(|e| kind_of(&e)))
        }
        Prepared::Count(user) => Outcome::Counted(
            op::run_with(kv, Count::new(keys, user), MAX_ATTEMPTS, &mut between)
                .map_err(|e| kind_of(&e)),
        ),
    };
    if let Some(kind) = error_kind(&outcome) {
        assert_ne!(kind, "contention_exhausted", "{prepared:?}");
    }
    Executed { outcome }
}

pub(super) fn error_kind(outcome: &Outcome) -> Option<&'static str> {
    match outcome {
        Outcome::Nothing => None,
        Outcome::Created(r) => r.as_ref().err().copied(),
        Outcome::Revoked(r) => r.as_ref().err().copied(),
        Outcome::RevokedAll(r) => r.as_ref().err().copied(),
        Outcome::Listed(r) => r.as_ref().err().copied(),
        Outcome::Got(r) => r.as_ref().err().copied(),
        Outcome::Counted(r) => r.as_ref().err().copied(),
    }
}

/// Runs `prepared` on the untampered `kv` and checks its outcome and the
/// state afterwards against the model of the state it started from.
pub(super) fn run_checked(ctx: &Ctx, kv: &mut MemoryKv, prepared: &Prepared) -> Model {
    // Earlier steps may have removed expired sessions: start from what is
    // stored.
    let current = stored(&ctx.keys, &ctx.policy, kv);
    let (expected, next) = predict(ctx, prepared, &current);
    let run = execute(ctx, kv, prepared, &mut limit_holds(ctx));
    assert_eq!(run.outcome, expected, "{prepared:?}");
    let after = stored(&ctx.keys, &ctx.policy, kv);
    assert!(
        same_modulo_expired(ctx, &after, &next),
        "after {prepared:?}"
    );
    next
}
