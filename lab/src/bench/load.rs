//! What a workload runs against: the fixed values of every session and
//! revocation, and the users and sessions preloaded (untimed) before it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use authsession_core::{
    ClientPublicKey, DeviceSessionId, Revocation, RevokeActorId, RevokeActorType, RevokeReasonCode,
    Session, UserId,
};
use authsession_driver::{Clock, Error, SessionAdmin, SessionStore};
use rand::rngs::SmallRng;
use rand::RngExt as _;

use super::runner::PRELOAD_PARALLELISM;
use super::{interrupted, BenchParams};
use crate::LabError;

/// Fixed values every bench session and revocation uses.
pub(crate) struct Fixtures {
    clock: Clock,
    reason: RevokeReasonCode,
    actor_type: RevokeActorType,
    actor_id: RevokeActorId,
}

impl Fixtures {
    pub(crate) fn new() -> Result<Self, LabError> {
        Ok(Self {
            clock: Clock::system(),
            reason: RevokeReasonCode::parse("bench")?,
            actor_type: RevokeActorType::parse("bench")?,
            actor_id: RevokeActorId::parse("authsession-bench")?,
        })
    }

    pub(crate) fn session(
        &self,
        id: String,
        user: &UserId,
        rng: &mut SmallRng,
    ) -> Result<Session, LabError> {
        let mut key = [0u8; ClientPublicKey::LEN];
        rng.fill(&mut key[..]);
        Ok(Session::active(
            DeviceSessionId::parse(id)?,
            user.clone(),
            ClientPublicKey::from(key),
            self.clock.now(),
        )?)
    }

    pub(crate) fn revocation(&self) -> Result<Revocation, LabError> {
        Ok(Revocation::new(
            self.clock.now(),
            self.reason.clone(),
            self.actor_type.clone(),
            self.actor_id.clone(),
        )?)
    }
}

/// Creates `sessions` with bounded parallelism; any failure aborts the run.
pub(crate) async fn preload<S: SessionStore + SessionAdmin + 'static>(
    store: &Arc<S>,
    sessions: Vec<Session>,
) -> Result<(), LabError> {
    let sessions = Arc::new(sessions);
    let cursor = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..PRELOAD_PARALLELISM.min(sessions.len()) {
        let (store, sessions, cursor) = (store.clone(), sessions.clone(), cursor.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(session) = sessions
                .get(cursor.fetch_add(1, Ordering::Relaxed))
                .filter(|_| !interrupted())
            {
                store.create(session).await?;
            }
            Ok::<(), Error>(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| LabError::new("bench", format!("preload task failed: {e}")))?
            .map_err(|e| LabError::from(e).context("preloading sessions"))?;
    }
    Ok(())
}

/// Users `u0..uU` each with sessions `u{u}-s{k}`, all active.
pub(crate) struct Loaded {
    pub(crate) users: Vec<UserId>,
    pub(crate) ids: Vec<DeviceSessionId>,
}

/// The U × K sessions the read-heavy workloads (get, count, list, mixed)
/// run against.
pub(crate) async fn load_all_users<S: SessionStore + SessionAdmin + 'static>(
    store: &Arc<S>,
    fixtures: &Fixtures,
    params: &BenchParams,
    rng: &mut SmallRng,
) -> Result<Loaded, LabError> {
    load_users(
        store,
        fixtures,
        "",
        params.users,
        params.sessions_per_user,
        rng,
    )
    .await
}

pub(crate) async fn load_users<S: SessionStore + SessionAdmin + 'static>(
    store: &Arc<S>,
    fixtures: &Fixtures,
    tag: &str,
    users: usize,
    per_user: usize,
    rng: &mut SmallRng,
) -> Result<Loaded, LabError> {
    let mut loaded = Loaded {
        users: Vec::with_capacity(users),
        ids: Vec::with_capacity(users * per_user),
    };
    let mut sessions = Vec::with_capacity(users * per_user);
    for u in 0..users {
        let user = UserId::parse(format!("{tag}u{u}"))?;
        for k in 0..per_user {
            let session = fixtures.session(format!("{tag}u{u}-s{k}"), &user, rng)?;
            loaded.ids.push(session.id().clone());
            sessions.push(session);
        }
        loaded.users.push(user);
    }
    preload(store, sessions).await?;
    Ok(loaded)
}
