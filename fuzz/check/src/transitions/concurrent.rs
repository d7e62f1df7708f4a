//! Concurrent pairs: another action run to completion at a `between` point
//! of the main one (or between two pages of a walk), and the serial orders
//! the result must equal.

use authsession_core::{sort_newest_first, Session};

use super::assertions::{limit_holds, may_take_batches};
use super::execute::{execute, run_checked, Ctx, Executed, Prepared};
use super::input::{user, Walk};
use super::model::{expired, predict, predict_evicting, same_modulo_expired, Model, Outcome};
use super::state::stored;
use super::walk::{assert_strictly_newest_first, walk_pages, InWalk};
use super::world::World;

impl World {
    pub(super) fn concurrent(&mut self, main: &Prepared, other: &Prepared, point: u8) {
        let ctx = self.ctx.clone();
        let before = self.model.clone();
        let point = point % 4;
        let mut calls = 0;
        let mut other_run: Option<Executed> = None;
        let mut check_limit = limit_holds(&ctx);
        let main_run = execute(&ctx, &mut self.kv, main, &mut |kv, b| {
            check_limit(kv, b);
            if calls == point && other_run.is_none() {
                other_run = Some(execute(&ctx, kv, other, &mut limit_holds(&ctx)));
            }
            calls += 1;
        });
        let other_run =
            other_run.unwrap_or_else(|| execute(&ctx, &mut self.kv, other, &mut limit_holds(&ctx)));

        let stored = stored(&ctx.keys, &ctx.policy, &self.kv);
        {
            let (_, after_main) = predict(&ctx, main, &before);
            let (_, after_other) = predict(&ctx, other, &before);
            let (_, main_then_other) = predict(&ctx, other, &after_main);
            let (_, other_then_main) = predict(&ctx, main, &after_other);
            self.assert_only_expired_removed_of(
                &[
                    &before,
                    &after_main,
                    &after_other,
                    &main_then_other,
                    &other_then_main,
                ],
                &stored,
            );
        }
        let runs = Runs {
            main,
            main_run: &main_run,
            other,
            other_run: &other_run,
        };
        let linearizable = linearizable(&ctx, &runs, &before, &stored);
        let torn_list = torn_list(&ctx, &runs, &before, &stored);
        if torn_list && !linearizable {
            // `other` ran whole inside the list.
            let (expected, after_other) = predict(&ctx, other, &before);
            assert_eq!(other_run.outcome, expected, "{other:?} inside a list");
            assert!(same_modulo_expired(&ctx, &stored, &after_other));
        }
        if !linearizable && !torn_list {
            assert_revoke_all_fails_safe(&ctx, &runs, &before, &stored);
        }
        self.model = stored;
    }

    pub(super) fn concurrent_pages(&mut self, walk: &Walk, other: &Prepared, after: u8) {
        let ctx = self.ctx.clone();
        let user = user(walk.user);
        let before = self.model.clone();
        let visible_before = before.visible(&ctx, &user, walk.active);
        // `after`: the page (`(after & 0x7f) % 3`); with the high bit, inside it at a
        // `between` point (`((after & 0x7f) >> 3) % 3`), else after it.
        let page = usize::from((after & 0x7f) % 3);
        let at = if after & 0x80 != 0 {
            InWalk::Inside {
                page,
                call: usize::from(((after & 0x7f) >> 3) % 3),
            }
        } else {
            InWalk::After { page }
        };
        let mut other_next = None;
        let mut walked = walk_pages(&ctx, &mut self.kv, walk, &mut |kv, here| {
            if here == at && other_next.is_none() {
                other_next = Some(run_checked(&ctx, kv, other));
            }
        });
        assert_eq!(walked.error, None, "{walk:?}");
        let other_next = match other_next {
            Some(next) => next,
            None => run_checked(&ctx, &mut self.kv, other),
        };
        let stored = stored(&ctx.keys, &ctx.policy, &self.kv);
        self.assert_only_expired_removed_of(&[&before, &other_next], &stored);
        let visible_after = stored.visible(&ctx, &user, walk.active);

        let got: Vec<Session> = walked.pages.drain(..).flat_map(|p| p.sessions).collect();
        assert_strictly_newest_first(&got);
        let known = |s: &Session| visible_before.contains(s) || visible_after.contains(s);
        for session in &got {
            assert!(known(session), "page returned {session:?}, never visible");
        }
        for session in visible_before.iter().filter(|s| visible_after.contains(s)) {
            assert!(
                got.iter().any(|g| g == session),
                "pages skipped {session:?}, unchanged throughout"
            );
        }
        self.model = stored;
    }
}

/// The two actions of a concurrent pair and what each did.
struct Runs<'a> {
    main: &'a Prepared,
    main_run: &'a Executed,
    other: &'a Prepared,
    other_run: &'a Executed,
}

