//! Stock of one SKU: how many units are available, reserved (by order, until an expiry) and sold.
//!
//! Every rule lives in [`decide`]; [`apply`] only changes state. `available + reserved + sold`
//! changes only through `SetStock`/`AdjustStock`, so a reservation can never create or lose a
//! unit. Commands that name an order are idempotent: replaying a `Reserve`, `Commit` or `Release`
//! the SKU has already carried out yields no event.

use crate::domain::drop::{self, DropError, DropId, DropSpec, DropState, DropView};
use crate::domain::ids::{OrderId, ProductId, UserId};
use crate::domain::order::Placement;
use crate::domain::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The most units one reservation may hold.
pub const MAX_RESERVE_QTY: u32 = 10_000;
/// The largest stock level the engine accepts (keeps every sum far from overflow).
pub const MAX_STOCK: u64 = 1_000_000_000_000;

/// A unit hold for one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub user_id: UserId,
    pub qty: u32,
    pub expires_at: Timestamp,
    /// The drop the units came from (they go back to it when released).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<DropId>,
    /// The order a drop purchase becomes, kept with its hold: the purchase is answered once
    /// the hold is durable, and the order is written from this afterwards (again after a
    /// crash, if need be). The SKU never looks inside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Box<Placement>>,
}

/// What finally happened to an order's reservation; kept so replays stay idempotent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Settlement {
    Sold {
        qty: u32,
    },
    Released {
        qty: u32,
        reason: ReleaseReason,
    },
    /// Sold, then `returned` units came back (a cancelled paid order, a return).
    Returned {
        qty: u32,
        returned: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    Cancelled,
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    Reserved,
    Sold,
    Released,
    Returned,
}

/// The stock counters of a SKU and its drops: what read models (catalog availability, sales
/// ranking, the drop pages) use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockView {
    pub available: u64,
    pub reserved: u64,
    pub sold: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drops: Vec<DropView>,
}

/// One order's reservation as callers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReservationView {
    pub order_id: OrderId,
    pub quantity: u32,
    pub status: ReservationStatus,
    /// Set while the reservation is open.
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredSkuState")]
pub struct SkuState {
    pub available: u64,
    /// Units held by open reservations (the sum of `reservations`' quantities).
    pub reserved: u64,
    pub sold: u64,
    pub reservations: BTreeMap<OrderId, Reservation>,
    pub settled: HashMap<OrderId, Settlement>,
    /// The product this SKU belongs to (a SKU belongs to at most one).
    pub product: Option<ProductId>,
    /// Flash-sale drops of this SKU, with the units set aside for them.
    pub drops: BTreeMap<DropId, DropState>,
    /// Open reservations by expiry, so the next deadline is found without a scan. Derived from
    /// `reservations`: not stored, rebuilt when a snapshot is read.
    #[serde(skip)]
    expiries: BTreeSet<(Timestamp, OrderId)>,
}

/// The stored form of [`SkuState`] (everything but the derived index).
#[derive(Deserialize)]
struct StoredSkuState {
    available: u64,
    reserved: u64,
    sold: u64,
    reservations: BTreeMap<OrderId, Reservation>,
    #[serde(default)]
    settled: HashMap<OrderId, Settlement>,
    #[serde(default)]
    product: Option<ProductId>,
    #[serde(default)]
    drops: BTreeMap<DropId, DropState>,
}

impl From<StoredSkuState> for SkuState {
    fn from(s: StoredSkuState) -> Self {
        let expiries = s
            .reservations
            .iter()
            .map(|(order, r)| (r.expires_at, order.clone()))
            .collect();
        Self {
            available: s.available,
            reserved: s.reserved,
            sold: s.sold,
            reservations: s.reservations,
            settled: s.settled,
            product: s.product,
            drops: s.drops,
            expiries,
        }
    }
}

impl SkuState {
    /// The total the stock level was set to: what every operation conserves (units set aside
    /// for drops and not yet taken are part of it).
    pub fn total(&self) -> u64 {
        let in_drops: u64 = self.drops.values().map(|d| u64::from(d.remaining)).sum();
        self.available + self.reserved + self.sold + in_drops
    }

    pub fn levels(&self) -> StockView {
        StockView {
            available: self.available,
            reserved: self.reserved,
            sold: self.sold,
            drops: self
                .drops
                .iter()
                .map(|(id, d)| DropView::of(id, d))
                .collect(),
        }
    }

    /// Where the reservation of `order_id` stands, if the SKU has seen that order.
    pub fn reservation_of(&self, order_id: &OrderId) -> Option<ReservationView> {
        if let Some(r) = self.reservations.get(order_id) {
            return Some(ReservationView {
                order_id: order_id.clone(),
                quantity: r.qty,
                status: ReservationStatus::Reserved,
                expires_at: Some(r.expires_at),
            });
        }
        let (quantity, status) = match self.settled.get(order_id)? {
            Settlement::Sold { qty } => (*qty, ReservationStatus::Sold),
            Settlement::Released { qty, .. } => (*qty, ReservationStatus::Released),
            Settlement::Returned { returned, .. } => (*returned, ReservationStatus::Returned),
        };
        Some(ReservationView {
            order_id: order_id.clone(),
            quantity,
            status,
            expires_at: None,
        })
    }

