//! [`Handovers`]: shards leaving this node (a drain, or rebalancing towards a node that joined),
//! each in a task of its own so the lease keeper goes on renewing the node's other shards.
//!
//! One hand-over: the shard stops admitting asks (they wait in the forwarder for the next
//! owner), the asks admitted finish, the shard's entities write what they must (promised drop
//! orders, final snapshots) and stop, the lease is released and every keeper is woken
//! ([`WAKE`](crate::cluster::leases::WAKE)), so the next owner takes the shard within
//! milliseconds rather than a TTL. Each step is bounded so the whole stays well inside the
//! lease the keeper renewed before it began: the keeper does not renew a shard while it is
//! being handed over (a renewal racing the release would take the shard back).

use crate::actors::EntityKind;
use crate::cluster::leases::Leases;
use crate::cluster::shards::Shard;
use crate::persistence::fences::Fences;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Handovers {
    pub leases: Leases,
    pub fences: Arc<Fences>,
    pub shards: u32,
    /// The node's entity kinds, once started.
    pub kinds: Arc<OnceLock<Vec<Arc<dyn EntityKind>>>>,
    /// Shards being handed over, and whether that is done (forgotten at the next round, which
    /// reads the holders afresh).
    under_way: Arc<Mutex<HashMap<Shard, bool>>>,
}

impl Handovers {
    pub fn new(
        leases: Leases,
        fences: Arc<Fences>,
        shards: u32,
        kinds: Arc<OnceLock<Vec<Arc<dyn EntityKind>>>>,
    ) -> Self {
        Self {
            leases,
            fences,
            shards,
            kinds,
            under_way: Arc::default(),
        }
    }

    /// Forgets finished hand-overs: called by the keeper before it reads the holders.
    pub fn forget_done(&self) {
        self.lock().retain(|_, done| !*done);
    }

    /// Whether the shard is being handed over (or was, since the last round).
    pub fn is_under_way(&self, shard: Shard) -> bool {
        self.lock().contains_key(&shard)
    }

    /// How many hand-overs are running.
    pub fn running(&self) -> usize {
        self.lock().values().filter(|done| !**done).count()
    }

    /// Starts handing the shard over (in the background).
    pub fn start(&self, shard: Shard) {
        self.lock().insert(shard, false);
        let done = Done(self.clone(), shard);
        tokio::spawn(async move {
            done.0.hand_over(done.1).await;
            drop(done);
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Shard, bool>> {
        self.under_way.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands the shard over (see the module doc); on a failed release it stays here, serving,
    /// and the keeper decides again next round.
    async fn hand_over(&self, shard: Shard) {
        let Some(fence) = self.fences.get(shard) else {
            return;
        };
        let started = Instant::now();
        // Each step within a quarter of the TTL: the renewal before it began outlasts them all.
        let step = self.leases.ttl() / 4;
        self.fences.leave(shard);
        if !self.fences.settled(shard, step).await {
            tracing::warn!(shard = shard.0, "asks still running at the hand-over");
        }
        let stopped = tokio::time::timeout(step, self.stop_entities(shard)).await;
        if stopped.is_err() {
            tracing::warn!(shard = shard.0, "entities still stopping at the hand-over");
        }
        let released = self.leases.release(shard, &fence).await;
        // Woken either way: a release whose answer was lost may still have happened.
        let _ = self.leases.wake().await;
        match released {
            Ok(true) => {
                self.fences.clear_if(shard, &fence);
                tracing::info!(shard = shard.0, epoch = fence.epoch, stopped = stopped.unwrap_or(0),
                    took = ?started.elapsed(), "shard handed over");
                metrics::counter!("emporium_shard_handovers_total").increment(1);
            }
            Ok(false) => {
                // The lease was no longer this term's: nothing to hand over.
                self.fences.clear_if(shard, &fence);
            }
            Err(e) => {
                tracing::warn!(shard = shard.0, error = %e, "cannot release a shard; it stays");
                self.fences.stay(shard);
            }
        }
    }

    /// Stops the shard's active entities (each after what it must write); how many.
    pub async fn stop_entities(&self, shard: Shard) -> usize {
        let Some(kinds) = self.kinds.get() else {
            return 0;
        };
        let shards = self.shards;
        let mut stopped = 0;
        for kind in kinds {
            let name = kind.kind();
            let leaving = move |key: &str| Shard::of(name, key, shards) == shard;
            stopped += kind.stop_where(&leaving).await;
        }
        stopped
    }

    /// Stops, in the background, the entities of a shard this node no longer holds (its lease
    /// lapsed or moved without a hand-over): they must not answer from their old state.
    pub fn drop_stale(&self, shard: Shard) {
        let this = self.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), this.stop_entities(shard)).await;
        });
    }
}

/// Marks a hand-over done when its task ends, however it ends (a panic included): the keeper
/// then decides about the shard again.
struct Done(Handovers, Shard);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.lock().insert(self.1, true);
    }
}
