//! The reference model: the store's sessions as plain values and what each
//! action must do to them, predicted independently of the core's plans.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::is_snake_case;
use authsession_core::op::{OnLimit, Policy};
use authsession_core::{
    sort_newest_first, DeviceSessionId, IndexScore, Revocation, RevokeActorId, RevokeActorType,
    RevokeReasonCode, RevokeSessionOutcome, Session, Timestamp, TransitionError, UserId,
    ValidationError,
};

use super::execute::{Ctx, Prepared};
use super::input::reason;

pub(super) fn revocation(at: Timestamp, reason_index: u8) -> Result<Revocation, ValidationError> {
    let actor_id = if reason_index.is_multiple_of(2) {
        ""
    } else {
        "admin<1>"
    };
    Revocation::new(
        at,
        reason(reason_index),
        RevokeActorType::parse("user").expect("literal code is valid"),
        RevokeActorId::parse(actor_id).expect("literal actor id is valid"),
    )
}

pub(super) fn nanos_of(duration: Duration) -> i128 {
    i128::try_from(duration.as_nanos()).unwrap_or(i128::MAX)
}

/// Whether `session` is past its retention at `now`: revoked at `at`, and
/// `at + retention < now` (written here from the rule, not taken from the
/// core).
pub(super) fn expired(policy: &Policy, session: &Session, now: Timestamp) -> bool {
    match (policy.revoked_retention, session.revocation()) {
        (Some(retention), Some(r)) => {
            r.at().unix_nanos().saturating_add(nanos_of(retention)) < now.unix_nanos()
        }
        _ => false,
    }
}

pub(super) fn score(at: Timestamp) -> f64 {
    IndexScore::of(at).as_f64()
}

/// Whether `stored` is `predicted` except for sessions past their
/// retention at `ctx.now` that are gone — each with its owner key, when
/// that named the session's user (owner keys go with their sessions).
pub(super) fn same_modulo_expired(ctx: &Ctx, stored: &Model, predicted: &Model) -> bool {
    let owners_ok = predicted.owners.iter().all(|(id, owner)| {
        let removed_with_session = !stored.sessions.contains_key(id)
            && predicted
                .sessions
                .get(id)
                .is_some_and(|s| s.user_id().as_str() == owner && expired(&ctx.policy, s, ctx.now));
        match stored.owners.get(id) {
            Some(kept) => kept == owner && !removed_with_session,
            None => removed_with_session,
        }
    }) && stored
        .owners
        .keys()
        .all(|id| predicted.owners.contains_key(id));
    owners_ok
        && stored
            .sessions
            .iter()
            .all(|(id, s)| predicted.sessions.get(id) == Some(s))
        && predicted
            .sessions
            .iter()
            .all(|(id, s)| stored.sessions.contains_key(id) || expired(&ctx.policy, s, ctx.now))
}

