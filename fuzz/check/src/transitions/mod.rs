//! `transitions`: arbitrary operation sequences run by the core's own
//! reference loop (`op::run_with` over `model::MemoryKv`), checked against a
//! reference model after every step.
//!
//! # Input format
//!
//! The raw input is read with `arbitrary` (`Unstructured`), in this order:
//!
//! 1. a [`Setup`]: the key-space layout (reference or tagged), the era the
//!    clock starts in (2024; 1969, where scores are negative; the last
//!    seconds of year 9999 and the first of year 1, where an `f64` score
//!    stands for 32 µs and 8 µs — year 1 starts one nanosecond after Go's
//!    zero time, so an instant 1 ns earlier is the zero time, which no
//!    session or revocation may carry), and the store's `Policy`: batch
//!    size 1..=5, an optional revoked-session retention (0 ns, 1 ns, 1 µs,
//!    1 s or 3 s) and an optional active-session limit (1..=3, reject or
//!    revoke-oldest);
//! 2. up to [`MAX_STEPS`] [`Step`]s, each moving "now" forward by a small
//!    amount (never backwards; it stops at the end of year 9999) and then
//!    running one [`Op`].
//!
//! Ids, users and reasons are indexes into short lists ([`IDS`],
//! [`USERS`], [`REASONS`]) so operations collide; instants are "now" plus an
//! offset from [`OFFSETS_NANOS`], so `created_at` values tie, differ by less
//! than the index's microsecond resolution, and precede or follow
//! revocations and the retention horizon by a nanosecond.
//!
//! [`IDS`]: input::IDS
//! [`USERS`]: input::USERS
//! [`REASONS`]: input::REASONS
//! [`OFFSETS_NANOS`]: input::OFFSETS_NANOS
//!
//! An [`Op`] is one of:
//! - an [`Action`] (create, revoke, revoke all in its collecting or
//!   counting form, list, get, get for a user, count) built as the core's
//!   operation and run with `op::run_with`;
//! - a page walk: `ListPage` with a random limit per page, following
//!   `next_cursor` to the end, all sessions or active ones, then the last
//!   cursor replayed for another user and for the other status filter;
//! - a concurrent pair: another action runs to completion at the n-th
//!   `between` point of the main one (after one of its reads or applies);
//! - a page walk with an action run between two of its pages;
//! - a tampered action: the main action with a [`Tamper`] step at its n-th
//!   `between` point (drop or add an index entry, plant a member that is
//!   not UTF-8 or not an id, delete a record, overwrite it with bytes that
//!   do not decode or with another user's record, damage an owner key, put
//!   a value of the wrong type at a record or index key).
//!
//! # What is asserted
//!
//! On an untampered state every outcome equals the reference model's, and
//! after every step (and, for the limit, after every read and apply):
//! every key is one the key space derives; records decode to the model's
//! sessions; each index (all, active, revoked) holds exactly the members
//! its records call for, with their scores (so every index entry has its
//! record and vice versa — the Go adapter's view); the owner key of every
//! record names its user (tagged layout); the active count is at most the
//! limit; only sessions past their retention ever disappear, a get or
//! revoke that meets one removes it, and a list or a walk of all sessions
//! that meets `k` removes at least `min(k, batch size)`; pages followed to
//! the end concatenate exactly to `list`; a cursor is refused for another
//! user or status filter; `count` equals the active index size.
//! A concurrent pair equals one of its two serial orders (from the state
//! before, with or without the expired sessions that are gone; a create
//! that lost its eviction may take the second oldest on its retry), except
//! a revoke all whose range holds a batch or more (atomic per batch only:
//! it must revoke everything it covers and nothing else) and a list torn
//! by a change to two sessions at once (the sessions the index held
//! before, as their records are after). A page walk with a change between
//! pages never repeats a session, never skips one that was there unchanged
//! throughout, and returns only sessions visible before or after the
//! change.
//!
//! After a tamper step: every operation answers or reports corruption
//! (never panics, never runs out of attempts); in the reference layout the
//! audit reports a problem exactly when the records or the two reference
//! indexes are damaged, and repairing as an operator would (its repair
//! plan, deleting the records it leaves for a human, its repair plan again)
//! leaves an audit with no problem (a value of the wrong type at a record
//! or index key is outside what that audit handles, so it is skipped
//! there); then every other index is rebuilt from the records and the
//! state must be consistent again. At the end of the input, the reference
//! layout's state is audited, and every user is listed, walked and counted
//! and every id read.
//!
//! # Layout
//!
//! One job per file: `input` (the format above), `model` (the reference
//! model and its predictions), `execute` (an action as the core's operation,
//! run with its `between` hook), `walk` (page walks), `state` (the stored
//! state read back and checked against its keys and indexes; audit and
//! repair), `world` (one input's run, step by step), `assertions` (checks
//! the steps share), `concurrent` (concurrent pairs) and `tamper` (damage
//! and what must hold after it).

mod assertions;
mod concurrent;
mod execute;
mod input;
mod model;
mod state;
mod tamper;
mod walk;
mod world;

use arbitrary::{Arbitrary, Unstructured};
use input::MAX_STEPS;
use world::World;

// What the hand-made seeds (`seeds.rs`) are written in.
pub(crate) use input::{Action, Op, Setup, Step, Tamper, Walk};

/// The decoded input, for triage: the setup and every step, as the target
/// reads them.
pub fn describe_transitions(data: &[u8]) -> String {
    let mut u = Unstructured::new(data);
    let Ok(setup) = Setup::arbitrary(&mut u) else {
        return "(no setup)".to_owned();
    };
    let mut out = format!("{setup:?}\n");
    if let Ok(steps) = u.arbitrary_iter::<Step>() {
        for (n, step) in steps.take(MAX_STEPS).enumerate() {
            let Ok(step) = step else { break };
            out.push_str(&format!("{n}: {step:?}\n"));
        }
    }
    out
}

/// The entry point: see the module documentation.
pub fn check_transitions(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(setup) = Setup::arbitrary(&mut u) else {
        return;
    };
    let mut world = World::new(setup);
    let Ok(steps) = u.arbitrary_iter::<Step>() else {
        return;
    };
    for step in steps.take(MAX_STEPS) {
        let Ok(step) = step else { break };
        world.advance(step.advance);
        world.step(&step.op);
        world.assert_consistent();
    }
    world.finish();
}
