//! `sweep`: removes every revoked session past its retention, for every
//! user, in bounded batches.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::codec;
use crate::ids::{DeviceSessionId, UserId};
use crate::keys::{Index, KeyKind, KeySpace};
use crate::op::decode::session_id;
use crate::op::expiry::{expire_plan, OwnerRemovals};
use crate::op::maintenance::check::{chunked, user_group, MAX_BATCH_READS, MAX_PLAN_SESSIONS};
use crate::op::maintenance::owners::{OwnerFinding, OwnerPass};
use crate::op::maintenance::walk::{IndexWalk, KeyScan, Window};
use crate::op::{
    applied, out_of_sequence, replies, Input, Operation, Policy, Step, TransitionError,
};
use crate::plan::{Applied, KeyType, Read, Reply};
use crate::session::Session;
use crate::timestamp::Timestamp;

const OP: &str = "sweep";

/// What a sweep did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SweepReport {
    /// Users whose sessions were examined (all-sessions indexes walked).
    pub users: u64,
    /// Sessions removed: record, all-sessions entry and revoked-index
    /// entry together.
    pub sessions_removed: u64,
    /// Removal plans applied (each one atomic).
    pub batches: u64,
    /// Owner keys removed (tagged layout): those of the sessions removed,
    /// and those found without their record past the grace.
    pub owner_keys_removed: u64,
    /// Index members the sweep could not judge and left alone: not a valid
    /// id, no record, a record that does not decode or is another user's,
    /// a key of the wrong type, or a batch that kept changing (`check`
    /// reports and repairs what is corrupt; sweeping again retries the
    /// rest).
    pub skipped: u64,
    /// The retention swept with; `None`: no retention is configured, so
    /// nothing expires and nothing was examined.
    pub retention: Option<Duration>,
    /// Owner keys seen without their record, to remove at a second look
    /// after the grace ([`SweepReport::owner_recheck`]).
    pub(crate) owner_sightings: Vec<crate::op::OwnerSighting>,
}

#[derive(Debug, Clone)]
struct Walker {
    walk: IndexWalk,
    user: UserId,
}

/// A non-active member whose record is read.
#[derive(Debug)]
struct Candidate {
    walker: usize,
    id: DeviceSessionId,
    record_key: String,
}

#[derive(Debug)]
struct Settle {
    walkers: Vec<Walker>,
    limits: Vec<usize>,
    reads: u32,
    advanced: Vec<(Walker, bool)>,
    groups: VecDeque<Vec<(usize, Session, Vec<u8>)>>,
    current: Option<Vec<(usize, Session, Vec<u8>)>>,
    /// The owner keys of the group just removed (tagged layout), removed
    /// before the next group.
    owners: OwnerRemovals,
    failed: u64,
    removed: Vec<u64>,
}

#[derive(Debug)]
enum State {
    Start,
    Scan,
    Windows {
        walkers: Vec<Walker>,
        limits: Vec<usize>,
        reads: u32,
    },
    Active {
        walkers: Vec<Walker>,
        limits: Vec<usize>,
        reads: u32,
        advanced: Vec<(Walker, bool)>,
        /// Per walker: its members with valid ids.
        members: Vec<Vec<DeviceSessionId>>,
    },
    Records {
        walkers: Vec<Walker>,
        limits: Vec<usize>,
        reads: u32,
        advanced: Vec<(Walker, bool)>,
        candidates: Vec<Candidate>,
    },
    Applying(Settle),
    /// The removed sessions' owner keys (tagged layout).
    RemovingOwners(Settle),
    Owners,
    Finished,
}

