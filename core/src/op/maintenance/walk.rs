//! Bounded walks for the maintenance operations: the keys under a prefix,
//! page by page ([`KeyScan`]), and one sorted set, window by window,
//! resuming after the last member seen ([`IndexWalk`]).

use std::cmp::Ordering;

use crate::op::{out_of_sequence, TransitionError};
use crate::plan::{KeyType, Member, Read, Reply, ScanCursor};

/// The keys under `prefix` holding one type, a page per read.
#[derive(Debug, Clone)]
pub(crate) struct KeyScan {
    prefix: String,
    key_type: KeyType,
    cursor: ScanCursor,
    done: bool,
}

impl KeyScan {
    pub(crate) fn new(prefix: &str, key_type: KeyType) -> Self {
        Self {
            prefix: prefix.to_owned(),
            key_type,
            cursor: ScanCursor::start(),
            done: false,
        }
    }

    /// Whether every page was read.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// The read of the next page (about `count` keys).
    pub(crate) fn read(&self, count: usize) -> Read {
        Read::Scan {
            cursor: self.cursor.clone(),
            prefix: self.prefix.clone(),
            key_type: self.key_type,
            count: count.max(1),
        }
    }

    /// The keys of the page `reply` answers.
    pub(crate) fn advance(
        &mut self,
        reply: Option<Reply>,
        op: &'static str,
    ) -> Result<Vec<String>, TransitionError> {
        match reply {
            Some(Reply::Keys(keys, next)) => {
                match next {
                    Some(next) => self.cursor = next,
                    None => self.done = true,
                }
                Ok(keys)
            }
            _ => out_of_sequence(op),
        }
    }
}

/// Redis order of sorted-set entries: score, then member bytes.
pub(crate) fn entry_order(a: (f64, &[u8]), b: (f64, &[u8])) -> Ordering {
    let by_score = if a.0 < b.0 {
        Ordering::Less
    } else if a.0 > b.0 {
        Ordering::Greater
    } else {
        Ordering::Equal
    };
    by_score.then_with(|| a.1.cmp(b.1))
}

/// What one window of an [`IndexWalk`] gave.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Window {
    /// The next members in Redis order, all after the last one handed out
    /// before; `last`: the window reached the end of the set.
    Members {
        /// The members with their scores.
        members: Vec<(Member, f64)>,
        /// No member follows (at the time of the read).
        last: bool,
    },
    /// The window held no new member yet (the walk is finding its place
    /// again after a concurrent change): read again.
    Again,
}

/// A walk over one sorted set in Redis order, a bounded window of ranks
/// per read, that resumes *after the last member handed out* (by score and
/// member, not by rank), so concurrent changes never make it hand out a
/// member twice or skip one that stayed in the set throughout.
///
/// Ranks shift when members before the walk's position come or go. Each
/// read therefore starts one rank early, at where the last member handed
/// out should be: if the window's first member is at or before it, the
/// window overlaps what was seen and everything after that point in the
/// window is exactly what follows it (a window is one consistent read).
/// If the first member is already past it, members before it were removed
/// and something may lie in the gap: the walk steps back (doubling) and
/// reads again; if the window is all old members, it moves forward. Rank 0
/// always anchors, so the walk finds its place after at most a logarithmic
/// number of extra reads.
#[derive(Debug, Clone)]
pub(crate) struct IndexWalk {
    key: String,
    /// The last member handed out, with its score.
    after: Option<(f64, Member)>,
    /// How many members at or before `after` the set is believed to hold.
    at_or_before: u64,
    /// How far back the next unanchored read steps.
    step_back: u64,
}

impl IndexWalk {
    pub(crate) fn new(key: String) -> Self {
        Self {
            key,
            after: None,
            at_or_before: 0,
            step_back: 0,
        }
    }

    /// The sorted set walked.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Whether no member was handed out yet.
    pub(crate) fn is_fresh(&self) -> bool {
        self.after.is_none()
    }

    fn start_rank(&self) -> u64 {
        self.at_or_before.saturating_sub(1)
    }

    /// The read of the next window of at most `limit` new members (one
    /// more member is read to anchor the window once the walk started).
    pub(crate) fn read(&self, limit: usize) -> Read {
        let limit = limit.max(1);
        Read::IndexRanks {
            key: self.key.clone(),
            start: self.start_rank(),
            limit: if self.after.is_some() {
                limit.saturating_add(1)
            } else {
                limit
            },
        }
    }

