//! Hand-made `transitions` inputs: scenarios written as [`Setup`] and
//! [`Step`] values and encoded into the bytes `arbitrary` decodes back into
//! them, so a seed corpus can start on paths random bytes rarely reach
//! (ties inside one microscore, a full batch, retention that just passed,
//! an owner key outliving its record, …).
//!
//! The encoding mirrors `arbitrary` 1.x: integers little-endian, `bool` as
//! a byte's low bit, `Option` as a `bool` then the value, an enum variant
//! `i` of `n` as a `u32` `v` with `(v * n) >> 32 == i`, fields in
//! declaration order, and an iterator as `true` before each element and
//! `false` at the end. [`tests`] checks that every seed decodes to exactly
//! the steps it was written from.

use crate::transitions::{Action, Op, Setup, Step, Tamper, Walk};

/// Bytes under construction.
#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    fn bool(&mut self, v: bool) {
        self.0.push(u8::from(v));
    }

    fn variant(&mut self, index: u32, count: u32) {
        // The smallest v with v * count >= index * 2^32.
        let v = (u64::from(index) << 32).div_ceil(u64::from(count));
        let v = u32::try_from(v).expect("index < count");
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn option<T>(&mut self, v: Option<T>, mut some: impl FnMut(&mut Self, T)) {
        self.bool(v.is_some());
        if let Some(v) = v {
            some(self, v);
        }
    }
}

trait Encode {
    fn encode(&self, e: &mut Enc);
}

impl Encode for Setup {
    fn encode(&self, e: &mut Enc) {
        e.bool(self.tagged);
        e.u8(self.era);
        e.u8(self.batch);
        e.option(self.retention, Enc::u8);
        e.option(self.limit, |e, (max, oldest)| {
            e.u8(max);
            e.bool(oldest);
        });
    }
}

impl Encode for Action {
    fn encode(&self, e: &mut Enc) {
        match *self {
            Action::Create {
                id,
                user,
                key,
                created,
                revoked,
            } => {
                e.variant(0, 6);
                for b in [id, user, key, created] {
                    e.u8(b);
                }
                e.option(revoked, |e, (at, reason)| {
                    e.u8(at);
                    e.u8(reason);
                });
            }
            Action::Revoke { id, at, reason } => {
                e.variant(1, 6);
                for b in [id, at, reason] {
                    e.u8(b);
                }
            }
            Action::RevokeAll {
                user,
                at,
                reason,
                collect,
            } => {
                e.variant(2, 6);
                for b in [user, at, reason] {
                    e.u8(b);
                }
                e.bool(collect);
            }
            Action::List { user } => {
                e.variant(3, 6);
                e.u8(user);
            }
            Action::Get { id, user } => {
                e.variant(4, 6);
                e.u8(id);
                e.option(user, Enc::u8);
            }
            Action::Count { user } => {
                e.variant(5, 6);
                e.u8(user);
            }
        }
    }
}

impl Encode for Walk {
    fn encode(&self, e: &mut Enc) {
        e.u8(self.user);
        e.bool(self.active);
        for l in self.limits {
            e.u8(l);
        }
    }
}

impl Encode for Tamper {
    fn encode(&self, e: &mut Enc) {
        let (variant, bytes): (u32, Vec<u8>) = match *self {
            Tamper::DropIndexEntry { user, id, index } => (0, vec![user, id, index]),
            Tamper::AddIndexEntry {
                user,
                id,
                index,
                at,
            } => (1, vec![user, id, index, at]),
            Tamper::PlantBadMember {
                user,
                index,
                member,
            } => (2, vec![user, index, member]),
            Tamper::DeleteRecord { id } => (3, vec![id]),
            Tamper::CorruptRecord { id, payload, user } => (4, vec![id, payload, user]),
            Tamper::CorruptOwner { id, value } => (5, vec![id, value]),
            Tamper::SortedSetAtRecord { id, user } => (6, vec![id, user]),
            Tamper::StringAtIndex { user, index } => (7, vec![user, index]),
        };
        e.variant(variant, 8);
        for b in bytes {
            e.u8(b);
        }
    }
}