/// Removes, batch by batch, every revoked session whose retention has
/// passed at `now`, for every user — also users nobody touches any more,
/// and sessions revoked by the Go adapter (which never appear in the
/// revoked index): it walks every all-sessions index (in windows of ranks
/// windows, small indexes several to a batch), skips the members in the
/// active index, reads the others' records and removes the expired ones,
/// each with its all-sessions and revoked-index entries, in one plan per
/// batch (per user in the tagged layout) guarded by the record bytes read.
///
/// Interrupted, every removal is whole; running it again finishes the
/// rest. Without a retention it examines no session.
///
/// In the tagged layout each removed session's owner key goes next, in a
/// plan of its own (its own slot); and every owner key is read with its
/// record, those without one kept in the report for the second look
/// after the grace ([`SweepReport::owner_recheck`]), which removes the
/// ones still dangling.
#[derive(Debug)]
pub struct Sweep {
    keys: KeySpace,
    policy: Policy,
    now: Timestamp,
    batch: usize,
    scan: KeyScan,
    pending: VecDeque<String>,
    walkers: VecDeque<Walker>,
    report: SweepReport,
    /// Members of the current batch left alone, on its last read.
    round_skipped: u64,
    /// The first look at owner keys, once every index is walked.
    owners: OwnerPass,
    state: State,
}

impl Sweep {
    /// Sweeps `keys`' key space at `now` with `policy`'s retention and
    /// batch size.
    pub fn new(keys: &KeySpace, policy: Policy, now: Timestamp) -> Self {
        let all = keys.prefix(KeyKind::Index(Index::All));
        Self {
            keys: keys.clone(),
            policy,
            now,
            batch: policy.batch_size.get(),
            scan: KeyScan::new(all, KeyType::SortedSet),
            pending: VecDeque::new(),
            walkers: VecDeque::new(),
            report: SweepReport {
                retention: policy.revoked_retention,
                ..SweepReport::default()
            },
            round_skipped: 0,
            owners: OwnerPass::new(keys, policy.batch_size.get()),
            state: State::Start,
        }
    }

    /// Owner keys without their record are kept for the second look
    /// (anything else odd there is `check`'s to report).
    fn owner_step(
        &mut self,
        found: Vec<OwnerFinding>,
        reads: Option<Vec<Read>>,
    ) -> Step<SweepReport> {
        for finding in found {
            if let OwnerFinding::Dangling(sighting) = finding {
                self.report.owner_sightings.push(sighting);
            }
        }
        match reads {
            Some(reads) => {
                self.state = State::Owners;
                Step::Read(reads)
            }
            None => self.finish(),
        }
    }

    fn finish(&mut self) -> Step<SweepReport> {
        self.state = State::Finished;
        Step::Done(std::mem::take(&mut self.report))
    }

    fn next(&mut self) -> Result<Step<SweepReport>, TransitionError> {
        while self.walkers.len() < self.batch {
            let Some(key) = self.pending.pop_front() else {
                break;
            };
            // A key naming no user is for `check` to report.
            if let Some(user) = self.keys.parse_index_key(Index::All, &key) {
                self.report.users += 1;
                self.walkers.push_back(Walker {
                    walk: IndexWalk::new(key),
                    user,
                });
            }
        }
        let Some(first) = self.walkers.pop_front() else {
            if self.scan.is_done() {
                let mut found = Vec::new();
                let reads = self.owners.next(&mut found);
                return Ok(self.owner_step(found, reads));
            }
            self.state = State::Scan;
            return Ok(Step::Read(vec![self.scan.read(self.batch)]));
        };
        // A continuing walk alone with a full window, or several fresh
        // ones with small windows (most users have few sessions).
        let (walkers, limits) = if first.walk.is_fresh() {
            let group = (self.batch / 4).max(1);
            let window = (self.batch / group).max(1);
            let mut walkers = vec![first];
            while walkers.len() < group && self.walkers.front().is_some_and(|w| w.walk.is_fresh()) {
                if let Some(w) = self.walkers.pop_front() {
                    walkers.push(w);
                }
            }
            let limits = vec![window; walkers.len()];
            (walkers, limits)
        } else {
            (vec![first], vec![self.batch])
        };
        Ok(self.read_windows(walkers, limits, 1))
    }

