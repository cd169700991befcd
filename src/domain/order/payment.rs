//! The rules of an order's payment: requesting one, settling it by the gateway's verdict, a
//! confirmation that found the order's hold let go, and a cancellation made at the gateway.

use super::*;
use crate::domain::time::Timestamp;

type S = OrderStatus;

pub(super) fn request_payment(
    s: &OrderState,
    by: &Requester,
    payment_key: &str,
    amount: i64,
    now: Timestamp,
) -> Result<Vec<OrderEvent>, OrderError> {
    s.owned_by(by)?;
    let total = s.placement.as_ref().map_or(0, |p| p.total);
    if let Some(p) = &s.payment {
        let same = p.payment_key == payment_key && p.amount == amount;
        return match p.status {
            PaymentStatus::Confirming | PaymentStatus::Approved if same => Ok(vec![]),
            PaymentStatus::Confirming => Err(OrderError::PaymentInProgress),
            _ => Err(OrderError::NotPayable),
        };
    }
    if s.status != Some(S::AwaitingPayment) || s.expiry().is_some_and(|at| at <= now) {
        return Err(OrderError::NotPayable);
    }
    if amount != total {
        return Err(OrderError::AmountMismatch { expected: total });
    }
    Ok(vec![OrderEvent::PaymentRequested {
        payment_key: payment_key.to_owned(),
        amount,
        at: now,
    }])
}

pub(super) fn settle_payment(
    s: &OrderState,
    payment_key: &str,
    result: &Result<Timestamp, String>,
    now: Timestamp,
) -> Result<Vec<OrderEvent>, OrderError> {
    let p = s.payment.as_ref().ok_or(OrderError::NotPayable)?;
    if p.payment_key != payment_key {
        return Err(OrderError::NotPayable);
    }
    // Declined here (an unknown payment, a refusal we misread) and captured there: the order
    // has given its units back, so the money goes back too, once.
    if p.status == PaymentStatus::Declined && result.is_ok() && p.captured_late.is_none() {
        return Ok(vec![OrderEvent::CapturedLate { at: now }]);
    }
    if p.status != PaymentStatus::Confirming {
        return Ok(vec![]); // already settled (driver and webhook both report)
    }
    let mut events = Vec::new();
    if let Some(id) = s.pending("confirm_payment") {
        events.push(OrderEvent::EffectDone { effect: id });
    }
    events.push(match result {
        Ok(at) => OrderEvent::PaymentApproved { at: *at },
        Err(reason) => OrderEvent::PaymentDeclined {
            reason: reason.clone(),
            at: now,
        },
    });
    Ok(events)
}

/// The confirmation found the order's hold let go: the payment fails as
/// [`RESERVATION_LAPSED`] without a capture, and one `captured` by an earlier attempt is
/// refunded, in the same record (a second report changes nothing).
pub(super) fn lapsed(
    s: &OrderState,
    payment_key: &str,
    captured: bool,
    now: Timestamp,
) -> Result<Vec<OrderEvent>, OrderError> {
    let failed = Err(RESERVATION_LAPSED.to_owned());
    let mut events = settle_payment(s, payment_key, &failed, now)?;
    let declined = events
        .iter()
        .any(|e| matches!(e, OrderEvent::PaymentDeclined { .. }));
    if captured && declined {
        events.push(OrderEvent::CapturedLate { at: now });
    }
    Ok(events)
}

/// A payment cancelled at the gateway, not by a refund of ours: the money is back with the
/// buyer, so the order records the refund, and one not yet delivered is cancelled (its carrier
/// booking called off, units and coupon back; the refund it queues is of nothing, so the
/// gateway is not asked again). Goods already out stay as they are, with the refund recorded
/// for the operator. A cancellation of ours (the order cancelled, a return requested, a
/// refund queued or made) is not one: its webhook changes nothing.
pub(super) fn cancelled_at_gateway(
    s: &OrderState,
    payment_key: &str,
    now: Timestamp,
) -> Vec<OrderEvent> {
    let Some(p) = &s.payment else {
        return vec![];
    };
    let open = p.amount - p.refunded;
    let ours = p.refunded > 0 || s.pending("refund_payment").is_some();
    if p.payment_key != payment_key || p.status != PaymentStatus::Approved || open <= 0 || ours {
        return vec![];
    }
    let delivered = s.history.iter().any(|(st, _)| *st == S::Delivered);
    let refunded = OrderEvent::Refunded {
        amount: open,
        at: now,
    };
    match s.status {
        Some(S::Paid | S::Preparing) if !delivered => {
            let cause = CancelCause::Gateway;
            vec![refunded, OrderEvent::Cancelled { at: now, cause }]
        }
        Some(S::Paid | S::Preparing | S::Shipped | S::Delivered | S::ReturnRequested) => {
            vec![refunded]
        }
        _ => vec![],
    }
}
