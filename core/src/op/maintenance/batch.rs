//! Index walks in batches: which indexes one read covers, how much of
//! each it takes, and what the batch's windows handed out. `check`'s
//! index pass and `sweep` walk their indexes through this one queue.
//!
//! Most users have few sessions, so a batch is either several fresh walks
//! with small windows (one round trip covers many users) or one continuing
//! walk alone with a full window (a big index, window after window). A
//! batch is also what is read again when one of its plans met a store
//! that changed ([`super::settle`]): its walks move on only once it
//! settled.

use std::collections::VecDeque;

use crate::ids::UserId;
use crate::keys::{Index, KeySpace};
use crate::op::maintenance::walk::{IndexWalk, Window};
use crate::op::{out_of_sequence, TransitionError};
use crate::plan::{Member, Read, Reply};

/// One index being walked: whose it is, and which of the user's indexes.
#[derive(Debug, Clone)]
pub(crate) struct Walker {
    pub(crate) walk: IndexWalk,
    pub(crate) user: UserId,
    pub(crate) kind: Index,
}

/// A walk moved past its window, and whether it reached the index's end.
pub(crate) type Advanced = (Walker, bool);

/// The indexes waiting for their next window, continuing walks first.
#[derive(Debug)]
pub(crate) struct Walkers {
    queue: VecDeque<Walker>,
    batch: usize,
}

impl Walkers {
    /// An empty queue for batches of `batch` members.
    pub(crate) fn new(batch: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            batch: batch.max(1),
        }
    }

    /// Starts a walk for each index key of `pending` (indexes of `kind`)
    /// until a batch's worth wait; a key naming no user goes to
    /// `unparsable`. Returns how many walks started.
    pub(crate) fn start(
        &mut self,
        pending: &mut VecDeque<String>,
        keys: &KeySpace,
        kind: Index,
        mut unparsable: impl FnMut(String),
    ) -> u64 {
        let mut started = 0;
        while self.queue.len() < self.batch {
            let Some(key) = pending.pop_front() else {
                break;
            };
            match keys.parse_index_key(kind, &key) {
                Some(user) => {
                    started += 1;
                    self.queue.push_back(Walker {
                        walk: IndexWalk::new(key),
                        user,
                        kind,
                    });
                }
                None => unparsable(key),
            }
        }
        started
    }

    /// The next batch: the first continuing walk alone with a full
    /// window, or several fresh ones with small windows; `None` when no
    /// walk waits.
    pub(crate) fn next_batch(&mut self) -> Option<IndexBatch> {
        let first = self.queue.pop_front()?;
        if !first.walk.is_fresh() {
            return Some(IndexBatch {
                walkers: vec![first],
                limits: vec![self.batch],
            });
        }
        let group = (self.batch / 4).max(1);
        let window = (self.batch / group).max(1);
        let mut walkers = vec![first];
        while walkers.len() < group && self.queue.front().is_some_and(|w| w.walk.is_fresh()) {
            if let Some(w) = self.queue.pop_front() {
                walkers.push(w);
            }
        }
        let limits = vec![window; walkers.len()];
        Some(IndexBatch { walkers, limits })
    }

    /// Takes back the walks of a settled batch that have more to hand
    /// out, first and in their order, each moved down by the members the
    /// batch's plans removed from its index (`removed`, by position).
    pub(crate) fn resume(&mut self, advanced: Vec<Advanced>, removed: &[u64]) {
        for (i, (mut walker, last)) in advanced.into_iter().enumerate().rev() {
            if !last {
                walker.walk.removed(removed.get(i).copied().unwrap_or(0));
                self.queue.push_front(walker);
            }
        }
    }
}

/// One read's worth of index windows: the walks and each one's window.
#[derive(Debug, Clone)]
pub(crate) struct IndexBatch {
    walkers: Vec<Walker>,
    limits: Vec<usize>,
}

/// A batch that was read: the batch as it was (to read it again), which
/// read that was, and its walks advanced past their windows (they move on
/// only once the batch settled).
#[derive(Debug)]
pub(crate) struct Round {
    pub(crate) batch: IndexBatch,
    pub(crate) reads: u32,
    pub(crate) advanced: Vec<Advanced>,
}

impl IndexBatch {
    /// The walks, in batch order.
    pub(crate) fn walkers(&self) -> &[Walker] {
        &self.walkers
    }

    /// The reads of the batch's windows, one per walk.
    pub(crate) fn reads(&self) -> Vec<Read> {
        self.walkers
            .iter()
            .zip(&self.limits)
            .map(|(w, limit)| w.walk.read(*limit))
            .collect()
    }

    /// Takes the replies to [`IndexBatch::reads`] (the batch's `reads`th
    /// read): the round, and the members each walk handed out, in batch
    /// order. A key no longer holding a sorted set ends its walk
    /// (`check`'s type pass reports it).
    pub(crate) fn advance(
        self,
        reads: u32,
        replies: Vec<Reply>,
        op: &'static str,
    ) -> Result<(Round, Vec<Vec<Member>>), TransitionError> {
        let mut replies = replies.into_iter();
        let mut advanced = Vec::with_capacity(self.walkers.len());
        let mut members = Vec::with_capacity(self.walkers.len());
        for (walker, limit) in self.walkers.iter().zip(&self.limits) {
            let mut next = walker.clone();
            let (window, last) = match replies.next() {
                Some(Reply::Members(window)) => match next.walk.advance(window, *limit) {
                    Window::Members { members, last } => (members, last),
                    Window::Again => (Vec::new(), false),
                },
                Some(Reply::WrongType) => (Vec::new(), true),
                _ => return out_of_sequence(op),
            };
            members.push(window.into_iter().map(|(member, _)| member).collect());
            advanced.push((next, last));
        }
        let round = Round {
            batch: self,
            reads,
            advanced,
        };
        Ok((round, members))
    }
}
