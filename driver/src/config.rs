//! Store configuration: where Redis is, how to authenticate,
//! TLS, the key space, the operation timeout and the retry policy.

use std::fmt;
use std::time::Duration;

use authsession_core::op::Policy;
use authsession_core::KeySpace;
use redis::IntoConnectionInfo as _;

use crate::connect::Access;
use crate::error::Error;

/// How mutations retry when a concurrent change invalidated their reads.
///
/// Attempt `n` (0-based) that must be retried sleeps a uniformly random
/// time in `[0, min(max_delay, base_delay * 2^n)]` ("full jitter"), so
/// colliding writers spread out. Retries stop after `max_attempts`
/// attempts or when the next sleep would pass the operation's deadline
/// (`operation_timeout` after the call started), whichever comes first:
/// the call then fails with
/// [`ErrorKind::ContentionExhausted`](crate::ErrorKind::ContentionExhausted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total (the first one included); at least 1.
    pub max_attempts: u32,
    /// Cap of the first backoff sleep.
    pub base_delay: Duration,
    /// Upper bound of any backoff sleep; at least `base_delay`.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 64 attempts, sleeps capped from 200 µs doubling up to 20 ms: a few
    /// hundred milliseconds at worst, inside the default 1 s deadline.
    fn default() -> Self {
        Self {
            max_attempts: 64,
            base_delay: Duration::from_micros(200),
            max_delay: Duration::from_millis(20),
        }
    }
}

impl RetryPolicy {
    /// Checks the policy; errors name the field (`retry.max_attempts`, …).
    pub fn validate(&self) -> Result<(), Error> {
        if self.max_attempts == 0 {
            return Err(Error::config("retry.max_attempts", "must be at least 1"));
        }
        if self.max_delay < self.base_delay {
            return Err(Error::config(
                "retry.max_delay",
                "must be at least retry.base_delay",
            ));
        }
        Ok(())
    }

    /// The cap of the backoff sleep after failed attempt `attempt`
    /// (0-based).
    pub(crate) fn backoff_cap(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

/// What a standalone and a cluster store are configured with alike:
/// credentials, TLS, the key space, the operation deadline, retries, the
/// policy, replica confirmation and the near cache. `Debug` never prints
/// the password.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// ACL user name (`AUTH username password`) on every node; needs a
    /// password.
    pub username: Option<String>,
    /// Password (`AUTH password`, or the ACL user's).
    pub password: Option<String>,
    /// Connect with TLS (rustls, TLS 1.2 or 1.3, the server certificate
    /// verified against the roots below and its name or IP against the
    /// host).
    pub tls: bool,
    /// PEM certificates to trust *instead of* the system roots (a private
    /// CA); `None` uses the system's trusted roots. Only with `tls`.
    pub tls_ca_pem: Option<Vec<u8>>,
    /// Where records and indexes live (a cluster needs the tagged layout:
    /// every key of a user in one hash slot, so every plan is one script
    /// in one slot).
    pub key_space: KeySpace,
    /// Deadline of one operation from call to return, retries included;
    /// every round trip is bounded by what is left of it. Also bounds
    /// connecting. Must be positive.
    pub operation_timeout: Duration,
    /// Backoff of contended mutations.
    pub retry: RetryPolicy,
    /// Retention of revoked sessions, the active-session limit and the
    /// batch size.
    pub policy: Policy,
    /// Acknowledge a mutation only after `WAIT` (on the key's primary)
    /// confirms this many replicas have it (0: don't wait).
    pub wait_replicas: u32,
    /// Keep validated sessions in this process, invalidated by the server
    /// (see [`NearCache`](crate::NearCache)); `None`: every read goes to
    /// the server.
    pub cache: Option<crate::CacheConfig>,
}

impl Default for StoreSettings {
    /// No credentials, no TLS, the default key space (reference layout),
    /// a 1 s deadline, the default retry policy and policy, no `WAIT`, no
    /// cache.
    fn default() -> Self {
        Self {
            username: None,
            password: None,
            tls: false,
            tls_ca_pem: None,
            key_space: KeySpace::default(),
            operation_timeout: Duration::from_secs(1),
            retry: RetryPolicy::default(),
            policy: Policy::default(),
            wait_replicas: 0,
            cache: None,
        }
    }
}

impl fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSettings")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("tls_ca_pem", &self.tls_ca_pem.as_ref().map(|_| "<set>"))
            .field("key_space", &self.key_space)
            .field("operation_timeout", &self.operation_timeout)
            .field("retry", &self.retry)
            .field("policy", &self.policy)
            .field("wait_replicas", &self.wait_replicas)
            .field("cache", &self.cache)
            .finish()
    }
}