    /// Takes the reply to [`IndexWalk::read`] with the same `limit`.
    pub(crate) fn advance(&mut self, window: Vec<(Member, f64)>, limit: usize) -> Window {
        let limit = limit.max(1);
        let start = self.start_rank();
        let Some((after_score, after_member)) = &self.after else {
            return self.hand_out(window, 0, limit, limit);
        };
        let is_after =
            |(m, s): &(Member, f64)| entry_order((*s, m), (*after_score, after_member)).is_gt();
        let requested = limit.saturating_add(1);
        let anchored = start == 0 || window.first().is_some_and(|e| !is_after(e));
        if !anchored {
            // Members before the last one handed out were removed since:
            // it sits at a lower rank now. Steps double while they miss
            // (a large removal costs a logarithmic number of reads, plus
            // the walk forward over what the last step overshot).
            let step = self.step_back.max(len_u64(limit));
            self.at_or_before = self.at_or_before.saturating_sub(step);
            self.step_back = step.saturating_mul(2);
            return Window::Again;
        }
        self.step_back = 0;
        match window.iter().position(is_after) {
            Some(first_new) => self.hand_out(window, first_new, limit, requested),
            None if window.len() >= requested => {
                // All old members (some were added before the last one
                // handed out): move on, keeping one for the overlap.
                self.at_or_before = start.saturating_add(len_u64(window.len()));
                Window::Again
            }
            None => Window::Members {
                members: Vec::new(),
                last: true,
            },
        }
    }

    fn hand_out(
        &mut self,
        window: Vec<(Member, f64)>,
        first_new: usize,
        limit: usize,
        requested: usize,
    ) -> Window {
        let start = if self.after.is_some() {
            self.start_rank()
        } else {
            0
        };
        let last = window.len() < requested;
        let members: Vec<(Member, f64)> = window.into_iter().skip(first_new).take(limit).collect();
        self.at_or_before = start
            .saturating_add(len_u64(first_new))
            .saturating_add(len_u64(members.len()));
        if let Some((member, score)) = members.last() {
            self.after = Some((*score, member.clone()));
        }
        self.step_back = 0;
        Window::Members { members, last }
    }

    /// `n` of the members handed out were removed from the set (by the
    /// walk's own repair or sweep): the walk's place moves down with them.
    pub(crate) fn removed(&mut self, n: u64) {
        self.at_or_before = self.at_or_before.saturating_sub(n);
    }
}

