//! `check` (and `check --repair`): the consistency walk, in bounded
//! batches.
//!
//! Passes, in order, each a scan of one prefix page by page:
//! 1. **Records** (`KeyType::String` under the session prefix): each batch
//!    of at most [`BatchSize`] record keys is read (`Values`; in the
//!    tagged layout with the owner keys), strictly decoded, and its index
//!    memberships read (`IndexScores` per user and index): the
//!    all-sessions index always, the active index when active, the revoked
//!    index when revoked, each with the score the record implies. This
//!    pass finds corrupt records, missing or misscored entries and owner
//!    key problems.
//! 2. **Indexes** (`KeyType::SortedSet` under each index prefix): each
//!    index is walked in windows of ranks ([`IndexWalk`], which never
//!    repeats a member nor skips one that stays), small indexes several to
//!    a batch, and the members' records read. This pass finds stray
//!    entries: members whose record is missing, undecodable or another
//!    user's (a repair takes them out of the index and leaves the record's
//!    bytes alone, so the user can be revoked whole again), revoked ones
//!    in the active index, active ones in the revoked index.
//! 3. **Owner keys** (tagged layout): each one read with the record it
//!    names; one without it is the first look of [`super::owners`] (the
//!    second, after the grace, is [`super::RecheckOwners`]).
//! 4. **Types**: keys of the wrong type under each prefix, reported only:
//!    the store cannot read them, so a repair never deletes them.
//!
//! With [`CheckMode::Repair`], each batch's findings become repair plans —
//! one per user in the tagged layout (a user's keys share a cluster
//! slot), one per batch in the reference layout — each guarded by exactly
//! the stored state its writes were derived from (the record's bytes, or
//! its absence) and applied atomically. A violated guard means the batch
//! changed while it was examined: the batch is read again and judged
//! afresh (at most four reads in all); what still cannot be applied is
//! reported as unrepaired. A plan writes for at most 128 sessions (a
//! batch with more to fix is applied as several plans). So a repair may
//! miss a concurrent change, but never writes on the strength of a stale
//! read.

use std::collections::{BTreeMap, VecDeque};

use crate::audit::{CheckMode, CheckReport, Problem, StrayReason, Unrepaired, UnrepairedReason};
use crate::codec;
use crate::ids::{DeviceSessionId, UserId};
use crate::keys::{Index, IndexScore, KeyKind, KeySpace, Layout};
use crate::op::decode::session_id;
use crate::op::maintenance::owners::{first_look, OwnerFinding, OwnerPass};
use crate::op::maintenance::walk::{IndexWalk, KeyScan, Window};
use crate::op::{
    applied, out_of_sequence, replies, BatchSize, Input, Operation, Step, TransitionError,
};
use crate::plan::{Applied, KeyType, Member, OnViolation, Plan, Precondition, Read, Reply, Write};
use crate::session::Session;

/// How many times one batch is read before what it could not repair is
/// reported as unrepaired (contention).
pub(crate) const MAX_BATCH_READS: u32 = 4;

/// At most this many sessions' writes per plan: a plan's script runs a
/// few commands per session (the guard's compare, the writes), so a batch
/// with more to write is applied as several plans, each guarded by its
/// own sessions' state, to keep every script short.
pub(crate) const MAX_PLAN_SESSIONS: usize = 128;

const OP: &str = "check";

/// One scan of the walk.
#[derive(Debug, Clone)]
enum Pass {
    Records,
    Index(Index),
    /// Owner keys without their record (tagged layout).
    Owners,
    /// Keys under `prefix` of type `found` are of the wrong type.
    WrongType {
        prefix: String,
        found: KeyType,
        expected: KeyType,
    },
}

impl Pass {
    fn scan(&self, keys: &KeySpace) -> Option<KeyScan> {
        Some(match self {
            Pass::Records => KeyScan::new(keys.prefix(KeyKind::Record), KeyType::String),
            Pass::Index(kind) => {
                KeyScan::new(keys.prefix(KeyKind::Index(*kind)), KeyType::SortedSet)
            }
            Pass::WrongType { prefix, found, .. } => KeyScan::new(prefix, *found),
            // Its own walk.
            Pass::Owners => return None,
        })
    }
}

/// A record key to examine.
#[derive(Debug, Clone)]
struct RecordEntry {
    key: String,
    id: DeviceSessionId,
    /// The user of the key (tagged layout).
    user: Option<UserId>,
    owner_key: Option<String>,
}

/// A decoded record whose index memberships are being read.
#[derive(Debug)]
struct Decoded {
    key: String,
    session: Session,
    bytes: Vec<u8>,
}

/// One `IndexScores` read of a records batch: `decoded` positions.
#[derive(Debug)]
struct ScoreRead {
    kind: Index,
    key: String,
    of: Vec<usize>,
}

/// A records batch waiting for its index memberships.
#[derive(Debug)]
struct RecordScores {
    entries: Vec<RecordEntry>,
    reads: u32,
    records: usize,
    findings: Vec<Finding>,
    decoded: Vec<Decoded>,
    score_reads: Vec<ScoreRead>,
}

/// An index being walked.
#[derive(Debug, Clone)]
struct Walker {
    walk: IndexWalk,
    user: UserId,
    kind: Index,
}

/// A member read in an index batch.
#[derive(Debug)]
struct MemberRead {
    walker: usize,
    member: Member,
    /// Its id and record key when it is a valid id.
    record: Option<(DeviceSessionId, String)>,
}

/// What a repair of one problem writes, and the stored state it was
/// derived from.
#[derive(Debug, Clone)]
struct Repair {
    /// Plans are per group: the user (tagged layout: one slot), an owner
    /// key (its own slot), or the whole batch (reference layout).
    group: String,
    guards: Vec<Precondition>,
    writes: Vec<Write>,
    /// The walker whose index loses a member when applied.
    removes_from: Option<usize>,
}

impl Repair {
    fn touches(&self, key: &str) -> bool {
        self.guards.iter().any(|g| g.key() == key) || self.writes.iter().any(|w| w.key() == key)
    }
}

#[derive(Debug)]
struct Finding {
    problem: Problem,
    repair: Option<Repair>,
}

/// One repair plan's problems.
#[derive(Debug)]
struct Group(Vec<(Problem, Repair)>);

impl Group {
    fn plan(&self) -> Plan {
        let mut guards: Vec<Precondition> = Vec::new();
        let mut writes = Vec::new();
        for (_, repair) in &self.0 {
            for guard in &repair.guards {
                if !guards.contains(guard) {
                    guards.push(guard.clone());
                }
            }
            writes.extend(repair.writes.iter().cloned());
        }
        Plan::new(guards, writes, OnViolation::Retry)
    }
}

/// How to read a batch again.
#[derive(Debug)]
enum Redo {
    Records(Vec<RecordEntry>),
    Index {
        walkers: Vec<Walker>,
        limits: Vec<usize>,
    },
}

/// What a settled batch adds.
#[derive(Debug)]
enum Commit {
    Records {
        records: usize,
    },
    Index {
        advanced: Vec<(Walker, bool)>,
        entries: usize,
    },
}

/// A batch read to its end, its repairs being applied.
#[derive(Debug)]
struct Settle {
    redo: Redo,
    reads: u32,
    commit: Commit,
    unrepairable: Vec<Problem>,
    groups: VecDeque<Group>,
    current: Option<Group>,
    failed: Vec<Group>,
    /// Members removed per walker by applied plans.
    removed: Vec<u64>,
}

