//! A private Redis Cluster per test: six `redis-server` processes on
//! loopback (three primaries with one replica each), joined with
//! `redis-cli --cluster create`.
//!
//! Like [`crate::RedisServer`]: free loopback ports, no persistence, every
//! node stopped (SIGKILL by pid) and reaped when the guard drops, and a
//! missing `redis-server`/`redis-cli` fails the test. Every wait polls a
//! condition against a deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::hash::{BuildHasher as _, Hasher as _};
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::{Cmd, FromRedisValue, RedisResult};

/// Nodes in a cluster: three primaries, one replica each.
pub const NODES: usize = 6;
/// `--cluster-node-timeout` in milliseconds.
pub const NODE_TIMEOUT_MS: u64 = 1000;
/// Number of hash slots.
pub const SLOTS: u32 = 16384;

/// How long a node may take to come up.
const NODE_STARTUP_LIMIT: Duration = Duration::from_secs(15);
/// How long `redis-cli --cluster create` plus convergence may take.
const CLUSTER_LIMIT: Duration = Duration::from_secs(60);
/// How long a failover may take before the test fails.
const FAILOVER_LIMIT: Duration = Duration::from_secs(60);
/// Pause between two polls of a condition.
const POLL: Duration = Duration::from_millis(20);
/// Port bases: `base..base + NODES` and each port + 10000 (the cluster
/// bus) stay below the ephemeral range (32768+).
const BASE_RANGE: std::ops::RangeInclusive<u16> = 12000..=20000;
/// The cluster bus listens on port + this.
const BUS_OFFSET: u16 = 10000;

/// A node's port and pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClusterNode {
    /// The loopback port.
    pub port: u16,
    /// The `redis-server` pid.
    pub pid: u32,
}

/// One node as some node's `CLUSTER NODES` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// The node id.
    pub id: String,
    /// The client port.
    pub port: u16,
    /// `flags` without `myself` (`master`, `slave`, `fail`, `fail?`, …).
    pub flags: Vec<String>,
    /// The primary's node id, for a replica.
    pub primary_id: Option<String>,
    /// Slot ranges served (inclusive), for a primary.
    pub slots: Vec<(u16, u16)>,
}

impl NodeView {
    /// Whether the node is a primary (`master` flag).
    pub fn is_primary(&self) -> bool {
        self.has_flag("master")
    }

    /// Whether the node is a replica (`slave` flag).
    pub fn is_replica(&self) -> bool {
        self.has_flag("slave")
    }

    /// Whether the observer flags the node failing or not yet known.
    pub fn is_suspect(&self) -> bool {
        ["fail", "fail?", "handshake", "noaddr", "nofailover"]
            .iter()
            .any(|f| self.has_flag(f))
    }

    fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

/// The whole cluster as one node's `CLUSTER NODES` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Every node the observer knows, by port.
    pub nodes: BTreeMap<u16, NodeView>,
}

