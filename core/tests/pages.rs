//! Keyset pages, by property: random sessions with many ties in one
//! microsecond score, random page sizes, and random creates and revokes
//! between pages (applied to the model directly, between `op::run` calls).
//!
//! - With no changes, the pages concatenate exactly to `List`'s output
//!   (the active filter: to its active subset), with or without retention.
//! - With changes, a walk never repeats a session, never skips one that
//!   existed unchanged throughout, and stays in list order.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use authsession_core::model::MemoryKv;
use authsession_core::op::{
    run, Create, List, ListPage, PageCursor, PageLimit, PageRequest, Policy, Revoke, StatusFilter,
};
use authsession_core::{
    newest_first, ClientPublicKey, DeviceSessionId, KeySpace, Layout, Revocation, RevokeActorId,
    RevokeActorType, RevokeReasonCode, RevokeSessionInput, Session, Timestamp, UserId,
};
use proptest::prelude::*;

const ATTEMPTS: u32 = 8;
/// 2024-05-06T07:00:00Z in nanoseconds.
const BASE: i128 = 1_714_978_800 * 1_000_000_000;

fn at(micros: u32, nanos: u16) -> Timestamp {
    Timestamp::from_unix_nanos(BASE + i128::from(micros) * 1000 + i128::from(nanos % 1000)).unwrap()
}

/// Long after every creation.
fn late() -> Timestamp {
    Timestamp::from_unix_nanos(BASE + 1_000_000_000).unwrap()
}

fn user() -> UserId {
    UserId::parse("user-1").unwrap()
}

/// One generated session: id, microsecond (few distinct: many ties),
/// nanosecond within it (few distinct: exact ties too), revoked or not.
#[derive(Debug, Clone)]
struct Spec {
    id: String,
    micros: u32,
    nanos: u16,
    revoked: Option<u32>,
}

fn id_text() -> impl Strategy<Value = String> {
    // Byte order differs from char order ('Z' < 'a' < 'é'), lengths vary.
    prop::collection::vec(
        prop::sample::select(vec!["a", "b", "Z", "0", "é", "-", "zz"]),
        1..4,
    )
    .prop_map(|parts| parts.concat())
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        id_text(),
        0u32..6,
        prop::sample::select(vec![0u16, 1, 500, 999]),
        prop::option::weighted(0.3, 0u32..100),
    )
        .prop_map(|(id, micros, nanos, revoked)| Spec {
            id,
            micros,
            nanos,
            revoked,
        })
}

fn specs() -> impl Strategy<Value = Vec<Spec>> {
    prop::collection::vec(spec(), 0..48).prop_map(|specs| {
        let mut seen = BTreeSet::new();
        specs
            .into_iter()
            .filter(|s| seen.insert(s.id.clone()))
            .collect()
    })
}

fn session_of(spec: &Spec, user: &UserId) -> Session {
    let s = Session::active(
        DeviceSessionId::parse(spec.id.as_str()).unwrap(),
        user.clone(),
        ClientPublicKey::from_bytes(&[3; 32]).unwrap(),
        at(spec.micros, spec.nanos),
    )
    .unwrap();
    match spec.revoked {
        None => s,
        Some(after) => s
            .revoked(revocation(at(spec.micros + after, spec.nanos)))
            .unwrap(),
    }
}

fn revocation(at: Timestamp) -> Revocation {
    Revocation::new(
        at,
        RevokeReasonCode::parse("logout").unwrap(),
        RevokeActorType::parse("user").unwrap(),
        RevokeActorId::empty(),
    )
    .unwrap()
}

fn keys(tagged: bool) -> KeySpace {
    let layout = if tagged {
        Layout::Tagged
    } else {
        Layout::Reference
    };
    KeySpace::default().in_layout(layout).unwrap()
}

fn populate(keys: &KeySpace, specs: &[Spec]) -> MemoryKv {
    let mut kv = MemoryKv::new();
    for spec in specs {
        let op = Create::new(keys, Policy::default(), late(), session_of(spec, &user()));
        run(&mut kv, op, 1).unwrap();
    }
    // Sessions of another user in the same scores: never in our pages.
    for spec in specs.iter().take(5) {
        let other = UserId::parse("user-2").unwrap();
        let mut spec = spec.clone();
        spec.id.push_str("-2");
        let op = Create::new(keys, Policy::default(), late(), session_of(&spec, &other));
        run(&mut kv, op, 1).unwrap();
    }
    kv
}

fn one_page(
    kv: &mut MemoryKv,
    keys: &KeySpace,
    policy: Policy,
    now: Timestamp,
    limit: usize,
    cursor: Option<PageCursor>,
    status: StatusFilter,
) -> (Vec<Session>, Option<PageCursor>) {
    let request = PageRequest {
        limit: PageLimit::new(limit).unwrap(),
        cursor,
        status,
    };
    let page = run(
        kv,
        ListPage::new(keys, policy, now, user(), request),
        ATTEMPTS,
    )
    .unwrap();
    assert!(page.sessions.len() <= limit);
    // Every cursor survives its text form.
    let next = page
        .next_cursor
        .map(|c| PageCursor::parse(c.as_str()).unwrap());
    (page.sessions, next)
}

