//! Helpers shared by the CLI tests: run the built `authsession` binary and
//! (for the Redis tests) a private `redis-server`.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
        }
    }

    /// Asserts success and parses stdout as one JSON value.
    pub fn json(&self) -> Value {
        assert_eq!(self.code, Some(0), "command failed: {self:?}");
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    /// Asserts success and parses every stdout line as JSON.
    pub fn json_lines(&self) -> Vec<Value> {
        assert_eq!(self.code, Some(0), "command failed: {self:?}");
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// Asserts failure (exit 1, or 2 for `usage`) naming `kind` on stderr
    /// in one `authsession: error: … (kind: KIND)` line.
    pub fn assert_error(&self, kind: &str) {
        let code = if kind == "usage" { 2 } else { 1 };
        assert_eq!(self.code, Some(code), "expected failure: {self:?}");
        let suffix = format!("(kind: {kind})");
        assert!(
            self.stderr
                .lines()
                .any(|line| line.starts_with("authsession: error: ") && line.ends_with(&suffix)),
            "expected one error line of kind {kind}: {self:?}"
        );
        assert!(!self.stderr.contains("panicked"), "{self:?}");
    }
}

/// A command for the built binary, isolated from the caller's environment.
pub fn cmd(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_authsession"));
    command.args(args).env_remove("RUST_LOG");
    for var in [
        "REDIS_URL",
        "CLUSTER_NODES",
        "PREFIX",
        "LAYOUT",
        "REVOKED_RETENTION",
        "MAX_ACTIVE_SESSIONS",
        "ON_LIMIT",
        "BATCH_SIZE",
        "WAIT_REPLICAS",
    ] {
        command.env_remove(format!("AUTHSESSION_{var}"));
    }
    command
}

/// Runs the binary with `args` and `stdin`.
pub fn run_with_stdin(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = cmd(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn authsession");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    // Write from another thread: the child may fill stdout before reading
    // all of stdin.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let output = child.wait_with_output().expect("wait authsession");
    writer.join().expect("stdin writer");
    Run::from(output)
}

/// Runs the binary with `args` and empty stdin.
pub fn run(args: &[&str]) -> Run {
    run_env(args, &[])
}

/// Runs the binary with `args`, empty stdin and the environment variables
/// `env` set.
pub fn run_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = cmd(args);
    command.stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    Run::from(command.output().expect("run authsession"))
}

/// The integration tests' private `redis-server` guard (free loopback
/// port, no persistence, killed by pid, fails when redis-server is missing).
pub use authsession_tests::RedisServer;

/// A synchronous client of `server`, for planting and reading raw data.
pub fn client(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}
