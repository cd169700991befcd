//! Joining the cluster: what a node in cluster mode opens instead of its sled journal — the
//! Redis connection, the check that the cluster file matches the cluster Redis holds, the
//! secrets every node shares, the lease keeper (its first round done, so the node holds its
//! shards before it serves) and the Redis journal fenced by those leases.

use crate::actors::EntityKind;
use crate::cluster::config::{ClusterSettings, NodeSettings};
use crate::cluster::forward::Forwarder;
use crate::cluster::handover::Handovers;
use crate::cluster::keeper::Keeper;
use crate::cluster::leases::{Holder, Leases, NodeReport};
use crate::cluster::peers;
use crate::cluster::region::{self, RegionMsg};
use crate::cluster::routing::Routing;
use crate::cluster::shards::Shard;
use crate::cluster::views;
use crate::config::Settings;
use crate::persistence::redis_journal::{Fences, RedisJournal};
use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ractor::ActorRef;
use ractor_cluster::NodeServerMessage;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// This node's place in the cluster, while it runs.
pub struct Member {
    pub client: redis::Client,
    pub redis: ConnectionManager,
    pub journal: Arc<RedisJournal>,
    pub fences: Arc<Fences>,
    /// Notified when this node takes a shard after joining: reminders and held drop orders of
    /// the new shard are to be woken.
    pub shards_taken: Arc<tokio::sync::Notify>,
    /// This node's name, and the cluster file's shard count and nodes.
    pub node: String,
    /// Where each shard's view stream ended when the node joined: its views tail starts there
    /// (read before the stored views are loaded, so nothing written in between is missed).
    pub view_positions: Vec<String>,
    pub cluster: ClusterSettings,
    /// Who holds each shard and which nodes are up, as last read: where asks are forwarded.
    pub routing: Arc<Routing>,
    leases: Leases,
    /// This node as the cluster file lists it.
    me: NodeSettings,
    /// The nodes' shared secret (`cookie`).
    cookie: String,
    /// The region and the node server, once `connect` started them.
    peers: std::sync::OnceLock<(ActorRef<RegionMsg>, ActorRef<NodeServerMessage>)>,
    /// The entity kinds, once `connect` has them: the keeper stops a departing shard's.
    kinds: Arc<std::sync::OnceLock<Vec<Arc<dyn EntityKind>>>>,
    /// Cancelled by `leave`: the keeper gives every lease up and ends.
    keeper_stop: CancellationToken,
    keeper: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Member {
    /// Connects, checks the shard count, takes this node's first shards and starts the keeper.
    /// `settings` must be a cluster node's (`Settings::cluster_node`).
    pub async fn join(settings: &Settings) -> anyhow::Result<Member> {
        let (cluster, node) = match (&settings.cluster, settings.cluster_node()) {
            (Some(cluster), Some(node)) => (cluster, node),
            _ => anyhow::bail!("cluster mode needs a cluster file and a node name"),
        };
        let client = redis::Client::open(cluster.redis_url.as_str()).with_context(|| {
            format!(
                "cluster.redis_url `{}` is not a Redis URL",
                cluster.redis_url
            )
        })?;
        // Fail fast while Redis is away (the request gets 503 and retries), reconnect by itself.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(3)))
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500))
            .set_number_of_retries(2);
        let redis = tokio::time::timeout(
            Duration::from_secs(10),
            ConnectionManager::new_with_config(client.clone(), config.clone()),
        )
        .await
        .map_err(|_| anyhow::anyhow!("no answer from Redis at {}", cluster.redis_url))?
        .with_context(|| format!("cannot reach Redis at {}", cluster.redis_url))?;
        check_shards(cluster, &redis).await?;
        let cookie = cookie(settings.dev_mode, &redis).await?;
        let view_positions = views::positions(&redis, cluster.shards).await?;
        let fences = Arc::new(Fences::default());
        let ttl = Duration::from_millis(cluster.lease_ttl_ms);
        // Leases on a connection of their own: a renewal never waits behind journal writes.
        let lease_redis = ConnectionManager::new_with_config(client.clone(), config.clone())
            .await
            .with_context(|| format!("cannot reach Redis at {}", cluster.redis_url))?;
        let leases = Leases::new(lease_redis, node.name.clone(), ttl);
        let taken = Arc::new(tokio::sync::Notify::new());
        let routing = Arc::new(Routing::new(cluster.shards));
        let kinds = Arc::new(std::sync::OnceLock::new());
        let wake = Arc::new(tokio::sync::Notify::new());
        let keeper = Keeper {
            handovers: Handovers::new(
                leases.clone(),
                fences.clone(),
                cluster.shards,
                kinds.clone(),
            ),
            wake: wake.clone(),
            cluster_id: std::sync::OnceLock::new(),
            routing: routing.clone(),
            taken: taken.clone(),
            leases: leases.clone(),
            fences: fences.clone(),
            nodes: cluster.names(),
            http: format!("http://{}", settings.server.listen),
            shards: cluster.shards,
        };
        leases
            .forget_drain()
            .await
            .context("cannot reach Redis to join")?;
        let mut free = HashMap::new();
        keeper
            .round(&mut free)
            .await
            .context("cannot take shard leases in Redis")?;
        metrics::counter!("emporium_shard_handovers_total").increment(0);
        for outcome in ["held", "lost", "error"] {
            metrics::counter!("emporium_lease_renewals_total", "outcome" => outcome).increment(0);
        }
        tracing::info!(node = %node.name, shards = fences.shards().len(), of = cluster.shards,
            "joined the cluster");
        let keeper_stop = CancellationToken::new();
        spawn_wake_listener(client.clone(), wake, keeper_stop.clone());
        let handle = tokio::spawn(keeper.run(keeper_stop.clone()));
        let journal = RedisJournal::new(redis.clone(), cluster.shards, fences.clone());
        Ok(Member {
            client,
            redis,
            journal,
            fences,
            shards_taken: taken,
            node: node.name.clone(),
            view_positions,
            cluster: cluster.clone(),
            routing,
            leases,
            me: node.clone(),
            cookie,
            peers: std::sync::OnceLock::new(),
            kinds,
            keeper_stop,
            keeper: tokio::sync::Mutex::new(Some(handle)),
        })
    }

    /// Keeps the read models current with the views other nodes write, until `shutdown`
    /// (see `cluster::views`); on a connection of its own.
    pub async fn tail_views(
        &self,
        receivers: Vec<Arc<dyn EntityKind>>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        // Its reads block up to a second: the response timeout must be longer.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(5)));
        let own = ConnectionManager::new_with_config(self.client.clone(), config)
            .await
            .context("cannot open the connection that tails the views")?;
        let me = self.leases.holder_id().to_owned();
        let from = self.view_positions.clone();
        let fences = self.fences.clone();
        tokio::spawn(views::tail(own, from, me, receivers, fences, shutdown));
        Ok(())
    }

    /// Carries what `bus` announces to the other nodes, and theirs to `bus` (see
    /// `cluster::relay`), until `shutdown`.
    pub async fn relay(
        &self,
        bus: &crate::events::EventBus,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let me = self.leases.holder_id().to_owned();
        crate::cluster::relay::start(bus, &self.client, self.redis.clone(), me, shutdown)
            .await
            .context("cannot subscribe to the relay of the other nodes' events")
    }

    /// Asks for `node` to be drained: it hands its shards to the others and takes none, until
    /// its process is replaced. The process drained is the one up now.
    pub async fn drain(&self, node: &str) -> Result<(), DrainRefusal> {
        let names = self.cluster.names();
        let Some(at) = names.iter().position(|n| n == node) else {
            return Err(DrainRefusal::UnknownNode);
        };
        let reports = self.leases.reports(&names).await?;
        let drains = self.leases.drains(&names).await?;
        let Some(report) = &reports[at] else {
            return Err(DrainRefusal::Down);
        };
        if report.holder.is_empty() {
            return Err(DrainRefusal::NotReporting);
        }
        // Drained already, every shard handed over: down, as `GET /admin/cluster` shows it.
        if drains[at].as_deref() == Some(report.holder.as_str()) && report.shards == 0 {
            return Err(DrainRefusal::Down);
        }
        let others_up = |reports: &[Option<NodeReport>], drains: &[Option<String>]| {
            names.iter().zip(reports).zip(drains).any(|((n, r), d)| {
                n != node
                    && r.as_ref()
                        .is_some_and(|r| d.as_deref() != Some(r.holder.as_str()))
            })
        };
        if !others_up(&reports, &drains) {
            return Err(DrainRefusal::LastNode);
        }
        self.leases.request_drain(node, &report.holder).await?;
        // Two drains at once must not drain every node: checked again after, and withdrawn.
        let reports = self.leases.reports(&names).await?;
        let drains = self.leases.drains(&names).await?;
        if !others_up(&reports, &drains) {
            self.leases.cancel_drain(node, &report.holder).await?;
            return Err(DrainRefusal::LastNode);
        }
        self.leases.wake().await?;
        tracing::info!(node, holder = %report.holder, "drain requested");
        Ok(())
    }

    /// Every node of the cluster file as it stands now: up (with what it last reported) or down.
    pub async fn nodes(&self) -> redis::RedisResult<Vec<(NodeSettings, Option<NodeReport>)>> {
        let names = self.cluster.names();
        let reports = self.leases.reports(&names).await?;
        let drains = self.leases.drains(&names).await?;
        Ok(self
            .cluster
            .nodes
            .iter()
            .cloned()
            .zip(reports.into_iter().zip(drains))
            .map(|(node, (report, drain))| {
                let report = report.map(|mut r| {
                    // Asked for, even if the node has not acted on it yet.
                    r.draining |= drain.as_deref() == Some(r.holder.as_str());
                    r
                });
                (node, report)
            })
            .collect())
    }

    /// Every shard's holder (node and epoch), in shard order; `None` while a shard is free.
    pub async fn shards(&self) -> redis::RedisResult<Vec<Option<Holder>>> {
        self.leases.holders(self.cluster.shards).await
    }

    /// The shard of an entity and who holds it.
    pub async fn owner_of(
        &self,
        kind: &str,
        key: &str,
    ) -> redis::RedisResult<(Shard, Option<Holder>)> {
        let shard = Shard::of(kind, key, self.cluster.shards);
        Ok((shard, self.leases.holder(shard).await?))
    }

    /// Opens the node to its peers: its region answers asks for the entities of `kinds`
    /// whose shards it holds, and its node server listens and dials the others. Until
    /// `shutdown`.
    pub async fn connect(
        &self,
        kinds: &[Arc<dyn EntityKind>],
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let _ = self.kinds.set(kinds.to_vec());
        let kinds = kinds.iter().map(|k| (k.kind(), k.clone())).collect();
        let region = region::start(&self.me.name, kinds).await?;
        let server = peers::start(
            &self.me,
            &self.cluster,
            self.cookie.clone(),
            self.routing.clone(),
            shutdown,
        )
        .await?;
        let _ = self.peers.set((region, server));
        Ok(())
    }

    /// What carries this node's asks for other nodes' entities to them; each waits
    /// `timeout` for its answer.
    pub fn forwarder(&self, timeout: Duration) -> Forwarder {
        Forwarder {
            routing: self.routing.clone(),
            leases: self.leases.on(self.redis.clone()),
            fences: self.fences.clone(),
            shards: self.cluster.shards,
            timeout,
        }
    }

    /// Gives every lease up (after the final snapshots), so the others take over at once.
    pub async fn leave(&self) {
        self.keeper_stop.cancel();
        if let Some(handle) = self.keeper.lock().await.take() {
            let _ = handle.await;
        }
        if let Some((region, server)) = self.peers.get() {
            region.stop(None);
            server.stop(None);
        }
    }
}

