//! The workloads that use up what they touch: `revoke` and `revoke_all`
//! (and their `*_reference` forms). They run in rounds: preload a batch of
//! fresh sessions (untimed), let the workers consume it timed, repeat until
//! the timed total reaches the duration; each batch is sized by the rate
//! the last one measured.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use authsession_core::{
    DeviceSessionId, Revocation, RevokeSessionInput, RevokeUserSessionsInput, UserId,
};
use authsession_driver::{SessionAdmin, SessionStore};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom as _;

use super::load::{load_users, preload, Fixtures, Loaded};
use super::runner::{fair_turn, run_adapters, run_workers, Stats, MAX_BATCH_SESSIONS};
use super::server::Adapters;
use super::{interrupted, running, Bench, BenchOp, Measured};
use crate::reference::GoAdapter;
use crate::LabError;

/// What one op of a consuming workload revokes.
enum Target {
    User(UserId),
    Session(DeviceSessionId),
}

/// One round's distinct targets in random order, taken one at a time by
/// whichever worker asks next.
struct Targets {
    items: Vec<Target>,
    cursor: AtomicUsize,
}

impl Targets {
    /// Users (`revoke_all`) or sessions (`revoke`) of `loaded`, shuffled.
    fn of(loaded: &Loaded, all: bool, rng: &mut SmallRng) -> Self {
        let mut items: Vec<Target> = if all {
            loaded.users.iter().cloned().map(Target::User).collect()
        } else {
            loaded.ids.iter().cloned().map(Target::Session).collect()
        };
        items.shuffle(rng);
        Self {
            items,
            cursor: AtomicUsize::new(0),
        }
    }

    fn next(&self) -> Option<&Target> {
        self.items.get(self.cursor.fetch_add(1, Ordering::Relaxed))
    }
}

/// `revoke` / `revoke_all` (and their reference forms, with `adapters`):
/// rounds of (preload a batch, consume it timed).
pub(crate) async fn in_rounds<S: SessionStore + SessionAdmin + 'static>(
    bench: &Bench<'_, S>,
    adapters: Option<&Adapters>,
    rng: &mut SmallRng,
) -> Result<Measured, LabError> {
    let params = bench.params;
    let all = params.op.store_op() == BenchOp::RevokeAll;
    let per_item = if all {
        params.sessions_per_user.max(1)
    } else {
        1
    };
    let max_items = (MAX_BATCH_SESSIONS / per_item).max(1);
    // The first round is small and gives the rate the next ones are sized by.
    let mut items = (params.concurrency * 64).clamp(256, max_items);
    let mut total = Stats::new()?;
    let mut timed = Duration::ZERO;
    let mut preloaded = 0;
    let mut round = 0usize;
    while timed < params.duration && !interrupted() {
        let tag = format!("r{round}-");
        round += 1;
        let loaded = if all {
            let shared = &bench.shared;
            load_users(&shared.store, &shared.fixtures, &tag, items, per_item, rng).await?
        } else {
            load_sessions(bench, &tag, items, rng).await?
        };
        preloaded += loaded.ids.len();
        let targets = Arc::new(Targets::of(&loaded, all, rng));
        let deadline = Instant::now() + (params.duration - timed);
        let (stats, elapsed) = match adapters {
            Some(adapters) => consume_reference(bench, adapters, targets, deadline).await?,
            None => consume(bench, targets, deadline).await?,
        };
        let done = stats.ops + stats.errors.values().sum::<u64>();
        total.merge(stats)?;
        timed += elapsed;
        // Size the next round to last the remaining time at this rate
        // (with a margin), within the memory bound.
        let remaining = params.duration.saturating_sub(timed).as_secs_f64();
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-6);
        items = ((rate * remaining * 1.2) as usize).clamp(256, max_items);
    }
    Ok(Measured::timed((total, timed), preloaded))
}

/// `revoke`'s round: `items` sessions spread over the users.
async fn load_sessions<S: SessionStore + SessionAdmin + 'static>(
    bench: &Bench<'_, S>,
    tag: &str,
    items: usize,
    rng: &mut SmallRng,
) -> Result<Loaded, LabError> {
    let users = bench.params.users.max(1);
    let mut loaded = Loaded {
        users: Vec::new(),
        ids: Vec::with_capacity(items),
    };
    let mut sessions = Vec::with_capacity(items);
    let user_ids: Vec<UserId> = (0..users)
        .map(|u| UserId::parse(format!("u{u}")))
        .collect::<Result<_, _>>()?;
    for (i, user) in (0..items).zip(user_ids.iter().cycle()) {
        let session = bench
            .shared
            .fixtures
            .session(format!("{tag}s{i}"), user, rng)?;
        loaded.ids.push(session.id().clone());
        sessions.push(session);
    }
    preload(&bench.shared.store, sessions).await?;
    Ok(loaded)
}

