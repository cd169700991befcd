//! [`Entities<E>`]: the registry and typed handle of one entity kind on this node.
//!
//! The request path is lock-free of any shared actor: a concurrent map finds (or creates) the
//! key's slot, whose `OnceCell` spawns the entity's actor exactly once; the ask then goes straight
//! to that actor. A per-kind supervisor only hears about failures, and a sweeper task only
//! passivates idle entities — neither sits between a request and its entity.

use crate::actors::entity::{AskError, Entity, EntityKey, Inspection};
use crate::actors::shell::{Activation, EntityActor, EntityMsg};
use crate::actors::supervisor::{KindStats, KindSupervisor};
use crate::domain::time::Clock;
use crate::persistence::{Journal, StreamId, barrier};
use dashmap::DashMap;
use ractor::{Actor, ActorRef, rpc::CallResult};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{OnceCell, Semaphore};
use tokio_util::sync::CancellationToken;

/// Runtime settings shared by every kind.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// How long an ask waits for its reply.
    pub ask_timeout: Duration,
    /// An entity idle this long is snapshotted and stopped.
    pub idle_after: Duration,
    /// Asks in flight per kind before new ones are refused with `Overloaded`.
    pub max_in_flight: usize,
    /// Snapshot every N events (or every `weight` events when the state is larger).
    pub snapshot_every: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            ask_timeout: Duration::from_secs(5),
            idle_after: Duration::from_secs(300),
            max_in_flight: 50_000,
            snapshot_every: 1000,
        }
    }
}

/// What every kind of a node shares: the journal, the clock and the settings.
#[derive(Clone)]
pub struct Runtime {
    pub journal: Arc<dyn Journal>,
    pub clock: Arc<dyn Clock>,
    pub config: RuntimeConfig,
    /// Cancelled at shutdown: sweepers and reminder wake-ups stop.
    pub shutdown: CancellationToken,
}

/// One key's place in the registry. The cell holds the actor once activated; the slot leaves
/// the map when the actor ends.
pub struct Slot<E: Entity> {
    cell: OnceCell<ActorRef<EntityMsg<E>>>,
    /// Milliseconds since the registry started, at the last ask.
    last_used: AtomicU64,
}

/// Called with each view once it is durable.
pub type ViewListener<E> = Arc<dyn Fn(&<E as Entity>::Id, &<E as Entity>::View) + Send + Sync>;

pub struct Inner<E: Entity> {
    pub(crate) rt: Runtime,
    /// The latest durable view of every entity of the kind that has one (loaded at start).
    views: DashMap<E::Id, E::View>,
    listeners: std::sync::RwLock<Vec<ViewListener<E>>>,
    pub(crate) stats: Arc<KindStats>,
    slots: DashMap<E::Id, Arc<Slot<E>>>,
    admission: Arc<Semaphore>,
    /// Linked parent of every entity actor of the kind; stopped by `shutdown`.
    supervisor: ActorRef<()>,
    epoch: Instant,
    closing: AtomicBool,
}

impl<E: Entity> Inner<E> {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn publish_view(&self, id: &E::Id, view: E::View) {
        if let Ok(listeners) = self.listeners.read() {
            for listener in listeners.iter() {
                listener(id, &view);
            }
        }
        self.views.insert(id.clone(), view);
    }

    pub(crate) fn forget_slot(&self, id: &E::Id, slot: &Arc<Slot<E>>) {
        self.slots.remove_if(id, |_, s| Arc::ptr_eq(s, slot));
    }

    /// True when the slot has been idle for the passivation period.
    pub(crate) fn should_passivate(&self, slot: &Slot<E>) -> bool {
        let idle = self
            .now_ms()
            .saturating_sub(slot.last_used.load(Ordering::Relaxed));
        self.closing.load(Ordering::Relaxed)
            || idle >= u64::try_from(self.rt.config.idle_after.as_millis()).unwrap_or(u64::MAX)
    }
}

/// The typed handle to every entity of kind `E` on this node. Cheap to clone.
pub struct Entities<E: Entity> {
    inner: Arc<Inner<E>>,
}

