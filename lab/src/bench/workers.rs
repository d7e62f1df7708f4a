//! The workloads whose workers each do several things: `mixed` (a read-
//! heavy blend), `contention` (every worker on one user, then `check`) and
//! `churn` (steady create + revoke under the limit and retention).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use authsession_core::{DeviceSessionId, RevokeSessionInput, RevokeUserSessionsInput, UserId};
use authsession_driver::{CheckMode, ErrorKind, SessionAdmin, SessionStore};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom as _;
use rand::{RngExt as _, SeedableRng};

use super::load::{load_all_users, load_users, Loaded};
use super::runner::{fair_turn, pick, run_workers, seed, Stats};
use super::server::Server;
use super::{running, Bench, Invariants, Measured, Shared};
use crate::LabError;

/// Distinct loaded sessions in random order, for `mixed`'s revokes.
struct Pool {
    ids: Vec<DeviceSessionId>,
    cursor: AtomicUsize,
}

impl Pool {
    fn next(&self) -> Option<&DeviceSessionId> {
        self.ids.get(self.cursor.fetch_add(1, Ordering::Relaxed))
    }
}

/// `mixed` over the loaded users.
pub(crate) async fn mixed<S: SessionStore + SessionAdmin + 'static>(
    bench: &Bench<'_, S>,
    rng: &mut SmallRng,
) -> Result<Measured, LabError> {
    let shared = &bench.shared;
    let loaded = load_all_users(&shared.store, &shared.fixtures, bench.params, rng).await?;
    let loaded = Arc::new(loaded);
    // Revokes take distinct loaded sessions in random order.
    let mut ids = loaded.ids.clone();
    ids.shuffle(rng);
    let pool = Arc::new(Pool {
        ids,
        cursor: AtomicUsize::new(0),
    });
    let deadline = Instant::now() + bench.params.duration;
    let timed = run_workers(bench.params.concurrency, bench.server, |worker, stats| {
        let (shared, loaded, pool) = (shared.clone(), loaded.clone(), pool.clone());
        mixed_worker(shared, loaded, pool, worker, deadline, stats)
    })
    .await?;
    Ok(Measured::timed(timed, loaded.ids.len()))
}

/// `contention` on one user, then whether records and indexes agree.
pub(crate) async fn contention<S: SessionStore + SessionAdmin + 'static>(
    bench: &Bench<'_, S>,
) -> Result<Measured, LabError> {
    let user = Arc::new(UserId::parse("contended-user")?);
    let recent: Arc<Mutex<VecDeque<DeviceSessionId>>> = Arc::default();
    let creators = bench.params.creators;
    let deadline = Instant::now() + bench.params.duration;
    let timed = run_workers(bench.params.concurrency, bench.server, |worker, stats| {
        let (shared, user, recent) = (bench.shared.clone(), user.clone(), recent.clone());
        let creator = worker < creators;
        contention_worker(shared, user, recent, worker, creator, deadline, stats)
    })
    .await?;
    let mut measured = Measured::timed(timed, 0);
    measured.invariants = Some(invariants(&*bench.shared.store, &user).await?);
    Ok(measured)
}

/// Record/index agreement (from `check`) and `user`'s active sessions.
async fn invariants<S: SessionStore + SessionAdmin>(
    store: &S,
    user: &UserId,
) -> Result<Invariants, LabError> {
    let report = store
        .check(CheckMode::Report)
        .await
        .map_err(|e| LabError::from(e).context("check"))?;
    let active = store
        .count_active_by_user_id(user)
        .await
        .map_err(|e| LabError::from(e).context("count"))?;
    let mut problem_kinds = BTreeMap::new();
    for problem in &report.problems {
        *problem_kinds.entry(problem.kind()).or_default() += 1;
    }
    Ok(Invariants {
        consistent: report.problems.is_empty(),
        records: report.records,
        index_entries: report.index_entries,
        problems: report.problems.len(),
        problem_kinds,
        active_sessions: active,
    })
}