/// One revocation a consuming workload times.
enum Call {
    Session(RevokeSessionInput),
    User(RevokeUserSessionsInput),
}

impl Call {
    fn of(target: &Target, revocation: Revocation) -> Self {
        match target {
            Target::User(user) => Call::User(RevokeUserSessionsInput {
                user_id: user.clone(),
                revocation,
            }),
            Target::Session(id) => Call::Session(RevokeSessionInput {
                device_session_id: id.clone(),
                revocation,
            }),
        }
    }
}

/// What a consuming worker revokes through: the store, or a Go adapter.
/// Answers the outcome, or the error's kind.
trait Revoker {
    /// Whether the worker must let the others run now and then: the
    /// in-memory store never suspends (see [`fair_turn`]); the Go adapters
    /// never took that turn.
    const TAKES_TURNS: bool;

    fn revoke_call(
        &mut self,
        call: &Call,
    ) -> impl Future<Output = Result<&'static str, &'static str>> + Send;
}

impl<S: SessionStore + SessionAdmin> Revoker for Arc<S> {
    const TAKES_TURNS: bool = true;

    async fn revoke_call(&mut self, call: &Call) -> Result<&'static str, &'static str> {
        let kind = |e: authsession_driver::Error| e.kind().as_str();
        match call {
            Call::Session(input) => self.revoke(input).await.map(|o| o.as_str()).map_err(kind),
            Call::User(input) => self
                .revoke_all_by_user_id(input)
                .await
                .map(|o| o.as_str())
                .map_err(kind),
        }
    }
}

impl Revoker for GoAdapter {
    const TAKES_TURNS: bool = false;

    async fn revoke_call(&mut self, call: &Call) -> Result<&'static str, &'static str> {
        match call {
            Call::Session(input) => self.revoke(input).await.map(|o| o.as_str()),
            Call::User(input) => self.revoke_all(input).await.map(|o| o.as_str()),
        }
        .map_err(|e| e.kind())
    }
}

/// One worker's share of a round: the next target until none is left or
/// the time is up, each revoked (timed) through `via`.
async fn consume_targets<R: Revoker>(
    via: &mut R,
    fixtures: &Fixtures,
    targets: &Targets,
    deadline: Instant,
    stats: &mut Stats,
) -> Result<(), LabError> {
    while running(deadline) {
        if R::TAKES_TURNS {
            fair_turn().await;
        }
        let Some(target) = targets.next() else {
            break;
        };
        let call = Call::of(target, fixtures.revocation()?);
        let t = Instant::now();
        let r = via.revoke_call(&call).await;
        if let Some(outcome) = stats.record_kind(t, r) {
            stats.outcome(outcome);
        }
    }
    Ok(())
}

/// One timed round on the store.
async fn consume<S: SessionStore + SessionAdmin + 'static>(
    bench: &Bench<'_, S>,
    targets: Arc<Targets>,
    deadline: Instant,
) -> Result<(Stats, Duration), LabError> {
    run_workers(bench.params.concurrency, bench.server, |_, mut stats| {
        let (mut shared, targets) = (bench.shared.clone(), targets.clone());
        async move {
            let via = &mut shared.store;
            consume_targets(via, &shared.fixtures, &targets, deadline, &mut stats).await?;
            Ok(stats)
        }
    })
    .await
}

/// One timed round on the Go adapters.
async fn consume_reference<S>(
    bench: &Bench<'_, S>,
    adapters: &Adapters,
    targets: Arc<Targets>,
    deadline: Instant,
) -> Result<(Stats, Duration), LabError> {
    run_adapters(adapters, bench.server, |_, mut adapter, mut stats| {
        let (fixtures, targets) = (bench.shared.fixtures.clone(), targets.clone());
        async move {
            consume_targets(&mut adapter, &fixtures, &targets, deadline, &mut stats).await?;
            Ok((adapter, stats))
        }
    })
    .await
}