#[derive(Debug)]
enum State {
    Next,
    Scan,
    RecordValues {
        entries: Vec<RecordEntry>,
        reads: u32,
    },
    RecordScores(RecordScores),
    IndexWindows {
        walkers: Vec<Walker>,
        limits: Vec<usize>,
        reads: u32,
    },
    IndexRecords {
        walkers: Vec<Walker>,
        limits: Vec<usize>,
        reads: u32,
        advanced: Vec<(Walker, bool)>,
        members: Vec<MemberRead>,
    },
    Settling(Settle),
    Owners,
    Finished,
}

/// The consistency check of a whole key space, as one bounded walk (see
/// the module documentation): no read or plan covers more than one batch
/// ([`BatchSize`] records or index members; a scan page asks for as many
/// keys), so no single command holds the server for long at any size.
/// Without repair it writes nothing.
#[derive(Debug)]
pub struct Check {
    keys: KeySpace,
    mode: CheckMode,
    batch: usize,
    passes: VecDeque<Pass>,
    pass: Option<Pass>,
    scan: Option<KeyScan>,
    /// Keys of the current scan page not yet examined.
    pending: VecDeque<String>,
    /// Indexes being walked (continuing ones first).
    walkers: VecDeque<Walker>,
    /// The first look at the owner keys.
    owners: OwnerPass,
    report: CheckReport,
    state: State,
}

impl Check {
    /// Checks (and with [`CheckMode::Repair`] repairs) `keys`' key space
    /// in batches of `batch`.
    pub fn new(keys: &KeySpace, mode: CheckMode, batch: BatchSize) -> Self {
        let mut passes = VecDeque::from([
            Pass::Records,
            Pass::Index(Index::All),
            Pass::Index(Index::Active),
            Pass::Index(Index::Revoked),
            Pass::Owners,
        ]);
        // Records and owner keys are strings, indexes sorted sets: a key
        // of the other type under a prefix is one the store cannot read.
        for (kind, prefix) in keys.prefixes() {
            let (expected, found) = match kind {
                KeyKind::Index(_) => (KeyType::SortedSet, KeyType::String),
                _ => (KeyType::String, KeyType::SortedSet),
            };
            passes.push_back(Pass::WrongType {
                prefix: prefix.to_owned(),
                found,
                expected,
            });
        }
        Self {
            keys: keys.clone(),
            mode,
            batch: batch.get(),
            passes,
            pass: None,
            scan: None,
            pending: VecDeque::new(),
            walkers: VecDeque::new(),
            owners: OwnerPass::new(keys, batch.get()),
            report: CheckReport::default(),
            state: State::Next,
        }
    }

    /// What the first look at owner keys found, and its next reads (or
    /// the next pass).
    fn owner_step(
        &mut self,
        found: Vec<OwnerFinding>,
        reads: Option<Vec<Read>>,
    ) -> Result<Step<CheckReport>, TransitionError> {
        for finding in found {
            if let OwnerFinding::Dangling(sighting) = &finding {
                self.report.owner_sightings.push(sighting.clone());
            }
            let Unrepaired { problem, reason } = first_look(&self.keys, finding);
            self.report.unrepaired.push(Unrepaired {
                problem: problem.clone(),
                reason,
            });
            self.report.problems.push(problem);
        }
        match reads {
            Some(reads) => {
                self.state = State::Owners;
                Ok(Step::Read(reads))
            }
            None => {
                self.pass = None;
                self.next()
            }
        }
    }

    fn group_of(&self, user: &UserId) -> String {
        user_group(&self.keys, user)
    }

    /// Records a problem no repair is attempted for.
    fn unrepairable(&mut self, problem: Problem) {
        self.report.unrepaired.push(Unrepaired {
            problem: problem.clone(),
            reason: UnrepairedReason::NotRepairable,
        });
        self.report.problems.push(problem);
    }

    /// Decides what to do next, until a step needs the driver.
    fn next(&mut self) -> Result<Step<CheckReport>, TransitionError> {
        loop {
            let Some(pass) = self.pass.clone() else {
                let Some(pass) = self.passes.pop_front() else {
                    let mut report = std::mem::take(&mut self.report);
                    report.finish();
                    self.state = State::Finished;
                    return Ok(Step::Done(report));
                };
                self.scan = pass.scan(&self.keys);
                self.pass = Some(pass);
                continue;
            };
            match pass {
                Pass::Owners => {
                    let mut found = Vec::new();
                    let reads = self.owners.next(&mut found);
                    return self.owner_step(found, reads);
                }
                Pass::Records => {
                    if !self.pending.is_empty() {
                        let take = self.pending.len().min(self.batch);
                        let keys: Vec<String> = self.pending.drain(..take).collect();
                        let entries = self.record_entries(keys);
                        if !entries.is_empty() {
                            return Ok(self.read_records(entries, 1));
                        }
                        continue;
                    }
                }
                Pass::Index(kind) => {
                    while self.walkers.len() < self.batch {
                        let Some(key) = self.pending.pop_front() else {
                            break;
                        };
                        match self.keys.parse_index_key(kind, &key) {
                            Some(user) => self.walkers.push_back(Walker {
                                walk: IndexWalk::new(key),
                                user,
                                kind,
                            }),
                            None => self.unrepairable(Problem::UnparsableKey { key }),
                        }
                    }
                    if let Some((walkers, limits)) = self.index_batch() {
                        return Ok(self.read_windows(walkers, limits, 1));
                    }
                }
                Pass::WrongType { expected, .. } => {
                    while let Some(key) = self.pending.pop_front() {
                        self.unrepairable(Problem::WrongType { key, expected });
                    }
                }
            }
            // The page is done: the next one, or the next pass.
            match &self.scan {
                Some(scan) if !scan.is_done() => {
                    let read = scan.read(self.batch);
                    self.state = State::Scan;
                    return Ok(Step::Read(vec![read]));
                }
                _ => {
                    self.pass = None;
                    self.scan = None;
                }
            }
        }
    }

    fn record_entries(&mut self, keys: Vec<String>) -> Vec<RecordEntry> {
        let mut entries = Vec::with_capacity(keys.len());
        for key in keys {
            let parsed = self.keys.parse_record_key(&key).filter(|(user, id)| {
                // Only the canonical key of an id names its record.
                let canonical = match user {
                    Some(user) => self.keys.record_key(user, id),
                    None => self.keys.reference_record_key(id),
                };
                canonical == key
            });
            match parsed {
                Some((user, id)) => {
                    let owner_key = self.keys.owner_key(&id);
                    entries.push(RecordEntry {
                        key,
                        id,
                        user,
                        owner_key,
                    });
                }
                None => {
                    self.report.records += 1;
                    self.unrepairable(Problem::UnparsableKey { key });
                }
            }
        }
        entries
    }

    fn read_records(&mut self, entries: Vec<RecordEntry>, reads: u32) -> Step<CheckReport> {
        let mut plan_reads = vec![Read::Values {
            keys: entries.iter().map(|e| e.key.clone()).collect(),
        }];
        let owners: Vec<String> = entries.iter().filter_map(|e| e.owner_key.clone()).collect();
        if !owners.is_empty() {
            plan_reads.push(Read::Values { keys: owners });
        }
        self.state = State::RecordValues { entries, reads };
        Step::Read(plan_reads)
    }

    /// The next index batch: the first continuing walk alone with a full
    /// window, or several fresh ones with small windows (most users have
    /// few sessions: one batch covers many of them).
    fn index_batch(&mut self) -> Option<(Vec<Walker>, Vec<usize>)> {
        let first = self.walkers.pop_front()?;
        if !first.walk.is_fresh() {
            return Some((vec![first], vec![self.batch]));
        }
        let group = (self.batch / 4).max(1);
        let window = (self.batch / group).max(1);
        let mut walkers = vec![first];
        while walkers.len() < group && self.walkers.front().is_some_and(|w| w.walk.is_fresh()) {
            if let Some(w) = self.walkers.pop_front() {
                walkers.push(w);
            }
        }
        let limits = vec![window; walkers.len()];
        Some((walkers, limits))
    }

