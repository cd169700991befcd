//! [`Entities<E>`]: the typed handle of one entity kind on this node — what the edges and the
//! services ask. It activates an entity on first use (in its [`Registry`] slot, with the kind's
//! [`EntityContext`]), bounds asks in flight, retries once when the actor died, and passivates
//! idle entities.
//!
//! The request path is lock-free of any shared actor: the registry finds (or creates) the
//! key's slot, whose `OnceCell` spawns the entity's actor exactly once; the ask then goes straight
//! to that actor. A per-kind supervisor only hears about failures, and a sweeper task only
//! passivates idle entities — neither sits between a request and its entity.

use crate::actors::context::{EntityContext, SnapshotPolicy};
use crate::actors::entity::{AskError, Entity, EntityKey, Inspection};
use crate::actors::message::{EntityMsg, SnapshotTally, Snapshotted};
use crate::actors::registry::{Registry, Slot, ViewSink};
use crate::actors::remote::{Admission, Answer, Forward, Op};
use crate::actors::shell::{Activation, EntityActor};
use crate::actors::supervisor::{KindStats, KindSupervisor};
use crate::domain::time::Clock;
use crate::persistence::{Journal, JournalError, StreamId, barrier};
use dashmap::DashMap;
use futures_util::future::BoxFuture;
use ractor::{Actor, ActorRef, rpc::CallResult};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
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
    /// How often each kind's reminder timer reads the reminders due.
    pub reminder_period: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            ask_timeout: Duration::from_secs(5),
            idle_after: Duration::from_secs(300),
            max_in_flight: 50_000,
            snapshot_every: 1000,
            reminder_period: Duration::from_millis(100),
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
    /// Cluster mode: carries asks for entities of shards other nodes hold to their owner.
    pub remote: Option<Arc<dyn Forward>>,
}

/// Where an ask goes (see `Entities::route`).
enum Route<'a> {
    /// This node's entity; in a cluster, with the shard's admission held.
    Here(Option<Admission>),
    Owner(&'a dyn Forward),
}

/// What the handle of one kind shares between its clones.
struct Kind<E: Entity> {
    registry: Arc<Registry<E>>,
    /// Given to every actor of the kind when it activates.
    ctx: Arc<EntityContext<E>>,
    admission: Semaphore,
    /// Linked parent of every entity actor of the kind; stopped by `shutdown`.
    supervisor: ActorRef<()>,
    ask_timeout: Duration,
    /// Cancelled at node shutdown: reminder wake-ups stop.
    shutdown: CancellationToken,
    /// How often the reminder timer reads the reminders due.
    reminder_period: Duration,
    remote: Option<Arc<dyn Forward>>,
}

/// The typed handle to every entity of kind `E` on this node. Cheap to clone.
pub struct Entities<E: Entity> {
    kind: Arc<Kind<E>>,
}

/// A handle that does not keep the kind alive (background tasks hold this one).
pub(super) struct WeakEntities<E: Entity>(std::sync::Weak<Kind<E>>);

impl<E: Entity> WeakEntities<E> {
    pub(super) fn upgrade(&self) -> Option<Entities<E>> {
        self.0.upgrade().map(|kind| Entities { kind })
    }
}

