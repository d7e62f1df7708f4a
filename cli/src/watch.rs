//! `authsession watch ID…`: each session's state now, then a line per
//! change, driven by the server's invalidations (the near cache's tracking
//! connection): nothing is sent to the server while nothing changes.

use std::process::ExitCode;
use std::time::Duration;

use authsession_core::{DeviceSessionId, Session};
use authsession_driver::{Backend, ErrorKind, SessionStore, Store};
use serde::Serialize;

use crate::args::{GlobalArgs, DEFAULT_REDIS_URL};
use crate::dispatch::{parse_id, runtime};
use crate::duration;
use crate::error::CliError;
use crate::output;
use crate::target::{OnStore, StoreTarget};

/// One line of `watch`.
#[derive(Debug, Serialize)]
struct WatchLine<'a> {
    id: &'a str,
    status: &'static str,
    session: Option<&'a Session>,
}

/// What `get` says about one id.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Found(Session),
    NotFound,
}

impl State {
    fn status(&self) -> &'static str {
        match self {
            State::Found(s) if s.revocation().is_some() => "revoked",
            State::Found(_) => "active",
            State::NotFound => "not_found",
        }
    }

    fn finished(&self) -> bool {
        self.status() != "active"
    }
}

async fn state<B: Backend>(store: &Store<B>, id: &DeviceSessionId) -> Result<State, CliError> {
    match store.get(id).await {
        Ok(session) => Ok(State::Found(session)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(State::NotFound),
        Err(e) => Err(e.into()),
    }
}

fn print(id: &DeviceSessionId, state: &State) -> Result<(), CliError> {
    let session = match state {
        State::Found(s) => Some(s),
        State::NotFound => None,
    };
    output::print(&WatchLine {
        id: id.as_str(),
        status: state.status(),
        session,
    })
}

/// Watches `ids` on `store` (which has a near cache) until each is revoked
/// or gone (exit 0), or `timeout` passes (kind `timeout`).
async fn watch<B: Backend>(
    store: &Store<B>,
    ids: &[DeviceSessionId],
    timeout: Option<Duration>,
) -> Result<ExitCode, CliError> {
    let Some(mut changes) = store.backend().near_cache().map(|c| c.changes()) else {
        return Err(CliError::usage("watch needs a Redis server"));
    };
    let run = async {
        // Subscribed before the first reads: no change between a read and
        // the wait is missed.
        let mut states = Vec::with_capacity(ids.len());
        for id in ids {
            let now = state(store, id).await?;
            print(id, &now)?;
            states.push(now);
        }
        while !states.iter().all(State::finished) {
            if changes.changed().await.is_err() {
                return Err(CliError::new("backend", "the store's cache went away"));
            }
            // Unchanged sessions are answered from the cache: only what
            // the server invalidated is read again.
            for (id, last) in ids.iter().zip(states.iter_mut()) {
                let now = state(store, id).await?;
                if now != *last {
                    print(id, &now)?;
                    *last = now;
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    };
    match timeout {
        None => run.await,
        Some(limit) => match tokio::time::timeout(limit, run).await {
            Ok(result) => result,
            Err(_) => Err(CliError::new(
                "timeout",
                format!(
                    "watch: not every session was revoked or gone within {}s",
                    limit.as_secs_f64()
                ),
            )),
        },
    }
}

/// `authsession watch`: validates the ids and the timeout, then watches on
/// the server the flags select (never in memory: it has no invalidations).
pub(crate) fn run_watch(
    global: &GlobalArgs,
    ids: &[String],
    timeout: Option<&str>,
) -> Result<ExitCode, CliError> {
    let ids = ids
        .iter()
        .map(|id| parse_id(id))
        .collect::<Result<Vec<_>, _>>()?;
    let timeout = timeout
        .map(|text| duration::parse(text, "--timeout"))
        .transpose()?;
    let target = global.target(Some(DEFAULT_REDIS_URL));
    let mut options = global.options(&target)?;
    if target == StoreTarget::Memory {
        return Err(CliError::usage("watch needs a Redis server (not --memory)"));
    }
    // Watching is driven by the cache's invalidations.
    options.cache = Some(options.cache.unwrap_or_default());
    runtime(false)?.block_on(target.open_and_run(&options, Watch { ids, timeout }))
}

/// `watch` on the store the flags select.
struct Watch {
    ids: Vec<DeviceSessionId>,
    timeout: Option<Duration>,
}

impl OnStore for Watch {
    type Output = ExitCode;

    async fn run<B: Backend>(self, store: Store<B>) -> Result<ExitCode, CliError> {
        watch(&store, &self.ids, self.timeout).await
    }
}