    /// Opens a reservation: its units count as reserved until it is settled or expires.
    fn hold(&mut self, order_id: &OrderId, r: Reservation) {
        self.reserved += u64::from(r.qty);
        self.expiries.insert((r.expires_at, order_id.clone()));
        self.reservations.insert(order_id.clone(), r);
    }

    /// The drop an open reservation's units came from.
    fn drop_of(&mut self, order_id: &OrderId) -> Option<&mut DropState> {
        let id = self.reservations.get(order_id)?.drop.clone()?;
        self.drops.get_mut(&id)
    }

    fn close_reservation(&mut self, order_id: &OrderId) {
        if let Some(r) = self.reservations.remove(order_id) {
            self.expiries.remove(&(r.expires_at, order_id.clone()));
        }
    }

    /// The earliest expiry among open reservations.
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.expiries.first().map(|(at, _)| *at)
    }

    /// When the SKU's timer must act next: a reservation's expiry or a drop opening or closing.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let drops = self.drops.values().filter_map(DropState::next_transition);
        self.next_expiry().into_iter().chain(drops).min()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkuCommand {
    /// Sets the available units; reserved and sold are untouched.
    SetStock { available: u64 },
    /// Adds to (or, negative, takes from) the available units.
    AdjustStock { delta: i64 },
    Reserve {
        order_id: OrderId,
        user_id: UserId,
        qty: u32,
        expires_at: Timestamp,
    },
    /// The order was paid: its reserved units become sold.
    Commit { order_id: OrderId },
    /// The order was cancelled: its reserved units become available again.
    Release { order_id: OrderId },
    /// Up to `qty` of the order's units come back to stock: an open reservation is released,
    /// sold units are returned. Once per order; anything else is a replay.
    Restock { order_id: OrderId, qty: u32 },
    /// Releases every reservation whose expiry is not after `now`, and opens and closes the
    /// drops whose time has come.
    ExpireDue,
    /// Sets `spec.quantity` available units aside for a new drop.
    CreateDrop { drop_id: DropId, spec: DropSpec },
    /// A shopper buys from a drop: window, stock and per-user limit checked and taken at once.
    Purchase(DropPurchase),
    /// Reads the orders of the drop holds still open; never produces an event.
    HeldOrders,
    /// Binds the SKU to a product. `replacing` names an owner that may be replaced (one whose
    /// creation never completed); any other owner refuses.
    Attach {
        product_id: ProductId,
        replacing: Option<ProductId>,
    },
    /// Reads the state; never produces an event.
    Get,
}

/// A purchase in a drop, as the SKU receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropPurchase {
    pub drop_id: DropId,
    pub order_id: OrderId,
    pub user_id: UserId,
    pub qty: u32,
    /// When the hold lapses if the order never settles it.
    pub expires_at: Timestamp,
    /// Kept with the hold (see [`Reservation::order`]).
    pub order: Box<Placement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SkuEvent {
    Attached {
        product_id: ProductId,
    },
    StockSet {
        available: u64,
    },
    StockAdjusted {
        delta: i64,
    },
    Reserved {
        order_id: OrderId,
        user_id: UserId,
        qty: u32,
        expires_at: Timestamp,
    },
    Committed {
        order_id: OrderId,
        qty: u32,
    },
    Released {
        order_id: OrderId,
        qty: u32,
        reason: ReleaseReason,
    },
    Restocked {
        order_id: OrderId,
        qty: u32,
    },
    DropCreated {
        drop_id: DropId,
        spec: DropSpec,
    },
    DropPurchased {
        drop_id: DropId,
        order_id: OrderId,
        user_id: UserId,
        qty: u32,
        expires_at: Timestamp,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        order: Option<Box<Placement>>,
    },
    DropOpened {
        drop_id: DropId,
    },
    DropEnded {
        drop_id: DropId,
    },
}

/// Why the SKU refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkuError {
    #[error("only {available} units available, {requested} requested")]
    InsufficientStock { available: u64, requested: u64 },
    #[error("quantity must be between 1 and {MAX_RESERVE_QTY}")]
    InvalidQuantity,
    #[error("stock must be between 0 and {MAX_STOCK}")]
    StockOutOfRange,
    #[error("order {0} already holds a reservation of a different quantity")]
    ReservationConflict(OrderId),
    #[error("no reservation for order {0}")]
    ReservationNotFound(OrderId),
    #[error("the reservation for order {0} was already released")]
    ReservationReleased(OrderId),
    #[error("the reservation for order {0} was already sold")]
    AlreadySold(OrderId),
    #[error("the SKU belongs to product {0}")]
    AttachedElsewhere(ProductId),
    #[error(transparent)]
    Drop(#[from] DropError),
}