impl<E: Entity> Clone for Entities<E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<E: Entity> Entities<E> {
    /// Starts the kind: its supervisor and its passivation sweeper.
    pub async fn start(rt: Runtime) -> anyhow::Result<Self> {
        let stats = Arc::new(KindStats::new(E::KIND));
        let (supervisor, _) = Actor::spawn(
            None,
            KindSupervisor {
                stats: stats.clone(),
            },
            (),
        )
        .await?;
        let views = DashMap::new();
        let journal = rt.journal.clone();
        let stored = tokio::task::spawn_blocking(move || journal.views(E::KIND)).await??;
        for (raw, bytes) in stored {
            let id = E::Id::parse_key(&raw)
                .ok_or_else(|| anyhow::anyhow!("{}: bad key in views: {raw}", E::KIND))?;
            views.insert(
                id,
                crate::persistence::codec::decode_snapshot::<E::View>(&bytes)?,
            );
        }
        let inner = Arc::new(Inner {
            views,
            listeners: std::sync::RwLock::new(Vec::new()),
            stats,
            slots: DashMap::new(),
            admission: Arc::new(Semaphore::new(rt.config.max_in_flight)),
            supervisor,
            epoch: Instant::now(),
            closing: AtomicBool::new(false),
            rt,
        });
        tokio::spawn(sweep(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    pub fn stats(&self) -> &KindStats {
        &self.inner.stats
    }

    /// The entity's latest durable view, without asking it.
    pub fn view(&self, id: &E::Id) -> Option<E::View> {
        self.inner.views.get(id).map(|v| v.clone())
    }

    /// Every durable view of the kind (a consistent copy of each entry, not of the whole set).
    pub fn views(&self) -> Vec<(E::Id, E::View)> {
        self.inner
            .views
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect()
    }

    /// Calls `listener` with every view from now on, once durable, in the order written.
    pub fn on_view(&self, listener: impl Fn(&E::Id, &E::View) + Send + Sync + 'static) {
        if let Ok(mut listeners) = self.inner.listeners.write() {
            listeners.push(Arc::new(listener));
        }
    }

    /// Sends `command` to the entity and waits for its reply (sent once durable).
    pub async fn ask(
        &self,
        id: &E::Id,
        command: E::Command,
    ) -> Result<E::Reply, AskError<E::Rejection>> {
        let _permit = self
            .inner
            .admission
            .clone()
            .try_acquire_owned()
            .map_err(|_| AskError::Overloaded)?;
        self.call(id, |reply| EntityMsg::Ask(command.clone(), reply))
            .await?
    }

    /// The entity's state and sequence numbers; `NotFound` when it has never been written.
    pub async fn inspect(&self, id: &E::Id) -> Result<Inspection, AskError<E::Rejection>> {
        if !self.inner.slots.contains_key(id) {
            let stream = StreamId::new(E::KIND, id.to_string());
            let journal = self.inner.rt.journal.clone();
            let exists = tokio::task::spawn_blocking(move || journal.exists(&stream))
                .await
                .map_err(|_| AskError::Unavailable)?
                .map_err(|_| AskError::Unavailable)?;
            if !exists {
                return Err(AskError::NotFound);
            }
        }
        self.call(id, EntityMsg::Inspect).await
    }

    /// Makes the entity act on its deadline now (tests with a manual clock, operators).
    pub async fn tick(&self, id: &E::Id) -> Result<(), AskError<E::Rejection>> {
        let actor = self.activate(id).await?;
        actor
            .cast(EntityMsg::Deadline)
            .map_err(|_| AskError::Unavailable)
    }

    /// Asks the actor, activating it; when the actor is found dead, forgets it and tries once
    /// more with a fresh activation (the message was never handled, so a retry is safe).
    async fn call<T: Send + 'static>(
        &self,
        id: &E::Id,
        build: impl Fn(ractor::RpcReplyPort<T>) -> EntityMsg<E>,
    ) -> Result<T, AskError<E::Rejection>> {
        for _attempt in 0..2 {
            let actor = self.activate(id).await?;
            match actor
                .call(&build, Some(self.inner.rt.config.ask_timeout))
                .await
            {
                Ok(CallResult::Success(reply)) => return Ok(reply),
                Ok(CallResult::Timeout) => return Err(AskError::Timeout),
                Ok(CallResult::SenderError) | Err(_) => self.forget_actor(id, &actor),
            }
        }
        Err(AskError::Unavailable)
    }

    async fn activate(&self, id: &E::Id) -> Result<ActorRef<EntityMsg<E>>, AskError<E::Rejection>> {
        if self.inner.closing.load(Ordering::Relaxed) {
            return Err(AskError::Unavailable);
        }
        let slot = self
            .inner
            .slots
            .entry(id.clone())
            .or_insert_with(|| {
                Arc::new(Slot {
                    cell: OnceCell::new(),
                    last_used: AtomicU64::new(0),
                })
            })
            .clone();
        slot.last_used.store(self.inner.now_ms(), Ordering::Relaxed);
        slot.cell
            .get_or_try_init(|| self.spawn(id.clone(), slot.clone()))
            .await
            .cloned()
    }

    async fn spawn(
        &self,
        id: E::Id,
        slot: Arc<Slot<E>>,
    ) -> Result<ActorRef<EntityMsg<E>>, AskError<E::Rejection>> {
        // An earlier incarnation of this entity may still have writes on their way to disk:
        // read the journal only after they landed.
        if !self.inner.rt.journal.is_idle() {
            barrier(self.inner.rt.journal.as_ref())
                .await
                .map_err(|_| AskError::Unavailable)?;
        }
        let args = Activation {
            id: id.clone(),
            slot: slot.clone(),
            inner: self.inner.clone(),
        };
        let supervisor = self.inner.supervisor.get_cell();
        match Actor::spawn_linked(None, EntityActor::<E>::new(), args, supervisor).await {
            Ok((actor, _)) => Ok(actor),
            Err(e) => {
                tracing::error!(kind = E::KIND, %id, error = %e, "entity failed to activate");
                self.inner.forget_slot(&id, &slot);
                Err(AskError::Unavailable)
            }
        }
    }

    fn forget_actor(&self, id: &E::Id, actor: &ActorRef<EntityMsg<E>>) {
        self.inner.slots.remove_if(id, |_, slot| {
            slot.cell.get().map(|a| a.get_id()) == Some(actor.get_id())
        });
    }

    /// Activates, in the background, every entity of the kind with a stored reminder, so
    /// deadlines fire after a restart even if nobody asks for those entities.
    pub fn wake_reminders(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            let journal = this.inner.rt.journal.clone();
            let due = match tokio::task::spawn_blocking(move || journal.reminders(E::KIND)).await {
                Ok(Ok(due)) => due,
                _ => return tracing::error!(kind = E::KIND, "cannot read reminders"),
            };
            for (raw, _) in due {
                if this.inner.rt.shutdown.is_cancelled() {
                    return;
                }
                if let Some(id) = E::Id::parse_key(&raw) {
                    let _ = this.activate(&id).await;
                }
            }
        });
    }