    fn read_windows(
        &mut self,
        walkers: Vec<Walker>,
        limits: Vec<usize>,
        reads: u32,
    ) -> Step<CheckReport> {
        let plan_reads = walkers
            .iter()
            .zip(&limits)
            .map(|(w, limit)| w.walk.read(*limit))
            .collect();
        self.state = State::IndexWindows {
            walkers,
            limits,
            reads,
        };
        Step::Read(plan_reads)
    }

    /// Records batch, first reply: decode, owner keys, then the index
    /// memberships to read.
    fn on_record_values(
        &mut self,
        entries: Vec<RecordEntry>,
        reads: u32,
        replies: Vec<Reply>,
    ) -> Result<Step<CheckReport>, TransitionError> {
        let mut replies = replies.into_iter();
        let values = values_of(replies.next())?;
        let owners = if entries.iter().any(|e| e.owner_key.is_some()) {
            values_of(replies.next())?
        } else {
            Vec::new()
        };
        let mut owners = owners.into_iter();
        let mut findings = Vec::new();
        let mut decoded = Vec::new();
        let mut records = 0;
        for (entry, value) in entries.iter().zip(values) {
            let owner = match entry.owner_key {
                Some(_) => owners.next().flatten(),
                None => None,
            };
            // Gone since the scan: nothing to check.
            let Some(bytes) = value else { continue };
            records += 1;
            let session = match codec::decode(&entry.id, &bytes) {
                Ok(session) => session,
                Err(error) => {
                    findings.push(Finding {
                        problem: Problem::CorruptRecord {
                            key: entry.key.clone(),
                            error,
                        },
                        repair: None,
                    });
                    continue;
                }
            };
            if entry.user.as_ref().is_some_and(|u| u != session.user_id()) {
                findings.push(Finding {
                    problem: Problem::ForeignRecord {
                        key: entry.key.clone(),
                        owner: session.user_id().as_str().to_owned(),
                    },
                    repair: None,
                });
                continue;
            }
            if let Some(owner_key) = &entry.owner_key {
                let user = session.user_id().as_str().as_bytes();
                match owner {
                    None => findings.push(Finding {
                        problem: Problem::MissingOwnerKey {
                            owner_key: owner_key.clone(),
                            record_key: entry.key.clone(),
                        },
                        // The owner key lives in the id's own slot: its
                        // own plan, guarded by its absence only.
                        repair: Some(Repair {
                            group: format!("o:{owner_key}"),
                            guards: vec![Precondition::Absent {
                                key: owner_key.clone(),
                            }],
                            writes: vec![Write::Set {
                                key: owner_key.clone(),
                                value: user.to_vec(),
                            }],
                            removes_from: None,
                        }),
                    }),
                    Some(found) if found != user => findings.push(Finding {
                        problem: Problem::ForeignOwnerKey {
                            owner_key: owner_key.clone(),
                            record_key: entry.key.clone(),
                            owner: String::from_utf8_lossy(&found).into_owned(),
                        },
                        repair: None,
                    }),
                    Some(_) => {}
                }
            }
            decoded.push(Decoded {
                key: entry.key.clone(),
                session,
                bytes,
            });
        }
        // Memberships to read, per user and index.
        let mut by_user: BTreeMap<&UserId, Vec<usize>> = BTreeMap::new();
        for (i, d) in decoded.iter().enumerate() {
            by_user.entry(d.session.user_id()).or_default().push(i);
        }
        let mut score_reads = Vec::new();
        for (user, of) in by_user {
            let (active, revoked): (Vec<usize>, Vec<usize>) = of
                .iter()
                .partition(|i| decoded.get(**i).is_some_and(|d| d.session.is_active()));
            for (kind, of) in [
                (Index::All, of),
                (Index::Active, active),
                (Index::Revoked, revoked),
            ] {
                if !of.is_empty() {
                    score_reads.push(ScoreRead {
                        kind,
                        key: self.keys.index_key(kind, user),
                        of,
                    });
                }
            }
        }
        let plan_reads: Vec<Read> = score_reads
            .iter()
            .map(|r| Read::IndexScores {
                key: r.key.clone(),
                members: r
                    .of
                    .iter()
                    .filter_map(|i| decoded.get(*i))
                    .map(|d| d.session.id().as_str().as_bytes().to_vec())
                    .collect(),
            })
            .collect();
        if plan_reads.is_empty() {
            return self.settle(
                findings,
                Redo::Records(entries),
                reads,
                Commit::Records { records },
            );
        }
        self.state = State::RecordScores(RecordScores {
            entries,
            reads,
            records,
            findings,
            decoded,
            score_reads,
        });
        Ok(Step::Read(plan_reads))
    }

    /// Records batch, second reply: the missing and misscored entries.
    fn on_record_scores(
        &mut self,
        batch: RecordScores,
        replies: Vec<Reply>,
    ) -> Result<Step<CheckReport>, TransitionError> {
        let RecordScores {
            entries,
            reads,
            records,
            mut findings,
            decoded,
            score_reads,
        } = batch;
        let mut replies = replies.into_iter();
        for read in &score_reads {
            let scores = match replies.next() {
                Some(Reply::Scores(scores)) => scores,
                // The index is not a sorted set: the type pass reports it,
                // and nothing can be added to it.
                Some(Reply::WrongType) => continue,
                _ => return out_of_sequence(OP),
            };
            for (i, found) in read.of.iter().zip(scores) {
                let Some(d) = decoded.get(*i) else { continue };
                let score = match read.kind {
                    Index::All | Index::Active => IndexScore::of(d.session.created_at()),
                    Index::Revoked => match d.session.revocation() {
                        Some(revocation) => IndexScore::of(revocation.at()),
                        None => continue,
                    },
                };
                if found == Some(score.as_f64()) {
                    continue;
                }
                // The revoked index only speeds up retention: sessions the
                // Go adapter revoked are never in it, and that is no
                // problem (sweep and the lists find them by their
                // records). A wrong score there still is.
                if read.kind == Index::Revoked && found.is_none() {
                    continue;
                }
                let member = d.session.id().as_str().to_owned();
                findings.push(Finding {
                    problem: Problem::MissingIndexEntry {
                        index_key: read.key.clone(),
                        member: member.clone(),
                        record_key: d.key.clone(),
                    },
                    repair: Some(Repair {
                        group: self.group_of(d.session.user_id()),
                        guards: vec![Precondition::ValueEquals {
                            key: d.key.clone(),
                            value: d.bytes.clone(),
                        }],
                        writes: vec![Write::IndexAdd {
                            key: read.key.clone(),
                            score,
                            member,
                        }],
                        removes_from: None,
                    }),
                });
            }
        }
        self.settle(
            findings,
            Redo::Records(entries),
            reads,
            Commit::Records { records },
        )
    }

