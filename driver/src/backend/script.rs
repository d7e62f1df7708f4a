//! The Redis translation shared by the standalone and cluster backends:
//! plans → the generic Lua script's `KEYS`/`ARGV`, reads → commands, and
//! replies → the core's [`Reply`]s.

use authsession_core::plan::{
    Applied, IndexRange, KeyTable, KeyType, Plan, Precondition, Read, Reply, ScanCursor,
    ScoreBound, Write, WritePhase,
};
use authsession_core::IndexScore;
use std::sync::OnceLock;
use std::time::Duration;

use redis::Value;

use super::bounded;

use crate::error::Error;

/// The plan applier (see its header for the encoding).
pub(crate) const APPLY_PLAN_LUA: &str = include_str!("apply_plan.lua");

/// The SHA-1 `EVALSHA` names the script by (computed once).
fn script_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| redis::Script::new(APPLY_PLAN_LUA).get_hash().to_owned())
}

/// One run of the script for one plan, built once from it (redis-rs's
/// `ScriptInvocation`, but every argument is written straight from the
/// plan into the command, copied once): `EVALSHA` with the plan's `KEYS`
/// and `ARGV`, followed — when the plan writes and replicas must confirm
/// it — by `WAIT`, in one pipeline so that it runs on the same connection
/// right after the script. [`invoke`] runs it on any connection.
pub(crate) struct Invocation<'p> {
    table: KeyTable<'p>,
    cmds: redis::Pipeline,
    /// The replicas `WAIT` must hear from.
    wait: Option<u32>,
}

impl<'p> Invocation<'p> {
    /// `plan`'s invocation; `wait`: the replicas that must confirm its
    /// writes and how long `WAIT` may wait for them within `budget`. Fails when the plan holds a precondition or
    /// write this driver cannot encode (refused before anything is sent).
    pub(crate) fn new(plan: &'p Plan, wait: ReplicaWait, budget: Duration) -> Result<Self, Error> {
        let table = plan.key_table();
        let (args, bytes) = size_hint(plan, &table);
        let mut evalsha = redis::Cmd::with_capacity(args, bytes);
        evalsha
            .arg("EVALSHA")
            .arg(script_hash())
            .arg(table.keys().len());
        for (key, _) in table.keys() {
            evalsha.arg(*key);
        }
        encode_args(plan, &table, |arg| {
            evalsha.arg(arg);
        })?;
        let ReplicaWait { replicas, timeout } = wait;
        let wait = (replicas > 0 && !plan.writes().is_empty()).then_some(replicas);
        let mut cmds = redis::Pipeline::with_capacity(2);
        cmds.add_command(evalsha);
        if wait.is_some() {
            cmds.add_command(wait_command(replicas, timeout, budget));
        }
        Ok(Self { table, cmds, wait })
    }

    /// The plan's keys, in `KEYS` order.
    #[cfg(any(test, feature = "cluster"))]
    pub(crate) fn keys(&self) -> impl Iterator<Item = &'p str> + '_ {
        self.table.keys().iter().map(|(key, _)| *key)
    }
}

/// Runs `invocation` on `conn` within `budget`: one pipeline; on
/// `NOSCRIPT` (a restarted or flushed server, a replica just promoted)
/// `SCRIPT LOAD` and the same pipeline again, as one pipeline, so both
/// reach the same node even if a cluster slot changes hands meanwhile.
pub(crate) async fn invoke<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    invocation: &Invocation<'_>,
    budget: Duration,
) -> Result<Applied, Error> {
    let cmds = &invocation.cmds;
    let values = bounded(budget, "apply", async {
        let values = conn.req_packed_commands(cmds, 0, cmds.len()).await?;
        if !matches!(values.first(), Some(Value::ServerError(e)) if e.code() == "NOSCRIPT") {
            return Ok(values);
        }
        let mut load_and_run = redis::Pipeline::with_capacity(cmds.len() + 1);
        load_and_run.cmd("SCRIPT").arg("LOAD").arg(APPLY_PLAN_LUA);
        for cmd in cmds.cmd_iter() {
            load_and_run.add_command(cmd.clone());
        }
        let values = conn
            .req_packed_commands(&load_and_run, 0, load_and_run.len())
            .await?;
        let mut values = values.into_iter();
        values.next().unwrap_or(Value::Nil).extract_error()?;
        Ok(values.collect::<Vec<_>>())
    })
    .await?;
    let mut values = values.into_iter();
    let result: i64 = value_of(values.next(), "apply")?;
    let applied = applied(|i| invocation.table.keys().get(i).map(|(k, _)| *k), result);
    if let (Some(replicas), Applied::Done) = (invocation.wait, &applied) {
        check_replicated(replicas, value_of(values.next(), "wait")?)?;
    }
    Ok(applied)
}