impl<E: Entity> Clone for Entities<E> {
    fn clone(&self) -> Self {
        Self {
            kind: self.kind.clone(),
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
        let stored = match E::KEEP_VIEWS {
            true => tokio::task::spawn_blocking(move || journal.views(E::KIND)).await??,
            false => Vec::new(),
        };
        for (raw, bytes) in stored {
            let id = E::Id::parse_key(&raw)
                .ok_or_else(|| anyhow::anyhow!("{}: bad key in views: {raw}", E::KIND))?;
            views.insert(
                id,
                crate::persistence::codec::decode_snapshot::<E::View>(&bytes)?,
            );
        }
        let registry = Arc::new(Registry::new(views, stats.clone(), rt.config.idle_after));
        let ctx = Arc::new(EntityContext {
            journal: rt.journal.clone(),
            clock: rt.clock.clone(),
            snapshots: SnapshotPolicy {
                every: rt.config.snapshot_every,
            },
            stats,
            views: registry.clone(),
        });
        let period = (rt.config.idle_after / 2).max(Duration::from_millis(50));
        tokio::spawn(crate::actors::registry::sweep(
            Arc::downgrade(&registry),
            period,
            rt.shutdown.clone(),
        ));
        let kind = Kind {
            registry,
            ctx,
            admission: Semaphore::new(rt.config.max_in_flight),
            supervisor,
            ask_timeout: rt.config.ask_timeout,
            reminder_period: rt.config.reminder_period,
            shutdown: rt.shutdown,
            remote: rt.remote,
        };
        let kind = Arc::new(kind);
        tokio::spawn(sample_in_flight(
            Arc::downgrade(&kind),
            rt.config.max_in_flight,
        ));
        Ok(Self { kind })
    }

    pub fn stats(&self) -> &KindStats {
        self.kind.registry.stats()
    }

    /// The entity's latest durable view, without asking it: from memory, so `None` for kinds
    /// that do not keep their views (read those with [`Entities::stored_views`]).
    pub fn view(&self, id: &E::Id) -> Option<E::View> {
        self.kind.registry.view(id)
    }

    /// `read` of the latest durable view, without copying it (kinds that keep their views).
    pub fn view_with<R>(&self, id: &E::Id, read: impl FnOnce(&E::View) -> R) -> Option<R> {
        self.kind.registry.view_with(id, read)
    }

    /// The latest durable views of `ids`, in their order (`None` for one without a view):
    /// from memory for kinds that keep their views, else read from the journal.
    pub async fn stored_views(
        &self,
        ids: Vec<E::Id>,
    ) -> Result<Vec<Option<E::View>>, crate::persistence::JournalError> {
        if E::KEEP_VIEWS {
            return Ok(ids.iter().map(|id| self.view(id)).collect());
        }
        // One view from a local store: in place (every drop purchase checks its order id).
        let in_place = ids.len() == 1 && self.kind.ctx.journal.local_point_reads();
        let journal = self.kind.ctx.journal.clone();
        let read = move || -> Result<Vec<Option<E::View>>, crate::persistence::JournalError> {
            let raw: Vec<String> = ids.iter().map(ToString::to_string).collect();
            journal
                .views_of(E::KIND, &raw)?
                .into_iter()
                .map(|bytes| match bytes {
                    Some(bytes) => Ok(Some(crate::persistence::codec::decode_snapshot::<E::View>(
                        &bytes,
                    )?)),
                    None => Ok(None),
                })
                .collect()
        };
        crate::persistence::read(in_place, read).await
    }

    pub(super) fn downgrade(&self) -> WeakEntities<E> {
        WeakEntities(Arc::downgrade(&self.kind))
    }

    pub(super) fn registry(&self) -> &Arc<Registry<E>> {
        &self.kind.registry
    }

    pub(super) fn reminder_period(&self) -> Duration {
        self.kind.reminder_period
    }

    pub(super) fn shutdown_token(&self) -> &CancellationToken {
        &self.kind.shutdown
    }

    pub(super) fn clock(&self) -> &Arc<dyn Clock> {
        &self.kind.ctx.clock
    }

    pub(super) fn snapshot_every(&self) -> u64 {
        self.kind.ctx.snapshots.every
    }

    /// Whether the node is one of a cluster's (asks may go to other nodes).
    pub(super) fn is_clustered(&self) -> bool {
        self.kind.remote.is_some()
    }

    /// The journal the kind writes to (read models read its index sets).
    pub fn journal(&self) -> &Arc<dyn Journal> {
        &self.kind.ctx.journal
    }

    /// Every durable view of the kind (a consistent copy of each entry, not of the whole set);
    /// empty for kinds that do not keep their views.
    pub fn views(&self) -> Vec<(E::Id, E::View)> {
        self.kind.registry.views()
    }

    /// Calls `listener` with every view from now on, once durable, in the order written.
    pub fn on_view(&self, listener: impl Fn(&E::Id, &E::View) + Send + Sync + 'static) {
        self.kind.registry.on_view(Arc::new(listener));
    }

    /// Whether this node may write the entity now (cluster mode: it holds the entity's shard).
    pub fn is_local(&self, id: &E::Id) -> bool {
        let stream = StreamId::new(E::KIND, id.to_string());
        self.kind.ctx.journal.owns(&stream)
    }

    /// Takes in a view another node wrote (cluster mode): listeners and `view` see it as if
    /// written here. A view that does not decode is an error, never a panic.
    pub fn receive_view(&self, raw_id: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let id = E::Id::parse_key(raw_id)
            .ok_or_else(|| anyhow::anyhow!("{}: bad id in a view: {raw_id}", E::KIND))?;
        let view = crate::persistence::codec::decode_snapshot::<E::View>(bytes)?;
        self.kind.registry.publish(&id, view);
        Ok(())
    }

    /// Where an ask for `id` goes: here (in a cluster, admitted to the entity's shard until
    /// the ask is done) or to the node that holds its shard.
    fn route(&self, id: &E::Id) -> Route<'_> {
        match self.kind.remote.as_deref() {
            None => Route::Here(None),
            Some(remote) => match remote.enter(E::KIND, &id.to_string()) {
                Some(admitted) => Route::Here(Some(admitted)),
                None => Route::Owner(remote),
            },
        }
    }

