//! Promised orders: a drop purchase is answered as soon as the SKU's hold is durable, and the
//! hold keeps the order it becomes (`Reservation::order`). The order entity is written right
//! after, off the buyer's path, by [`keep`]; until then the order is *promised*. Every order
//! request first keeps the promise of the order it names ([`Orders::ask`]), so a buyer who pays
//! at once finds the order. A crash in between loses nothing: [`Orders::recover_promises`]
//! reads the holds the SKUs keep and promises again every order that was never written.

use crate::actors::sku::Sku;
use crate::actors::{AskError, Entities};
use crate::domain::ids::OrderId;
use crate::domain::inventory::SkuCommand;
use crate::domain::order::{OrderCommand, OrderEvent, OrderState, Placement};
use crate::orders::{OrderFailure, Orders};
use dashmap::DashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// How many promised orders are written at once in the background.
const WRITERS: usize = 64;
/// A promise the order kind could not take (busy) is tried again after this, doubling.
const FIRST_PAUSE: Duration = Duration::from_millis(5);
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// How long a request waits for a busy order kind before it gives up with 429.
const REQUEST_ATTEMPTS: usize = 40;

/// Orders answered but not yet written, and the queue of the background writer.
pub struct Promises {
    pending: DashMap<OrderId, Box<Placement>>,
    queue: mpsc::UnboundedSender<OrderId>,
    /// Taken once, by [`keep`].
    receiver: std::sync::Mutex<Option<mpsc::UnboundedReceiver<OrderId>>>,
}

impl Default for Promises {
    fn default() -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        Self {
            pending: DashMap::new(),
            queue,
            receiver: std::sync::Mutex::new(Some(receiver)),
        }
    }
}

impl Promises {
    /// How many orders are answered but not yet written.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// The order as it is once `placement` is written: what the buyer is answered with.
pub fn placed(placement: Box<Placement>) -> OrderState {
    let mut state = OrderState::default();
    crate::domain::order::rules::apply(&mut state, &OrderEvent::Placed(placement));
    state
}

impl Orders {
    /// Promises the order `placement` describes (its units are held durably): it is written
    /// in the background. Returns the order as it will be.
    pub fn promise(&self, id: OrderId, placement: Box<Placement>) -> OrderState {
        let state = placed(placement.clone());
        self.promises.pending.insert(id.clone(), placement);
        // The receiver lives as long as the node; without it, requests keep the promise.
        let _ = self.promises.queue.send(id);
        state
    }

    /// The placement of an order promised and not yet written.
    pub fn promised(&self, id: &OrderId) -> Option<Box<Placement>> {
        self.promises.pending.get(id).map(|p| p.value().clone())
    }

    /// Whether the order exists or is promised.
    pub fn known(&self, id: &OrderId) -> bool {
        self.entities.view(id).is_some() || self.promises.pending.contains_key(id)
    }

    /// Asks the order, writing it first if it was only promised.
    pub(crate) async fn ask(
        &self,
        id: &OrderId,
        command: OrderCommand,
    ) -> Result<OrderState, AskError<crate::domain::order::OrderError>> {
        self.keep_promise(id, REQUEST_ATTEMPTS, FIRST_PAUSE).await?;
        self.entities.ask(id, command).await
    }

    /// Writes the order if it is promised: the same placement again is a replay, so two
    /// writers (a request and the background) are harmless. A busy order kind is tried
    /// `attempts` times, the pause doubling from `pause`.
    async fn keep_promise(
        &self,
        id: &OrderId,
        attempts: usize,
        mut pause: Duration,
    ) -> Result<(), AskError<crate::domain::order::OrderError>> {
        let Some(placement) = self.promised(id) else {
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
                Err(AskError::Overloaded | AskError::Timeout) if left > 1 => {
                    left -= 1;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                }
                Err(e @ AskError::Rejected(_)) => {
                    // The id holds another order (its key was reused at the same instant):
                    // this promise cannot be kept, and its hold lapses at its expiry.
                    self.promises.pending.remove(id);
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Promises again every order a SKU holds units for but the order kind never wrote (a
    /// crash between the hold and the write). Runs before the node is ready.
    pub async fn recover_promises(&self, skus: &Entities<Sku>) -> Result<usize, OrderFailure> {
        let mut promised = 0;
        let holding = skus
            .views()
            .into_iter()
            .filter(|(_, view)| view.drops.iter().any(|d| d.reserved > 0));
        for (sku, _) in holding {
            let held = skus.ask(&sku, SkuCommand::HeldOrders).await.map_err(|e| {
                OrderFailure::Internal(format!("reading the holds of SKU {sku}: {e:?}"))
            })?;
            for receipt in held.held_orders {
                if self.entities.view(&receipt.order_id).is_none() {
                    self.promise(receipt.order_id, receipt.order);
                    promised += 1;
                }
            }
        }
        Ok(promised)
    }
}

/// Writes promised orders in the background until `shutdown`; what is left then is promised
/// again at the next start, from the holds.
pub async fn keep(orders: Orders, shutdown: CancellationToken) {
    let Some(mut queue) = orders
        .promises
        .receiver
        .lock()
        .ok()
        .and_then(|mut r| r.take())
    else {
        return;
    };
    let writers = Arc::new(Semaphore::new(WRITERS));
    loop {
        let id = tokio::select! {
            () = shutdown.cancelled() => return,
            next = queue.recv() => match next {
                Some(id) => id,
                None => return,
            },
        };
        let Ok(permit) = writers.clone().acquire_owned().await else {
            return;
        };
        let orders = orders.clone();
        tokio::spawn(async move {
            if let Err(e) = orders.keep_promise(&id, usize::MAX, FIRST_PAUSE).await {
                tracing::error!(order_id = %id, error = ?e, "a promised order could not be written; it is written again at the next start");
            }
            drop(permit);
        });
    }
}