/// A pipeline's reply to `op` as `T`, or the server's error.
fn value_of<T: redis::FromRedisValue>(value: Option<Value>, op: &'static str) -> Result<T, Error> {
    value
        .unwrap_or(Value::Nil)
        .extract_error()
        .and_then(|v| redis::from_redis_value(v).map_err(redis::RedisError::from))
        .map_err(|e| Error::redis(op, e))
}

/// How many replicas must confirm a plan's writes (`WAIT`), and how long
/// to wait for them; 0 replicas (the default): no `WAIT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplicaWait {
    pub(crate) replicas: u32,
    pub(crate) timeout: Duration,
}

impl Default for ReplicaWait {
    fn default() -> Self {
        Self {
            replicas: 0,
            timeout: Duration::from_secs(1),
        }
    }
}

/// `WAIT replicas ms`, waiting at most `wait_timeout` and at most 90 % of
/// the round trip's `budget`: the server's answer (how many replicas
/// confirmed) then arrives before the round trip times out, so a missing
/// confirmation is reported as such (`write_unconfirmed`), not as a
/// timeout of unknown outcome.
fn wait_command(replicas: u32, wait_timeout: Duration, budget: Duration) -> redis::Cmd {
    let usable = budget.saturating_sub(budget / 10);
    let millis = u64::try_from(wait_timeout.min(usable).as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    redis::cmd("WAIT").arg(replicas).arg(millis).to_owned()
}

/// `WAIT`'s answer: `acked` replicas confirmed the write, `replicas` were
/// wanted.
fn check_replicated(replicas: u32, acked: u64) -> Result<(), Error> {
    if acked < u64::from(replicas) {
        return Err(Error::unreplicated(replicas, acked));
    }
    Ok(())
}

/// The script's `ARGV` for `plan` (whose keys are `table`, in `KEYS`
/// order), each argument handed to `push` as it is encoded: callers write
/// them straight into a command, without an intermediate copy per
/// argument.
fn encode_args(
    plan: &Plan,
    table: &KeyTable<'_>,
    mut push: impl FnMut(&[u8]),
) -> Result<(), Error> {
    encode_type_table(table, &mut push);
    encode_preconditions(plan, table, &mut push)?;
    WriteGroups::of(plan, table)?.encode(&mut push);
    Ok(())
}

/// Pushes a count (of keys, members, writes) as text.
fn push_count(n: usize, push: &mut dyn FnMut(&[u8])) {
    push(n.to_string().as_bytes());
}

/// The type table: how many keys are checked, then per key its 1-based
/// `KEYS` index and the type it must have (`x`: used both ways).
fn encode_type_table(table: &KeyTable<'_>, push: &mut dyn FnMut(&[u8])) {
    let checked = table.keys().iter().filter(|(_, t)| t.is_some()).count();
    push_count(checked, push);
    let mut index = itoa_buffer();
    for (i, (_, key_type)) in table.keys().iter().enumerate() {
        let Some(key_type) = key_type else { continue };
        push(index.format(i + 1).as_bytes());
        push(match key_type {
            _ if table.is_mixed(i) => b"x",
            KeyType::SortedSet => b"z",
            _ => b"s",
        });
    }
}

/// The preconditions: their count, then each as an opcode, its key's
/// `KEYS` index and its operands. The plan's uses are numbered
/// preconditions first, so the `i`-th precondition is use `i`.
fn encode_preconditions(
    plan: &Plan,
    table: &KeyTable<'_>,
    push: &mut dyn FnMut(&[u8]),
) -> Result<(), Error> {
    let mut number = itoa_buffer();
    // The 1-based `KEYS` index of the key of the plan's `use_`-th use.
    let mut at = |use_: usize, push: &mut dyn FnMut(&[u8])| {
        let n = table.position_of_use(use_).map_or(0, |i| i + 1);
        push(number.format(n).as_bytes());
    };
    push_count(plan.preconditions().len(), push);
    for (use_, precondition) in plan.preconditions().enumerate() {
        match precondition {
            Precondition::Absent { .. } => {
                push(b"A");
                at(use_, push);
            }
            Precondition::ValueEquals { value, .. } => {
                push(b"V");
                at(use_, push);
                push(value);
            }
            Precondition::AbsentOrEquals { value, .. } => {
                push(b"O");
                at(use_, push);
                push(value);
            }
            Precondition::IndexRangeEquals {
                max_score, members, ..
            } => {
                push(b"R");
                at(use_, push);
                push(max_text(*max_score).as_bytes());
                push_count(members.len(), push);
                for member in members {
                    push(member);
                }
            }
            Precondition::IndexContains { members, .. } => {
                push(b"C");
                at(use_, push);
                push_count(members.len(), push);
                for member in members {
                    push(member);
                }
            }
            Precondition::IndexCountAtMost { max_score, max, .. } => {
                push(b"N");
                at(use_, push);
                push(max_text(*max_score).as_bytes());
                push(max.to_string().as_bytes());
            }
            other => return Err(Error::unsupported(format!("{other:?}"))),
        }
    }
    Ok(())
}

/// One call's worth of index writes: one key, one kind, one phase.
struct Run<'p> {
    phase: WritePhase,
    key: usize,
    add: bool,
    items: Vec<&'p Write>,
}