    /// Index batch, first reply: the windows; then the members' records.
    fn on_windows(
        &mut self,
        walkers: Vec<Walker>,
        limits: Vec<usize>,
        reads: u32,
        replies: Vec<Reply>,
    ) -> Result<Step<CheckReport>, TransitionError> {
        let mut replies = replies.into_iter();
        let mut advanced = Vec::with_capacity(walkers.len());
        let mut members = Vec::new();
        for (i, (walker, limit)) in walkers.iter().zip(&limits).enumerate() {
            let mut next = walker.clone();
            let window = match replies.next() {
                Some(Reply::Members(window)) => window,
                // No longer a sorted set: the type pass reports it.
                Some(Reply::WrongType) => {
                    advanced.push((next, true));
                    continue;
                }
                _ => return out_of_sequence(OP),
            };
            let (window, last) = match next.walk.advance(window, *limit) {
                Window::Members { members, last } => (members, last),
                Window::Again => (Vec::new(), false),
            };
            for (member, _) in window {
                let record = session_id(&member).map(|id| {
                    let key = self.keys.record_key(&walker.user, &id);
                    (id, key)
                });
                members.push(MemberRead {
                    walker: i,
                    member,
                    record,
                });
            }
            advanced.push((next, last));
        }
        let record_keys: Vec<String> = members
            .iter()
            .filter_map(|m| m.record.as_ref().map(|(_, key)| key.clone()))
            .collect();
        if record_keys.is_empty() {
            return self.on_member_records(walkers, limits, reads, advanced, members, Vec::new());
        }
        self.state = State::IndexRecords {
            walkers,
            limits,
            reads,
            advanced,
            members,
        };
        Ok(Step::Read(vec![Read::Values { keys: record_keys }]))
    }

    /// Index batch, second reply: the stray entries.
    fn on_member_records(
        &mut self,
        walkers: Vec<Walker>,
        limits: Vec<usize>,
        reads: u32,
        advanced: Vec<(Walker, bool)>,
        members: Vec<MemberRead>,
        records: Vec<Option<Vec<u8>>>,
    ) -> Result<Step<CheckReport>, TransitionError> {
        let mut records = records.into_iter();
        let mut findings = Vec::new();
        let entries = members.len();
        for m in members {
            let Some(walker) = walkers.get(m.walker) else {
                continue;
            };
            let index_key = walker.walk.key().to_owned();
            let group = self.group_of(&walker.user);
            let stray = |reason: StrayReason, guard: Option<Precondition>| {
                let problem = Problem::StrayIndexEntry {
                    index_key: index_key.clone(),
                    member: m.member.clone(),
                    reason,
                };
                let repair = Some(Repair {
                    group: group.clone(),
                    guards: guard.into_iter().collect(),
                    writes: vec![Write::IndexRemove {
                        key: index_key.clone(),
                        member: m.member.clone(),
                    }],
                    removes_from: Some(m.walker),
                });
                Finding { problem, repair }
            };
            let Some((id, record_key)) = &m.record else {
                // Nothing can make an invalid member valid: removed
                // unconditionally.
                findings.push(stray(StrayReason::InvalidMember, None));
                continue;
            };
            let Some(bytes) = records.next().flatten() else {
                findings.push(stray(
                    StrayReason::NoRecord,
                    Some(Precondition::Absent {
                        key: record_key.clone(),
                    }),
                ));
                continue;
            };
            let guard = Some(Precondition::ValueEquals {
                key: record_key.clone(),
                value: bytes.clone(),
            });
            // A record that does not decode, or is another user's: the
            // member leaves the index (so the user can be revoked whole
            // again), the record's bytes stay where they are for a human
            // (the records pass reports them).
            let Ok(session) = codec::decode(id, &bytes) else {
                findings.push(stray(StrayReason::CorruptRecord, guard));
                continue;
            };
            let reason = if session.user_id() != &walker.user {
                StrayReason::OtherUser
            } else {
                match (walker.kind, session.is_active()) {
                    (Index::Active, false) => StrayReason::Revoked,
                    (Index::Revoked, true) => StrayReason::NotRevoked,
                    _ => continue,
                }
            };
            findings.push(stray(reason, guard));
        }
        self.settle(
            findings,
            Redo::Index { walkers, limits },
            reads,
            Commit::Index { advanced, entries },
        )
    }

    /// A batch's findings: recorded (report only), or grouped into plans
    /// to apply.
    fn settle(
        &mut self,
        findings: Vec<Finding>,
        redo: Redo,
        reads: u32,
        commit: Commit,
    ) -> Result<Step<CheckReport>, TransitionError> {
        let walkers = match &redo {
            Redo::Index { walkers, .. } => walkers.len(),
            Redo::Records(_) => 0,
        };
        let mut unrepairable = Vec::new();
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        for finding in findings {
            match (finding.repair, self.mode) {
                (Some(repair), CheckMode::Repair) => groups
                    .entry(repair.group.clone())
                    .or_insert_with(|| Group(Vec::new()))
                    .0
                    .push((finding.problem, repair)),
                (Some(_), _) => {
                    self.report.unrepaired.push(Unrepaired {
                        problem: finding.problem.clone(),
                        reason: UnrepairedReason::ReportOnly,
                    });
                    self.report.problems.push(finding.problem);
                }
                (None, _) => unrepairable.push(finding.problem),
            }
        }
        let settle = Settle {
            redo,
            reads,
            commit,
            unrepairable,
            groups: groups
                .into_values()
                .flat_map(|Group(items)| chunked(items, MAX_PLAN_SESSIONS).into_iter().map(Group))
                .collect(),
            current: None,
            failed: Vec::new(),
            removed: vec![0; walkers],
        };
        self.apply_next(settle)
    }

    /// Applies the next plan of the batch, or finishes the batch: read it
    /// again when a guard failed (bounded), else commit.
    fn apply_next(&mut self, mut settle: Settle) -> Result<Step<CheckReport>, TransitionError> {
        if let Some(group) = settle.groups.pop_front() {
            let plan = group.plan();
            settle.current = Some(group);
            self.state = State::Settling(settle);
            return Ok(Step::Apply(plan));
        }
        if !settle.failed.is_empty() && settle.reads < MAX_BATCH_READS {
            // The batch changed: judge it afresh (its applied plans'
            // problems are recorded; everything else is read again).
            let reads = settle.reads.saturating_add(1);
            return Ok(match settle.redo {
                Redo::Records(entries) => self.read_records(entries, reads),
                Redo::Index { walkers, limits } => self.read_windows(walkers, limits, reads),
            });
        }
        for group in settle.failed {
            for (problem, _) in group.0 {
                self.report.unrepaired.push(Unrepaired {
                    problem: problem.clone(),
                    reason: UnrepairedReason::Contention {
                        attempts: settle.reads,
                    },
                });
                self.report.problems.push(problem);
            }
        }
        for problem in settle.unrepairable {
            self.unrepairable(problem);
        }
        self.report.batches += 1;
        match settle.commit {
            Commit::Records { records } => self.report.records += records,
            Commit::Index { advanced, entries } => {
                self.report.index_entries += entries;
                // Continuing walks go first, in their order.
                for (i, (mut walker, last)) in advanced.into_iter().enumerate().rev() {
                    if !last {
                        walker
                            .walk
                            .removed(settle.removed.get(i).copied().unwrap_or(0));
                        self.walkers.push_front(walker);
                    }
                }
            }
        }
        self.next()
    }

    fn on_applied(
        &mut self,
        mut settle: Settle,
        outcome: Applied,
    ) -> Result<Step<CheckReport>, TransitionError> {
        let Some(group) = settle.current.take() else {
            return out_of_sequence(OP);
        };
        match outcome {
            Applied::Done => {
                for (problem, repair) in group.0 {
                    if let Some(slot) = repair.removes_from.and_then(|w| settle.removed.get_mut(w))
                    {
                        *slot += 1;
                    }
                    self.report.repaired.push(problem.clone());
                    self.report.problems.push(problem);
                }
            }
            Applied::Violated { .. } => settle.failed.push(group),
            Applied::WrongType { key } => {
                // What touches the key cannot be written; the rest of the
                // plan can.
                let (blocked, rest): (Vec<_>, Vec<_>) =
                    group.0.into_iter().partition(|(_, r)| r.touches(&key));
                for (problem, _) in blocked {
                    self.report.unrepaired.push(Unrepaired {
                        problem: problem.clone(),
                        reason: UnrepairedReason::WrongType { key: key.clone() },
                    });
                    self.report.problems.push(problem);
                }
                if !rest.is_empty() {
                    settle.groups.push_front(Group(rest));
                }
            }
        }
        self.apply_next(settle)
    }
}