/// What an action reported, comparable between the store and the model.
/// Errors are compared by kind.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Outcome {
    Nothing,
    /// The session and the sessions evicted by the limit.
    Created(Result<(Session, Vec<Session>), &'static str>),
    Revoked(Result<RevokeSessionOutcome, &'static str>),
    /// The revoked sessions (empty when not collected) and the count.
    RevokedAll(Result<(Vec<Session>, u64), &'static str>),
    Listed(Result<Vec<Session>, &'static str>),
    Got(Result<Session, &'static str>),
    Counted(Result<u64, &'static str>),
}

/// The reference model: the physically stored sessions by id (including
/// those past their retention that no operation has removed yet), and, in
/// the tagged layout, the owner keys (which outlive their records).
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Model {
    pub(super) sessions: BTreeMap<String, Session>,
    pub(super) owners: BTreeMap<String, String>,
}

impl Model {
    /// Removes the expired session `id`, and its owner key when that names
    /// the session's user: they go together.
    pub(super) fn remove_expired(&mut self, id: &str) {
        if let Some(session) = self.sessions.remove(id) {
            if self.owners.get(id).map(String::as_str) == Some(session.user_id().as_str()) {
                self.owners.remove(id);
            }
        }
    }

    pub(super) fn of_user<'m>(
        &'m self,
        user: &'m UserId,
    ) -> impl Iterator<Item = &'m Session> + 'm {
        self.sessions.values().filter(move |s| s.user_id() == user)
    }

    pub(super) fn active_count(&self, user: &UserId) -> usize {
        self.of_user(user).filter(|s| s.is_active()).count()
    }

    /// The user's sessions visible at `now`, newest first.
    pub(super) fn visible(&self, ctx: &Ctx, user: &UserId, active_only: bool) -> Vec<Session> {
        let mut sessions: Vec<Session> = self
            .of_user(user)
            .filter(|s| !expired(&ctx.policy, s, ctx.now) && (!active_only || s.is_active()))
            .cloned()
            .collect();
        sort_newest_first(&mut sessions);
        sessions
    }

    /// The stored session `id` resolves to by id alone (tagged: through
    /// the owner key), if any.
    pub(super) fn by_id(&self, ctx: &Ctx, id: &DeviceSessionId) -> Option<&Session> {
        let session = self.sessions.get(id.as_str())?;
        if ctx.tagged()
            && self.owners.get(id.as_str()).map(String::as_str) != Some(session.user_id().as_str())
        {
            return None;
        }
        Some(session)
    }
}

pub(super) fn kind_of(e: &TransitionError) -> &'static str {
    let kind = e.kind();
    assert!(is_snake_case(kind), "error kind {kind:?} of {e}");
    assert!(!e.to_string().is_empty());
    kind
}

/// The oldest active sessions of `user` a `revoke-oldest` create revokes:
/// the first `needed` in active-index order (score, then member bytes),
/// after skipping `skip` of them (see [`predict_evicting`]).
pub(super) fn oldest_active(
    model: &Model,
    user: &UserId,
    needed: usize,
    skip: usize,
) -> Vec<Session> {
    let mut active: Vec<&Session> = model.of_user(user).filter(|s| s.is_active()).collect();
    active.sort_by(|a, b| {
        score(a.created_at())
            .total_cmp(&score(b.created_at()))
            .then_with(|| a.id().as_str().as_bytes().cmp(b.id().as_str().as_bytes()))
    });
    active
        .into_iter()
        .skip(skip)
        .take(needed)
        .cloned()
        .collect()
}

pub(super) fn limit_revocation(at: Timestamp) -> Revocation {
    Revocation::new(
        at,
        RevokeReasonCode::parse("session_limit").expect("valid code"),
        RevokeActorType::parse("system").expect("valid code"),
        RevokeActorId::empty(),
    )
    .expect("a valid instant")
}

/// What `prepared` must report on `model` at `ctx.now`, and the model
/// afterwards.
pub(super) fn predict(ctx: &Ctx, prepared: &Prepared, model: &Model) -> (Outcome, Model) {
    predict_evicting(ctx, prepared, model, 0)
}

/// [`predict`], where a `revoke-oldest` create skips the `skip` oldest
/// sessions: a create that lost its eviction to a concurrent one may pick
/// among a few of the oldest on its next attempt, so the creators at the
/// limit do not all race for one session.
pub(super) fn predict_evicting(
    ctx: &Ctx,
    prepared: &Prepared,
    model: &Model,
    skip: usize,
) -> (Outcome, Model) {
    let mut next = model.clone();
    let outcome = match prepared {
        Prepared::Nothing => Outcome::Nothing,
        Prepared::Create(session) => {
            Outcome::Created(predict_create(ctx, model, &mut next, session, skip))
        }
        Prepared::Revoke(input) => {
            let id = &input.device_session_id;
            Outcome::Revoked(match model.by_id(ctx, id) {
                None => Err("not_found"),
                Some(current) if expired(&ctx.policy, current, ctx.now) => {
                    next.remove_expired(id.as_str());
                    Err("not_found")
                }
                Some(current) if !current.is_active() => {
                    Ok(RevokeSessionOutcome::AlreadyRevoked(current.clone()))
                }
                Some(current) => match current.clone().revoked(input.revocation.clone()) {
                    Err(e) => Err(e.kind()),
                    Ok(revoked) => {
                        next.sessions
                            .insert(revoked.id().as_str().to_owned(), revoked.clone());
                        Ok(RevokeSessionOutcome::Revoked(revoked))
                    }
                },
            })
        }
        Prepared::RevokeAll(input, collect) => {
            // Existence decides, not clocks: every active session, one
            // dated after the revocation revoked at its own creation time.
            let mut revoked: Vec<Session> = model
                .of_user(&input.user_id)
                .filter(|s| s.is_active())
                .map(|s| {
                    s.clone()
                        .revoked_no_earlier_than_creation(input.revocation.clone())
                })
                .collect();
            sort_newest_first(&mut revoked);
            for session in &revoked {
                next.sessions
                    .insert(session.id().as_str().to_owned(), session.clone());
            }
            let count = u64::try_from(revoked.len()).expect("few sessions");
            if !collect {
                revoked.clear();
            }
            Outcome::RevokedAll(Ok((revoked, count)))
        }
        // Which expired sessions a list removes on the way (at most a
        // batch) is checked by `assert_lazy_removal`.
        Prepared::List(user) => Outcome::Listed(Ok(model.visible(ctx, user, false))),
        Prepared::Get(id, for_user) => {
            let found = match for_user {
                None => model.by_id(ctx, id),
                Some(user) => model
                    .sessions
                    .get(id.as_str())
                    .filter(|s| s.user_id() == user),
            };
            Outcome::Got(match found {
                None => Err("not_found"),
                Some(session) if expired(&ctx.policy, session, ctx.now) => {
                    next.remove_expired(id.as_str());
                    Err("not_found")
                }
                Some(session) => Ok(session.clone()),
            })
        }
        Prepared::Count(user) => Outcome::Counted(Ok(
            u64::try_from(model.active_count(user)).expect("few sessions")
        )),
    };
    (outcome, next)
}

/// [`predict`] for a create of `session`.
pub(super) fn predict_create(
    ctx: &Ctx,
    model: &Model,
    next: &mut Model,
    session: &Session,
    skip: usize,
) -> Result<(Session, Vec<Session>), &'static str> {
    let user = session.user_id();
    let key = session.id().as_str();
    if ctx.tagged() {
        // The owner key is claimed first, in its own step: it stays even
        // when the create then fails.
        match model.owners.get(key) {
            Some(owner) if owner != user.as_str() => return Err("conflict"),
            _ => {
                next.owners.insert(key.to_owned(), user.as_str().to_owned());
            }
        }
    }
    if model.sessions.contains_key(key) {
        return Err("conflict");
    }
    let mut evicted = Vec::new();
    if let (Some(limit), true) = (ctx.policy.session_limit, session.is_active()) {
        let max = usize::try_from(limit.max_active()).expect("small limit");
        let len = model.active_count(user);
        match limit.on_limit {
            OnLimit::Reject if len >= max => return Err("session_limit"),
            OnLimit::RevokeOldest if len >= max => {
                let needed = (len + 1 - max).min(ctx.policy.batch_size.get());
                for old in oldest_active(model, user, needed, skip) {
                    let at = old.created_at().max(ctx.now);
                    let revoked = old
                        .revoked(limit_revocation(at))
                        .expect("not before creation");
                    next.sessions
                        .insert(revoked.id().as_str().to_owned(), revoked.clone());
                    evicted.push(revoked);
                }
            }
            _ => {}
        }
    }
    // Which of the user's expired sessions the create removes on the way
    // is its own business (see `World::settle`).
    next.sessions.insert(key.to_owned(), session.clone());
    Ok((session.clone(), evicted))
}
