//! The generic plan-applying Lua script against the in-memory model: the
//! same plan applied to `MemoryKv` and, through the driver's real encoding
//! (`RedisBackend`'s `Backend::apply`), to a real redis-server must give
//! the same `Applied` and leave the same keys, types, values, members and
//! scores (read back raw).
//!
//! Random plans (proptest) over a small alphabet of keys, values, members
//! (some not UTF-8, one empty) and scores (negative, and coarse ones where
//! an f64 no longer tells microseconds apart), on random starting states
//! where any key may hold either type; plus hand-written cases for every
//! precondition holding and failing, every wrong type, write order on one
//! key, more removals and members than one Lua `unpack` takes, and empty
//! plans. Random plans run by an ACL user lacking one write command are
//! refused (`permission_denied`, nothing written where the server checks
//! the ACL up front), and the script's calls come in the plan's fail-safe
//! order (MONITOR).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::time::Duration;

use authsession_core::model::MemoryKv;
use authsession_core::plan::{Applied, KeyType, Member, OnViolation, Plan, Precondition, Write};
use authsession_core::{IndexScore, KeySpace, Timestamp};
use authsession_driver::backend::Backend;
use authsession_driver::RedisBackend;
use authsession_tests::{RedisRaw, RedisServer};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// What one key holds.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    String(Vec<u8>),
    SortedSet(BTreeMap<Member, f64>),
}

/// A whole key space.
type State = BTreeMap<String, Value>;

const BUDGET: Duration = Duration::from_secs(10);

/// A redis-server with the backend under test and a raw connection.
struct Redis {
    _server: RedisServer,
    backend: RedisBackend,
    raw: RedisRaw,
}

impl Redis {
    async fn start() -> Self {
        let server = RedisServer::start();
        let backend = RedisBackend::connect(&server.config(KeySpace::default()))
            .await
            .expect("connect the backend");
        let raw = server.raw().await;
        Self {
            _server: server,
            backend,
            raw,
        }
    }

    /// Replaces everything with `state`.
    async fn plant(&self, state: &State) {
        let () = self.raw.query(&redis::cmd("FLUSHDB")).await;
        for (key, value) in state {
            match value {
                Value::String(bytes) => {
                    let () = self.raw.query(redis::cmd("SET").arg(key).arg(bytes)).await;
                }
                Value::SortedSet(members) => {
                    let mut zadd = redis::cmd("ZADD");
                    zadd.arg(key);
                    for (member, score) in members {
                        zadd.arg(*score).arg(member.as_slice());
                    }
                    let _: i64 = self.raw.query(&zadd).await;
                }
            }
        }
    }

    /// Everything stored, read back raw.
    async fn dump(&self) -> State {
        let keys: Vec<String> = self.raw.query(redis::cmd("KEYS").arg("*")).await;
        let mut state = State::new();
        for key in keys {
            let kind: String = self.raw.query(redis::cmd("TYPE").arg(&key)).await;
            let value = match kind.as_str() {
                "string" => Value::String(self.raw.query(redis::cmd("GET").arg(&key)).await),
                "zset" => {
                    let members: Vec<(Vec<u8>, f64)> = self
                        .raw
                        .query(
                            redis::cmd("ZRANGE")
                                .arg(&key)
                                .arg(0)
                                .arg(-1)
                                .arg("WITHSCORES"),
                        )
                        .await;
                    Value::SortedSet(members.into_iter().collect())
                }
                other => panic!("{key} holds a {other}"),
            };
            state.insert(key, value);
        }
        state
    }
}

fn memory_of(state: &State) -> MemoryKv {
    let mut kv = MemoryKv::new();
    for (key, value) in state {
        match value {
            Value::String(bytes) => kv.set_raw(key.clone(), bytes.clone()),
            Value::SortedSet(members) => {
                for (member, score) in members {
                    kv.index_add_raw(key.clone(), member.clone(), *score);
                }
            }
        }
    }
    kv
}

fn dump_memory(kv: &MemoryKv) -> State {
    kv.keys()
        .map(|key| {
            let value = match kv.key_type(key) {
                Some(KeyType::SortedSet) => {
                    Value::SortedSet(kv.index_range(key, None).into_iter().collect())
                }
                _ => Value::String(kv.get(key).unwrap_or_default().to_vec()),
            };
            (key.to_owned(), value)
        })
        .collect()
}

