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
    options.apply_to(&mut config.settings);
    ClusterSessionStore::connect(config)
        .await
        .map_err(|e| CliError::from(e).context("--cluster-node"))
}
