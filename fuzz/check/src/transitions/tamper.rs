//! Tampering: damage planted at a `between` point, and what must hold after
//! it (every operation answers or reports corruption; audit and repair
//! bring the state back).

use crate::is_snake_case;
use authsession_core::audit::{CheckMode, Problem};
use authsession_core::model::MemoryKv;
use authsession_core::plan::KeyType;
use authsession_core::{
    codec, ClientPublicKey, DeviceSessionId, Layout, RevokeUserSessionsInput, Session, Timestamp,
    UserId,
};

use super::assertions::assert_revoke_all_fails_safe;
use super::execute::{error_kind, execute, no_hook, Ctx, Prepared};
use super::input::{
    all_ids, all_users, id, next_user, pick, user, Tamper, Walk, BAD_MEMBERS, CORRUPT_PAYLOADS,
};
use super::model::{revocation, score, Outcome};
use super::state::{derive, heal, index_keys_of, record_keys_of, reference_audit, run_check};
use super::walk::walk_pages;
use super::world::World;

impl World {
    /// Damages the state at the `point`-th `between` call of `main`, checks
    /// that every operation answers or reports corruption, audits, repairs
    /// and re-derives the model.
    pub(super) fn tampered(&mut self, main: &Prepared, tamper: &Tamper, point: u8) {
        let ctx = self.ctx.clone();
        let point = point % 4;
        let mut calls = 0;
        let mut done = false;
        let run = execute(&ctx, &mut self.kv, main, &mut |kv, _| {
            if calls == point && !done {
                done = true;
                apply_tamper(&ctx, kv, tamper);
            }
            calls += 1;
        });
        if !done {
            apply_tamper(&ctx, &mut self.kv, tamper);
        }
        assert_survivable(&run.outcome);
        self.assert_reads_survive_damage();
        if ctx.keys.layout() == Layout::Reference {
            self.audit_and_repair();
        }
        heal(&ctx.keys, &ctx.policy, &mut self.kv);
        let derived = derive(&ctx.keys, &ctx.policy, &self.kv);
        assert!(
            derived.is_consistent(),
            "after repair: {:#?}",
            derived.problems
        );
        self.model = derived.model();
        // Damage can hide active sessions from the limit (a dropped active
        // entry): after the repair a user may be above it.
        if let Some(limit) = self.ctx.policy.session_limit {
            let max = usize::try_from(limit.max_active()).expect("small");
            for user in all_users() {
                let active = self.model.active_count(&user);
                if active > max {
                    let allowed = self
                        .ctx
                        .over_limit
                        .entry(user.as_str().to_owned())
                        .or_default();
                    *allowed = (*allowed).max(active);
                }
            }
        }
    }

    /// On a damaged store, every operation either answers or reports
    /// corruption (or a refusal the input calls for); "revoke all" and
    /// "create" run on a copy so the damage stays as is.
    pub(super) fn assert_reads_survive_damage(&mut self) {
        let ctx = self.ctx.clone();
        let far = Timestamp::from_unix_nanos(253_402_300_799_999_999_999).expect("in range");
        for (w, user) in all_users().enumerate() {
            let w = u8::try_from(w).expect("few users");
            for prepared in [Prepared::List(user.clone()), Prepared::Count(user.clone())] {
                assert_survivable(&execute(&ctx, &mut self.kv, &prepared, &mut no_hook).outcome);
            }
            let revoke_all = Prepared::RevokeAll(
                RevokeUserSessionsInput {
                    user_id: user.clone(),
                    revocation: revocation(far, 0).expect("valid instant"),
                },
                true,
            );
            let mut copy = self.kv.clone();
            assert_survivable(&execute(&ctx, &mut copy, &revoke_all, &mut no_hook).outcome);
            assert_revoke_all_fails_safe(&ctx, &self.kv, &user);
            let fresh =
                Session::active(id(w), user.clone(), ClientPublicKey::from([w; 32]), ctx.now);
            if let Ok(fresh) = fresh {
                let mut copy = self.kv.clone();
                let run = execute(&ctx, &mut copy, &Prepared::Create(fresh), &mut no_hook);
                assert_survivable(&run.outcome);
            }
            for active in [false, true] {
                let walk = Walk {
                    user: w,
                    active,
                    limits: [1, 2, 4],
                };
                let walked = walk_pages(&ctx, &mut self.kv, &walk, &mut |_, _| {});
                if let Some(kind) = walked.error {
                    assert!(is_corruption_kind(kind), "page on damage: {kind}");
                }
            }
        }
        for id in all_ids() {
            let get = Prepared::Get(id.clone(), None);
            assert_survivable(&execute(&ctx, &mut self.kv, &get, &mut no_hook).outcome);
            for user in all_users() {
                let get = Prepared::Get(id.clone(), Some(user));
                assert_survivable(&execute(&ctx, &mut self.kv, &get, &mut no_hook).outcome);
            }
        }
    }

