//! The workloads that leave the data as they found it, or only add to it:
//! `get`, `count`, `list` over the loaded users, and `create` (each with its
//! `*_reference` form on the Go adapters).

use std::sync::Arc;
use std::time::Instant;

use authsession_core::UserId;
use authsession_driver::{SessionAdmin, SessionStore};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::load::{load_all_users, Loaded};
use super::runner::{fair_turn, pick, run_adapters, run_workers, seed};
use super::server::Adapters;
use super::{running, Bench, BenchOp, Measured};
use crate::LabError;

/// The loaded users and sessions, and when the timed phase ends.
async fn load<S: SessionStore + SessionAdmin + 'static>(
    bench: &Bench<'_, S>,
    rng: &mut SmallRng,
) -> Result<(Arc<Loaded>, Instant), LabError> {
    let shared = &bench.shared;
    let loaded = load_all_users(&shared.store, &shared.fixtures, bench.params, rng).await?;
    Ok((Arc::new(loaded), Instant::now() + bench.params.duration))
}

/// `get`, `count`, `list` of random loaded sessions and users.
pub(crate) async fn reads<S: SessionStore + SessionAdmin + 'static>(
    bench: &Bench<'_, S>,
    rng: &mut SmallRng,
) -> Result<Measured, LabError> {
    let (loaded, deadline) = load(bench, rng).await?;
    let op = bench.params.op;
    let timed = run_workers(
        bench.params.concurrency,
        bench.server,
        |worker, mut stats| {
            let (store, loaded) = (bench.shared.store.clone(), loaded.clone());
            async move {
                let mut rng = SmallRng::seed_from_u64(seed(worker, 2));
                while running(deadline) {
                    fair_turn().await;
                    match op {
                        BenchOp::Get => {
                            let id = pick(&mut rng, &loaded.ids)?;
                            let t = Instant::now();
                            let r = store.get(id).await;
                            stats.record(t, r);
                        }
                        BenchOp::Count => {
                            let user = pick(&mut rng, &loaded.users)?;
                            let t = Instant::now();
                            let r = store.count_active_by_user_id(user).await;
                            stats.record(t, r);
                        }
                        _ => {
                            let user = pick(&mut rng, &loaded.users)?;
                            let t = Instant::now();
                            let r = store.list_by_user_id(user).await;
                            stats.record(t, r);
                        }
                    }
                }
                Ok(stats)
            }
        },
    )
    .await?;
    Ok(Measured::timed(timed, loaded.ids.len()))
}

/// `get_reference`, `list_reference`: [`reads`] on the Go adapters.
pub(crate) async fn reads_reference<S: SessionStore + SessionAdmin + 'static>(
    bench: &Bench<'_, S>,
    adapters: &Adapters,
    rng: &mut SmallRng,
) -> Result<Measured, LabError> {
    let (loaded, deadline) = load(bench, rng).await?;
    let op = bench.params.op;
    let timed = run_adapters(adapters, bench.server, |worker, mut adapter, mut stats| {
        let loaded = loaded.clone();
        async move {
            let mut rng = SmallRng::seed_from_u64(seed(worker, 2));
            while running(deadline) {
                if op == BenchOp::GetReference {
                    let id = pick(&mut rng, &loaded.ids)?;
                    let t = Instant::now();
                    let r = adapter.get(id).await;
                    stats.record_go(t, r);
                } else {
                    let user = pick(&mut rng, &loaded.users)?;
                    let t = Instant::now();
                    let r = adapter.list(user).await;
                    stats.record_go(t, r);
                }
            }
            Ok((adapter, stats))
        }
    })
    .await?;
    Ok(Measured::timed(timed, loaded.ids.len()))
}

/// The users `create` spreads new sessions over, and when the timed phase
/// ends.
fn create_users<S>(bench: &Bench<'_, S>) -> Result<(Arc<Vec<UserId>>, Instant), LabError> {
    let users = (0..bench.params.users)
        .map(|u| UserId::parse(format!("u{u}")))
        .collect::<Result<_, _>>()?;
    Ok((Arc::new(users), Instant::now() + bench.params.duration))
}

/// `create` of new sessions for random users.
pub(crate) async fn creates<S: SessionStore + SessionAdmin + 'static>(
    bench: &Bench<'_, S>,
) -> Result<Measured, LabError> {
    let (users, deadline) = create_users(bench)?;
    let timed = run_workers(
        bench.params.concurrency,
        bench.server,
        |worker, mut stats| {
            let (shared, users) = (bench.shared.clone(), users.clone());
            async move {
                let mut rng = SmallRng::seed_from_u64(seed(worker, 3));
                let mut next = 0u64;
                while running(deadline) {
                    fair_turn().await;
                    let user = pick(&mut rng, &users)?;
                    let session =
                        shared
                            .fixtures
                            .session(format!("w{worker}-c{next}"), user, &mut rng)?;
                    next += 1;
                    let t = Instant::now();
                    let r = shared.store.create(&session).await;
                    stats.record(t, r);
                }
                Ok(stats)
            }
        },
    )
    .await?;
    Ok(Measured::timed(timed, 0))
}

/// `create_reference`: [`creates`] on the Go adapters.
pub(crate) async fn creates_reference<S: SessionStore + SessionAdmin + 'static>(
    bench: &Bench<'_, S>,
    adapters: &Adapters,
) -> Result<Measured, LabError> {
    let (users, deadline) = create_users(bench)?;
    let timed = run_adapters(adapters, bench.server, |worker, mut adapter, mut stats| {
        let (users, fixtures) = (users.clone(), bench.shared.fixtures.clone());
        async move {
            let mut rng = SmallRng::seed_from_u64(seed(worker, 3));
            let mut next = 0u64;
            while running(deadline) {
                let user = pick(&mut rng, &users)?;
                let session = fixtures.session(format!("w{worker}-c{next}"), user, &mut rng)?;
                next += 1;
                let t = Instant::now();
                let r = adapter.create(&session).await;
                stats.record_go(t, r);
            }
            Ok((adapter, stats))
        }
    })
    .await?;
    Ok(Measured::timed(timed, 0))
}