/// Every rule of SKU stock.
pub fn decide(
    state: &SkuState,
    cmd: &SkuCommand,
    now: Timestamp,
) -> Result<Vec<SkuEvent>, SkuError> {
    match cmd {
        SkuCommand::SetStock { available } => {
            if *available > MAX_STOCK {
                return Err(SkuError::StockOutOfRange);
            }
            if *available == state.available {
                return Ok(vec![]);
            }
            Ok(vec![SkuEvent::StockSet {
                available: *available,
            }])
        }
        SkuCommand::AdjustStock { delta } => {
            let after = i128::from(state.available) + i128::from(*delta);
            if after < 0 {
                return Err(SkuError::InsufficientStock {
                    available: state.available,
                    requested: delta.unsigned_abs(),
                });
            }
            if after > i128::from(MAX_STOCK) {
                return Err(SkuError::StockOutOfRange);
            }
            if *delta == 0 {
                return Ok(vec![]);
            }
            Ok(vec![SkuEvent::StockAdjusted { delta: *delta }])
        }
        SkuCommand::Reserve {
            order_id,
            user_id,
            qty,
            expires_at,
        } => decide_reserve(state, order_id, user_id, *qty, *expires_at),
        SkuCommand::Commit { order_id } => match state.reservations.get(order_id) {
            Some(r) => Ok(vec![SkuEvent::Committed {
                order_id: order_id.clone(),
                qty: r.qty,
            }]),
            None => match state.settled.get(order_id) {
                Some(Settlement::Sold { .. } | Settlement::Returned { .. }) => Ok(vec![]),
                Some(Settlement::Released { .. }) => {
                    Err(SkuError::ReservationReleased(order_id.clone()))
                }
                None => Err(SkuError::ReservationNotFound(order_id.clone())),
            },
        },
        SkuCommand::Release { order_id } => match state.reservations.get(order_id) {
            Some(r) => Ok(vec![SkuEvent::Released {
                order_id: order_id.clone(),
                qty: r.qty,
                reason: ReleaseReason::Cancelled,
            }]),
            None => match state.settled.get(order_id) {
                Some(Settlement::Released { .. }) => Ok(vec![]),
                Some(Settlement::Sold { .. } | Settlement::Returned { .. }) => {
                    Err(SkuError::AlreadySold(order_id.clone()))
                }
                None => Err(SkuError::ReservationNotFound(order_id.clone())),
            },
        },
        SkuCommand::Restock { order_id, qty } => decide_restock(state, order_id, *qty),
        SkuCommand::ExpireDue => Ok(decide_due(state, now)),
        SkuCommand::CreateDrop { drop_id, spec } => {
            if state.drops.contains_key(drop_id) {
                return Err(DropError::Exists.into());
            }
            drop::validate(spec)?;
            if u64::from(spec.quantity) > state.available {
                return Err(SkuError::InsufficientStock {
                    available: state.available,
                    requested: u64::from(spec.quantity),
                });
            }
            Ok(vec![SkuEvent::DropCreated {
                drop_id: drop_id.clone(),
                spec: spec.clone(),
            }])
        }
        SkuCommand::Purchase(p) => decide_purchase(state, p, now),
        SkuCommand::Attach {
            product_id,
            replacing,
        } => match &state.product {
            Some(owner) if owner == product_id => Ok(vec![]),
            Some(owner) if Some(owner) != replacing.as_ref() => {
                Err(SkuError::AttachedElsewhere(owner.clone()))
            }
            _ => Ok(vec![SkuEvent::Attached {
                product_id: product_id.clone(),
            }]),
        },
        SkuCommand::Get | SkuCommand::HeldOrders => Ok(vec![]),
    }
}

/// Expired reservations released, and drops opened or closed, as of `now`.
fn decide_due(state: &SkuState, now: Timestamp) -> Vec<SkuEvent> {
    let expired = state
        .expiries
        .iter()
        .take_while(|(at, _)| *at <= now)
        .filter_map(|(_, order_id)| {
            let r = state.reservations.get(order_id)?;
            Some(SkuEvent::Released {
                order_id: order_id.clone(),
                qty: r.qty,
                reason: ReleaseReason::Expired,
            })
        });
    let drops = state.drops.iter().flat_map(|(id, d)| {
        let drop_id = id.clone();
        let open = (!d.opened && d.spec.starts_at <= now).then(|| SkuEvent::DropOpened {
            drop_id: drop_id.clone(),
        });
        let end = (!d.ended && d.spec.ends_at.is_some_and(|end| end <= now))
            .then_some(SkuEvent::DropEnded { drop_id });
        open.into_iter().chain(end)
    });
    expired.chain(drops).collect()
}

