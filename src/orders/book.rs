//! [`OrderBook`]: the order entities behind one `ask`, with the orders *promised* but not yet
//! written.
//!
//! A drop purchase is answered as soon as the SKU's hold is durable, and the hold keeps the
//! order it becomes (`PurchaseReceipt`); the order entity is written right after, off the
//! buyer's path (`promised::keep`). Until then the order is promised here. Every ask first
//! keeps the promise of the order it names, so a buyer who pays at once — or the saga, the
//! dispatcher, the idempotency store — always finds the order. The entities are private to
//! this file: there is no other way to reach them on this node.
//!
//! In a cluster a promise lives only on the node that answered, and the order's shard may be
//! another node's: such a purchase writes its order (on that node) before it is answered
//! (`write_promised`), so every node finds it at once.

use super::known::KnownIds;
use crate::actors::order::{Order, OrderView};
use crate::actors::remote::{Answer, Op};
use crate::actors::{AskError, Entities, EntityKind, Inspection, Runtime};
use crate::domain::ids::{OrderId, SkuId};
use crate::domain::order::{OrderCommand, OrderError, OrderEvent, OrderState, Placement};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use futures_util::future::BoxFuture;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// A promise the order kind could not take (busy) is tried again after this, doubling.
const FIRST_PAUSE: Duration = Duration::from_millis(5);
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// How long a request waits for a busy order kind before it gives up with 429.
const REQUEST_ATTEMPTS: usize = 40;
/// How long, in all, a request waits for another writer of the same promise before it gives
/// up (`Timeout`: the order is written later, by the background).
const BUSY_WAIT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct OrderBook {
    entities: Entities<Order>,
    promises: Arc<Promises>,
    /// Which ids are orders, answered from memory when it can (`known.rs`).
    ids: Arc<KnownIds>,
}

/// Orders answered but not yet written, and the queue of the background writer.
struct Promises {
    pending: DashMap<OrderId, Promise>,
    queue: mpsc::UnboundedSender<OrderId>,
    /// Taken once, by the background writer.
    receiver: Mutex<Option<mpsc::UnboundedReceiver<OrderId>>>,
    /// Told whenever a write of a promise ends, kept or not.
    settled: Notify,
    /// Where a written promise's SKU is told (see `promised::keep`): its hold lets the order
    /// go, whoever wrote it.
    written: Mutex<Option<mpsc::UnboundedSender<(SkuId, OrderId)>>>,
}

/// A promised order: waiting to be written, or being written by one writer (a request or the
/// background), which alone may ask the order until it is done — so the background can write
/// a new order straight to the journal ([`Entities::create`]) with no actor racing it.
struct Promise {
    placement: Box<Placement>,
    /// Set while a writer holds it ([`Claimed`]).
    writing: bool,
    /// The order surely has never been written ([`KnownIds::note`] said so when it was
    /// promised, and no write of it has failed since: one that failed may have landed), so
    /// its writer need not read the store to learn so.
    surely_new: bool,
}

/// What a writer finds when it claims a promise.
enum Claim {
    /// Nothing to write: no promise (written, or never made).
    Kept,
    /// Another writer has it.
    Busy,
    /// This writer has it, until it releases the claim.
    Mine(Box<Placement>, Claimed),
}

/// A writer's hold on one promise. Dropped without [`Claimed::release`] — the writer's future
/// was dropped mid-write (its client went away, a timeout around it) — the promise waits again
/// for the background writer, so no promise is left held by nobody.
pub(super) struct Claimed {
    book: OrderBook,
    id: OrderId,
    released: bool,
    /// The promise's [`Promise::surely_new`] when claimed.
    surely_new: bool,
}

/// How a write of a promise ended.
enum Outcome {
    /// The order is written: its SKU is told.
    Written,
    /// It cannot be kept (the id holds another order): its hold lapses at its expiry.
    Dropped,
    /// It failed: the promise waits again, queued for the background writer.
    Retry,
}

impl Claimed {
    fn release(mut self, outcome: Outcome) {
        self.released = true;
        self.book.release(&self.id, outcome);
    }
}

