//! Connection settings of a Redis Cluster store: the seed nodes plus the
//! same authentication, TLS, key space, timeout and policies as a
//! standalone server's [`RedisConfig`].

use authsession_core::{KeySpace, Layout};

use crate::config::{parse_host_port, RedisConfig, StoreSettings};
use crate::error::Error;

/// Connection settings of a [`ClusterSessionStore`](crate::ClusterSessionStore).
///
/// Build it from seed URLs ([`ClusterConfig::from_urls`]) or fill the
/// fields (start from [`ClusterConfig::default`]: no seed, default
/// [`StoreSettings`] but the key space in the tagged layout). The client
/// discovers the whole cluster from any seed that answers; the settings
/// apply to every node, and the operation timeout is also the client's
/// response timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Seed nodes, `host:port` each (IPv6 hosts in brackets); at least one.
    pub nodes: Vec<String>,
    /// Credentials, TLS, key space (tagged layout), deadline, retries,
    /// policy, replicas, cache.
    pub settings: StoreSettings,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            settings: StoreSettings {
                key_space: tagged_default(),
                ..StoreSettings::default()
            },
        }
    }
}

fn tagged_default() -> KeySpace {
    // The default prefixes contain no braces: valid in either layout.
    KeySpace::default()
        .in_layout(Layout::Tagged)
        .unwrap_or_default()
}

impl ClusterConfig {
    /// A config from seed URLs, each `redis://[user[:password]@]host[:port]`
    /// or `rediss://…`. All seeds must agree on TLS; credentials may be
    /// given on any of them and must not differ; a database other than 0
    /// is refused (a cluster has only database 0). Everything else keeps
    /// its default. Errors name the field `url` (never echoing a URL).
    pub fn from_urls<I, S>(urls: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut config = Self::default();
        let mut tls = None;
        for url in urls {
            let seed = RedisConfig::from_url(url.as_ref())?;
            if seed.db != 0 {
                return Err(Error::config("url", "a cluster has only database 0"));
            }
            let seed_tls = seed.settings.tls;
            if tls.replace(seed_tls).is_some_and(|t| t != seed_tls) {
                return Err(Error::config(
                    "url",
                    "every seed must use TLS (rediss://) or none",
                ));
            }
            for (mine, theirs) in [
                (&mut config.settings.username, seed.settings.username),
                (&mut config.settings.password, seed.settings.password),
            ] {
                match (mine.as_ref(), theirs) {
                    (_, None) => {}
                    (None, Some(t)) => *mine = Some(t),
                    (Some(m), Some(t)) if *m == t => {}
                    (Some(_), Some(_)) => {
                        return Err(Error::config("url", "seeds name different credentials"))
                    }
                }
            }
            config.nodes.push(seed.addr);
        }
        config.settings.tls = tls.unwrap_or(false);
        config.validate()?;
        Ok(config)
    }

    /// Checks every field; the error names the first invalid one
    /// (`nodes`, `username`, `tls_ca_pem`, `key_space`,
    /// `operation_timeout`, `retry.*`).
    pub fn validate(&self) -> Result<(), Error> {
        if self.nodes.is_empty() {
            return Err(Error::config("nodes", "name at least one seed node"));
        }
        for node in &self.nodes {
            parse_host_port(node, "nodes")?;
        }
        if self.settings.key_space.layout() != Layout::Tagged {
            return Err(Error::config(
                "key_space",
                "a cluster needs the tagged layout (each user's keys in one hash slot)",
            ));
        }
        self.settings.validate()
    }

    pub(crate) fn seeds(&self) -> Result<Vec<(String, u16)>, Error> {
        self.nodes
            .iter()
            .map(|n| parse_host_port(n, "nodes"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;
    use crate::ErrorKind;

    #[test]
    fn from_urls_merges_the_seeds() {
        let c = ClusterConfig::from_urls([
            "redis://app:s%40cret@10.0.0.1:7000",
            "redis://10.0.0.2:7001",
            "redis://[::1]:7002",
        ])
        .unwrap();
        assert_eq!(c.nodes, ["10.0.0.1:7000", "10.0.0.2:7001", "[::1]:7002"]);
        assert_eq!(c.settings.username.as_deref(), Some("app"));
        assert_eq!(c.settings.password.as_deref(), Some("s@cret"));
        assert!(!c.settings.tls);
        assert_eq!(c.settings.key_space.layout(), Layout::Tagged);
        assert_eq!(c.seeds().unwrap()[2], ("::1".to_owned(), 7002));
        assert!(
            ClusterConfig::from_urls(["rediss://h:1", "rediss://h:2"])
                .unwrap()
                .settings
                .tls
        );
    }

    #[test]
    fn from_urls_rejects() {
        let none: [&str; 0] = [];
        for (urls, field) in [
            (&none[..], "nodes"),
            (&["redis://h:1", "rediss://h:2"][..], "url"),
            (&["redis://:a@h:1", "redis://:b@h:2"][..], "url"),
            (&["redis://h:1/2"][..], "url"),
            (&["http://h:1"][..], "url"),
        ] {
            let err = ClusterConfig::from_urls(urls).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "{urls:?}");
            assert_eq!(err.config_field(), Some(field), "{urls:?}");
        }
        let err =
            ClusterConfig::from_urls(["redis://:topsecret@h:1", "redis://:other@h:2"]).unwrap_err();
        assert!(!err.to_string().contains("topsecret"));
    }

    #[test]
    fn validate_names_the_field() {
        let ok = ClusterConfig::from_urls(["redis://h:1"]).unwrap();
        let field = |f: &dyn Fn(&mut ClusterConfig)| {
            let mut c = ok.clone();
            f(&mut c);
            c.validate().unwrap_err().config_field()
        };
        assert_eq!(field(&|c| c.nodes = vec!["h".into()]), Some("nodes"));
        assert_eq!(
            field(&|c| c.settings.username = Some("u".into())),
            Some("username")
        );
        assert_eq!(
            field(&|c| c.settings.key_space = KeySpace::default()),
            Some("key_space")
        );
        assert_eq!(
            field(&|c| c.settings.operation_timeout = Duration::ZERO),
            Some("operation_timeout")
        );
        assert_eq!(
            field(&|c| c.settings.tls_ca_pem = Some(b"x".to_vec())),
            Some("tls_ca_pem")
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let c = ClusterConfig::from_urls(["redis://u:hunter2@h:1"]).unwrap();
        let text = format!("{c:?}");
        assert!(!text.contains("hunter2"));
        assert!(text.contains("<redacted>"));
    }
}
