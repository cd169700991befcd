//! Flash-sale drops as a service: creating a drop (the SKU sets the units aside), reading one
//! (from the SKUs' durable views, no ask), and buying: the hot path is one ask to the SKU actor
//! — window, stock and per-user limit checked and taken in one message, group-committed, the
//! order kept with the hold — then the answer. The order is written right after, already
//! reserved (`orders::promised`), so the orders saga pays, expires and compensates it like any
//! other. Sold-out and not-live answers come from the durable view without asking anyone.
//! [`live`] publishes each drop's remaining count on the EventBus, coalesced; [`announce`]
//! tells the shoppers who wishlisted a drop's product when it starts.

pub mod announce;
pub mod live;

use crate::actors::sku::Sku;
use crate::actors::{AskError, Entities, RuntimeError};
use crate::catalog::Catalog;
use crate::domain::drop::{DropError, DropId, DropSpec, DropState, DropStatus, DropView};
use crate::domain::ids::{OrderId, SkuId, UserId};
use crate::domain::inventory::{DropPurchase, SkuCommand, SkuError};
use crate::domain::order::{OrderCommand, OrderError, OrderState};
use crate::domain::time::Timestamp;
use crate::orders::placement::{
    DropOrder, ShippingAddress, canonical_body, fingerprint, order_id_for,
};
use crate::orders::{OrderFailure, Orders};
use dashmap::DashMap;
use std::sync::Arc;

/// Every drop by id, with its SKU: kept from the SKUs' durable views.
pub type DropIndex = DashMap<DropId, (SkuId, DropView)>;

#[derive(Clone)]
pub struct Drops {
    skus: Entities<Sku>,
    orders: Orders,
    /// Which SKUs are in the catalog (a drop needs one).
    catalog: Catalog,
    index: Arc<DropIndex>,
}

