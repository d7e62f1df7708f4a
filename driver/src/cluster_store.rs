//! The Redis Cluster store's constructors: [`Store`] on
//! [`ClusterBackend`].

use redis::cluster_async::ClusterConnection;

use crate::backend::{BackendInfo, ClusterBackend};
use crate::cluster_config::ClusterConfig;
use crate::error::Error;
use crate::store::Store;

impl Store<ClusterBackend> {
    /// Validates `config` and connects through its seed nodes (within
    /// `operation_timeout`).
    ///
    /// The client follows failovers and slot moves by itself: operations
    /// fail with retryable errors ([`Error::is_retryable`]) while a shard
    /// fails over and succeed again afterwards.
    pub async fn connect(config: ClusterConfig) -> Result<Self, Error> {
        let backend = ClusterBackend::connect(&config).await?;
        Self::with_backend(backend)
            .with_key_space(config.settings.key_space.clone())
            .with_policy(config.settings.policy)
            .with_retry(config.settings.retry)?
            .with_operation_timeout(config.settings.operation_timeout)
    }

    /// A store on a cluster connection the service already has (see
    /// [`ClusterBackend::from_connection`]). Give it a key space in the
    /// tagged layout ([`Store::with_key_space`]): the default reference
    /// layout spreads a user's keys over many slots, and every plan is
    /// then refused.
    pub fn on_connection(conn: ClusterConnection, info: BackendInfo) -> Self {
        Self::with_backend(ClusterBackend::from_connection(conn, info))
    }
}
