//! Orders: placing an order (every line reserved on its SKU or none, the coupon held, priced
//! with the shared totals function), paying it through the gateway, cancelling, shipping,
//! returns and exchanges — the order saga. The order entity decides and records every step
//! (its journal is the outbox); [`saga`] carries the steps out against the SKUs, wallets,
//! carts, the gateway and the carrier; [`dispatcher`] retries what failed and re-drives what a
//! crash interrupted; [`history`] serves the listings.

pub mod dispatcher;
pub mod flows;
pub mod history;
pub mod placement;
pub mod promised;
pub mod saga;
pub mod settings;

use crate::actors::cart::Cart;
use crate::actors::order::Order;
use crate::actors::sku::Sku;
use crate::actors::user::User;
use crate::actors::{AskError, Entities, Runtime};
use crate::auth::accounts::Accounts;
use crate::catalog::Catalog;
use crate::domain::ids::{OrderId, UserId};
use crate::domain::order::{OrderCommand, OrderError, OrderState, Requester};
use crate::domain::time::Clock;
use crate::integrations::carrier::Carrier;
use crate::integrations::payments::PaymentGateway;
use crate::orders::history::History;
use crate::orders::settings::{OrderSettings, OutboxSettings};
use crate::shopping::Shopping;
use dashmap::DashMap;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum OrderFailure {
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error(transparent)]
    Order(#[from] OrderError),
    #[error("not enough stock")]
    InsufficientStock { skus: Vec<String> },
    #[error("the coupon does not apply: {0}")]
    CouponNotApplicable(&'static str),
    /// A request the rules refuse before anything happens: a code and what is wrong.
    #[error("{1}")]
    Invalid(&'static str, String),
    #[error("the payment was declined: {reason}")]
    PaymentDeclined { reason: String },
    /// The step is still being retried (gateway or carrier unreachable, a busy entity).
    #[error("{1}")]
    Pending(&'static str, &'static str),
    #[error("the service is busy or unavailable")]
    Runtime(AskError<()>),
    #[error("internal error: {0}")]
    Internal(String),
}

impl<R: Into<OrderFailure>> From<AskError<R>> for OrderFailure {
    fn from(e: AskError<R>) -> Self {
        match e {
            AskError::Rejected(r) => r.into(),
            AskError::NotFound => OrderFailure::NotFound("order"),
            other => OrderFailure::Runtime(other.map_rejection(|_| ())),
        }
    }
}

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

#[derive(Clone)]
pub struct Orders {
    pub entities: Entities<Order>,
    pub history: Arc<History>,
    skus: Entities<Sku>,
    users: Entities<User>,
    carts: Entities<Cart>,
    pub(crate) catalog: Catalog,
    shopping: Shopping,
    accounts: Arc<Accounts>,
    gateway: Arc<dyn PaymentGateway>,
    carrier: Arc<dyn Carrier>,
    pub settings: Arc<(OrderSettings, OutboxSettings)>,
    pub endpoints: Arc<Endpoints>,
    confirm_attempts: u32,
    clock: Arc<dyn Clock>,
    /// One driver per order at a time (a request and the dispatcher may both want to).
    drivers: Arc<DashMap<OrderId, Arc<tokio::sync::Mutex<()>>>>,
    /// Drop orders answered and not yet written.
    pub promises: Arc<promised::Promises>,
    /// Where notifications are pushed (`user:{id}`).
    pub(crate) bus: crate::events::EventBus,
}

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
    /// The earliest time a pending step became (or becomes) due, and its order.
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
    pub orders: OrderSettings,
    pub outbox: OutboxSettings,
    pub endpoints: Endpoints,
    pub confirm_attempts: u32,
    pub bus: crate::events::EventBus,
}

impl Orders {
    /// Starts the order kind and its read models; the dispatcher is started separately.
    pub async fn start(rt: Runtime, parts: Parts) -> anyhow::Result<Self> {
        let clock = rt.clock.clone();
        let entities = Entities::<Order>::start(rt).await?;
        let history = Arc::new(History::default());
        for (id, view) in entities.views() {
            history.record(&id, &view);
        }
        let h = history.clone();
        entities.on_view(move |id, view| h.record(id, view));
        entities.wake_reminders();
        Ok(Self {
            entities,
            history,
            carts: parts.shopping.carts.clone(),
            skus: parts.skus,
            users: parts.users,
            catalog: parts.catalog,
            shopping: parts.shopping,
            accounts: parts.accounts,
            gateway: parts.gateway,
            carrier: parts.carrier,
            settings: Arc::new((parts.orders, parts.outbox)),
            endpoints: Arc::new(parts.endpoints),
            confirm_attempts: parts.confirm_attempts.max(1),
            clock,
            drivers: Arc::default(),
            promises: Arc::default(),
            bus: parts.bus,
        })
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

    /// A page of orders, newest first: `user`'s, or everyone's (admin).
    pub async fn list(
        &self,
        user: Option<&UserId>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<
        (
            Vec<(OrderId, crate::actors::order::OrderView)>,
            Option<String>,
        ),
        OrderFailure,
    > {
        let cursor = match cursor {
            Some(raw) => Some(history::decode_cursor(raw).ok_or_else(|| {
                OrderFailure::Invalid("invalid_cursor", "the cursor is not valid".into())
            })?),
            None => None,
        };
        let (ids, next) = self.history.page(user, cursor.as_ref(), limit);
        let items = ids
            .into_iter()
            .filter_map(|id| self.entities.view(&id).map(|v| (id, v)))
            .collect();
        Ok((items, next))
    }

    /// Asks the order, then carries out the steps the command queued.
    pub async fn command(
        &self,
        id: &OrderId,
        command: OrderCommand,
    ) -> Result<OrderState, OrderFailure> {
        self.ask(id, command).await?;
        self.drive(id).await
    }

    /// Every dead letter: steps that failed too often, waiting for an operator.
    pub fn dead_letters(&self) -> Vec<(OrderId, crate::actors::order::PendingEffect)> {
        self.entities
            .views()
            .into_iter()
            .flat_map(|(id, view)| {
                view.effects
                    .into_iter()
                    .filter(|e| e.dead)
                    .map(move |e| (id.clone(), e))
            })
            .collect()
    }

    /// How much work the outbox holds: what an operator watches to see it drain.
    pub fn outbox(&self) -> OutboxSummary {
        let now = self.now();
        let mut summary = OutboxSummary {
            // An order holding only dead letters has left the active set: count them all.
            dead_letters: self.dead_letters().len(),
            ..OutboxSummary::default()
        };
        for id in self.history.active() {
            let Some(view) = self.entities.view(&id) else {
                continue;
            };
            let live: Vec<_> = view.effects.iter().filter(|e| !e.dead).collect();
            if !live.is_empty() {
                summary.orders_owing += 1;
            }
            summary.steps_pending += live.len();
            summary.steps_due += live.iter().filter(|e| e.not_before <= now).count();
            if let Some(at) = live.iter().map(|e| e.not_before).min()
                && summary.oldest_pending.as_ref().is_none_or(|(t, _)| at < *t)
            {
                summary.oldest_pending = Some((at, id.clone()));
            }
        }
        summary
    }

    pub fn now(&self) -> crate::domain::time::Timestamp {
        self.clock.now()
    }
}

impl From<crate::domain::user::UserError> for OrderFailure {
    fn from(e: crate::domain::user::UserError) -> Self {
        match e {
            crate::domain::user::UserError::NotFound => OrderFailure::NotFound("account"),
            other => OrderFailure::Internal(other.to_string()),
        }
    }
}

impl From<crate::domain::cart::CartError> for OrderFailure {
    fn from(e: crate::domain::cart::CartError) -> Self {
        OrderFailure::Internal(e.to_string())
    }
}
