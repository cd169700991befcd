//! The state of one SKU: its counters, open reservations (with the index of their expiries),
//! what became of settled ones, and its drops; and the views read models take of it.

use crate::domain::drop::{DropId, DropState, DropView};
use crate::domain::ids::{OrderId, ProductId, UserId};
use crate::domain::placement::Placement;
use crate::domain::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

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

/// What a drop purchase's hold keeps: the order it becomes, under its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseReceipt {
    pub order_id: OrderId,
    pub order: Box<Placement>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Open holds that still keep the order they become (written in the background, see
    /// `orders::promised`): a start-up recovery reads the SKU's holds only when this is not
    /// zero. `None` in a view stored before the count was kept: unknown, read them.
    #[serde(default)]
    pub keeping: Option<u64>,
}

/// One order's reservation as callers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// How many open reservations keep their order (`Reservation::order` is set). Derived, as
    /// `expiries` is.
    #[serde(skip)]
    keeping: u64,
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
        let keeping = s
            .reservations
            .values()
            .filter(|r| r.order.is_some())
            .count() as u64;
        Self {
            available: s.available,
            reserved: s.reserved,
            sold: s.sold,
            reservations: s.reservations,
            settled: s.settled,
            product: s.product,
            drops: s.drops,
            expiries,
            keeping,
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
            keeping: Some(self.keeping),
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

    /// The receipt of the open drop hold of `order_id`, if it keeps an order.
    pub fn receipt(&self, order_id: &OrderId) -> Option<PurchaseReceipt> {
        let order = self.reservations.get(order_id)?.order.clone()?;
        Some(PurchaseReceipt {
            order_id: order_id.clone(),
            order,
        })
    }

    /// The receipts of every open drop hold.
    pub fn receipts(&self) -> Vec<PurchaseReceipt> {
        self.reservations
            .iter()
            .filter_map(|(order_id, r)| {
                Some(PurchaseReceipt {
                    order_id: order_id.clone(),
                    order: r.order.clone()?,
                })
            })
            .collect()
    }

    /// Opens a reservation: its units count as reserved until it is settled or expires.
    pub(super) fn hold(&mut self, order_id: &OrderId, r: Reservation) {
        self.reserved += u64::from(r.qty);
        self.expiries.insert((r.expires_at, order_id.clone()));
        self.keeping += u64::from(r.order.is_some());
        if let Some(old) = self.reservations.insert(order_id.clone(), r) {
            self.keeping -= u64::from(old.order.is_some());
        }
    }

    /// The open reservation of `order_id` lapses at `expires_at` now.
    pub(super) fn move_expiry(&mut self, order_id: &OrderId, expires_at: Timestamp) {
        if let Some(r) = self.reservations.get_mut(order_id) {
            self.expiries.remove(&(r.expires_at, order_id.clone()));
            r.expires_at = expires_at;
            self.expiries.insert((expires_at, order_id.clone()));
        }
    }

    /// The open reservation of `order_id` lets its order go (the order is written).
    pub(super) fn let_order_go(&mut self, order_id: &OrderId) {
        if let Some(r) = self.reservations.get_mut(order_id)
            && r.order.take().is_some()
        {
            self.keeping -= 1;
        }
    }

    /// The drop an open reservation's units came from.
    pub(super) fn drop_of(&mut self, order_id: &OrderId) -> Option<&mut DropState> {
        let id = self.reservations.get(order_id)?.drop.clone()?;
        self.drops.get_mut(&id)
    }

    pub(super) fn close_reservation(&mut self, order_id: &OrderId) {
        if let Some(r) = self.reservations.remove(order_id) {
            self.expiries.remove(&(r.expires_at, order_id.clone()));
            self.keeping -= u64::from(r.order.is_some());
        }
    }

    /// The open reservations whose expiry is not after `now`, earliest first.
    pub(super) fn expired_by(
        &self,
        now: Timestamp,
    ) -> impl Iterator<Item = (&OrderId, &Reservation)> + '_ {
        self.expiries
            .iter()
            .take_while(move |(at, _)| *at <= now)
            .filter_map(|(_, order_id)| self.reservations.get_key_value(order_id))
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
