//! The stored state read back: every key derived from the key space, the
//! records and indexes checked against each other, the model recovered
//! from them, and the audit and repair the core offers an operator.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use authsession_core::audit::{CheckMode, CheckReport};
use authsession_core::model::MemoryKv;
use authsession_core::op::Policy;
use authsession_core::plan::KeyType;
use authsession_core::{codec, op, DeviceSessionId, KeySpace, Layout, Session, UserId};

use super::input::{all_ids, alphabet, IDS, USERS};
use super::model::{score, Model};

/// The consistency oracle: what the records say every other key must
/// hold, written here from the key-space rules (not the core's audit).
#[derive(Debug, Default)]
pub(super) struct Derived {
    /// Valid records, by id.
    pub(super) sessions: BTreeMap<String, Session>,
    /// Owner keys holding a valid user id (tagged layout).
    pub(super) owners: BTreeMap<String, String>,
    /// Everything wrong, each with whether the reference audit covers it
    /// (records and the two reference indexes).
    pub(super) problems: Vec<(bool, String)>,
}

impl Derived {
    pub(super) fn reference_problems(&self) -> impl Iterator<Item = &String> {
        self.problems.iter().filter(|(r, _)| *r).map(|(_, p)| p)
    }

    pub(super) fn is_consistent(&self) -> bool {
        self.problems.is_empty()
    }

    pub(super) fn model(&self) -> Model {
        Model {
            sessions: self.sessions.clone(),
            owners: self.owners.clone(),
        }
    }
}

/// A record key and the user it names (tagged layout), by index.
pub(super) type RecordKey = (String, Option<usize>);

/// Every key the key space derives for the alphabet, built once per
/// layout: the oracle looks keys up instead of deriving them again.
pub(super) struct KeyTable {
    pub(super) keys: KeySpace,
    /// Per id (as in [`IDS`]): its record keys, with the user (as in
    /// [`USERS`]) in the tagged layout, and its owner key (tagged).
    pub(super) records: Vec<(Vec<RecordKey>, Option<String>)>,
    /// Per user: the all, active and revoked index keys.
    pub(super) indexes: Vec<[String; 3]>,
    pub(super) known: BTreeSet<String>,
}

pub(super) fn key_table(keys: &KeySpace) -> &'static KeyTable {
    static TABLES: [OnceLock<KeyTable>; 2] = [OnceLock::new(), OnceLock::new()];
    let tagged = keys.layout() == Layout::Tagged;
    let table = TABLES
        .get(usize::from(tagged))
        .expect("two layouts")
        .get_or_init(|| {
            let (ids, users) = alphabet();
            let records: Vec<_> = ids
                .iter()
                .map(|id| {
                    let record_keys = if tagged {
                        users
                            .iter()
                            .enumerate()
                            .map(|(u, user)| (keys.record_key(user, id), Some(u)))
                            .collect()
                    } else {
                        vec![(keys.reference_record_key(id), None)]
                    };
                    (record_keys, keys.owner_key(id))
                })
                .collect();
            let indexes: Vec<[String; 3]> = users
                .iter()
                .map(|user| {
                    [
                        keys.user_sessions_key(user),
                        keys.user_active_sessions_key(user),
                        keys.user_revoked_sessions_key(user),
                    ]
                })
                .collect();
            let known = records
                .iter()
                .flat_map(|(r, o)| r.iter().map(|(k, _)| k.clone()).chain(o.clone()))
                .chain(indexes.iter().flatten().cloned())
                .collect();
            KeyTable {
                keys: keys.clone(),
                records,
                indexes,
                known,
            }
        });
    assert_eq!(
        &table.keys, keys,
        "the oracle knows the default key spaces only"
    );
    table
}

/// Every record key of `id` (one per user in the tagged layout), with
/// the user the key names.
pub(super) fn record_keys_of(
    keys: &KeySpace,
    id: &DeviceSessionId,
) -> Vec<(String, Option<UserId>)> {
    let i = IDS
        .iter()
        .position(|i| *i == id.as_str())
        .expect("an id of the alphabet");
    key_table(keys)
        .records
        .get(i)
        .expect("one entry per id")
        .0
        .iter()
        .map(|(k, u)| {
            (
                k.clone(),
                u.map(|u| alphabet().1.get(u).expect("a user").clone()),
            )
        })
        .collect()
}