/// Applies `plan` on `state` in both; the `Applied` of both and the state
/// after, or a description of how they differ.
async fn differ(redis: &Redis, state: &State, plan: &Plan) -> Result<(Applied, State), String> {
    let mut kv = memory_of(state);
    assert_eq!(dump_memory(&kv), *state, "the model holds what was planted");
    redis.plant(state).await;
    assert_eq!(
        redis.dump().await,
        *state,
        "the server holds what was planted"
    );

    let in_memory = kv.apply(plan);
    let on_server = match redis.backend.apply(BUDGET, plan).await {
        Ok(applied) => applied,
        Err(e) => {
            return Err(format!(
                "the script failed: {e}\nplan {plan:?}\non {state:?}\nserver after: {:?}",
                redis.dump().await
            ))
        }
    };
    let (memory_after, server_after) = (dump_memory(&kv), redis.dump().await);
    if in_memory != on_server || memory_after != server_after {
        return Err(format!(
            "plan {plan:?}\non {state:?}\nmemory: {in_memory:?} -> {memory_after:?}\n\
             server: {on_server:?} -> {server_after:?}"
        ));
    }
    if in_memory != Applied::Done {
        assert_eq!(memory_after, *state, "a refused plan wrote");
    }
    Ok((in_memory, memory_after))
}

/// [`differ`], panicking on a difference; checks the expected `Applied`.
async fn same(redis: &Redis, state: &State, plan: &Plan, expected: &Applied) -> State {
    let (applied, after) = differ(redis, state, plan)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&applied, expected, "plan {plan:?} on {state:?}");
    after
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

// The alphabet. Keys include a hash tag and a prefix-like name; members
// are raw bytes, some not UTF-8, one empty.
const KEYS: [&str; 4] = ["k:a", "k:b", "authsession:session:x", "k:{tag}c"];
const VALUES: [&[u8]; 4] = [b"", b"v1", b"v2", b"\xff\x00\xfe"];
const MEMBERS: [&[u8]; 6] = [b"m1", b"m2", b"", b"m\x00x", b"\xff", b"\xc3\x28"];
/// The members a store can add: UTF-8 ones.
const TEXT_MEMBERS: [&str; 4] = ["m1", "m2", "", "m\u{0}x"];

fn scores() -> Vec<IndexScore> {
    [
        "2024-05-06T07:08:09Z",
        "2024-05-06T07:08:09.000001Z",
        "1969-12-31T23:59:59.999999Z",
        "9999-12-31T23:59:59.999999Z",
        "9999-12-31T23:59:59.999998Z",
        "0000-01-01T00:00:00Z",
    ]
    .iter()
    .map(|t| IndexScore::of(Timestamp::parse(t).unwrap()))
    .collect()
}

fn score(i: usize) -> IndexScore {
    let all = scores();
    all[i % all.len()]
}

fn key(i: usize) -> String {
    KEYS[i % KEYS.len()].to_owned()
}

fn members(picks: &[usize]) -> Vec<Member> {
    let mut out: Vec<Member> = Vec::new();
    for &i in picks {
        let m = MEMBERS[i % MEMBERS.len()].to_vec();
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

fn arb_value() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        (0..VALUES.len()).prop_map(|v| Some(Value::String(VALUES[v].to_vec()))),
        prop::collection::vec((0..MEMBERS.len(), 0..6usize), 1..4).prop_map(|ms| {
            Some(Value::SortedSet(
                ms.into_iter()
                    .map(|(m, s)| (MEMBERS[m].to_vec(), score(s).as_f64()))
                    .collect(),
            ))
        }),
    ]
}

fn arb_state() -> impl Strategy<Value = State> {
    prop::collection::vec(arb_value(), KEYS.len()).prop_map(|values| {
        values
            .into_iter()
            .enumerate()
            .filter_map(|(i, v)| Some((key(i), v?)))
            .collect()
    })
}

/// One precondition or write before its key's role is known: which key,
/// which kind, and operands.
#[derive(Debug, Clone)]
struct Recipe {
    key: usize,
    kind: u8,
    a: usize,
    b: usize,
    picks: Vec<usize>,
}

fn arb_recipe() -> impl Strategy<Value = Recipe> {
    (
        0..KEYS.len(),
        any::<u8>(),
        0..64usize,
        0..64usize,
        prop::collection::vec(0..MEMBERS.len(), 0..4),
    )
        .prop_map(|(key, kind, a, b, picks)| Recipe {
            key,
            kind,
            a,
            b,
            picks,
        })
}

