//! One input's run: the store, the model and the clock, stepped through
//! the input and checked after every step.

use std::collections::BTreeMap;
use std::time::Duration;

use authsession_core::model::MemoryKv;
use authsession_core::op::{OnLimit, Policy, SessionLimit};
use authsession_core::{
    codec, op, DeviceSessionId, KeySpace, Layout, Session, Timestamp, DEFAULT_KEY_BASE,
};

use super::assertions::{assert_lazy_removal, assert_limit, limit_holds, shrink_over_limit};
use super::execute::{execute, no_hook, prepare, Ctx, Prepared};
use super::input::{
    all_ids, all_users, pick, Op, Setup, Walk, ADVANCES_NANOS, ERAS_UNIX_NANOS, RETENTIONS_NANOS,
};
use super::model::{expired, predict, same_modulo_expired, Model};
use super::state::{reference_audit, stored};
use super::walk::walk_pages;

pub(super) struct World {
    pub(super) ctx: Ctx,
    pub(super) kv: MemoryKv,
    pub(super) model: Model,
}

impl World {
    pub(super) fn new(setup: Setup) -> Self {
        let layout = if setup.tagged {
            Layout::Tagged
        } else {
            Layout::Reference
        };
        let keys = KeySpace::with_base_and_layout(DEFAULT_KEY_BASE, layout)
            .expect("the default base is valid");
        let policy = Policy {
            revoked_retention: setup
                .retention
                .map(|r| Duration::from_nanos(pick(RETENTIONS_NANOS, r))),
            session_limit: setup.limit.and_then(|(max, oldest)| {
                SessionLimit::new(
                    1 + u32::from(max % 3),
                    if oldest {
                        OnLimit::RevokeOldest
                    } else {
                        OnLimit::Reject
                    },
                )
            }),
            batch_size: op::BatchSize::new(1 + usize::from(setup.batch % 5)).expect("1..=5"),
            ..Policy::default()
        };
        let now = Timestamp::from_unix_nanos(pick(ERAS_UNIX_NANOS, setup.era))
            .expect("eras are in range");
        Self {
            ctx: Ctx {
                keys,
                policy,
                now,
                over_limit: BTreeMap::new(),
            },
            kv: MemoryKv::new(),
            model: Model::default(),
        }
    }

    /// Moves the clock forward (it stays put at the end of year 9999).
    pub(super) fn advance(&mut self, advance: u8) {
        if let Ok(now) = self
            .ctx
            .now
            .checked_add_nanos(pick(ADVANCES_NANOS, advance))
        {
            self.ctx.now = now;
        }
    }

    pub(super) fn step(&mut self, op: &Op) {
        match op {
            Op::Do(action) => {
                let prepared = prepare(&self.ctx, action);
                let before = self.model.clone();
                let ctx = self.ctx.clone();
                let executed = execute(&ctx, &mut self.kv, &prepared, &mut limit_holds(&ctx));
                let (expected, next) = predict(&self.ctx, &prepared, &self.model);
                assert_eq!(
                    executed.outcome, expected,
                    "{prepared:?} at {}",
                    self.ctx.now
                );
                self.settle(&before, next, &prepared);
            }
            Op::Pages(walk) => self.pages(walk),
            Op::Concurrent { main, other, point } => {
                let main = prepare(&self.ctx, main);
                let other = prepare(&self.ctx, other);
                self.concurrent(&main, &other, *point);
            }
            Op::ConcurrentPages { walk, other, after } => {
                let other = prepare(&self.ctx, other);
                self.concurrent_pages(walk, &other, *after);
            }
            Op::Tampered {
                main,
                tamper,
                point,
            } => {
                let main = prepare(&self.ctx, main);
                self.tampered(&main, tamper, *point);
            }
        }
    }

    /// Checks the stored state against `next` (the model's prediction, up
    /// to sessions past their retention that an operation removed on the
    /// way) and that only such sessions disappeared since `before`. A get
    /// or revoke that met one, or a list or full walk of all sessions, must
    /// have removed what it met; a create of a user with sessions long
    /// past their retention removes at least one of them.
    pub(super) fn settle(&mut self, before: &Model, next: Model, prepared: &Prepared) {
        let ctx = &self.ctx;
        let stored = stored(&ctx.keys, &ctx.policy, &self.kv);
        self.assert_only_expired_removed(before, &stored);
        assert!(
            same_modulo_expired(ctx, &stored, &next),
            "after {prepared:?} at {}:\nstored {stored:#?}\npredicted {next:#?}",
            ctx.now
        );
        let gone = |id: &DeviceSessionId| !stored.sessions.contains_key(id.as_str());
        let expired_before = |id: &DeviceSessionId| {
            before
                .sessions
                .get(id.as_str())
                .is_some_and(|s| expired(&ctx.policy, s, ctx.now))
        };
        match prepared {
            Prepared::Revoke(input) => {
                let id = &input.device_session_id;
                if before.by_id(ctx, id).is_some() && expired_before(id) {
                    assert!(gone(id), "revoke met expired {id} and left it");
                }
            }
            Prepared::Get(id, for_user) => {
                let found = match for_user {
                    None => before.by_id(ctx, id),
                    Some(user) => before
                        .sessions
                        .get(id.as_str())
                        .filter(|s| s.user_id() == user),
                };
                if found.is_some() && expired_before(id) {
                    assert!(gone(id), "get met expired {id} and left it");
                }
            }
            Prepared::List(user) => assert_lazy_removal(ctx, before, &stored, user),
            Prepared::Create(session)
                if matches!(next.sessions.get(session.id().as_str()), Some(s) if s == session)
                    && !before.sessions.contains_key(session.id().as_str()) =>
            {
                let long_expired = |s: &&Session| {
                    let later = Ctx {
                        now: ctx.now.checked_add_nanos(-1_000_000).unwrap_or(ctx.now),
                        ..ctx.clone()
                    };
                    expired(&ctx.policy, s, later.now)
                };
                let stale: Vec<&Session> = before
                    .of_user(session.user_id())
                    .filter(long_expired)
                    .collect();
                if !stale.is_empty() {
                    assert!(
                        stale.iter().any(|s| gone(s.id())),
                        "create left every long-expired session of {}: {stale:?}",
                        session.user_id()
                    );
                }
            }
            _ => {}
        }
        self.model = stored;
    }