impl Topology {
    /// Parses `CLUSTER NODES` output.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut nodes = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 {
                return Err(format!("short CLUSTER NODES line: {line:?}"));
            }
            let addr = fields[1].split(['@', ',']).next().unwrap_or_default();
            let port = addr
                .rsplit(':')
                .next()
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(|| format!("no port in {line:?}"))?;
            let flags = fields[2]
                .split(',')
                .filter(|f| *f != "myself")
                .map(str::to_owned)
                .collect();
            let primary_id = (fields[3] != "-").then(|| fields[3].to_owned());
            let mut slots = Vec::new();
            for s in &fields[8..] {
                if s.starts_with('[') {
                    continue; // a slot being migrated or imported
                }
                let (a, b) = s.split_once('-').unwrap_or((s, s));
                let a = a.parse().map_err(|_| format!("bad slot {s:?}"))?;
                let b = b.parse().map_err(|_| format!("bad slot {s:?}"))?;
                slots.push((a, b));
            }
            slots.sort_unstable();
            nodes.insert(
                port,
                NodeView {
                    id: fields[0].to_owned(),
                    port,
                    flags,
                    primary_id,
                    slots,
                },
            );
        }
        Ok(Self { nodes })
    }

    /// Every slot range with the port of the primary serving it, sorted.
    pub fn slot_map(&self) -> Vec<(u16, u16, u16)> {
        let mut map: Vec<_> = self
            .nodes
            .values()
            .filter(|n| n.is_primary())
            .flat_map(|n| n.slots.iter().map(move |&(a, b)| (a, b, n.port)))
            .collect();
        map.sort_unstable();
        map
    }

    /// The port of the primary serving `slot`.
    pub fn owner_of(&self, slot: u16) -> Option<u16> {
        self.slot_map()
            .into_iter()
            .find(|&(a, b, _)| a <= slot && slot <= b)
            .map(|(_, _, port)| port)
    }

    /// The port of the primary a replica follows.
    pub fn primary_of(&self, replica: u16) -> Option<u16> {
        let id = self.nodes.get(&replica)?.primary_id.as_deref()?;
        self.nodes.values().find(|n| n.id == id).map(|n| n.port)
    }

    /// Ports of the primaries that serve slots (ascending).
    pub fn primaries(&self) -> Vec<u16> {
        self.nodes
            .values()
            .filter(|n| n.is_primary() && !n.slots.is_empty() && !n.is_suspect())
            .map(|n| n.port)
            .collect()
    }

    /// Ports of the replicas not flagged failing (ascending).
    pub fn replicas(&self) -> Vec<u16> {
        self.nodes
            .values()
            .filter(|n| n.is_replica() && !n.is_suspect())
            .map(|n| n.port)
            .collect()
    }

    /// Whether every slot is served exactly once.
    pub fn covers_all_slots(&self) -> bool {
        let mut next = 0u32;
        for (a, b, _) in self.slot_map() {
            if u32::from(a) != next {
                return false;
            }
            next = u32::from(b) + 1;
        }
        next == SLOTS
    }
}

/// One range of `CLUSTER SLOTS`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SlotRange {
    /// First slot.
    pub start: u16,
    /// Last slot (inclusive).
    pub end: u16,
    /// The primary's port.
    pub primary: u16,
    /// The listed replicas' ports.
    pub replicas: Vec<u16>,
}

/// A finished failover.
#[derive(Debug, Clone, Copy)]
pub struct Failover {
    /// The replica that took over the killed primary's slots.
    pub new_primary: u16,
    /// From the SIGKILL to `cluster_state:ok` on every live node with the
    /// slots served by the new primary.
    pub elapsed: Duration,
}

#[derive(Debug)]
struct Node {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// Length of the log before the current process started.
    log_offset: usize,
}

impl Node {
    fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Debug, Clone)]
struct Killed {
    port: u16,
    slots: Vec<(u16, u16)>,
    at: Instant,
}

/// Credentials the guard itself uses (admin queries, `redis-cli`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// ACL user (`None`: the default user).
    pub username: Option<String>,
    /// Password.
    pub password: String,
}

/// Six `redis-server` processes joined into one cluster; every node is
/// killed (SIGKILL by pid) and reaped when dropped.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Node>,
    args: Vec<String>,
    credentials: Option<Credentials>,
    startup: Duration,
    killed: Vec<Killed>,
    // Last: removed after Drop has killed the nodes.
    root: tempfile::TempDir,
}

