//! The store a command runs on, opened in one place: where the sessions
//! are ([`StoreTarget`]), what the store is built with ([`StoreOptions`]),
//! and how each kind is opened. Every command that talks to a store is
//! written once, generically, as an [`OnStore`], and
//! [`StoreTarget::open_and_run`] opens the store the flags select and runs
//! it there.

use authsession_core::op::Policy;
use authsession_core::KeySpace;
use authsession_driver::{
    Backend, ClusterConfig, ClusterSessionStore, MemorySessionStore, RedisConfig,
    RedisSessionStore, Store,
};

use crate::error::CliError;

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
            StoreTarget::Memory => command.run(memory_store(options)?).await,
            StoreTarget::Redis(url) => {
                let store = connect_redis_as(url, options, flag).await?;
                command.run(store).await
            }
            StoreTarget::Cluster(nodes) => {
                let store = connect_cluster(nodes, options).await?;
                command.run(store).await
            }
        }
    }
}

/// Everything a store is built with besides where it is: the key space
/// (prefix base and layout), the policy (retention, session limit, batch
/// size) and how many replicas `WAIT` must confirm.
#[derive(Debug, Clone)]
pub(crate) struct StoreOptions {
    pub(crate) keys: KeySpace,
    pub(crate) policy: Policy,
    pub(crate) wait_replicas: u32,
    /// The near cache (`--cache`).
    pub(crate) cache: Option<authsession_driver::CacheConfig>,
}

impl StoreOptions {
    /// The store settings these flags set (the rest keep what the URL or
    /// the defaults gave them).
    pub(crate) fn apply_to(&self, settings: &mut authsession_driver::StoreSettings) {
        settings.key_space = self.keys.clone();
        settings.policy = self.policy;
        settings.wait_replicas = self.wait_replicas;
        settings.cache = self.cache;
    }
}

/// Connects to the standalone Redis server at `url`, given as `flag`.
pub(crate) async fn connect_redis_as(
    url: &str,
    options: &StoreOptions,
    flag: &str,
) -> Result<RedisSessionStore, CliError> {
    let mut config = RedisConfig::from_url(url).map_err(|e| CliError::from(e).context(flag))?;
    options.apply_to(&mut config.settings);
    RedisSessionStore::connect(config)
        .await
        .map_err(|e| CliError::from(e).context("connecting to redis"))
}

/// A fresh in-memory store with `options` (`WAIT` needs a server).
pub(crate) fn memory_store(options: &StoreOptions) -> Result<MemorySessionStore, CliError> {
    if options.wait_replicas > 0 {
        return Err(CliError::usage(
            "--wait-replicas needs a Redis server (not --memory)",
        ));
    }
    if options.cache.is_some() {
        return Err(CliError::usage(
            "--cache needs a Redis server (not --memory)",
        ));
    }
    Ok(MemorySessionStore::new(options.keys.clone()).with_policy(options.policy))
}

/// Connects to the Redis Cluster reached through the seed `nodes`
/// (`redis://` / `rediss://` URLs) with `options` (tagged key space,
/// policy, `WAIT` replicas).
pub(crate) async fn connect_cluster(
    nodes: &[String],
    options: &StoreOptions,
) -> Result<ClusterSessionStore, CliError> {
    let mut config =
        ClusterConfig::from_urls(nodes).map_err(|e| CliError::from(e).context("--cluster-node"))?;
    options.apply_to(&mut config.settings);
    ClusterSessionStore::connect(config)
        .await
        .map_err(|e| CliError::from(e).context("--cluster-node"))
}
