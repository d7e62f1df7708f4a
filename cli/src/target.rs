//! The store a command runs on, opened in one place: every command that
//! talks to a store is written once, generically, as an [`OnStore`], and
//! [`StoreTarget::open_and_run`] opens the store the flags select and runs
//! it there.

use authsession_driver::{Backend, Store};

use crate::cluster;
use crate::error::CliError;
use crate::store::{self, StoreOptions};

/// Where the sessions are: what `--memory`, `--redis-url` or
/// `--cluster-node` selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreTarget {
    Memory,
    /// A standalone Redis server at this URL.
    Redis(String),
    /// A Redis Cluster reached through these seed nodes.
    Cluster(Vec<String>),
}

/// A command that runs on any store.
pub(crate) trait OnStore {
    type Output;

    /// Runs on `store`.
    async fn run<B: Backend>(self, store: Store<B>) -> Result<Self::Output, CliError>;
}

impl StoreTarget {
    /// The store's name in reports: `memory`, `redis` or `cluster`.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            StoreTarget::Memory => "memory",
            StoreTarget::Redis(_) => "redis",
            StoreTarget::Cluster(_) => "cluster",
        }
    }

    /// Opens the store with `options` and runs `command` on it.
    pub(crate) async fn open_and_run<C: OnStore>(
        &self,
        options: &StoreOptions,
        command: C,
    ) -> Result<C::Output, CliError> {
        self.open_and_run_as(options, "--redis-url", command).await
    }

    /// [`StoreTarget::open_and_run`] for a Redis URL given as `flag`.
    pub(crate) async fn open_and_run_as<C: OnStore>(
        &self,
        options: &StoreOptions,
        flag: &str,
        command: C,
    ) -> Result<C::Output, CliError> {
        match self {
            StoreTarget::Memory => command.run(store::memory_store(options)?).await,
            StoreTarget::Redis(url) => {
                let store = store::connect_redis_as(url, options, flag).await?;
                command.run(store).await
            }
            StoreTarget::Cluster(nodes) => {
                let store = cluster::connect_cluster(nodes, options).await?;
                command.run(store).await
            }
        }
    }
}
