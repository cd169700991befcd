//! Orders: placing an order (every line reserved on its SKU or none, the coupon held, priced
//! with the shared totals function), paying it through the gateway, cancelling, shipping,
//! returns and exchanges — the order saga. The order entity decides and records every step
//! (its journal is the outbox). [`Orders`] is the service the edges use; its parts each have
//! one job:
//! - `book`: the order entities behind one `ask`, with the drop orders promised but not yet
//!   written (every ask keeps the promise of the order it names first), and `known`: which
//!   ids are orders, from memory;
//! - [`placement`]: building what an order is placed with (lines at catalog prices, the
//!   coupon priced, the address sealed);
//! - `saga`: carrying the steps out against the SKUs, wallets, carts, the gateway and the
//!   carrier; [`dispatcher`] retries what failed and re-drives what a crash interrupted;
//! - [`promised`]: writing promised orders in the background, and again after a crash;
//! - `flows`: what each order route means in terms of the saga; [`history`]: the listings.

mod book;
mod capture;
mod dispatcher;
mod failure;
mod flows;
pub mod history;
mod known;
pub mod placement;
pub mod promised;
mod saga;
pub mod settings;
mod tell;

use crate::actors::order::{OrderView, PendingEffect};
use crate::actors::sku::Sku;
use crate::actors::user::User;
use crate::actors::{AskError, Entities, EntityKind, Inspection, Runtime};
use crate::auth::accounts::Accounts;
use crate::catalog::Catalog;
use crate::domain::ids::{OrderId, UserId};
use crate::domain::inventory::SkuCommand;
use crate::domain::order::{OrderCommand, OrderError, OrderState, Placement, Requester};
use crate::domain::time::Clock;
use crate::integrations::carrier::Carrier;
use crate::integrations::payments::PaymentGateway;
use crate::shopping::Shopping;
use book::OrderBook;
use dashmap::DashMap;
pub use failure::OrderFailure;
use placement::{DropOrder, Placements, ShippingAddress};
use saga::Saga;
use settings::{OrderSettings, OutboxSettings};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Where the engine is reached from outside (carrier callbacks) and where its gateway is.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub carrier_callback_url: String,
    /// What `payment.checkout_url` points shoppers to.
    pub checkout_base: String,
    pub provider: String,
    pub carrier_name: String,
    /// The store currency.
    pub currency: String,
}

/// The orders service: a cheap handle (every part is shared) over the order book, the read
/// models, and the parts that build placements and drive sagas.
#[derive(Clone)]
pub struct Orders {
    /// The order entities, reached only through its `ask`.
    book: OrderBook,
    placements: Arc<Placements>,
    saga: Arc<Saga>,
    config: Arc<OrderConfig>,
    endpoints: Arc<Endpoints>,
    clock: Arc<dyn Clock>,
    /// The settlements the saga records, until the background tells their SKUs.
    recorded: Arc<std::sync::Mutex<Option<saga::RecordedNotes>>>,
}

/// The settings the orders service reads.
#[derive(Debug, Clone)]
pub struct OrderConfig {
    pub orders: OrderSettings,
    pub outbox: OutboxSettings,
}

/// A read of the order store that failed: logged with its cause here, where it is known, and
/// answered as `503 unavailable`.
fn store_unavailable(e: impl std::fmt::Display) -> OrderFailure {
    tracing::warn!(error = %e, "the order store could not be read");
    OrderFailure::Runtime(crate::actors::RuntimeError::Unavailable)
}

/// How many of the orders owing a step the outbox summary reads.
pub const OUTBOX_READ: usize = 10_000;

