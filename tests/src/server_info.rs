//! What a server says it is (`INFO server`), so a test can branch on a
//! feature the server has rather than on how it was started.

use std::fmt;

/// Which server implementation answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerKind {
    Redis,
    Valkey,
}

/// A server's name and version, from `INFO server`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerInfo {
    kind: ServerKind,
    /// The implementation's own version (Valkey's `valkey_version`, not the
    /// `redis_version` it reports for compatibility).
    version: (u32, u32, u32),
}

impl ServerInfo {
    /// Reads the reply of `INFO server` (or `INFO`): `redis_version`, and
    /// on Valkey `server_name:valkey` with `valkey_version`.
    pub fn parse(info: &str) -> Option<Self> {
        let field = |name: &str| {
            info.lines().find_map(|line| {
                line.trim_end()
                    .strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix(':'))
            })
        };
        let (kind, version) = match (field("server_name"), field("valkey_version")) {
            (Some("valkey"), _) | (_, Some(_)) => (ServerKind::Valkey, field("valkey_version")?),
            _ => (ServerKind::Redis, field("redis_version")?),
        };
        let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
        let mut next = || parts.next().flatten().unwrap_or(0);
        let version = (next(), next(), next());
        Some(Self { kind, version })
    }

    /// Redis or Valkey.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// `(major, minor, patch)` of the implementation itself.
    pub fn version(&self) -> (u32, u32, u32) {
        self.version
    }

    /// Whether scripts can ask `redis.acl_check_cmd` (Redis 7.0+, every
    /// Valkey): without it a script cannot check its writes up front.
    pub fn has_acl_check_cmd(&self) -> bool {
        match self.kind {
            ServerKind::Valkey => true,
            ServerKind::Redis => self.version >= (7, 0, 0),
        }
    }

    /// Whether `INFO` takes several sections in one call (Redis 7.0+,
    /// every Valkey).
    pub fn has_multi_section_info(&self) -> bool {
        self.has_acl_check_cmd()
    }
}

impl fmt::Display for ServerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor, patch) = self.version;
        let name = match self.kind {
            ServerKind::Redis => "redis",
            ServerKind::Valkey => "valkey",
        };
        write!(f, "{name} {major}.{minor}.{patch}")
    }
}

/// Asks the server behind `conn`.
pub async fn query_info(conn: &mut impl redis::aio::ConnectionLike) -> ServerInfo {
    let text: String = redis::cmd("INFO")
        .arg("server")
        .query_async(conn)
        .await
        .expect("INFO server");
    ServerInfo::parse(&text).unwrap_or_else(|| panic!("no version in INFO server: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_and_valkey_are_told_apart() {
        let redis6 =
            ServerInfo::parse("# Server\r\nredis_version:6.2.5\r\nredis_mode:standalone\r\n")
                .unwrap();
        assert_eq!(redis6.kind(), ServerKind::Redis);
        assert_eq!(redis6.version(), (6, 2, 5));
        assert!(!redis6.has_acl_check_cmd());
        let redis7 = ServerInfo::parse("redis_version:7.0.15\r\n").unwrap();
        assert!(redis7.has_acl_check_cmd());
        let valkey = ServerInfo::parse(
            "# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:9.1.2\r\n",
        )
        .unwrap();
        assert_eq!(valkey.kind(), ServerKind::Valkey);
        assert_eq!(valkey.version(), (9, 1, 2));
        assert!(valkey.has_acl_check_cmd());
        assert_eq!(valkey.to_string(), "valkey 9.1.2");
        assert_eq!(ServerInfo::parse("# Server\r\n"), None);
    }
}
