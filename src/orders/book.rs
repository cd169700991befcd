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

use crate::actors::order::{Order, OrderView};
use crate::actors::remote::{Answer, Op};
use crate::actors::{AskError, Entities, EntityKind, Inspection, Runtime};
use crate::domain::ids::OrderId;
use crate::domain::order::{OrderCommand, OrderError, OrderEvent, OrderState, Placement};
use dashmap::DashMap;
use futures_util::future::BoxFuture;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A promise the order kind could not take (busy) is tried again after this, doubling.
pub(super) const FIRST_PAUSE: Duration = Duration::from_millis(5);
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// How long a request waits for a busy order kind before it gives up with 429.
const REQUEST_ATTEMPTS: usize = 40;

#[derive(Clone)]
pub struct OrderBook {
    entities: Entities<Order>,
    promises: Arc<Promises>,
}

/// Orders answered but not yet written, and the queue of the background writer.
struct Promises {
    pending: DashMap<OrderId, Box<Placement>>,
    queue: mpsc::UnboundedSender<OrderId>,
    /// Taken once, by the background writer.
    receiver: Mutex<Option<mpsc::UnboundedReceiver<OrderId>>>,
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
        let entities = Entities::<Order>::start(rt).await?;
        let (queue, receiver) = mpsc::unbounded_channel();
        let promises = Promises {
            pending: DashMap::new(),
            queue,
            receiver: Mutex::new(Some(receiver)),
        };
        Ok(Self {
            entities,
            promises: Arc::new(promises),
        })
    }

    /// Asks the order, writing it first if it was only promised.
    pub async fn ask(
        &self,
        id: &OrderId,
        command: OrderCommand,
    ) -> Result<OrderState, AskError<OrderError>> {
        self.keep_promise(id, REQUEST_ATTEMPTS, FIRST_PAUSE, None)
            .await?;
        self.entities.ask(id, command).await
    }

    /// The order's state and sequence numbers (written first if it was only promised).
    pub async fn inspect(&self, id: &OrderId) -> Result<Inspection, AskError<OrderError>> {
        self.keep_promise(id, REQUEST_ATTEMPTS, FIRST_PAUSE, None)
            .await?;
        self.entities.inspect(id).await
    }

    /// Promises the order `placement` describes (its units are held durably): it is written
    /// in the background. Returns the order as it will be.
    pub fn promise(&self, id: OrderId, placement: Box<Placement>) -> OrderState {
        let state = placed(placement.clone());
        self.promises.pending.insert(id.clone(), placement);
        // The receiver lives as long as the node; without it, requests keep the promise.
        let _ = self.promises.queue.send(id);
        state
    }

    /// Writes the order now if it is promised (as a request would); an error leaves the
    /// promise to the background writer.
    pub async fn write_promised(&self, id: &OrderId) -> Result<(), AskError<OrderError>> {
        self.keep_promise(id, REQUEST_ATTEMPTS, FIRST_PAUSE, None)
            .await
    }

    /// Writes, here, every promised order `leaving` selects (a shard leaving this node, its
    /// fence still good); those that fail stay with the background writer.
    async fn write_promises_where(&self, leaving: &(dyn Fn(&str) -> bool + Sync)) {
        let due: Vec<(OrderId, Box<Placement>)> = self
            .promises
            .pending
            .iter()
            .filter(|p| leaving(&p.key().to_string()))
            .map(|p| (p.key().clone(), p.value().clone()))
            .collect();
        for (id, placement) in due {
            match self
                .entities
                .ask_local(&id, OrderCommand::Place(placement))
                .await
            {
                Ok(_) | Err(AskError::Rejected(_)) => {
                    self.promises.pending.remove(&id);
                }
                Err(e) => {
                    tracing::warn!(order = %id, error = %e, "a promised order stays promised")
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
        if self.promises.pending.contains_key(id) {
            return true;
        }
        let stored = self.entities.stored_views(vec![id.clone()]).await;
        matches!(stored.as_deref(), Ok([Some(_)]))
    }

    /// The SKU holding a promised order's units (a drop order has one line).
    pub(super) fn promised_sku(&self, id: &OrderId) -> Option<crate::domain::ids::SkuId> {
        let placement = self.promises.pending.get(id)?;
        placement.lines.first().map(|l| l.sku_id.clone())
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

    /// Writes the order if it is promised: the same placement again is a replay, so two
    /// writers (a request and the background) are harmless. A busy order kind is tried
    /// `attempts` times, the pause doubling from `pause`; with `until_written` (the background
    /// writer: the units are held, the order must follow) an unavailable one too — in a
    /// cluster, the order's shard may be changing owner — until that token is cancelled
    /// (shutdown: the holds are promised again at the next start, or by the SKU's owner).
    pub(super) async fn keep_promise(
        &self,
        id: &OrderId,
        attempts: usize,
        mut pause: Duration,
        until_written: Option<&CancellationToken>,
    ) -> Result<(), AskError<OrderError>> {
        let Some(placement) = self.promises.pending.get(id).map(|p| p.value().clone()) else {
            return Ok(());
        };
        let place = OrderCommand::Place(placement);
        let mut left = attempts;
        loop {
            match self.entities.ask(id, place.clone()).await {
                Ok(_) => {
                    self.promises.pending.remove(id);
                    return Ok(());
                }
                Err(e @ AskError::Rejected(_)) => {
                    // The id holds another order (its key was reused at the same instant):
                    // this promise cannot be kept, and its hold lapses at its expiry.
                    self.promises.pending.remove(id);
                    return Err(e);
                }
                Err(e) => {
                    // A request retries only a busy kind; a timeout (the owner slow or cut
                    // off: each try waits the whole ask timeout) is left to the background
                    // writer, which retries until written.
                    let background = until_written.is_some_and(|stop| !stop.is_cancelled());
                    let busy = matches!(e, AskError::Overloaded)
                        || (background && matches!(e, AskError::Timeout));
                    let away = background && matches!(e, AskError::Unavailable);
                    if !(busy || away) || left <= 1 {
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

    fn snapshot_all(&self) -> BoxFuture<'_, usize> {
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
