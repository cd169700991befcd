//! A shipment's way to the door as the carrier reports it, and what a cancellation the carrier
//! refuses means for the order.
//!
//! - Tracking only moves forward (ready, shipping, delivered); a report of a step already
//!   passed changes nothing, as carriers repeat them.
//! - A cancelled order's shipment is still followed while its call-off is asked: the carrier
//!   may have picked the parcel up in the moment the order was cancelled. Its reports then
//!   move the shipment, not the order.
//! - If the carrier refuses the call-off for that reason, the cancellation is withdrawn: the
//!   order goes on as shipped (or delivered, if the carrier said so meanwhile), nothing is
//!   refunded or restocked, and the buyer is told they may return it once it arrives.

use super::rules::{notify, notify_why, set_status};
use super::*;
use crate::domain::time::Timestamp;

type S = OrderStatus;

/// The carrier reports `status` for the shipment `tracking_number` at `at`.
///
/// Errors: [`OrderError::UnknownShipment`] when the order has no such shipment.
pub(super) fn track(
    s: &OrderState,
    tracking_number: &str,
    status: ShipmentStatus,
    at: Timestamp,
) -> Result<Vec<OrderEvent>, OrderError> {
    let shipment = s
        .shipments
        .iter()
        .find(|sh| sh.tracking_number == tracking_number)
        .ok_or(OrderError::UnknownShipment)?;
    let called_off = s.status == Some(S::Cancelled) && s.pending("cancel_shipment").is_none();
    if status <= shipment.status || called_off {
        return Ok(vec![]);
    }
    Ok(vec![OrderEvent::ShipmentTracked {
        tracking_number: tracking_number.to_owned(),
        status,
        at,
    }])
}

/// Applies a tracking report: the shipment moves, and the order with it unless cancelled.
pub(super) fn tracked(
    s: &mut OrderState,
    tracking_number: &str,
    status: ShipmentStatus,
    at: Timestamp,
) {
    if let Some(sh) = s
        .shipments
        .iter_mut()
        .find(|sh| sh.tracking_number == tracking_number)
    {
        sh.status = status;
        sh.events.push((status, at));
    }
    if s.status == Some(S::Cancelled) {
        return; // its call-off is asked: the order follows if it is refused
    }
    let (next, kind, text) = match status {
        ShipmentStatus::Ready => return,
        ShipmentStatus::Shipping => (
            S::Shipped,
            NotificationKind::OrderShipped,
            format!("Your order is on its way ({tracking_number})."),
        ),
        ShipmentStatus::Delivered => (
            S::Delivered,
            NotificationKind::OrderDelivered,
            "Your order was delivered.".to_owned(),
        ),
    };
    set_status(s, next, at);
    notify(s, kind, text, at);
}

/// Applies a call-off the carrier refused having picked the parcel up: the order ships.
pub(super) fn withdraw_cancellation(s: &mut OrderState, tracking_number: &str, at: Timestamp) {
    let mut delivered = false;
    if let Some(sh) = s
        .shipments
        .iter_mut()
        .find(|sh| sh.tracking_number == tracking_number)
    {
        // Picked up: on its way at least, whether or not the carrier has said so yet.
        if sh.status == ShipmentStatus::Ready {
            sh.status = ShipmentStatus::Shipping;
            sh.events.push((ShipmentStatus::Shipping, at));
        }
        delivered = sh.status == ShipmentStatus::Delivered;
    }
    set_status(s, if delivered { S::Delivered } else { S::Shipped }, at);
    let text = format!(
        "Your order could not be cancelled: the carrier had already picked it up \
         ({tracking_number}). Once it is delivered you may return it."
    );
    notify_why(
        s,
        NotificationKind::OrderShipped,
        Some("cancel_refused"),
        text,
        at,
    );
}
