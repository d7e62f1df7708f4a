//! Settling a batch: its writes applied as guarded plans, one by one, and
//! what happens when one meets a store that changed since the batch was
//! read. `check --repair` settles its repairs through it, `sweep` its
//! removals.
//!
//! A batch's writes are grouped — per user in the tagged layout (a user's
//! keys share a cluster slot), one group per batch in the reference
//! layout — and each group is applied as plans for at most
//! [`MAX_PLAN_SESSIONS`] sessions, each guarded by exactly the stored
//! state its writes were derived from. A violated guard means the batch
//! changed while it was examined: once every plan was tried, the batch is
//! read again and judged afresh (at most [`MAX_BATCH_READS`] reads in
//! all); what still fails is the caller's to count or report. So a batch
//! may miss a concurrent change, but never writes on the strength of a
//! stale read. Its walks move on only once it settled, down by the
//! members its applied plans removed from their indexes.

use std::collections::{BTreeMap, VecDeque};

use crate::ids::UserId;
use crate::keys::{KeySpace, Layout};
use crate::op::maintenance::batch::{Advanced, Walkers};
use crate::op::{out_of_sequence, TransitionError};
use crate::plan::{Applied, Plan};

/// How many times one batch is read before what it could not write is
/// given up (contention).
pub(crate) const MAX_BATCH_READS: u32 = 4;

/// At most this many sessions' writes per plan: a plan's script runs a
/// few commands per session (the guard's compare, the writes), so a batch
/// with more to write is applied as several plans, each guarded by its
/// own sessions' state, to keep every script short.
pub(crate) const MAX_PLAN_SESSIONS: usize = 128;

/// `items` in pieces of at most `n`.
pub(crate) fn chunked<T>(items: Vec<T>, n: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        out.push(items.by_ref().take(n.max(1)).collect());
    }
    out
}

/// The plan group of a write about `user`'s keys: the user in the tagged
/// layout (one slot), the whole batch in the reference layout.
pub(crate) fn user_group(keys: &KeySpace, user: &UserId) -> String {
    match keys.layout() {
        Layout::Tagged => format!("u:{}", user.as_str()),
        _ => String::new(),
    }
}

/// One thing a batch writes for (a repair, an expired session's removal),
/// applied in a guarded plan with the others of its group.
pub(crate) trait PlanItem: Sized {
    /// The guarded plan writing `group` (one piece of one group).
    fn plan(group: &[Self], keys: &KeySpace) -> Plan;

    /// The walk (its place in the batch) whose index loses a member when
    /// the plan applies.
    fn removes_from(&self) -> Option<usize>;
}

/// A batch whose plans are being applied. `B` is what the operation needs
/// to read the batch again and to account for it once settled.
#[derive(Debug)]
pub(crate) struct Settle<T, B> {
    batch: B,
    reads: u32,
    advanced: Vec<Advanced>,
    /// Members removed per walk by applied plans.
    removed: Vec<u64>,
    groups: VecDeque<Vec<T>>,
    current: Option<Vec<T>>,
    failed: Vec<Vec<T>>,
}

/// What a settling batch needs next.
#[derive(Debug)]
pub(crate) enum Next<T, B> {
    /// Apply the plan, then give its outcome to [`Settle::applied`].
    Apply(Plan, Settle<T, B>),
    /// A guard was violated: read the batch again (this is its `reads`th
    /// read) and settle what it finds then.
    Reread { batch: B, reads: u32 },
    /// Settled, its walks moved on; `failed`: the groups whose guards
    /// still did not hold after `reads` reads.
    Settled {
        batch: B,
        reads: u32,
        failed: Vec<Vec<T>>,
    },
}

/// What became of the plan just applied (a violated guard is the
/// settle's own business).
#[derive(Debug)]
pub(crate) enum Outcome<T> {
    /// Written: the group's items are done.
    Done(Vec<T>),
    /// `key` holds another type than the plan expected; nothing written.
    WrongType { group: Vec<T>, key: String },
    /// A guard did not hold: kept for the batch's next read.
    Violated,
}

impl<T: PlanItem, B> Settle<T, B> {
    /// Settles `items` (each with its group) of `batch`, read `reads`
    /// times so far, whose walks `advanced`.
    pub(crate) fn new(
        batch: B,
        reads: u32,
        advanced: Vec<Advanced>,
        items: impl IntoIterator<Item = (String, T)>,
    ) -> Self {
        let mut groups: BTreeMap<String, Vec<T>> = BTreeMap::new();
        for (group, item) in items {
            groups.entry(group).or_default().push(item);
        }
        Self {
            batch,
            reads,
            removed: vec![0; advanced.len()],
            advanced,
            groups: groups
                .into_values()
                .flat_map(|group| chunked(group, MAX_PLAN_SESSIONS))
                .collect(),
            current: None,
            failed: Vec::new(),
        }
    }

    /// The next plan to apply, or the batch read again (a guard failed,
    /// reads left), or the batch settled: its walks back in `walkers`.
    pub(crate) fn next(mut self, keys: &KeySpace, walkers: &mut Walkers) -> Next<T, B> {
        if let Some(group) = self.groups.pop_front() {
            let plan = T::plan(&group, keys);
            self.current = Some(group);
            return Next::Apply(plan, self);
        }
        if !self.failed.is_empty() && self.reads < MAX_BATCH_READS {
            // The batch changed: judge it afresh (what applied stays
            // done; everything else is read again).
            return Next::Reread {
                batch: self.batch,
                reads: self.reads.saturating_add(1),
            };
        }
        walkers.resume(self.advanced, &self.removed);
        Next::Settled {
            batch: self.batch,
            reads: self.reads,
            failed: self.failed,
        }
    }

    /// Takes the outcome of the plan [`Settle::next`] gave; then call
    /// [`Settle::next`] again.
    pub(crate) fn applied(
        &mut self,
        outcome: Applied,
        op: &'static str,
    ) -> Result<Outcome<T>, TransitionError> {
        let Some(group) = self.current.take() else {
            return out_of_sequence(op);
        };
        Ok(match outcome {
            Applied::Done => {
                for walker in group.iter().filter_map(PlanItem::removes_from) {
                    if let Some(slot) = self.removed.get_mut(walker) {
                        *slot += 1;
                    }
                }
                Outcome::Done(group)
            }
            Applied::Violated { .. } => {
                self.failed.push(group);
                Outcome::Violated
            }
            Applied::WrongType { key } => Outcome::WrongType { group, key },
        })
    }

    /// Applies `group` next (what of a plan stays writable after a key
    /// of the wrong type blocked the rest).
    pub(crate) fn apply_first(&mut self, group: Vec<T>) {
        self.groups.push_front(group);
    }
}