/// Why a drain was refused.
#[derive(Debug, thiserror::Error)]
pub enum DrainRefusal {
    #[error("no node of that name in the cluster file")]
    UnknownNode,
    #[error("the node is down: it holds no shards to hand over")]
    Down,
    #[error("no other node is up to take the shards")]
    LastNode,
    #[error("the node does not report which process it runs (an older version)")]
    NotReporting,
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Runs a round of the keeper whenever a keeper asks for it ([`crate::cluster::leases::WAKE`]),
/// until `stop`; subscribing again while Redis is away (the keeper's own rounds go on).
fn spawn_wake_listener(
    client: redis::Client,
    wake: Arc<tokio::sync::Notify>,
    stop: CancellationToken,
) {
    use futures_util::StreamExt;
    tokio::spawn(async move {
        loop {
            let subscribed = async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(crate::cluster::leases::WAKE).await?;
                redis::RedisResult::Ok(pubsub)
            };
            if let Ok(mut pubsub) = subscribed.await {
                let mut messages = pubsub.on_message();
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        m = messages.next() => match m {
                            Some(_) => wake.notify_one(),
                            None => break,
                        },
                    }
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    });
}

/// The shard count is fixed for the life of a cluster: the first node records it in Redis,
/// and a node whose file says otherwise refuses to start.
async fn check_shards(cluster: &ClusterSettings, redis: &ConnectionManager) -> anyhow::Result<()> {
    let mut redis = redis.clone();
    let _: Option<String> = redis::cmd("SET")
        .arg("cluster:shards")
        .arg(cluster.shards)
        .arg("NX")
        .query_async(&mut redis)
        .await?;
    let held: u32 = redis::cmd("GET")
        .arg("cluster:shards")
        .query_async(&mut redis)
        .await?;
    if held != cluster.shards {
        anyhow::bail!(
            "the cluster file says {} shards, but the cluster in Redis at {} has {held}; the \
             shard count is fixed for the life of a cluster",
            cluster.shards,
            cluster.redis_url
        );
    }
    Ok(())
}

/// In dev mode, the secrets the nodes share (JWT secret, personal-data key, operator token)
/// that are not configured are generated once into Redis by the first node and read there by
/// the others; outside dev mode they must be configured (the same variables as one node).
pub async fn shared_secrets(
    settings: &mut Settings,
    redis: &ConnectionManager,
) -> anyhow::Result<()> {
    if !settings.dev_mode {
        return Ok(());
    }
    let a = &mut settings.auth;
    for (slot, name, bytes) in [
        (&mut a.jwt_secret, "jwt", 48),
        (&mut a.pii_key, "pii", 32),
        (&mut a.operator_token, "operator", 24),
    ] {
        if slot.is_none() {
            *slot = Some(SecretString::from(shared_secret(redis, name, bytes).await?));
        }
    }
    tracing::warn!(
        "dev mode: the cluster's secrets are kept in Redis (configure them in production)"
    );
    Ok(())
}

/// The cookie the nodes authenticate each other with: `EMPORIUM_CLUSTER_COOKIE`, or in dev
/// mode, when it is not set, one generated once into Redis (with a warning).
pub async fn cookie(dev_mode: bool, redis: &ConnectionManager) -> anyhow::Result<String> {
    match std::env::var("EMPORIUM_CLUSTER_COOKIE") {
        Ok(cookie) if !cookie.is_empty() => Ok(cookie),
        _ if dev_mode => {
            tracing::warn!(
                "dev mode: EMPORIUM_CLUSTER_COOKIE is not set; the nodes share one generated \
                 into Redis (set it in production)"
            );
            shared_secret(redis, "cookie", 24).await
        }
        _ => anyhow::bail!(
            "EMPORIUM_CLUSTER_COOKIE is not set: outside dev mode the nodes need it to \
             authenticate each other"
        ),
    }
}

/// The secret `name` kept in Redis, generated (`bytes` random bytes, base64) by the first
/// node that asks.
async fn shared_secret(
    redis: &ConnectionManager,
    name: &str,
    bytes: usize,
) -> anyhow::Result<String> {
    let key = format!("secret:{name}");
    let fresh = STANDARD.encode((0..bytes).map(|_| rand::random::<u8>()).collect::<Vec<_>>());
    let mut redis = redis.clone();
    let _: Option<String> = redis::cmd("SET")
        .arg(&key)
        .arg(fresh)
        .arg("NX")
        .query_async(&mut redis)
        .await?;
    Ok(redis::cmd("GET").arg(&key).query_async(&mut redis).await?)
}
