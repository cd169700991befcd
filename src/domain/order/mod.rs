//! One order: its state machine (statuses of the API contract), its payment and shipment
//! records, and its **outbox** — the external steps (stock, coupon, gateway, carrier,
//! notifications) the order still has to carry out. A step is an [`Effect`] in the order's own
//! journal: the saga driver runs it and reports back with `Complete`/`Fail`, so after a crash
//! the order knows exactly what is left to do. Every compensation is an effect aimed at the
//! entity that owns the thing compensated (a SKU, a wallet, the gateway) and ends there.
//!
//! Types are here; the rules are in [`rules`].

mod cancel;
mod payment;
pub mod returns;
pub mod rules;
mod shipping;
#[cfg(test)]
mod tests;

use crate::domain::ids::{SkuId, UserId};
use crate::domain::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::domain::placement::{OrderCoupon, OrderLine, Placement};
pub use cancel::CancelCause;

/// Lines one order holds at most.
pub const MAX_LINES: usize = 100;
/// Units per line at most.
pub const MAX_QTY: u32 = 99;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Internal: the stock is being reserved (not shown to shoppers).
    Pending,
    /// Internal: the reservation failed; the order never existed for the shopper.
    Rejected,
    AwaitingPayment,
    Paid,
    Preparing,
    Shipped,
    Delivered,
    Cancelled,
    PaymentFailed,
    Expired,
    ReturnRequested,
    Returned,
    Refunded,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Rejected => "rejected",
            OrderStatus::AwaitingPayment => "awaiting_payment",
            OrderStatus::Paid => "paid",
            OrderStatus::Preparing => "preparing",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::PaymentFailed => "payment_failed",
            OrderStatus::Expired => "expired",
            OrderStatus::ReturnRequested => "return_requested",
            OrderStatus::Returned => "returned",
            OrderStatus::Refunded => "refunded",
        }
    }

    /// The statuses shoppers see, in the contract's order (API.md, "Orders").
    pub const VISIBLE: [OrderStatus; 11] = [
        OrderStatus::AwaitingPayment,
        OrderStatus::Paid,
        OrderStatus::Preparing,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
        OrderStatus::PaymentFailed,
        OrderStatus::Expired,
        OrderStatus::ReturnRequested,
        OrderStatus::Returned,
        OrderStatus::Refunded,
    ];

    /// A visible status by its contract name (`"paid"`); `None` for anything else.
    pub fn parse_visible(name: &str) -> Option<Self> {
        Self::VISIBLE.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether shoppers see the order (history, detail).
    pub fn visible(self) -> bool {
        !matches!(self, OrderStatus::Pending | OrderStatus::Rejected)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Confirmation sent to the gateway; the outcome is not known yet.
    Confirming,
    Approved,
    Declined,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub payment_key: String,
    pub amount: i64,
    pub status: PaymentStatus,
    /// The gateway's reason for a decline.
    pub reason: Option<String>,
    pub approved_at: Option<Timestamp>,
    /// Refunded so far (cancellation, returns).
    pub refunded: i64,
    /// When the gateway reported a capture of a payment the order had already declined (a
    /// confirmation that failed on our side while the gateway took the money): it is refunded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured_late: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShipmentStatus {
    Ready,
    Shipping,
    Delivered,
}

impl ShipmentStatus {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "ready" => Some(ShipmentStatus::Ready),
            "shipping" => Some(ShipmentStatus::Shipping),
            "delivered" => Some(ShipmentStatus::Delivered),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    pub carrier: String,
    pub tracking_number: String,
    pub status: ShipmentStatus,
    pub events: Vec<(ShipmentStatus, Timestamp)>,
    /// A replacement sent for an exchange.
    pub exchange: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReturnKind {
    Return,
    Exchange,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnItem {
    pub sku_id: SkuId,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnRequest {
    pub kind: ReturnKind,
    pub reason: String,
    pub items: Vec<ReturnItem>,
    /// What a return refunds (the items' share of the amount paid); 0 for an exchange.
    pub refund_amount: i64,
    pub at: Timestamp,
    /// The Idempotency-Key of the request that made it, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The digest of that request (hex SHA-256, as `Remembered` keeps it), so the key sent
    /// with another request is told apart from a retry; absent on returns stored before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    OrderPaid,
    OrderShipped,
    OrderDelivered,
    OrderCancelled,
    OrderRefunded,
    OrderExpired,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::OrderPaid => "order_paid",
            NotificationKind::OrderShipped => "order_shipped",
            NotificationKind::OrderDelivered => "order_delivered",
            NotificationKind::OrderCancelled => "order_cancelled",
            NotificationKind::OrderRefunded => "order_refunded",
            NotificationKind::OrderExpired => "order_expired",
        }
    }
}

/// An external step the order still owes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// Reserve every line on its SKU and the coupon in the wallet.
    ReserveStock,
    /// Give back every reservation and the coupon (unpaid order that ends).
    ReleaseStock,
    /// Reserved units become sold, the coupon used, the ordered lines leave the cart.
    CommitStock,
    /// Confirm the payment with the gateway (amount verified there too).
    ConfirmPayment,
    /// Refund through the gateway.
    RefundPayment { amount: i64, reason: String },
    /// Units back to stock (to the drop that sold them, if any). Each item's quantity is the
    /// SKU's units back once done, counted over every return of the order (a cancellation
    /// brings every unit back), so a replay restocks nothing more. `before` is each SKU's
    /// count before this restock (absent: none), for a SKU that has forgotten the order.
    Restock {
        items: Vec<ReturnItem>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        before: BTreeMap<SkuId, u32>,
    },
    /// A used coupon back to issued (a paid order cancelled).
    RestoreCoupon,
    /// Book a shipment with the carrier.
    BookShipment { exchange: bool },
    /// Call a booked shipment off (a `preparing` order cancelled). The refund and the restock
    /// are queued only once it is done (`ShipmentCalledOff`), so no money goes back while the
    /// carrier may still ship. A carrier that already picked the parcel up refuses
    /// ([`Outcome::ShipmentUnderWay`]): the cancellation is withdrawn and the order goes on to
    /// its delivery, after which it may be returned.
    CancelShipment { tracking_number: String },
    /// Into the user's inbox.
    Notify {
        kind: NotificationKind,
        text: String,
        /// A refund's amount (minor units), for clients that word the notice themselves.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amount: Option<i64>,
        /// Which notice of its kind this is, where a kind has several (a cancellation's cause,
        /// `cancel_refused` for a shipment that went on).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::ReserveStock => "reserve_stock",
            Action::ReleaseStock => "release_stock",
            Action::CommitStock => "commit_stock",
            Action::ConfirmPayment => "confirm_payment",
            Action::RefundPayment { .. } => "refund_payment",
            Action::Restock { .. } => "restock",
            Action::RestoreCoupon => "restore_coupon",
            Action::BookShipment { .. } => "book_shipment",
            Action::CancelShipment { .. } => "cancel_shipment",
            Action::Notify { .. } => "notify",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effect {
    pub action: Action,
    pub attempts: u32,
    /// Gave up after too many failures: listed as a dead letter until an operator retries it.
    pub dead: bool,
    pub last_error: Option<String>,
    /// Not to be retried before.
    pub not_before: Timestamp,
    /// When the step was queued (0 when not known: queued before this was kept, or with no
    /// time of its own).
    #[serde(default)]
    pub queued_at: Timestamp,
}

/// A reply kept for an `Idempotency-Key` (status and JSON body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredReply {
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    pub placement: Option<Placement>,
    pub status: Option<OrderStatus>,
    pub history: Vec<(OrderStatus, Timestamp)>,
    pub payment: Option<Payment>,
    pub shipments: Vec<Shipment>,
    pub returns: Vec<ReturnRequest>,
    /// SKUs that could not be reserved (a rejected order).
    pub unavailable: Vec<SkuId>,
    pub coupon_unavailable: bool,
    pub effects: BTreeMap<u32, Effect>,
    pub next_effect: u32,
    /// Replies kept per idempotency key of the routes after placement (confirm, cancel).
    pub replies: BTreeMap<String, StoredReply>,
    /// Why a cancelled order was cancelled (its refund, which may come later, says so).
    #[serde(default)]
    pub cancelled_by: Option<CancelCause>,
}

impl OrderState {
    /// Paid and not yet booked with the carrier: what a commit that finds its stock lost
    /// cancels and refunds (a booked or shipped order's goods may be with the buyer).
    pub fn paid_not_booked(&self) -> bool {
        self.status == Some(OrderStatus::Paid) && self.shipments.is_empty()
    }

    pub fn owner(&self) -> Option<&UserId> {
        self.placement.as_ref().map(|p| &p.user_id)
    }

    /// The owner or an admin; anyone else is told the order does not exist.
    pub fn owned_by(&self, by: &Requester) -> Result<(), OrderError> {
        if by.admin || self.owner() == Some(&by.user_id) {
            Ok(())
        } else {
            Err(OrderError::NotFound)
        }
    }

    /// The pending effect carrying out `name`, if any.
    pub fn pending(&self, name: &str) -> Option<u32> {
        self.effects
            .iter()
            .find(|(_, e)| e.action.name() == name)
            .map(|(id, _)| *id)
    }

    /// When an unpaid order expires: while it waits for a payment that has not been sent to
    /// the gateway (a confirmation in flight holds the expiry back).
    pub fn expiry(&self) -> Option<Timestamp> {
        let waiting = matches!(
            self.status,
            Some(OrderStatus::Pending | OrderStatus::AwaitingPayment)
        );
        if waiting && self.payment.is_none() {
            self.placement.as_ref().map(|p| p.expires_at)
        } else {
            None
        }
    }
}

/// Who asks (the owner or an admin).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Requester {
    pub user_id: UserId,
    pub admin: bool,
}

/// What an effect achieved, reported by the saga driver.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    Done,
    Reserved,
    OutOfStock {
        skus: Vec<SkuId>,
    },
    CouponUnavailable,
    ShipmentBooked {
        carrier: String,
        tracking_number: String,
    },
    /// The carrier refused to call a shipment off: it has the parcel already.
    ShipmentUnderWay,
    /// A refund the gateway refused because it holds less of the payment than was asked, part
    /// of it having been refunded at the gateway already (its console): it holds `balance`,
    /// which goes back in a step of its own. Nothing went back through this step.
    HeldOnly {
        balance: i64,
    },
    /// A commit found the order's hold let go (it outlived the hold its capture took): the
    /// units may be someone else's, so the paid order is cancelled and refunded in full.
    StockLost,
}