impl Drop for Claimed {
    fn drop(&mut self) {
        if !self.released {
            self.book.release(&self.id, Outcome::Retry);
        }
    }
}

/// The order as it is once `placement` is written: what the buyer is answered with.
pub fn placed(placement: Box<Placement>) -> OrderState {
    let mut state = OrderState::default();
    crate::domain::order::rules::apply(&mut state, &OrderEvent::Placed(placement));
    state
}

impl OrderBook {
    /// Starts the order kind (no order is woken yet: see [`OrderBook::keep_reminders`]).
    pub async fn start(rt: Runtime) -> anyhow::Result<Self> {
        let single = rt.remote.is_none();
        let stop = rt.shutdown.clone();
        let entities = Entities::<Order>::start(rt).await?;
        let ids = Arc::new(KnownIds::new());
        if single {
            // Every order written from here on is noted before it is written (`ask`,
            // `promise`); the scan notes those already in the store (see `known.rs`).
            let (ids, journal) = (ids.clone(), entities.journal().clone());
            tokio::task::spawn_blocking(move || {
                let started = std::time::Instant::now();
                match ids.fill(&journal, &stop) {
                    Ok(count) => tracing::info!(count, elapsed = ?started.elapsed(),
                        "order ids known in memory"),
                    Err(e) => tracing::warn!(error = %e,
                        "order ids stay unknown in memory: every drop purchase reads the store"),
                }
            });
        }
        let (queue, receiver) = mpsc::unbounded_channel();
        let promises = Promises {
            pending: DashMap::new(),
            queue,
            receiver: Mutex::new(Some(receiver)),
            settled: Notify::new(),
            written: Mutex::new(None),
        };
        Ok(Self {
            entities,
            promises: Arc::new(promises),
            ids,
        })
    }

    /// Asks the order, writing it first if it was only promised.
    pub async fn ask(
        &self,
        id: &OrderId,
        command: OrderCommand,
    ) -> Result<OrderState, AskError<OrderError>> {
        self.keep_promise(id).await?;
        if matches!(command, OrderCommand::Place(_)) {
            // Only a `Place` makes an order: noted before it is written (see `known.rs`).
            self.ids.note(id);
        }
        self.entities.ask(id, command).await
    }

    /// The order's state and sequence numbers (written first if it was only promised).
    pub async fn inspect(&self, id: &OrderId) -> Result<Inspection, AskError<OrderError>> {
        self.keep_promise(id).await?;
        self.entities.inspect(id).await
    }

    /// Promises the order `placement` describes (its units are held durably): it is written
    /// in the background. Returns the order as it will be.
    pub fn promise(&self, id: OrderId, placement: Box<Placement>) -> OrderState {
        let surely_new = self.ids.note(&id);
        let state = placed(placement.clone());
        // A promise made again (a replayed purchase whose hold still keeps the order) is the
        // same order: the one there stays, with its writer.
        if let Entry::Vacant(v) = self.promises.pending.entry(id.clone()) {
            v.insert(Promise {
                placement,
                writing: false,
                surely_new,
            });
            // The receiver lives as long as the node; without it, requests keep the promise.
            let _ = self.promises.queue.send(id);
        }
        state
    }

    /// Claims the promise of `id` for this writer.
    fn claim(&self, id: &OrderId) -> Claim {
        let Some(mut promise) = self.promises.pending.get_mut(id) else {
            return Claim::Kept;
        };
        if promise.writing {
            return Claim::Busy;
        }
        promise.writing = true;
        let claimed = Claimed {
            book: self.clone(),
            id: id.clone(),
            released: false,
            surely_new: promise.surely_new,
        };
        Claim::Mine(promise.placement.clone(), claimed)
    }