pub(super) fn index_keys_of(keys: &KeySpace, user: &UserId) -> [(String, u8); 3] {
    let u = USERS
        .iter()
        .position(|u| *u == user.as_str())
        .expect("a user of the alphabet");
    let [all, active, revoked] = key_table(keys)
        .indexes
        .get(u)
        .expect("one entry per user")
        .clone();
    [(all, 0), (active, 1), (revoked, 2)]
}

/// Derives the consistent state from the records of `kv` and lists every
/// way `kv` departs from it.
pub(super) fn derive(keys: &KeySpace, policy: &Policy, kv: &MemoryKv) -> Derived {
    let mut derived = Derived::default();
    let table = key_table(keys);
    let (ids, users) = alphabet();

    for (id, (record_keys, owner_key)) in ids.iter().zip(&table.records) {
        let mut found = Vec::new();
        for (key, key_user) in record_keys {
            match kv.key_type(key) {
                None => {}
                Some(KeyType::SortedSet) => derived
                    .problems
                    .push((true, format!("{key}: a sorted set at a record key"))),
                Some(_) => {
                    let bytes = kv.get(key).unwrap_or_default();
                    let key_user = key_user.and_then(|u| users.get(u));
                    match codec::decode(id, bytes) {
                        Ok(session) if key_user.is_none_or(|u| u == session.user_id()) => {
                            found.push(session);
                        }
                        Ok(session) => derived.problems.push((
                            true,
                            format!(
                                "{key}: a record of {} under another user's tag",
                                session.user_id()
                            ),
                        )),
                        Err(e) => derived
                            .problems
                            .push((true, format!("{key}: corrupt: {e}"))),
                    }
                }
            }
        }
        if let Some(owner_key) = owner_key {
            let owner = read_owner(kv, owner_key, &mut derived.problems);
            if let Some(owner) = &owner {
                derived
                    .owners
                    .insert(id.as_str().to_owned(), owner.as_str().to_owned());
            }
            if found.len() > 1 {
                derived
                    .problems
                    .push((false, format!("{id}: records under {} users", found.len())));
                found.retain(|s| Some(s.user_id()) == owner.as_ref());
            }
            if let Some(session) = found.first() {
                if owner.as_ref() != Some(session.user_id()) {
                    derived.problems.push((
                        false,
                        format!(
                            "{id}: owner {owner:?} is not the record's user {}",
                            session.user_id()
                        ),
                    ));
                }
            }
        }
        if let Some(session) = found.into_iter().next() {
            derived.sessions.insert(id.as_str().to_owned(), session);
        }
    }

    check_indexes(table, policy, kv, users, &mut derived);

    for key in kv.keys() {
        if !table.known.contains(key) {
            derived
                .problems
                .push((true, format!("{key}: not a key of the key space")));
        }
    }
    derived
}

/// The owner an owner key names, or the problem with it.
fn read_owner(
    kv: &MemoryKv,
    owner_key: &str,
    problems: &mut Vec<(bool, String)>,
) -> Option<UserId> {
    match kv.key_type(owner_key) {
        Some(KeyType::SortedSet) => {
            problems.push((false, format!("{owner_key}: a sorted set at an owner key")));
            None
        }
        None => None,
        Some(_) => {
            let bytes = kv.get(owner_key).unwrap_or_default();
            let owner = std::str::from_utf8(bytes)
                .ok()
                .and_then(|t| UserId::parse(t).ok());
            if owner.is_none() {
                problems.push((false, format!("{owner_key}: not a user id: {bytes:?}")));
            }
            owner
        }
    }
}