fn on_violation(i: usize) -> OnViolation {
    [
        OnViolation::Conflict,
        OnViolation::Retry,
        OnViolation::SessionLimit,
    ][i % 3]
}

/// A precondition on a key used as an index (`index`) or a string.
fn precondition(r: &Recipe, index: bool) -> Precondition {
    let key = key(r.key);
    let max_score = (!r.b.is_multiple_of(3)).then(|| score(r.b));
    match (index, r.kind % 3) {
        (false, 0) => Precondition::Absent { key },
        (false, 1) => Precondition::ValueEquals {
            key,
            value: VALUES[r.a % VALUES.len()].to_vec(),
        },
        (false, _) => Precondition::AbsentOrEquals {
            key,
            value: VALUES[r.a % VALUES.len()].to_vec(),
        },
        (true, 0) => Precondition::IndexRangeEquals {
            key,
            max_score,
            members: members(&r.picks),
        },
        (true, 1) => Precondition::IndexContains {
            key,
            members: members(&r.picks),
        },
        (true, _) => Precondition::IndexCountAtMost {
            key,
            max_score,
            max: (r.a % 5) as u64,
        },
    }
}

fn write(r: &Recipe, index: bool) -> Write {
    let key = key(r.key);
    match (index, r.kind % 2) {
        (false, 0) => Write::Set {
            key,
            value: VALUES[r.a % VALUES.len()].to_vec(),
        },
        (false, _) => Write::Delete { key },
        (true, 0) => Write::IndexAdd {
            key,
            score: score(r.b),
            member: TEXT_MEMBERS[r.a % TEXT_MEMBERS.len()].to_owned(),
        },
        (true, _) => Write::IndexRemove {
            key,
            member: MEMBERS[r.a % MEMBERS.len()].to_vec(),
        },
    }
}

/// A plan where each key has one role (string or index), the way every
/// operation uses its keys; `roles[k]`: key `k` is an index.
fn plan_of(roles: &[bool], pre: &[Recipe], writes: &[Recipe]) -> Plan {
    let role = |r: &Recipe| roles[r.key % roles.len()];
    let mut plan = Plan::empty();
    for r in pre {
        plan = plan.require(precondition(r, role(r)), on_violation(r.a + r.b));
    }
    plan.with_writes(writes.iter().map(|r| write(r, role(r))))
}

fn arb_case() -> impl Strategy<Value = (State, Plan)> {
    (
        arb_state(),
        prop::collection::vec(any::<bool>(), KEYS.len()),
        prop::collection::vec(arb_recipe(), 0..5),
        prop::collection::vec(arb_recipe(), 0..9),
    )
        .prop_map(|(state, roles, pre, writes)| (state, plan_of(&roles, &pre, &writes)))
}

/// A runtime, a server and a runner of `cases` random cases (nothing
/// persisted: a failure prints its case).
fn property_run(cases: u32) -> (tokio::runtime::Runtime, Redis, TestRunner) {
    let rt = runtime();
    let redis = rt.block_on(Redis::start());
    let runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    (rt, redis, runner)
}