    /// Ends a claim on `id` (see [`Outcome`]).
    fn release(&self, id: &OrderId, outcome: Outcome) {
        match outcome {
            Outcome::Written => {
                let sku = self
                    .promises
                    .pending
                    .remove(id)
                    .and_then(|(_, p)| p.placement.lines.first().map(|l| l.sku_id.clone()));
                let tell = self.promises.written.lock().ok().and_then(|t| t.clone());
                if let (Some(sku), Some(tell)) = (sku, tell) {
                    let _ = tell.send((sku, id.clone()));
                }
            }
            Outcome::Dropped => {
                self.promises.pending.remove(id);
            }
            Outcome::Retry => {
                if let Some(mut promise) = self.promises.pending.get_mut(id) {
                    promise.writing = false;
                    promise.surely_new = false;
                    drop(promise);
                    let _ = self.promises.queue.send(id.clone());
                }
            }
        }
        self.promises.settled.notify_waiters();
    }

    /// From now on, every written promise's SKU and order id go to `tell`.
    pub(super) fn tell_written(&self, tell: mpsc::UnboundedSender<(SkuId, OrderId)>) {
        if let Ok(mut slot) = self.promises.written.lock() {
            *slot = Some(tell);
        }
    }

    /// Claims the promises of `ids` that wait, for the background writer's
    /// [`OrderBook::create`].
    pub(super) fn claim_all(&self, ids: Vec<OrderId>) -> Vec<(OrderId, Box<Placement>, Claimed)> {
        ids.into_iter()
            .filter_map(|id| match self.claim(&id) {
                Claim::Mine(p, claimed) => Some((id, p, claimed)),
                Claim::Kept | Claim::Busy => None,
            })
            .collect()
    }

    /// Writes claimed promises, new orders straight to the journal (see
    /// [`Entities::create`]); returns how many could not be written now (they wait again,
    /// queued again).
    pub(super) async fn create(&self, claimed: Vec<(OrderId, Box<Placement>, Claimed)>) -> usize {
        let (items, claims): (Vec<(OrderId, OrderCommand)>, Vec<Claimed>) = claimed
            .into_iter()
            .map(|(id, p, claim)| ((id, OrderCommand::Place(p)), claim))
            .unzip();
        let surely_new: Vec<bool> = claims.iter().map(|c| c.surely_new).collect();
        let results = self.entities.create(items, &surely_new).await;
        let mut left = 0;
        for (claim, result) in claims.into_iter().zip(results) {
            match result {
                Ok(()) => claim.release(Outcome::Written),
                Err(AskError::Rejected(e)) => {
                    tracing::warn!(order = %claim.id, error = ?e, "a promised order cannot be kept");
                    claim.release(Outcome::Dropped);
                }
                Err(e) => {
                    tracing::debug!(order = %claim.id, error = %e, "a promised order waits again");
                    left += 1;
                    claim.release(Outcome::Retry);
                }
            }
        }
        left
    }

    /// Writes the order now if it is promised (as a request would); an error leaves the
    /// promise to the background writer.
    pub async fn write_promised(&self, id: &OrderId) -> Result<(), AskError<OrderError>> {
        self.keep_promise(id).await
    }

    /// Writes now every order promised to `user` (an account about to be erased, whose
    /// orders are then listed from the store).
    pub async fn write_promised_of(
        &self,
        user: &crate::domain::ids::UserId,
    ) -> Result<(), AskError<OrderError>> {
        let theirs: Vec<OrderId> = self
            .promises
            .pending
            .iter()
            .filter(|p| p.value().placement.user_id == *user)
            .map(|p| p.key().clone())
            .collect();
        for id in theirs {
            self.keep_promise(&id).await?;
        }
        Ok(())
    }

    /// Writes, here, every promised order `leaving` selects (a shard leaving this node, its
    /// fence still good); those that fail stay with the background writer.
    async fn write_promises_where(&self, leaving: &(dyn Fn(&str) -> bool + Sync)) {
        let due: Vec<OrderId> = self
            .promises
            .pending
            .iter()
            .filter(|p| leaving(&p.key().to_string()))
            .map(|p| p.key().clone())
            .collect();
        for id in due {
            // One being written by another writer is its writer's to finish.
            let Claim::Mine(placement, claim) = self.claim(&id) else {
                continue;
            };
            match self
                .entities
                .ask_local(&id, OrderCommand::Place(placement))
                .await
            {
                Ok(_) => claim.release(Outcome::Written),
                Err(AskError::Rejected(_)) => claim.release(Outcome::Dropped),
                Err(e) => {
                    tracing::warn!(order = %id, error = %e, "a promised order stays promised");
                    claim.release(Outcome::Retry);
                }
            }
        }
    }