impl StoreSettings {
    /// Checks every setting; the error names the first invalid one
    /// (`username`, `tls`, `tls_ca_pem`, `operation_timeout`, `cache.*`,
    /// `retry.*`).
    pub fn validate(&self) -> Result<(), Error> {
        if self.username.is_some() && self.password.is_none() {
            return Err(Error::config(
                "username",
                "an ACL user name needs a password",
            ));
        }
        #[cfg(not(feature = "tls"))]
        if self.tls {
            return Err(Error::config("tls", "built without the `tls` feature"));
        }
        if self.tls_ca_pem.is_some() && !self.tls {
            return Err(Error::config("tls_ca_pem", "only meaningful with tls"));
        }
        #[cfg(feature = "tls")]
        if let Some(pem) = &self.tls_ca_pem {
            parse_pem_certificates(pem)?;
        }
        if self.operation_timeout.is_zero() {
            return Err(Error::config("operation_timeout", "must be > 0"));
        }
        if let Some(cache) = &self.cache {
            cache.validate()?;
        }
        self.retry.validate()
    }

    /// The credentials and TLS to connect with.
    pub(crate) fn access(&self) -> Access {
        Access {
            username: self.username.clone(),
            password: self.password.clone(),
            tls: self.tls,
            #[cfg(feature = "tls")]
            tls_ca_pem: self.tls_ca_pem.clone(),
        }
    }
}

/// Connection settings of a [`RedisSessionStore`](crate::RedisSessionStore).
///
/// Build it from a URL ([`RedisConfig::from_url`]) or fill the fields
/// (start from [`RedisConfig::default`]: `127.0.0.1:6379`, db 0, default
/// [`StoreSettings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `host:port` (IPv6 hosts in brackets: `[::1]:6379`).
    pub addr: String,
    /// Database number, `>= 0`.
    pub db: i64,
    /// Credentials, TLS, key space, deadline, retries, policy, replicas,
    /// cache.
    pub settings: StoreSettings,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:6379".to_owned(),
            db: 0,
            settings: StoreSettings::default(),
        }
    }
}