impl RedisCluster {
    /// A healthy cluster (see [`Self::start_with`]).
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A healthy cluster whose nodes all get `extra` arguments too.
    ///
    /// Credentials for the guard's own connections (and `redis-cli`):
    /// `--masteruser U --masterauth P` when given (the replicas need them
    /// anyway), else `--requirepass P` for the default user, which is then
    /// also passed as `--masterauth`. An ACL variant:
    /// `["--user", "default off", "--user", "app on >pw ~* &* +@all",
    /// "--masteruser", "app", "--masterauth", "pw"]`.
    ///
    /// Returns once every node reports `cluster_state:ok`, every replica's
    /// link to its primary is up, and all six agree on the slot map — in
    /// `CLUSTER NODES` and in `CLUSTER SLOTS` (what clients read), where a
    /// replica appears only once its replication offset is non-zero.
    pub fn start_with(extra: &[&str]) -> Self {
        let started = Instant::now();
        let mut args: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        let credentials = credentials_from(&mut args);
        let mut last_error = String::new();
        for _ in 0..5 {
            let root = tempfile::tempdir().expect("temp dir for the cluster");
            let Some(base) = free_base() else {
                last_error = "no free port range".to_owned();
                continue;
            };
            let mut cluster = Self {
                nodes: Vec::new(),
                args: args.clone(),
                credentials: credentials.clone(),
                startup: Duration::ZERO,
                killed: Vec::new(),
                root,
            };
            match cluster.launch(base) {
                Ok(()) => {
                    cluster.startup = started.elapsed();
                    return cluster;
                }
                Err(e) => last_error = e,
            }
            // Dropping `cluster` kills what started; try other ports.
        }
        panic!("redis cluster did not start: {last_error}");
    }

    fn launch(&mut self, base: u16) -> Result<(), String> {
        for i in 0..NODES {
            let port = base + u16::try_from(i).expect("few nodes");
            let dir = self.root.path().join(port.to_string());
            std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {dir:?}: {e}"))?;
            self.nodes.push(Node {
                port,
                dir,
                child: None,
                log_offset: 0,
            });
        }
        for i in 0..NODES {
            self.spawn(i)?;
        }
        self.create()?;
        self.wait_healthy_within(CLUSTER_LIMIT)
    }

