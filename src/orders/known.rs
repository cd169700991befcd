//! [`KnownIds`]: a 64-bit fingerprint of every order id this node's store holds, so a drop
//! purchase tells a new order from a replay without reading the store.
//!
//! Every drop purchase asks whether its order id (a digest of the buyer and the
//! `Idempotency-Key`) is already an order, before anything else: a replay is answered with its
//! order even after the drop sold out. Most attempts at a sold-out drop are new, and reading
//! the store to learn so was a tenth of their CPU. The set answers "surely not" from memory;
//! anything else ("maybe") still reads the store, so a fingerprint collision (about 1 in 2^64
//! per lookup per order held) costs one read, never a wrong answer. The same answer, given
//! when a drop order is promised, spares its background writer the read of the store that
//! checks the order was never written (`Entities::create`).
//!
//! It is correct only when complete, so it answers only once it is:
//! - every order is noted before it is first written: only `OrderCommand::Place` makes one,
//!   and `OrderBook`, the only way to the order entities, notes the id of each `Place` it
//!   asks and each promise it makes (a drop order is written from its promise). Noting before
//!   the write, not once its view is published, keeps an order whose view reached the store
//!   unpublished (a later write of it failed) from being missed; an id noted for a write that
//!   then failed only costs reads;
//! - a scan of the store's order views, started when the book starts (before anything can
//!   ask it), notes every order that was there before; only when it has finished does the
//!   set answer.
//!
//! Until then, and always in a cluster (other nodes write orders this one does not see),
//! every lookup reads the store as before. Views are never removed, so the set never holds
//! fewer ids than the store. Memory: about 16 B per order (a `u64` in a hash set at its load
//! factor), 16 MB for a million orders.

use crate::actors::Entity;
use crate::actors::order::Order;
use crate::domain::ids::OrderId;
use crate::persistence::Journal;
use dashmap::DashSet;
use std::hash::{BuildHasher, RandomState};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio_util::sync::CancellationToken;

/// The fingerprints of the order ids a store holds (see the module doc).
pub(super) struct KnownIds {
    fingerprints: DashSet<u64>,
    /// Keyed per process: fingerprints are never stored or sent.
    hasher: RandomState,
    /// Set once the scan of the store has finished: from then on a missing fingerprint means
    /// a missing order.
    complete: AtomicBool,
    /// `emporium_order_ids_in_memory`: how many ids the set answers for; 0 until it answers.
    size: metrics::Gauge,
}

impl KnownIds {
    pub fn new() -> Self {
        Self {
            fingerprints: DashSet::new(),
            hasher: RandomState::new(),
            complete: AtomicBool::new(false),
            size: metrics::gauge!("emporium_order_ids_in_memory"),
        }
    }

    /// Notes that `id` is, or is about to be, an order (idempotent). True when it surely was
    /// not one before this note: the set was complete and had no fingerprint of it, so the
    /// store holds no order `id` and no other writer had noted it.
    pub fn note(&self, id: &OrderId) -> bool {
        let fingerprint = self.fingerprint(id.as_str());
        // Read before the insert: a scan finishing after it may have noted `id` from the store.
        let complete = self.complete.load(Ordering::Acquire);
        // A read first: most ids asked to `Place` again (replays) are noted already.
        let new =
            !self.fingerprints.contains(&fingerprint) && self.fingerprints.insert(fingerprint);
        if new && complete {
            self.size.increment(1.0);
        }
        new && complete
    }

    /// False only when `id` is surely not an order in the store: the set is complete and has
    /// no fingerprint of it. True means "read the store".
    pub fn may_hold(&self, id: &OrderId) -> bool {
        !self.complete.load(Ordering::Acquire)
            || self.fingerprints.contains(&self.fingerprint(id.as_str()))
    }

