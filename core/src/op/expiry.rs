//! Removing a session past its retention: the one statement of the rule,
//! used by the lazy removals (create, get, revoke, list, pages) and by
//! `sweep`.
//!
//! A session is removed whole: its record, its all-sessions entry and its
//! revoked-index entry in one atomic plan (so the Go adapter never sees an
//! entry without its record), guarded by proof that the record is still
//! the expired session read. In the tagged layout its owner key (id →
//! user, in the id's own slot, so never in the same plan) goes next, in a
//! plan of its own guarded by still naming that user; a crash between the
//! two leaves a dangling owner key, which `sweep` and `check --repair`
//! remove after the grace (see [`crate::op::RecheckOwners`]).

use std::collections::{BTreeMap, VecDeque};

use crate::ids::{DeviceSessionId, UserId};
use crate::keys::{KeySpace, Layout};
use crate::op::{best_effort_applied, out_of_sequence, replies, Input, Step, TransitionError};
use crate::plan::{Applied, OnViolation, Plan, Precondition, Read, Reply, Write};
use crate::session::Session;

/// At most this many sessions are removed lazily by one call in the tagged
/// layout, where each removal costs one more round trip for its owner key;
/// the rest are hidden all the same and go with the next calls or a sweep.
pub(crate) const TAGGED_LAZY_REMOVALS: usize = 4;

/// How many expired sessions one call removes lazily, given the most it
/// would remove otherwise.
pub(crate) fn lazy_removals(keys: &KeySpace, most: usize) -> usize {
    match keys.layout() {
        Layout::Tagged => most.min(TAGGED_LAZY_REMOVALS),
        _ => most,
    }
}

/// The writes removing the session `id` of `user`: the record, its
/// all-sessions entry and its revoked-index entry, always together.
pub(crate) fn removal_writes(keys: &KeySpace, user: &UserId, id: &DeviceSessionId) -> [Write; 3] {
    let member = id.as_str().as_bytes().to_vec();
    [
        Write::Delete {
            key: keys.record_key(user, id),
        },
        Write::IndexRemove {
            key: keys.user_sessions_key(user),
            member: member.clone(),
        },
        Write::IndexRemove {
            key: keys.user_revoked_sessions_key(user),
            member,
        },
    ]
}

/// The plan removing `expired` (each session read with its bytes),
/// guarded by every record still being those bytes (a revoked record
/// never changes, so only its removal or replacement by someone else
/// violates it). The writes are grouped by key (records first, then each
/// index's members together) so the script removes an index's members in
/// a run.
pub(crate) fn expire_plan<'a>(
    keys: &KeySpace,
    expired: impl IntoIterator<Item = (&'a Session, &'a [u8])>,
) -> Plan {
    let mut guards = Vec::new();
    let mut deletes = Vec::new();
    let mut removals: BTreeMap<String, Vec<Write>> = BTreeMap::new();
    for (session, bytes) in expired {
        for write in removal_writes(keys, session.user_id(), session.id()) {
            match write {
                Write::Delete { key } => {
                    guards.push(Precondition::ValueEquals {
                        key: key.clone(),
                        value: bytes.to_vec(),
                    });
                    deletes.push(Write::Delete { key });
                }
                other => removals
                    .entry(other.key().to_owned())
                    .or_default()
                    .push(other),
            }
        }
    }
    deletes.extend(removals.into_values().flatten());
    Plan::new(guards, deletes, OnViolation::Retry)
}

/// The plan removing the owner key of `id` once its session (of `user`)
/// is gone: guarded by the key still naming that user. `None` in the
/// reference layout (no owner keys).
pub(crate) fn owner_removal(keys: &KeySpace, user: &UserId, id: &DeviceSessionId) -> Option<Plan> {
    let key = keys.owner_key(id)?;
    Some(Plan::new(
        vec![Precondition::ValueEquals {
            key: key.clone(),
            value: user.as_str().as_bytes().to_vec(),
        }],
        vec![Write::Delete { key }],
        OnViolation::Retry,
    ))
}