    /// Admits an ask to `id`'s shard on this node (cluster mode); `None` when another node
    /// serves it now.
    pub(super) fn enter(&self, id: &E::Id) -> Option<Admission> {
        self.kind.remote.as_deref()?.enter(E::KIND, &id.to_string())
    }

    /// Sends `command` to the entity and waits for its reply (sent once durable). In a
    /// cluster, an entity another node owns is asked there.
    pub async fn ask(
        &self,
        id: &E::Id,
        command: E::Command,
    ) -> Result<E::Reply, AskError<E::Rejection>> {
        match self.route(id) {
            Route::Here(_admitted) => self.ask_local(id, command).await,
            Route::Owner(remote) => {
                let _permit = self.admit()?;
                self.ask_remote(remote, id, command).await
            }
        }
    }

    /// Asks this node's entity (never forwarded, not admitted: for a shard leaving this node,
    /// whose fence is still good, that must write what it owes before it goes).
    pub async fn ask_local(
        &self,
        id: &E::Id,
        command: E::Command,
    ) -> Result<E::Reply, AskError<E::Rejection>> {
        let _permit = self.admit()?;
        self.call(id, |reply| EntityMsg::Ask(command.clone(), reply))
            .await?
    }

    /// A place among the kind's asks in flight, or `Overloaded`.
    fn admit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, AskError<E::Rejection>> {
        self.kind
            .admission
            .try_acquire()
            .map_err(|_| AskError::Overloaded)
    }

    /// Whether the entity has ever been written (active, or in the journal), without
    /// activating it: a check of ids someone else names costs no actor.
    pub async fn stored(&self, id: &E::Id) -> Result<bool, AskError<E::Rejection>> {
        if self.kind.registry.is_active(id) {
            return Ok(true);
        }
        let stream = StreamId::new(E::KIND, id.to_string());
        let journal = self.kind.ctx.journal.clone();
        tokio::task::spawn_blocking(move || journal.exists(&stream))
            .await
            .map_err(|_| AskError::Unavailable)?
            .map_err(lookup_failed)
    }

    /// The entity's state and sequence numbers; `NotFound` when it has never been written.
    pub async fn inspect(&self, id: &E::Id) -> Result<Inspection, AskError<E::Rejection>> {
        match self.route(id) {
            Route::Here(_admitted) => self.inspect_local(id).await,
            Route::Owner(remote) => self.inspect_remote(remote, id).await,
        }
    }

    pub(super) async fn inspect_local(
        &self,
        id: &E::Id,
    ) -> Result<Inspection, AskError<E::Rejection>> {
        if !self.stored(id).await? {
            return Err(AskError::NotFound);
        }
        self.call(id, EntityMsg::Inspect).await
    }

    /// Makes the entity act on its deadline now (tests with a manual clock, operators).
    pub async fn tick(&self, id: &E::Id) -> Result<(), AskError<E::Rejection>> {
        match self.route(id) {
            Route::Here(_admitted) => self.tick_local(id).await,
            Route::Owner(remote) => self.tick_remote(remote, id).await,
        }
    }

    /// A call, not a cast: an actor passivating as the deadline comes (its idle period ran out
    /// while it was activated) drops the message unhandled, and the call then wakes a fresh
    /// activation instead of waiting for the reminder to fire again.
    pub(super) async fn tick_local(&self, id: &E::Id) -> Result<(), AskError<E::Rejection>> {
        self.call(id, EntityMsg::Deadline).await
    }