    fn read_windows(
        &mut self,
        walkers: Vec<Walker>,
        limits: Vec<usize>,
        reads: u32,
    ) -> Step<SweepReport> {
        self.round_skipped = 0;
        let plan_reads = walkers
            .iter()
            .zip(&limits)
            .map(|(w, limit)| w.walk.read(*limit))
            .collect();
        self.state = State::Windows {
            walkers,
            limits,
            reads,
        };
        Step::Read(plan_reads)
    }

    fn on_windows(
        &mut self,
        walkers: Vec<Walker>,
        limits: Vec<usize>,
        reads: u32,
        replies: Vec<Reply>,
    ) -> Result<Step<SweepReport>, TransitionError> {
        let mut replies = replies.into_iter();
        let mut advanced = Vec::with_capacity(walkers.len());
        let mut members = Vec::with_capacity(walkers.len());
        for (walker, limit) in walkers.iter().zip(&limits) {
            let mut next = walker.clone();
            let window = match replies.next() {
                Some(Reply::Members(window)) => window,
                Some(Reply::WrongType) => {
                    advanced.push((next, true));
                    members.push(Vec::new());
                    continue;
                }
                _ => return out_of_sequence(OP),
            };
            let (window, last) = match next.walk.advance(window, *limit) {
                Window::Members { members, last } => (members, last),
                Window::Again => (Vec::new(), false),
            };
            let mut ids = Vec::with_capacity(window.len());
            for (member, _) in window {
                match session_id(&member) {
                    Some(id) => ids.push(id),
                    None => self.round_skipped += 1,
                }
            }
            members.push(ids);
            advanced.push((next, last));
        }
        // Active sessions never expire: only the others' records are read.
        let plan_reads: Vec<Read> = walkers
            .iter()
            .zip(&members)
            .filter(|(_, ids)| !ids.is_empty())
            .map(|(w, ids)| Read::IndexScores {
                key: self.keys.user_active_sessions_key(&w.user),
                members: ids
                    .iter()
                    .map(|id| id.as_str().as_bytes().to_vec())
                    .collect(),
            })
            .collect();
        if plan_reads.is_empty() {
            return self.settle(walkers, limits, reads, advanced, Vec::new());
        }
        self.state = State::Active {
            walkers,
            limits,
            reads,
            advanced,
            members,
        };
        Ok(Step::Read(plan_reads))
    }

    fn on_active(
        &mut self,
        walkers: Vec<Walker>,
        limits: Vec<usize>,
        reads: u32,
        advanced: Vec<(Walker, bool)>,
        members: Vec<Vec<DeviceSessionId>>,
        replies: Vec<Reply>,
    ) -> Result<Step<SweepReport>, TransitionError> {
        let mut replies = replies.into_iter();
        let mut candidates = Vec::new();
        for (i, ids) in members.into_iter().enumerate() {
            if ids.is_empty() {
                continue;
            }
            let Some(walker) = walkers.get(i) else {
                continue;
            };
            let scores = match replies.next() {
                Some(Reply::Scores(scores)) => scores,
                // The active index is not a sorted set: nothing of this
                // user can be judged.
                Some(Reply::WrongType) => {
                    self.round_skipped += u64::try_from(ids.len()).unwrap_or(u64::MAX);
                    continue;
                }
                _ => return out_of_sequence(OP),
            };
            for (id, score) in ids.into_iter().zip(scores) {
                if score.is_none() {
                    let record_key = self.keys.record_key(&walker.user, &id);
                    candidates.push(Candidate {
                        walker: i,
                        id,
                        record_key,
                    });
                }
            }
        }
        if candidates.is_empty() {
            return self.settle(walkers, limits, reads, advanced, Vec::new());
        }
        let read = Read::Values {
            keys: candidates.iter().map(|c| c.record_key.clone()).collect(),
        };
        self.state = State::Records {
            walkers,
            limits,
            reads,
            advanced,
            candidates,
        };
        Ok(Step::Read(vec![read]))
    }