/// The outbox at a glance (see [`Orders::outbox`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OutboxSummary {
    /// Orders with at least one step still to run.
    pub orders_owing: usize,
    /// Steps still to run (waiting for their backoff or due now), dead letters excluded.
    pub steps_pending: usize,
    /// Of those, the steps whose time has come.
    pub steps_due: usize,
    pub dead_letters: usize,
    /// When the oldest pending step was queued, and its order: how long the outbox has owed
    /// it, whatever its retries' backoff (a booking from its order's last status; a step
    /// queued before this was kept, from when it is next due). Read
    /// over the [`OUTBOX_READ`] orders due soonest, so in a storm of more owing orders a step
    /// with a long backoff may be missed. A revived dead letter keeps its first queued time.
    pub oldest_pending: Option<(crate::domain::time::Timestamp, OrderId)>,
}

/// What the orders service is built from.
pub struct Parts {
    pub users: Entities<User>,
    pub skus: Entities<Sku>,
    pub catalog: Catalog,
    pub shopping: Shopping,
    pub accounts: Arc<Accounts>,
    pub gateway: Arc<dyn PaymentGateway>,
    pub carrier: Arc<dyn Carrier>,
    pub config: OrderConfig,
    pub endpoints: Endpoints,
    pub confirm_attempts: u32,
    pub bus: crate::events::EventBus,
}

impl Orders {
    /// Starts the order kind and its read models; the dispatcher and the writer of promised
    /// orders start with [`Orders::spawn_background`].
    pub async fn start(rt: Runtime, parts: Parts) -> anyhow::Result<Self> {
        let clock = rt.clock.clone();
        let book = OrderBook::start(rt).await?;
        let indexed = history::backfill(book.journal()).await?;
        // Only space is at stake: a failure is tried again at the next start.
        match history::forget_all_set(book.journal()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(orders = n, "entries of the retired all-orders set removed"),
            Err(e) => tracing::warn!(error = %e, "the retired all-orders set is emptied later"),
        }
        if indexed > 0 {
            tracing::info!(
                orders = indexed,
                "history index and reminders written for stored orders"
            );
        }
        let config = Arc::new(parts.config);
        let endpoints = Arc::new(parts.endpoints);
        let placements = Arc::new(Placements {
            users: parts.users.clone(),
            carts: parts.shopping.carts.clone(),
            catalog: parts.catalog,
            shopping: parts.shopping.clone(),
            accounts: parts.accounts.clone(),
            ttl: Duration::from_secs(config.orders.ttl_secs),
            currency: endpoints.currency.clone(),
            clock: clock.clone(),
        });
        let (recorded, recorded_notes) = tokio::sync::mpsc::unbounded_channel();
        let saga = Arc::new(Saga {
            book: book.clone(),
            skus: parts.skus,
            users: parts.users,
            carts: parts.shopping.carts,
            accounts: parts.accounts,
            gateway: parts.gateway,
            carrier: parts.carrier,
            placements: placements.clone(),
            retry: config.outbox.policy(),
            reservation_grace: Duration::from_secs(config.orders.reservation_grace_secs),
            confirm_attempts: parts.confirm_attempts.max(1),
            carrier_callback_url: endpoints.carrier_callback_url.clone(),
            carrier_name: endpoints.carrier_name.clone(),
            drivers: DashMap::new(),
            bus: parts.bus,
            recorded,
            clock: clock.clone(),
        });
        Ok(Self {
            book,
            placements,
            saga,
            config,
            endpoints,
            clock,
            recorded: Arc::new(std::sync::Mutex::new(Some(recorded_notes))),
        })
    }

    /// Starts the background work: the dispatcher (the order kind's reminder timer), the
    /// writer of promised orders, and the notes of recorded settlements to their SKUs. All
    /// stop when the node shuts down.
    pub fn spawn_background(&self, shutdown: &CancellationToken) {
        let skus = self.saga.skus.clone();
        tokio::spawn(promised::keep(
            self.book.clone(),
            skus.clone(),
            shutdown.clone(),
        ));
        let notes = self.recorded.lock().ok().and_then(|mut r| r.take());
        if let Some(notes) = notes {
            let forget = |orders| SkuCommand::ForgetSettled { orders };
            tokio::spawn(tell::in_batches(skus, notes, shutdown.clone(), forget));
        }
        let every = Duration::from_millis(self.config.outbox.poll_ms.max(10));
        let handler = dispatcher::handler(self.book.clone(), self.saga.clone());
        self.book.keep_reminders(every, handler);
    }

