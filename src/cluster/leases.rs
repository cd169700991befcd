//! Shard leases with fencing, and node membership, kept in Redis.
//!
//! A node serves a shard only while it holds the shard's lease: `lease:{sN}` =
//! `node/incarnation:epoch` with a TTL (the incarnation tells this process of the node from an
//! earlier one). Taking a free (or expired) lease bumps the shard's `epoch:{sN}` counter, so every
//! term of ownership has its own epoch; the owner renews within the TTL. Safety does not rest on
//! clocks: every journal append names the epoch it was written under, and the append script
//! (`persistence::redis_journal`) refuses it unless the lease still holds exactly that — a
//! paused or partitioned former owner can acknowledge nothing once another node took over.
//!
//! Membership: each node refreshes `node:<name>` (its HTTP address, with a TTL); a node is
//! down when its key has expired, never because one TCP connection broke.
//!
//! Drain: `drain:<name>` names the process of the node being drained (its holder id), so a
//! later process of the same node joins as usual. Every keeper prefers other nodes for the
//! drained node's shards, and the drained node hands them over (`cluster::keeper`). Keepers
//! listen on the channel [`WAKE`]: a released lease or a drain request is acted on at once,
//! not at the next round.

use crate::cluster::shards::Shard;
use redis::aio::ConnectionManager;
use std::time::Duration;

/// Takes the lease when it is free, already this process's (renewing it), or held by an
/// earlier process of the same node name (a restart: it is taken over at once, under a new
/// epoch, so nothing the old process might still send is accepted); the epoch held, or -1 when
/// another node holds it. `KEYS`: lease, epoch counter. `ARGV`: holder (`node/incarnation`),
/// TTL in ms, node name.
const ACQUIRE: &str = r"
local held = redis.call('GET', KEYS[1])
if held then
  local owner, epoch = string.match(held, '^(.*):(%d+)$')
  if owner == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(epoch)
  end
  local node = string.match(owner or '', '^([^/]*)/')
  if node ~= ARGV[3] then
    return -1
  end
end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. epoch, 'PX', ARGV[2])
return epoch
";

/// Gives the lease up if it is still held under this epoch. `KEYS`: lease. `ARGV`: fence.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Deletes a node's membership key if this process wrote it (a later process of the node may
/// have joined since). `KEYS`: the membership key. `ARGV`: holder (`node/incarnation`).
const LEAVE: &str = r"
local up = redis.call('GET', KEYS[1])
if not up then
  return 0
end
local ok, report = pcall(cjson.decode, up)
if ok and type(report) == 'table' and report['holder'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The term under which a node holds a shard: what its appends are fenced with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// `node/incarnation`: the node's name and this process's start.
    pub holder: String,
    pub epoch: u64,
}

impl Fence {
    /// The lease's value while this term lasts: `node/incarnation:epoch`.
    pub fn token(&self) -> String {
        format!("{}:{}", self.holder, self.epoch)
    }
}

/// Who holds a shard now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The node's name.
    pub node: String,
    /// `node/incarnation`: which process of the node.
    pub holder: String,
    pub epoch: u64,
}

/// `node/incarnation:epoch` as held in a lease key.
fn parse_holder(held: &str) -> Option<Holder> {
    let (holder, epoch) = held.rsplit_once(':')?;
    Some(Holder {
        node: holder.split('/').next().unwrap_or(holder).to_owned(),
        holder: holder.to_owned(),
        epoch: epoch.parse().ok()?,
    })
}

/// What a node says about itself with every heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeReport {
    /// Where it serves HTTP.
    pub http: String,
    /// How many shards it holds.
    pub shards: usize,
    /// How many entities it has active.
    pub entities: u64,
    /// The reporting process (`node/incarnation`): a drain names it.
    #[serde(default)]
    pub holder: String,
    /// Whether it is being drained (it hands its shards over and takes none).
    #[serde(default)]
    pub draining: bool,
}

/// The channel keepers listen on to run a round at once.
pub const WAKE: &str = "cluster:wake";

/// The key naming the cluster whose data this Redis holds: a random id set by the first node
/// ever to join. Gone or changed, Redis lost that data (restarted empty, flushed).
pub const CLUSTER_ID: &str = "cluster:id";

/// The lease and membership operations of one node.
#[derive(Clone)]
pub struct Leases {
    redis: ConnectionManager,
    node: String,
    /// `node/incarnation`, unique to this process: a restarted node is another holder.
    holder: String,
    ttl: Duration,
    acquire: redis::Script,
    release: redis::Script,
}

pub fn lease_key(shard: Shard) -> String {
    format!("lease:{}", shard.tag())
}

fn epoch_key(shard: Shard) -> String {
    format!("epoch:{}", shard.tag())
}

fn node_key(node: &str) -> String {
    format!("node:{node}")
}

fn drain_key(node: &str) -> String {
    format!("drain:{node}")
}