/// A whole walk with no changes.
fn walk(
    kv: &mut MemoryKv,
    keys: &KeySpace,
    policy: Policy,
    now: Timestamp,
    sizes: &[usize],
    status: StatusFilter,
) -> Vec<Session> {
    let mut all = Vec::new();
    let mut cursor = None;
    for n in 0.. {
        assert!(n < 10_000, "pages never end");
        let (sessions, next) = one_page(
            kv,
            keys,
            policy,
            now,
            sizes[n % sizes.len()],
            cursor,
            status,
        );
        all.extend(sessions);
        match next {
            None => break,
            some => cursor = some,
        }
    }
    all
}

/// A change another client makes between two pages.
#[derive(Debug, Clone)]
enum Change {
    Create(Spec),
    /// Revoke the n-th session ever created (modulo).
    Revoke(usize),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        spec().prop_map(|mut s| {
            s.id.insert_str(0, "new-");
            Change::Create(s)
        }),
        any::<usize>().prop_map(Change::Revoke),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn unchanged_pages_concatenate_to_list(
        specs in specs(),
        sizes in prop::collection::vec(1usize..8, 1..5),
        tagged in any::<bool>(),
        retention in prop::option::of(0u64..60),
        now_micros in 0u32..120,
    ) {
        let keys = keys(tagged);
        let policy = Policy {
            revoked_retention: retention.map(Duration::from_micros),
            ..Policy::default()
        };
        let now = at(now_micros, 0);
        let kv0 = populate(&keys, &specs);

        // List on its own copy: with retention it removes what expired.
        let mut kv = kv0.clone();
        let list = run(&mut kv, List::new(&keys, policy, now, user()), ATTEMPTS).unwrap();
        let active: Vec<Session> = list.iter().filter(|s| s.is_active()).cloned().collect();

        let mut kv = kv0.clone();
        let pages = walk(&mut kv, &keys, policy, now, &sizes, StatusFilter::All);
        prop_assert_eq!(&pages, &list);
        let mut kv = kv0.clone();
        let pages = walk(&mut kv, &keys, policy, now, &sizes, StatusFilter::Active);
        prop_assert_eq!(&pages, &active);
    }

    #[test]
    fn pages_under_changes_never_repeat_or_skip(
        specs in specs(),
        sizes in prop::collection::vec(1usize..8, 1..5),
        changes in prop::collection::vec(prop::collection::vec(change(), 0..4), 0..24),
        tagged in any::<bool>(),
        active_only in any::<bool>(),
    ) {
        let keys = keys(tagged);
        let status = if active_only { StatusFilter::Active } else { StatusFilter::All };
        let policy = Policy::default();
        let mut kv = populate(&keys, &specs);
        let initial = run(&mut kv, List::new(&keys, policy, late(), user()), ATTEMPTS).unwrap();

        let mut ever: Vec<String> = specs.iter().map(|s| s.id.clone()).collect();
        let mut changed: BTreeSet<String> = BTreeSet::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut walked: Vec<Session> = Vec::new();
        let mut cursor = None;
        for n in 0.. {
            prop_assert!(n < 10_000, "pages never end");
            let (sessions, next) = one_page(&mut kv, &keys, policy, late(), sizes[n % sizes.len()], cursor, status);
            for s in &sessions {
                let count = seen.entry(s.id().as_str().to_owned()).or_default();
                *count += 1;
                prop_assert_eq!(*count, 1, "{} repeated", s.id());
                prop_assert!(!active_only || s.is_active());
            }
            walked.extend(sessions);
            if next.is_none() {
                break;
            }
            cursor = next;
            for change in changes.get(n).into_iter().flatten() {
                match change {
                    Change::Create(spec) => {
                        if ever.contains(&spec.id) {
                            continue;
                        }
                        ever.push(spec.id.clone());
                        let op = Create::new(&keys, policy, late(), session_of(spec, &user()));
                        run(&mut kv, op, 1).unwrap();
                    }
                    Change::Revoke(i) => {
                        if ever.is_empty() {
                            continue;
                        }
                        let target = ever[i % ever.len()].clone();
                        let input = RevokeSessionInput {
                            device_session_id: DeviceSessionId::parse(target.as_str()).unwrap(),
                            revocation: revocation(late()),
                        };
                        run(&mut kv, Revoke::new(&keys, policy, late(), input), ATTEMPTS).unwrap();
                        changed.insert(target);
                    }
                }
            }
        }
        // In list order throughout (a keyset walk only moves forward).
        for pair in walked.windows(2) {
            prop_assert_eq!(newest_first(&pair[0], &pair[1]), std::cmp::Ordering::Less);
        }
        // Nothing that existed unchanged throughout is missing.
        for s in &initial {
            let id = s.id().as_str();
            if changed.contains(id) || (active_only && !s.is_active()) {
                continue;
            }
            prop_assert!(seen.contains_key(id), "{} skipped", id);
        }
    }
}
