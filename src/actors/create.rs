//! Writing entities that have never been written without activating them
//! ([`Entities::create`]): a drop's orders come thousands a second, and each would otherwise
//! spawn an actor to read an empty journal and write one event, then stay in memory until
//! it passivates.

use crate::actors::entities::Entities;
use crate::actors::entity::{AskError, Entity};
use crate::actors::registry::ViewSink;
use crate::actors::shell::{Recorded, first_write};
use crate::persistence::{JournalError, StreamId, barrier, durable};
use futures_util::future::join_all;

/// One item's outcome.
pub type Created<E> = Result<(), AskError<<E as Entity>::Rejection>>;

impl<E: Entity> Entities<E> {
    /// Makes each `(id, command)` the first write of an entity never written before, without
    /// activating it: the command is decided on the empty state, and its events, view,
    /// reminder and index entries go to the journal as the entity would write them, the
    /// batch submitted together (so mostly in one group commit); each is answered once
    /// durable, in the order given. An entity that is active or already written, a command
    /// the empty state refuses, or any item in a cluster (where writes carry the shard's
    /// term) is asked as usual instead. Whether an entity was written is read from the
    /// journal, except for items whose `surely_new` is true (the caller knows they never
    /// were; a missing flag is false). The caller makes sure nothing else asks these entities
    /// until this returns.
    pub async fn create(
        &self,
        items: Vec<(E::Id, E::Command)>,
        surely_new: &[bool],
    ) -> Vec<Created<E>> {
        let mut results: Vec<Option<Created<E>>> = items.iter().map(|_| None).collect();
        let mut asks = Vec::new();
        let written = match self.is_clustered() {
            true => None,
            false => self.written(&items, surely_new).await.ok(),
        };
        match written {
            Some(written) => {
                self.write_first(&items, &written, &mut results, &mut asks)
                    .await;
            }
            None => asks.extend(0..items.len()),
        }
        let asked = join_all(asks.iter().map(|&i| {
            let (id, command) = &items[i];
            self.ask(id, command.clone())
        }))
        .await;
        for (i, answer) in asks.into_iter().zip(asked) {
            results[i] = Some(answer.map(|_| ()));
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Err(AskError::Unavailable)))
            .collect()
    }

    /// Whether each item's entity has been written (or is active): those are asked. The
    /// journal is read for every item not `surely_new`.
    async fn written(
        &self,
        items: &[(E::Id, E::Command)],
        surely_new: &[bool],
    ) -> Result<Vec<bool>, JournalError> {
        let unsure: Vec<usize> = (0..items.len())
            .filter(|&i| !surely_new.get(i).copied().unwrap_or(false))
            .collect();
        let mut written = vec![false; items.len()];
        if !unsure.is_empty() {
            let journal = self.journal().clone();
            // An earlier incarnation's writes may still be on their way: read after they land.
            if !journal.is_idle() {
                barrier(journal.as_ref()).await?;
            }
            let streams: Vec<StreamId> = unsure
                .iter()
                .map(|&i| StreamId::new(E::KIND, items[i].0.to_string()))
                .collect();
            let in_place = journal.local_point_reads();
            let read: Vec<bool> = crate::persistence::read(in_place, move || {
                streams.iter().map(|s| journal.exists(s)).collect()
            })
            .await?;
            for (i, was) in unsure.into_iter().zip(read) {
                written[i] = was;
            }
        }
        for (w, (id, _)) in written.iter_mut().zip(items) {
            *w |= self.registry().is_active(id);
        }
        Ok(written)
    }

    /// Writes the first events of every item not `written` whose command the empty state
    /// accepts; the others go to `asks`.
    async fn write_first(
        &self,
        items: &[(E::Id, E::Command)],
        written: &[bool],
        results: &mut [Option<Created<E>>],
        asks: &mut Vec<usize>,
    ) {
        let now = self.clock().now();
        let mut waiting = Vec::new();
        for (i, ((id, command), &done)) in items.iter().zip(written).enumerate() {
            if done {
                asks.push(i);
                continue;
            }
            let events = match E::decide(&E::State::default(), command, now) {
                Ok(events) => events,
                Err(_) => {
                    asks.push(i);
                    continue;
                }
            };
            if events.is_empty() {
                results[i] = Some(Ok(()));
                continue;
            }
            match first_write::<E>(id, &events, now, self.snapshot_every()) {
                Ok(Some(Recorded { append, view })) => {
                    waiting.push((i, view, durable(self.journal().as_ref(), append)));
                }
                Ok(None) => asks.push(i),
                Err(e) => {
                    tracing::error!(kind = E::KIND, %id, error = %e, "cannot encode events");
                    results[i] = Some(Err(AskError::Unavailable));
                }
            }
        }
        for (i, view, written) in waiting {
            results[i] = Some(match written.await {
                Ok(()) => {
                    if let Some(view) = view {
                        self.registry().publish(&items[i].0, view);
                    }
                    Ok(())
                }
                _ => Err(AskError::Unavailable),
            });
        }
    }
}