#[test]
fn random_plans_apply_alike_in_memory_and_on_the_server() {
    let (rt, redis, mut runner) = property_run(600);
    let outcomes: std::cell::RefCell<BTreeMap<String, usize>> = Default::default();
    runner
        .run(&arb_case(), |(state, plan)| {
            let (applied, _) = rt
                .block_on(differ(&redis, &state, &plan))
                .map_err(TestCaseError::fail)?;
            let name = match applied {
                Applied::Done => "done".to_owned(),
                Applied::Violated { index } => format!("violated {index}"),
                Applied::WrongType { .. } => "wrong type".to_owned(),
                other => format!("{other:?}"),
            };
            *outcomes.borrow_mut().entry(name).or_default() += 1;
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    // The generator reaches every answer (not a vacuous pass).
    let outcomes = outcomes.into_inner();
    for expected in ["done", "violated 0", "violated 1", "wrong type"] {
        assert!(
            outcomes.get(expected).is_some_and(|n| *n >= 10),
            "{expected}: {outcomes:?}"
        );
    }
}

/// Plans whose every use picks its own role, so a key is often used both
/// as a string and as an index: refused alike (see
/// `a_key_used_as_string_and_index_in_one_plan`), else applied alike.
fn arb_mixed_case() -> impl Strategy<Value = (State, Plan)> {
    (
        arb_state(),
        prop::collection::vec((arb_recipe(), any::<bool>()), 0..5),
        prop::collection::vec((arb_recipe(), any::<bool>()), 1..9),
    )
        .prop_map(|(state, pre, writes)| {
            let mut plan = Plan::empty();
            for (r, index) in &pre {
                plan = plan.require(precondition(r, *index), on_violation(r.a + r.b));
            }
            (
                state,
                plan.with_writes(writes.iter().map(|(r, index)| write(r, *index))),
            )
        })
}

#[test]
fn random_plans_with_mixed_roles_apply_alike_in_memory_and_on_the_server() {
    let (rt, redis, mut runner) = property_run(300);
    let (done, refused) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    runner
        .run(&arb_mixed_case(), |(state, plan)| {
            let (applied, after) = rt
                .block_on(differ(&redis, &state, &plan))
                .map_err(TestCaseError::fail)?;
            match applied {
                Applied::Done => done.set(done.get() + 1),
                Applied::WrongType { .. } => {
                    prop_assert_eq!(&after, &state, "refused, yet written");
                    refused.set(refused.get() + 1);
                }
                _ => {}
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let (done, refused) = (done.get(), refused.get());
    assert!(
        done >= 10 && refused >= 10,
        "done {done}, refused {refused}"
    );
}

fn string(bytes: &[u8]) -> Value {
    Value::String(bytes.to_vec())
}

fn zset(members: &[(&[u8], f64)]) -> Value {
    Value::SortedSet(members.iter().map(|(m, s)| (m.to_vec(), *s)).collect())
}

fn state(entries: &[(&str, Value)]) -> State {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn at(score: f64) -> IndexScore {
    let micros = score as i64;
    IndexScore::of(Timestamp::from_unix_nanos(i128::from(micros) * 1000).unwrap())
}

fn plan(pre: Vec<Precondition>, writes: Vec<Write>) -> Plan {
    Plan::new(pre, writes, OnViolation::Retry)
}

fn set(key: &str, value: &[u8]) -> Write {
    Write::Set {
        key: key.to_owned(),
        value: value.to_vec(),
    }
}

fn add(key: &str, score: f64, member: &str) -> Write {
    Write::IndexAdd {
        key: key.to_owned(),
        score: at(score),
        member: member.to_owned(),
    }
}

fn remove(key: &str, member: &[u8]) -> Write {
    Write::IndexRemove {
        key: key.to_owned(),
        member: member.to_vec(),
    }
}

#[tokio::test]
async fn empty_plans_do_nothing() {
    let redis = Redis::start().await;
    let empty = State::new();
    same(&redis, &empty, &Plan::empty(), &Applied::Done).await;
    let full = state(&[("s", string(b"v")), ("z", zset(&[(b"m", 1.0)]))]);
    let after = same(&redis, &full, &Plan::empty(), &Applied::Done).await;
    assert_eq!(after, full);
}

#[tokio::test]
async fn every_precondition_holds_or_fails_by_position() {
    let redis = Redis::start().await;
    let start = state(&[
        ("v", string(b"old")),
        ("bin", string(b"\xff\x00")),
        (
            "z",
            zset(&[(b"a", 1.0), (b"b", 2.0), (b"\xff", 3.0), (b"late", 10.0)]),
        ),
    ]);
    let bytes = |b: &[u8]| b.to_vec();
    let holding = vec![
        Precondition::Absent { key: "new".into() },
        Precondition::ValueEquals {
            key: "v".into(),
            value: bytes(b"old"),
        },
        Precondition::ValueEquals {
            key: "bin".into(),
            value: bytes(b"\xff\x00"),
        },
        Precondition::AbsentOrEquals {
            key: "new".into(),
            value: bytes(b"x"),
        },
        Precondition::AbsentOrEquals {
            key: "v".into(),
            value: bytes(b"old"),
        },
        Precondition::IndexRangeEquals {
            key: "z".into(),
            max_score: Some(at(3.0)),
            members: vec![bytes(b"\xff"), bytes(b"a"), bytes(b"b")],
        },
        Precondition::IndexRangeEquals {
            key: "z".into(),
            max_score: None,
            members: vec![bytes(b"a"), bytes(b"b"), bytes(b"\xff"), bytes(b"late")],
        },
        Precondition::IndexRangeEquals {
            key: "missing".into(),
            max_score: None,
            members: Vec::new(),
        },
        Precondition::IndexContains {
            key: "z".into(),
            members: vec![bytes(b"late"), bytes(b"\xff")],
        },
        Precondition::IndexCountAtMost {
            key: "z".into(),
            max_score: Some(at(2.0)),
            max: 2,
        },
        Precondition::IndexCountAtMost {
            key: "z".into(),
            max_score: None,
            max: 4,
        },
        Precondition::IndexCountAtMost {
            key: "missing".into(),
            max_score: None,
            max: 0,
        },
    ];
    let after = same(
        &redis,
        &start,
        &plan(holding.clone(), vec![set("new", b"x")]),
        &Applied::Done,
    )
    .await;
    assert_eq!(after.get("new"), Some(&string(b"x")));

    let failing = vec![
        Precondition::Absent { key: "v".into() },
        Precondition::ValueEquals {
            key: "v".into(),
            value: bytes(b"other"),
        },
        // An absent string (not `missing`, which the holding ones use as
        // an index: one key in both roles refuses the whole plan).
        Precondition::ValueEquals {
            key: "unset".into(),
            value: Vec::new(),
        },
        Precondition::AbsentOrEquals {
            key: "v".into(),
            value: bytes(b"new"),
        },
        // Same count, another member.
        Precondition::IndexRangeEquals {
            key: "z".into(),
            max_score: Some(at(3.0)),
            members: vec![bytes(b"a"), bytes(b"b"), bytes(b"late")],
        },
        // A member missing from the expected set.
        Precondition::IndexRangeEquals {
            key: "z".into(),
            max_score: Some(at(3.0)),
            members: vec![bytes(b"a"), bytes(b"b")],
        },
        // Unbounded: `late` counts.
        Precondition::IndexRangeEquals {
            key: "z".into(),
            max_score: None,
            members: vec![bytes(b"a"), bytes(b"b"), bytes(b"\xff")],
        },
        Precondition::IndexContains {
            key: "z".into(),
            members: vec![bytes(b"a"), bytes(b"\xfe")],
        },
        Precondition::IndexContains {
            key: "missing".into(),
            members: vec![bytes(b"a")],
        },
        Precondition::IndexCountAtMost {
            key: "z".into(),
            max_score: Some(at(2.0)),
            max: 1,
        },
        Precondition::IndexCountAtMost {
            key: "z".into(),
            max_score: None,
            max: 3,
        },
    ];
    for failing in failing {
        // Reported by position (after every holding one), nothing written.
        let mut pre = holding.clone();
        pre.push(failing.clone());
        pre.push(Precondition::Absent { key: "v".into() });
        let index = holding.len();
        same(
            &redis,
            &start,
            &plan(pre, vec![set("new", b"x"), remove("z", b"a")]),
            &Applied::Violated { index },
        )
        .await;
        // Alone, at position 0.
        same(
            &redis,
            &start,
            &plan(vec![failing], vec![set("v", b"clobbered")]),
            &Applied::Violated { index: 0 },
        )
        .await;
    }
}

#[tokio::test]
async fn a_wrong_type_is_refused_before_any_write_for_every_kind() {
    let redis = Redis::start().await;
    let start = state(&[("s", string(b"v")), ("z", zset(&[(b"m", 1.0)]))]);
    let bytes = |b: &[u8]| b.to_vec();
    // Each kind on the key of the other type; a write to a fresh key comes
    // first in the plan, so a partial apply would show.
    let on_z: Vec<Precondition> = vec![
        Precondition::Absent { key: "z".into() },
        Precondition::ValueEquals {
            key: "z".into(),
            value: bytes(b"v"),
        },
        Precondition::AbsentOrEquals {
            key: "z".into(),
            value: bytes(b"v"),
        },
    ];
    let on_s: Vec<Precondition> = vec![
        Precondition::IndexRangeEquals {
            key: "s".into(),
            max_score: None,
            members: Vec::new(),
        },
        Precondition::IndexContains {
            key: "s".into(),
            members: vec![bytes(b"m")],
        },
        Precondition::IndexCountAtMost {
            key: "s".into(),
            max_score: None,
            max: 5,
        },
    ];
    for (p, key) in on_z
        .into_iter()
        .map(|p| (p, "z"))
        .chain(on_s.into_iter().map(|p| (p, "s")))
    {
        same(
            &redis,
            &start,
            &plan(vec![p], vec![set("fresh", b"x"), add("fresh-z", 1.0, "m")]),
            &Applied::WrongType { key: key.into() },
        )
        .await;
    }
    let writes = [(add("s", 1.0, "m"), "s"), (remove("s", b"m"), "s")];
    for (w, key) in writes {
        same(
            &redis,
            &start,
            &plan(Vec::new(), vec![set("fresh", b"x"), w]),
            &Applied::WrongType { key: key.into() },
        )
        .await;
    }
    // Setting or deleting takes a key of any type (SET replaces, DEL
    // removes: nothing can fail half-way), so neither is checked.
    for w in [set("z", b"x"), Write::Delete { key: "z".into() }] {
        same(
            &redis,
            &start,
            &plan(Vec::new(), vec![set("fresh", b"x"), w]),
            &Applied::Done,
        )
        .await;
    }
    // The first key of the plan with a wrong type is the one reported.
    same(
        &redis,
        &start,
        &plan(
            vec![Precondition::IndexContains {
                key: "s".into(),
                members: vec![bytes(b"m")],
            }],
            vec![set("z", b"x")],
        ),
        &Applied::WrongType { key: "s".into() },
    )
    .await;
}

#[tokio::test]
async fn writes_keep_plan_order_per_key() {
    let redis = Redis::start().await;
    let start = state(&[("act", zset(&[(b"m1", 1.0), (b"m2", 1.0), (b"m3", 1.0)]))]);
    // Revoke-all's shape (record writes between removals from one index),
    // then add-after-remove and remove-after-add of one member, a delete
    // after a set, a set after a delete, and a removal emptying a set.
    let writes = vec![
        set("r1", b"one"),
        remove("act", b"m1"),
        set("r2", b"two"),
        remove("act", b"m2"),
        add("act", 5.0, "m9"),
        remove("act", b"m9"),
        remove("act", b"m3"),
        add("act", 7.0, "m3"),
        set("r3", b"three"),
        Write::Delete { key: "r3".into() },
        Write::Delete { key: "r1".into() },
        set("r1", b"again"),
        add("gone", 1.0, "x"),
        remove("gone", b"x"),
        Write::Delete {
            key: "never".into(),
        },
        remove("never-z", b"x"),
    ];
    let after = same(&redis, &start, &plan(Vec::new(), writes), &Applied::Done).await;
    assert_eq!(
        after,
        state(&[
            ("act", zset(&[(b"m3", at(7.0).as_f64())])),
            ("r1", string(b"again")),
            ("r2", string(b"two")),
        ])
    );
}

#[tokio::test]
async fn more_members_than_one_unpack_takes() {
    let redis = Redis::start().await;
    let many: Vec<Vec<u8>> = (0..2500u32)
        .map(|i| {
            let mut m = format!("m{i:04}").into_bytes();
            if i % 7 == 0 {
                m.push(0xff);
            }
            m
        })
        .collect();
    let start: State = [(
        "big".to_owned(),
        Value::SortedSet(many.iter().map(|m| (m.clone(), 1.0)).collect()),
    )]
    .into();
    let contains = |members: Vec<Vec<u8>>| Precondition::IndexContains {
        key: "big".into(),
        members,
    };
    // Removals interleaved with record writes, as revoke-all sends them.
    let mut writes = Vec::new();
    for (i, m) in many.iter().enumerate() {
        if i % 300 == 0 {
            writes.push(set(&format!("rec{i}"), b"r"));
        }
        writes.push(remove("big", m));
    }
    let guard = vec![
        contains(many.iter().take(1200).cloned().collect()),
        Precondition::IndexRangeEquals {
            key: "big".into(),
            max_score: None,
            members: many.clone(),
        },
        Precondition::IndexCountAtMost {
            key: "big".into(),
            max_score: None,
            max: 2500,
        },
    ];
    let after = same(&redis, &start, &plan(guard, writes.clone()), &Applied::Done).await;
    assert!(!after.contains_key("big"), "every member removed");
    assert_eq!(after.len(), 9);

    // The last member of a long IndexContains missing: refused.
    let mut members: Vec<Vec<u8>> = many.iter().take(1500).cloned().collect();
    members.push(b"absent".to_vec());
    same(
        &redis,
        &start,
        &plan(vec![contains(members)], writes),
        &Applied::Violated { index: 0 },
    )
    .await;
}

#[tokio::test]
async fn non_utf8_members_are_compared_and_removed_as_bytes() {
    let redis = Redis::start().await;
    let start = state(&[(
        "z",
        zset(&[(b"\xff", 1.0), (b"\xc3\x28", 2.0), (b"", 3.0), (b"ok", 4.0)]),
    )]);
    let bytes = |b: &[u8]| b.to_vec();
    let after = same(
        &redis,
        &start,
        &plan(
            vec![
                Precondition::IndexContains {
                    key: "z".into(),
                    members: vec![bytes(b"\xc3\x28"), bytes(b"")],
                },
                Precondition::IndexRangeEquals {
                    key: "z".into(),
                    max_score: Some(at(2.0)),
                    members: vec![bytes(b"\xc3\x28"), bytes(b"\xff")],
                },
            ],
            vec![remove("z", b"\xff"), remove("z", b""), remove("z", b"\xc3")],
        ),
        &Applied::Done,
    )
    .await;
    assert_eq!(
        after,
        state(&[("z", zset(&[(b"\xc3\x28", 2.0), (b"ok", 4.0)]))])
    );
    // A lossy UTF-8 reading of a member is another member.
    same(
        &redis,
        &start,
        &plan(
            vec![Precondition::IndexContains {
                key: "z".into(),
                members: vec!["\u{fffd}".as_bytes().to_vec()],
            }],
            Vec::new(),
        ),
        &Applied::Violated { index: 0 },
    )
    .await;
}

#[tokio::test]
async fn coarse_and_negative_scores_compare_alike() {
    let redis = Redis::start().await;
    let scores = scores();
    let start: State = [(
        "z".to_owned(),
        Value::SortedSet(
            scores
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("m{i}").into_bytes(), s.as_f64()))
                .collect(),
        ),
    )]
    .into();
    for (i, bound) in scores.iter().enumerate() {
        let below: Vec<Vec<u8>> = scores
            .iter()
            .enumerate()
            .filter(|(_, s)| s.as_f64() <= bound.as_f64())
            .map(|(j, _)| format!("m{j}").into_bytes())
            .collect();
        let count = below.len() as u64;
        let pre = vec![
            Precondition::IndexRangeEquals {
                key: "z".into(),
                max_score: Some(*bound),
                members: below,
            },
            Precondition::IndexCountAtMost {
                key: "z".into(),
                max_score: Some(*bound),
                max: count,
            },
        ];
        let writes = vec![add("z", 0.0, &format!("new{i}"))];
        let mut writes = writes;
        writes.push(Write::IndexAdd {
            key: "z".into(),
            score: *bound,
            member: format!("at{i}"),
        });
        same(&redis, &start, &plan(pre, writes), &Applied::Done).await;
        let too_few = vec![Precondition::IndexCountAtMost {
            key: "z".into(),
            max_score: Some(*bound),
            max: count - 1,
        }];
        same(
            &redis,
            &start,
            &plan(too_few, Vec::new()),
            &Applied::Violated { index: 0 },
        )
        .await;
    }
}

/// A plan that uses one key both as a string and as an index can never be
/// applied whole (no key holds both; Redis would fail the second kind of
/// write mid-script, after the first): both the script and the model
/// refuse it at that key as a wrong type, nothing written, whatever the
/// key holds.
#[tokio::test]
async fn a_key_used_as_string_and_index_in_one_plan() {
    let redis = Redis::start().await;
    let mixed = plan(Vec::new(), vec![set("k", b"x"), add("k", 1.0, "m")]);
    let outcome = differ(&redis, &State::new(), &mixed).await;
    assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    same(
        &redis,
        &State::new(),
        &mixed,
        &Applied::WrongType { key: "k".into() },
    )
    .await;
}

/// The script's write commands, as ACL rules name them.
const WRITE_COMMANDS: [&str; 4] = ["mset", "del", "zadd", "zrem"];

/// The write commands the script sends for `plan` (string writes to one
/// key collapse to the last one).
fn commands_of(plan: &Plan) -> Vec<&'static str> {
    let mut last: BTreeMap<&str, bool> = BTreeMap::new();
    let mut out = Vec::new();
    for write in plan.writes() {
        match write {
            Write::Set { key, .. } => drop(last.insert(key, true)),
            Write::Delete { key } => drop(last.insert(key, false)),
            Write::IndexAdd { .. } => out.push("zadd"),
            Write::IndexRemove { .. } => out.push("zrem"),
            _ => {}
        }
    }
    out.extend(last.values().map(|set| if *set { "mset" } else { "del" }));
    out
}

/// A backend logged in as a user with every right but `command`.
async fn backend_without(redis: &Redis, command: &str) -> RedisBackend {
    let name = format!("no-{command}");
    let () = redis
        .raw
        .query(
            redis::cmd("ACL")
                .arg("SETUSER")
                .arg(&name)
                .arg(&["on", ">pw", "~*", "+@all"][..])
                .arg(format!("-{command}")),
        )
        .await;
    let mut config = redis._server.config(KeySpace::default());
    config.settings.username = Some(name);
    config.settings.password = Some("pw".into());
    RedisBackend::connect(&config).await.unwrap()
}

/// Random plans run by a user lacking one write command: a plan whose
/// preconditions fail answers as the model does (they come before any
/// write); one that holds and makes no call of that command is applied
/// as the model applies it; one that would call it is `permission_denied`
/// — with nothing written where the server checks the ACL up front.
#[test]
fn random_plans_by_a_user_lacking_a_write_command() {
    let (rt, redis, mut runner) = property_run(400);
    let strict = rt.block_on(redis._server.info()).has_acl_check_cmd();
    let backends: Vec<(&str, RedisBackend)> = WRITE_COMMANDS
        .iter()
        .map(|c| (*c, rt.block_on(backend_without(&redis, c))))
        .collect();
    let (refused, applied) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    runner
        .run(
            &(arb_case(), 0..WRITE_COMMANDS.len()),
            |((state, plan), c)| {
                let (command, backend) = &backends[c];
                let mut kv = memory_of(&state);
                let in_memory = kv.apply(&plan);
                rt.block_on(redis.plant(&state));
                let result = rt.block_on(backend.apply(BUDGET, &plan));
                let after = rt.block_on(redis.dump());
                let uses = commands_of(&plan).contains(command);
                match (in_memory, result) {
                    (Applied::Done, Err(e)) if uses => {
                        prop_assert_eq!(
                            e.kind(),
                            authsession_driver::ErrorKind::PermissionDenied,
                            "{}",
                            e
                        );
                        if strict {
                            prop_assert_eq!(&after, &state, "refused, yet written");
                        }
                        refused.set(refused.get() + 1);
                    }
                    (expected, Ok(on_server)) if expected != Applied::Done || !uses => {
                        prop_assert_eq!(&on_server, &expected, "{:?} without {}", plan, command);
                        prop_assert_eq!(&after, &dump_memory(&kv));
                        applied.set(applied.get() + 1);
                    }
                    (expected, other) => {
                        return Err(TestCaseError::fail(format!(
                            "{plan:?} without {command} on {state:?}: model {expected:?}, \
                         server {other:?}"
                        )))
                    }
                }
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let (refused, applied) = (refused.get(), applied.get());
    assert!(
        refused >= 20 && applied >= 20,
        "refused {refused}, applied {applied}"
    );
}

/// The script makes its writes in the plan's fail-safe order (what a
/// server that cannot check them up front leaves when one is refused):
/// entries a new record needs, the records, removals and moves into
/// another index, deletions — whatever the plan's own order.
#[tokio::test]
async fn writes_go_in_fail_safe_order() {
    let redis = Redis::start().await;
    let monitor = authsession_tests::monitor::Monitor::start(redis._server.port());
    let writes = vec![
        // An expiry (deletion first in the plan)...
        Write::Delete { key: "old".into() },
        remove("all", b"old"),
        // ...a revocation (the record, then a move between indexes)...
        set("rec", b"revoked"),
        remove("act", b"rec"),
        add("rev", 3.0, "rec"),
        // ...and a create (the record before its entries).
        set("new", b"active"),
        add("all", 4.0, "new"),
        add("act", 4.0, "new"),
    ];
    let mut monitor = monitor;
    monitor.since_last_mark(&redis.raw).await;
    same(
        &redis,
        &State::new(),
        &plan(Vec::new(), writes),
        &Applied::Done,
    )
    .await;
    let calls: Vec<String> = monitor
        .since_last_mark(&redis.raw)
        .await
        .into_iter()
        .filter(|c| c.from_script() && WRITE_COMMANDS.contains(&c.name.as_str()))
        .map(|c| c.name)
        .collect();
    assert_eq!(
        calls,
        [
            "zadd", // all <- new
            "zadd", // act <- new
            "mset", // rec, new
            "zrem", // all -> old
            "zrem", // act -> rec
            "zadd", // rev <- rec (moved)
            "del",  // old
        ]
    );
}
