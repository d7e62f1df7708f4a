//! `SCAN` over a whole cluster: every primary in turn, the position kept
//! in the cursor the caller holds ([`ScanPosition`]).

use std::sync::PoisonError;

use authsession_core::plan::{Read, ScanCursor};
use redis::cluster_routing::SingleNodeRoutingInfo;
use redis::{ErrorKind as RedisErrorKind, RedisError, Value};
use tokio::time::Instant;

use super::send::{may_resend, pause_before, Resend};
use super::slots::{owner, shards, Node, SLOTS};
use super::ClusterBackend;
use crate::backend::script;

impl ClusterBackend {
    /// One page of a scan over every primary: the reply value (SCAN's own)
    /// and the cursor to continue from.
    pub(super) async fn scan(
        &self,
        deadline: Instant,
        read: &Read,
        cursor: &ScanCursor,
    ) -> Result<(Value, Option<ScanCursor>), RedisError> {
        let position = ScanPosition::parse(cursor.as_str())?;
        let mut ranges = {
            let cached = self
                .slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if position.is_none() || cached.is_empty() {
                self.refresh_slots(deadline).await?
            } else {
                cached
            }
        };
        let mut attempt = 0u32;
        loop {
            let shards = shards(&ranges);
            let Some(first) = shards.first() else {
                return Err(RedisError::from((
                    RedisErrorKind::Parse,
                    "CLUSTER SLOTS lists no primary",
                )));
            };
            // Where this page goes: the primary now serving the position's
            // slot. Another node than the cursor's (a failover) starts that
            // shard over: a server cursor means nothing on another node.
            let (slot, server_cursor, node) = match &position {
                None => (first.0, "0".to_owned(), first.1.clone()),
                Some(p) => {
                    let node = owner(&ranges, p.slot).ok_or_else(|| {
                        RedisError::from((RedisErrorKind::Parse, "no primary serves a slot"))
                    })?;
                    let cursor = if node == p.node {
                        p.server_cursor.clone()
                    } else {
                        "0".to_owned()
                    };
                    (p.slot, cursor, node)
                }
            };
            let cmd = script::command(read, &server_cursor);
            let route = SingleNodeRoutingInfo::ByAddress {
                host: node.0.clone(),
                port: node.1,
            };
            let err = match self.send_once(&route, &[cmd], false).await {
                Ok(values) => {
                    let value = values.into_iter().next().unwrap_or(Value::Nil);
                    let next = match scan_cursor_of(&value) {
                        Some(next) if next != "0" => Some(ScanPosition {
                            slot,
                            server_cursor: next,
                            node,
                        }),
                        // This primary is done: the next one by first slot.
                        _ => {
                            let this = shards
                                .iter()
                                .find(|(_, n)| *n == node)
                                .map_or(slot, |(s, _)| *s);
                            shards
                                .iter()
                                .find(|(s, _)| *s > this)
                                .map(|(s, n)| ScanPosition {
                                    slot: *s,
                                    server_cursor: "0".to_owned(),
                                    node: n.clone(),
                                })
                        }
                    };
                    return Ok((value, next.map(|p| ScanCursor::from_backend(p.text()))));
                }
                Err(err) => err,
            };
            // The node may be gone (failover): list the primaries again.
            let pause = pause_before(attempt);
            if !may_resend(&err, Resend::IfUnanswered) || Instant::now() + pause >= deadline {
                return Err(err);
            }
            tokio::time::sleep(pause).await;
            attempt = attempt.saturating_add(1);
            ranges = self.refresh_slots(deadline).await?;
        }
    }
}

/// SCAN's next cursor from its reply.
fn scan_cursor_of(value: &Value) -> Option<String> {
    let Value::Array(items) = value else {
        return None;
    };
    match items.first()? {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Where a scan over every primary stands: the shard (named by the lowest
/// slot of its primary when the page was read), that primary's address
/// and its own SCAN cursor. As text: `{slot}:{cursor}@{host}:{port}`.
/// Primaries are visited by increasing first slot; after a failover the
/// shard's new primary is scanned from its start (keys may repeat, as
/// scans allow; none present throughout is skipped). Slots moving between
/// primaries during a scan (resharding) void that guarantee for their
/// keys.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ScanPosition {
    slot: u16,
    server_cursor: String,
    node: Node,
}

impl ScanPosition {
    /// `None` for the start of a scan.
    fn parse(text: &str) -> Result<Option<Self>, RedisError> {
        if text.is_empty() {
            return Ok(None);
        }
        let invalid = || {
            RedisError::from((
                RedisErrorKind::Client,
                "invalid cluster scan cursor",
                text.to_owned(),
            ))
        };
        let (position, node) = text.split_once('@').ok_or_else(invalid)?;
        let (slot, cursor) = position.split_once(':').ok_or_else(invalid)?;
        let (host, port) = node.rsplit_once(':').ok_or_else(invalid)?;
        let slot: u16 = slot.parse().map_err(|_| invalid())?;
        if slot >= SLOTS
            || host.is_empty()
            || cursor.is_empty()
            || !cursor.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(invalid());
        }
        Ok(Some(Self {
            slot,
            server_cursor: cursor.to_owned(),
            node: (host.to_owned(), port.parse().map_err(|_| invalid())?),
        }))
    }

    fn text(&self) -> String {
        format!(
            "{}:{}@{}:{}",
            self.slot, self.server_cursor, self.node.0, self.node.1
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn scan_positions_round_trip_and_reject_garbage() {
        let p = ScanPosition {
            slot: 5461,
            server_cursor: "1234".into(),
            node: ("::1".into(), 7001),
        };
        assert_eq!(p.text(), "5461:1234@::1:7001");
        assert_eq!(ScanPosition::parse(&p.text()).unwrap(), Some(p));
        assert_eq!(ScanPosition::parse("").unwrap(), None);
        for bad in [
            "0",
            "x:1@h:1",
            "1:@h:1",
            "1:a@h:1",
            "16384:0@h:1",
            "1:0@:1",
            "1:0@h:x",
        ] {
            assert!(ScanPosition::parse(bad).is_err(), "{bad}");
        }
    }
}