impl Encode for Op {
    fn encode(&self, e: &mut Enc) {
        match self {
            Op::Do(action) => {
                e.variant(0, 5);
                action.encode(e);
            }
            Op::Pages(walk) => {
                e.variant(1, 5);
                walk.encode(e);
            }
            Op::Concurrent { main, other, point } => {
                e.variant(2, 5);
                main.encode(e);
                other.encode(e);
                e.u8(*point);
            }
            Op::ConcurrentPages { walk, other, after } => {
                e.variant(3, 5);
                walk.encode(e);
                other.encode(e);
                e.u8(*after);
            }
            Op::Tampered {
                main,
                tamper,
                point,
            } => {
                e.variant(4, 5);
                main.encode(e);
                tamper.encode(e);
                e.u8(*point);
            }
        }
    }
}

impl Encode for Step {
    fn encode(&self, e: &mut Enc) {
        e.u8(self.advance);
        self.op.encode(e);
    }
}

/// The bytes `check_transitions` decodes into `setup` and `steps`.
pub fn encode_transitions(setup: &Setup, steps: &[Step]) -> Vec<u8> {
    let mut e = Enc::default();
    setup.encode(&mut e);
    for step in steps {
        e.bool(true);
        step.encode(&mut e);
    }
    e.bool(false);
    e.0
}

// Indexes into the target's lists (see `transitions`): ids, users,
// offsets and advances.
const DEV1: u8 = 0; // "dev-1"
const DEV2: u8 = 1; // "dev-2"
const D3: u8 = 2; // "d<3>&": sorts before "dev-…"
const DEV4: u8 = 3; // "dév-4"
const A5: u8 = 4; // "a\u{2028}5": sorts first
const U1: u8 = 0;
const U2: u8 = 1;
const U3: u8 = 2;
// OFFSETS_NANOS: 0, 0, 1, -1, 999, 1_000, 1_001, -999, -1_000, -1 s, -3 s, +2 s
const AT_0: u8 = 0;
const AT_1NS: u8 = 2;
const AT_999NS: u8 = 4;
const AT_1US: u8 = 5;
const AT_MINUS_1S: u8 = 9;
const AT_MINUS_3S: u8 = 10;
const AT_PLUS_2S: u8 = 11;
// ADVANCES_NANOS: 0, 0, 0, 1, 500, 1_000, 1_001, 1 ms, 1 s, 2 s
const STILL: u8 = 0;
const PLUS_500NS: u8 = 4;
const PLUS_1S: u8 = 8;
const PLUS_2S: u8 = 9;
// RETENTIONS_NANOS: 0, 1, 1_000, 1 s, 3 s
const KEEP_1S: u8 = 3;
const KEEP_1NS: u8 = 1;

fn setup(
    tagged: bool,
    era: u8,
    batch: usize,
    retention: Option<u8>,
    limit: Option<(u8, bool)>,
) -> Setup {
    Setup {
        tagged,
        era,
        batch: u8::try_from(batch - 1).expect("1..=5"),
        retention,
        limit: limit.map(|(max, oldest)| (max - 1, oldest)),
    }
}

fn step(advance: u8, op: Op) -> Step {
    Step { advance, op }
}

fn create(id: u8, user: u8, created: u8) -> Action {
    Action::Create {
        id,
        user,
        key: id.wrapping_mul(17),
        created,
        revoked: None,
    }
}

fn create_revoked(id: u8, user: u8, created: u8, at: u8) -> Action {
    Action::Create {
        id,
        user,
        key: id.wrapping_mul(17),
        created,
        revoked: Some((at, 1)),
    }
}

fn act(advance: u8, action: Action) -> Step {
    step(advance, Op::Do(action))
}

fn walk(user: u8, active: bool, limits: [u8; 3]) -> Walk {
    Walk {
        user,
        active,
        limits,
    }
}

fn revoke_all(user: u8, at: u8, collect: bool) -> Action {
    Action::RevokeAll {
        user,
        at,
        reason: 0,
        collect,
    }
}

/// Every hand-made seed, by name (the name is the scenario), encoded.
pub fn transitions_seeds() -> Vec<(&'static str, Vec<u8>)> {
    scenarios()
        .into_iter()
        .map(|(name, setup, steps)| (name, encode_transitions(&setup, &steps)))
        .collect()
}