/// `churn` from the steady state, with the server's footprint around it.
pub(crate) async fn churn<S: SessionStore + SessionAdmin + 'static>(
    bench: &Bench<'_, S>,
    rng: &mut SmallRng,
) -> Result<Measured, LabError> {
    let params = bench.params;
    // Start in the steady state: each user holds K sessions (at most the
    // limit, so a `reject` limit does not fail the preload).
    let per_user = params
        .session_limit
        .map_or(params.sessions_per_user, |max| {
            params
                .sessions_per_user
                .min(usize::try_from(max).unwrap_or(usize::MAX))
        });
    let shared = &bench.shared;
    let loaded = load_users(
        &shared.store,
        &shared.fixtures,
        "",
        params.users,
        per_user,
        rng,
    )
    .await?;
    let loaded = Arc::new(loaded);
    let start = bench.server.map(Server::footprint).transpose()?;
    let deadline = Instant::now() + params.duration;
    let timed = run_workers(params.concurrency, bench.server, |worker, stats| {
        churn_worker(shared.clone(), loaded.clone(), worker, deadline, stats)
    })
    .await?;
    let end = bench.server.map(Server::footprint).transpose()?;
    let mut measured = Measured::timed(timed, loaded.ids.len());
    measured.footprints = start.zip(end);
    Ok(measured)
}

/// `churn`: odd ops create a session for a random user, even ones revoke
/// the oldest session this worker created (already revoked by the limit,
/// or gone with retention, are expected answers, not errors).
async fn churn_worker<S: SessionStore + SessionAdmin>(
    Shared { store, fixtures }: Shared<S>,
    loaded: Arc<Loaded>,
    worker: usize,
    deadline: Instant,
    mut stats: Stats,
) -> Result<Stats, LabError> {
    let mut rng = SmallRng::seed_from_u64(seed(worker, 6));
    let mut mine: VecDeque<DeviceSessionId> = VecDeque::new();
    let mut n = 0u64;
    while running(deadline) {
        fair_turn().await;
        n += 1;
        let oldest = if n.is_multiple_of(2) {
            mine.pop_front()
        } else {
            None
        };
        match oldest {
            None => {
                let user = pick(&mut rng, &loaded.users)?;
                let session = fixtures.session(format!("w{worker}-ch{n}"), user, &mut rng)?;
                let t = Instant::now();
                match store.create(&session).await {
                    Ok(created) => {
                        stats.ok(t);
                        stats.outcome("created");
                        for _ in &created.evicted {
                            stats.outcome("evicted");
                        }
                        mine.push_back(session.id().clone());
                    }
                    Err(e) if e.kind() == ErrorKind::SessionLimit => {
                        stats.ok(t);
                        stats.outcome("rejected_by_limit");
                    }
                    Err(e) => {
                        stats.record(t, Err::<(), _>(e));
                    }
                }
            }
            Some(id) => {
                let input = RevokeSessionInput {
                    device_session_id: id,
                    revocation: fixtures.revocation()?,
                };
                let t = Instant::now();
                match store.revoke(&input).await {
                    Ok(outcome) => {
                        stats.ok(t);
                        stats.outcome(outcome.as_str());
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        stats.ok(t);
                        stats.outcome("gone");
                    }
                    Err(e) => {
                        stats.record(t, Err::<(), _>(e));
                    }
                }
            }
        }
    }
    Ok(stats)
}

