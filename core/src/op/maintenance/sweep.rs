//! `sweep`: removes every revoked session past its retention, for every
//! user, in bounded batches: the all-sessions indexes walked batch by
//! batch ([`super::batch`]), each batch's expired sessions removed in
//! guarded plans ([`super::settle`]) as retention states it
//! ([`crate::op::expiry`]), then the first look at owner keys
//! ([`super::owners`]).

use std::collections::VecDeque;
use std::time::Duration;

use crate::codec;
use crate::ids::DeviceSessionId;
use crate::keys::{Index, KeyKind, KeySpace};
use crate::op::decode::session_id;
use crate::op::expiry::{expire_plan, OwnerRemovals};
use crate::op::maintenance::batch::{IndexBatch, Round, Walkers};
use crate::op::maintenance::owners::{OwnerFinding, OwnerPass};
use crate::op::maintenance::settle::{user_group, Next, Outcome, PlanItem, Settle};
use crate::op::maintenance::walk::KeyScan;
use crate::op::replies::values;
use crate::op::{
    applied, out_of_sequence, replies, Input, Operation, Policy, Step, TransitionError,
};
use crate::plan::{KeyType, Member, Plan, Read, Reply};
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

/// A non-active member whose record is read.
#[derive(Debug)]
struct Candidate {
    walker: usize,
    id: DeviceSessionId,
    record_key: String,
}

/// An expired session, read with its bytes from the walk at `walker`.
#[derive(Debug)]
struct Expired {
    walker: usize,
    session: Session,
    bytes: Vec<u8>,
}

impl PlanItem for Expired {
    fn plan(group: &[Self], keys: &KeySpace) -> Plan {
        expire_plan(keys, group.iter().map(|e| (&e.session, &e.bytes[..])))
    }

    fn removes_from(&self) -> Option<usize> {
        Some(self.walker)
    }
}

/// Sweep settles its expired sessions; a batch that changed is read again
/// whole.
type Removal = Settle<Expired, IndexBatch>;