impl Leases {
    pub fn new(redis: ConnectionManager, node: impl Into<String>, ttl: Duration) -> Self {
        let node = node.into();
        Self {
            redis,
            holder: format!("{node}/{:016x}", rand::random::<u64>()),
            node,
            ttl,
            acquire: redis::Script::new(ACQUIRE),
            release: redis::Script::new(RELEASE),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The same leases over another connection (the forwarder's re-reads stay off the
    /// renewals' connection).
    pub fn on(&self, redis: ConnectionManager) -> Leases {
        Leases {
            redis,
            ..self.clone()
        }
    }

    /// This process's holder id, `node/incarnation`.
    pub fn holder_id(&self) -> &str {
        &self.holder
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// Takes or renews the shard's lease; the fence to write under, or `None` when another
    /// node holds it.
    pub async fn acquire(&self, shard: Shard) -> redis::RedisResult<Option<Fence>> {
        let epoch: i64 = self
            .acquire
            .key(lease_key(shard))
            .key(epoch_key(shard))
            .arg(&self.holder)
            .arg(self.ttl_ms())
            .arg(&self.node)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(u64::try_from(epoch).ok().map(|epoch| Fence {
            holder: self.holder.clone(),
            epoch,
        }))
    }

    /// Gives the shard up (drain), if this term still holds it; true when it did.
    pub async fn release(&self, shard: Shard, fence: &Fence) -> redis::RedisResult<bool> {
        let released: i64 = self
            .release
            .key(lease_key(shard))
            .arg(fence.token())
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(released == 1)
    }

    /// Who holds the shard, if anyone.
    pub async fn holder(&self, shard: Shard) -> redis::RedisResult<Option<Holder>> {
        let held: Option<String> = redis::cmd("GET")
            .arg(lease_key(shard))
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(held.and_then(|h| parse_holder(&h)))
    }

    /// Says this node is up for one more TTL, with what it reports about itself (a JSON
    /// [`NodeReport`]).
    pub async fn heartbeat(&self, report: &NodeReport) -> redis::RedisResult<()> {
        let report = serde_json::to_string(report).unwrap_or_default();
        redis::cmd("SET")
            .arg(node_key(&self.node))
            .arg(report)
            .arg("PX")
            .arg(self.ttl_ms())
            .query_async(&mut self.redis.clone())
            .await
    }

    /// Says this node is down (a graceful stop), unless a later process of it has joined:
    /// the others then take its released shards at once, where its membership key would
    /// have kept it preferred for them, and them waiting, until the key expired.
    pub async fn leave(&self) -> redis::RedisResult<()> {
        let _: i64 = redis::Script::new(LEAVE)
            .key(node_key(&self.node))
            .arg(&self.holder)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(())
    }

    /// Which of `nodes` are up: those whose membership key has not expired.
    pub async fn live(&self, nodes: &[String]) -> redis::RedisResult<Vec<String>> {
        let reports = self.reports(nodes).await?;
        Ok(nodes
            .iter()
            .zip(reports)
            .filter_map(|(n, up)| up.map(|_| n.clone()))
            .collect())
    }

    /// What each of `nodes` last reported, `None` for a node that is down.
    pub async fn reports(&self, nodes: &[String]) -> redis::RedisResult<Vec<Option<NodeReport>>> {
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = nodes.iter().map(|n| node_key(n)).collect();
        let up: Vec<Option<String>> = redis::cmd("MGET")
            .arg(keys)
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(up
            .into_iter()
            .map(|r| r.map(|r| serde_json::from_str(&r).unwrap_or_default()))
            .collect())
    }

    /// Which process of each of `nodes` is to be drained, if any.
    pub async fn drains(&self, nodes: &[String]) -> redis::RedisResult<Vec<Option<String>>> {
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = nodes.iter().map(|n| drain_key(n)).collect();
        redis::cmd("MGET")
            .arg(keys)
            .query_async(&mut self.redis.clone())
            .await
    }

    /// Asks every keeper to drain `holder` (a process of `node`; wake them after). Kept until
    /// the node's next process joins (a later process is not named by it anyway).
    pub async fn request_drain(&self, node: &str, holder: &str) -> redis::RedisResult<()> {
        redis::cmd("SET")
            .arg(drain_key(node))
            .arg(holder)
            .query_async(&mut self.redis.clone())
            .await
    }

    /// Withdraws a drain of `holder`, if it is still the one asked for.
    pub async fn cancel_drain(&self, node: &str, holder: &str) -> redis::RedisResult<()> {
        // The same compare-and-delete as a lease's release.
        let _: i64 = self
            .release
            .key(drain_key(node))
            .arg(holder)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(())
    }

    /// Forgets a drain of an earlier process of this node (called as this process joins).
    pub async fn forget_drain(&self) -> redis::RedisResult<()> {
        redis::cmd("DEL")
            .arg(drain_key(&self.node))
            .query_async(&mut self.redis.clone())
            .await
    }

    /// The id of the cluster whose data this Redis holds, made now if it holds none yet (the
    /// first node to join a new cluster).
    pub async fn claim_cluster_id(&self) -> redis::RedisResult<String> {
        let fresh = format!("{:016x}", rand::random::<u64>());
        let mut redis = self.redis.clone();
        let _: Option<String> = redis::cmd("SET")
            .arg(CLUSTER_ID)
            .arg(fresh)
            .arg("NX")
            .query_async(&mut redis)
            .await?;
        redis::cmd("GET")
            .arg(CLUSTER_ID)
            .query_async(&mut redis)
            .await
    }

    /// The id of the cluster whose data this Redis holds, if any.
    pub async fn cluster_id(&self) -> redis::RedisResult<Option<String>> {
        redis::cmd("GET")
            .arg(CLUSTER_ID)
            .query_async(&mut self.redis.clone())
            .await
    }

    /// Makes every keeper run a round now.
    pub async fn wake(&self) -> redis::RedisResult<()> {
        redis::cmd("PUBLISH")
            .arg(WAKE)
            .arg(&self.holder)
            .query_async(&mut self.redis.clone())
            .await
    }

    /// Every shard's holder, in shard order, in one round trip.
    pub async fn holders(&self, shards: u32) -> redis::RedisResult<Vec<Option<Holder>>> {
        let keys: Vec<String> = (0..shards).map(|s| lease_key(Shard(s))).collect();
        let held: Vec<Option<String>> = redis::cmd("MGET")
            .arg(keys)
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(held.into_iter().map(|h| parse_holder(&h?)).collect())
    }
}