type Scenario = (&'static str, Setup, Vec<Step>);

fn scenarios() -> Vec<Scenario> {
    [
        revoke_all_and_limit_scenarios(),
        retention_scenarios(),
        page_and_concurrency_scenarios(),
        tamper_scenarios(),
        era_scenarios(),
    ]
    .concat()
}

fn reference(batch: usize, retention: Option<u8>, limit: Option<(u8, bool)>) -> Setup {
    setup(false, 0, batch, retention, limit)
}

fn tagged(batch: usize, retention: Option<u8>, limit: Option<(u8, bool)>) -> Setup {
    setup(true, 0, batch, retention, limit)
}

/// Revoke-all batches and the session limit.
fn revoke_all_and_limit_scenarios() -> Vec<Scenario> {
    vec![
        (
            // Two sessions in one microsecond score, the one created after
            // the instant sorting first, batch size 1: revoke all must
            // still revoke the other.
            "revoke_all-full-batch-of-later-sessions-in-the-same-microsecond",
            reference(1, None, None),
            vec![
                act(STILL, create(A5, U1, AT_999NS)),
                act(STILL, create(DEV1, U1, AT_1NS)),
                act(STILL, create(D3, U1, AT_999NS)),
                act(STILL, revoke_all(U1, AT_1NS, true)),
                act(STILL, Action::List { user: U1 }),
            ],
        ),
        (
            "revoke_all-batches-of-one-counting-form-tagged",
            tagged(1, None, None),
            vec![
                act(STILL, create(DEV1, U2, AT_MINUS_3S)),
                act(STILL, create(DEV2, U2, AT_MINUS_1S)),
                act(STILL, create(D3, U2, AT_0)),
                act(STILL, create(DEV4, U2, AT_PLUS_2S)),
                act(PLUS_500NS, revoke_all(U2, AT_0, false)),
                act(STILL, Action::Count { user: U2 }),
            ],
        ),
        (
            "limit-revoke-oldest-evicts-in-the-create",
            reference(2, None, Some((2, true))),
            vec![
                act(STILL, create(DEV1, U1, AT_MINUS_3S)),
                act(STILL, create(DEV2, U1, AT_MINUS_1S)),
                act(PLUS_1S, create(D3, U1, AT_0)),
                act(STILL, create_revoked(DEV4, U1, AT_0, AT_1US)),
                act(STILL, Action::Count { user: U1 }),
                step(STILL, Op::Pages(walk(U1, true, [0, 0, 0]))),
            ],
        ),
        (
            "limit-reject-then-room-after-a-revoke-tagged",
            tagged(3, None, Some((1, false))),
            vec![
                act(STILL, create(DEV1, U3, AT_0)),
                act(STILL, create(DEV2, U3, AT_1NS)),
                act(
                    STILL,
                    Action::Revoke {
                        id: DEV1,
                        at: AT_1US,
                        reason: 2,
                    },
                ),
                act(STILL, create(DEV2, U3, AT_1NS)),
                act(STILL, create(DEV2, U1, AT_1NS)),
            ],
        ),
        (
            "limit-concurrent-creates-race-for-the-oldest",
            reference(1, None, Some((2, true))),
            vec![
                act(STILL, create(DEV1, U1, AT_MINUS_3S)),
                act(STILL, create(DEV2, U1, AT_MINUS_1S)),
                step(
                    PLUS_1S,
                    Op::Concurrent {
                        main: create(D3, U1, AT_0),
                        other: create(DEV4, U1, AT_1NS),
                        point: 1,
                    },
                ),
                act(STILL, Action::List { user: U1 }),
            ],
        ),
    ]
}

/// Retention: expired sessions removed by reads, creates and owners.
fn retention_scenarios() -> Vec<Scenario> {
    vec![
        (
            "retention-passes-get-list-and-create-remove",
            reference(2, Some(KEEP_1S), None),
            vec![
                act(STILL, create_revoked(DEV1, U2, AT_MINUS_3S, AT_MINUS_1S)),
                act(STILL, create_revoked(DEV2, U2, AT_0, AT_0)),
                act(STILL, create(D3, U2, AT_0)),
                act(
                    STILL,
                    Action::Get {
                        id: DEV1,
                        user: None,
                    },
                ),
                act(PLUS_1S, Action::List { user: U2 }),
                act(PLUS_500NS, create(DEV4, U2, AT_0)),
                act(
                    PLUS_2S,
                    Action::Get {
                        id: DEV2,
                        user: Some(U2),
                    },
                ),
                act(STILL, create(DEV2, U1, AT_0)),
            ],
        ),
        (
            "retention-owner-outlives-its-record-tagged",
            tagged(2, Some(KEEP_1NS), None),
            vec![
                act(STILL, create_revoked(DEV1, U1, AT_MINUS_1S, AT_MINUS_1S)),
                act(
                    PLUS_500NS,
                    Action::Get {
                        id: DEV1,
                        user: None,
                    },
                ),
                act(STILL, create(DEV1, U2, AT_0)),
                act(STILL, create(DEV1, U1, AT_0)),
                act(
                    STILL,
                    Action::Revoke {
                        id: DEV1,
                        at: AT_MINUS_1S,
                        reason: 0,
                    },
                ),
                act(
                    STILL,
                    Action::Get {
                        id: DEV1,
                        user: Some(U1),
                    },
                ),
            ],
        ),
    ]
}

/// Pages across changes, and changes inside another operation.
fn page_and_concurrency_scenarios() -> Vec<Scenario> {
    vec![
        (
            "pages-through-one-microsecond-group-limit-one",
            reference(3, None, None),
            vec![
                act(STILL, create(DEV1, U1, AT_0)),
                act(STILL, create(DEV2, U1, AT_1NS)),
                act(STILL, create(D3, U1, AT_999NS)),
                act(STILL, create(A5, U1, AT_0)),
                act(STILL, create(DEV4, U1, AT_1US)),
                step(STILL, Op::Pages(walk(U1, false, [0, 0, 1]))),
                step(STILL, Op::Pages(walk(U1, true, [1, 0, 4]))),
            ],
        ),
        (
            "pages-with-a-revoke-and-a-create-between-them-tagged",
            tagged(2, Some(KEEP_1S), None),
            vec![
                act(STILL, create(DEV1, U3, AT_MINUS_3S)),
                act(STILL, create(DEV2, U3, AT_MINUS_1S)),
                act(STILL, create(D3, U3, AT_0)),
                step(
                    STILL,
                    Op::ConcurrentPages {
                        walk: walk(U3, false, [0, 0, 0]),
                        other: Action::Revoke {
                            id: DEV2,
                            at: AT_0,
                            reason: 1,
                        },
                        after: 0,
                    },
                ),
                step(
                    STILL,
                    Op::ConcurrentPages {
                        walk: walk(U3, true, [0, 0, 0]),
                        other: create(DEV4, U3, AT_MINUS_1S),
                        after: 1,
                    },
                ),
            ],
        ),
        (
            // A get removes an expired session between a page's index read
            // and its record read: the page confirms, retries, and goes on.
            "pages-an-expired-session-removed-inside-a-page",
            reference(2, Some(KEEP_1NS), None),
            vec![
                act(STILL, create(DEV1, U2, AT_MINUS_3S)),
                act(STILL, create(D3, U2, AT_0)),
                // Last: a later create would remove it on the way.
                act(STILL, create_revoked(DEV2, U2, AT_MINUS_1S, AT_MINUS_1S)),
                step(
                    PLUS_500NS,
                    Op::ConcurrentPages {
                        walk: walk(U2, false, [1, 1, 1]),
                        other: Action::Get {
                            id: DEV2,
                            user: None,
                        },
                        after: 0x80,
                    },
                ),
            ],
        ),
        (
            "concurrent-revoke-inside-revoke-all",
            reference(5, None, None),
            vec![
                act(STILL, create(DEV1, U1, AT_MINUS_1S)),
                act(STILL, create(DEV2, U1, AT_0)),
                step(
                    PLUS_500NS,
                    Op::Concurrent {
                        main: revoke_all(U1, AT_0, true),
                        other: Action::Revoke {
                            id: DEV2,
                            at: AT_0,
                            reason: 0,
                        },
                        point: 1,
                    },
                ),
                step(
                    STILL,
                    Op::Concurrent {
                        main: Action::List { user: U1 },
                        other: create(D3, U1, AT_0),
                        point: 0,
                    },
                ),
            ],
        ),
    ]
}

/// Every kind of damage once, in each layout, between the main action's
/// read and its apply.
fn tamper_scenarios() -> Vec<Scenario> {
    let mut seeds = Vec::new();
    let tampers = [
        Tamper::DropIndexEntry {
            user: U1,
            id: DEV1,
            index: 1,
        },
        Tamper::AddIndexEntry {
            user: U1,
            id: DEV4,
            index: 0,
            at: AT_0,
        },
        Tamper::PlantBadMember {
            user: U1,
            index: 1,
            member: 0,
        },
        Tamper::DeleteRecord { id: DEV2 },
        Tamper::CorruptRecord {
            id: DEV1,
            payload: 7,
            user: U2,
        },
        Tamper::CorruptOwner { id: DEV2, value: 2 },
        Tamper::SortedSetAtRecord { id: DEV2, user: U1 },
        Tamper::StringAtIndex { user: U1, index: 2 },
    ];
    let names = [
        "tamper-drop-active-entry-inside-revoke-all",
        "tamper-add-stray-entry-inside-list",
        "tamper-plant-non-utf8-member-inside-create",
        "tamper-delete-record-inside-revoke",
        "tamper-another-users-record-inside-get",
        "tamper-owner-names-another-user-inside-revoke",
        "tamper-sorted-set-at-record-inside-list",
        "tamper-string-at-revoked-index-inside-create",
    ];
    let mains = [
        revoke_all(U1, AT_PLUS_2S, true),
        Action::List { user: U1 },
        create(D3, U1, AT_0),
        Action::Revoke {
            id: DEV2,
            at: AT_0,
            reason: 0,
        },
        Action::Get {
            id: DEV1,
            user: None,
        },
        Action::Revoke {
            id: DEV2,
            at: AT_0,
            reason: 0,
        },
        Action::List { user: U1 },
        create(D3, U1, AT_0),
    ];
    for (i, ((tamper, name), main)) in tampers.into_iter().zip(names).zip(mains).enumerate() {
        let layout_tagged = i % 2 == 1 || matches!(tamper, Tamper::CorruptOwner { .. });
        seeds.push((
            name,
            setup(layout_tagged, 0, 2, Some(KEEP_1S), Some((3, true))),
            vec![
                act(STILL, create(DEV1, U1, AT_MINUS_1S)),
                act(STILL, create_revoked(DEV2, U1, AT_MINUS_3S, AT_MINUS_1S)),
                step(
                    STILL,
                    Op::Tampered {
                        main,
                        tamper,
                        point: 0,
                    },
                ),
                act(STILL, create(DEV4, U1, AT_0)),
            ],
        ));
    }
    seeds
}

/// The edges of time: negative scores, Go's zero time, and the last
/// seconds of year 9999 and the first of year 1, where one f64 score
/// stands for several microseconds.
fn era_scenarios() -> Vec<Scenario> {
    let mut seeds = Vec::new();
    for (name, era) in [
        ("era-1969-negative-scores-retention-and-pages", 1),
        ("era-9999-coarse-scores-retention-and-revoke-all", 2),
        ("era-0001-go-zero-time-and-coarse-scores", 3),
    ] {
        seeds.push((
            name,
            setup(era == 2, era, 2, Some(KEEP_1NS), Some((3, true))),
            vec![
                act(STILL, create(DEV1, U1, AT_0)),
                act(STILL, create_revoked(DEV2, U1, AT_1NS, AT_1US)),
                act(STILL, create(D3, U1, AT_1US)),
                act(PLUS_500NS, create(A5, U1, AT_999NS)),
                act(STILL, revoke_all(U1, AT_1NS, true)),
                act(PLUS_500NS, create(DEV4, U1, AT_0)),
                step(STILL, Op::Pages(walk(U1, false, [0, 1, 0]))),
                act(PLUS_1S, Action::List { user: U1 }),
            ],
        ));
    }
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transitions::describe_transitions;

    #[test]
    fn seeds_decode_to_the_steps_they_were_written_from() {
        let reference = setup(false, 0, 1, None, None);
        let steps = vec![
            act(STILL, create(A5, U1, AT_999NS)),
            step(
                PLUS_1S,
                Op::Tampered {
                    main: revoke_all(U2, AT_0, true),
                    tamper: Tamper::StringAtIndex { user: 1, index: 2 },
                    point: 3,
                },
            ),
        ];
        let mut expected = format!("{reference:?}\n");
        for (n, s) in steps.iter().enumerate() {
            expected.push_str(&format!("{n}: {s:?}\n"));
        }
        assert_eq!(
            describe_transitions(&encode_transitions(&reference, &steps)),
            expected
        );
    }

    #[test]
    fn every_seed_decodes_to_its_scenario_and_names_are_unique() {
        let scenarios = scenarios();
        let names: std::collections::BTreeSet<_> = scenarios.iter().map(|(n, ..)| *n).collect();
        assert_eq!(names.len(), scenarios.len());
        for (name, setup, steps) in &scenarios {
            let mut expected = format!("{setup:?}\n");
            for (n, s) in steps.iter().enumerate() {
                expected.push_str(&format!("{n}: {s:?}\n"));
            }
            let bytes = encode_transitions(setup, steps);
            assert_eq!(describe_transitions(&bytes), expected, "{name}");
        }
    }
}
