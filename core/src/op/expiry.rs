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
use crate::plan::{OnViolation, Plan, Precondition, Write};
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

/// The owner keys to remove after sessions were removed, one plan each
/// (each key in its own slot), applied one after the other. Their outcome
/// changes nothing of the operation's answer: an owner key already gone
/// or naming someone else is left alone, and one of the wrong type is
/// `check`'s to report.
#[derive(Debug, Clone, Default)]
pub(crate) struct OwnerRemovals(VecDeque<Plan>);

impl OwnerRemovals {
    /// The owner removals of `removed` sessions (none in the reference
    /// layout).
    pub(crate) fn of<'a>(
        keys: &KeySpace,
        removed: impl IntoIterator<Item = (&'a UserId, &'a DeviceSessionId)>,
    ) -> Self {
        Self(
            removed
                .into_iter()
                .filter_map(|(user, id)| owner_removal(keys, user, id))
                .collect(),
        )
    }

    /// The next plan to apply, if any.
    pub(crate) fn next(&mut self) -> Option<Plan> {
        self.0.pop_front()
    }

    /// How many plans are left.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MemoryKv;
    use crate::op::fixtures::{revocation, session};
    use crate::plan::Applied;

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
            let mut owners = OwnerRemovals::of(&keys, [(s.user_id(), s.id())]);
            assert_eq!(owners.len(), usize::from(layout == Layout::Tagged));
            while let Some(plan) = owners.next() {
                assert_eq!(kv.apply(&plan), Applied::Done);
            }
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