/// Per string key, its last write (`Some(value)`: a set) and its phase.
type LastString<'p> = Option<(Option<&'p [u8]>, WritePhase)>;

/// The writes, grouped so the script makes one call per group, in the
/// plan's fail-safe order (`Plan::write_phases`): phase by phase, so a
/// server that refuses a write part-way (one without
/// `redis.acl_check_cmd`) keeps a safe prefix. Within a phase, index
/// writes become runs (one key, one kind, in plan order; a new run when
/// that key sees the other kind), sent in the order they start; string
/// writes to one key race only with themselves (a key holds strings or
/// sorted sets, never both), so the last one wins, in its phase, as one
/// MSET and one DEL per phase.
struct WriteGroups<'p> {
    runs: Vec<Run<'p>>,
    strings: Vec<LastString<'p>>,
    string_order: Vec<usize>,
}

impl<'p> WriteGroups<'p> {
    fn of(plan: &'p Plan, table: &KeyTable<'_>) -> Result<Self, Error> {
        let keys = table.keys().len();
        let mut groups = Self {
            runs: Vec::new(),
            strings: vec![None; keys],
            string_order: Vec::new(),
        };
        let mut open: Vec<Option<usize>> = vec![None; keys];
        // Writes are numbered after the preconditions among the uses.
        let first_use = plan.preconditions().len();
        for (i, (write, phase)) in plan.writes().iter().zip(plan.write_phases()).enumerate() {
            let key = table.position_of_use(first_use + i).unwrap_or_default();
            match write {
                Write::Set { .. } | Write::Delete { .. } => {
                    let value = match write {
                        Write::Set { value, .. } => Some(value.as_slice()),
                        _ => None,
                    };
                    if let Some(slot) = groups.strings.get_mut(key) {
                        if slot.is_none() {
                            groups.string_order.push(key);
                        }
                        *slot = Some((value, phase));
                    }
                }
                Write::IndexAdd { .. } | Write::IndexRemove { .. } => {
                    let add = matches!(write, Write::IndexAdd { .. });
                    let current = open.get(key).copied().flatten();
                    match current.and_then(|i| groups.runs.get_mut(i)) {
                        Some(run) if run.add == add && run.phase == phase => run.items.push(write),
                        _ => {
                            if let Some(slot) = open.get_mut(key) {
                                *slot = Some(groups.runs.len());
                            }
                            groups.runs.push(Run {
                                phase,
                                key,
                                add,
                                items: vec![write],
                            });
                        }
                    }
                }
                other => return Err(Error::unsupported(format!("{other:?}"))),
            }
        }
        Ok(groups)
    }

