//! `--cluster-node`: the Redis Cluster store, reached through seed nodes.

use authsession_driver::{ClusterConfig, ClusterSessionStore};

use crate::error::CliError;
use crate::store::StoreOptions;

/// The store `--cluster-node` selects.
pub(crate) type ClusterStore = ClusterSessionStore;

/// Connects to the Redis Cluster reached through the seed `nodes`
/// (`redis://` / `rediss://` URLs) with `options` (tagged key space,
/// policy, `WAIT` replicas).
pub(crate) async fn connect_cluster(
    nodes: &[String],
    options: &StoreOptions,
) -> Result<ClusterStore, CliError> {
    let mut config =
        ClusterConfig::from_urls(nodes).map_err(|e| CliError::from(e).context("--cluster-node"))?;
    config.key_space = options.keys.clone();
    config.policy = options.policy;
    config.wait_replicas = options.wait_replicas;
    config.cache = options.cache;
    ClusterSessionStore::connect(config)
        .await
        .map_err(|e| CliError::from(e).context("--cluster-node"))
}
