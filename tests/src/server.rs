//! A private `redis-server` per test.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use authsession_core::KeySpace;
use authsession_driver::{RedisConfig, RedisSessionStore};

/// How long a server may take to come up before the test fails.
const STARTUP_LIMIT: Duration = Duration::from_secs(15);

/// A `redis-server` child process on a loopback port, killed (SIGKILL by
/// pid) and reaped when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    tls: bool,
    /// Length of the log before the current process started: its own
    /// "ready" line comes after it.
    log_offset: usize,
}

/// The environment variable naming the server binary the tests start
/// (`redis-server` when unset): the test command points it at Redis 6.2
/// and Valkey builds to run the same suites on each.
pub const SERVER_ENV: &str = "AUTHSESSION_TEST_REDIS_SERVER";

/// The server binary the tests start: `$AUTHSESSION_TEST_REDIS_SERVER`,
/// else `redis-server` from `PATH`.
pub fn server_binary() -> String {
    std::env::var(SERVER_ENV)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "redis-server".to_owned())
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral loopback port")
        .port()
}

impl RedisServer {
    /// A plain server with no persistence.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A plain server with extra arguments (`--requirepass x`, …).
    pub fn start_with(extra: &[&str]) -> Self {
        Self::launch(extra, false)
    }

    /// A TLS-only server (`--port 0 --tls-port P`); `extra` names the
    /// certificate files.
    pub fn start_tls(extra: &[&str]) -> Self {
        Self::launch(extra, true)
    }

    fn launch(extra: &[&str], tls: bool) -> Self {
        let mut dir = tempfile::tempdir().expect("temp dir for redis-server");
        let args: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        let mut last_error = String::new();
        // A free port can be taken between probing and binding: try a few.
        for _ in 0..5 {
            let port = free_port();
            let mut server = Self {
                child: None,
                port,
                dir,
                args: args.clone(),
                tls,
                log_offset: 0,
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => {
                    last_error = e;
                    dir = server.take_dir();
                }
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    fn take_dir(mut self) -> tempfile::TempDir {
        self.kill();
        // Swap the directory out so Drop has nothing left to clean.
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"))
    }

    fn spawn(&mut self) -> Result<(), String> {
        let dir = self.dir.path();
        let port = self.port.to_string();
        let binary = server_binary();
        let mut cmd = Command::new(&binary);
        if self.tls {
            cmd.args(["--port", "0", "--tls-port", &port]);
        } else {
            cmd.args(["--port", &port]);
        }
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(self.log_path())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.log_offset = self.log().len();
        let child = cmd.spawn().map_err(|e| {
            format!("cannot run {binary} ({e}); install it: apt-get install -y redis-server")
        })?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// The server's log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Polls until the server answers (or has exited).
    fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("exited with {status}: {}", self.log()));
                }
            }
            if self.answers() {
                return Ok(());
            }
            if started.elapsed() > STARTUP_LIMIT {
                return Err(format!("not ready after {STARTUP_LIMIT:?}: {}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Whether *this* process is listening (its own log says so: another
    /// test's server that won a race for the port cannot pass) and the
    /// port answers `PING` (without TLS) — with `+PONG`, or `-NOAUTH` when
    /// a password is required.
    fn answers(&self) -> bool {
        let log = self.log();
        let ours = log
            .get(self.log_offset..)
            .is_some_and(|tail| tail.contains("Ready to accept connections"));
        if !ours {
            return false;
        }
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        if self.tls {
            return true;
        }
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        match stream.read(&mut buf) {
            Ok(n) if n > 0 => buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH"),
            _ => false,
        }
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's pid (while it runs).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// The server's working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A store config for this server over `keys`.
    pub fn config(&self, keys: KeySpace) -> RedisConfig {
        let mut config = RedisConfig {
            addr: self.addr(),
            ..RedisConfig::default()
        };
        config.settings.key_space = keys;
        config
    }

    /// A connected store over `keys`.
    pub async fn store(&self, keys: KeySpace) -> RedisSessionStore {
        RedisSessionStore::connect(self.config(keys))
            .await
            .expect("connect to the test redis-server")
    }

    /// A raw connection (for planting data and reading stats).
    pub async fn raw(&self) -> crate::RedisRaw {
        let client = redis::Client::open(self.url()).expect("client");
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection to the test redis-server");
        crate::RedisRaw::new(conn)
    }

    /// A raw connection that waits as long as a reply takes (bulk
    /// loading, a long `SLOWLOG GET`): for measurements.
    pub async fn raw_unhurried(&self) -> crate::RedisRaw {
        let client = redis::Client::open(self.url()).expect("client");
        let conn = client
            .get_multiplexed_async_connection_with_config(
                &redis::AsyncConnectionConfig::new().set_response_timeout(None),
            )
            .await
            .expect("raw connection to the test redis-server");
        crate::RedisRaw::new(conn)
    }

    /// What the server says it is (`INFO server`).
    pub async fn info(&self) -> crate::ServerInfo {
        crate::server_info::query_info(&mut self.raw().await.connection()).await
    }

    /// SIGKILL by pid and reap; the port is free afterwards.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same arguments.
    pub fn restart(&mut self) {
        self.kill();
        let started = Instant::now();
        // The port can linger briefly after the kill; retry the spawn.
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if started.elapsed() > STARTUP_LIMIT => {
                    panic!("redis-server did not restart on port {}: {e}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the server by pid.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
