//! [`Fences`]: the term under which this node writes each shard it holds (cluster mode), and
//! the gate that lets a shard leave this node without failing a request.
//!
//! The lease keeper sets and clears the fences. Each is good until a local deadline (the
//! lease's TTL from the renewal, less a margin, on the monotonic clock): past it, this node
//! stops writing the shard even if it cannot reach Redis to learn whether it lost it. That is
//! liveness only; safety is the fence check in Redis (`persistence::redis_journal`).
//!
//! **Leaving** (a hand-over or a drain): the shard stops admitting — [`Fences::enter`] refuses,
//! so new asks are forwarded and wait for the next owner — while the asks already admitted
//! finish under the still-good fence; [`Fences::settled`] waits for them. Only then are the
//! shard's entities stopped and its lease released.

use crate::cluster::leases::Fence;
use crate::cluster::shards::Shard;
use dashmap::DashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Fences {
    held: DashMap<Shard, (Fence, Instant)>,
    gates: DashMap<Shard, Arc<Gate>>,
    /// Until when the keeper's last full round with Redis vouches for this node (as a
    /// renewal's deadline); `None` before its first.
    in_touch_until: Mutex<Option<Instant>>,
    /// Why this node serves no shard though Redis answers (Redis lost the cluster's data),
    /// while that lasts; `is_halted` says whether without a lock (asked on every forward).
    halted: Mutex<Option<String>>,
    is_halted: AtomicBool,
}

/// One shard's admissions.
#[derive(Default)]
struct Gate {
    leaving: AtomicBool,
    in_flight: AtomicUsize,
}