/// Why a drop request failed; mapped to HTTP once, in `http::drops`.
#[derive(Debug, thiserror::Error)]
pub enum DropFailure {
    #[error(transparent)]
    Drop(#[from] DropError),
    #[error(transparent)]
    Sku(SkuError),
    #[error("the SKU is not in the catalog")]
    UnknownSku,
    #[error(transparent)]
    Order(#[from] OrderFailure),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl From<SkuError> for DropFailure {
    fn from(e: SkuError) -> Self {
        match e {
            SkuError::Drop(d) => DropFailure::Drop(d),
            s => DropFailure::Sku(s),
        }
    }
}

impl From<AskError<SkuError>> for DropFailure {
    fn from(e: AskError<SkuError>) -> Self {
        e.into_failure()
    }
}

/// A purchase as the edge hands it over.
pub struct Purchase {
    pub user: UserId,
    pub drop_id: DropId,
    pub quantity: u32,
    pub idempotency_key: String,
    /// The request body as sent: its digest (with the drop id) refuses a key reused for
    /// another request. Read and digested only past the fast refusals, which need neither.
    pub request: bytes::Bytes,
    pub shipping_address: Option<ShippingAddress>,
}

impl Drops {
    /// Keeps the drop index from the SKUs' views, now and from here on.
    pub fn start(
        skus: Entities<Sku>,
        orders: Orders,
        catalog: Catalog,
        live: live::LiveStock,
    ) -> Self {
        sales::register();
        let index = Arc::new(DropIndex::new());
        let record = {
            let index = index.clone();
            move |sku: &SkuId, view: &crate::domain::inventory::StockView| {
                for d in &view.drops {
                    index.insert(d.drop_id.clone(), (sku.clone(), d.clone()));
                    live.update(d);
                }
            }
        };
        for (sku, view) in skus.views() {
            record(&sku, &view);
        }
        skus.on_view(record);
        Self {
            skus,
            orders,
            catalog,
            index,
        }
    }

    pub fn now(&self) -> Timestamp {
        self.orders.now()
    }

    /// Sets a drop up on its SKU, which must be in the catalog.
    pub async fn create(
        &self,
        sku: &SkuId,
        spec: DropSpec,
    ) -> Result<(DropId, DropView), DropFailure> {
        if self.catalog.index.owner_of(sku).is_none() {
            return Err(DropFailure::UnknownSku);
        }
        let drop_id = DropId::parse(format!("d{:016x}", rand::random::<u64>()))
            .map_err(|_| DropError::Invalid("drop id".into()))?;
        let create = SkuCommand::CreateDrop {
            drop_id: drop_id.clone(),
            spec: spec.clone(),
        };
        self.skus.ask(sku, create).await?;
        // The SKU's view may reach the index a moment after the reply: index the new drop now
        // (unless the view got there first) so it can be read and bought at once.
        let view = DropView::of(&drop_id, &DropState::new(spec));
        let entry = self
            .index
            .entry(drop_id.clone())
            .or_insert_with(|| (sku.clone(), view));
        Ok((drop_id, entry.value().1.clone()))
    }

    /// The drop and its SKU, as last made durable.
    pub fn get(&self, drop_id: &DropId) -> Option<(SkuId, DropView)> {
        self.index.get(drop_id).map(|e| e.value().clone())
    }

    /// A page of drops, soonest start first (then by id), of `status` at `now` if given, after
    /// `after` (the start and id of the previous page's last), of the SKUs `of_sku` keeps; and
    /// whether more follow.
    pub fn list(
        &self,
        status: Option<DropStatus>,
        after: Option<&(Timestamp, DropId)>,
        limit: usize,
        of_sku: impl Fn(&SkuId) -> bool,
    ) -> (Vec<(SkuId, DropView)>, bool) {
        let now = self.now();
        let mut all: Vec<(SkuId, DropView)> = self
            .index
            .iter()
            .map(|e| e.value().clone())
            .filter(|(sku, _)| of_sku(sku))
            .filter(|(_, d)| status.is_none_or(|s| d.status(now) == s))
            .filter(|(_, d)| after.is_none_or(|a| (d.starts_at, &d.drop_id) > (a.0, &a.1)))
            .collect();
        all.sort_by(|(_, a), (_, b)| (a.starts_at, &a.drop_id).cmp(&(b.starts_at, &b.drop_id)));
        let more = all.len() > limit;
        all.truncate(limit);
        (all, more)
    }

    /// Buys from a drop; the same key again returns the same order. Each purchase that is not
    /// a replay is counted in `emporium_drop_purchases_total{outcome}` (`sold`, `sold_out`,
    /// `not_live`, `limit_reached`, `refused`) and a sale's units in
    /// `emporium_drop_units_sold_total`.
    pub async fn purchase(&self, p: Purchase) -> Result<(OrderId, OrderState), DropFailure> {
        let quantity = p.quantity;
        let bought = self.purchase_once(p).await;
        sales::count(&bought, quantity);
        bought.map(|(id, state, _)| (id, state))
    }

    /// [`Self::purchase`]; also whether it was a new sale (not a replay).
    async fn purchase_once(&self, p: Purchase) -> Result<(OrderId, OrderState, bool), DropFailure> {
        let (sku, view) = self.get(&p.drop_id).ok_or(DropError::NotFound)?;
        let order_id = order_id_for(&p.user, &p.idempotency_key);
        let replay = self.orders.known(&order_id).await;
        if !replay {
            // Refusals the durable view already knows: no ask, no journal.
            match view.status(self.now()) {
                DropStatus::Live => {}
                DropStatus::SoldOut => return Err(DropError::SoldOut.into()),
                other => return Err(DropError::NotLive(other).into()),
            }
        }
        let placement = self
            .orders
            .drop_placement(DropOrder {
                user: p.user.clone(),
                fingerprint: fingerprint(&serde_json::json!({
                    "drop_id": p.drop_id, "body": canonical_body(&p.request)
                })),
                drop_id: p.drop_id.clone(),
                sku: sku.clone(),
                quantity: p.quantity,
                price: view.price,
                shipping_address: p.shipping_address,
            })
            .await?;
        if replay {
            return Ok((
                order_id.clone(),
                self.replay(&order_id, placement).await?,
                false,
            ));
        }
        let grace = self.orders.reservation_grace();
        let fingerprint = placement.fingerprint.clone();
        let purchase = SkuCommand::Purchase(DropPurchase {
            drop_id: p.drop_id,
            order_id: order_id.clone(),
            user_id: p.user,
            qty: p.quantity,
            expires_at: placement.expires_at.plus(grace),
            order: Box::new(placement.clone()),
        });
        let receipt = self.skus.ask(&sku, purchase).await?.receipt;
        match receipt {
            // The hold is durable and keeps the order: answer now, write the order after.
            Some(receipt) if receipt.order.fingerprint == fingerprint => {
                let state = self.orders.promise(order_id.clone(), receipt.order);
                if !self.orders.is_local(&order_id) {
                    // A cluster where another node owns the order: the promise would be known
                    // here only, so the order is written there first. If that fails the
                    // purchase still stands (its hold is durable): the background writer,
                    // or the SKU's owner, writes the order.
                    if let Err(e) = self.orders.write_promised(&order_id).await {
                        tracing::warn!(%order_id, error = %e, "a drop order is written later");
                    }
                }
                Ok((order_id, state, true))
            }
            Some(_) => Err(OrderFailure::from(OrderError::KeyReused).into()),
            // A replay of a purchase settled since: the order exists.
            None => Ok((
                order_id.clone(),
                self.replay(&order_id, placement).await?,
                false,
            )),
        }
    }

    /// The order this key already placed (written first if it was only promised); another
    /// request under the same key is refused.
    async fn replay(
        &self,
        order_id: &OrderId,
        placement: crate::domain::order::Placement,
    ) -> Result<OrderState, OrderFailure> {
        let place = OrderCommand::Place(Box::new(placement));
        Ok(self.orders.ask(order_id, place).await?)
    }
}

/// Drop sales in `/metrics`, through counters made once (the purchase is the hot path: no
/// registry lookup per request).
mod sales {
    use super::{DropError, DropFailure};
    use metrics::Counter;
    use std::sync::OnceLock;

    struct Counters {
        sold: Counter,
        sold_out: Counter,
        not_live: Counter,
        limit_reached: Counter,
        refused: Counter,
        units: Counter,
    }

    fn counters() -> &'static Counters {
        static COUNTERS: OnceLock<Counters> = OnceLock::new();
        COUNTERS.get_or_init(|| {
            let outcome = |o: &'static str| {
                metrics::counter!("emporium_drop_purchases_total", "outcome" => o)
            };
            Counters {
                sold: outcome("sold"),
                sold_out: outcome("sold_out"),
                not_live: outcome("not_live"),
                limit_reached: outcome("limit_reached"),
                refused: outcome("refused"),
                units: metrics::counter!("emporium_drop_units_sold_total"),
            }
        })
    }

    /// Puts every sales series in `/metrics` at zero, so a dashboard's rate has a start.
    pub(super) fn register() {
        let c = counters();
        for counter in [
            &c.sold,
            &c.sold_out,
            &c.not_live,
            &c.limit_reached,
            &c.refused,
            &c.units,
        ] {
            counter.increment(0);
        }
    }

    /// Counts a purchase's outcome (a replay is not counted).
    pub(super) fn count<A, B>(bought: &Result<(A, B, bool), DropFailure>, quantity: u32) {
        let c = counters();
        match bought {
            Ok((_, _, true)) => {
                c.sold.increment(1);
                c.units.increment(u64::from(quantity));
            }
            Ok(_) => {}
            Err(DropFailure::Drop(DropError::SoldOut)) => c.sold_out.increment(1),
            Err(DropFailure::Drop(DropError::NotLive(_))) => c.not_live.increment(1),
            Err(DropFailure::Drop(DropError::LimitReached { .. })) => c.limit_reached.increment(1),
            Err(_) => c.refused.increment(1),
        }
    }
}