    /// Whether this node can write the order now (cluster mode: it holds the order's shard).
    pub fn is_local(&self, id: &OrderId) -> bool {
        self.entities.is_local(id)
    }

    /// Whether the order exists or is promised.
    pub async fn known(&self, id: &OrderId) -> bool {
        self.exists(id).await.unwrap_or(false)
    }

    /// [`Self::known`], with a store that could not be read an error rather than "no".
    pub async fn exists(&self, id: &OrderId) -> Result<bool, crate::persistence::JournalError> {
        if self.promises.pending.contains_key(id) {
            return Ok(true);
        }
        if !self.ids.may_hold(id) {
            return Ok(false);
        }
        let stored = self.entities.stored_views(vec![id.clone()]).await?;
        Ok(matches!(stored.as_slice(), [Some(_)]))
    }

    /// How many orders are answered but not yet written.
    pub fn promised(&self) -> usize {
        self.promises.pending.len()
    }

    /// The latest durable views of `ids`, read from the journal, in order.
    pub async fn stored_views(
        &self,
        ids: Vec<OrderId>,
    ) -> Result<Vec<Option<OrderView>>, crate::persistence::JournalError> {
        self.entities.stored_views(ids).await
    }

    /// The journal the orders write to: the history reads its index sets.
    pub fn journal(&self) -> &Arc<dyn crate::persistence::Journal> {
        self.entities.journal()
    }

    /// Calls `listener` with every order view from now on, once durable.
    pub fn on_view(&self, listener: impl Fn(&OrderId, &OrderView) + Send + Sync + 'static) {
        self.entities.on_view(listener);
    }

    /// Starts the order kind's reminder timer (see `dispatcher`), reading every `period`.
    pub fn keep_reminders(
        &self,
        period: Duration,
        handler: crate::actors::reminders::DueHandler<Order>,
    ) {
        self.entities.keep_reminders(Some(period), Some(handler));
    }

    /// The order kind as a node handles every kind (counters, snapshots, shutdown, views);
    /// asks forwarded from other nodes keep the order's promise first, as local ones do.
    pub fn kind(&self) -> Arc<dyn EntityKind> {
        Arc::new(BookKind(self.clone()))
    }

    /// The queue of promised orders; `None` after the first call.
    pub(super) fn take_queue(&self) -> Option<mpsc::UnboundedReceiver<OrderId>> {
        self.promises.receiver.lock().ok()?.take()
    }

    /// Writes the order if it is promised, before a request reaches it: the same placement
    /// again is a replay, so an order the background wrote meanwhile is answered as it is.
    /// A busy order kind is tried [`REQUEST_ATTEMPTS`] times, the pause doubling; a promise
    /// another writer has is waited for ([`BUSY_WAIT`]). What fails is left to the
    /// background writer.
    async fn keep_promise(&self, id: &OrderId) -> Result<(), AskError<OrderError>> {
        let deadline = tokio::time::Instant::now() + BUSY_WAIT;
        let (placement, claim) = loop {
            let settled = self.promises.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            match self.claim(id) {
                Claim::Kept => return Ok(()),
                Claim::Mine(placement, claim) => break (placement, claim),
                // Another writer has it: wait for a write to end, then look again.
                Claim::Busy => {
                    if tokio::time::timeout_at(deadline, settled).await.is_err() {
                        return Err(AskError::Timeout);
                    }
                }
            }
        };
        let result = self.keep_claimed(id, placement).await;
        claim.release(match &result {
            Ok(()) => Outcome::Written,
            Err(AskError::Rejected(_)) => Outcome::Dropped,
            Err(_) => Outcome::Retry,
        });
        result
    }

