//! ACL authentication and TLS (SPEC §7) against real servers: the right
//! credentials work, a wrong password is a clear error; TLS connects when
//! the certificate verifies against the given CA and refuses otherwise.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;
use std::time::Duration;

use authsession_driver::{Error, ErrorKind, RedisConfig, RedisSessionStore, SessionStore};
use authsession_tests::fixtures::{active, fresh_key_space, ts};
use authsession_tests::RedisServer;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};

/// Connects and runs a create + get round trip.
async fn use_store(config: RedisConfig) -> Result<(), Error> {
    let store = RedisSessionStore::connect(config).await?;
    let s = active("auth-check", "u-1", ts(0, 0));
    store.create(&s).await?;
    assert_eq!(store.get(s.id()).await?, s);
    Ok(())
}

fn assert_auth_error(err: &Error) {
    assert_eq!(err.kind(), ErrorKind::AuthenticationFailed, "{err}");
    assert!(!err.is_retryable(), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("auth"),
        "message mentions authentication: {err}"
    );
}

#[tokio::test]
async fn acl_user_and_password() {
    let server = RedisServer::start_with(&[
        "--requirepass",
        "default-secret",
        "--user",
        "alice",
        "on",
        ">alice-secret",
        "~*",
        "&*",
        "+@all",
    ]);
    let base = server.config(fresh_key_space("acl"));

    use_store({
        let mut config = base.clone();
        config.settings.username = Some("alice".into());
        config.settings.password = Some("alice-secret".into());
        config
    })
    .await
    .expect("ACL user with the right password");
    use_store({
        let mut config = base.clone();
        config.settings.password = Some("default-secret".into());
        config.settings.key_space = fresh_key_space("acl");
        config
    })
    .await
    .expect("default user with requirepass");
    let from_url = RedisConfig::from_url(&format!(
        "redis://alice:alice-secret@127.0.0.1:{}/0",
        server.port()
    ))
    .unwrap();
    use_store({
        let mut config = from_url;
        config.settings.key_space = fresh_key_space("acl");
        config
    })
    .await
    .expect("credentials from the URL");

    let wrong = use_store({
        let mut config = base.clone();
        config.settings.username = Some("alice".into());
        config.settings.password = Some("wrong".into());
        config
    })
    .await
    .expect_err("wrong password");
    assert_auth_error(&wrong);
    assert!(!wrong.to_string().contains("wrong\""), "{wrong}");

    let unknown_user = use_store({
        let mut config = base.clone();
        config.settings.username = Some("mallory".into());
        config.settings.password = Some("alice-secret".into());
        config
    })
    .await
    .expect_err("unknown user");
    assert_auth_error(&unknown_user);

    let none = use_store(base).await.expect_err("no credentials");
    assert_auth_error(&none);
}

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA, and a server certificate it signs for `names`.
    fn new(names: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let server_cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.crt"), server_cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(Path::new(&self.path("ca.pem"))).unwrap()
    }

    fn server(&self) -> RedisServer {
        RedisServer::start_tls(&[
            "--tls-cert-file",
            &self.path("server.crt"),
            "--tls-key-file",
            &self.path("server.key"),
            "--tls-ca-cert-file",
            &self.path("ca.pem"),
            "--tls-auth-clients",
            "no",
        ])
    }
}

fn tls_config(server: &RedisServer, ca: Option<Vec<u8>>) -> RedisConfig {
    {
        let mut config = server.config(fresh_key_space("tls"));
        config.settings.tls = true;
        config.settings.tls_ca_pem = ca;
        config.settings.operation_timeout = Duration::from_secs(5);
        config
    }
}

#[tokio::test]
async fn tls_with_verified_certificates() {
    let pki = Pki::new(&["127.0.0.1", "localhost"]);
    let server = pki.server();

    use_store(tls_config(&server, Some(pki.ca_pem())))
        .await
        .expect("TLS with the server's CA");
    let from_url = RedisConfig::from_url(&format!("rediss://127.0.0.1:{}", server.port())).unwrap();
    assert!(from_url.settings.tls);
    use_store({
        let mut config = from_url;
        config.settings.tls_ca_pem = Some(pki.ca_pem());
        config.settings.key_space = fresh_key_space("tls");
        config
    })
    .await
    .expect("rediss:// URL with the CA");
    let mut by_name = tls_config(&server, Some(pki.ca_pem()));
    by_name.addr = format!("localhost:{}", server.port());
    use_store(by_name).await.expect("TLS by host name");

    // The system roots do not know the test CA.
    let err = use_store(tls_config(&server, None))
        .await
        .expect_err("unknown CA");
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
    // Another CA does not vouch for this server either.
    let other = Pki::new(&["127.0.0.1"]);
    let err = use_store(tls_config(&server, Some(other.ca_pem())))
        .await
        .expect_err("wrong CA");
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
    // Plain TCP to a TLS port never gets an answer it can use.
    let err = use_store({
        let mut config = server.config(fresh_key_space("tls"));
        config.settings.operation_timeout = Duration::from_millis(500);
        config
    })
    .await
    .expect_err("plain TCP to a TLS port");
    assert!(
        matches!(err.kind(), ErrorKind::Backend | ErrorKind::Timeout),
        "{err}"
    );
}

#[tokio::test]
async fn tls_checks_the_host_name() {
    let pki = Pki::new(&["redis.example.invalid"]);
    let server = pki.server();
    let err = use_store(tls_config(&server, Some(pki.ca_pem())))
        .await
        .expect_err("certificate for another name");
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
}

#[tokio::test]
async fn the_configured_database_is_used() {
    let server = RedisServer::start();
    let keys = fresh_key_space("db");
    let config = RedisConfig::from_url(&format!("{}/3", server.url())).unwrap();
    assert_eq!(config.db, 3);
    let store = RedisSessionStore::connect({
        let mut config = config;
        config.settings.key_space = keys.clone();
        config
    })
    .await
    .unwrap();
    let s = active("in-db-3", "u-1", ts(0, 0));
    store.create(&s).await.unwrap();

    let raw = server.raw().await;
    let key = keys.reference_record_key(s.id());
    let in_db0: i64 = raw.query(redis::cmd("EXISTS").arg(&key)).await;
    assert_eq!(in_db0, 0);
    let () = raw.query(redis::cmd("SELECT").arg(3)).await;
    let in_db3: i64 = raw.query(redis::cmd("EXISTS").arg(&key)).await;
    assert_eq!(in_db3, 1);
}