/// The answer to a reservation the SKU has already seen for this order: the same one again
/// is a replay (no event), another is a conflict, a released one stays released. `None` for
/// an order the SKU has not seen.
fn replay(
    state: &SkuState,
    order_id: &OrderId,
    qty: u32,
    same: impl Fn(&Reservation) -> bool,
) -> Option<Result<Vec<SkuEvent>, SkuError>> {
    if let Some(held) = state.reservations.get(order_id) {
        return Some(if same(held) {
            Ok(vec![])
        } else {
            Err(SkuError::ReservationConflict(order_id.clone()))
        });
    }
    match state.settled.get(order_id)? {
        Settlement::Sold { qty: sold } if *sold == qty => Some(Ok(vec![])),
        Settlement::Sold { .. } | Settlement::Returned { .. } => {
            Some(Err(SkuError::ReservationConflict(order_id.clone())))
        }
        Settlement::Released { .. } => Some(Err(SkuError::ReservationReleased(order_id.clone()))),
    }
}

fn decide_purchase(
    state: &SkuState,
    p: &DropPurchase,
    now: Timestamp,
) -> Result<Vec<SkuEvent>, SkuError> {
    let (drop_id, order_id, qty) = (&p.drop_id, &p.order_id, p.qty);
    let d = state.drops.get(drop_id).ok_or(DropError::NotFound)?;
    // A replay of a purchase this order already made (a retry with the same key).
    let same = |held: &Reservation| held.qty == qty && held.drop.as_ref() == Some(drop_id);
    if let Some(answer) = replay(state, order_id, qty, same) {
        return answer;
    }
    d.check_purchase(&p.user_id, qty, now)?;
    Ok(vec![SkuEvent::DropPurchased {
        drop_id: drop_id.clone(),
        order_id: order_id.clone(),
        user_id: p.user_id.clone(),
        qty,
        expires_at: p.expires_at,
        order: Some(p.order.clone()),
    }])
}

fn decide_restock(
    state: &SkuState,
    order_id: &OrderId,
    qty: u32,
) -> Result<Vec<SkuEvent>, SkuError> {
    if qty == 0 {
        return Err(SkuError::InvalidQuantity);
    }
    if let Some(r) = state.reservations.get(order_id) {
        return Ok(vec![SkuEvent::Released {
            order_id: order_id.clone(),
            qty: r.qty,
            reason: ReleaseReason::Cancelled,
        }]);
    }
    Ok(match state.settled.get(order_id) {
        Some(Settlement::Sold { qty: sold }) => vec![SkuEvent::Restocked {
            order_id: order_id.clone(),
            qty: qty.min(*sold),
        }],
        _ => vec![],
    })
}

fn decide_reserve(
    state: &SkuState,
    order_id: &OrderId,
    user_id: &UserId,
    qty: u32,
    expires_at: Timestamp,
) -> Result<Vec<SkuEvent>, SkuError> {
    if qty == 0 || qty > MAX_RESERVE_QTY {
        return Err(SkuError::InvalidQuantity);
    }
    if let Some(answer) = replay(state, order_id, qty, |held| held.qty == qty) {
        return answer;
    }
    if u64::from(qty) > state.available {
        return Err(SkuError::InsufficientStock {
            available: state.available,
            requested: u64::from(qty),
        });
    }
    Ok(vec![SkuEvent::Reserved {
        order_id: order_id.clone(),
        user_id: user_id.clone(),
        qty,
        expires_at,
    }])
}