    /// The groups, phase by phase: index runs, then one MSET, then one DEL.
    fn encode(&self, push: &mut dyn FnMut(&[u8])) {
        let mut position = itoa_buffer();
        for phase in [
            WritePhase::Cover,
            WritePhase::Record,
            WritePhase::Follow,
            WritePhase::Delete,
        ] {
            for run in self.runs.iter().filter(|r| r.phase == phase) {
                push(if run.add { b"Z" } else { b"X" });
                push(position.format(run.key + 1).as_bytes());
                push_count(run.items.len(), push);
                for write in &run.items {
                    match write {
                        Write::IndexAdd { score, member, .. } => {
                            push(score.to_string().as_bytes());
                            push(member.as_bytes());
                        }
                        Write::IndexRemove { member, .. } => push(member),
                        _ => {}
                    }
                }
            }
            let in_phase: Vec<(usize, Option<&[u8]>)> = self
                .string_order
                .iter()
                .filter_map(|k| match self.strings.get(*k) {
                    Some(Some((value, p))) if *p == phase => Some((*k, *value)),
                    _ => None,
                })
                .collect();
            let sets: Vec<(usize, &[u8])> = in_phase
                .iter()
                .filter_map(|(k, v)| v.map(|v| (*k, v)))
                .collect();
            if !sets.is_empty() {
                push(b"M");
                push_count(sets.len(), push);
                for (key, value) in sets {
                    push(position.format(key + 1).as_bytes());
                    push(value);
                }
            }
            let deletes: Vec<usize> = in_phase
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| *k)
                .collect();
            if !deletes.is_empty() {
                push(b"D");
                push_count(deletes.len(), push);
                for key in deletes {
                    push(position.format(key + 1).as_bytes());
                }
            }
        }
    }
}

/// About how many arguments and bytes `KEYS` and `ARGV` of `plan` take, to
/// size the command once (growing it argument by argument copies every
/// record again on each doubling).
fn size_hint(plan: &Plan, table: &KeyTable<'_>) -> (usize, usize) {
    // Opcodes, key positions, counts and scores: short texts.
    const SHORT: usize = 24;
    let keys: usize = table.keys().iter().map(|(k, _)| k.len()).sum();
    let mut args = 4 + table.keys().len() * 3;
    let mut bytes = keys + table.keys().len() * SHORT;
    for precondition in plan.preconditions() {
        let (n, len) = match precondition {
            Precondition::ValueEquals { value, .. }
            | Precondition::AbsentOrEquals { value, .. } => (1, value.len()),
            Precondition::IndexRangeEquals { members, .. }
            | Precondition::IndexContains { members, .. } => {
                (members.len(), members.iter().map(Vec::len).sum())
            }
            _ => (0, 0),
        };
        args += 4 + n;
        bytes += 4 * SHORT + len + n * SHORT;
    }
    for write in plan.writes() {
        let len = match write {
            Write::Set { value, .. } => value.len(),
            Write::IndexAdd { member, .. } => member.len() + SHORT,
            Write::IndexRemove { member, .. } => member.len(),
            _ => 0,
        };
        args += 4;
        bytes += 3 * SHORT + len;
    }
    (args, bytes)
}

/// Small integers as text without allocating.
struct Itoa([u8; 20]);

fn itoa_buffer() -> Itoa {
    Itoa([0; 20])
}

impl Itoa {
    fn format(&mut self, mut n: usize) -> &str {
        let mut i = self.0.len();
        loop {
            i -= 1;
            if let Some(slot) = self.0.get_mut(i) {
                // n % 10 < 10: the cast cannot truncate.
                #[allow(clippy::cast_possible_truncation)]
                {
                    *slot = b'0' + (n % 10) as u8;
                }
            }
            n /= 10;
            if n == 0 || i == 0 {
                break;
            }
        }
        std::str::from_utf8(self.0.get(i..).unwrap_or_default()).unwrap_or("0")
    }
}

fn max_text(max: Option<IndexScore>) -> String {
    max.map_or_else(|| "+inf".to_owned(), |s| s.to_string())
}

/// The script's answer as the core's [`Applied`]; `key_at(i)` names the
/// `i`-th (0-based) of the plan's `KEYS`.
pub(crate) fn applied<'a>(key_at: impl Fn(usize) -> Option<&'a str>, result: i64) -> Applied {
    match result {
        0 => Applied::Done,
        i if i > 0 => Applied::Violated {
            index: usize::try_from(i - 1).unwrap_or(usize::MAX),
        },
        i => {
            let key = usize::try_from(i.saturating_neg())
                .ok()
                .and_then(|i| i.checked_sub(1))
                .and_then(key_at)
                .map(str::to_owned)
                .unwrap_or_default();
            Applied::WrongType { key }
        }
    }
}

