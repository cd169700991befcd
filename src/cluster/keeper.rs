//! The lease keeper: one task per node that decides which shards the node holds.
//!
//! Every third of the lease TTL it checks that Redis still holds the cluster the node joined
//! (`cluster:id`: a Redis restarted empty halts the node rather than serving from nothing),
//! says the node is up (membership), reads every shard's holder, and for each shard:
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
//! none; its keeper starts handing every shard over in one round, all at once
//! (`cluster::handover`: in the background, while the keeper goes on renewing the rest).
//! Requests for a leaving shard wait in the forwarder, then go to its next owner. A drained
//! node left with no other node up and not drained (the others died after the drain was
//! accepted, or it was drained and kept running while they stopped) withdraws its own drain
//! and serves every shard again: a drain never leaves the shards without a taker.

use crate::cluster::handover::Handovers;
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
    /// The shards leaving this node (`cluster::handover`).
    pub handovers: Handovers,
    /// Notified to run a round now (a lease was released, a drain was asked for).
    pub wake: Arc<Notify>,
    /// The cluster this node joined ([`crate::cluster::leases::CLUSTER_ID`]), learnt in its
    /// first round.
    pub cluster_id: OnceLock<String>,
}

/// How the cluster looks to one round.
struct Picture {
    /// Nodes up (this one included).
    live: Vec<String>,
    /// Nodes up and not being drained: the ones shards may be placed on.
    eligible: Vec<String>,
    /// Whether this process is being drained.
    draining: bool,
    /// What this node said about itself at the start of the round.
    report: NodeReport,
}

/// A free shard's preferred node has this long to take it before anyone may.
fn grace(ttl: Duration) -> Duration {
    ttl
}