/// Changes state by one event; no rule is checked here.
pub fn apply(state: &mut SkuState, event: &SkuEvent) {
    match event {
        SkuEvent::DropCreated { drop_id, spec } => {
            state.available -= u64::from(spec.quantity);
            state
                .drops
                .insert(drop_id.clone(), DropState::new(spec.clone()));
        }
        SkuEvent::DropPurchased {
            drop_id,
            order_id,
            user_id,
            qty,
            expires_at,
            order,
        } => {
            if let Some(d) = state.drops.get_mut(drop_id) {
                d.take(user_id, *qty);
            }
            state.hold(
                order_id,
                Reservation {
                    user_id: user_id.clone(),
                    qty: *qty,
                    expires_at: *expires_at,
                    drop: Some(drop_id.clone()),
                    order: order.clone(),
                },
            );
        }
        SkuEvent::DropOpened { drop_id } => {
            if let Some(d) = state.drops.get_mut(drop_id) {
                d.opened = true;
            }
        }
        SkuEvent::DropEnded { drop_id } => {
            if let Some(d) = state.drops.get_mut(drop_id) {
                d.opened = true;
                d.ended = true;
            }
        }
        SkuEvent::Attached { product_id } => state.product = Some(product_id.clone()),
        SkuEvent::StockSet { available } => state.available = *available,
        SkuEvent::StockAdjusted { delta } => {
            state.available = state.available.saturating_add_signed(*delta);
        }
        SkuEvent::Reserved {
            order_id,
            user_id,
            qty,
            expires_at,
        } => {
            state.available -= u64::from(*qty);
            state.hold(
                order_id,
                Reservation {
                    user_id: user_id.clone(),
                    qty: *qty,
                    expires_at: *expires_at,
                    drop: None,
                    order: None,
                },
            );
        }
        SkuEvent::Committed { order_id, qty } => {
            if let Some(d) = state.drop_of(order_id) {
                d.sell(*qty);
            }
            state.close_reservation(order_id);
            state.reserved -= u64::from(*qty);
            state.sold += u64::from(*qty);
            state
                .settled
                .insert(order_id.clone(), Settlement::Sold { qty: *qty });
        }
        SkuEvent::Restocked { order_id, qty } => {
            state.sold -= u64::from(*qty);
            state.available += u64::from(*qty);
            let sold = match state.settled.get(order_id) {
                Some(Settlement::Sold { qty: sold }) => *sold,
                _ => *qty,
            };
            let settled = Settlement::Returned {
                qty: sold,
                returned: *qty,
            };
            state.settled.insert(order_id.clone(), settled);
        }
        SkuEvent::Released {
            order_id,
            qty,
            reason,
        } => {
            let user = state.reservations.get(order_id).map(|r| r.user_id.clone());
            match (state.drop_of(order_id), user) {
                // Units of a drop go back to the drop, not to the shelf.
                (Some(d), Some(user)) => d.give_back(&user, *qty),
                _ => state.available += u64::from(*qty),
            }
            state.close_reservation(order_id);
            state.reserved -= u64::from(*qty);
            state.settled.insert(
                order_id.clone(),
                Settlement::Released {
                    qty: *qty,
                    reason: *reason,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::drop::DropStatus;

    const NOW: Timestamp = Timestamp(1_000_000);

    fn order(s: &str) -> OrderId {
        OrderId::parse(s).unwrap()
    }

    fn user() -> UserId {
        UserId::parse("u1").unwrap()
    }

    fn reserve(o: &str, qty: u32) -> SkuCommand {
        SkuCommand::Reserve {
            order_id: order(o),
            user_id: user(),
            qty,
            expires_at: Timestamp(NOW.0 + 600_000),
        }
    }

    /// Given these events, when this command: the events decided (already applied to a copy).
    fn given(events: &[SkuEvent]) -> SkuState {
        let mut s = SkuState::default();
        for e in events {
            apply(&mut s, e);
        }
        s
    }

    fn when(state: &SkuState, cmd: SkuCommand) -> Result<(Vec<SkuEvent>, SkuState), SkuError> {
        let events = decide(state, &cmd, NOW)?;
        let mut after = state.clone();
        for e in &events {
            apply(&mut after, e);
        }
        Ok((events, after))
    }

    fn stocked(n: u64) -> SkuState {
        given(&[SkuEvent::StockSet { available: n }])
    }

    #[test]
    fn reserve_takes_available_units() {
        let (events, after) = when(&stocked(5), reserve("o1", 2)).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!((after.available, after.reserved, after.sold), (3, 2, 0));
        assert_eq!(after.total(), 5);
    }

    #[test]
    fn reserve_more_than_available_is_refused() {
        let err = when(&stocked(1), reserve("o1", 2)).unwrap_err();
        assert_eq!(
            err,
            SkuError::InsufficientStock {
                available: 1,
                requested: 2
            }
        );
    }

    #[test]
    fn reserve_zero_or_huge_quantity_is_refused() {
        assert_eq!(
            when(&stocked(5), reserve("o1", 0)).unwrap_err(),
            SkuError::InvalidQuantity
        );
        assert_eq!(
            when(&stocked(5), reserve("o1", MAX_RESERVE_QTY + 1)).unwrap_err(),
            SkuError::InvalidQuantity
        );
    }

    #[test]
    fn replayed_reserve_is_idempotent() {
        let (_, s) = when(&stocked(5), reserve("o1", 2)).unwrap();
        let (events, after) = when(&s, reserve("o1", 2)).unwrap();
        assert!(events.is_empty());
        assert_eq!(after.available, 3);
        assert_eq!(
            when(&s, reserve("o1", 3)).unwrap_err(),
            SkuError::ReservationConflict(order("o1"))
        );
    }

    #[test]
    fn commit_moves_reserved_to_sold_once() {
        let (_, s) = when(&stocked(5), reserve("o1", 2)).unwrap();
        let (_, s) = when(
            &s,
            SkuCommand::Commit {
                order_id: order("o1"),
            },
        )
        .unwrap();
        assert_eq!((s.available, s.reserved, s.sold), (3, 0, 2));
        assert_eq!(
            s.reservation_of(&order("o1")).map(|r| r.status),
            Some(ReservationStatus::Sold)
        );
        let (again, s2) = when(
            &s,
            SkuCommand::Commit {
                order_id: order("o1"),
            },
        )
        .unwrap();
        assert!(again.is_empty());
        assert_eq!(s2, s);
        // a replayed reserve of a sold order is a replay, not a second sale
        let (events, _) = when(&s, reserve("o1", 2)).unwrap();
        assert!(events.is_empty());
    }

    #[test]
    fn release_returns_units_and_is_idempotent() {
        let (_, s) = when(&stocked(5), reserve("o1", 2)).unwrap();
        let (_, s) = when(
            &s,
            SkuCommand::Release {
                order_id: order("o1"),
            },
        )
        .unwrap();
        assert_eq!((s.available, s.reserved, s.sold), (5, 0, 0));
        let (again, _) = when(
            &s,
            SkuCommand::Release {
                order_id: order("o1"),
            },
        )
        .unwrap();
        assert!(again.is_empty());
        assert_eq!(
            when(
                &s,
                SkuCommand::Commit {
                    order_id: order("o1")
                }
            )
            .unwrap_err(),
            SkuError::ReservationReleased(order("o1"))
        );
        assert_eq!(
            when(&s, reserve("o1", 2)).unwrap_err(),
            SkuError::ReservationReleased(order("o1"))
        );
    }

    #[test]
    fn sold_units_cannot_be_released() {
        let (_, s) = when(&stocked(5), reserve("o1", 2)).unwrap();
        let (_, s) = when(
            &s,
            SkuCommand::Commit {
                order_id: order("o1"),
            },
        )
        .unwrap();
        assert_eq!(
            when(
                &s,
                SkuCommand::Release {
                    order_id: order("o1")
                }
            )
            .unwrap_err(),
            SkuError::AlreadySold(order("o1"))
        );
    }

    #[test]
    fn unknown_orders_are_not_found() {
        assert_eq!(
            when(
                &stocked(5),
                SkuCommand::Commit {
                    order_id: order("x")
                }
            )
            .unwrap_err(),
            SkuError::ReservationNotFound(order("x"))
        );
        assert_eq!(
            when(
                &stocked(5),
                SkuCommand::Release {
                    order_id: order("x")
                }
            )
            .unwrap_err(),
            SkuError::ReservationNotFound(order("x"))
        );
    }

    #[test]
    fn expiry_releases_only_due_reservations() {
        let s = given(&[
            SkuEvent::StockSet { available: 10 },
            SkuEvent::Reserved {
                order_id: order("due"),
                user_id: user(),
                qty: 3,
                expires_at: Timestamp(NOW.0 - 1),
            },
            SkuEvent::Reserved {
                order_id: order("later"),
                user_id: user(),
                qty: 4,
                expires_at: Timestamp(NOW.0 + 1),
            },
        ]);
        assert_eq!(s.next_expiry(), Some(Timestamp(NOW.0 - 1)));
        let (events, after) = when(&s, SkuCommand::ExpireDue).unwrap();
        assert_eq!(
            events,
            vec![SkuEvent::Released {
                order_id: order("due"),
                qty: 3,
                reason: ReleaseReason::Expired
            }]
        );
        assert_eq!((after.available, after.reserved), (6, 4));
        assert_eq!(after.next_expiry(), Some(Timestamp(NOW.0 + 1)));
        assert_eq!(
            when(
                &after,
                SkuCommand::Commit {
                    order_id: order("due")
                }
            )
            .unwrap_err(),
            SkuError::ReservationReleased(order("due"))
        );
    }

    #[test]
    fn set_and_adjust_stock_keep_reserved_and_sold() {
        let (_, s) = when(&stocked(5), reserve("o1", 2)).unwrap();
        let (_, s) = when(&s, SkuCommand::SetStock { available: 10 }).unwrap();
        assert_eq!((s.available, s.reserved), (10, 2));
        let (_, s) = when(&s, SkuCommand::AdjustStock { delta: -4 }).unwrap();
        assert_eq!(s.available, 6);
        assert_eq!(
            when(&s, SkuCommand::AdjustStock { delta: -7 }).unwrap_err(),
            SkuError::InsufficientStock {
                available: 6,
                requested: 7
            }
        );
        assert_eq!(
            when(
                &s,
                SkuCommand::SetStock {
                    available: MAX_STOCK + 1
                }
            )
            .unwrap_err(),
            SkuError::StockOutOfRange
        );
        let (none, _) = when(&s, SkuCommand::SetStock { available: 6 }).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn a_stored_state_reads_back_with_its_expiry_index() {
        let (_, s) = when(&stocked(5), reserve("o1", 2)).unwrap();
        let bytes = rmp_serde::to_vec_named(&s).unwrap();
        let back: SkuState = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.next_expiry(), s.next_expiry());
        assert!(back.next_expiry().is_some());
    }

    #[test]
    fn a_sku_belongs_to_one_product_unless_its_owner_never_came_to_be() {
        let p = |s: &str| ProductId::parse(s).unwrap();
        let attach = |id: &str, replacing: Option<&str>| SkuCommand::Attach {
            product_id: p(id),
            replacing: replacing.map(p),
        };
        let (_, s) = when(&SkuState::default(), attach("a", None)).unwrap();
        assert_eq!(s.product, Some(p("a")));
        assert_eq!(when(&s, attach("a", None)).unwrap().0, vec![]);
        assert_eq!(
            when(&s, attach("b", None)).unwrap_err(),
            SkuError::AttachedElsewhere(p("a"))
        );
        assert_eq!(
            when(&s, attach("b", Some("x"))).unwrap_err(),
            SkuError::AttachedElsewhere(p("a"))
        );
        let (_, s) = when(&s, attach("b", Some("a"))).unwrap();
        assert_eq!(s.product, Some(p("b")));
    }

    #[test]
    fn conservation_holds_over_any_sequence() {
        let mut s = stocked(20);
        let cmds = [
            reserve("a", 5),
            reserve("b", 7),
            reserve("c", 9),
            SkuCommand::Commit {
                order_id: order("a"),
            },
            SkuCommand::Release {
                order_id: order("b"),
            },
            reserve("d", 8),
            SkuCommand::ExpireDue,
        ];
        for c in cmds {
            if let Ok((_, after)) = when(&s, c) {
                s = after;
            }
            assert_eq!(s.total(), 20);
            assert_eq!(
                s.reserved,
                s.reservations
                    .values()
                    .map(|r| u64::from(r.qty))
                    .sum::<u64>()
            );
        }
    }

    #[test]
    fn restock_returns_sold_units_once_and_releases_open_reservations() {
        let restock = |o: &str, qty| SkuCommand::Restock {
            order_id: order(o),
            qty,
        };
        let (_, s) = when(&stocked(10), reserve("a", 3)).unwrap();
        let (_, s) = when(
            &s,
            SkuCommand::Commit {
                order_id: order("a"),
            },
        )
        .unwrap();
        let (_, s) = when(&s, restock("a", 2)).unwrap();
        assert_eq!((s.available, s.reserved, s.sold), (9, 0, 1));
        let (events, s) = when(&s, restock("a", 2)).unwrap();
        assert!(events.is_empty(), "a second restock is a replay");
        assert_eq!(
            s.reservation_of(&order("a"))
                .map(|r| (r.quantity, r.status)),
            Some((2, ReservationStatus::Returned))
        );
        // An order whose commit had not run yet: its reservation is released instead.
        let (_, s) = when(&s, reserve("b", 4)).unwrap();
        let (_, s) = when(&s, restock("b", 4)).unwrap();
        assert_eq!((s.available, s.reserved, s.sold), (9, 0, 1));
        assert_eq!(s.total(), 10);
        let (events, _) = when(&s, restock("never", 1)).unwrap();
        assert!(events.is_empty());
    }

    // ---- drops ----

    fn when_at(
        state: &SkuState,
        cmd: SkuCommand,
        at: Timestamp,
    ) -> Result<(Vec<SkuEvent>, SkuState), SkuError> {
        let events = decide(state, &cmd, at)?;
        let mut after = state.clone();
        for e in &events {
            apply(&mut after, e);
        }
        Ok((events, after))
    }

    fn drop_id() -> DropId {
        DropId::parse("d1").unwrap()
    }

    /// A SKU of 10 units with a drop of `quantity` starting at NOW (ending an hour later).
    fn with_drop(quantity: u32, per_user_limit: u32) -> SkuState {
        let spec = DropSpec {
            quantity,
            price: 5000,
            starts_at: NOW,
            ends_at: Some(Timestamp(NOW.0 + 3_600_000)),
            per_user_limit,
        };
        let create = SkuCommand::CreateDrop {
            drop_id: drop_id(),
            spec,
        };
        when(&stocked(10), create).unwrap().1
    }

    fn buy(o: &str, u: &str, qty: u32) -> SkuCommand {
        SkuCommand::Purchase(DropPurchase {
            drop_id: drop_id(),
            order_id: order(o),
            user_id: UserId::parse(u).unwrap(),
            qty,
            expires_at: Timestamp(NOW.0 + 600_000),
            order: Box::new(ticket(u, o)),
        })
    }

    /// The order a purchase becomes; the SKU only keeps it.
    fn ticket(u: &str, o: &str) -> Placement {
        Placement {
            user_id: UserId::parse(u).unwrap(),
            fingerprint: o.into(),
            lines: vec![],
            coupon: None,
            subtotal: 5000,
            discount: 0,
            total: 5000,
            currency: "KRW".into(),
            shipping_address: crate::domain::user::Sealed(vec![]),
            from_cart: false,
            drop_id: Some(drop_id()),
            created_at: NOW,
            expires_at: Timestamp(NOW.0 + 600_000),
        }
    }

    fn drop_counts(s: &SkuState) -> (u32, u32, u32) {
        let d = &s.drops[&drop_id()];
        (d.remaining, d.reserved, d.sold)
    }

    #[test]
    fn a_drop_sets_units_aside_and_sells_them_until_gone() {
        let s = with_drop(3, 5);
        assert_eq!((s.available, s.total()), (7, 10));
        let (_, s) = when(&s, buy("a", "u1", 2)).unwrap();
        let (_, s) = when(&s, buy("b", "u2", 1)).unwrap();
        assert_eq!(drop_counts(&s), (0, 3, 0));
        assert_eq!(s.reserved, 3);
        let refused = when(&s, buy("c", "u3", 1));
        assert_eq!(refused.unwrap_err(), SkuError::Drop(DropError::SoldOut));
        let commit = SkuCommand::Commit {
            order_id: order("a"),
        };
        let (_, s) = when(&s, commit).unwrap();
        assert_eq!(drop_counts(&s), (0, 1, 2));
        assert_eq!((s.available, s.reserved, s.sold, s.total()), (7, 1, 2, 10));
    }

    #[test]
    fn a_drop_refuses_before_its_start_and_after_its_end() {
        let s = with_drop(3, 5);
        let early = when_at(&s, buy("a", "u1", 1), Timestamp(NOW.0 - 1));
        assert_eq!(
            early.unwrap_err(),
            SkuError::Drop(DropError::NotLive(DropStatus::Scheduled))
        );
        let late = when_at(&s, buy("a", "u1", 1), Timestamp(NOW.0 + 3_600_000));
        assert_eq!(
            late.unwrap_err(),
            SkuError::Drop(DropError::NotLive(DropStatus::Ended))
        );
    }

    #[test]
    fn the_per_user_limit_counts_what_a_shopper_holds_and_frees_with_a_release() {
        let s = with_drop(10, 2);
        let (_, s) = when(&s, buy("a", "u1", 2)).unwrap();
        let again = when(&s, buy("b", "u1", 1));
        assert_eq!(
            again.unwrap_err(),
            SkuError::Drop(DropError::LimitReached { limit: 2, held: 2 })
        );
        let (_, s) = when(&s, buy("c", "u2", 2)).unwrap();
        let release = SkuCommand::Release {
            order_id: order("a"),
        };
        let (_, s) = when(&s, release).unwrap();
        assert_eq!(
            drop_counts(&s),
            (8, 2, 0),
            "released units go back to the drop"
        );
        assert_eq!(s.available, 0, "not to the shelf");
        assert!(when(&s, buy("b", "u1", 1)).is_ok());
    }

    #[test]
    fn an_expired_drop_reservation_returns_to_the_drop() {
        let s = with_drop(3, 5);
        let (_, s) = when(&s, buy("a", "u1", 1)).unwrap();
        assert_eq!(s.next_deadline(), Some(NOW), "the opening is due");
        let (events, s) = when_at(&s, SkuCommand::ExpireDue, Timestamp(NOW.0 + 600_000)).unwrap();
        assert!(events.contains(&SkuEvent::DropOpened { drop_id: drop_id() }));
        assert_eq!(drop_counts(&s), (3, 0, 0));
        assert_eq!(s.total(), 10);
        assert_eq!(
            s.next_deadline(),
            Some(Timestamp(NOW.0 + 3_600_000)),
            "then its end"
        );
        let (events, s) = when_at(&s, SkuCommand::ExpireDue, Timestamp(NOW.0 + 3_600_000)).unwrap();
        assert_eq!(events, vec![SkuEvent::DropEnded { drop_id: drop_id() }]);
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn a_drop_hold_keeps_its_order_until_it_is_settled() {
        let s = with_drop(3, 5);
        let (_, s) = when(&s, buy("a", "u1", 1)).unwrap();
        assert_eq!(
            s.reservations[&order("a")].order.as_deref(),
            Some(&ticket("u1", "a"))
        );
        let commit = SkuCommand::Commit {
            order_id: order("a"),
        };
        let (_, s) = when(&s, commit).unwrap();
        assert!(s.reservations.is_empty());
    }

    #[test]
    fn a_purchase_replayed_by_the_same_order_takes_nothing_more() {
        let s = with_drop(3, 1);
        let (_, s) = when(&s, buy("a", "u1", 1)).unwrap();
        let (events, s) = when(&s, buy("a", "u1", 1)).unwrap();
        assert!(events.is_empty());
        assert_eq!(drop_counts(&s), (2, 1, 0));
        let other = when(&s, buy("a", "u1", 2));
        assert_eq!(
            other.unwrap_err(),
            SkuError::ReservationConflict(order("a"))
        );
    }

    #[test]
    fn a_drop_needs_the_units_and_a_sane_spec() {
        let spec = DropSpec {
            quantity: 11,
            price: 5000,
            starts_at: NOW,
            ends_at: None,
            per_user_limit: 1,
        };
        let too_many = SkuCommand::CreateDrop {
            drop_id: drop_id(),
            spec: spec.clone(),
        };
        assert!(matches!(
            when(&stocked(10), too_many),
            Err(SkuError::InsufficientStock { .. })
        ));
        let bad = SkuCommand::CreateDrop {
            drop_id: drop_id(),
            spec: DropSpec {
                quantity: 1,
                per_user_limit: 0,
                ..spec
            },
        };
        assert!(matches!(
            when(&stocked(10), bad),
            Err(SkuError::Drop(DropError::Invalid(_)))
        ));
    }
}