impl RedisConfig {
    /// A config from `redis://[user[:password]@]host[:port][/db]` or
    /// `rediss://…` (TLS with verified certificates; `#insecure` is
    /// refused). Everything else keeps its default. Errors name the field
    /// `url`.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        // Never echo the URL: it may carry the password.
        let tls = if url.starts_with("rediss://") {
            true
        } else if url.starts_with("redis://") {
            false
        } else {
            return Err(Error::config(
                "url",
                "must start with redis:// or rediss://",
            ));
        };
        let info = url
            .into_connection_info()
            .map_err(|e| Error::config("url", e.to_string()))?;
        let (host, port) = match info.addr() {
            redis::ConnectionAddr::Tcp(host, port) => (host.clone(), *port),
            redis::ConnectionAddr::TcpTls {
                host,
                port,
                insecure,
                ..
            } => {
                if *insecure {
                    return Err(Error::config(
                        "url",
                        "TLS certificate verification cannot be disabled",
                    ));
                }
                (host.clone(), *port)
            }
            _ => return Err(Error::config("url", "must name a TCP host")),
        };
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let url_settings = info.redis_settings();
        let config = Self {
            addr,
            db: url_settings.db(),
            settings: StoreSettings {
                username: url_settings.username().map(str::to_owned),
                password: url_settings.password().map(str::to_owned),
                tls,
                ..StoreSettings::default()
            },
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks every field; the error names the first invalid one
    /// (`addr`, `username`, `db`, `tls_ca_pem`, `operation_timeout`,
    /// `retry.*`).
    pub fn validate(&self) -> Result<(), Error> {
        self.host_port()?;
        if self.db < 0 {
            return Err(Error::config("db", "must be >= 0"));
        }
        self.settings.validate()
    }

    pub(crate) fn host_port(&self) -> Result<(String, u16), Error> {
        parse_host_port(&self.addr, "addr")
    }
}

/// `host:port` (IPv6 hosts in brackets) split into host and port; errors
/// name `field`.
pub(crate) fn parse_host_port(addr: &str, field: &'static str) -> Result<(String, u16), Error> {
    let bad = |reason: &str| Error::config(field, reason.to_owned());
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| bad("must be host:port"))?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner
            .strip_suffix(']')
            .ok_or_else(|| bad("unbalanced brackets around the IPv6 host"))?,
        None if host.contains(':') => return Err(bad("IPv6 hosts must be in brackets")),
        None => host,
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(bad("host must be a name or an IP address"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| bad("port must be a number in 1..=65535"))?;
    if port == 0 {
        return Err(bad("port must be a number in 1..=65535"));
    }
    Ok((host.to_owned(), port))
}

/// The certificates of a PEM bundle; at least one.
#[cfg(feature = "tls")]
pub(crate) fn parse_pem_certificates(pem: &[u8]) -> Result<usize, Error> {
    use rustls::pki_types::{pem::PemObject as _, CertificateDer};
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|e| Error::config("tls_ca_pem", format!("invalid PEM: {e}")))?;
        count += 1;
    }
    if count == 0 {
        return Err(Error::config("tls_ca_pem", "holds no certificate"));
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::ErrorKind;

    fn field_of(config: &RedisConfig) -> Option<&'static str> {
        let err = config.validate().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        err.config_field()
    }

    #[test]
    fn from_url_reads_every_part() {
        let c = RedisConfig::from_url("redis://alice:s%40cret@example.com:6380/3").unwrap();
        assert_eq!(c.addr, "example.com:6380");
        assert_eq!(c.settings.username.as_deref(), Some("alice"));
        assert_eq!(c.settings.password.as_deref(), Some("s@cret"));
        assert_eq!(c.db, 3);
        assert!(!c.settings.tls);
        let c = RedisConfig::from_url("rediss://[::1]").unwrap();
        assert_eq!(c.addr, "[::1]:6379");
        assert!(c.settings.tls);
        assert_eq!(c.host_port().unwrap(), ("::1".to_owned(), 6379));
        let c = RedisConfig::from_url("redis://:pw@127.0.0.1").unwrap();
        assert_eq!(c.settings.username, None);
        assert_eq!(c.settings.password.as_deref(), Some("pw"));
    }

    #[test]
    fn from_url_rejects() {
        for url in [
            "http://127.0.0.1",
            "redis+unix:///tmp/x",
            "unix:///tmp/x",
            "rediss://127.0.0.1/#insecure",
            "redis://127.0.0.1/notadb",
            "redis://",
            "redis://alice@127.0.0.1",
        ] {
            let err = RedisConfig::from_url(url).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "{url}");
            assert!(err.config_field().is_some(), "{url}");
        }
        let err = RedisConfig::from_url("ftp://u:topsecret@h").unwrap_err();
        assert!(!err.to_string().contains("topsecret"));
    }

    #[test]
    fn validate_names_the_field() {
        let ok = RedisConfig::default();
        assert!(ok.validate().is_ok());
        let with = |f: &dyn Fn(&mut RedisConfig)| {
            let mut c = ok.clone();
            f(&mut c);
            c
        };
        assert_eq!(field_of(&with(&|c| c.addr = "nohost".into())), Some("addr"));
        assert_eq!(field_of(&with(&|c| c.addr = ":6379".into())), Some("addr"));
        assert_eq!(field_of(&with(&|c| c.addr = "h:0".into())), Some("addr"));
        assert_eq!(
            field_of(&with(&|c| c.addr = "h:70000".into())),
            Some("addr")
        );
        assert_eq!(
            field_of(&with(&|c| c.addr = "::1:6379".into())),
            Some("addr")
        );
        assert_eq!(field_of(&with(&|c| c.db = -1)), Some("db"));
        assert_eq!(
            field_of(&with(&|c| c.settings.username = Some("u".into()))),
            Some("username")
        );
        assert_eq!(
            field_of(&with(&|c| c.settings.operation_timeout = Duration::ZERO)),
            Some("operation_timeout")
        );
        assert_eq!(
            field_of(&with(&|c| c.settings.retry.max_attempts = 0)),
            Some("retry.max_attempts")
        );
        assert_eq!(
            field_of(&with(&|c| c.settings.retry.max_delay = Duration::ZERO)),
            Some("retry.max_delay")
        );
        assert_eq!(
            field_of(&with(&|c| c.settings.tls_ca_pem = Some(b"x".to_vec()))),
            Some("tls_ca_pem")
        );
        assert_eq!(
            field_of(&with(&|c| {
                c.settings.tls = true;
                c.settings.tls_ca_pem = Some(b"not pem".to_vec());
            })),
            Some("tls_ca_pem")
        );
        assert!(with(&|c| c.addr = "[::1]:1".into()).validate().is_ok());
    }

    #[test]
    fn debug_hides_the_password() {
        let mut c = RedisConfig::from_url("redis://u:hunter2@h:1").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(format!("{c:?}").contains("<redacted>"));
        c.settings.password = None;
        assert!(!format!("{c:?}").contains("<redacted>"));
    }

    #[test]
    fn backoff_caps_grow_then_saturate() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff_cap(0), p.base_delay);
        assert_eq!(p.backoff_cap(1), p.base_delay * 2);
        assert_eq!(p.backoff_cap(40), p.max_delay);
        assert_eq!(p.backoff_cap(u32::MAX), p.max_delay);
    }
}