    /// Asks the actor, activating it; when the actor is found dead, forgets it and tries once
    /// more with a fresh activation (the message was never handled, so a retry is safe).
    ///
    /// Every message to a local entity passes here (asks for other nodes' entities are
    /// forwarded before, in `ask`, `inspect` and `tick`).
    pub(super) async fn call<T: Send + 'static>(
        &self,
        id: &E::Id,
        build: impl Fn(ractor::RpcReplyPort<T>) -> EntityMsg<E>,
    ) -> Result<T, AskError<E::Rejection>> {
        for _attempt in 0..2 {
            let actor = self.activate(id).await?;
            match actor.call(&build, Some(self.kind.ask_timeout)).await {
                Ok(CallResult::Success(reply)) => return Ok(reply),
                Ok(CallResult::Timeout) => return Err(AskError::Timeout),
                Ok(CallResult::SenderError) | Err(_) => self.kind.registry.forget_actor(id, &actor),
            }
        }
        Err(AskError::Unavailable)
    }

    async fn activate(&self, id: &E::Id) -> Result<ActorRef<EntityMsg<E>>, AskError<E::Rejection>> {
        if self.kind.registry.is_closing() {
            return Err(AskError::Unavailable);
        }
        let slot = self.kind.registry.slot(id);
        let actor = slot
            .cell
            .get_or_try_init(|| self.spawn(id.clone(), slot.clone()))
            .await
            .cloned()?;
        // Used now, not when the activation began: one that took longer than the idle period
        // (a slow disk) is not passivated before its caller's message arrives.
        self.kind.registry.touch(&slot);
        Ok(actor)
    }

    async fn spawn(
        &self,
        id: E::Id,
        slot: Arc<Slot<E>>,
    ) -> Result<ActorRef<EntityMsg<E>>, AskError<E::Rejection>> {
        // An earlier incarnation of this entity may still have writes on their way to disk:
        // read the journal only after they landed.
        let journal = &self.kind.ctx.journal;
        if !journal.is_idle() {
            barrier(journal.as_ref())
                .await
                .map_err(|_| AskError::Unavailable)?;
        }
        let args = Activation {
            id: id.clone(),
            ctx: self.kind.ctx.clone(),
            registry: self.kind.registry.clone(),
            slot: slot.clone(),
        };
        let supervisor = self.kind.supervisor.get_cell();
        match Actor::spawn_linked(None, EntityActor::<E>::new(), args, supervisor).await {
            Ok((actor, _)) => Ok(actor),
            Err(e) => {
                match storage_away(&e) {
                    // Expected while Redis or the disk is away, or the shard's lease is lost:
                    // the caller gets 503; the journal reports its own failure where it happens.
                    Some(cause) => tracing::warn!(kind = E::KIND, %id, error = %cause,
                        "entity cannot activate now: its journal cannot be read"),
                    None => tracing::error!(kind = E::KIND, %id, error = %e,
                        "entity failed to activate"),
                }
                self.kind.registry.forget(&id, &slot);
                Err(AskError::Unavailable)
            }
        }
    }

    /// Makes every active entity of the kind write a snapshot now (those with events since
    /// their last one); how many did (once durable) and how many could not.
    pub async fn snapshot_all(&self) -> SnapshotTally {
        let mut set = tokio::task::JoinSet::new();
        for actor in self.kind.registry.actors() {
            set.spawn(async move {
                let done = actor.call(EntityMsg::Snapshot, Some(Duration::from_secs(10)));
                match done.await {
                    Ok(CallResult::Success(outcome)) => outcome,
                    Ok(CallResult::Timeout) => Snapshotted::Failed,
                    // Stopped since it was listed (passivated): its state is on disk.
                    Ok(CallResult::SenderError) | Err(_) => Snapshotted::Current,
                }
            });
        }
        let mut tally = SnapshotTally::default();
        while let Some(done) = set.join_next().await {
            tally.add(done.unwrap_or(Snapshotted::Failed));
        }
        tally
    }

    /// Stops the active entities whose key `leaving` selects (a shard leaving this node), each
    /// after a final snapshot; how many were stopped, once their snapshots are durable.
    pub async fn stop_where(&self, leaving: &(dyn Fn(&str) -> bool + Sync)) -> usize {
        let actors = self
            .kind
            .registry
            .actors_where(|id| leaving(&id.to_string()));
        let mut set = tokio::task::JoinSet::new();
        for actor in actors {
            set.spawn(async move {
                let done = actor.call(EntityMsg::Shutdown, Some(Duration::from_secs(10)));
                matches!(done.await, Ok(CallResult::Success(())))
            });
        }
        let mut stopped = 0;
        while let Some(done) = set.join_next().await {
            stopped += usize::from(done.unwrap_or(false));
        }
        stopped
    }

    /// Stops every entity of the kind after a final snapshot (up to 10 s each, in parallel);
    /// new asks get `Unavailable`. Returns once the actors have also exited (up to 1 s more
    /// after their answer), so what they held (the journal, and through it the database's file
    /// lock) does not outlive the call.
    pub async fn shutdown(&self) {
        const PATIENCE: Duration = Duration::from_secs(10);
        const EXIT: Duration = Duration::from_secs(1);
        self.kind.registry.close();
        let actors = self.kind.registry.actors();
        let mut set = tokio::task::JoinSet::new();
        for actor in actors {
            set.spawn(async move {
                let _ = actor.call(EntityMsg::Shutdown, Some(PATIENCE)).await;
                let _ = actor.wait(Some(EXIT)).await;
            });
        }
        while set.join_next().await.is_some() {}
        let _ = self.kind.supervisor.stop_and_wait(None, Some(EXIT)).await;
    }
}