/// `items` in pieces of at most `n`.
pub(crate) fn chunked<T>(items: Vec<T>, n: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        out.push(items.by_ref().take(n.max(1)).collect());
    }
    out
}

/// The plan group of a repair about `user`'s keys: the user in the tagged
/// layout (one slot), the whole batch in the reference layout.
pub(crate) fn user_group(keys: &KeySpace, user: &UserId) -> String {
    match keys.layout() {
        Layout::Tagged => format!("u:{}", user.as_str()),
        _ => String::new(),
    }
}

fn values_of(reply: Option<Reply>) -> Result<Vec<Option<Vec<u8>>>, TransitionError> {
    match reply {
        Some(Reply::Values(values)) => Ok(values),
        _ => out_of_sequence(OP),
    }
}

impl Operation for Check {
    type Output = CheckReport;

    fn name(&self) -> &'static str {
        OP
    }

    fn resume(&mut self, input: Input) -> Result<Step<CheckReport>, TransitionError> {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Next => match input {
                Input::Start => self.next(),
                _ => out_of_sequence(OP),
            },
            State::Scan => {
                let reply = replies(input, OP)?.into_iter().next();
                let Some(scan) = self.scan.as_mut() else {
                    return out_of_sequence(OP);
                };
                let keys = scan.advance(reply, OP)?;
                self.pending.extend(keys);
                self.next()
            }
            State::RecordValues { entries, reads } => {
                self.on_record_values(entries, reads, replies(input, OP)?)
            }
            State::RecordScores(batch) => self.on_record_scores(batch, replies(input, OP)?),
            State::IndexWindows {
                walkers,
                limits,
                reads,
            } => self.on_windows(walkers, limits, reads, replies(input, OP)?),
            State::IndexRecords {
                walkers,
                limits,
                reads,
                advanced,
                members,
            } => {
                let records = values_of(replies(input, OP)?.into_iter().next())?;
                self.on_member_records(walkers, limits, reads, advanced, members, records)
            }
            State::Settling(settle) => {
                let outcome = applied(input, OP)?;
                self.on_applied(settle, outcome)
            }
            State::Owners => {
                let mut found = Vec::new();
                let reads = self.owners.resume(replies(input, OP)?, &mut found, OP)?;
                self.owner_step(found, reads)
            }
            State::Finished => out_of_sequence(OP),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MemoryKv;
    use crate::op::fixtures::{id, revocation, session, ts, user};
    use crate::op::{self, Between, Create, Policy, Revoke};
    use crate::RevokeSessionInput;

    fn create(kv: &mut MemoryKv, keys: &KeySpace, s: &Session) {
        op::run(
            kv,
            Create::new(keys, Policy::default(), s.created_at(), s.clone()),
            4,
        )
        .unwrap();
    }

    fn revoke(kv: &mut MemoryKv, keys: &KeySpace, i: &str, at: i64) {
        let input = RevokeSessionInput {
            device_session_id: id(i),
            revocation: revocation(at),
        };
        op::run(kv, Revoke::new(keys, Policy::default(), ts(at), input), 4).unwrap();
    }

    fn check(kv: &mut MemoryKv, keys: &KeySpace, mode: CheckMode, batch: usize) -> CheckReport {
        let op = Check::new(keys, mode, BatchSize::new(batch).unwrap());
        op::run(kv, op, 8).unwrap()
    }

    /// A check with its owner keys' second look, as the driver runs it
    /// once the grace has passed.
    fn check_full(
        kv: &mut MemoryKv,
        keys: &KeySpace,
        mode: CheckMode,
        batch: usize,
    ) -> CheckReport {
        let mut report = check(kv, keys, mode, batch);
        let repair = mode == CheckMode::Repair;
        if let Some(recheck) = report.owner_recheck(keys, repair, BatchSize::new(batch).unwrap()) {
            let outcome = op::run(kv, recheck, 8).unwrap();
            report.absorb_owner_recheck(keys, outcome, repair);
        }
        report
    }

    fn kinds(report: &CheckReport) -> Vec<(String, String)> {
        let mut kinds: Vec<(String, String)> = report
            .problems
            .iter()
            .map(|p| {
                let kind = match p.stray_reason() {
                    Some(reason) => format!("{}:{}", p.kind(), reason.kind()),
                    None => p.kind().to_owned(),
                };
                (kind, p.key().to_owned())
            })
            .collect();
        kinds.sort();
        kinds
    }

    /// Every plan a run applies, in order.
    fn plans_of(kv: &mut MemoryKv, mut op: Check) -> (CheckReport, Vec<Plan>) {
        let mut plans = Vec::new();
        let mut input = Input::Start;
        loop {
            input = match op.resume(input).unwrap() {
                Step::Read(reads) => Input::Replies(kv.read_all(&reads)),
                Step::Apply(plan) => {
                    let applied = kv.apply(&plan);
                    plans.push(plan);
                    Input::Applied(applied)
                }
                Step::Backoff { .. } => panic!("check never backs off"),
                Step::Done(report) => return (report, plans),
            };
        }
    }

    /// A store of `n` users with three sessions each (one revoked).
    fn populated(keys: &KeySpace, users: usize) -> MemoryKv {
        let mut kv = MemoryKv::new();
        for u in 0..users {
            for s in 0..3 {
                create(
                    &mut kv,
                    keys,
                    &session(&format!("s{u}-{s}"), &format!("u{u}"), s),
                );
            }
            revoke(&mut kv, keys, &format!("s{u}-0"), 10);
        }
        kv
    }

    #[test]
    fn a_consistent_store_is_clean_in_any_batch_size() {
        for layout in [Layout::Reference, Layout::Tagged] {
            let keys = KeySpace::default().in_layout(layout).unwrap();
            let mut kv = populated(&keys, 7);
            let before = kv.clone();
            for batch in [1, 2, 3, 5, 500] {
                let report = check(&mut kv, &keys, CheckMode::Repair, batch);
                assert!(report.is_clean(), "{layout:?} {batch}: {report:#?}");
                assert!(report.is_resolved());
                assert_eq!(report.records, 21);
                // 21 in the all-sessions indexes, 14 active (no retention:
                // no revoked index).
                assert_eq!(report.index_entries, 35, "{layout:?} {batch}");
                assert!(report.batches >= 2);
                assert_eq!(kv, before, "a clean repair writes nothing");
            }
        }
    }

    fn plant_everything(kv: &mut MemoryKv, keys: &KeySpace) {
        let u1 = user("u1");
        let all_u1 = keys.user_sessions_key(&u1);
        let active_u1 = keys.user_active_sessions_key(&u1);
        let revoked_u1 = keys.user_revoked_sessions_key(&u1);
        for (i, u, at) in [
            ("a", "u1", 1),
            ("b", "u1", 2),
            ("c", "u2", 3),
            ("d", "u1", 4),
        ] {
            create(kv, keys, &session(i, u, at));
        }
        create(kv, keys, &session("r", "u1", 5));
        revoke(kv, keys, "r", 6);
        create(kv, keys, &session("q", "u1", 7));
        revoke(kv, keys, "q", 8);
        // Garbage record, dangling member, foreign member (reference
        // layout only), revoked-in-active, misscored, missing revoked
        // entry, active in the revoked index, non-UTF-8 and invalid
        // members, a missing all-sessions index, unparsable keys, wrong
        // types.
        kv.set_raw(keys.record_key(&u1, &id("g")), "not json");
        kv.index_add_raw(&all_u1, b"ghost".to_vec(), 5.0);
        kv.index_add_raw(&active_u1, b"r".to_vec(), 1.0);
        kv.index_add_raw(&active_u1, b"b".to_vec(), 42.0);
        kv.apply(&Plan::empty().with_writes([Write::IndexRemove {
            key: revoked_u1.clone(),
            member: b"q".to_vec(),
        }]));
        kv.index_add_raw(&revoked_u1, b"a".to_vec(), 9.0);
        kv.index_add_raw(&all_u1, vec![0xff, 0xfe], 3.0);
        kv.index_add_raw(&active_u1, b"".to_vec(), 3.0);
        kv.delete_raw(&keys.user_sessions_key(&user("u2")));
        kv.set_raw(format!("{}!!!", keys.prefix(KeyKind::Record)), "x");
        kv.index_add_raw(
            format!("{}!!!", keys.prefix(KeyKind::Index(Index::All))),
            b"a".to_vec(),
            1.0,
        );
        kv.set_raw(keys.user_active_sessions_key(&user("u3")), "not an index");
        kv.index_add_raw(keys.record_key(&user("u3"), &id("z")), b"m".to_vec(), 1.0);
        if keys.layout() == Layout::Reference {
            kv.index_add_raw(&all_u1, b"c".to_vec(), 5.0);
        }
    }

    #[test]
    fn finds_every_planted_problem_and_repairs_it_batch_by_batch() {
        for layout in [Layout::Reference, Layout::Tagged] {
            let keys = KeySpace::default().in_layout(layout).unwrap();
            let mut kv = MemoryKv::new();
            plant_everything(&mut kv, &keys);
            let u1 = user("u1");
            let all_u1 = keys.user_sessions_key(&u1);
            let active_u1 = keys.user_active_sessions_key(&u1);
            let revoked_u1 = keys.user_revoked_sessions_key(&u1);
            let u2_all = keys.user_sessions_key(&user("u2"));
            let g_key = keys.record_key(&u1, &id("g"));
            let session_prefix = keys.prefix(KeyKind::Record);
            let all_prefix = keys.prefix(KeyKind::Index(Index::All));
            let mut expected: Vec<(String, String)> = [
                ("corrupt_record", g_key.as_str()),
                ("missing_index_entry", active_u1.as_str()), // b misscored
                ("missing_index_entry", u2_all.as_str()),    // c
                // q, missing from the revoked index, is not a problem:
                // sessions the Go adapter revoked are never in it.
                (
                    "stray_index_entry:inactive_index_member",
                    active_u1.as_str(),
                ),
                ("stray_index_entry:invalid_index_member", active_u1.as_str()),
                ("stray_index_entry:dangling_index_member", all_u1.as_str()),
                ("stray_index_entry:invalid_index_member", all_u1.as_str()),
                (
                    "stray_index_entry:unrevoked_index_member",
                    revoked_u1.as_str(),
                ),
                ("unparsable_key", &format!("{session_prefix}!!!")),
                ("unparsable_key", &format!("{all_prefix}!!!")),
                ("wrong_type", &keys.user_active_sessions_key(&user("u3"))),
                ("wrong_type", &keys.record_key(&user("u3"), &id("z"))),
            ]
            .into_iter()
            .map(|(k, key)| (k.to_owned(), key.to_owned()))
            .collect();
            if layout == Layout::Reference {
                expected.push((
                    "stray_index_entry:foreign_index_member".into(),
                    all_u1.clone(),
                ));
            }
            expected.sort();

            let before = kv.clone();
            let report = check(&mut kv, &keys, CheckMode::Report, 3);
            assert_eq!(kinds(&report), expected, "{layout:?}: {report:#?}");
            assert_eq!(kv, before, "report only writes nothing");
            assert!(report.repaired.is_empty());
            assert_eq!(report.remaining(), expected.len());
            assert!(report.batches > 3, "several batches: {}", report.batches);

            let repaired = check(&mut kv, &keys, CheckMode::Repair, 3);
            assert_eq!(repaired.problems, report.problems, "{layout:?}");
            let mut left: Vec<&str> = repaired
                .unrepaired
                .iter()
                .map(|u| {
                    assert_eq!(u.reason, UnrepairedReason::NotRepairable, "{u:?}");
                    u.problem.kind()
                })
                .collect();
            left.sort_unstable();
            assert_eq!(
                left,
                [
                    "corrupt_record",
                    "unparsable_key",
                    "unparsable_key",
                    "wrong_type",
                    "wrong_type"
                ]
            );
            assert_eq!(
                repaired.repaired.len() + repaired.unrepaired.len(),
                repaired.problems.len()
            );
            assert!(repaired.repaired.iter().all(Problem::is_repairable));

            // The next check finds only what a human must fix.
            let after = check(&mut kv, &keys, CheckMode::Report, 3);
            assert_eq!(after.problems.len(), 5, "{layout:?}: {after:#?}");
            assert!(after.problems.iter().all(|p| !p.is_repairable()));
            assert!(kv
                .index_range(&all_u1, None)
                .iter()
                .all(|(m, _)| std::str::from_utf8(m).is_ok()));
        }
    }

    /// Members whose record is missing, undecodable or another user's
    /// leave every index they are in (the bad bytes stay under their key),
    /// an active record reachable from neither index gets back into both,
    /// a second check finds none of what the repair fixed, and the user's
    /// revocation then goes through whole.
    #[test]
    fn a_repair_makes_every_user_revocable_whole() {
        for layout in [Layout::Reference, Layout::Tagged] {
            let keys = KeySpace::default().in_layout(layout).unwrap();
            let mut kv = populated(&keys, 2);
            let u1 = user("u1");
            let all = keys.user_sessions_key(&u1);
            let active = keys.user_active_sessions_key(&u1);
            let revoked_index = keys.user_revoked_sessions_key(&u1);
            // A member with no record, in every index.
            for key in [&all, &active, &revoked_index] {
                kv.index_add_raw(key, b"ghost".to_vec(), 1.0);
            }
            // A member whose record does not decode.
            let bad_key = keys.record_key(&u1, &id("bad"));
            kv.set_raw(&bad_key, "{not json");
            for key in [&all, &active, &revoked_index] {
                kv.index_add_raw(key, b"bad".to_vec(), 2.0);
            }
            // A member whose record is another user's: u0's session in the
            // reference layout; in the tagged layout, a record under u1's
            // tag naming u0.
            let theirs = session("theirs", "u0", 3);
            let theirs_key = keys.record_key(&u1, theirs.id());
            let theirs_bytes = crate::codec::encode(&theirs);
            kv.set_raw(&theirs_key, theirs_bytes.clone());
            for key in [&all, &active] {
                kv.index_add_raw(key, b"theirs".to_vec(), 3.0);
            }
            // An active session of u1 in neither index.
            let lost = session("lost", "u1", 4);
            create(&mut kv, &keys, &lost);
            for key in [&all, &active] {
                kv.apply(&Plan::empty().with_writes([Write::IndexRemove {
                    key: key.clone(),
                    member: b"lost".to_vec(),
                }]));
            }

            let found = check(&mut kv.clone(), &keys, CheckMode::Report, 2);
            let mut expected: Vec<(String, String)> = vec![
                ("corrupt_record".into(), bad_key.clone()),
                ("missing_index_entry".into(), all.clone()),
                ("missing_index_entry".into(), active.clone()),
                ("stray_index_entry:corrupt_record".into(), all.clone()),
                ("stray_index_entry:corrupt_record".into(), active.clone()),
                (
                    "stray_index_entry:corrupt_record".into(),
                    revoked_index.clone(),
                ),
                (
                    "stray_index_entry:dangling_index_member".into(),
                    all.clone(),
                ),
                (
                    "stray_index_entry:dangling_index_member".into(),
                    active.clone(),
                ),
                (
                    "stray_index_entry:dangling_index_member".into(),
                    revoked_index.clone(),
                ),
                ("stray_index_entry:foreign_index_member".into(), all.clone()),
                (
                    "stray_index_entry:foreign_index_member".into(),
                    active.clone(),
                ),
            ];
            if layout == Layout::Tagged {
                expected.push(("foreign_record".into(), theirs_key.clone()));
            } else {
                // u0's record, the truth, belongs in u0's indexes.
                let u0 = user("u0");
                for key in [
                    keys.user_sessions_key(&u0),
                    keys.user_active_sessions_key(&u0),
                ] {
                    expected.push(("missing_index_entry".into(), key));
                }
            }
            expected.sort();
            assert_eq!(kinds(&found), expected, "{layout:?}: {found:#?}");

            let repaired = check(&mut kv, &keys, CheckMode::Repair, 2);
            let left: Vec<&str> = repaired
                .unrepaired
                .iter()
                .map(|u| u.problem.kind())
                .collect();
            let records_left = if layout == Layout::Tagged {
                vec!["corrupt_record", "foreign_record"]
            } else {
                vec!["corrupt_record"]
            };
            assert_eq!(left, records_left, "{layout:?}: {repaired:#?}");
            // The bad bytes stay where they were.
            assert_eq!(kv.get(&bad_key), Some(&b"{not json"[..]));
            assert_eq!(kv.get(&theirs_key), Some(&theirs_bytes[..]));
            // Back in both indexes.
            for key in [&all, &active] {
                assert!(kv.index_range(key, None).iter().any(|(m, _)| m == b"lost"));
            }

            // A second check finds none of what the repair fixed.
            let after = check(&mut kv, &keys, CheckMode::Report, 2);
            for problem in &after.problems {
                assert!(
                    !repaired.repaired.contains(problem),
                    "{layout:?}: {problem:?} again"
                );
            }
            assert_eq!(
                after.problems.iter().map(Problem::kind).collect::<Vec<_>>(),
                records_left
            );

            // And the user's revocation goes through whole.
            let input = crate::RevokeUserSessionsInput {
                user_id: u1.clone(),
                revocation: revocation(100),
            };
            let report = op::run(
                &mut kv,
                crate::op::RevokeAll::new(&keys, Policy::default(), input, true),
                8,
            )
            .unwrap();
            let mut revoked: Vec<&str> = report.revoked.iter().map(|s| s.id().as_str()).collect();
            revoked.sort_unstable();
            assert_eq!(revoked, ["lost", "s1-1", "s1-2"], "{layout:?}");
            assert_eq!(kv.index_len(&active), 0);
        }
    }

    #[test]
    fn a_non_utf8_member_is_removed_and_reported_as_repaired() {
        let keys = KeySpace::default();
        let mut kv = populated(&keys, 2);
        let all = keys.user_sessions_key(&user("u1"));
        kv.index_add_raw(&all, vec![0xff, 0xfe], 1.0);
        let report = check(&mut kv, &keys, CheckMode::Repair, 3);
        assert_eq!(report.problems.len(), 1, "{report:#?}");
        assert_eq!(report.repaired, report.problems);
        assert!(report.is_resolved());
        assert_eq!(
            report.problems[0],
            Problem::StrayIndexEntry {
                index_key: all.clone(),
                member: vec![0xff, 0xfe],
                reason: StrayReason::InvalidMember,
            }
        );
        assert!(check(&mut kv, &keys, CheckMode::Report, 3).is_clean());
        assert_eq!(kv.index_len(&all), 3);
    }

    #[test]
    fn repairs_are_guarded_only_by_what_they_write_from() {
        let keys = KeySpace::default();
        let mut kv = populated(&keys, 4);
        let u1 = user("u1");
        // One missing entry and one dangling member: the plan ships one
        // record's bytes and one absence, not the batch's other records.
        kv.apply(&Plan::empty().with_writes([Write::IndexRemove {
            key: keys.user_sessions_key(&u1),
            member: b"s1-1".to_vec(),
        }]));
        kv.index_add_raw(keys.user_sessions_key(&u1), b"ghost".to_vec(), 1.0);
        let op = Check::new(&keys, CheckMode::Repair, BatchSize::new(500).unwrap());
        let (report, plans) = plans_of(&mut kv, op);
        assert_eq!(report.repaired.len(), 2, "{report:#?}");
        let guards: Vec<String> = plans
            .iter()
            .flat_map(|p| p.preconditions().map(|g| g.key().to_owned()))
            .collect();
        assert_eq!(
            guards,
            [
                keys.reference_record_key(&id("s1-1")),
                keys.reference_record_key(&id("ghost"))
            ]
        );
        assert!(check(&mut kv, &keys, CheckMode::Report, 3).is_clean());
    }

    #[test]
    fn tagged_owner_keys_missing_are_set_dangling_ones_removed_foreign_ones_reported() {
        let keys = KeySpace::default().in_layout(Layout::Tagged).unwrap();
        let mut kv = populated(&keys, 2);
        let missing = keys.owner_key(&id("s0-1")).unwrap();
        kv.delete_raw(&missing);
        // s1-2's owner key names u0, who has no such record: foreign to
        // the record, and dangling for u0.
        let foreign = keys.owner_key(&id("s1-2")).unwrap();
        kv.set_raw(&foreign, "u0");
        // An owner key without any record.
        let nobody = keys.owner_key(&id("nobody")).unwrap();
        kv.set_raw(&nobody, "u0");
        // One holding no user id: unreadable, left alone.
        let garbage = keys.owner_key(&id("garbage")).unwrap();
        kv.set_raw(&garbage, "");

        // The first look alone: dangling keys await their second look.
        let first = check(&mut kv.clone(), &keys, CheckMode::Repair, 3);
        let awaiting: Vec<&str> = first
            .unrepaired
            .iter()
            .filter(|u| u.reason == UnrepairedReason::AwaitingGrace)
            .map(|u| u.problem.key())
            .collect();
        assert_eq!(awaiting, [nobody.as_str(), foreign.as_str()]);
        assert_eq!(kv.get(&nobody), Some(&b"u0"[..]), "nothing removed yet");

        // With the second look (the grace passed).
        let report = check_full(&mut kv, &keys, CheckMode::Repair, 3);
        assert_eq!(
            kinds(&report),
            [
                ("corrupt_owner_key".to_owned(), garbage.clone()),
                ("dangling_owner_key".to_owned(), nobody.clone()),
                ("dangling_owner_key".to_owned(), foreign.clone()),
                ("foreign_owner_key".to_owned(), foreign.clone()),
                ("missing_owner_key".to_owned(), missing.clone()),
            ]
        );
        let mut repaired: Vec<&str> = report.repaired.iter().map(Problem::kind).collect();
        repaired.sort_unstable();
        assert_eq!(
            repaired,
            [
                "dangling_owner_key",
                "dangling_owner_key",
                "missing_owner_key"
            ]
        );
        assert_eq!(kv.get(&missing), Some(&b"u0"[..]));
        assert_eq!(kv.get(&nobody), None);
        assert_eq!(kv.get(&foreign), None);
        assert_eq!(kv.get(&garbage), Some(&b""[..]));
        // The record that lost its foreign owner key gets its own.
        let again = check_full(&mut kv, &keys, CheckMode::Repair, 3);
        assert_eq!(
            kinds(&again),
            [
                ("corrupt_owner_key".to_owned(), garbage.clone()),
                ("missing_owner_key".to_owned(), foreign.clone()),
            ]
        );
        assert_eq!(kv.get(&foreign), Some(&b"u1"[..]));
        let after = check_full(&mut kv, &keys, CheckMode::Report, 3);
        assert_eq!(kinds(&after), [("corrupt_owner_key".to_owned(), garbage)]);
    }

    #[test]
    fn an_owner_key_whose_record_arrives_before_the_second_look_is_no_problem() {
        // A create in flight: its owner key written, its record not yet.
        let keys = KeySpace::default().in_layout(Layout::Tagged).unwrap();
        let mut kv = populated(&keys, 1);
        let s = session("late", "u0", 5);
        kv.set_raw(keys.owner_key(s.id()).unwrap(), "u0");
        let mut report = check(&mut kv, &keys, CheckMode::Repair, 3);
        assert_eq!(report.owner_sightings.len(), 1);
        // The create finishes during the grace.
        create(&mut kv, &keys, &s);
        let recheck = report
            .owner_recheck(&keys, true, BatchSize::new(3).unwrap())
            .unwrap();
        let outcome = op::run(&mut kv, recheck, 8).unwrap();
        assert_eq!(outcome.resolved.len(), 1);
        report.absorb_owner_recheck(&keys, outcome, true);
        assert!(report.is_clean(), "{report:#?}");
        assert_eq!(kv.get(&keys.owner_key(s.id()).unwrap()), Some(&b"u0"[..]));
    }

    #[test]
    fn a_look_without_repair_removes_nothing_and_reports_what_stays_dangling() {
        let keys = KeySpace::default().in_layout(Layout::Tagged).unwrap();
        let mut kv = populated(&keys, 1);
        let nobody = keys.owner_key(&id("nobody")).unwrap();
        kv.set_raw(&nobody, "u0");
        let before = kv.clone();
        let report = check_full(&mut kv, &keys, CheckMode::Report, 3);
        assert_eq!(kv, before);
        assert_eq!(
            report
                .unrepaired
                .iter()
                .map(|u| (u.problem.kind(), u.reason.kind()))
                .collect::<Vec<_>>(),
            [("dangling_owner_key", "report_only")]
        );
    }

    #[test]
    fn a_repair_blocked_by_a_wrong_type_key_fixes_the_rest() {
        let keys = KeySpace::default();
        let mut kv = populated(&keys, 1);
        let u0 = user("u0");
        // A member whose record key holds a sorted set: its removal guard
        // (the record's absence) cannot be checked; another stray in the
        // same batch is still removed.
        kv.index_add_raw(keys.reference_record_key(&id("zz")), b"m".to_vec(), 1.0);
        kv.index_add_raw(keys.user_sessions_key(&u0), b"zz".to_vec(), 1.0);
        kv.index_add_raw(keys.user_sessions_key(&u0), b"ghost".to_vec(), 1.0);
        let report = check(&mut kv, &keys, CheckMode::Repair, 500);
        let why: Vec<(&str, &str)> = report
            .unrepaired
            .iter()
            .map(|u| (u.problem.kind(), u.reason.kind()))
            .collect();
        assert_eq!(
            why,
            [
                ("wrong_type", "not_repairable"),
                ("stray_index_entry", "wrong_type")
            ]
        );
        assert_eq!(report.repaired.len(), 1, "{report:#?}");
    }

    #[test]
    fn concurrent_writers_never_get_a_wrong_repair() {
        // After every read of the check, a concurrent client revokes,
        // removes or recreates sessions of the user being repaired (each
        // with a real atomic operation, so it adds no drift of its own).
        // Every repair write is guarded by what it was derived from, so
        // whatever the interleaving, the repair leaves only drift it
        // reported as unrepaired (contention), never drift it caused.
        for layout in [Layout::Reference, Layout::Tagged] {
            let keys = KeySpace::default().in_layout(layout).unwrap();
            for seed in 0..40u64 {
                let mut kv = populated(&keys, 4);
                let u1 = user("u1");
                let indexes = [
                    keys.user_sessions_key(&u1),
                    keys.user_active_sessions_key(&u1),
                    keys.user_revoked_sessions_key(&u1),
                ];
                // Drift for the repair to fix: u1's sessions in no index.
                for s in 0..3 {
                    for key in &indexes {
                        kv.apply(&Plan::empty().with_writes([Write::IndexRemove {
                            key: key.clone(),
                            member: format!("s1-{s}").into_bytes(),
                        }]));
                    }
                }
                kv.index_add_raw(
                    keys.user_active_sessions_key(&user("u2")),
                    b"s2-0".to_vec(),
                    1.0,
                );
                let mut step = seed.wrapping_add(1);
                let mut at = 20;
                let client_keys = keys.clone();
                let op = Check::new(&keys, CheckMode::Repair, BatchSize::new(3).unwrap());
                // The oracle: the problems of the state (a clean check
                // with nobody interfering) never gain one across an apply
                // of the repair; the client's own operations never add
                // any either.
                let problems_of = |kv: &MemoryKv| {
                    let mut snapshot = kv.clone();
                    check(&mut snapshot, &client_keys, CheckMode::Report, 500).problems
                };
                let mut known = problems_of(&kv);
                let mut applies = 0;
                let report = op::run_with(&mut kv, op, 8, |kv, between| {
                    let now = problems_of(kv);
                    let new: Vec<&Problem> = now.iter().filter(|p| !known.contains(p)).collect();
                    assert!(
                        new.is_empty(),
                        "{layout:?} seed {seed}: after a {between:?} the state gained {new:?}"
                    );
                    known = now;
                    if between != Between::Read {
                        applies += 1;
                        return;
                    }
                    step = step
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let target = format!("s1-{}", (step >> 33) % 3);
                    at += 1;
                    match (step >> 40) % 4 {
                        0 => {
                            let input = RevokeSessionInput {
                                device_session_id: id(&target),
                                revocation: revocation(at),
                            };
                            let revoke =
                                Revoke::new(&client_keys, Policy::default(), ts(at), input);
                            let _ = op::run(kv, revoke, 4);
                        }
                        1 => {
                            // Remove the session whole (record, entries,
                            // owner key), as an expiry does.
                            let record_key = client_keys.record_key(&u1, &id(&target));
                            let mut writes = vec![Write::Delete { key: record_key }];
                            if let Some(owner) = client_keys.owner_key(&id(&target)) {
                                writes.push(Write::Delete { key: owner });
                            }
                            for key in [
                                client_keys.user_sessions_key(&u1),
                                client_keys.user_active_sessions_key(&u1),
                                client_keys.user_revoked_sessions_key(&u1),
                            ] {
                                writes.push(Write::IndexRemove {
                                    key,
                                    member: target.as_bytes().to_vec(),
                                });
                            }
                            assert_eq!(kv.apply(&Plan::empty().with_writes(writes)), Applied::Done);
                        }
                        2 => {
                            let _ = op::run(
                                kv,
                                Create::new(
                                    &client_keys,
                                    Policy::default(),
                                    ts(at),
                                    session(&target, "u1", at),
                                ),
                                4,
                            );
                        }
                        _ => {}
                    }
                    // The client's operations never add a problem.
                    let now = problems_of(kv);
                    assert!(
                        now.iter().all(|p| known.contains(p)),
                        "{layout:?} seed {seed}: the client added {now:?}"
                    );
                    known = now;
                })
                .unwrap();
                assert!(applies > 0);
                assert_eq!(
                    report.repaired.len() + report.unrepaired.len(),
                    report.problems.len()
                );
                let after = check(&mut kv, &keys, CheckMode::Report, 3);
                for problem in &after.problems {
                    assert!(
                        report.unrepaired.iter().any(|u| &u.problem == problem
                            && matches!(u.reason, UnrepairedReason::Contention { .. })),
                        "{layout:?} seed {seed}: left {problem:?}; repair said {report:#?}"
                    );
                }
            }
        }
    }
}