    /// Asks the order (written first if it was only promised).
    pub(crate) async fn ask(
        &self,
        id: &OrderId,
        command: OrderCommand,
    ) -> Result<OrderState, AskError<OrderError>> {
        self.book.ask(id, command).await
    }

    /// The order's state and journal position, for operators.
    pub async fn inspect(&self, id: &OrderId) -> Result<Inspection, OrderFailure> {
        Ok(self.book.inspect(id).await?)
    }

    /// Promises the order a drop purchase's hold keeps (see `book.rs`); the order as it will be.
    pub fn promise(&self, id: OrderId, placement: Box<Placement>) -> OrderState {
        self.book.promise(id, placement)
    }

    /// Whether this node can write the order now: a drop purchase is acknowledged only when it
    /// can (until asks are forwarded between cluster nodes).
    pub fn is_local(&self, id: &OrderId) -> bool {
        self.book.is_local(id)
    }

    /// See [`OrderBook::write_promised`].
    pub async fn write_promised(&self, id: &OrderId) -> Result<(), AskError<OrderError>> {
        self.book.write_promised(id).await
    }

    /// Whether the order exists or is promised.
    pub async fn known(&self, id: &OrderId) -> bool {
        self.book.known(id).await
    }

    /// Whether the order exists or is promised (by this node: another node's promise is
    /// known once written, within moments); a store that cannot be read is `503`.
    pub async fn exists(&self, id: &OrderId) -> Result<bool, OrderFailure> {
        self.book.exists(id).await.map_err(store_unavailable)
    }

    /// See [`OrderBook::write_promised_of`].
    pub async fn write_promised_of(&self, user: &UserId) -> Result<(), OrderFailure> {
        Ok(self.book.write_promised_of(user).await?)
    }

    /// How many drop orders are answered but not yet written.
    pub fn promised(&self) -> usize {
        self.book.promised()
    }

    /// Promises again, at start-up, every drop order held but never written; how many. In a
    /// cluster (`others_own_some`), only for the SKUs this node can reach.
    pub async fn recover_promises(
        &self,
        skus: &Entities<Sku>,
        clustered: bool,
    ) -> anyhow::Result<promised::Recovered> {
        promised::recover(&self.book, skus, clustered).await
    }

    /// Calls `listener` with every order view from now on, once durable.
    pub fn on_view(&self, listener: impl Fn(&OrderId, &OrderView) + Send + Sync + 'static) {
        self.book.on_view(listener);
    }

    /// The order kind as a node handles every kind (counters, snapshots, shutdown, views).
    pub fn kind(&self) -> Arc<dyn EntityKind> {
        self.book.kind()
    }

    /// The order a drop purchase becomes (see [`Placements::for_drop`]).
    pub async fn drop_placement(&self, req: DropOrder) -> Result<Placement, OrderFailure> {
        self.placements.for_drop(req).await
    }

    /// The shipping address of a placed order, opened.
    pub async fn address_of(
        &self,
        placement: &Placement,
    ) -> Result<Option<ShippingAddress>, OrderFailure> {
        self.placements.address_of(placement).await
    }

    /// How much longer a SKU holds a drop order's units than the order itself waits.
    pub fn reservation_grace(&self) -> Duration {
        Duration::from_secs(self.config.orders.reservation_grace_secs)
    }

    /// Where the order's payment page and provider are.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Runs the order's due steps (see [`Saga::drive`]).
    pub async fn drive(&self, id: &OrderId) -> Result<OrderState, OrderFailure> {
        self.saga.drive(id).await
    }