    fn on_records(
        &mut self,
        walkers: Vec<Walker>,
        limits: Vec<usize>,
        reads: u32,
        advanced: Vec<(Walker, bool)>,
        candidates: Vec<Candidate>,
        records: Vec<Option<Vec<u8>>>,
    ) -> Result<Step<SweepReport>, TransitionError> {
        let mut expired = Vec::new();
        for (candidate, record) in candidates.into_iter().zip(records) {
            let Some(walker) = walkers.get(candidate.walker) else {
                continue;
            };
            let session = record.and_then(|bytes| {
                let session = codec::decode(&candidate.id, &bytes).ok()?;
                (session.user_id() == &walker.user).then_some((session, bytes))
            });
            match session {
                Some((session, bytes)) => {
                    if self.policy.is_expired(&session, self.now) {
                        expired.push((candidate.walker, session, bytes));
                    }
                }
                None => self.round_skipped += 1,
            }
        }
        self.settle(walkers, limits, reads, advanced, expired)
    }

    fn settle(
        &mut self,
        walkers: Vec<Walker>,
        limits: Vec<usize>,
        reads: u32,
        advanced: Vec<(Walker, bool)>,
        expired: Vec<(usize, Session, Vec<u8>)>,
    ) -> Result<Step<SweepReport>, TransitionError> {
        let mut groups: BTreeMap<String, Vec<(usize, Session, Vec<u8>)>> = BTreeMap::new();
        for entry in expired {
            groups
                .entry(user_group(&self.keys, entry.1.user_id()))
                .or_default()
                .push(entry);
        }
        let removed = vec![0; walkers.len()];
        self.apply_next(Settle {
            walkers,
            limits,
            reads,
            advanced,
            groups: groups
                .into_values()
                .flat_map(|group| chunked(group, MAX_PLAN_SESSIONS))
                .collect(),
            current: None,
            owners: OwnerRemovals::default(),
            failed: 0,
            removed,
        })
    }

    /// The owner keys of the group just removed (tagged layout), then the
    /// next group.
    fn remove_owners(
        &mut self,
        mut settle: Settle,
        input: Option<Input>,
    ) -> Result<Step<SweepReport>, TransitionError> {
        if let Some(step) = settle.owners.step(input, OP)?.into_step() {
            self.state = State::RemovingOwners(settle);
            return Ok(step);
        }
        self.report.owner_keys_removed += settle.owners.removed();
        settle.owners = OwnerRemovals::default();
        self.apply_next(settle)
    }

    fn apply_next(&mut self, mut settle: Settle) -> Result<Step<SweepReport>, TransitionError> {
        if let Some(group) = settle.groups.pop_front() {
            let plan = expire_plan(&self.keys, group.iter().map(|(_, s, b)| (s, &b[..])));
            settle.current = Some(group);
            self.state = State::Applying(settle);
            return Ok(Step::Apply(plan));
        }
        if settle.failed > 0 && settle.reads < MAX_BATCH_READS {
            // A record changed (or went) since it was read: read the
            // batch again.
            let reads = settle.reads.saturating_add(1);
            return Ok(self.read_windows(settle.walkers, settle.limits, reads));
        }
        self.report.skipped += self.round_skipped + settle.failed;
        for (i, (mut walker, last)) in settle.advanced.into_iter().enumerate().rev() {
            if !last {
                walker
                    .walk
                    .removed(settle.removed.get(i).copied().unwrap_or(0));
                self.walkers.push_front(walker);
            }
        }
        self.next()
    }

    fn on_applied(
        &mut self,
        mut settle: Settle,
        outcome: Applied,
    ) -> Result<Step<SweepReport>, TransitionError> {
        let Some(group) = settle.current.take() else {
            return out_of_sequence(OP);
        };
        let n = u64::try_from(group.len()).unwrap_or(u64::MAX);
        match outcome {
            Applied::Done => {
                self.report.sessions_removed += n;
                self.report.batches += 1;
                for (walker, _, _) in &group {
                    if let Some(slot) = settle.removed.get_mut(*walker) {
                        *slot += 1;
                    }
                }
                // Their owner keys go with them.
                settle.owners = OwnerRemovals::of(
                    &self.keys,
                    group.iter().map(|(_, s, _)| (s.user_id(), s.id())),
                );
                return self.remove_owners(settle, None);
            }
            Applied::Violated { .. } => settle.failed += n,
            // One of the user's keys holds another type: `check` reports
            // it; nothing of this user can be removed safely.
            Applied::WrongType { .. } => self.round_skipped += n,
        }
        self.apply_next(settle)
    }
}

