//! Per-kind supervision and life-cycle counters: [`KindSupervisor`] is the linked parent of a
//! kind's entity actors (it logs and counts failures; the next ask restarts the entity from its
//! journal), and [`KindStats`] counts activations, passivations and failures, exported as
//! metrics.

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Active entities of every kind in this process (what a cluster node reports about itself).
static ACTIVE_ENTITIES: AtomicU64 = AtomicU64::new(0);

/// How many entities of all kinds are active in this process.
pub fn active_entities() -> u64 {
    ACTIVE_ENTITIES.load(Ordering::Relaxed)
}

/// Life-cycle counters of one kind, also exported as metrics.
#[derive(Debug, Default)]
pub struct KindStats {
    pub(crate) kind: &'static str,
    active: AtomicU64,
    activations: AtomicU64,
    passivations: AtomicU64,
    failures: AtomicU64,
    /// Asks in flight, sampled ten times a second over the last minute.
    in_flight: std::sync::Mutex<std::collections::VecDeque<u32>>,
}

/// Samples of asks in flight kept (a minute at ten a second).
const IN_FLIGHT_SAMPLES: usize = 600;

/// The kinds' counters in `/metrics`, labelled `kind`.
const ACTIVATIONS: &str = "emporium_entity_activations_total";
const PASSIVATIONS: &str = "emporium_entity_passivations_total";
const RESTARTS: &str = "emporium_entity_restarts_total";

impl KindStats {
    /// The kind's counters, each also put in `/metrics` at zero, so a dashboard's rate of
    /// restarts has a start before the first one.
    pub(crate) fn new(kind: &'static str) -> Self {
        for name in [ACTIVATIONS, PASSIVATIONS, RESTARTS] {
            metrics::counter!(name, "kind" => kind).increment(0);
        }
        metrics::gauge!("emporium_entities_active", "kind" => kind).increment(0.0);
        Self {
            kind,
            ..Self::default()
        }
    }

    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }
    pub fn passivations(&self) -> u64 {
        self.passivations.load(Ordering::Relaxed)
    }
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
    pub fn activations(&self) -> u64 {
        self.activations.load(Ordering::Relaxed)
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The 99th percentile of asks in flight over the last minute (0 before any sample).
    pub fn in_flight_p99(&self) -> u32 {
        let Ok(samples) = self.in_flight.lock() else {
            return 0;
        };
        let mut sorted: Vec<u32> = samples.iter().copied().collect();
        sorted.sort_unstable();
        let at = (sorted.len() * 99).div_ceil(100);
        sorted.get(at.saturating_sub(1)).copied().unwrap_or(0)
    }

    pub(crate) fn sample_in_flight(&self, n: usize) {
        if let Ok(mut samples) = self.in_flight.lock() {
            if samples.len() == IN_FLIGHT_SAMPLES {
                samples.pop_front();
            }
            samples.push_back(u32::try_from(n).unwrap_or(u32::MAX));
        }
    }

    pub(crate) fn on_activated(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
        ACTIVE_ENTITIES.fetch_add(1, Ordering::Relaxed);
        self.activations.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("emporium_entities_active", "kind" => self.kind).increment(1.0);
        metrics::counter!(ACTIVATIONS, "kind" => self.kind).increment(1);
    }
    pub(crate) fn on_deactivated(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
        ACTIVE_ENTITIES.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("emporium_entities_active", "kind" => self.kind).decrement(1.0);
    }
    pub(crate) fn on_passivated(&self) {
        self.passivations.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(PASSIVATIONS, "kind" => self.kind).increment(1);
    }
    pub(crate) fn on_failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(RESTARTS, "kind" => self.kind).increment(1);
    }
}

/// The linked parent of a kind's entity actors: it logs and counts their failures. It never
/// restarts them itself: the next ask does, from the journal.
pub(crate) struct KindSupervisor {
    pub(crate) stats: Arc<KindStats>,
}

impl Actor for KindSupervisor {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<()>,
        event: SupervisionEvent,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(cell, error) = event {
            tracing::error!(kind = self.stats.kind, actor = %cell.get_id(), %error,
                "entity failed; it restarts from its journal on the next ask");
            self.stats.on_failed();
        }
        Ok(())
    }
}
