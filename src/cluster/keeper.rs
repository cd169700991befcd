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

use crate::cluster::leases::{Leases, NodeReport};
use crate::cluster::routing::Routing;
use crate::cluster::shards::Shard;
use crate::persistence::redis_journal::Fences;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
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
            }
        }
        self.release_all().await;
    }

    /// One round: membership, then every shard's lease.
    pub async fn round(&self, free_since: &mut HashMap<Shard, Instant>) -> redis::RedisResult<()> {
        let report = NodeReport {
            http: self.http.clone(),
            shards: self.fences.shards().len(),
            entities: crate::actors::active_entities(),
        };
        self.leases.heartbeat(&report).await?;
        let mut live = self.leases.live(&self.nodes).await?;
        let me = self.leases.node().to_owned();
        let this_process = self.leases.holder_id().to_owned();
        if !live.contains(&me) {
            live.push(me.clone());
        }
        let holders = self.leases.holders(self.shards).await?;
        self.routing.set_live(live.clone());
        self.routing.set_holders(holders.clone());
        let mut handed = 0;
        let mut failed = None;
        for (s, holder) in holders.into_iter().enumerate() {
            let shard = Shard(s as u32);
            let preferred = shard.preferred(&live).cloned();
            let mut outcome = Ok(());
            match holder {
                Some(h) if h.holder == this_process => {
                    free_since.remove(&shard);
                    let elsewhere = preferred.as_ref().is_some_and(|p| *p != me);
                    if elsewhere && handed < handovers_per_round(self.shards) {
                        handed += 1;
                        outcome = self.hand_over(shard).await;
                    } else {
                        outcome = self.take(shard).await;
                    }
                }
                // An earlier process of this node (a restart): its shards are taken at once.
                Some(h) if h.node == me => {
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
                    if preferred.as_deref() == Some(me.as_str()) || orphaned {
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
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Takes or renews the shard; the fence is good for the TTL less a margin from now.
    async fn take(&self, shard: Shard) -> redis::RedisResult<()> {
        let asked = Instant::now();
        match self.leases.acquire(shard).await? {
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

    /// Stops writing the shard, then gives its lease up so its preferred node takes it at once.
    async fn hand_over(&self, shard: Shard) -> redis::RedisResult<()> {
        let Some(fence) = self.fences.get(shard) else {
            return Ok(());
        };
        self.fences.clear(shard);
        self.leases.release(shard, &fence).await?;
        tracing::info!(shard = shard.0, epoch = fence.epoch, "shard handed over");
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
    }
}