    /// The order as `by` may see it: strangers and orders that never came to be are not found.
    pub async fn get(&self, by: &Requester, id: &OrderId) -> Result<OrderState, OrderFailure> {
        let state = self.ask(id, OrderCommand::Get).await?;
        let visible = state.status.is_some_and(|s| s.visible());
        if !visible || !(by.admin || state.owner() == Some(&by.user_id)) {
            return Err(OrderFailure::NotFound("order"));
        }
        Ok(state)
    }

    /// A page of orders, newest first: a shopper's, everyone's or one status's (admin).
    pub async fn list(
        &self,
        listing: history::Listing<'_>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<(OrderId, OrderView)>, Option<String>), OrderFailure> {
        let cursor = match cursor {
            Some(raw) => Some(history::decode_cursor(raw).ok_or_else(|| {
                OrderFailure::Invalid("invalid_cursor", "the cursor is not valid".into())
            })?),
            None => None,
        };
        let journal = self.book.journal();
        let (ids, next) = history::page(journal, listing, cursor.as_ref(), limit)
            .await
            .map_err(store_unavailable)?;
        let views = self.views_of(ids.clone()).await?;
        let items = ids
            .into_iter()
            .zip(views)
            .filter_map(|(id, view)| Some((id, view?)))
            .collect();
        Ok((items, next))
    }

    /// Asks the order, then carries out the steps the command queued.
    pub async fn command(
        &self,
        id: &OrderId,
        command: OrderCommand,
    ) -> Result<OrderState, OrderFailure> {
        self.book.ask(id, command).await?;
        self.saga.drive(id).await
    }

    /// The durable views of `ids`, in order (`None` for an order never written).
    async fn views_of(&self, ids: Vec<OrderId>) -> Result<Vec<Option<OrderView>>, OrderFailure> {
        self.book.stored_views(ids).await.map_err(store_unavailable)
    }

    /// Every dead letter: steps that failed too often, waiting for an operator.
    pub async fn dead_letters(&self) -> Result<Vec<(OrderId, PendingEffect)>, OrderFailure> {
        let ids = history::dead(self.book.journal())
            .await
            .map_err(store_unavailable)?;
        let views = self.views_of(ids.clone()).await?;
        Ok(ids
            .into_iter()
            .zip(views)
            .flat_map(|(id, view)| {
                let dead = view.map(|v| v.effects).unwrap_or_default();
                dead.into_iter()
                    .filter(|e| e.dead)
                    .map(move |e| (id.clone(), e))
            })
            .collect())
    }

    /// How much work the outbox holds: what an operator watches to see it drain. The steps
    /// are counted over the [`OUTBOX_READ`] orders due first (all of them, unless a storm of
    /// failures left more owing).
    pub async fn outbox(&self) -> Result<OutboxSummary, OrderFailure> {
        let now = self.now();
        let (owing, count) = history::owing(self.book.journal(), OUTBOX_READ)
            .await
            .map_err(store_unavailable)?;
        let mut summary = OutboxSummary {
            orders_owing: count,
            // An order holding only dead letters has left the active set: count them all.
            dead_letters: self.dead_letters().await?.len(),
            ..OutboxSummary::default()
        };
        let ids: Vec<OrderId> = owing.into_iter().map(|(_, id)| id).collect();
        let views = self.views_of(ids.clone()).await?;
        for (id, view) in ids.into_iter().zip(views) {
            let Some(view) = view else { continue };
            let live = view.effects.iter().filter(|e| !e.dead);
            for effect in live {
                summary.steps_pending += 1;
                summary.steps_due += usize::from(effect.not_before <= now);
                // Queued before queued times were kept: since it is next due, else since the
                // order last changed.
                let since = [effect.queued_at, effect.not_before, view.updated_at]
                    .into_iter()
                    .find(|t| t.0 > 0)
                    .unwrap_or(now);
                if summary
                    .oldest_pending
                    .as_ref()
                    .is_none_or(|(at, _)| since < *at)
                {
                    summary.oldest_pending = Some((since, id.clone()));
                }
            }
        }
        Ok(summary)
    }

    pub fn now(&self) -> crate::domain::time::Timestamp {
        self.clock.now()
    }
}