    /// The reference layout's audit: it reports a problem exactly when the
    /// oracle finds the records or the two reference indexes damaged, and
    /// repairing as an operator would leaves no problem.
    pub(super) fn audit_and_repair(&mut self) {
        let keys = self.ctx.keys.clone();
        let derived = derive(&keys, &self.ctx.policy, &self.kv);
        // A value of the wrong type at a record or index key is outside
        // what the old audit handles: a string at an index key is not read,
        // and for a sorted set at a record key it plans `Absent` on the key
        // it also removes members from, which can never apply.
        let wrong_type = all_users().any(|u| {
            index_keys_of(&keys, &u)
                .iter()
                .any(|(k, _)| self.kv.key_type(k) == Some(KeyType::String))
        }) || all_ids().any(|id| {
            record_keys_of(&keys, &id)
                .iter()
                .any(|(k, _)| self.kv.key_type(k) == Some(KeyType::SortedSet))
        });
        if wrong_type {
            return;
        }
        let report = reference_audit(&keys, &self.kv);
        let damaged: Vec<&String> = derived.reference_problems().collect();
        // Damage the oracle sees is found (the check also audits the
        // revoked index and owner keys, which the oracle does not).
        if !damaged.is_empty() {
            assert!(
                !report.problems.is_empty(),
                "check finds nothing, oracle finds {damaged:?}"
            );
        }
        for problem in &report.problems {
            assert!(is_snake_case(problem.kind()));
        }
        let repaired = run_check(&keys, &mut self.kv, CheckMode::Repair);
        // What the repair leaves for a human: undecodable records and keys
        // that name nothing; an operator deletes them, then repairs again.
        for left in &repaired.unrepaired {
            match &left.problem {
                Problem::CorruptRecord { key, .. } | Problem::UnparsableKey { key } => {
                    self.kv.delete_raw(key);
                }
                _ => {}
            }
        }
        let again = run_check(&keys, &mut self.kv, CheckMode::Repair);
        for left in &again.unrepaired {
            if let Problem::CorruptRecord { key, .. } | Problem::UnparsableKey { key } =
                &left.problem
            {
                self.kv.delete_raw(key);
            }
        }
        let _ = run_check(&keys, &mut self.kv, CheckMode::Repair);
        let report = reference_audit(&keys, &self.kv);
        assert!(
            report.problems.is_empty(),
            "after repair: {:?}",
            report.problems
        );
        let derived = derive(&keys, &self.ctx.policy, &self.kv);
        let left: Vec<&String> = derived.reference_problems().collect();
        assert!(left.is_empty(), "check clean, oracle finds {left:?}");
    }
}

/// Kinds that report damaged stored data.
pub(super) fn is_corruption_kind(kind: &str) -> bool {
    matches!(
        kind,
        "corrupt_record"
            | "foreign_record"
            | "corrupt_owner"
            | "wrong_type"
            | "invalid_index_member"
            | "dangling_index_member"
            | "foreign_index_member"
            | "inactive_index_member"
    )
}

/// On damage, an operation answers, reports corruption, or refuses as its
/// input calls for (not found, conflict, the limit, a revocation before
/// creation).
pub(super) fn assert_survivable(outcome: &Outcome) {
    if let Some(kind) = error_kind(outcome) {
        assert!(
            is_corruption_kind(kind)
                || matches!(
                    kind,
                    "not_found"
                        | "conflict"
                        | "session_limit"
                        | "revoked_before_created"
                        // revoke all: every valid session revoked, the
                        // damage named.
                        | "partially_revoked"
                ),
            "{kind} on a damaged state: {outcome:?}"
        );
    }
}