    /// Starts node `i` and waits until it answers.
    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let node = self.nodes.get_mut(i).expect("node index");
        let dir = node.dir.clone();
        let binary = crate::server::server_binary();
        let mut cmd = Command::new(&binary);
        cmd.args(["--port", &node.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes", "--cluster-config-file"])
            .arg(dir.join("nodes.conf"))
            .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
            .args(["--repl-diskless-sync-delay", "0"])
            // Replicas get a non-zero offset (and so appear in CLUSTER
            // SLOTS, which clients read) within a second, not ten.
            .args(["--repl-ping-replica-period", "1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(node.log_path())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        node.log_offset = node.log().len();
        let child = cmd.spawn().map_err(|e| {
            format!("cannot run {binary} ({e}); install it: apt-get install -y redis-server")
        })?;
        node.child = Some(child);
        let started = Instant::now();
        loop {
            if let Some(child) = node.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    node.child = None;
                    return Err(format!(
                        "node {} exited with {status}: {}",
                        node.port,
                        node.log()
                    ));
                }
            }
            if answers(node) {
                return Ok(());
            }
            if started.elapsed() > NODE_STARTUP_LIMIT {
                return Err(format!(
                    "node {} not ready after {NODE_STARTUP_LIMIT:?}: {}",
                    node.port,
                    node.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `redis-cli --cluster create … --cluster-replicas 1 --cluster-yes`.
    fn create(&self) -> Result<(), String> {
        let out = self.root.path().join("create.out");
        let file = std::fs::File::create(&out).map_err(|e| e.to_string())?;
        let err_file = file.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new("redis-cli");
        if let Some(c) = &self.credentials {
            if let Some(user) = &c.username {
                cmd.args(["--user", user]);
            }
            cmd.args(["-a", &c.password, "--no-auth-warning"]);
        }
        cmd.args(["--cluster", "create"])
            .args(self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err_file);
        let mut child = cmd.spawn().map_err(|e| {
            format!("cannot run redis-cli ({e}); install it: apt-get install -y redis-tools")
        })?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                let text = std::fs::read_to_string(&out).unwrap_or_default();
                return if status.success() && !text.contains("[ERR]") {
                    Ok(())
                } else {
                    Err(format!(
                        "redis-cli --cluster create failed ({status}): {text}"
                    ))
                };
            }
            if started.elapsed() > CLUSTER_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "redis-cli --cluster create hung: {}",
                    std::fs::read_to_string(&out).unwrap_or_default()
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Polls until the whole cluster is healthy (see [`Self::start_with`]):
    /// after [`Self::restart_node`], for instance.
    pub fn wait_healthy(&self) {
        if let Err(e) = self.wait_healthy_within(CLUSTER_LIMIT) {
            panic!("{e}");
        }
    }

    fn wait_healthy_within(&self, limit: Duration) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let state = self.health();
            match state {
                Ok(()) => return Ok(()),
                Err(e) if started.elapsed() > limit => {
                    return Err(format!("cluster not healthy after {limit:?}: {e}"))
                }
                Err(_) => std::thread::sleep(POLL),
            }
        }
    }

    /// `Ok` when every node is up, `cluster_state:ok`, every replica's link
    /// is up, and all agree on a full slot map with 3 primaries and 3
    /// replicas and no node flagged failing.
    fn health(&self) -> Result<(), String> {
        let mut first: Option<Topology> = None;
        for node in &self.nodes {
            if node.child.is_none() {
                return Err(format!("node {} is not running", node.port));
            }
            let info: String = self
                .query(node.port, redis::cmd("CLUSTER").arg("INFO"))
                .map_err(|e| format!("{}: {e}", node.port))?;
            if !info.contains("cluster_state:ok") {
                return Err(format!("{} not ok yet", node.port));
            }
            let topo = self.topology_from(node.port)?;
            if topo.nodes.len() != NODES {
                return Err(format!("{} knows {} nodes", node.port, topo.nodes.len()));
            }
            if let Some(n) = topo.nodes.values().find(|n| n.is_suspect()) {
                return Err(format!("{} flags {}: {:?}", node.port, n.port, n.flags));
            }
            if topo.primaries().len() != NODES / 2 || topo.replicas().len() != NODES / 2 {
                return Err(format!("{} sees roles {:?}", node.port, topo.nodes));
            }
            if !topo.covers_all_slots() {
                return Err(format!("{} sees partial slots", node.port));
            }
            for r in topo.replicas() {
                let p = topo
                    .primary_of(r)
                    .ok_or_else(|| format!("{r} has no primary"))?;
                if !topo.primaries().contains(&p) {
                    return Err(format!("{r} follows {p}, not a primary"));
                }
            }
            if topo.nodes.get(&node.port).is_some_and(NodeView::is_replica) {
                let repl: String = self
                    .query(node.port, redis::cmd("INFO").arg("replication"))
                    .map_err(|e| format!("{}: {e}", node.port))?;
                if !repl.contains("master_link_status:up") {
                    return Err(format!("replica {} link not up", node.port));
                }
            }
            // What clients see: CLUSTER SLOTS lists a replica only once
            // its replication offset is known to be non-zero.
            let slots = self.cluster_slots(node.port)?;
            let expected: Vec<(u16, u16, u16)> = topo.slot_map();
            let listed: Vec<(u16, u16, u16)> =
                slots.iter().map(|s| (s.start, s.end, s.primary)).collect();
            if listed != expected {
                return Err(format!("{}: CLUSTER SLOTS {slots:?}", node.port));
            }
            if let Some(s) = slots.iter().find(|s| s.replicas.len() != 1) {
                return Err(format!("{}: CLUSTER SLOTS lists replicas {s:?}", node.port));
            }
            match &first {
                None => first = Some(topo),
                Some(f) => {
                    if !same_roles(f, &topo) {
                        return Err(format!("{} disagrees on the topology", node.port));
                    }
                }
            }
        }
        Ok(())
    }

    /// `CLUSTER SLOTS` on `port`, sorted.
    pub fn cluster_slots(&self, port: u16) -> Result<Vec<SlotRange>, String> {
        let v: redis::Value = self
            .query(port, redis::cmd("CLUSTER").arg("SLOTS"))
            .map_err(|e| format!("{port}: {e}"))?;
        let bad = || format!("{port}: unexpected CLUSTER SLOTS {v:?}");
        let redis::Value::Array(ranges) = &v else {
            return Err(bad());
        };
        let mut out = Vec::new();
        for range in ranges {
            let redis::Value::Array(items) = range else {
                return Err(bad());
            };
            let int = |i: usize| match items.get(i) {
                Some(redis::Value::Int(n)) => u16::try_from(*n).ok(),
                _ => None,
            };
            let ports: Vec<u16> = items
                .iter()
                .skip(2)
                .filter_map(|n| match n {
                    redis::Value::Array(node) => match node.get(1) {
                        Some(redis::Value::Int(p)) => u16::try_from(*p).ok(),
                        _ => None,
                    },
                    _ => None,
                })
                .collect();
            let (Some(a), Some(b), Some((&primary, replicas))) =
                (int(0), int(1), ports.split_first())
            else {
                return Err(bad());
            };
            out.push(SlotRange {
                start: a,
                end: b,
                primary,
                replicas: replicas.to_vec(),
            });
        }
        out.sort();
        Ok(out)
    }

    /// How long [`Self::start_with`] took (processes, create, convergence).
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// `redis://127.0.0.1:P` for every node (live or not).
    pub fn seed_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// Every node's port.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// The ports of running nodes.
    pub fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect()
    }

    /// The credentials the guard uses, if the nodes require any.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// The primaries serving slots now, as a live node sees them.
    pub fn primaries(&self) -> Vec<ClusterNode> {
        let topo = self.topology();
        self.with_pids(topo.primaries())
    }

    /// The replicas now (not flagged failing), as a live node sees them.
    pub fn replicas(&self) -> Vec<ClusterNode> {
        let topo = self.topology();
        self.with_pids(topo.replicas())
    }

    fn with_pids(&self, ports: Vec<u16>) -> Vec<ClusterNode> {
        ports
            .into_iter()
            .filter_map(|port| {
                let pid = self.node(port).child.as_ref()?.id();
                Some(ClusterNode { port, pid })
            })
            .collect()
    }

    /// The cluster as the first live node sees it.
    pub fn topology(&self) -> Topology {
        let port = *self.live_ports().first().expect("a live node");
        self.topology_from(port).expect("CLUSTER NODES")
    }

    /// The cluster as the node on `port` sees it.
    pub fn topology_from(&self, port: u16) -> Result<Topology, String> {
        let text: String = self
            .query(port, redis::cmd("CLUSTER").arg("NODES"))
            .map_err(|e| format!("{port}: {e}"))?;
        Topology::parse(&text)
    }

    /// The slot of `key` (`CLUSTER KEYSLOT` on a live node).
    pub fn slot_for_key(&self, key: &str) -> u16 {
        let port = *self.live_ports().first().expect("a live node");
        self.query(port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
            .expect("CLUSTER KEYSLOT")
    }

    /// The port of the primary serving `key` now.
    pub fn primary_for_key(&self, key: &str) -> u16 {
        let slot = self.slot_for_key(key);
        self.topology()
            .owner_of(slot)
            .unwrap_or_else(|| panic!("no primary serves slot {slot}"))
    }

    /// SIGKILLs the primary on `port` (by pid) and reaps it.
    pub fn kill_primary(&mut self, port: u16) {
        let topo = self.topology();
        let view = topo
            .nodes
            .get(&port)
            .filter(|n| n.is_primary() && !n.slots.is_empty())
            .unwrap_or_else(|| panic!("{port} is not a primary serving slots"));
        let slots = view.slots.clone();
        self.node_mut(port).kill();
        self.killed.push(Killed {
            port,
            slots,
            at: Instant::now(),
        });
    }

    /// SIGKILLs any node (by pid) and reaps it.
    pub fn kill_node(&mut self, port: u16) {
        self.node_mut(port).kill();
    }

    /// Polls until a replica serves every slot the primary killed on
    /// `port` served and every live node says `cluster_state:ok` and
    /// agrees on the slot map.
    pub fn wait_failover_of(&self, port: u16) -> Failover {
        let killed = self
            .killed
            .iter()
            .rev()
            .find(|k| k.port == port)
            .unwrap_or_else(|| panic!("{port} was not killed with kill_primary"))
            .clone();
        loop {
            let last = match self.failed_over(&killed) {
                Ok(new_primary) => {
                    return Failover {
                        new_primary,
                        elapsed: killed.at.elapsed(),
                    }
                }
                Err(e) => e,
            };
            assert!(
                killed.at.elapsed() < FAILOVER_LIMIT,
                "no failover of {port} after {FAILOVER_LIMIT:?}: {last}"
            );
            std::thread::sleep(POLL);
        }
    }

    fn failed_over(&self, killed: &Killed) -> Result<u16, String> {
        let mut map: Option<Vec<(u16, u16, u16)>> = None;
        let mut new_primary = None;
        for port in self.live_ports() {
            let info: String = self
                .query(port, redis::cmd("CLUSTER").arg("INFO"))
                .map_err(|e| format!("{port}: {e}"))?;
            if !info.contains("cluster_state:ok") {
                return Err(format!("{port} not ok"));
            }
            let topo = self.topology_from(port)?;
            let owners: BTreeSet<Option<u16>> = killed
                .slots
                .iter()
                .flat_map(|&(a, b)| [topo.owner_of(a), topo.owner_of(b)])
                .collect();
            let owner = match owners.into_iter().collect::<Vec<_>>().as_slice() {
                [Some(p)] if *p != killed.port && self.live_ports().contains(p) => *p,
                other => return Err(format!("{port} sees owners {other:?}")),
            };
            if new_primary.is_some_and(|p| p != owner) {
                return Err(format!("{port} disagrees on the new primary"));
            }
            new_primary = Some(owner);
            let m = topo.slot_map();
            if map.as_ref().is_some_and(|first| *first != m) {
                return Err(format!("{port} disagrees on the slot map"));
            }
            map = Some(m);
        }
        new_primary.ok_or_else(|| "no live node".to_owned())
    }

    /// Starts a killed node again on its port with its `nodes.conf`: it
    /// rejoins (a former primary as a replica of its successor). Use
    /// [`Self::wait_healthy`] to wait until it has synced.
    pub fn restart_node(&mut self, port: u16) {
        let i = self.index(port);
        self.nodes.get_mut(i).expect("node").kill();
        let started = Instant::now();
        loop {
            match self.spawn(i) {
                Ok(()) => return,
                Err(e) if started.elapsed() > NODE_STARTUP_LIMIT => {
                    panic!("node {port} did not restart: {e}")
                }
                // The port can linger briefly after a kill.
                Err(_) => std::thread::sleep(POLL),
            }
        }
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the node on `port` by pid.
    pub fn signal(&self, port: u16, signal: &str) {
        let pid = self
            .node(port)
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("node {port} is not running"))
            .id();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid} failed");
    }

    /// The log of the node on `port` (for failure messages).
    pub fn log(&self, port: u16) -> String {
        self.node(port).log()
    }

    /// The working directory of the node on `port`.
    pub fn dir(&self, port: u16) -> &Path {
        &self.node(port).dir
    }

    /// One command on the node on `port` over a fresh plain connection
    /// (authenticated with the guard's credentials), 2 s timeouts.
    pub fn query<T: FromRedisValue>(&self, port: u16, cmd: &Cmd) -> RedisResult<T> {
        let client = redis::Client::open(self.admin_url(port))?;
        let mut con = client.get_connection_with_timeout(Duration::from_secs(2))?;
        con.set_read_timeout(Some(Duration::from_secs(2)))?;
        con.set_write_timeout(Some(Duration::from_secs(2)))?;
        cmd.query(&mut con)
    }

    /// What the nodes say they are (`INFO server` of the first live node).
    pub fn info(&self) -> crate::ServerInfo {
        let port = *self.live_ports().first().expect("a live node");
        let text: String = self
            .query(port, redis::cmd("INFO").arg("server"))
            .expect("INFO server");
        crate::ServerInfo::parse(&text).unwrap_or_else(|| panic!("no version in INFO: {text}"))
    }

    fn admin_url(&self, port: u16) -> String {
        match &self.credentials {
            None => format!("redis://127.0.0.1:{port}"),
            Some(c) => format!(
                "redis://{}:{}@127.0.0.1:{port}",
                percent_encode(c.username.as_deref().unwrap_or("")),
                percent_encode(&c.password)
            ),
        }
    }

    fn index(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    fn node(&self, port: u16) -> &Node {
        self.nodes.get(self.index(port)).expect("node")
    }

    fn node_mut(&mut self, port: u16) -> &mut Node {
        let i = self.index(port);
        self.nodes.get_mut(i).expect("node")
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }
}

/// Stores and raw access on a cluster.
impl RedisCluster {
    /// One cluster shared by every test of this binary that holds the
    /// handle (start-up takes seconds): started by the first, stopped
    /// when the last handle drops. Tests sharing it must use key spaces
    /// of their own.
    pub fn shared() -> std::sync::Arc<Self> {
        use std::sync::{Arc, Mutex, PoisonError, Weak};
        static SHARED: Mutex<Weak<RedisCluster>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cluster) = shared.upgrade() {
            return cluster;
        }
        let cluster = Arc::new(Self::start());
        *shared = Arc::downgrade(&cluster);
        cluster
    }

    /// A store config for this cluster over `keys` (tagged layout), with
    /// the guard's credentials.
    pub fn config(
        &self,
        keys: authsession_driver::core::KeySpace,
    ) -> authsession_driver::ClusterConfig {
        authsession_driver::ClusterConfig {
            nodes: self
                .ports()
                .into_iter()
                .map(|p| format!("127.0.0.1:{p}"))
                .collect(),
            settings: authsession_driver::StoreSettings {
                username: self.credentials.as_ref().and_then(|c| c.username.clone()),
                password: self.credentials.as_ref().map(|c| c.password.clone()),
                key_space: keys,
                ..authsession_driver::StoreSettings::default()
            },
        }
    }

    /// A connected store over `keys` (tagged layout).
    pub async fn store(
        &self,
        keys: authsession_driver::core::KeySpace,
    ) -> authsession_driver::ClusterSessionStore {
        authsession_driver::ClusterSessionStore::connect(self.config(keys))
            .await
            .expect("connect a store to the test cluster")
    }

    /// Raw access through the cluster client (default retries, 5 s
    /// response timeout): for planting data and reading it back.
    pub async fn raw(&self) -> crate::ClusterRaw {
        let mut builder = redis::cluster::ClusterClient::builder(self.seed_urls())
            .response_timeout(Duration::from_secs(5))
            .min_retry_wait(10)
            .max_retry_wait(100);
        if let Some(c) = &self.credentials {
            if let Some(user) = &c.username {
                builder = builder.username(user);
            }
            builder = builder.password(&c.password);
        }
        let conn = builder
            .build()
            .expect("cluster client")
            .get_async_connection()
            .await
            .expect("raw connection to the test cluster");
        crate::ClusterRaw::new(conn)
    }
}

/// Whether two observers agree on every node's role, primary and slots.
fn same_roles(a: &Topology, b: &Topology) -> bool {
    type Roles = Vec<(u16, bool, Option<u16>, Vec<(u16, u16)>)>;
    let key = |t: &Topology| -> Roles {
        t.nodes
            .values()
            .map(|n| {
                (
                    n.port,
                    n.is_primary(),
                    t.primary_of(n.port),
                    n.slots.clone(),
                )
            })
            .collect()
    };
    key(a) == key(b)
}

/// Whether this process of `node` is up: its own log says so (another
/// test's server that won the port cannot pass) and the port answers
/// `PING` with `+PONG` or `-NOAUTH`.
fn answers(node: &Node) -> bool {
    let ours = node
        .log()
        .get(node.log_offset..)
        .is_some_and(|tail| tail.contains("Ready to accept connections"));
    if !ours {
        return false;
    }
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", node.port)) else {
        return false;
    };
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

/// A random base port whose `NODES` ports and their bus ports are free on
/// 127.0.0.1 right now.
fn free_base() -> Option<u16> {
    let span = u64::from(BASE_RANGE.end() - BASE_RANGE.start()) + 1;
    for attempt in 0..50u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(attempt);
        h.write_u32(std::process::id());
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        let offset = u16::try_from(h.finish() % span).expect("span fits u16");
        let base = BASE_RANGE.start() + offset;
        let free = (0..NODES).all(|i| {
            let port = base + u16::try_from(i).expect("few nodes");
            TcpListener::bind(("127.0.0.1", port)).is_ok()
                && TcpListener::bind(("127.0.0.1", port + BUS_OFFSET)).is_ok()
        });
        if free {
            return Some(base);
        }
    }
    None
}

/// The guard's credentials from the node arguments; adds `--masterauth`
/// for a `--requirepass` without one.
fn credentials_from(args: &mut Vec<String>) -> Option<Credentials> {
    let value = |name: &str| {
        args.windows(2)
            .rev()
            .find(|w| w[0] == name)
            .map(|w| w[1].clone())
    };
    if let Some(password) = value("--masterauth") {
        return Some(Credentials {
            username: value("--masteruser"),
            password,
        });
    }
    let password = value("--requirepass")?;
    args.extend(["--masterauth".to_owned(), password.clone()]);
    Some(Credentials {
        username: None,
        password,
    })
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES_TEXT: &str = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922
292f 127.0.0.1:30003@40003 master - 0 1426238318243 3 connected 10923-16383
6ec2 127.0.0.1:30005@40005 slave 67ed 0 1426238316232 5 connected
824f 127.0.0.1:30006@40006 slave 292f 0 1426238317741 6 connected
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460
";

    #[test]
    fn parses_cluster_nodes() {
        let t = Topology::parse(NODES_TEXT).unwrap();
        assert_eq!(t.primaries(), vec![30001, 30002, 30003]);
        assert_eq!(t.replicas(), vec![30004, 30005, 30006]);
        assert_eq!(t.primary_of(30004), Some(30001));
        assert_eq!(t.owner_of(5461), Some(30002));
        assert!(t.covers_all_slots());
        assert_eq!(t.nodes[&30001].flags, vec!["master"]);
    }

    #[test]
    fn credentials_from_args() {
        let mut a = vec!["--requirepass".to_owned(), "p w".to_owned()];
        let c = credentials_from(&mut a).unwrap();
        assert_eq!(c.password, "p w");
        assert_eq!(a[2..], ["--masterauth", "p w"]);
        let mut b: Vec<String> = ["--masteruser", "app", "--masterauth", "s"]
            .map(str::to_owned)
            .to_vec();
        let c = credentials_from(&mut b).unwrap();
        assert_eq!(c.username.as_deref(), Some("app"));
        assert_eq!(percent_encode("p w"), "p%20w");
    }
}