/// The plan putting back the owner key of `id` (of `user`) when its
/// record turned out to exist after the key was removed: absent or
/// already that user's.
fn owner_restore(key: String, user: &UserId) -> Plan {
    let value = user.as_str().as_bytes().to_vec();
    Plan::new(
        vec![Precondition::AbsentOrEquals {
            key: key.clone(),
            value: value.clone(),
        }],
        vec![Write::Set { key, value }],
        OnViolation::Retry,
    )
}

/// What an [`OwnerRemovals`] needs next.
#[derive(Debug)]
pub(crate) enum OwnerStep {
    Read(Vec<Read>),
    Apply(Plan),
    Done,
}

impl OwnerStep {
    /// As the step of an operation answering `T`; `None` when done.
    pub(crate) fn into_step<T>(self) -> Option<Step<T>> {
        match self {
            OwnerStep::Read(reads) => Some(Step::Read(reads)),
            OwnerStep::Apply(plan) => Some(Step::Apply(plan)),
            OwnerStep::Done => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
enum OwnerState {
    #[default]
    Idle,
    Deleting(UserId, DeviceSessionId),
    Verifying,
    Restoring(DeviceSessionId),
}

/// The owner keys to remove after their sessions were removed (tagged
/// layout): each in a plan of its own (its own slot) guarded by still
/// naming the session's user, one after the other; then one read of the
/// records, and any record there again (the same user created the same id
/// in between: its create found the owner key still naming it and did not
/// change it) gets its owner key back. So a re-create racing the removal
/// is not left without its owner key — unless the create spans both round
/// trips, which `check` reports as a missing owner key and `--repair`
/// restores. The outcome changes nothing of the operation's answer: an
/// owner key already gone or naming someone else is left alone, and one
/// of the wrong type is `check`'s to report.
#[derive(Debug, Clone, Default)]
pub(crate) struct OwnerRemovals {
    keys: Option<KeySpace>,
    best_effort: bool,
    pending: VecDeque<(UserId, DeviceSessionId)>,
    deleted: Vec<(UserId, DeviceSessionId)>,
    verified: bool,
    restores: VecDeque<(DeviceSessionId, Plan)>,
    restored: Vec<DeviceSessionId>,
    state: OwnerState,
}

impl OwnerRemovals {
    /// The owner removals of `removed` sessions (none in the reference
    /// layout).
    pub(crate) fn of<'a>(
        keys: &KeySpace,
        removed: impl IntoIterator<Item = (&'a UserId, &'a DeviceSessionId)>,
    ) -> Self {
        if keys.layout() != Layout::Tagged {
            return Self::default();
        }
        Self {
            keys: Some(keys.clone()),
            pending: removed
                .into_iter()
                .map(|(user, id)| (user.clone(), id.clone()))
                .collect(),
            ..Self::default()
        }
    }

    /// The lazy owner removals of `removed` sessions: best-effort like the
    /// lazy removal before them (reads never need writes).
    pub(crate) fn lazy<'a>(
        keys: &KeySpace,
        removed: impl IntoIterator<Item = (&'a UserId, &'a DeviceSessionId)>,
    ) -> Self {
        Self {
            best_effort: true,
            ..Self::of(keys, removed)
        }
    }

    /// Owner keys removed and not put back.
    pub(crate) fn removed(&self) -> u64 {
        u64::try_from(self.removed_ids().count()).unwrap_or(u64::MAX)
    }

    /// The ids whose owner key was removed and not put back.
    pub(crate) fn removed_ids(&self) -> impl Iterator<Item = &DeviceSessionId> {
        self.deleted
            .iter()
            .map(|(_, id)| id)
            .filter(|id| !self.restored.contains(id))
    }

    fn plan(&self, plan: Plan) -> Plan {
        if self.best_effort {
            plan.best_effort()
        } else {
            plan
        }
    }

    /// The next step: `input` answers the previous one (`None` to start).
    pub(crate) fn step(
        &mut self,
        input: Option<Input>,
        op: &'static str,
    ) -> Result<OwnerStep, TransitionError> {
        let Some(keys) = self.keys.clone() else {
            return Ok(OwnerStep::Done);
        };
        match (std::mem::take(&mut self.state), input) {
            (OwnerState::Idle, None) => {}
            (OwnerState::Deleting(user, id), Some(input)) => {
                if best_effort_applied(input, op)? == Some(Applied::Done) {
                    self.deleted.push((user, id));
                }
            }
            (OwnerState::Verifying, Some(input)) => {
                let records = match replies(input, op)?.into_iter().next() {
                    Some(Reply::Values(values)) => values,
                    _ => return out_of_sequence(op),
                };
                for ((user, id), record) in self.deleted.iter().zip(records) {
                    if record.is_some() {
                        if let Some(key) = keys.owner_key(id) {
                            let plan = self.plan(owner_restore(key, user));
                            self.restores.push_back((id.clone(), plan));
                        }
                    }
                }
            }
            (OwnerState::Restoring(id), Some(input)) => {
                if best_effort_applied(input, op)? == Some(Applied::Done) {
                    self.restored.push(id);
                }
            }
            _ => return out_of_sequence(op),
        }
        if let Some((id, plan)) = self.restores.pop_front() {
            self.state = OwnerState::Restoring(id);
            return Ok(OwnerStep::Apply(plan));
        }
        while let Some((user, id)) = self.pending.pop_front() {
            if let Some(plan) = owner_removal(&keys, &user, &id) {
                let plan = self.plan(plan);
                self.state = OwnerState::Deleting(user, id);
                return Ok(OwnerStep::Apply(plan));
            }
        }
        if !self.verified && !self.deleted.is_empty() {
            // Every key removed: are their records still gone?
            self.verified = true;
            self.state = OwnerState::Verifying;
            let keys = self
                .deleted
                .iter()
                .map(|(user, id)| keys.record_key(user, id))
                .collect();
            return Ok(OwnerStep::Read(vec![Read::Values { keys }]));
        }
        Ok(OwnerStep::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MemoryKv;
    use crate::op::fixtures::{revocation, session};

    /// Runs `owners` to the end over `kv`, calling `between` after each
    /// step; how many owner keys it removed for good.
    fn drive(
        kv: &mut MemoryKv,
        mut owners: OwnerRemovals,
        mut between: impl FnMut(&mut MemoryKv),
    ) -> u64 {
        let mut input = None;
        loop {
            match owners.step(input.take(), "test").unwrap() {
                OwnerStep::Read(reads) => {
                    let replies = kv.read_all(&reads);
                    between(kv);
                    input = Some(Input::Replies(replies));
                }
                OwnerStep::Apply(plan) => {
                    let applied = kv.apply(&plan);
                    between(kv);
                    input = Some(Input::Applied(applied));
                }
                OwnerStep::Done => return owners.removed(),
            }
        }
    }

    #[test]
    fn a_re_create_racing_the_owner_removal_gets_its_owner_key_back() {
        let keys = KeySpace::default().in_layout(Layout::Tagged).unwrap();
        let s = session("d", "u", 1);
        let owner = keys.owner_key(s.id()).unwrap();
        // The expired session's record is gone; its owner key names u.
        let mut kv = MemoryKv::new();
        kv.set_raw(&owner, "u");
        // Right after the owner key's removal, u creates d again: its
        // create finds no owner key, writes it, then the record.
        let mut raced = false;
        let created = |kv: &mut MemoryKv| {
            kv.set_raw(&owner, "u");
            kv.set_raw(
                keys.record_key(s.user_id(), s.id()),
                crate::codec::encode(&s),
            );
        };
        let removed = drive(
            &mut kv,
            OwnerRemovals::of(&keys, [(s.user_id(), s.id())]),
            |kv| {
                if !raced {
                    raced = true;
                    created(kv);
                }
            },
        );
        assert_eq!(removed, 0);
        assert_eq!(kv.get(&owner), Some(&b"u"[..]));
        // The same, the create landing before the removal: the key is
        // removed, seen missing under a record, and put back.
        let mut kv = MemoryKv::new();
        kv.set_raw(&owner, "u");
        created(&mut kv);
        let removed = drive(
            &mut kv,
            OwnerRemovals::lazy(&keys, [(s.user_id(), s.id())]),
            |_| {},
        );
        assert_eq!(removed, 0);
        assert_eq!(kv.get(&owner), Some(&b"u"[..]));
    }

    #[test]
    fn a_removal_takes_record_and_entries_then_the_owner_key() {
        for layout in [Layout::Reference, Layout::Tagged] {
            let keys = KeySpace::default().in_layout(layout).unwrap();
            let s = session("d", "u", 1).revoked(revocation(2)).unwrap();
            let bytes = crate::codec::encode(&s);
            let mut kv = MemoryKv::new();
            kv.set_raw(keys.record_key(s.user_id(), s.id()), bytes.clone());
            kv.index_add_raw(keys.user_sessions_key(s.user_id()), b"d".to_vec(), 1.0);
            kv.index_add_raw(
                keys.user_revoked_sessions_key(s.user_id()),
                b"d".to_vec(),
                2.0,
            );
            if let Some(owner) = keys.owner_key(s.id()) {
                kv.set_raw(owner, "u");
            }
            // Another's bytes: nothing happens.
            let other = expire_plan(&keys, [(&s, &b"x"[..])]);
            assert!(matches!(kv.apply(&other), Applied::Violated { .. }));
            assert_eq!(
                kv.apply(&expire_plan(&keys, [(&s, &bytes[..])])),
                Applied::Done
            );
            let owners = OwnerRemovals::of(&keys, [(s.user_id(), s.id())]);
            assert_eq!(
                drive(&mut kv, owners, |_| {}),
                u64::from(layout == Layout::Tagged)
            );
            assert_eq!(kv, MemoryKv::new(), "{layout:?}: nothing left");
        }
    }

    #[test]
    fn a_get_whose_owner_removal_is_skipped_still_answers_not_found() {
        use crate::op::{Get, Input, Operation, Policy, Step};
        let keys = KeySpace::default().in_layout(Layout::Tagged).unwrap();
        let s = session("d", "u", 1).revoked(revocation(2)).unwrap();
        let mut kv = MemoryKv::new();
        kv.set_raw(keys.owner_key(s.id()).unwrap(), "u");
        kv.set_raw(
            keys.record_key(s.user_id(), s.id()),
            crate::codec::encode(&s),
        );
        let policy = Policy {
            revoked_retention: Some(std::time::Duration::from_secs(1)),
            ..Policy::default()
        };
        let now = crate::op::fixtures::ts(100);
        let mut op = Get::new(&keys, policy, now, s.id().clone());
        let mut input = Input::Start;
        let mut plans = 0;
        let result = loop {
            match op.resume(input) {
                Ok(Step::Read(reads)) => input = Input::Replies(kv.read_all(&reads)),
                Ok(Step::Apply(plan)) => {
                    assert!(plan.is_best_effort(), "{plan:?}");
                    plans += 1;
                    // The record's removal is written; the owner key's
                    // cannot be (a replica, say).
                    input = if plans == 1 {
                        Input::Applied(kv.apply(&plan))
                    } else {
                        Input::Skipped
                    };
                }
                Ok(other) => panic!("{other:?}"),
                Err(e) => break e,
            }
        };
        assert_eq!(result.kind(), "not_found");
        assert_eq!(plans, 2);
        // Left dangling, for sweep and check --repair.
        assert_eq!(kv.get(&keys.owner_key(s.id()).unwrap()), Some(&b"u"[..]));
    }

    #[test]
    fn an_owner_key_naming_someone_else_stays() {
        let keys = KeySpace::default().in_layout(Layout::Tagged).unwrap();
        let s = session("d", "u", 1);
        let owner = keys.owner_key(s.id()).unwrap();
        let mut kv = MemoryKv::new();
        kv.set_raw(owner.clone(), "v");
        let plan = owner_removal(&keys, s.user_id(), s.id()).unwrap();
        assert!(matches!(kv.apply(&plan), Applied::Violated { .. }));
        assert_eq!(kv.get(&owner), Some(&b"v"[..]));
    }
}
