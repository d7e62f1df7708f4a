//! Assertions shared by the steps: lazy removal, the session limit and
//! revoke all failing safe.

use authsession_core::model::MemoryKv;
use authsession_core::op::{Between, RevokeAll};
use authsession_core::{
    codec, op, DeviceSessionId, RevokeUserSessionsInput, Session, TransitionError, UserId,
};

use super::execute::{Ctx, Prepared, MAX_ATTEMPTS};
use super::input::all_users;
use super::model::{expired, revocation, Model};

/// A list (or a full walk) of `user` that met `k` sessions past their
/// retention removed at least `min(k, batch size)` of them: each call
/// removes what it meets, a batch at most, in one short script.
pub(super) fn assert_lazy_removal(ctx: &Ctx, before: &Model, after: &Model, user: &UserId) {
    let met: Vec<&Session> = before
        .of_user(user)
        .filter(|s| expired(&ctx.policy, s, ctx.now))
        .collect();
    let removed = met
        .iter()
        .filter(|s| !after.sessions.contains_key(s.id().as_str()))
        .count();
    // At most 4 a call in the tagged layout, where each removal costs a
    // round trip more for its owner key.
    let mut batch = ctx.policy.batch_size.get();
    if ctx.tagged() {
        batch = batch.min(4);
    }
    assert!(
        removed >= met.len().min(batch),
        "a list of {user} met {} expired sessions and removed {removed} (batch {batch}): {met:?}",
        met.len()
    );
}

/// Whether `prepared` is a revoke all whose range on `model` holds at
/// least a batch of active sessions (so it may read more than once).
pub(super) fn may_take_batches(ctx: &Ctx, prepared: &Prepared, model: &Model) -> bool {
    let Prepared::RevokeAll(input, _) = prepared else {
        return false;
    };
    let in_range = model
        .of_user(&input.user_id)
        .filter(|s| s.is_active())
        .count();
    in_range >= ctx.policy.batch_size.get()
}

/// A `between` hook that checks the limit after every read and apply.
pub(super) fn limit_holds(ctx: &Ctx) -> impl FnMut(&mut MemoryKv, Between) + '_ {
    move |kv, _| assert_limit(ctx, kv)
}

pub(super) fn assert_limit(ctx: &Ctx, kv: &MemoryKv) {
    let Some(limit) = ctx.policy.session_limit else {
        return;
    };
    let max = usize::try_from(limit.max_active()).expect("small");
    for user in all_users() {
        let active = kv.index_len(&ctx.keys.user_active_sessions_key(&user));
        let allowed = ctx
            .over_limit
            .get(user.as_str())
            .copied()
            .unwrap_or(0)
            .max(max);
        assert!(
            active <= allowed,
            "{user} holds {active} active sessions, limit {max} (allowed {allowed}): {:?}",
            kv.index_range(&ctx.keys.user_active_sessions_key(&user), None)
        );
    }
}

/// After a step: the users above the limit may hold only as many active
/// sessions as they hold now.
pub(super) fn shrink_over_limit(ctx: &mut Ctx, kv: &MemoryKv) {
    let Some(limit) = ctx.policy.session_limit else {
        return;
    };
    let max = usize::try_from(limit.max_active()).expect("small");
    let keys = ctx.keys.clone();
    ctx.over_limit.retain(|user, allowed| {
        let user = UserId::parse(user.as_str()).expect("a user of the alphabet");
        *allowed = (*allowed).min(kv.index_len(&keys.user_active_sessions_key(&user)));
        *allowed > max
    });
}

/// Revoke all never fails open, whatever the damage: afterwards no
/// decodable active session of `user` reachable from either of its indexes
/// at the start is still active (each revoked no earlier than created),
/// and every active-index member left from the start is named (or the
/// index itself is). Runs on a copy of `kv`.
pub(super) fn assert_revoke_all_fails_safe(ctx: &Ctx, kv: &MemoryKv, user: &UserId) {
    let keys = &ctx.keys;
    let input = RevokeUserSessionsInput {
        user_id: user.clone(),
        revocation: revocation(ctx.now, 0).expect("valid instant"),
    };
    let mut after = kv.clone();
    let run = op::run(
        &mut after,
        RevokeAll::new(keys, ctx.policy, input, false),
        MAX_ATTEMPTS,
    );
    let report = match run {
        Ok(report) => {
            assert!(report.unrevocable.is_empty(), "{report:?}");
            report
        }
        Err(TransitionError::PartiallyRevoked(report)) => *report,
        // Contention cannot happen here: no one else writes.
        Err(e) => panic!("revoke all on damage: {} {e}", e.kind()),
    };
    let active_key = keys.user_active_sessions_key(user);
    for index in [active_key.clone(), keys.user_sessions_key(user)] {
        for (member, _) in kv.index_range(&index, None) {
            let Some(sid) = std::str::from_utf8(&member)
                .ok()
                .and_then(|t| DeviceSessionId::parse(t).ok())
            else {
                continue;
            };
            let record_key = keys.record_key(user, &sid);
            let Some(was) = kv
                .get(&record_key)
                .and_then(|b| codec::decode(&sid, b).ok())
            else {
                continue;
            };
            if was.user_id() != user || !was.is_active() {
                continue;
            }
            let now = after
                .get(&record_key)
                .and_then(|b| codec::decode(&sid, b).ok())
                .unwrap_or_else(|| panic!("{record_key} lost by revoke all"));
            let revocation = now
                .revocation()
                .unwrap_or_else(|| panic!("revoke all left {sid:?} active: {report:?}"));
            assert!(revocation.at() >= now.created_at());
        }
    }
    let index_named = report.unrevocable.iter().any(|u| u.key == active_key);
    let before: Vec<Vec<u8>> = kv
        .index_range(&active_key, None)
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    for (member, _) in after.index_range(&active_key, None) {
        if !before.contains(&member) {
            continue;
        }
        let text = String::from_utf8_lossy(&member).into_owned();
        let named = report
            .unrevocable
            .iter()
            .any(|u| u.member.as_deref() == Some(text.as_str()));
        assert!(
            named || index_named,
            "revoke all left {text:?} in {active_key} unnamed: {report:?}"
        );
    }
}
