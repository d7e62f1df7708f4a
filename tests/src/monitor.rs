//! The commands a server receives, via `redis-cli monitor`: which client
//! sent them, and which ran inside a Lua script.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use crate::RedisRaw;

/// How long to wait for a marker to show up in the monitor stream.
const MARK_LIMIT: Duration = Duration::from_secs(15);

/// One command as MONITOR reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitoredCommand {
    /// The sender (`127.0.0.1:PORT`), or `lua` for commands a script ran.
    pub source: String,
    /// The command name, lower-case.
    pub name: String,
}

impl MonitoredCommand {
    /// Whether a script ran it (rather than a client sending it).
    pub fn from_script(&self) -> bool {
        self.source == "lua"
    }
}

/// A running `redis-cli monitor`, killed when dropped.
#[derive(Debug)]
pub struct Monitor {
    child: Child,
    lines: Receiver<String>,
    next_marker: u64,
}

impl Monitor {
    /// Starts monitoring the server on `port`.
    pub fn start(port: u16) -> Self {
        let mut child = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "monitor"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run redis-cli (apt-get install -y redis-tools)");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let monitor = Self {
            child,
            lines,
            next_marker: 0,
        };
        let first = monitor
            .lines
            .recv_timeout(MARK_LIMIT)
            .expect("redis-cli monitor started");
        assert_eq!(first, "OK", "unexpected monitor greeting");
        monitor
    }

    /// Sends a marker (`ECHO`) through `raw` and returns every command the
    /// server logged since the previous marker, markers excluded. The
    /// server logs commands in execution order, so everything that
    /// completed before this call is included.
    pub async fn since_last_mark(&mut self, raw: &RedisRaw) -> Vec<MonitoredCommand> {
        self.next_marker += 1;
        let marker = format!("authsession-monitor-mark-{}", self.next_marker);
        let echoed: String = raw.query(redis::cmd("ECHO").arg(&marker)).await;
        assert_eq!(echoed, marker);
        let quoted = format!("\"{marker}\"");
        let mut commands = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(MARK_LIMIT)
                .expect("monitor line before the marker");
            if line.ends_with(&quoted) {
                return commands;
            }
            if let Some(command) = parse(&line) {
                if command.name != "echo" {
                    commands.push(command);
                }
            }
        }
    }
}

/// `1700000000.123456 [0 127.0.0.1:5555] "GET" "key"` → source, name.
fn parse(line: &str) -> Option<MonitoredCommand> {
    let open = line.find('[')?;
    let close = open + line.get(open..)?.find(']')?;
    let inside = line.get(open + 1..close)?;
    let (_db, source) = inside.split_once(' ')?;
    let rest = line.get(close + 1..)?.trim_start();
    let name = rest.strip_prefix('"')?.split('"').next()?;
    Some(MonitoredCommand {
        source: source.to_owned(),
        name: name.to_ascii_lowercase(),
    })
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_monitor_lines() {
        let c = parse(r#"1795831862.119379 [0 127.0.0.1:33278] "evalsha" "abc" "1" "y""#).unwrap();
        assert_eq!(c.source, "127.0.0.1:33278");
        assert_eq!(c.name, "evalsha");
        assert!(!c.from_script());
        let c = parse(r#"1795831862.119428 [0 lua] "SET" "y" "1""#).unwrap();
        assert!(c.from_script());
        assert_eq!(c.name, "set");
        assert_eq!(parse("OK"), None);
    }
}
