//! Sending to one node with the cluster's resend rules: a request goes
//! again (after a short jittered pause, within its deadline) only when the
//! server surely did not run it, or — for reads, which change nothing —
//! when its answer was lost; `ASK` redirects are followed at once.

use std::borrow::Borrow;
use std::time::Duration;

use redis::cluster_routing::SingleNodeRoutingInfo;
use redis::{ErrorKind as RedisErrorKind, RedisError, ServerErrorKind, Value};
use tokio::time::Instant;

use super::ClusterBackend;
use crate::error::{retry_of, Retry};

/// First pause before resending a refused request.
const FIRST_PAUSE: Duration = Duration::from_millis(2);
/// Longest pause between two sends of one request.
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// Which requests may be sent again after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resend {
    /// Only when the server surely did not run it (scripts, deletes).
    IfRefused,
    /// Also after an I/O error that may have happened after it ran
    /// (reads: running them twice changes nothing).
    IfUnanswered,
}

impl ClusterBackend {
    /// Sends `cmds` as one pipeline to `route` (or, after `ASK`, to the
    /// node named, each command preceded by `ASKING`), resending while
    /// `resend` allows and the deadline is not near.
    pub(super) async fn send(
        &self,
        deadline: Instant,
        route: &SingleNodeRoutingInfo,
        cmds: &[impl Borrow<redis::Cmd> + Sync],
        resend: Resend,
    ) -> Result<Vec<Value>, RedisError> {
        let mut attempt = 0u32;
        let mut asking: Option<SingleNodeRoutingInfo> = None;
        loop {
            let target = asking.clone().unwrap_or_else(|| route.clone());
            let result = self.send_once(&target, cmds, asking.is_some()).await;
            let err = match result {
                Ok(values) => return Ok(values),
                Err(err) => err,
            };
            if !may_resend(&err, resend) {
                return Err(err);
            }
            asking = (err.kind() == RedisErrorKind::Server(ServerErrorKind::Ask))
                .then(|| err.redirect_node().and_then(|(addr, _)| by_address(addr)))
                .flatten();
            let pause = if asking.is_some() {
                Duration::ZERO
            } else {
                pause_before(attempt)
            };
            if Instant::now() + pause >= deadline {
                return Err(err);
            }
            tokio::time::sleep(pause).await;
            attempt = attempt.saturating_add(1);
        }
    }

    /// One pipeline to one node.
    pub(super) async fn send_once(
        &self,
        route: &SingleNodeRoutingInfo,
        cmds: &[impl Borrow<redis::Cmd>],
        asking: bool,
    ) -> Result<Vec<Value>, RedisError> {
        let mut pipe = redis::pipe();
        for cmd in cmds {
            let cmd = cmd.borrow();
            if asking && !is_keyless(cmd) {
                pipe.cmd("ASKING");
            }
            pipe.add_command(cmd.clone());
        }
        let count = pipe.len();
        let mut conn = self.conn.clone();
        let values = conn.route_pipeline(pipe, 0, count, route.clone()).await?;
        if !asking {
            return Ok(values);
        }
        // Drop the `ASKING` replies (each `OK`, or an error that the
        // command after it reports again).
        let mut out = Vec::with_capacity(cmds.len());
        let mut values = values.into_iter();
        for cmd in cmds {
            if !is_keyless(cmd.borrow()) {
                values.next();
            }
            out.extend(values.next());
        }
        Ok(out)
    }
}

/// `host:port` (as `MOVED`/`ASK` name a node) as a route.
fn by_address(addr: &str) -> Option<SingleNodeRoutingInfo> {
    let (host, port) = addr.rsplit_once(':')?;
    Some(SingleNodeRoutingInfo::ByAddress {
        host: host.to_owned(),
        port: port.parse().ok()?,
    })
}

/// Commands that name no key (no `ASKING` before them).
fn is_keyless(cmd: &redis::Cmd) -> bool {
    matches!(
        cmd.args_iter().next(),
        Some(redis::Arg::Simple(name)) if name.eq_ignore_ascii_case(b"WAIT")
            || name.eq_ignore_ascii_case(b"SCRIPT")
    )
}

/// Whether `err` lets the request be sent again: always when the server
/// surely did not run it, and after an I/O error too for requests that
/// change nothing.
pub(super) fn may_resend(err: &RedisError, resend: Resend) -> bool {
    match retry_of(err) {
        Retry::Refused => true,
        Retry::Unanswered => resend == Resend::IfUnanswered,
        Retry::TimedOut | Retry::Never => false,
    }
}

/// A jittered pause before send number `attempt + 2`: from 1–2 ms,
/// doubling, up to 50–100 ms (a failover takes seconds; a redirect is
/// followed at once).
pub(super) fn pause_before(attempt: u32) -> Duration {
    let cap = FIRST_PAUSE
        .checked_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
        .unwrap_or(MAX_PAUSE)
        .min(MAX_PAUSE);
    let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::random_range(nanos / 2..=nanos))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_refusals_resend_scripts() {
        let moved = RedisError::from((
            RedisErrorKind::Server(ServerErrorKind::Moved),
            "moved",
            "3999 127.0.0.1:6381".to_owned(),
        ));
        let dropped = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(may_resend(&moved, Resend::IfRefused));
        assert!(may_resend(&refused, Resend::IfRefused));
        assert!(!may_resend(&dropped, Resend::IfRefused));
        assert!(may_resend(&dropped, Resend::IfUnanswered));
        assert!(pause_before(0) <= FIRST_PAUSE);
        assert!(pause_before(40) <= MAX_PAUSE);
    }
}