fn len_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MemoryKv;
    use proptest::prelude::Rng as _;
    use proptest::test_runner::{RngAlgorithm, TestRng};

    fn read(kv: &MemoryKv, walk: &IndexWalk, limit: usize) -> Vec<(Member, f64)> {
        match kv.read(&walk.read(limit)) {
            Reply::Members(m) => m,
            other => panic!("{other:?}"),
        }
    }

    /// Walks `key` to its end, calling `between` after every read (a
    /// concurrent writer); returns the members handed out and the number
    /// of reads.
    fn walk_all(
        kv: &mut MemoryKv,
        key: &str,
        limit: usize,
        mut between: impl FnMut(&mut MemoryKv, usize),
    ) -> (Vec<Member>, usize) {
        let mut walk = IndexWalk::new(key.to_owned());
        let mut seen = Vec::new();
        let mut reads = 0;
        loop {
            let window = read(kv, &walk, limit);
            reads += 1;
            assert!(reads < 10_000, "the walk does not terminate");
            between(kv, reads);
            match walk.advance(window, limit) {
                Window::Members { members, last } => {
                    assert!(members.len() <= limit);
                    seen.extend(members.into_iter().map(|(m, _)| m));
                    if last {
                        return (seen, reads);
                    }
                }
                Window::Again => {}
            }
        }
    }

    fn member(i: usize) -> Member {
        format!("m{i:05}").into_bytes()
    }

    #[test]
    fn walks_every_member_once_in_order_even_in_one_score_group() {
        for (n, score_of) in [
            (0, (|_| 1.0) as fn(usize) -> f64),
            (1, |_| 1.0),
            (10, |_| 7.0),
            (10, |i| (i % 3) as f64),
            (37, |i| -(i as f64)),
        ] {
            for limit in [1, 2, 3, 10, 50] {
                let mut kv = MemoryKv::new();
                for i in 0..n {
                    kv.index_add_raw("z", member(i), score_of(i));
                }
                let expected: Vec<Member> = kv
                    .index_range("z", None)
                    .into_iter()
                    .map(|(m, _)| m)
                    .collect();
                let (seen, reads) = walk_all(&mut kv, "z", limit, |_, _| {});
                assert_eq!(seen, expected, "n={n} limit={limit}");
                assert!(reads <= n / limit + 2, "n={n} limit={limit}: {reads} reads");
            }
        }
    }

    #[test]
    fn concurrent_changes_never_repeat_or_skip_a_member_that_stayed() {
        // Deterministic pseudo-random churn: between reads, remove and add
        // members before and after the walk's position.
        for seed in 0..200u64 {
            let mut seed_bytes = [0u8; 32];
            seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
            let mut rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
            let mut next = move || rng.next_u64();
            let n = 30 + (next() % 40) as usize;
            let limit = 1 + (next() % 6) as usize;
            let mut kv = MemoryKv::new();
            let mut scores = std::collections::HashMap::new();
            for i in 0..n {
                let score = (next() % 4) as f64;
                scores.insert(member(i), score);
                kv.index_add_raw("z", member(i), score);
            }
            // Members never touched by the churn (ids ending in 0 or 5)
            // stay throughout.
            let keeps = |m: &Member| m.ends_with(b"0") || m.ends_with(b"5");
            let stable: Vec<Member> = kv
                .index_range("z", None)
                .into_iter()
                .map(|(m, _)| m)
                .filter(keeps)
                .collect();
            let mut added = n;
            let mut new_scores = Vec::new();
            let (seen, _) = walk_all(&mut kv, "z", limit, |kv, _| {
                for _ in 0..(next() % 4) {
                    let victim = member((next() % n as u64) as usize);
                    if !keeps(&victim) {
                        let plan = crate::plan::Plan::empty().with_writes([
                            crate::plan::Write::IndexRemove {
                                key: "z".into(),
                                member: victim,
                            },
                        ]);
                        assert_eq!(kv.apply(&plan), crate::plan::Applied::Done);
                    }
                }
                for _ in 0..(next() % 4 / 3) {
                    added += 1;
                    // New ids end in 1: never in the stable set.
                    let m = member(added * 10 + 1);
                    let score = (next() % 4) as f64;
                    new_scores.push((m.clone(), score));
                    kv.index_add_raw("z", m, score);
                }
            });
            scores.extend(new_scores);
            for m in &stable {
                assert!(seen.contains(m), "seed {seed}: skipped {m:?}");
            }
            // Strictly ascending: never a member twice, never backwards.
            for pair in seen.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                assert!(
                    entry_order((scores[a], a), (scores[b], b)).is_lt(),
                    "seed {seed}: {a:?} then {b:?}"
                );
            }
        }
    }

    #[test]
    fn removing_what_was_handed_out_keeps_the_place() {
        let mut kv = MemoryKv::new();
        for i in 0..20 {
            kv.index_add_raw("z", member(i), 1.0);
        }
        let mut walk = IndexWalk::new("z".into());
        let mut seen = Vec::new();
        let mut reads = 0;
        loop {
            let window = read(&kv, &walk, 3);
            reads += 1;
            match walk.advance(window, 3) {
                Window::Members { members, last } => {
                    // Remove every other member handed out, as a repair
                    // would, and tell the walk.
                    let mut removed = 0;
                    for (m, _) in &members {
                        if m.last().is_some_and(|b| b % 2 == 0) {
                            kv.apply(&crate::plan::Plan::empty().with_writes([
                                crate::plan::Write::IndexRemove {
                                    key: "z".into(),
                                    member: m.clone(),
                                },
                            ]));
                            removed += 1;
                        }
                    }
                    walk.removed(removed);
                    seen.extend(members.into_iter().map(|(m, _)| m));
                    if last {
                        break;
                    }
                }
                Window::Again => panic!("the place was kept: no extra read"),
            }
        }
        assert_eq!(seen, (0..20).map(member).collect::<Vec<_>>());
        assert_eq!(reads, 7);
    }

    #[test]
    fn scans_every_page() {
        let mut kv = MemoryKv::new();
        for i in 0..7 {
            kv.set_raw(format!("p:{i}"), "x");
        }
        kv.index_add_raw("p:z", b"m".to_vec(), 1.0);
        kv.set_raw("q:0", "x");
        let mut scan = KeyScan::new("p:", KeyType::String);
        let mut keys = Vec::new();
        while !scan.is_done() {
            let reply = kv.read(&scan.read(3));
            keys.extend(scan.advance(Some(reply), "test").unwrap());
        }
        assert_eq!(keys.len(), 7);
        assert!(keys.iter().all(|k| k.starts_with("p:") && k != "p:z"));
    }
}
