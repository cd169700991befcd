//! What a SKU is told ([`SkuCommand`]), what it records ([`SkuEvent`] — the journal's shape:
//! change it only by adding optional fields), and why it refuses ([`SkuError`]).

use crate::domain::drop::{DropError, DropId, DropSpec};
use crate::domain::ids::{OrderId, ProductId, UserId};
use crate::domain::inventory::state::ReleaseReason;
use crate::domain::placement::Placement;
use crate::domain::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The most units one reservation may hold.
pub const MAX_RESERVE_QTY: u32 = 10_000;
/// The largest stock level the engine accepts (keeps every sum far from overflow).
pub const MAX_STOCK: u64 = 1_000_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// A payment for the order is being captured: its hold is kept at least until
    /// `at_least`, moved to `until` when it would lapse sooner, so it outlasts the capture and
    /// the commit after it (no event while it lasts long enough). Refused once the hold was
    /// released (`ReservationReleased`: the units may be someone else's, so the payment must
    /// not be captured) and for an order the SKU does not hold (`ReservationNotFound`); a
    /// hold already sold answers with no event.
    Extend {
        order_id: OrderId,
        at_least: Timestamp,
        until: Timestamp,
    },
    /// The order was paid: its reserved units become sold.
    Commit { order_id: OrderId },
    /// The order was cancelled: its reserved units become available again.
    Release { order_id: OrderId },
    /// The order's units come back: an open reservation is released; of sold units, enough
    /// come back that `returned` of them are back in all (a count over every return of the
    /// order, so a replay brings nothing more). Units a drop sold go back to that drop and
    /// give the buyer's allowance back (`drop` names it: the SKU forgets which drop sold a
    /// unit once it is sold).
    ///
    /// `recall` is what the order knows of its sale here, for a SKU that has forgotten the
    /// order ([`SkuCommand::ForgetSettled`]); a SKU that remembers it goes by its own record.
    Restock {
        order_id: OrderId,
        returned: u32,
        drop: Option<DropBuyer>,
        #[serde(default)]
        recall: Option<Recall>,
    },
    /// Releases every reservation whose expiry is not after `now`, and opens and closes the
    /// drops whose time has come.
    ExpireDue,
    /// Sets `spec.quantity` available units aside for a new drop.
    CreateDrop { drop_id: DropId, spec: DropSpec },
    /// A shopper buys from a drop: window, stock and per-user limit checked and taken at once.
    Purchase(DropPurchase),
    /// Reads the orders of the drop holds still open; never produces an event.
    HeldOrders,
    /// These drop orders are written: their holds stop keeping the order (a replay of the
    /// purchase is answered by the order itself, and a recovery has nothing to write). Sent in
    /// batches by the writer of promised orders; losing one only leaves the orders kept.
    OrdersWritten { order_ids: Vec<OrderId> },
    /// These orders have durably recorded how they settled here (the step that settled them
    /// is done in the order's own journal), so the SKU forgets them: an order never sends a
    /// step again once it is recorded, and a later restock carries a [`Recall`]. An entry is
    /// forgotten only if it still is what the order recorded (a note overtaken by a later
    /// restock forgets nothing). Sent in batches by the order saga; losing one only leaves the
    /// orders remembered. This is what bounds `settled`.
    ForgetSettled { orders: Vec<(OrderId, Recorded)> },
    /// Binds the SKU to a product. `replacing` names an owner that may be replaced (one whose
    /// creation never completed); any other owner refuses.
    Attach {
        product_id: ProductId,
        replacing: Option<ProductId>,
    },
    /// Reads the state; never produces an event.
    Get,
}

/// What an order knows of its sale on one SKU, carried by a restock for a SKU that forgot it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Recall {
    /// Units of the SKU the order bought.
    pub sold: u32,
    /// Units of them back before this restock (the `returned` of the order's previous restock).
    pub before: u32,
}

/// How an order recorded its settlement on a SKU ([`SkuCommand::ForgetSettled`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recorded {
    /// Its units were committed (the order is paid).
    Sold,
    /// Its units went back unsold (cancelled, expired, rejected).
    Released,
    /// `returned` of its units are back in all (a return, a paid order cancelled).
    Returned { returned: u32 },
}

/// Who bought units in which drop (what a restock gives back to).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DropBuyer {
    pub drop_id: DropId,
    pub user_id: UserId,
}

/// A purchase in a drop, as the SKU receives it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// The order's hold lapses at `expires_at` now (see [`SkuCommand::Extend`]).
    HoldExtended {
        order_id: OrderId,
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
        /// The drop the units go back to (absent: the shelf).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        drop: Option<DropBuyer>,
        /// The order's account of its sale, when the SKU had forgotten the order.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recall: Option<Recall>,
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
    /// The holds of these orders no longer keep them.
    OrdersWritten {
        order_ids: Vec<OrderId>,
    },
    /// These orders' settlements are forgotten.
    SettledForgotten {
        order_ids: Vec<OrderId>,
    },
}

/// Why the SKU refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
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
