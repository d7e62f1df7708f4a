//! The standalone Redis store's constructors: [`Store`] on
//! [`RedisBackend`].

use redis::aio::ConnectionManager;

use crate::backend::{BackendInfo, RedisBackend};
use crate::config::RedisConfig;
use crate::error::Error;
use crate::store::Store;

impl Store<RedisBackend> {
    /// Validates `config` and connects (within `operation_timeout`).
    ///
    /// The connection reconnects by itself after a failure: operations
    /// fail fast with [`ErrorKind::Backend`](crate::ErrorKind::Backend)
    /// (or `Timeout`) while the server is unreachable and succeed again
    /// once it is back.
    pub async fn connect(config: RedisConfig) -> Result<Self, Error> {
        let backend = RedisBackend::connect(&config).await?;
        Self::with_backend(backend)
            .with_key_space(config.settings.key_space.clone())
            .with_policy(config.settings.policy)
            .with_retry(config.settings.retry)?
            .with_operation_timeout(config.settings.operation_timeout)
    }

    /// A store on a `ConnectionManager` the service already has (its
    /// timeouts and reconnect policy are the service's; every round trip is
    /// still bounded by this store's operation timeout).
    pub fn on_connection(conn: ConnectionManager, info: BackendInfo) -> Self {
        Self::with_backend(RedisBackend::from_connection(conn, info))
    }
}