    /// [`OrderBook::keep_promise`] once the promise is this writer's.
    async fn keep_claimed(
        &self,
        id: &OrderId,
        placement: Box<Placement>,
    ) -> Result<(), AskError<OrderError>> {
        let place = OrderCommand::Place(placement);
        let (mut left, mut pause) = (REQUEST_ATTEMPTS, FIRST_PAUSE);
        loop {
            match self.entities.ask(id, place.clone()).await {
                Ok(_) => return Ok(()),
                // The id holds another order (its key was reused at the same instant): this
                // promise cannot be kept, and its hold lapses at its expiry.
                Err(e @ AskError::Rejected(_)) => return Err(e),
                Err(e) => {
                    // Only a busy kind is tried again; a timeout (the owner slow or cut off:
                    // each try waits the whole ask timeout) is left to the background writer.
                    if !matches!(e, AskError::Overloaded) || left <= 1 {
                        return Err(e);
                    }
                    left -= 1;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            }
        }
    }
}

/// The order kind of a node: every [`EntityKind`] duty goes to the entities, but an ask
/// forwarded here keeps the order's promise first.
struct BookKind(OrderBook);

impl EntityKind for BookKind {
    fn kind(&self) -> &'static str {
        self.0.entities.kind()
    }

    fn stats(&self) -> &crate::actors::KindStats {
        EntityKind::stats(&self.0.entities)
    }

    fn receive(&self, raw_id: &str, bytes: &[u8]) -> anyhow::Result<()> {
        self.0.entities.receive(raw_id, bytes)
    }

    fn snapshot_all(&self) -> BoxFuture<'_, crate::actors::SnapshotTally> {
        EntityKind::snapshot_all(&self.0.entities)
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        EntityKind::shutdown(&self.0.entities)
    }

    fn stop_where<'a>(
        &'a self,
        leaving: &'a (dyn Fn(&str) -> bool + Sync),
    ) -> BoxFuture<'a, usize> {
        Box::pin(async move {
            // Promised orders of a leaving shard are written before it goes: the next owner
            // would not know them.
            self.0.write_promises_where(leaving).await;
            EntityKind::stop_where(&self.0.entities, leaving).await
        })
    }

    fn serve<'a>(&'a self, raw_id: &'a str, op: Op) -> BoxFuture<'a, Answer> {
        Box::pin(async move {
            if let Ok(id) = OrderId::parse(raw_id)
                && let Err(e) = self.0.write_promised(&id).await
            {
                return Answer::from_failure(e);
            }
            self.0.entities.serve(raw_id, op).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::RuntimeConfig;
    use crate::domain::time::{ManualClock, Timestamp};
    use crate::persistence::memory::MemoryJournal;

    fn placement() -> Box<Placement> {
        Box::new(Placement::example("u1", "f", Timestamp(1_000)))
    }

    /// Given a promise claimed by a writer, when the writer's future is dropped mid-write
    /// (its client gone), then the promise waits again, queued for the background writer,
    /// and the next writer can claim it.
    #[tokio::test]
    async fn a_claim_dropped_mid_write_hands_the_promise_back() {
        let rt = Runtime {
            journal: Arc::new(MemoryJournal::new()),
            clock: Arc::new(ManualClock::starting_at(Timestamp(1_000))),
            config: RuntimeConfig::default(),
            shutdown: tokio_util::sync::CancellationToken::new(),
            remote: None,
        };
        let book = OrderBook::start(rt).await.unwrap();
        let mut queue = book.take_queue().unwrap();
        let id = OrderId::parse("o-1").unwrap();
        book.promise(id.clone(), placement());
        assert_eq!(queue.try_recv().ok(), Some(id.clone()));
        let Claim::Mine(_, claim) = book.claim(&id) else {
            panic!("the first writer claims it");
        };
        assert!(matches!(book.claim(&id), Claim::Busy));
        book.promise(id.clone(), placement());
        assert!(
            queue.try_recv().is_err(),
            "a promise made again is the same one"
        );
        drop(claim);
        assert_eq!(queue.try_recv().ok(), Some(id.clone()), "queued again");
        let Claim::Mine(_, claim) = book.claim(&id) else {
            panic!("the next writer claims it");
        };
        claim.release(Outcome::Written);
        assert!(matches!(book.claim(&id), Claim::Kept));
        assert_eq!(book.promised(), 0);
    }
}
