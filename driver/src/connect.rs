//! How every connection to a Redis server is set up — the standalone
//! backend's, the cluster client's seeds, the near cache's tracking
//! connections — from one place: the address (TLS or not), the
//! credentials, the database, and the certificate authority to trust.

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo as _, ProtocolVersion};

use crate::cache::MakeClient;
use crate::error::Error;

/// Who connects, and how: what a standalone and a cluster config both say.
#[derive(Clone)]
pub(crate) struct Access {
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) tls: bool,
    /// The authority to trust instead of the system's (PEM).
    #[cfg(feature = "tls")]
    pub(crate) tls_ca_pem: Option<Vec<u8>>,
}

impl Access {
    /// The settings of a connection to `host:port`, database `db`.
    pub(crate) fn info(&self, host: &str, port: u16, db: i64) -> Result<ConnectionInfo, Error> {
        let addr = if self.tls {
            tls_addr(host.to_owned(), port)?
        } else {
            ConnectionAddr::Tcp(host.to_owned(), port)
        };
        let mut settings = redis::RedisConnectionInfo::default().set_db(db);
        if let Some(username) = &self.username {
            settings = settings.set_username(username);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password);
        }
        Ok(addr
            .into_connection_info()
            .map_err(|e| Error::config("addr", e.to_string()))?
            .set_redis_settings(settings))
    }

    /// A client for `info`, trusting the configured authority.
    pub(crate) fn client(&self, info: ConnectionInfo) -> Result<redis::Client, Error> {
        #[cfg(feature = "tls")]
        if let Some(certs) = self.certificates() {
            return redis::Client::build_with_tls(info, certs)
                .map_err(|e| Error::config("tls_ca_pem", e.to_string()));
        }
        redis::Client::open(info).map_err(|e| Error::config("addr", e.to_string()))
    }

    /// Clients for the near cache's tracking connections: any node, with
    /// these credentials and TLS, database `db`, over RESP3 (pushes).
    pub(crate) fn tracking_clients(self, db: i64) -> MakeClient {
        Box::new(move |host: &str, port: u16| {
            let info = self.info(host, port, db)?;
            let settings = info
                .redis_settings()
                .clone()
                .set_protocol(ProtocolVersion::RESP3);
            self.client(info.set_redis_settings(settings))
        })
    }

    /// A cluster client's builder through `seeds`, with these credentials
    /// (redis-rs takes them from the seeds) and TLS.
    #[cfg(feature = "cluster")]
    pub(crate) fn cluster_builder(
        &self,
        seeds: &[(String, u16)],
    ) -> Result<redis::cluster::ClusterClientBuilder, Error> {
        let nodes = seeds
            .iter()
            .map(|(host, port)| self.info(host, *port, 0))
            .collect::<Result<Vec<_>, _>>()?;
        let builder = redis::cluster::ClusterClient::builder(nodes);
        #[cfg(feature = "tls")]
        let builder = match self.certificates() {
            Some(certs) => builder.certs(certs),
            None => builder,
        };
        Ok(builder)
    }

    #[cfg(feature = "tls")]
    fn certificates(&self) -> Option<redis::TlsCertificates> {
        self.tls_ca_pem.as_ref().map(|pem| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.clone()),
        })
    }
}

#[cfg(feature = "tls")]
fn tls_addr(host: String, port: u16) -> Result<ConnectionAddr, Error> {
    Ok(ConnectionAddr::TcpTls {
        host,
        port,
        insecure: false,
        tls_params: None,
    })
}

#[cfg(not(feature = "tls"))]
fn tls_addr(_: String, _: u16) -> Result<ConnectionAddr, Error> {
    Err(Error::config(
        "tls",
        "this build has no TLS support (enable the `tls` feature)",
    ))
}