#[derive(Debug)]
enum State {
    Start,
    Scan,
    Windows {
        batch: IndexBatch,
        reads: u32,
    },
    Active {
        round: Round,
        /// Per walk: its members with valid ids.
        members: Vec<Vec<DeviceSessionId>>,
    },
    Records {
        round: Round,
        candidates: Vec<Candidate>,
    },
    Applying(Removal),
    /// The owner keys of the sessions just removed (tagged layout), before
    /// the next plan.
    RemovingOwners(Removal, Box<OwnerRemovals>),
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
    walkers: Walkers,
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
            walkers: Walkers::new(policy.batch_size.get()),
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
        // A key naming no user is for `check` to report.
        self.report.users += self
            .walkers
            .start(&mut self.pending, &self.keys, Index::All, |_| {});
        let Some(batch) = self.walkers.next_batch() else {
            if self.scan.is_done() {
                let mut found = Vec::new();
                let reads = self.owners.next(&mut found);
                return Ok(self.owner_step(found, reads));
            }
            self.state = State::Scan;
            return Ok(Step::Read(vec![self.scan.read(self.batch)]));
        };
        Ok(self.read_windows(batch, 1))
    }

    fn read_windows(&mut self, batch: IndexBatch, reads: u32) -> Step<SweepReport> {
        self.round_skipped = 0;
        let plan_reads = batch.reads();
        self.state = State::Windows { batch, reads };
        Step::Read(plan_reads)
    }

    /// What the windows handed out, each walk's members in batch order:
    /// the valid ids, whose active-index scores are read next.
    fn on_windows(
        &mut self,
        round: Round,
        windows: Vec<Vec<Member>>,
    ) -> Result<Step<SweepReport>, TransitionError> {
        let mut members = Vec::with_capacity(windows.len());
        for window in windows {
            let mut ids = Vec::with_capacity(window.len());
            for member in window {
                match session_id(&member) {
                    Some(id) => ids.push(id),
                    None => self.round_skipped += 1,
                }
            }
            members.push(ids);
        }
        // Active sessions never expire: only the others' records are read.
        let plan_reads: Vec<Read> = round
            .batch
            .walkers()
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
            return self.settle(round, Vec::new());
        }
        self.state = State::Active { round, members };
        Ok(Step::Read(plan_reads))
    }

    fn on_active(
        &mut self,
        round: Round,
        members: Vec<Vec<DeviceSessionId>>,
        replies: Vec<Reply>,
    ) -> Result<Step<SweepReport>, TransitionError> {
        let mut replies = replies.into_iter();
        let mut candidates = Vec::new();
        for (i, ids) in members.into_iter().enumerate() {
            if ids.is_empty() {
                continue;
            }
            let Some(walker) = round.batch.walkers().get(i) else {
                continue;
            };
            let scores = match replies.next() {
                Some(Reply::Scores(scores)) => scores,
                // The active index is not a sorted set: nothing of this
                // user can be judged.
                Some(Reply::WrongType) => {
                    self.round_skipped += count(ids.len());
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
            return self.settle(round, Vec::new());
        }
        let read = Read::Values {
            keys: candidates.iter().map(|c| c.record_key.clone()).collect(),
        };
        self.state = State::Records { round, candidates };
        Ok(Step::Read(vec![read]))
    }

    fn on_records(
        &mut self,
        round: Round,
        candidates: Vec<Candidate>,
        records: Vec<Option<Vec<u8>>>,
    ) -> Result<Step<SweepReport>, TransitionError> {
        let mut expired = Vec::new();
        for (candidate, record) in candidates.into_iter().zip(records) {
            let Some(walker) = round.batch.walkers().get(candidate.walker) else {
                continue;
            };
            let session = record.and_then(|bytes| {
                let session = codec::decode(&candidate.id, &bytes).ok()?;
                (session.user_id() == &walker.user).then_some((session, bytes))
            });
            match session {
                Some((session, bytes)) => {
                    if self.policy.is_expired(&session, self.now) {
                        expired.push(Expired {
                            walker: candidate.walker,
                            session,
                            bytes,
                        });
                    }
                }
                None => self.round_skipped += 1,
            }
        }
        self.settle(round, expired)
    }

    fn settle(
        &mut self,
        round: Round,
        expired: Vec<Expired>,
    ) -> Result<Step<SweepReport>, TransitionError> {
        let items = expired
            .into_iter()
            .map(|e| (user_group(&self.keys, e.session.user_id()), e));
        let settle = Settle::new(round.batch, round.reads, round.advanced, items);
        self.apply_next(settle)
    }

    /// The next removal plan, or the batch read again, or the next batch.
    fn apply_next(&mut self, settle: Removal) -> Result<Step<SweepReport>, TransitionError> {
        match settle.next(&self.keys, &mut self.walkers) {
            Next::Apply(plan, settle) => {
                self.state = State::Applying(settle);
                Ok(Step::Apply(plan))
            }
            // A record changed (or went) since it was read: read the
            // batch again.
            Next::Reread { batch, reads } => Ok(self.read_windows(batch, reads)),
            Next::Settled { failed, .. } => {
                self.report.skipped +=
                    self.round_skipped + count(failed.iter().map(Vec::len).sum());
                self.next()
            }
        }
    }

    fn on_applied(
        &mut self,
        settle: Removal,
        outcome: Outcome<Expired>,
    ) -> Result<Step<SweepReport>, TransitionError> {
        match outcome {
            Outcome::Done(group) => {
                self.report.sessions_removed += count(group.len());
                self.report.batches += 1;
                // Their owner keys go with them.
                let owners = OwnerRemovals::of(
                    &self.keys,
                    group.iter().map(|e| (e.session.user_id(), e.session.id())),
                );
                return self.remove_owners(settle, Box::new(owners), None);
            }
            Outcome::Violated => {}
            // One of the user's keys holds another type: `check` reports
            // it; nothing of this user can be removed safely.
            Outcome::WrongType { group, .. } => self.round_skipped += count(group.len()),
        }
        self.apply_next(settle)
    }

    /// The owner keys of the group just removed (tagged layout), then the
    /// next group.
    fn remove_owners(
        &mut self,
        settle: Removal,
        mut owners: Box<OwnerRemovals>,
        input: Option<Input>,
    ) -> Result<Step<SweepReport>, TransitionError> {
        if let Some(step) = owners.step(input, OP)?.into_step() {
            self.state = State::RemovingOwners(settle, owners);
            return Ok(step);
        }
        self.report.owner_keys_removed += owners.removed();
        self.apply_next(settle)
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
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
            State::Windows { batch, reads } => {
                let (round, windows) = batch.advance(reads, replies(input, OP)?, OP)?;
                self.on_windows(round, windows)
            }
            State::Active { round, members } => self.on_active(round, members, replies(input, OP)?),
            State::Records { round, candidates } => {
                let records = values(replies(input, OP)?.into_iter().next(), OP)?;
                self.on_records(round, candidates, records)
            }
            State::Applying(mut settle) => {
                let outcome = settle.applied(applied(input, OP)?, OP)?;
                self.on_applied(settle, outcome)
            }
            State::RemovingOwners(settle, owners) => {
                self.remove_owners(settle, owners, Some(input))
            }
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