    pub(super) fn assert_only_expired_removed(&self, before: &Model, after: &Model) {
        self.assert_only_expired_removed_of(&[before], after);
    }

    /// Every session of `versions[0]` missing from `after` was past its
    /// retention in one of the `versions` of the state it went through (a
    /// concurrent revoke may have revoked it in the past, then it expired).
    pub(super) fn assert_only_expired_removed_of(&self, versions: &[&Model], after: &Model) {
        let Some(before) = versions.first() else {
            return;
        };
        for (id, session) in &before.sessions {
            if after.sessions.contains_key(id) {
                continue;
            }
            let was_expired = versions.iter().any(|m| {
                m.sessions
                    .get(id)
                    .is_some_and(|s| expired(&self.ctx.policy, s, self.ctx.now))
            });
            assert!(
                was_expired,
                "{session:?} disappeared at {} before its retention ({:?})",
                self.ctx.now, self.ctx.policy.revoked_retention
            );
        }
    }

    /// The stored state agrees with the model and with itself.
    ///
    /// Every step ends by re-deriving the model from the stored state
    /// (`stored`, which asserts consistency), so this only adds the limit
    /// and the Go adapter's view.
    pub(super) fn assert_consistent(&mut self) {
        assert_limit(&self.ctx, &self.kv);
        shrink_over_limit(&mut self.ctx, &self.kv);
        if self.ctx.tagged() {
            return;
        }
        // The Go adapter's view: reference keys only.
        for user in all_users() {
            for key in [
                self.ctx.keys.user_sessions_key(&user),
                self.ctx.keys.user_active_sessions_key(&user),
            ] {
                for (member, _) in self.kv.index_range(&key, None) {
                    let id = std::str::from_utf8(&member)
                        .ok()
                        .and_then(|m| DeviceSessionId::parse(m).ok())
                        .expect("index members are ids");
                    let record = self.kv.get(&self.ctx.keys.reference_record_key(&id));
                    let session = codec::decode(&id, record.expect("index entry has its record"))
                        .expect("record decodes");
                    assert_eq!(session.user_id(), &user);
                }
            }
        }
    }

    /// The end of the input: audit, and read everything once more.
    pub(super) fn finish(&mut self) {
        if self.ctx.keys.layout() == Layout::Reference {
            let report = reference_audit(&self.ctx.keys, &self.kv);
            assert!(report.problems.is_empty(), "{:?}", report.problems);
            assert_eq!(report.records, self.model.sessions.len());
        }
        // Outcomes against the model as it is now (reads change nothing a
        // later read could see: only expired sessions go), one settle at
        // the end.
        let ctx = self.ctx.clone();
        let before = self.model.clone();
        for (w, user) in all_users().enumerate() {
            let w = u8::try_from(w).expect("few users");
            for prepared in [Prepared::Count(user.clone()), Prepared::List(user.clone())] {
                let run = execute(&ctx, &mut self.kv, &prepared, &mut no_hook);
                assert_eq!(
                    run.outcome,
                    predict(&ctx, &prepared, &before).0,
                    "{prepared:?}"
                );
            }
            for active in [false, true] {
                let walk = Walk {
                    user: w,
                    active,
                    limits: [0, 1, 2],
                };
                let walked = walk_pages(&ctx, &mut self.kv, &walk, &mut |_, _| {});
                assert_eq!(walked.error, None, "{walk:?}");
                let got: Vec<Session> = walked.pages.into_iter().flat_map(|p| p.sessions).collect();
                assert_eq!(got, before.visible(&ctx, &user, active), "{walk:?}");
            }
        }
        for id in all_ids() {
            let prepared = Prepared::Get(id, None);
            let run = execute(&ctx, &mut self.kv, &prepared, &mut no_hook);
            assert_eq!(
                run.outcome,
                predict(&ctx, &prepared, &before).0,
                "{prepared:?}"
            );
        }
        let stored = stored(&ctx.keys, &ctx.policy, &self.kv);
        self.assert_only_expired_removed(&before, &stored);
        assert!(same_modulo_expired(&ctx, &stored, &before));
        // Every user was listed and walked.
        for user in all_users() {
            assert_lazy_removal(&ctx, &before, &stored, &user);
        }
        self.model = stored;
        self.assert_consistent();
    }
}
