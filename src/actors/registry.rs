//! [`Registry<E>`]: which entities of one kind are active on this node, and the latest durable
//! view of every entity of the kind.
//!
//! A key's [`Slot`] holds its actor once activated (a `OnceCell`, so two first asks spawn one
//! actor). The actor holds a [`Registration`] of its slot: when the actor ends, however it ends,
//! the registration's drop takes the slot out, so the next ask activates a fresh actor. The
//! registry is also the kind's [`ViewSink`]: views land here once durable and go to listeners.
//! [`sweep`] asks the idle ones to passivate.

use crate::actors::entity::Entity;
use crate::actors::message::{EntityMsg, Passivation};
use crate::actors::supervisor::KindStats;
use dashmap::DashMap;
use ractor::ActorRef;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

/// Where an entity's views go once durable.
pub trait ViewSink<E: Entity>: Send + Sync {
    fn publish(&self, id: &E::Id, view: E::View);
}

/// Called with each view once it is durable.
pub type ViewListener<E> = Arc<dyn Fn(&<E as Entity>::Id, &<E as Entity>::View) + Send + Sync>;

/// One key's place in the registry. The cell holds the actor once activated; the slot leaves
/// the registry when the actor ends.
pub struct Slot<E: Entity> {
    pub(crate) cell: OnceCell<ActorRef<EntityMsg<E>>>,
    /// Milliseconds since the registry started, at the last ask.
    last_used: AtomicU64,
}

pub struct Registry<E: Entity> {
    slots: DashMap<E::Id, Arc<Slot<E>>>,
    /// The latest durable view of every entity of the kind that has one (loaded at start);
    /// empty for kinds that do not keep their views ([`Entity::KEEP_VIEWS`]).
    views: DashMap<E::Id, E::View>,
    listeners: RwLock<Vec<ViewListener<E>>>,
    stats: Arc<KindStats>,
    /// An entity idle this long is passivated.
    idle_after: Duration,
    epoch: Instant,
    /// Set at shutdown: no new activations, every entity counts as idle.
    closing: AtomicBool,
}

impl<E: Entity> Registry<E> {
    pub fn new(
        views: DashMap<E::Id, E::View>,
        stats: Arc<KindStats>,
        idle_after: Duration,
    ) -> Self {
        Self {
            slots: DashMap::new(),
            views,
            listeners: RwLock::new(Vec::new()),
            stats,
            idle_after,
            epoch: Instant::now(),
            closing: AtomicBool::new(false),
        }
    }