/// Applies `tamper` to `kv`.
pub(super) fn apply_tamper(ctx: &Ctx, kv: &mut MemoryKv, tamper: &Tamper) {
    let keys = &ctx.keys;
    // The record key an id resolves to now (tagged: through its owner).
    let record_key = |kv: &MemoryKv, id: &DeviceSessionId, fallback: u8| -> String {
        match keys.owner_key(id) {
            None => keys.reference_record_key(id),
            Some(owner_key) => {
                let owner = kv
                    .get(&owner_key)
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .and_then(|t| UserId::parse(t).ok())
                    .unwrap_or_else(|| user(fallback));
                keys.record_key(&owner, id)
            }
        }
    };
    match *tamper {
        Tamper::DropIndexEntry {
            user: w,
            id: i,
            index,
        } => {
            let key = ctx.index_key(&user(w), index);
            let mut members = kv.index_range(&key, None);
            members.retain(|(m, _)| m.as_slice() != id(i).as_str().as_bytes());
            if kv.key_type(&key) == Some(KeyType::SortedSet) {
                kv.delete_raw(&key);
                for (m, s) in members {
                    kv.index_add_raw(key.clone(), m, s);
                }
            }
        }
        Tamper::AddIndexEntry {
            user: w,
            id: i,
            index,
            at,
        } => {
            let key = ctx.index_key(&user(w), index);
            let s = ctx.at(at).map_or(0.0, score);
            kv.index_add_raw(key, id(i).as_str().as_bytes().to_vec(), s);
        }
        Tamper::PlantBadMember {
            user: w,
            index,
            member,
        } => {
            let key = ctx.index_key(&user(w), index);
            kv.index_add_raw(key, pick(BAD_MEMBERS, member).to_vec(), score(ctx.now));
        }
        Tamper::DeleteRecord { id: i } => {
            let key = record_key(kv, &id(i), 0);
            kv.delete_raw(&key);
        }
        Tamper::CorruptRecord {
            id: i,
            payload,
            user: w,
        } => {
            let key = record_key(kv, &id(i), w);
            let index = usize::from(payload) % (CORRUPT_PAYLOADS.len() + 1);
            let bytes = match CORRUPT_PAYLOADS.get(index) {
                Some(bytes) => bytes.to_vec(),
                None => {
                    // Another user's valid record for this id.
                    let owner = kv
                        .get(&key)
                        .and_then(|b| codec::decode(&id(i), b).ok())
                        .map(|s| s.user_id().clone());
                    let mut other = user(w);
                    if owner.as_ref() == Some(&other) {
                        other = user(next_user(w));
                    }
                    // Revoked, so that healing it does not take the user
                    // past the limit.
                    let created = if ctx.now.is_go_zero() {
                        Timestamp::from_unix_nanos(0).expect("the epoch")
                    } else {
                        ctx.now
                    };
                    let session =
                        Session::active(id(i), other, ClientPublicKey::from([9; 32]), created)
                            .and_then(|s| s.revoked(revocation(created, w)?))
                            .expect("a valid instant");
                    codec::encode(&session)
                }
            };
            kv.delete_raw(&key);
            kv.set_raw(key, bytes);
        }
        Tamper::CorruptOwner { id: i, value } => {
            let Some(owner_key) = keys.owner_key(&id(i)) else {
                return;
            };
            match value % 4 {
                0 => kv.set_raw(owner_key, b"\xff\xfe".to_vec()),
                1 => kv.set_raw(owner_key, b" ".to_vec()),
                2 => kv.set_raw(owner_key, user(value / 4).as_str()),
                _ => {
                    kv.delete_raw(&owner_key);
                    kv.index_add_raw(owner_key, b"m".to_vec(), 1.0);
                }
            }
        }
        Tamper::SortedSetAtRecord { id: i, user: w } => {
            let key = record_key(kv, &id(i), w);
            kv.delete_raw(&key);
            kv.index_add_raw(key, b"m".to_vec(), 1.0);
        }
        Tamper::StringAtIndex { user: w, index } => {
            let key = ctx.index_key(&user(w), index);
            kv.delete_raw(&key);
            kv.set_raw(key, b"x".to_vec());
        }
    }
}