/// Every index against what the derived sessions say it must hold.
fn check_indexes(
    table: &KeyTable,
    policy: &Policy,
    kv: &MemoryKv,
    users: &[UserId],
    derived: &mut Derived,
) {
    // What each index must hold: all, active, revoked. The revoked index
    // exists under a retention only: without one it may hold a subset (an
    // index a store under a retention wrote), never a wrong entry.
    let revoked_complete = policy.indexes_revoked();
    let mut want: Vec<[BTreeMap<&[u8], f64>; 3]> =
        users.iter().map(|_| Default::default()).collect();
    for s in derived.sessions.values() {
        let u = users
            .iter()
            .position(|u| u == s.user_id())
            .expect("a user of the alphabet");
        let w = want.get_mut(u).expect("one entry per user");
        let member = s.id().as_str().as_bytes();
        let [all, active, revoked] = w;
        all.insert(member, score(s.created_at()));
        match s.revocation() {
            None => active.insert(member, score(s.created_at())),
            Some(r) => revoked.insert(member, score(r.at())),
        };
    }
    for (keys_of_user, want_of_user) in table.indexes.iter().zip(&want) {
        for (index, (key, want)) in keys_of_user.iter().zip(want_of_user).enumerate() {
            let reference = index < 2;
            match kv.key_type(key) {
                Some(KeyType::String) => {
                    derived
                        .problems
                        .push((reference, format!("{key}: a string at an index key")));
                    continue;
                }
                None if !want.is_empty() && (index < 2 || revoked_complete) => {
                    derived
                        .problems
                        .push((reference, format!("{key}: missing, wants {want:?}")));
                    continue;
                }
                _ => {}
            }
            let have = kv.index_range(key, None);
            let entries_right = have.iter().all(|(m, s)| want.get(m.as_slice()) == Some(s));
            let same =
                entries_right && (have.len() == want.len() || (index == 2 && !revoked_complete));
            if !same {
                derived
                    .problems
                    .push((reference, format!("{key}: holds {have:?}, wants {want:?}")));
            }
        }
    }
}

/// Repairs `kv` to what its records say, as the oracle sees it: deletes
/// records that do not decode (or sit under another user's tag), values of
/// the wrong type and stray keys, rebuilds every index from the records and
/// sets every record's owner key.
pub(super) fn heal(keys: &KeySpace, policy: &Policy, kv: &mut MemoryKv) {
    let derived = derive(keys, policy, kv);
    let keep: BTreeSet<String> = derived
        .sessions
        .values()
        .map(|s| keys.record_key(s.user_id(), s.id()))
        .collect();
    let owner_keys: BTreeMap<String, DeviceSessionId> = if keys.layout() == Layout::Tagged {
        all_ids()
            .filter_map(|id| Some((keys.owner_key(&id)?, id)))
            .collect()
    } else {
        BTreeMap::new()
    };
    let doomed: Vec<String> = kv
        .keys()
        .filter(|k| {
            if keep.contains(*k) {
                return false;
            }
            match owner_keys.get(*k) {
                // Orphan owners are legitimate when they hold a user id.
                Some(id) => !derived.owners.contains_key(id.as_str()),
                None => true,
            }
        })
        .map(str::to_owned)
        .collect();
    for key in doomed {
        kv.delete_raw(&key);
    }
    for s in derived.sessions.values() {
        let member = s.id().as_str().as_bytes().to_vec();
        kv.index_add_raw(
            keys.user_sessions_key(s.user_id()),
            member.clone(),
            score(s.created_at()),
        );
        match s.revocation() {
            None => kv.index_add_raw(
                keys.user_active_sessions_key(s.user_id()),
                member,
                score(s.created_at()),
            ),
            // As the store writes it: only under a retention.
            Some(r) if policy.indexes_revoked() => kv.index_add_raw(
                keys.user_revoked_sessions_key(s.user_id()),
                member,
                score(r.at()),
            ),
            Some(_) => {}
        }
        if let Some(owner) = keys.owner_key(s.id()) {
            kv.set_raw(owner, s.user_id().as_str());
        }
    }
}

/// Everything the store holds, by id (every record must decode).
pub(super) fn stored(keys: &KeySpace, policy: &Policy, kv: &MemoryKv) -> Model {
    let derived = derive(keys, policy, kv);
    assert!(
        derived.is_consistent(),
        "inconsistent state: {:#?}",
        derived.problems
    );
    derived.model()
}

/// The core's bounded check over the whole key space (batches of three,
/// so multi-batch walks run), on `kv` itself when repairing; with the
/// second look at owner keys without their record, as the driver takes it
/// once the grace has passed (no create is in flight here).
pub(super) fn run_check(keys: &KeySpace, kv: &mut MemoryKv, mode: CheckMode) -> CheckReport {
    let batch = authsession_core::op::BatchSize::new(3).unwrap_or_default();
    let mut report = op::run(kv, op::Check::new(keys, mode, batch), 16).expect("check runs");
    let repair = mode == CheckMode::Repair;
    if let Some(recheck) = report.owner_recheck(keys, repair, batch) {
        let outcome = op::run(kv, recheck, 16).expect("the second look runs");
        report.absorb_owner_recheck(keys, outcome, repair);
    }
    report
}

/// The check's verdict on an unchanged copy of `kv`.
pub(super) fn reference_audit(keys: &KeySpace, kv: &MemoryKv) -> CheckReport {
    run_check(keys, &mut kv.clone(), CheckMode::Report)
}