/// `mixed`: 50% get, 20% count, 10% list, 10% create, 8% revoke, 2%
/// revoke_all.
async fn mixed_worker<S: SessionStore + SessionAdmin>(
    Shared { store, fixtures }: Shared<S>,
    loaded: Arc<Loaded>,
    pool: Arc<Pool>,
    worker: usize,
    deadline: Instant,
    mut stats: Stats,
) -> Result<Stats, LabError> {
    let mut rng = SmallRng::seed_from_u64(seed(worker, 4));
    let mut created: Vec<DeviceSessionId> = Vec::new();
    let mut next = 0u64;
    while running(deadline) {
        fair_turn().await;
        let user = pick(&mut rng, &loaded.users)?;
        match rng.random_range(0..100u32) {
            0..50 => {
                let id = pick(&mut rng, &loaded.ids)?;
                let t = Instant::now();
                let r = store.get(id).await;
                stats.record(t, r);
            }
            50..70 => {
                let t = Instant::now();
                let r = store.count_active_by_user_id(user).await;
                stats.record(t, r);
            }
            70..80 => {
                let t = Instant::now();
                let r = store.list_by_user_id(user).await;
                stats.record(t, r);
            }
            80..90 => {
                let session = fixtures.session(format!("m{worker}-{next}"), user, &mut rng)?;
                next += 1;
                let t = Instant::now();
                let r = store.create(&session).await;
                if stats.record(t, r).is_some() {
                    created.push(session.id().clone());
                }
            }
            90..98 => {
                // A distinct loaded session while any is left, then one this
                // worker created, then (rarely) a random loaded one.
                let id = match pool.next() {
                    Some(id) => id.clone(),
                    None => match created.pop() {
                        Some(id) => id,
                        None => pick(&mut rng, &loaded.ids)?.clone(),
                    },
                };
                let input = RevokeSessionInput {
                    device_session_id: id,
                    revocation: fixtures.revocation()?,
                };
                let t = Instant::now();
                let r = store.revoke(&input).await;
                if let Some(outcome) = stats.record(t, r) {
                    stats.outcome(outcome.as_str());
                }
            }
            _ => {
                let input = RevokeUserSessionsInput {
                    user_id: user.clone(),
                    revocation: fixtures.revocation()?,
                };
                let t = Instant::now();
                let r = store.revoke_all_by_user_id(&input).await;
                if let Some(outcome) = stats.record(t, r) {
                    stats.outcome(outcome.as_str());
                }
            }
        }
    }
    Ok(stats)
}

/// How many recently created ids revokers may pick from.
const RECENT_CAP: usize = 256;

/// `contention`: a creator creates sessions of the one user; the others
/// revoke all of them (and every 4th op one recently created session).
async fn contention_worker<S: SessionStore + SessionAdmin>(
    Shared { store, fixtures }: Shared<S>,
    user: Arc<UserId>,
    recent: Arc<Mutex<VecDeque<DeviceSessionId>>>,
    worker: usize,
    creator: bool,
    deadline: Instant,
    mut stats: Stats,
) -> Result<Stats, LabError> {
    let mut rng = SmallRng::seed_from_u64(seed(worker, 5));
    let mut n = 0u64;
    while running(deadline) {
        fair_turn().await;
        n += 1;
        if creator {
            let session = fixtures.session(format!("c{worker}-{n}"), &user, &mut rng)?;
            let t = Instant::now();
            let r = store.create(&session).await;
            if stats.record(t, r).is_some() {
                stats.outcome("created");
                let mut queue = recent.lock().unwrap_or_else(PoisonError::into_inner);
                if queue.len() == RECENT_CAP {
                    queue.pop_front();
                }
                queue.push_back(session.id().clone());
            }
            continue;
        }
        let target = if n.is_multiple_of(4) {
            recent
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_back()
        } else {
            None
        };
        let revocation = fixtures.revocation()?;
        match target {
            Some(id) => {
                let input = RevokeSessionInput {
                    device_session_id: id,
                    revocation,
                };
                let t = Instant::now();
                let r = store.revoke(&input).await;
                if let Some(outcome) = stats.record(t, r) {
                    stats.outcome(outcome.as_str());
                }
            }
            None => {
                let input = RevokeUserSessionsInput {
                    user_id: (*user).clone(),
                    revocation,
                };
                let t = Instant::now();
                let r = store.revoke_all_by_user_id(&input).await;
                if let Some(outcome) = stats.record(t, r) {
                    stats.outcome(outcome.as_str());
                }
            }
        }
    }
    Ok(stats)
}