/// Until when a lease renewed at `asked` lets this node write: the TTL less a margin (a fifth)
/// for the clocks' drift and the renewal's own trip.
fn good_until(asked: Instant, ttl: Duration) -> Instant {
    asked + ttl.saturating_sub(ttl / 5)
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
        let ttl = self.leases.ttl();
        loop {
            let asked = Instant::now();
            match self.round(&mut free_since).await {
                Ok(()) => self.fences.in_touch(good_until(asked, ttl)),
                Err(e) => tracing::warn!(error = %e, "cannot reach Redis to keep the shard leases"),
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
        let mut draining = self
            .nodes
            .iter()
            .zip(&drains)
            .any(|(n, d)| *n == me && d.as_deref() == Some(this_process.as_str()));
        let reports = self.leases.reports(&self.nodes).await?;
        let mut live = Vec::new();
        let mut eligible = Vec::new();
        for ((node, report), drain) in self.nodes.iter().zip(reports).zip(drains) {
            if *node == me {
                continue;
            }
            let Some(report) = report else { continue };
            live.push(node.clone());
            if drain.as_deref() != Some(report.holder.as_str()) {
                eligible.push(node.clone());
            }
        }
        if draining && eligible.is_empty() {
            // Every other node died or was drained since the drain was accepted (their
            // membership outlives them by up to a TTL): no one would take the shards, so the
            // drain is withdrawn and this node serves them again.
            self.leases.cancel_drain(&me, &this_process).await?;
            draining = false;
            tracing::warn!(node = %me, "drain withdrawn: no other node is up to take the shards");
        }
        live.push(me.clone());
        if !draining {
            eligible.push(me);
        }
        let report = NodeReport {
            http: self.http.clone(),
            shards: self.fences.shards().len(),
            entities: crate::actors::active_entities(),
            holder: this_process,
            draining,
        };
        self.leases.heartbeat(&report).await?;
        Ok(Picture {
            live,
            eligible,
            draining,
            report,
        })
    }

    /// One round: membership, then every shard's lease; hand-overs decided start in the
    /// background (`cluster::handover`).
    pub async fn round(&self, free_since: &mut HashMap<Shard, Instant>) -> redis::RedisResult<()> {
        self.handovers.forget_done();
        if !self
            .same_cluster()
            .await
            .inspect_err(|_| self.renewals_failed())?
        {
            return Ok(());
        }
        let picture = self
            .picture()
            .await
            .inspect_err(|_| self.renewals_failed())?;
        let me = self.leases.node().to_owned();
        let this_process = self.leases.holder_id().to_owned();
        let holders = self
            .leases
            .holders(self.shards)
            .await
            .inspect_err(|_| self.renewals_failed())?;
        self.routing.set_live(picture.live.clone());
        self.routing.set_holders(holders.clone());
        // Decided shard by shard, then every take or renewal at once (pipelined on the leases'
        // connection: a round costs about one round trip, however many shards).
        let mut to_take = Vec::new();
        for (s, holder) in holders.into_iter().enumerate() {
            let shard = Shard(s as u32);
            let preferred = shard.preferred(&picture.eligible).cloned();
            match holder {
                // Being handed over: not renewed (a renewal racing the release would take it
                // back); the renewal before the hand-over began outlasts it.
                Some(h) if h.holder == this_process && self.handovers.is_under_way(shard) => {}
                Some(h) if h.holder == this_process => {
                    free_since.remove(&shard);
                    let elsewhere = preferred.as_ref().is_some_and(|p| *p != me);
                    to_take.push((shard, elsewhere));
                }
                // An earlier process of this node (a restart): its shards are taken at once,
                // unless this one is being drained (the others take them when they expire).
                Some(h) if h.node == me && !picture.draining => {
                    free_since.remove(&shard);
                    to_take.push((shard, false));
                }
                Some(h) => {
                    free_since.remove(&shard);
                    if self.fences.holds(shard) && !self.handovers.is_under_way(shard) {
                        // Held here until now, and not handed over: taken while this node could
                        // not renew (a pause, a partition from Redis). What an operator counts.
                        metrics::counter!("emporium_lease_renewals_total", "outcome" => "lost")
                            .increment(1);
                        tracing::warn!(shard = shard.0, holder = %h.node, "shard lost to another node");
                    }
                    self.lose(shard);
                }
                None => {
                    let since = *free_since.entry(shard).or_insert_with(Instant::now);
                    let orphaned = since.elapsed() >= grace(self.leases.ttl());
                    let mine = preferred.as_deref() == Some(me.as_str());
                    if mine || (orphaned && !picture.draining) {
                        free_since.remove(&shard);
                        to_take.push((shard, false));
                    } else {
                        self.lose(shard);
                    }
                }
            }
        }
        let outcomes = join_all(to_take.iter().map(|(shard, _)| self.take(*shard))).await;
        let mut leaving = self.handovers.running();
        let mut failed = None;
        for ((shard, elsewhere), outcome) in to_take.into_iter().zip(outcomes) {
            let room = picture.draining || leaving < handovers_per_round(self.shards);
            match outcome {
                Ok(true) if elsewhere && room => {
                    leaving += 1;
                    self.handovers.start(shard);
                }
                Ok(_) => self.fences.stay(shard),
                // One shard's failure does not keep the others from being renewed this round.
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        let held = self.fences.shards().len();
        metrics::gauge!("emporium_cluster_shards_owned").set(held as f64);
        if held != picture.report.shards && failed.is_none() {
            // Shards taken or lost this round: said now, not a third of a TTL later, so
            // `GET /admin/cluster` agrees with the shard map.
            let report = NodeReport {
                shards: held,
                ..picture.report
            };
            self.leases.heartbeat(&report).await?;
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Whether Redis still holds the cluster this node joined. One that lost it (restarted
    /// empty, flushed) lost every lease, epoch and entity journal with it: this node then
    /// serves none of its shards (it stops their entities, which hold what Redis lost) and
    /// `/readyz` answers 503, until that Redis is restored with the cluster's data or the node
    /// is restarted into the new, empty cluster.
    async fn same_cluster(&self) -> redis::RedisResult<bool> {
        let id = match self.cluster_id.get() {
            Some(id) => id,
            None => {
                let claimed = self.leases.claim_cluster_id().await?;
                self.cluster_id.get_or_init(|| claimed)
            }
        };
        let held = self.leases.cluster_id().await?;
        let same = held.as_deref() == Some(id.as_str());
        let was_halted = self.fences.halted().is_some();
        metrics::gauge!("emporium_cluster_redis_data_lost").set(if same { 0.0 } else { 1.0 });
        if same {
            if was_halted {
                tracing::warn!(cluster = %id, "Redis holds the cluster's data again: serving");
                self.fences.halt(None);
            }
            return Ok(true);
        }
        for shard in self.fences.shards() {
            self.lose(shard);
        }
        if !was_halted {
            tracing::error!(cluster = %id, found = ?held,
                "Redis lost the cluster's data (restarted empty or flushed, or it holds another \
                 cluster's): this node serves no shard and asks no other node until Redis is \
                 restored from its append-only file, or the node is restarted into the cluster \
                 Redis holds now");
        }
        self.fences.halt(Some(format!(
            "Redis no longer holds cluster {id} (found {}): restore it, or restart the node",
            held.as_deref().unwrap_or("none")
        )));
        Ok(false)
    }

    /// A round that failed before its renewals (Redis unreachable): each shard held here missed
    /// its renewal, counted as an `error` renewal, and at least one is, so the series warns of
    /// a node about to stop writing even before it holds a shard.
    fn renewals_failed(&self) {
        let missed = self.fences.shards().len().max(1) as u64;
        metrics::counter!("emporium_lease_renewals_total", "outcome" => "error").increment(missed);
    }

    /// This node does not hold the shard (any more): no fence, and entities left from its
    /// term here are stopped rather than answering from their old state.
    fn lose(&self, shard: Shard) {
        if self.fences.holds(shard) {
            self.fences.clear(shard);
            self.handovers.drop_stale(shard);
        }
    }

    /// Takes or renews the shard; the fence is good for the TTL less a margin from now.
    /// Whether this node holds it now.
    async fn take(&self, shard: Shard) -> redis::RedisResult<bool> {
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
                let until = good_until(asked, self.leases.ttl());
                // The same term renewed, even after a slow round let the local deadline pass.
                let renewed = self.fences.held(shard).is_some_and(|f| f == fence);
                if !renewed {
                    // Entities left here from an earlier term (a hand-over whose stop timed
                    // out, a lease lost) would answer from old state: stopped before the new
                    // term admits anything.
                    let stale = self.handovers.stop_entities(shard);
                    if tokio::time::timeout(self.leases.ttl() / 4, stale)
                        .await
                        .is_err()
                    {
                        tracing::warn!(
                            shard = shard.0,
                            "entities of an earlier term still stopping"
                        );
                    }
                    tracing::info!(shard = shard.0, epoch = fence.epoch, "shard taken");
                    self.taken.notify_one();
                }
                self.fences.hold(shard, fence, until);
                Ok(true)
            }
            None => {
                self.lose(shard);
                Ok(false)
            }
        }
    }

    /// Gives every held shard up (shutdown): the others take them without waiting for a TTL.
    /// The node says it is down first, so none of them waits for it as the shards' preferred
    /// node.
    pub async fn release_all(&self) {
        let _ = self.leases.leave().await;
        for shard in self.fences.shards() {
            if let Some(fence) = self.fences.get(shard) {
                self.fences.clear(shard);
                let _ = self.leases.release(shard, &fence).await;
            }
        }
        let _ = self.leases.wake().await;
    }
}
