//! Where keys live: hash slots (computed as Redis does), the primaries'
//! slot ranges as `CLUSTER SLOTS` lists them, and the primary of a slot.

use std::collections::BTreeMap;
use std::sync::PoisonError;

use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
use redis::{ErrorKind as RedisErrorKind, RedisError, Value};
use tokio::time::Instant;

use super::send::Resend;
use super::ClusterBackend;

/// Number of hash slots of a Redis Cluster.
pub(super) const SLOTS: u16 = 16384;

/// A primary, as `(host, port)`.
pub(super) type Node = (String, u16);

/// One primary's slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SlotRange {
    pub(super) start: u16,
    pub(super) end: u16,
    pub(super) host: String,
    pub(super) port: u16,
}

impl ClusterBackend {
    /// The primaries' slot ranges, listed afresh (`CLUSTER SLOTS`).
    pub(super) async fn refresh_slots(
        &self,
        deadline: Instant,
    ) -> Result<Vec<SlotRange>, RedisError> {
        let cmd = redis::cmd("CLUSTER").arg("SLOTS").to_owned();
        let values = self
            .send(
                deadline,
                &SingleNodeRoutingInfo::RandomPrimary,
                &[cmd],
                Resend::IfUnanswered,
            )
            .await?;
        let value = values
            .into_iter()
            .next()
            .unwrap_or(Value::Nil)
            .extract_error()?;
        let fallback = self.info.address.as_deref().unwrap_or("127.0.0.1");
        let ranges = parse_slots(&value, fallback).ok_or_else(|| {
            RedisError::from((
                RedisErrorKind::Parse,
                "unexpected CLUSTER SLOTS reply",
                format!("{value:?}"),
            ))
        })?;
        *self.slots.lock().unwrap_or_else(PoisonError::into_inner) = ranges.clone();
        Ok(ranges)
    }

    /// The primary serving `key`'s slot, as last listed (listed now if
    /// never).
    pub(super) async fn node_of(&self, deadline: Instant, key: &str) -> Result<Node, RedisError> {
        let slot = key_slot(key.as_bytes());
        let cached = owner(
            &self.slots.lock().unwrap_or_else(PoisonError::into_inner),
            slot,
        );
        match cached {
            Some(node) => Ok(node),
            None => {
                let ranges = self.refresh_slots(deadline).await?;
                owner(&ranges, slot).ok_or_else(|| {
                    RedisError::from((RedisErrorKind::Parse, "no primary serves a slot"))
                })
            }
        }
    }
}

/// The hash slot of `key`, as Redis and redis-rs compute it: CRC16/XMODEM
/// (the `crc16` crate redis-rs uses) of the key, or of its `{tag}` when it
/// has a non-empty one, modulo 16384. (redis-rs computes the same in
/// `Slot::for_key` but does not expose the number.)
pub(crate) fn key_slot(key: &[u8]) -> u16 {
    let hashed = hash_tag(key).unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(hashed) % SLOTS
}

fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let rest = key.get(open + 1..)?;
    let close = rest.iter().position(|&b| b == b'}')?;
    rest.get(..close).filter(|tag| !tag.is_empty())
}

pub(super) fn slot_route(slot: u16) -> SingleNodeRoutingInfo {
    SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master))
}

/// `CLUSTER SLOTS` → the primaries' ranges, sorted by first slot.
fn parse_slots(value: &Value, fallback_host: &str) -> Option<Vec<SlotRange>> {
    let Value::Array(ranges) = value else {
        return None;
    };
    let mut out = Vec::with_capacity(ranges.len());
    for range in ranges {
        let Value::Array(items) = range else {
            return None;
        };
        let int = |v: Option<&Value>| match v {
            Some(Value::Int(n)) => u16::try_from(*n).ok(),
            _ => None,
        };
        let start = int(items.first())?;
        let end = int(items.get(1))?;
        let Some(Value::Array(primary)) = items.get(2) else {
            return None;
        };
        let host = match primary.first() {
            Some(Value::BulkString(b)) => String::from_utf8(b.clone()).ok()?,
            Some(Value::SimpleString(s)) => s.clone(),
            _ => return None,
        };
        // An empty or unknown endpoint means "the node you asked".
        let host = if host.is_empty() || host == "?" {
            fallback_host.to_owned()
        } else {
            host
        };
        let port = int(primary.get(1))?;
        out.push(SlotRange {
            start,
            end,
            host,
            port,
        });
    }
    out.sort_by_key(|r| r.start);
    Some(out)
}

/// Every primary once, with its lowest slot, ordered by it.
pub(super) fn shards(ranges: &[SlotRange]) -> Vec<(u16, Node)> {
    let mut first: BTreeMap<Node, u16> = BTreeMap::new();
    for r in ranges {
        let slot = first.entry((r.host.clone(), r.port)).or_insert(r.start);
        *slot = (*slot).min(r.start);
    }
    let mut out: Vec<(u16, Node)> = first.into_iter().map(|(n, s)| (s, n)).collect();
    out.sort();
    out
}

pub(super) fn owner(ranges: &[SlotRange], slot: u16) -> Option<Node> {
    ranges
        .iter()
        .find(|r| r.start <= slot && slot <= r.end)
        .map(|r| (r.host.clone(), r.port))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn key_slots_match_redis() {
        // Values from the Redis Cluster specification and CLUSTER KEYSLOT.
        assert_eq!(key_slot(b"123456789"), 0x31C3 % SLOTS);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        for key in ["a", "authsession:session:{dXNlcg}aWQ", "x{}", "{", "}{"] {
            assert_eq!(
                Route::new(key_slot(key.as_bytes()), SlotAddr::Master),
                Route::with_key(key, SlotAddr::Master),
                "{key}"
            );
        }
    }

    #[test]
    fn shards_order_primaries_by_first_slot() {
        let r = |start, end, port| SlotRange {
            start,
            end,
            host: "h".into(),
            port,
        };
        let ranges = [r(0, 99, 2), r(100, 199, 1), r(200, 299, 2)];
        assert_eq!(
            shards(&ranges),
            [(0, ("h".into(), 2)), (100, ("h".into(), 1))]
        );
        assert_eq!(owner(&ranges, 250), Some(("h".into(), 2)));
        assert_eq!(owner(&ranges, 300), None);
    }
}