/// An ask admitted to a shard: counted in flight until dropped.
pub struct Admission(Arc<Gate>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Fences {
    /// Holds `fence` for writes until `until`. A new term admits asks again.
    pub fn hold(&self, shard: Shard, fence: Fence, until: Instant) {
        let renewed = self.held.get(&shard).is_some_and(|held| held.0 == fence);
        self.held.insert(shard, (fence, until));
        if !renewed {
            self.gate(shard).leaving.store(false, Ordering::SeqCst);
        }
    }

    /// The keeper finished a round with Redis: this node is in touch with the cluster until
    /// `until` (the deadline a renewal made then would have).
    pub fn in_touch(&self, until: Instant) {
        *self
            .in_touch_until
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(until);
    }

    /// Whether the keeper has not reached Redis for longer than a lease lasts: this node
    /// holds no good fence, nor knows who holds the shards. False before its first round.
    pub fn out_of_touch(&self) -> bool {
        let until = *self
            .in_touch_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        until.is_some_and(|until| Instant::now() >= until)
    }

    /// Says why this node must serve no shard though Redis answers (`None`: it may again).
    pub fn halt(&self, why: Option<String>) {
        let mut halted = self.halted.lock().unwrap_or_else(|e| e.into_inner());
        self.is_halted.store(why.is_some(), Ordering::Release);
        *halted = why;
    }

    /// Whether this node serves no shard though Redis answers (see [`Fences::halted`]): it
    /// then asks no other node either, as the shard map Redis holds is another cluster's.
    pub fn is_halted(&self) -> bool {
        self.is_halted.load(Ordering::Acquire)
    }

    /// Why this node serves no shard though Redis answers, while it must not.
    pub fn halted(&self) -> Option<String> {
        self.halted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Holds `fence` with no local deadline (tests; the keeper always gives one).
    pub fn set(&self, shard: Shard, fence: Fence) {
        self.hold(
            shard,
            fence,
            Instant::now() + Duration::from_secs(365 * 86_400),
        );
    }

    pub fn clear(&self, shard: Shard) {
        self.held.remove(&shard);
    }

    /// Clears the shard's fence if it is still `fence` (a newer term is kept).
    pub fn clear_if(&self, shard: Shard, fence: &Fence) {
        self.held.remove_if(&shard, |_, (held, _)| held == fence);
    }

    /// The fence to write the shard under, while it is good (leaving or not).
    pub fn get(&self, shard: Shard) -> Option<Fence> {
        let held = self.held.get(&shard)?;
        (Instant::now() < held.1).then(|| held.0.clone())
    }

    /// Whether new asks for the shard are served here: its fence is good and it is not leaving.
    pub fn admits(&self, shard: Shard) -> bool {
        self.is_good(shard)
            && !self
                .gates
                .get(&shard)
                .is_some_and(|g| g.leaving.load(Ordering::SeqCst))
    }

    /// The fence held for the shard, good or lapsed (a renewal is told from a new term by it).
    pub fn held(&self, shard: Shard) -> Option<Fence> {
        self.held.get(&shard).map(|held| held.0.clone())
    }

    /// Whether the shard's fence is good now (as `get`, without a copy of it).
    fn is_good(&self, shard: Shard) -> bool {
        self.held
            .get(&shard)
            .is_some_and(|held| Instant::now() < held.1)
    }

    /// Admits one ask for the shard, counted until the admission is dropped; `None` when the
    /// shard is not served here (the ask goes to its owner).
    pub fn enter(&self, shard: Shard) -> Option<Admission> {
        if !self.is_good(shard) {
            return None;
        }
        let gate = self.gate(shard);
        gate.in_flight.fetch_add(1, Ordering::SeqCst);
        let admission = Admission(gate);
        // Counted before the check, both sequentially consistent (as `leave` and `settled`):
        // either `settled` sees this ask, or this ask sees the shard leaving.
        (!admission.0.leaving.load(Ordering::SeqCst)).then_some(admission)
    }

    /// Stops admitting asks for the shard (those admitted go on).
    pub fn leave(&self, shard: Shard) {
        self.gate(shard).leaving.store(true, Ordering::SeqCst);
    }

    /// Admits asks for the shard again (a hand-over that did not happen).
    pub fn stay(&self, shard: Shard) {
        if let Some(gate) = self.gates.get(&shard) {
            gate.leaving.store(false, Ordering::SeqCst);
        }
    }

    /// Waits until no admitted ask of the shard is in flight, or `within` has passed; whether
    /// it settled.
    pub async fn settled(&self, shard: Shard, within: Duration) -> bool {
        let gate = self.gate(shard);
        let deadline = tokio::time::Instant::now() + within;
        while gate.in_flight.load(Ordering::SeqCst) > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }

    /// Whether this node has a fence for the shard (good or lapsing).
    pub fn holds(&self, shard: Shard) -> bool {
        self.held.contains_key(&shard)
    }

    /// The shards this node holds (good or lapsing).
    pub fn shards(&self) -> Vec<Shard> {
        self.held.iter().map(|e| *e.key()).collect()
    }

    fn gate(&self, shard: Shard) -> Arc<Gate> {
        if let Some(gate) = self.gates.get(&shard) {
            return gate.clone();
        }
        self.gates.entry(shard).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fence(epoch: u64) -> Fence {
        Fence {
            holder: "n1/p".into(),
            epoch,
        }
    }

    #[tokio::test]
    async fn given_a_leaving_shard_then_new_asks_are_refused_and_admitted_ones_settle() {
        let fences = Fences::default();
        let shard = Shard(3);
        assert!(fences.enter(shard).is_none(), "not held: nothing admitted");
        fences.set(shard, fence(1));
        let admitted = fences.enter(shard).expect("held: admitted");
        fences.leave(shard);
        assert!(!fences.admits(shard));
        assert!(fences.enter(shard).is_none(), "leaving: refused");
        assert!(
            fences.get(shard).is_some(),
            "the admitted ask can still write"
        );
        assert!(!fences.settled(shard, Duration::from_millis(20)).await);
        drop(admitted);
        assert!(fences.settled(shard, Duration::from_millis(20)).await);
    }

    #[test]
    fn given_a_shard_that_left_when_a_new_term_begins_then_it_admits_again() {
        let fences = Fences::default();
        let shard = Shard(1);
        fences.set(shard, fence(1));
        fences.leave(shard);
        fences.set(shard, fence(1));
        assert!(
            !fences.admits(shard),
            "a renewal of the same term keeps it leaving"
        );
        fences.clear(shard);
        fences.set(shard, fence(2));
        assert!(fences.admits(shard));
    }
}