/// The reason a payment fails when its order's hold was let go before the capture.
pub const RESERVATION_LAPSED: &str = "reservation_lapsed";

/// How a failed effect is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_backoff_ms: i64,
    pub max_backoff_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum OrderCommand {
    Place(Box<Placement>),
    Complete {
        effect: u32,
        outcome: Outcome,
    },
    /// A step could not be carried out now: it backs off (`policy`), and is a dead letter after
    /// `max_attempts`. A step no longer pending (another driver finished it) is ignored.
    Fail {
        effect: u32,
        error: String,
        policy: RetryPolicy,
    },
    /// An operator sends a dead letter back to the outbox.
    Revive {
        effect: u32,
    },
    RequestPayment {
        by: Requester,
        payment_key: String,
        amount: i64,
    },
    /// The gateway's answer to the confirmation of `payment_key` (driver or webhook).
    SettlePayment {
        payment_key: String,
        result: Result<Timestamp, String>,
    },
    /// The confirmation found the order's hold let go: the payment fails as
    /// [`RESERVATION_LAPSED`] without a capture, and `captured` (an earlier attempt's capture)
    /// is refunded, in the same record.
    PaymentLapsed {
        payment_key: String,
        captured: Option<Timestamp>,
    },
    /// The gateway says the payment `payment_key` was cancelled in full, not by a refund of
    /// ours (its console, or the gateway itself): see `payment::cancelled_at_gateway`.
    CancelledAtGateway {
        payment_key: String,
    },
    /// The deadline: an unpaid order past its expiry expires.
    Expire,
    Cancel {
        by: Requester,
    },
    Ship,
    /// The carrier reports a shipment's progress.
    TrackShipment {
        tracking_number: String,
        status: ShipmentStatus,
        at: Timestamp,
    },
    RequestReturn {
        by: Requester,
        kind: ReturnKind,
        reason: String,
        items: Vec<ReturnItem>,
        /// The request's Idempotency-Key: a return already made with it is a replay, even when
        /// its answer was lost (a `503` the client retries).
        #[serde(default)]
        key: Option<String>,
        /// The request's digest: the key with another request is `KeyReused`.
        #[serde(default)]
        fingerprint: Option<String>,
    },
    RememberReply {
        key: String,
        reply: StoredReply,
    },
    Get,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrderEvent {
    Placed(Box<Placement>),
    EffectDone {
        effect: u32,
    },
    EffectFailed {
        effect: u32,
        error: String,
        not_before: Timestamp,
        dead: bool,
    },
    EffectRevived {
        effect: u32,
    },
    StockReserved {
        at: Timestamp,
    },
    ReservationFailed {
        skus: Vec<SkuId>,
        coupon_unavailable: bool,
        at: Timestamp,
    },
    PaymentRequested {
        payment_key: String,
        amount: i64,
        at: Timestamp,
    },
    PaymentApproved {
        at: Timestamp,
    },
    PaymentDeclined {
        reason: String,
        at: Timestamp,
    },
    Expired {
        at: Timestamp,
    },
    Cancelled {
        at: Timestamp,
        /// Absent on events written before causes were kept: the customer.
        #[serde(default)]
        cause: CancelCause,
    },
    ShipmentRequested {
        exchange: bool,
    },
    ShipmentBooked {
        carrier: String,
        tracking_number: String,
        exchange: bool,
        at: Timestamp,
    },
    ShipmentTracked {
        tracking_number: String,
        status: ShipmentStatus,
        at: Timestamp,
    },
    /// The carrier called a booked shipment off (a `preparing` order cancelled).
    ShipmentCalledOff {
        tracking_number: String,
        at: Timestamp,
    },
    /// The carrier refused to call the shipment off, having picked the parcel up in the
    /// moment the order was cancelled: the cancellation is withdrawn and the order ships.
    CancellationWithdrawn {
        tracking_number: String,
        at: Timestamp,
    },
    ReturnRequested(ReturnRequest),
    Refunded {
        amount: i64,
        at: Timestamp,
    },
    /// Money the gateway gave back outside the engine (a refund made at its console), found
    /// when a refund of ours met a smaller balance than the order's records left: counted as
    /// refunded, so no later refund asks for it again.
    RefundedAtGateway {
        amount: i64,
        at: Timestamp,
    },
    /// A refund of ours met a smaller balance at the gateway (the difference is counted by
    /// [`OrderEvent::RefundedAtGateway`]): what the gateway still holds, `amount`, is refunded
    /// by a step of its own, decided before any of it is asked, so a retry of that step
    /// never takes the engine's own refund for one made at the console.
    RefundReduced {
        amount: i64,
        reason: String,
        at: Timestamp,
    },
    /// The gateway captured the payment after the order had declined it: all of it goes back.
    CapturedLate {
        at: Timestamp,
    },
    ReplyRemembered {
        key: String,
        reply: StoredReply,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum OrderError {
    #[error("no such order")]
    NotFound,
    #[error("the idempotency key was used with a different request")]
    KeyReused,
    #[error("the order cannot be paid in its current status")]
    NotPayable,
    #[error("the amount does not match the order total {expected}")]
    AmountMismatch { expected: i64 },
    #[error("a payment for this order is being confirmed")]
    PaymentInProgress,
    #[error("the order cannot be cancelled in its current status")]
    NotCancellable,
    #[error("the order cannot be shipped in its current status")]
    NotShippable,
    #[error("the order cannot be returned: {0}")]
    NotReturnable(std::borrow::Cow<'static, str>),
    /// A malformed request, not a state of the order.
    #[error("an item's quantity is at least 1")]
    InvalidQuantity,
    #[error("no such pending step")]
    NoSuchEffect,
    #[error("unknown shipment")]
    UnknownShipment,
}