fn bound_text(bound: ScoreBound, unbounded: &str) -> String {
    match bound {
        ScoreBound::Inclusive(s) => s.to_string(),
        ScoreBound::Exclusive(s) => format!("({s}"),
        _ => unbounded.to_owned(),
    }
}

/// The command answering `read`. `scan` turns a scan cursor into the
/// server's own cursor (the standalone backend's is the text itself).
pub(crate) fn command(read: &Read, scan_cursor: &str) -> redis::Cmd {
    match read {
        Read::Value { key } => redis::cmd("GET").arg(key).to_owned(),
        Read::Values { keys } => {
            // Sized once: a batch names up to a thousand keys.
            let bytes = keys.iter().map(String::len).sum::<usize>() + 4;
            let mut cmd = redis::Cmd::with_capacity(keys.len() + 1, bytes);
            cmd.arg("MGET").arg(keys);
            cmd
        }
        Read::IndexLen { key } => redis::cmd("ZCARD").arg(key).to_owned(),
        Read::IndexRange(range) => range_command(range),
        Read::IndexRanks { key, start, limit } => {
            // Inclusive stop rank; a limit of 0 is read as 1 (never the
            // whole set, which `ZRANGE key n n-1` would not be anyway).
            let span = u64::try_from(*limit).unwrap_or(u64::MAX).saturating_sub(1);
            let stop = start.saturating_add(span);
            redis::cmd("ZRANGE")
                .arg(key)
                .arg(*start)
                .arg(stop)
                .arg("WITHSCORES")
                .to_owned()
        }
        Read::IndexScores { key, members } => {
            let bytes = key.len() + members.iter().map(Vec::len).sum::<usize>() + 7;
            let mut cmd = redis::Cmd::with_capacity(members.len() + 2, bytes);
            cmd.arg("ZMSCORE").arg(key).arg(members);
            cmd
        }
        Read::Scan {
            prefix,
            key_type,
            count,
            ..
        } => {
            let cursor = if scan_cursor.is_empty() {
                "0"
            } else {
                scan_cursor
            };
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", glob_escape(prefix)))
                .arg("COUNT")
                .arg(*count)
                .arg("TYPE")
                .arg(match key_type {
                    KeyType::SortedSet => "zset",
                    _ => "string",
                })
                .to_owned()
        }
        other => redis::cmd("ECHO")
            .arg(format!("unsupported read {other:?}"))
            .to_owned(),
    }
}

fn range_command(range: &IndexRange) -> redis::Cmd {
    let min = bound_text(range.min, "-inf");
    let max = bound_text(range.max, "+inf");
    let mut cmd = redis::cmd("ZRANGE");
    cmd.arg(&range.key);
    if range.newest_first {
        cmd.arg(max).arg(min).arg("BYSCORE").arg("REV");
    } else {
        cmd.arg(min).arg(max).arg("BYSCORE");
    }
    if let Some(limit) = range.limit {
        cmd.arg("LIMIT").arg(0).arg(limit);
    }
    if range.with_scores {
        cmd.arg("WITHSCORES");
    }
    cmd
}