    /// Notes every order id with a view in `journal`, then lets the set answer; how many it
    /// read. Blocks for a scan of the order views' keys: run it on a blocking thread. Stopped by `stop` or an error, the set stays
    /// incomplete (every lookup reads the store).
    pub fn fill(
        &self,
        journal: &Arc<dyn Journal>,
        stop: &CancellationToken,
    ) -> Result<usize, crate::persistence::JournalError> {
        let mut count = 0usize;
        journal.each_view_id(<Order as Entity>::KIND, &mut |id| {
            self.fingerprints.insert(self.fingerprint(id));
            count += 1;
            if count.is_multiple_of(4096) && stop.is_cancelled() {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        })?;
        if !stop.is_cancelled() {
            self.complete.store(true, Ordering::Release);
            // Ids noted between these two lines count twice: a gauge, not an audit.
            self.size.set(self.fingerprints.len() as f64);
        }
        Ok(count)
    }

    fn fingerprint(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistence::memory::MemoryJournal;
    use crate::persistence::{Append, StreamId};

    fn order(n: u32) -> OrderId {
        OrderId::parse(format!("o{n:024x}")).unwrap()
    }

    fn with_view(id: &OrderId) -> Append {
        let mut append = Append::barrier();
        append.stream = Some(StreamId::new(<Order as Entity>::KIND, id.to_string()));
        append.events = vec![(1, b"event".to_vec())];
        append.view = Some(b"view".to_vec());
        append
    }

    #[test]
    fn an_incomplete_set_sends_every_lookup_to_the_store() {
        // Given a set that has noted one order but not scanned the store
        let known = KnownIds::new();
        // (a note before the scan never vouches that the order is new)
        assert!(!known.note(&order(1)));
        // Then it answers "maybe" for any id, noted or not
        assert!(known.may_hold(&order(1)));
        assert!(known.may_hold(&order(2)));
    }

    #[tokio::test]
    async fn a_filled_set_vouches_only_for_the_first_note_of_an_id_it_never_held() {
        // Given a filled set from a store with one order
        let journal: Arc<dyn Journal> = Arc::new(MemoryJournal::new());
        crate::persistence::durable(&*journal, with_view(&order(1)))
            .await
            .unwrap();
        let known = KnownIds::new();
        known.fill(&journal, &CancellationToken::new()).unwrap();
        // When the stored order, then a new one twice, are noted
        // Then only the new one's first note says it was surely new
        assert!(!known.note(&order(1)));
        assert!(known.note(&order(2)));
        assert!(!known.note(&order(2)));
    }

    #[tokio::test]
    async fn a_filled_set_knows_the_stored_orders_and_those_noted_since() {
        // Given a store with two orders
        let journal: Arc<dyn Journal> = Arc::new(MemoryJournal::new());
        for n in [1, 2] {
            crate::persistence::durable(&*journal, with_view(&order(n)))
                .await
                .unwrap();
        }
        let known = KnownIds::new();
        // When the set is filled from it and a third order is noted afterwards
        let stop = CancellationToken::new();
        assert_eq!(known.fill(&journal, &stop).unwrap(), 2);
        assert!(known.note(&order(3)));
        // Then the three are "maybe" and an order never written is surely absent
        for n in [1, 2, 3] {
            assert!(known.may_hold(&order(n)), "order {n}");
        }
        assert!(!known.may_hold(&order(4)));
    }

    #[tokio::test]
    async fn a_fill_stopped_by_shutdown_leaves_the_set_asking_the_store() {
        // Given a store with an order and a node already stopping
        let journal: Arc<dyn Journal> = Arc::new(MemoryJournal::new());
        crate::persistence::durable(&*journal, with_view(&order(1)))
            .await
            .unwrap();
        let stop = CancellationToken::new();
        stop.cancel();
        // When the set is filled
        let known = KnownIds::new();
        known.fill(&journal, &stop).unwrap();
        // Then it never answers "surely absent"
        assert!(known.may_hold(&order(2)));
    }
}
