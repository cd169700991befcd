//! The reminder timer of one entity kind: the node-level clock that wakes entities whose
//! reminder is due, so an entity with a deadline (an unpaid order's expiry, a reservation)
//! passivates like any other and costs no memory while it waits.
//!
//! Reminders are durable and kept in time order by the journal (`Journal::reminders_due`):
//! every `period` the timer reads the first [`PAGE`] due (earliest first), whether the node
//! just started or has run for weeks. Each due entity is woken through the kind's
//! [`DueHandler`] (by default: its `on_deadline` command, as a call, so a deadline an actor
//! dropped while passivating wakes a fresh activation), at most [`AT_ONCE`] wake-ups under
//! way at a time, and an entity the timer activated is passivated again once handled
//! unless an ask came meanwhile, so a wave of expiries never keeps a wave of actors. (Due
//! reminders the timer skips — fired in the last [`REFIRE`], or of another node's shard — still
//! take their place in the page: more than a page of them delays the rest until they change.)
//!
//! Delivery is at least once: a reminder still stored unchanged after [`REFIRE`] (its handler
//! failed, or the node restarted mid-way) fires again, and every handler decides by the clock
//! (`Entity::on_deadline`), so a repeat changes nothing. In a cluster each node wakes only the
//! entities of shards it holds; a shard taken over is covered at the next round. A woken
//! entity is told which stored reminder fired: one that is not its own (left by an earlier
//! version's rule for it) is removed then, so it does not fire every [`REFIRE`] for ever.

use crate::actors::entities::{Entities, WeakEntities};
use crate::actors::entity::{Entity, EntityKey};
use crate::actors::message::EntityMsg;
use crate::actors::message::Passivation;
use crate::actors::shell::read_blocking;
use crate::domain::time::Timestamp;
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// What waking one entity means for its kind: the order kind also runs the saga's due steps.
pub type DueHandler<E> = Arc<dyn Fn(<E as Entity>::Id) -> BoxFuture<'static, ()> + Send + Sync>;

/// Due reminders read per round.
pub const PAGE: usize = 1024;
/// Entities woken at once.
pub const AT_ONCE: usize = 256;
/// A reminder fired and still stored unchanged fires again after this.
pub const REFIRE: Duration = Duration::from_secs(30);

impl<E: Entity> Entities<E> {
    /// Starts the kind's reminder timer, until the node shuts down: every `period` (the
    /// runtime's `reminder_period` when `None`), the entities whose reminder is due are woken
    /// with `handler`, or with their `on_deadline` command when there is none.
    pub fn keep_reminders(&self, period: Option<Duration>, handler: Option<DueHandler<E>>) {
        let period = period.unwrap_or_else(|| self.reminder_period());
        tokio::spawn(run(self.downgrade(), period, handler));
    }

    /// Wakes one entity for its reminder, stored for `at`; passivates it again if the timer
    /// activated it.
    async fn wake(&self, id: E::Id, at: Timestamp, handler: Option<DueHandler<E>>) {
        let was_active = self.registry().is_active(&id);
        match handler {
            Some(handler) => handler(id.clone()).await,
            None => {
                if let Err(e) = self.tick_local(&id).await {
                    tracing::warn!(kind = E::KIND, %id, error = %e, "cannot wake for a reminder");
                }
            }
        }
        let Some(actor) = self.registry().actor(&id) else {
            return;
        };
        let _ = actor.cast(EntityMsg::Reminded(at));
        if !was_active {
            // Asks that come after this keep it; those queued before are handled first.
            let mark = self.registry().now_ms();
            let _ = actor.cast(EntityMsg::Passivate(Passivation::UnusedSince(mark)));
        }
    }
}

/// Until the node shuts down or the kind is dropped.
async fn run<E: Entity>(kind: WeakEntities<E>, period: Duration, handler: Option<DueHandler<E>>) {
    let Some(shutdown) = kind.upgrade().map(|e| e.shutdown_token().clone()) else {
        return;
    };
    let permits = Arc::new(Semaphore::new(AT_ONCE));
    // What was fired lately (an entity and one of its due times, for a stale entry may sit
    // beside its own): not fired again before `REFIRE`.
    let mut fired: HashMap<(E::Id, Timestamp), Instant> = HashMap::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        let Some(entities) = kind.upgrade() else {
            return;
        };
        let now = entities.clock().now();
        let journal = entities.journal().clone();
        let due = match read_blocking(move || journal.reminders_due(E::KIND, now, PAGE)).await {
            Ok(Ok(due)) => due,
            Ok(Err(e)) => {
                tracing::warn!(kind = E::KIND, error = %e, "cannot read the reminders due");
                continue;
            }
            Err(_) => return,
        };
        fired.retain(|_, when| when.elapsed() < REFIRE);
        for (raw, at) in due {
            let Some(id) = E::Id::parse_key(&raw) else {
                tracing::warn!(kind = E::KIND, key = raw, "a reminder with a bad key");
                continue;
            };
            if fired.contains_key(&(id.clone(), at)) || !entities.is_local(&id) {
                continue;
            }
            let permit = tokio::select! {
                () = shutdown.cancelled() => return,
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            fired.insert((id.clone(), at), Instant::now());
            let (entities, handler) = (entities.clone(), handler.clone());
            tokio::spawn(async move {
                entities.wake(id, at, handler).await;
                drop(permit);
            });
        }
    }
}
