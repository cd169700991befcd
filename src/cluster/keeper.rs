//! The lease keeper: one task per node that decides which shards the node holds.
//!
//! Every third of the lease TTL it says the node is up (membership), reads every shard's
//! holder, and for each shard:
//! - held here: renewed, unless a live node is preferred for it — then handed over (a few per
//!   round, so a joining node receives shards gradually);
//! - free: taken if this node is preferred (rendezvous hashing over the live nodes), or by
//!   anyone once it has been free for a grace period (its preferred node is gone or slow);
//! - held elsewhere: the local fence, if any, is dropped.
//!
//! Renewals set the fence's local deadline (TTL less a margin from the renewal): a node that
//! cannot reach Redis stops writing its shards when the deadline passes, and takes them back
//! by itself once Redis answers again.
//!
//! **Drain.** A node being drained (`leases`, "Drain") is preferred for no shard and takes
//! none; its keeper hands every shard over in one round, all at once. A hand-over (drain or
//! rebalancing) stops admitting asks for the shard, lets those admitted finish, stops the
//! shard's entities after a final snapshot, releases the lease and wakes every keeper
//! ([`leases::WAKE`](crate::cluster::leases::WAKE)), so the next owner takes it within
//! milliseconds instead of a TTL; requests meanwhile wait in the forwarder and then go there.

use crate::actors::EntityKind;
use crate::cluster::leases::{Leases, NodeReport};
use crate::cluster::routing::Routing;
use crate::cluster::shards::Shard;
use crate::persistence::fences::Fences;
use futures_util::future::join_all;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub struct Keeper {
    pub leases: Leases,
    pub fences: Arc<Fences>,
    /// Every node of the cluster file.
    pub nodes: Vec<String>,
    /// This node's HTTP address, published with its membership.
    pub http: String,
    pub shards: u32,
    /// Notified each time this node takes a shard (a new term): what it must wake there.
    pub taken: Arc<tokio::sync::Notify>,
    /// Refreshed every round with the holders and the live nodes read (for forwarding).
    pub routing: Arc<Routing>,
    /// The node's entity kinds, once started: a shard handed over stops its entities.
    pub kinds: Arc<OnceLock<Vec<Arc<dyn EntityKind>>>>,
    /// Notified to run a round now (a lease was released, a drain was asked for).
    pub wake: Arc<Notify>,
}

/// How the cluster looks to one round.
struct Picture {
    /// Nodes up (this one included).
    live: Vec<String>,
    /// Nodes up and not being drained: the ones shards may be placed on.
    eligible: Vec<String>,
    /// Whether this process is being drained.
    draining: bool,
}

/// A free shard's preferred node has this long to take it before anyone may.
fn grace(ttl: Duration) -> Duration {
    ttl
}

/// The most shards handed over per round.
fn handovers_per_round(shards: u32) -> usize {
    (shards as usize / 16).max(1)
}

impl Keeper {
    /// Keeps leases until `shutdown`, then gives every held shard up.
    pub async fn run(self, shutdown: CancellationToken) {
        let every = self.leases.ttl() / 3;
        let mut free_since: HashMap<Shard, Instant> = HashMap::new();
        loop {
            if let Err(e) = self.round(&mut free_since).await {
                tracing::warn!(error = %e, "cannot reach Redis to keep the shard leases");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(every) => {}
                () = self.wake.notified() => {}
            }
        }
        self.release_all().await;
    }

    /// Who is up and who may hold shards; says this node is up (membership) on the way.
    async fn picture(&self) -> redis::RedisResult<Picture> {
        let me = self.leases.node().to_owned();
        let this_process = self.leases.holder_id().to_owned();
        let drains = self.leases.drains(&self.nodes).await?;
        let draining = self
            .nodes
            .iter()
            .zip(&drains)
            .any(|(n, d)| *n == me && d.as_deref() == Some(this_process.as_str()));
        let report = NodeReport {
            http: self.http.clone(),
            shards: self.fences.shards().len(),
            entities: crate::actors::active_entities(),
            holder: this_process,
            draining,
        };
        self.leases.heartbeat(&report).await?;
        let reports = self.leases.reports(&self.nodes).await?;
        let mut live = Vec::new();
        let mut eligible = Vec::new();
        for ((node, report), drain) in self.nodes.iter().zip(reports).zip(drains) {
            let Some(report) = report else { continue };
            live.push(node.clone());
            let drained = drain.is_some() && drain.as_deref() == Some(report.holder.as_str())
                || (*node == me && draining);
            if !drained {
                eligible.push(node.clone());
            }
        }
        if !live.contains(&me) {
            live.push(me.clone());
            if !draining {
                eligible.push(me);
            }
        }
        Ok(Picture {
            live,
            eligible,
            draining,
        })
    }