    /// Stops every entity of the kind after a final snapshot; new asks get `Unavailable`.
    pub async fn shutdown(&self) {
        self.inner.closing.store(true, Ordering::Relaxed);
        let actors: Vec<_> = self
            .inner
            .slots
            .iter()
            .filter_map(|s| s.cell.get().cloned())
            .collect();
        let mut set = tokio::task::JoinSet::new();
        for actor in actors {
            set.spawn(async move {
                let _ = actor
                    .call(EntityMsg::Shutdown, Some(Duration::from_secs(10)))
                    .await;
            });
        }
        while set.join_next().await.is_some() {}
        self.inner.supervisor.stop(None);
    }
}

/// Every so often, asks the entities idle past the passivation period to passivate.
async fn sweep<E: Entity>(inner: std::sync::Weak<Inner<E>>) {
    let period = match inner.upgrade() {
        Some(i) => (i.rt.config.idle_after / 2).max(Duration::from_millis(50)),
        None => return,
    };
    loop {
        tokio::time::sleep(period).await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.rt.shutdown.is_cancelled() || inner.closing.load(Ordering::Relaxed) {
            return;
        }
        let idle: Vec<_> = inner
            .slots
            .iter()
            .filter(|s| inner.should_passivate(s.value()))
            .filter_map(|s| s.cell.get().cloned())
            .collect();
        for actor in idle {
            let _ = actor.cast(EntityMsg::Passivate);
        }
    }
}