    /// Milliseconds since the registry started: the clock of `last_used`.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn stats(&self) -> &Arc<KindStats> {
        &self.stats
    }

    /// The key's slot, created if it has none, marked as used now.
    pub fn slot(&self, id: &E::Id) -> Arc<Slot<E>> {
        let slot = self
            .slots
            .entry(id.clone())
            .or_insert_with(|| {
                Arc::new(Slot {
                    cell: OnceCell::new(),
                    last_used: AtomicU64::new(0),
                })
            })
            .clone();
        self.touch(&slot);
        slot
    }

    /// Marks the slot as used now.
    pub fn touch(&self, slot: &Slot<E>) {
        slot.last_used.store(self.now_ms(), Ordering::Relaxed);
    }

    /// The key's actor, if it is active.
    pub fn actor(&self, id: &E::Id) -> Option<ActorRef<EntityMsg<E>>> {
        self.slots.get(id).and_then(|s| s.cell.get().cloned())
    }

    /// Whether the key has a slot (an actor active or being activated).
    pub fn is_active(&self, id: &E::Id) -> bool {
        self.slots.contains_key(id)
    }

    /// Takes the slot out if it is still the key's.
    pub fn forget(&self, id: &E::Id, slot: &Arc<Slot<E>>) {
        self.slots.remove_if(id, |_, s| Arc::ptr_eq(s, slot));
    }

    /// Takes the key's slot out if it holds `actor` (found dead by an ask).
    pub fn forget_actor(&self, id: &E::Id, actor: &ActorRef<EntityMsg<E>>) {
        self.slots.remove_if(id, |_, slot| {
            slot.cell.get().map(|a| a.get_id()) == Some(actor.get_id())
        });
    }

    /// True when the slot has been idle for the passivation period, or the node is closing.
    pub fn is_idle(&self, slot: &Slot<E>) -> bool {
        let idle = self
            .now_ms()
            .saturating_sub(slot.last_used.load(Ordering::Relaxed));
        self.is_closing() || idle >= u64::try_from(self.idle_after.as_millis()).unwrap_or(u64::MAX)
    }

    pub fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    /// Every active actor.
    pub fn actors(&self) -> Vec<ActorRef<EntityMsg<E>>> {
        self.slots
            .iter()
            .filter_map(|s| s.cell.get().cloned())
            .collect()
    }

    /// The active actors of the entities `selected` picks.
    pub fn actors_where(&self, selected: impl Fn(&E::Id) -> bool) -> Vec<ActorRef<EntityMsg<E>>> {
        self.slots
            .iter()
            .filter(|s| selected(s.key()))
            .filter_map(|s| s.cell.get().cloned())
            .collect()
    }

    /// The active actors idle past the passivation period.
    pub fn idle_actors(&self) -> Vec<ActorRef<EntityMsg<E>>> {
        self.slots
            .iter()
            .filter(|s| self.is_idle(s.value()))
            .filter_map(|s| s.cell.get().cloned())
            .collect()
    }

    pub fn view(&self, id: &E::Id) -> Option<E::View> {
        self.views.get(id).map(|v| v.clone())
    }

    /// `read` of the entity's view, without copying it.
    pub fn view_with<R>(&self, id: &E::Id, read: impl FnOnce(&E::View) -> R) -> Option<R> {
        self.views.get(id).map(|v| read(&v))
    }

    /// Every durable view of the kind (a consistent copy of each entry, not of the whole set).
    pub fn views(&self) -> Vec<(E::Id, E::View)> {
        self.views
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect()
    }

    pub fn on_view(&self, listener: ViewListener<E>) {
        if let Ok(mut listeners) = self.listeners.write() {
            listeners.push(listener);
        }
    }
}

impl<E: Entity> ViewSink<E> for Registry<E> {
    fn publish(&self, id: &E::Id, view: E::View) {
        if let Ok(listeners) = self.listeners.read() {
            for listener in listeners.iter() {
                listener(id, &view);
            }
        }
        if E::KEEP_VIEWS {
            self.views.insert(id.clone(), view);
        }
    }
}

/// An actor's hold on its slot: dropped with the actor's state, it takes the slot out of the
/// registry (so the next ask activates afresh) and counts the entity as no longer active.
pub struct Registration<E: Entity> {
    registry: Arc<Registry<E>>,
    id: E::Id,
    slot: Arc<Slot<E>>,
}

impl<E: Entity> Registration<E> {
    /// Counts the entity as active until the registration is dropped.
    pub fn new(registry: Arc<Registry<E>>, id: E::Id, slot: Arc<Slot<E>>) -> Self {
        registry.stats.on_activated();
        Self { registry, id, slot }
    }

    /// Whether the entity has been idle for the passivation period.
    pub fn is_idle(&self) -> bool {
        self.registry.is_idle(&self.slot)
    }

    /// Whether no ask came after `mark` ([`Registry::now_ms`]), or the node is closing.
    pub fn unused_since(&self, mark: u64) -> bool {
        self.registry.is_closing() || self.slot.last_used.load(Ordering::Relaxed) <= mark
    }
}

impl<E: Entity> Drop for Registration<E> {
    fn drop(&mut self) {
        self.registry.forget(&self.id, &self.slot);
        self.registry.stats.on_deactivated();
    }
}

/// Every `period`, asks the entities idle past the passivation period to passivate.
pub(crate) async fn sweep<E: Entity>(
    registry: std::sync::Weak<Registry<E>>,
    period: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::time::sleep(period).await;
        let Some(registry) = registry.upgrade() else {
            return;
        };
        if shutdown.is_cancelled() || registry.is_closing() {
            return;
        }
        for actor in registry.idle_actors() {
            let _ = actor.cast(EntityMsg::Passivate(Passivation::Idle));
        }
    }
}