impl Operation for Sweep {
    type Output = SweepReport;

    fn name(&self) -> &'static str {
        OP
    }

    fn resume(&mut self, input: Input) -> Result<Step<SweepReport>, TransitionError> {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Start => {
                if self.policy.revoked_retention.is_none() {
                    // Nothing expires; dangling owner keys are still
                    // looked for (tagged layout).
                    let mut found = Vec::new();
                    let reads = self.owners.next(&mut found);
                    return Ok(self.owner_step(found, reads));
                }
                self.next()
            }
            State::Scan => {
                let keys = self
                    .scan
                    .advance(replies(input, OP)?.into_iter().next(), OP)?;
                self.pending.extend(keys);
                self.next()
            }
            State::Windows {
                walkers,
                limits,
                reads,
            } => self.on_windows(walkers, limits, reads, replies(input, OP)?),
            State::Active {
                walkers,
                limits,
                reads,
                advanced,
                members,
            } => self.on_active(
                walkers,
                limits,
                reads,
                advanced,
                members,
                replies(input, OP)?,
            ),
            State::Records {
                walkers,
                limits,
                reads,
                advanced,
                candidates,
            } => {
                let records = match replies(input, OP)?.into_iter().next() {
                    Some(Reply::Values(values)) => values,
                    _ => return out_of_sequence(OP),
                };
                self.on_records(walkers, limits, reads, advanced, candidates, records)
            }
            State::Applying(settle) => {
                let outcome = applied(input, OP)?;
                self.on_applied(settle, outcome)
            }
            State::RemovingOwners(settle) => self.remove_owners(settle, Some(input)),
            State::Owners => {
                let mut found = Vec::new();
                let reads = self.owners.resume(replies(input, OP)?, &mut found, OP)?;
                Ok(self.owner_step(found, reads))
            }
            State::Finished => out_of_sequence(OP),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::CheckMode;
    use crate::keys::{IndexScore, Layout};
    use crate::model::MemoryKv;
    use crate::op::fixtures::{id, revocation, session, ts, user};
    use crate::op::{self, BatchSize, Between, Check, Create, Revoke};
    use crate::plan::{Plan, Write};
    use crate::RevokeSessionInput;

    const HOUR: i64 = 3600;

    fn policy(batch: usize) -> Policy {
        Policy {
            revoked_retention: Some(Duration::from_secs(24 * 3600)),
            batch_size: BatchSize::new(batch).unwrap(),
            ..Policy::default()
        }
    }

    /// Users u0..u4, each: two active sessions, one revoked at hour 1
    /// (expired at hour 100), one revoked at hour 90 (not yet), and one
    /// revoked by the Go adapter at hour 2 (record and all-sessions
    /// entry only: never in the revoked index).
    fn populated(keys: &KeySpace) -> MemoryKv {
        let mut kv = MemoryKv::new();
        for u in 0..5 {
            let name = format!("u{u}");
            for s in 0..4 {
                let s = session(&format!("{name}-{s}"), &name, s);
                op::run(&mut kv, Create::new(keys, Policy::default(), ts(0), s), 4).unwrap();
            }
            for (s, at) in [(2, HOUR), (3, 90 * HOUR)] {
                let input = RevokeSessionInput {
                    device_session_id: id(&format!("{name}-{s}")),
                    revocation: revocation(at),
                };
                // Under the sweep's retention: in the revoked index.
                op::run(&mut kv, Revoke::new(keys, policy(3), ts(at), input), 4).unwrap();
            }
            let go = session(&format!("{name}-go"), &name, 5)
                .revoked(revocation(2 * HOUR))
                .unwrap();
            kv.set_raw(
                keys.record_key(go.user_id(), go.id()),
                crate::codec::encode(&go),
            );
            kv.index_add_raw(
                keys.user_sessions_key(go.user_id()),
                go.id().as_str().as_bytes().to_vec(),
                IndexScore::of(go.created_at()).as_f64(),
            );
        }
        kv
    }

    fn sweep(kv: &mut MemoryKv, keys: &KeySpace, policy: Policy) -> SweepReport {
        op::run(kv, Sweep::new(keys, policy, ts(100 * HOUR)), 8).unwrap()
    }

    fn check_clean(kv: &mut MemoryKv, keys: &KeySpace) {
        let report = op::run(
            kv,
            Check::new(keys, CheckMode::Report, BatchSize::new(3).unwrap()),
            8,
        )
        .unwrap();
        // The Go adapter's revocations are missing from the revoked index
        // (drift check reports); nothing else.
        assert!(
            report
                .problems
                .iter()
                .all(|p| p.kind() == "missing_index_entry"
                    && p.key()
                        .starts_with(keys.prefix(KeyKind::Index(Index::Revoked)))),
            "{report:#?}"
        );
    }

    #[test]
    fn removes_every_expired_session_of_every_user_in_batches() {
        for layout in [Layout::Reference, Layout::Tagged] {
            let keys = KeySpace::default().in_layout(layout).unwrap();
            let mut kv = populated(&keys);
            let report = sweep(&mut kv, &keys, policy(3));
            assert_eq!(report.users, 5);
            assert_eq!(report.sessions_removed, 10, "{layout:?}: {report:?}");
            assert!(report.batches >= 5, "{report:?}");
            assert_eq!(report.skipped, 0);
            assert_eq!(report.retention, Some(Duration::from_secs(24 * 3600)));
            for u in 0..5 {
                let u = user(&format!("u{u}"));
                let all: Vec<Vec<u8>> = kv
                    .index_range(&keys.user_sessions_key(&u), None)
                    .into_iter()
                    .map(|(m, _)| m)
                    .collect();
                let name = u.as_str();
                let expect: Vec<Vec<u8>> = [0, 1, 3]
                    .iter()
                    .map(|s| format!("{name}-{s}").into_bytes())
                    .collect();
                assert_eq!(all, expect);
                for gone in [format!("{name}-2"), format!("{name}-go")] {
                    assert_eq!(kv.get(&keys.record_key(&u, &id(&gone))), None);
                }
                assert_eq!(kv.index_len(&keys.user_revoked_sessions_key(&u)), 1);
            }
            check_clean(&mut kv, &keys);
            // Idempotent.
            let again = sweep(&mut kv, &keys, policy(3));
            assert_eq!(again.sessions_removed, 0);
            assert_eq!(again.batches, 0);
        }
    }

    #[test]
    fn owner_keys_go_with_the_swept_sessions_and_dangling_ones_after_the_grace() {
        let keys = KeySpace::default().in_layout(Layout::Tagged).unwrap();
        let mut kv = populated(&keys);
        // Owner keys without their record: a create that stopped half-way,
        // and one that is still in flight (its record comes during the
        // grace).
        let half = keys.owner_key(&id("half")).unwrap();
        kv.set_raw(&half, "u1");
        let late = session("late", "u2", 5);
        kv.set_raw(keys.owner_key(late.id()).unwrap(), "u2");
        let mut report = sweep(&mut kv, &keys, policy(3));
        assert_eq!(report.sessions_removed, 10);
        // u*-2 had owner keys; the Go adapter's u*-go sessions had none.
        assert_eq!(report.owner_keys_removed, 5, "{report:?}");
        for u in 0..5 {
            let gone = id(&format!("u{u}-2"));
            assert_eq!(kv.get(&keys.owner_key(&gone).unwrap()), None);
        }
        assert_eq!(kv.get(&half), Some(&b"u1"[..]), "not before the grace");
        op::run(
            &mut kv,
            Create::new(&keys, Policy::default(), ts(5), late.clone()),
            4,
        )
        .unwrap();
        let recheck = report
            .owner_recheck(&keys, BatchSize::new(3).unwrap())
            .unwrap();
        let outcome = op::run(&mut kv, recheck, 8).unwrap();
        report.absorb_owner_recheck(&outcome);
        assert_eq!(report.owner_keys_removed, 6);
        assert_eq!(kv.get(&half), None);
        assert_eq!(
            kv.get(&keys.owner_key(late.id()).unwrap()),
            Some(&b"u2"[..])
        );
        check_clean(&mut kv, &keys);
        // Without a retention, dangling owner keys are still removed.
        kv.set_raw(&half, "u1");
        let mut report = sweep(&mut kv, &keys, Policy::default());
        assert_eq!(report.sessions_removed, 0);
        let recheck = report
            .owner_recheck(&keys, BatchSize::new(3).unwrap())
            .unwrap();
        let outcome = op::run(&mut kv, recheck, 8).unwrap();
        assert_eq!(outcome.removed.len(), 1);
        assert_eq!(kv.get(&half), None);
    }

    #[test]
    fn without_retention_nothing_is_examined() {
        let keys = KeySpace::default();
        let mut kv = populated(&keys);
        let before = kv.clone();
        let report = sweep(&mut kv, &keys, Policy::default());
        assert_eq!(report, SweepReport::default());
        assert_eq!(report.retention, None);
        assert_eq!(kv, before);
    }

    #[test]
    fn interrupted_it_leaves_whole_batches_and_running_again_finishes() {
        let keys = KeySpace::default();
        let mut kv = populated(&keys);
        let mut op = Sweep::new(&keys, policy(3), ts(100 * HOUR));
        let mut input = Input::Start;
        let mut applied_plans = 0;
        let mut removed = 0;
        // Stop right after the second applied removal.
        while applied_plans < 2 {
            input = match op.resume(input).unwrap() {
                Step::Read(reads) => Input::Replies(kv.read_all(&reads)),
                Step::Apply(plan) => {
                    applied_plans += 1;
                    removed += plan
                        .writes()
                        .iter()
                        .filter(|w| matches!(w, Write::Delete { .. }))
                        .count();
                    Input::Applied(kv.apply(&plan))
                }
                other => panic!("{other:?}"),
            };
        }
        check_clean(&mut kv, &keys);
        let rest = sweep(&mut kv, &keys, policy(3));
        assert!(removed >= 2);
        assert_eq!(rest.sessions_removed, 10 - removed as u64);
        check_clean(&mut kv, &keys);
    }

    #[test]
    fn a_record_changed_between_read_and_removal_is_read_again() {
        let keys = KeySpace::default();
        let mut kv = populated(&keys);
        let u0 = user("u0");
        let target = keys.record_key(&u0, &id("u0-2"));
        let mut replaced = false;
        let op = Sweep::new(&keys, policy(500), ts(100 * HOUR));
        let report = op::run_with(&mut kv, op, 8, |kv, between| {
            // Once u0-2's expired record has been read, it is replaced by
            // a new active session with the same id (as after a removal
            // and a re-create): its removal must not happen.
            if between == Between::Read && !replaced && kv.get(&target).is_some() {
                let fresh = session("u0-2", "u0", 99 * HOUR);
                kv.set_raw(target.clone(), crate::codec::encode(&fresh));
                let plan = Plan::empty().with_writes([
                    Write::IndexRemove {
                        key: keys.user_revoked_sessions_key(&u0),
                        member: b"u0-2".to_vec(),
                    },
                    Write::IndexAdd {
                        key: keys.user_active_sessions_key(&u0),
                        score: IndexScore::of(fresh.created_at()),
                        member: "u0-2".into(),
                    },
                    Write::IndexAdd {
                        key: keys.user_sessions_key(&u0),
                        score: IndexScore::of(fresh.created_at()),
                        member: "u0-2".into(),
                    },
                ]);
                kv.apply(&plan);
                replaced = true;
            }
        })
        .unwrap();
        assert!(replaced);
        assert_eq!(report.sessions_removed, 9, "{report:?}");
        assert!(kv.get(&target).is_some());
        check_clean(&mut kv, &keys);
    }
}