/// Whether the outcomes and the stored state equal one of the two serial
/// orders.
fn linearizable(ctx: &Ctx, runs: &Runs<'_>, before: &Model, stored: &Model) -> bool {
    // Expired sessions may be removed by either operation at any point;
    // they are invisible, so the serial orders start from the state
    // before with or without the ones that are gone by now.
    // (A removed id may have been created again since.)
    let mut pruned = before.clone();
    let gone: Vec<String> = before
        .sessions
        .iter()
        .filter(|(id, s)| stored.sessions.get(*id) != Some(*s) && expired(&ctx.policy, s, ctx.now))
        .map(|(id, _)| id.clone())
        .collect();
    for id in &gone {
        pruned.remove_expired(id);
    }
    for start in [before, &pruned] {
        let (main_first, after_main) = predict(ctx, runs.main, start);
        let (other_second, main_then_other) = predict(ctx, runs.other, &after_main);
        let main_then_other_ok = main_first == runs.main_run.outcome
            && other_second == runs.other_run.outcome
            && same_modulo_expired(ctx, stored, &main_then_other);
        let (other_first, after_other) = predict(ctx, runs.other, start);
        // Interrupted by `other`, `main` retried: it may have lost its
        // eviction to `other` and picked among the two oldest.
        let other_then_main_ok = (0..2).any(|skip| {
            let (main_second, other_then_main) =
                predict_evicting(ctx, runs.main, &after_other, skip);
            main_second == runs.main_run.outcome
                && other_first == runs.other_run.outcome
                && same_modulo_expired(ctx, stored, &other_then_main)
        });
        if main_then_other_ok || other_then_main_ok {
            return true;
        }
    }
    false
}

/// Whether the main action is a list that read the index before `other`
/// and the records after it.
fn torn_list(ctx: &Ctx, runs: &Runs<'_>, before: &Model, stored: &Model) -> bool {
    // A list reads the index, then the records: with a change in
    // between that touches two sessions at once (a revoke-oldest create
    // revokes one and adds another), it returns the sessions the index
    // held before, as their records are after. Not a snapshot; accepted
    // as that and nothing else.
    match (runs.main, &runs.main_run.outcome) {
        (Prepared::List(user), Outcome::Listed(Ok(listed))) => {
            let mut torn: Vec<Session> = before
                .of_user(user)
                .filter_map(|s| stored.sessions.get(s.id().as_str()))
                .filter(|s| s.user_id() == user && !expired(&ctx.policy, s, ctx.now))
                .cloned()
                .collect();
            sort_newest_first(&mut torn);
            *listed == torn
        }
        _ => false,
    }
}

/// A revoke all need not be linearizable with everything around it, only
/// fail safe: one whose range held a batch or more may take several
/// batches, each atomic but not the whole; and a create beside it may add
/// a session past the end of its walk (the highest score present at its
/// start), which may stay active, and with `revoke-oldest` revoke one of
/// the user's sessions in between. Either way it must still leave no
/// session active that the user had at its start, revoke only the user's
/// sessions, as its input says, and the create's session must be stored.
fn assert_revoke_all_fails_safe(ctx: &Ctx, runs: &Runs<'_>, before: &Model, stored: &Model) {
    let (_, after_other) = predict(ctx, runs.other, before);
    let (_, after_main) = predict(ctx, runs.main, before);
    let pair = [
        (runs.main, runs.main_run, &after_other, runs.other),
        (runs.other, runs.other_run, &after_main, runs.main),
    ];
    let revoke_all = pair.into_iter().find(|(p, _, after, partner)| {
        may_take_batches(ctx, p, before)
            || may_take_batches(ctx, p, after)
            || matches!((p, partner), (Prepared::RevokeAll(input, _), Prepared::Create(s))
                if s.user_id() == &input.user_id)
    });
    let Some((Prepared::RevokeAll(input, _), _, _, partner)) = revoke_all else {
        panic!(
            "not linearizable: main {:?} -> {:?}, other {:?} -> {:?}, \
             stored {stored:?}, before {before:?}",
            runs.main, runs.main_run.outcome, runs.other, runs.other_run.outcome
        );
    };
    for (id, session) in &before.sessions {
        if session.user_id() == &input.user_id {
            assert!(
                stored.sessions.get(id).is_none_or(|s| !s.is_active()),
                "revoke all left {id} active"
            );
        }
    }
    let partner_run = if std::ptr::eq(partner, runs.main) {
        runs.main_run
    } else {
        runs.other_run
    };
    if let Outcome::Created(Ok((created, _))) = &partner_run.outcome {
        let kept = stored.sessions.get(created.id().as_str());
        assert!(
            kept.is_some_and(
                |s| s.user_id() == created.user_id() && s.created_at() == created.created_at()
            ),
            "the create beside revoke all is not stored: {created:?}"
        );
    }
    for (prepared, run) in [(runs.main, runs.main_run), (runs.other, runs.other_run)] {
        let (Prepared::RevokeAll(input, _), Outcome::RevokedAll(Ok((revoked, _)))) =
            (prepared, &run.outcome)
        else {
            continue;
        };
        for s in revoked {
            let expected = s
                .clone()
                .revoked_no_earlier_than_creation(input.revocation.clone());
            assert!(
                s.user_id() == &input.user_id && s == &expected,
                "revoke all revoked {s:?}"
            );
        }
    }
}