    /// One round: membership, then every shard's lease; then the hand-overs decided.
    pub async fn round(&self, free_since: &mut HashMap<Shard, Instant>) -> redis::RedisResult<()> {
        let picture = self.picture().await?;
        let me = self.leases.node().to_owned();
        let this_process = self.leases.holder_id().to_owned();
        let holders = self.leases.holders(self.shards).await?;
        self.routing.set_live(picture.live.clone());
        self.routing.set_holders(holders.clone());
        let mut leaving = Vec::new();
        let mut failed = None;
        for (s, holder) in holders.into_iter().enumerate() {
            let shard = Shard(s as u32);
            let preferred = shard.preferred(&picture.eligible).cloned();
            let mut outcome = Ok(());
            match holder {
                Some(h) if h.holder == this_process => {
                    free_since.remove(&shard);
                    // Renewed either way: the lease must not lapse while the shard leaves.
                    outcome = self.take(shard).await;
                    let elsewhere = preferred.as_ref().is_some_and(|p| *p != me);
                    if elsewhere
                        && (picture.draining || leaving.len() < handovers_per_round(self.shards))
                    {
                        leaving.push(shard);
                    } else {
                        self.fences.stay(shard);
                    }
                }
                // An earlier process of this node (a restart): its shards are taken at once,
                // unless this one is being drained (the others take them when they expire).
                Some(h) if h.node == me && !picture.draining => {
                    free_since.remove(&shard);
                    outcome = self.take(shard).await;
                }
                Some(_) => {
                    free_since.remove(&shard);
                    self.fences.clear(shard);
                }
                None => {
                    let since = *free_since.entry(shard).or_insert_with(Instant::now);
                    let orphaned = since.elapsed() >= grace(self.leases.ttl());
                    let mine = preferred.as_deref() == Some(me.as_str());
                    if mine || (orphaned && !picture.draining) {
                        free_since.remove(&shard);
                        outcome = self.take(shard).await;
                    } else {
                        self.fences.clear(shard);
                    }
                }
            }
            // One shard's failure does not keep the others from being renewed this round.
            if let Err(e) = outcome {
                failed.get_or_insert(e);
            }
        }
        for outcome in join_all(leaving.into_iter().map(|s| self.hand_over(s))).await {
            if let Err(e) = outcome {
                failed.get_or_insert(e);
            }
        }
        metrics::gauge!("emporium_cluster_shards_owned").set(self.fences.shards().len() as f64);
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Takes or renews the shard; the fence is good for the TTL less a margin from now.
    async fn take(&self, shard: Shard) -> redis::RedisResult<()> {
        let asked = Instant::now();
        let acquired = self.leases.acquire(shard).await;
        metrics::histogram!("emporium_redis_command_seconds", "op" => "lease")
            .record(asked.elapsed().as_secs_f64());
        let outcome = match &acquired {
            Ok(Some(_)) => "held",
            Ok(None) => "lost",
            Err(_) => "error",
        };
        metrics::counter!("emporium_lease_renewals_total", "outcome" => outcome).increment(1);
        match acquired? {
            Some(fence) => {
                let ttl = self.leases.ttl();
                let until = asked + ttl.saturating_sub(ttl / 5);
                let renewed = self.fences.get(shard).is_some_and(|f| f == fence);
                if !renewed {
                    tracing::info!(shard = shard.0, epoch = fence.epoch, "shard taken");
                    self.taken.notify_one();
                }
                self.fences.hold(shard, fence, until);
            }
            None => self.fences.clear(shard),
        }
        Ok(())
    }

    /// Hands the shard over: stops admitting asks for it, lets those admitted finish, stops
    /// its entities after a final snapshot, gives its lease up and wakes every keeper, so its
    /// preferred node takes it at once.
    async fn hand_over(&self, shard: Shard) -> redis::RedisResult<()> {
        let Some(fence) = self.fences.get(shard) else {
            return Ok(());
        };
        let started = Instant::now();
        self.fences.leave(shard);
        // Within a third of the TTL: the lease, renewed this round, outlasts the hand-over.
        if !self.fences.settled(shard, self.leases.ttl() / 3).await {
            tracing::warn!(shard = shard.0, "asks still running at the hand-over");
        }
        let mut stopped = 0;
        if let Some(kinds) = self.kinds.get() {
            let shards = self.shards;
            for kind in kinds {
                let name = kind.kind();
                let leaving = move |key: &str| Shard::of(name, key, shards) == shard;
                stopped += kind.stop_where(&leaving).await;
            }
        }
        self.leases.release(shard, &fence).await?;
        self.fences.clear_if(shard, &fence);
        let _ = self.leases.wake().await;
        tracing::info!(shard = shard.0, epoch = fence.epoch, stopped, took = ?started.elapsed(),
            "shard handed over");
        metrics::counter!("emporium_shard_handovers_total").increment(1);
        Ok(())
    }

    /// Gives every held shard up (shutdown): the others take them without waiting for a TTL.
    pub async fn release_all(&self) {
        for shard in self.fences.shards() {
            if let Some(fence) = self.fences.get(shard) {
                self.fences.clear(shard);
                let _ = self.leases.release(shard, &fence).await;
            }
        }
        let _ = self.leases.wake().await;
    }
}