/// One entity kind, whatever its types: what a node does with every kind alike (counters,
/// snapshots, shutdown, views written by other nodes).
pub trait EntityKind: Send + Sync {
    fn kind(&self) -> &'static str;
    fn stats(&self) -> &KindStats;
    /// See [`Entities::receive_view`].
    fn receive(&self, raw_id: &str, bytes: &[u8]) -> anyhow::Result<()>;
    /// See [`Entities::snapshot_all`].
    fn snapshot_all(&self) -> BoxFuture<'_, SnapshotTally>;
    /// See [`Entities::shutdown`].
    fn shutdown(&self) -> BoxFuture<'_, ()>;
    /// See [`Entities::stop_where`].
    fn stop_where<'a>(&'a self, leaving: &'a (dyn Fn(&str) -> bool + Sync))
    -> BoxFuture<'a, usize>;
    /// Answers an op another node forwarded here (cluster mode).
    fn serve<'a>(&'a self, raw_id: &'a str, op: Op) -> BoxFuture<'a, Answer>;
}

impl<E: Entity> EntityKind for Entities<E> {
    fn kind(&self) -> &'static str {
        E::KIND
    }

    fn stats(&self) -> &KindStats {
        Entities::stats(self)
    }

    fn receive(&self, raw_id: &str, bytes: &[u8]) -> anyhow::Result<()> {
        self.receive_view(raw_id, bytes)
    }

    fn snapshot_all(&self) -> BoxFuture<'_, SnapshotTally> {
        Box::pin(Entities::snapshot_all(self))
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(Entities::shutdown(self))
    }

    fn stop_where<'a>(
        &'a self,
        leaving: &'a (dyn Fn(&str) -> bool + Sync),
    ) -> BoxFuture<'a, usize> {
        Box::pin(Entities::stop_where(self, leaving))
    }

    fn serve<'a>(&'a self, raw_id: &'a str, op: Op) -> BoxFuture<'a, Answer> {
        Box::pin(self.serve_remote(raw_id, op))
    }
}

/// The journal's refusal, when an activation failed only because the journal could not be
/// read now (storage away, closed, or the shard's lease lost), not because what it read is bad.
fn storage_away(e: &ractor::SpawnErr) -> Option<&JournalError> {
    let ractor::SpawnErr::StartupFailed(cause) = e else {
        return None;
    };
    use JournalError::{Closed, NotOwner, Storage};
    let away = |e: &&JournalError| matches!(e, Storage(_) | Closed | NotOwner { .. });
    cause.downcast_ref::<JournalError>().filter(away)
}

/// Ten times a second, notes how many asks of the kind are in flight (waiting in mailboxes or
/// being handled), for the kind's `mailbox_depth_p99`, and sets the gauge
/// `emporium_mailbox_depth{kind}` to it.
async fn sample_in_flight<E: Entity>(kind: std::sync::Weak<Kind<E>>, max: usize) {
    let gauge = metrics::gauge!("emporium_mailbox_depth", "kind" => E::KIND);
    gauge.set(0.0);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Some(kind) = kind.upgrade() else { return };
        if kind.shutdown.is_cancelled() {
            return;
        }
        let in_flight = max.saturating_sub(kind.admission.available_permits());
        kind.registry.stats().sample_in_flight(in_flight);
        gauge.set(in_flight as f64);
    }
}

/// A journal lookup that failed: logged with its cause, answered as `Unavailable`.
fn lookup_failed<R>(e: crate::persistence::JournalError) -> AskError<R> {
    tracing::warn!(error = %e, "a journal lookup failed");
    AskError::Unavailable
}