/// `prefix` with the glob metacharacters of `SCAN MATCH` escaped.
pub(crate) fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The core reply for `read` from the server's `value` (a pipeline run
/// with errors kept per command). `next_scan` maps the server's scan
/// cursor back into a [`ScanCursor`] (`None`: this server is done).
pub(crate) fn reply(
    read: &Read,
    value: Value,
    op: &'static str,
    next_scan: impl FnOnce(Option<String>) -> Option<ScanCursor>,
) -> Result<Reply, Error> {
    if let Value::ServerError(e) = &value {
        if e.code() == "WRONGTYPE" {
            return Ok(Reply::WrongType);
        }
    }
    let value = value.extract_error().map_err(|e| Error::redis(op, e))?;
    let parse = |e: redis::ParsingError| Error::redis(op, e.into());
    Ok(match read {
        Read::Value { .. } => Reply::Value(redis::from_redis_value(value).map_err(parse)?),
        Read::Values { .. } => Reply::Values(redis::from_redis_value(value).map_err(parse)?),
        Read::IndexLen { .. } => Reply::Len(redis::from_redis_value(value).map_err(parse)?),
        Read::IndexRange(range) if !range.with_scores => {
            Reply::Names(redis::from_redis_value(value).map_err(parse)?)
        }
        Read::IndexRange(_) | Read::IndexRanks { .. } => {
            let pairs: Vec<(Vec<u8>, f64)> = redis::from_redis_value(value).map_err(parse)?;
            Reply::Members(pairs)
        }
        Read::IndexScores { .. } => Reply::Scores(redis::from_redis_value(value).map_err(parse)?),
        Read::Scan { .. } => {
            let (cursor, keys): (String, Vec<Vec<u8>>) =
                redis::from_redis_value(value).map_err(parse)?;
            // Keys under our prefixes are built from base64url text; a
            // non-UTF-8 key cannot be ours.
            let keys = keys
                .into_iter()
                .filter_map(|k| String::from_utf8(k).ok())
                .collect();
            Reply::Keys(keys, next_scan((cursor != "0").then_some(cursor)))
        }
        _ => return Err(Error::unsupported("read".to_owned())),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use authsession_core::plan::OnViolation;

    #[test]
    fn glob_escape_escapes_metacharacters() {
        assert_eq!(glob_escape("a:b"), "a:b");
        assert_eq!(glob_escape("a*?[]\\"), "a\\*\\?\\[\\]\\\\");
    }

    #[test]
    fn plan_encoding_names_keys_by_position_with_their_types() {
        let plan = Plan::new(
            vec![
                Precondition::Absent { key: "k1".into() },
                Precondition::IndexRangeEquals {
                    key: "z".into(),
                    max_score: None,
                    members: vec![b"m1".to_vec(), b"m2".to_vec()],
                },
                Precondition::ValueEquals {
                    key: "k2".into(),
                    value: b"old".to_vec(),
                },
            ],
            vec![
                Write::Set {
                    key: "k1".into(),
                    value: b"v".to_vec(),
                },
                Write::IndexAdd {
                    key: "z".into(),
                    score: IndexScore::of("2024-05-06T07:08:09.123456789Z".parse().unwrap()),
                    member: "m3".into(),
                },
                Write::IndexRemove {
                    key: "z".into(),
                    member: b"m1".to_vec(),
                },
            ],
            OnViolation::Retry,
        );
        let budget = Duration::from_secs(1);
        let invocation = Invocation::new(&plan, ReplicaWait::default(), budget).unwrap();
        assert_eq!(invocation.keys().collect::<Vec<_>>(), ["k1", "z", "k2"]);
        let mut cmds = invocation.cmds.cmd_iter();
        let evalsha = cmds.next().unwrap();
        assert!(cmds.next().is_none(), "no WAIT without replicas");
        let args: Vec<String> = evalsha
            .args_iter()
            .map(|a| match a {
                redis::Arg::Simple(a) => String::from_utf8(a.to_vec()).unwrap(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(args[..6], ["EVALSHA", script_hash(), "3", "k1", "z", "k2"]);
        let argv = &args[6..];
        assert_eq!(
            argv,
            [
                "3",
                "1",
                "s",
                "2",
                "z",
                "3",
                "s",
                "3",
                "A",
                "1",
                "R",
                "2",
                "+inf",
                "2",
                "m1",
                "m2",
                "V",
                "3",
                "old",
                // Writes in groups, in fail-safe order: z's new entry,
                // the set, then z's removal.
                "Z",
                "2",
                "1",
                "1714979289123456",
                "m3",
                "M",
                "1",
                "1",
                "v",
                "X",
                "2",
                "1",
                "m1"
            ]
        );
    }

    #[test]
    fn range_commands() {
        let score = IndexScore::of("2024-05-06T07:08:09Z".parse().unwrap());
        let cmd = range_command(&IndexRange {
            key: "i".into(),
            min: ScoreBound::Unbounded,
            max: ScoreBound::Exclusive(score),
            newest_first: true,
            limit: Some(50),
            with_scores: true,
        });
        let args: Vec<String> = cmd
            .args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => String::from_utf8(b.to_vec()).unwrap(),
                _ => "<cursor>".into(),
            })
            .collect();
        assert_eq!(
            args,
            [
                "ZRANGE",
                "i",
                "(1714979289000000",
                "-inf",
                "BYSCORE",
                "REV",
                "LIMIT",
                "0",
                "50",
                "WITHSCORES"
            ]
        );
    }
}
