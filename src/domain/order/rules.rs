//! The rules of an order: [`decide`] refuses or accepts each command as events, [`apply`] changes
//! state and queues the effects each event calls for (deterministically, so a replayed journal
//! queues the same effects under the same ids).

use super::*;
use crate::domain::order::payment;
use crate::domain::pricing::money_text;
use crate::domain::time::Timestamp;

type S = OrderStatus;

pub fn decide(
    s: &OrderState,
    cmd: &OrderCommand,
    now: Timestamp,
) -> Result<Vec<OrderEvent>, OrderError> {
    use OrderCommand as C;
    use OrderEvent as E;
    if s.placement.is_none() && !matches!(cmd, C::Place(_)) {
        return Err(OrderError::NotFound);
    }
    match cmd {
        C::Place(p) => match &s.placement {
            None => Ok(vec![E::Placed(p.clone())]),
            Some(placed) if placed.fingerprint == p.fingerprint && placed.user_id == p.user_id => {
                Ok(vec![])
            }
            Some(_) => Err(OrderError::KeyReused),
        },
        C::Complete { effect, outcome } => complete(s, *effect, outcome, now),
        C::Fail {
            effect,
            error,
            policy,
        } => {
            // Finished by another driver meanwhile (during a shard hand-over, the old owner's
            // request and the new owner's dispatcher both drive): its failure no longer counts.
            let Some(e) = s.effects.get(effect) else {
                return Ok(vec![]);
            };
            // A dead letter is retried by no driver: a second driver's failure, reported
            // after the first made it one, changes nothing (and is not counted again).
            if e.dead {
                return Ok(vec![]);
            }
            let attempts = e.attempts + 1;
            let shift = attempts.min(20);
            let backoff = policy
                .base_backoff_ms
                .saturating_mul(1i64 << shift)
                .min(policy.max_backoff_ms);
            Ok(vec![E::EffectFailed {
                effect: *effect,
                error: error.chars().take(300).collect(),
                not_before: Timestamp(now.millis() + backoff),
                dead: attempts >= policy.max_attempts,
            }])
        }
        C::Revive { effect } => match s.effects.get(effect) {
            Some(e) if e.dead => Ok(vec![E::EffectRevived { effect: *effect }]),
            Some(_) => Ok(vec![]),
            None => Err(OrderError::NoSuchEffect),
        },
        C::RequestPayment {
            by,
            payment_key,
            amount,
        } => payment::request_payment(s, by, payment_key, *amount, now),
        C::SettlePayment {
            payment_key,
            result,
        } => payment::settle_payment(s, payment_key, result, now),
        C::PaymentLapsed {
            payment_key,
            captured,
        } => payment::lapsed(s, payment_key, captured.is_some(), now),
        C::CancelledAtGateway { payment_key } => {
            Ok(payment::cancelled_at_gateway(s, payment_key, now))
        }
        C::Expire => Ok(match s.expiry() {
            Some(at) if at <= now => vec![E::Expired { at: now }],
            _ => vec![],
        }),
        C::Cancel { by } => {
            s.owned_by(by)?;
            // Once delivered (an exchange ships again through `preparing`), what was delivered
            // comes back through returns, not a cancellation.
            let delivered = s.history.iter().any(|(st, _)| *st == S::Delivered);
            match s.status {
                Some(S::Cancelled) => Ok(vec![]),
                _ if delivered => Err(OrderError::NotCancellable),
                Some(S::AwaitingPayment | S::Paid | S::Preparing)
                    if s.payment.as_ref().map(|p| p.status) == Some(PaymentStatus::Confirming) =>
                {
                    Err(OrderError::PaymentInProgress)
                }
                Some(S::AwaitingPayment | S::Paid | S::Preparing) => {
                    let cause = if s.owner() == Some(&by.user_id) {
                        CancelCause::Customer
                    } else {
                        CancelCause::Store
                    };
                    Ok(vec![E::Cancelled { at: now, cause }])
                }
                _ => Err(OrderError::NotCancellable),
            }
        }
        C::Ship => match s.status {
            Some(S::Paid) if s.pending("book_shipment").is_none() => {
                Ok(vec![E::ShipmentRequested { exchange: false }])
            }
            Some(S::Paid | S::Preparing) => Ok(vec![]),
            _ => Err(OrderError::NotShippable),
        },
        C::TrackShipment {
            tracking_number,
            status,
            at,
        } => shipping::track(s, tracking_number, *status, *at),
        C::RequestReturn {
            by,
            kind,
            reason,
            items,
            key,
            fingerprint,
        } => {
            let asked = returns::Asked {
                kind: *kind,
                reason,
                items,
                key: key.as_deref(),
                fingerprint: fingerprint.as_deref(),
            };
            returns::request_return(s, by, asked, now)
        }
        C::RememberReply { key, reply } => Ok(match s.replies.get(key) {
            Some(_) => vec![],
            None => vec![E::ReplyRemembered {
                key: key.clone(),
                reply: reply.clone(),
            }],
        }),
        C::Get => Ok(vec![]),
    }
}

fn complete(
    s: &OrderState,
    id: u32,
    outcome: &Outcome,
    now: Timestamp,
) -> Result<Vec<OrderEvent>, OrderError> {
    use OrderEvent as E;
    let Some(effect) = s.effects.get(&id) else {
        return Ok(vec![]); // reported twice: the first report counted
    };
    let done = E::EffectDone { effect: id };
    let follow = match (&effect.action, outcome) {
        // Nothing to charge (a coupon covering everything): paid without the gateway.
        (Action::ReserveStock, Outcome::Reserved)
            if s.placement.as_ref().is_some_and(|p| p.total == 0) =>
        {
            vec![E::StockReserved { at: now }, E::PaymentApproved { at: now }]
        }
        (Action::ReserveStock, Outcome::Reserved) => vec![E::StockReserved { at: now }],
        (Action::ReserveStock, Outcome::OutOfStock { skus }) => vec![E::ReservationFailed {
            skus: skus.clone(),
            coupon_unavailable: false,
            at: now,
        }],
        (Action::ReserveStock, Outcome::CouponUnavailable) => vec![E::ReservationFailed {
            skus: vec![],
            coupon_unavailable: true,
            at: now,
        }],
        (
            Action::BookShipment { exchange },
            Outcome::ShipmentBooked {
                carrier,
                tracking_number,
            },
        ) => vec![E::ShipmentBooked {
            carrier: carrier.clone(),
            tracking_number: tracking_number.clone(),
            exchange: *exchange,
            at: now,
        }],
        (Action::CancelShipment { tracking_number }, Outcome::Done) => {
            vec![E::ShipmentCalledOff {
                tracking_number: tracking_number.clone(),
                at: now,
            }]
        }
        (Action::CancelShipment { tracking_number }, Outcome::ShipmentUnderWay) => {
            vec![E::CancellationWithdrawn {
                tracking_number: tracking_number.clone(),
                at: now,
            }]
        }
        (Action::RefundPayment { amount, .. }, Outcome::Done) => vec![E::Refunded {
            amount: *amount,
            at: now,
        }],
        (Action::RefundPayment { reason, .. }, Outcome::HeldOnly { balance }) => {
            let (paid, refunded) = s
                .payment
                .as_ref()
                .map_or((0, 0), |p| (p.amount, p.refunded));
            let outside = paid - refunded - balance;
            let mut events = Vec::new();
            if outside > 0 {
                events.push(E::RefundedAtGateway {
                    amount: outside,
                    at: now,
                });
            }
            events.push(match *balance {
                rest if rest > 0 => E::RefundReduced {
                    amount: rest,
                    reason: reason.clone(),
                    at: now,
                },
                _ => E::Refunded { amount: 0, at: now },
            });
            events
        }
        // Only an order not yet on its way (the saga leaves any other a dead letter).
        (Action::CommitStock, Outcome::StockLost) if s.paid_not_booked() => {
            vec![E::Cancelled {
                at: now,
                cause: CancelCause::StockLost,
            }]
        }
        (Action::ConfirmPayment, _) => return Err(OrderError::NoSuchEffect),
        (_, Outcome::Done) => vec![],
        _ => return Err(OrderError::NoSuchEffect),
    };
    Ok(std::iter::once(done).chain(follow).collect())
}

/// A refused amount ends the order: the events persisted with the refusal.
pub fn on_rejection(
    s: &OrderState,
    cmd: &OrderCommand,
    why: &OrderError,
    now: Timestamp,
) -> Vec<OrderEvent> {
    match (cmd, why) {
        (OrderCommand::RequestPayment { .. }, OrderError::AmountMismatch { .. })
            if s.status == Some(S::AwaitingPayment) =>
        {
            vec![OrderEvent::PaymentDeclined {
                reason: "amount_mismatch".into(),
                at: now,
            }]
        }
        _ => vec![],
    }
}

pub(super) fn set_status(s: &mut OrderState, status: OrderStatus, at: Timestamp) {
    if s.status != Some(status) {
        s.status = Some(status);
        s.history.push((status, at));
    }
}

fn queue(s: &mut OrderState, action: Action, at: Timestamp) {
    let id = s.next_effect;
    s.next_effect += 1;
    s.effects.insert(
        id,
        Effect {
            action,
            attempts: 0,
            dead: false,
            last_error: None,
            not_before: at,
            queued_at: at,
        },
    );
}

/// Drops the steps an ended order no longer needs (it may end while they are pending).
fn drop_pending(s: &mut OrderState, names: &[&str]) {
    s.effects.retain(|_, e| !names.contains(&e.action.name()));
}

pub(super) fn notify(s: &mut OrderState, kind: NotificationKind, text: String, at: Timestamp) {
    notify_why(s, kind, None, text, at);
}

/// A notice with the `reason` that tells it from others of its kind.
pub(super) fn notify_why(
    s: &mut OrderState,
    kind: NotificationKind,
    reason: Option<&str>,
    text: String,
    at: Timestamp,
) {
    let (amount, reason) = (None, reason.map(str::to_owned));
    let notice = Action::Notify {
        kind,
        text,
        amount,
        reason,
    };
    queue(s, notice, at);
}

/// What a paid order cancelled gives back: the refund of what is left of the payment, every
/// unit, the coupon.
fn compensate_paid(s: &mut OrderState, at: Timestamp) {
    let amount = s.payment.as_ref().map_or(0, |p| p.amount - p.refunded);
    let reason = s
        .cancelled_by
        .unwrap_or_default()
        .refund_reason()
        .to_owned();
    queue(s, Action::RefundPayment { amount, reason }, at);
    let items = all_items(s);
    let before = returns::returned_units(s);
    queue(s, Action::Restock { items, before }, at);
    if s.placement.as_ref().is_some_and(|p| p.coupon.is_some()) {
        queue(s, Action::RestoreCoupon, at);
    }
}

fn all_items(s: &OrderState) -> Vec<ReturnItem> {
    s.placement
        .iter()
        .flat_map(|p| &p.lines)
        .map(|l| ReturnItem {
            sku_id: l.sku_id.clone(),
            quantity: l.quantity,
        })
        .collect()
}

pub fn apply(s: &mut OrderState, event: &OrderEvent) {
    use OrderEvent as E;
    match event {
        E::Placed(p) => {
            s.placement = Some((**p).clone());
            if p.drop_id.is_some() {
                set_status(s, S::AwaitingPayment, p.created_at);
            } else {
                set_status(s, S::Pending, p.created_at);
                queue(s, Action::ReserveStock, p.created_at);
            }
        }
        E::EffectDone { effect } => {
            s.effects.remove(effect);
        }
        E::EffectFailed {
            effect,
            error,
            not_before,
            dead,
        } => {
            if let Some(e) = s.effects.get_mut(effect) {
                e.attempts += 1;
                e.last_error = Some(error.clone());
                e.not_before = *not_before;
                e.dead = *dead;
            }
        }
        E::EffectRevived { effect } => {
            if let Some(e) = s.effects.get_mut(effect) {
                e.dead = false;
                e.attempts = 0;
                e.not_before = Timestamp(0); // due now, whatever its last backoff said
            }
        }
        E::StockReserved { at } => set_status(s, S::AwaitingPayment, *at),
        E::ReservationFailed {
            skus,
            coupon_unavailable,
            at,
        } => {
            s.unavailable = skus.clone();
            s.coupon_unavailable = *coupon_unavailable;
            set_status(s, S::Rejected, *at);
            drop_pending(s, &["reserve_stock"]);
            queue(s, Action::ReleaseStock, *at);
        }
        E::PaymentRequested {
            payment_key,
            amount,
            at,
        } => {
            s.payment = Some(Payment {
                payment_key: payment_key.clone(),
                amount: *amount,
                status: PaymentStatus::Confirming,
                reason: None,
                approved_at: None,
                refunded: 0,
                captured_late: None,
            });
            queue(s, Action::ConfirmPayment, *at);
        }
        E::PaymentApproved { at } => {
            if let Some(p) = s.payment.as_mut() {
                p.status = PaymentStatus::Approved;
                p.approved_at = Some(*at);
            }
            set_status(s, S::Paid, *at);
            queue(s, Action::CommitStock, *at);
            notify(
                s,
                NotificationKind::OrderPaid,
                "Your order is paid.".into(),
                *at,
            );
        }
        E::PaymentDeclined { reason, at } => {
            if let Some(p) = s.payment.as_mut() {
                p.status = PaymentStatus::Declined;
                p.reason = Some(reason.clone());
            }
            set_status(s, S::PaymentFailed, *at);
            drop_pending(s, &["confirm_payment"]);
            queue(s, Action::ReleaseStock, *at);
        }
        E::Expired { at } => {
            set_status(s, S::Expired, *at);
            drop_pending(s, &["reserve_stock"]);
            queue(s, Action::ReleaseStock, *at);
            let text = "Your unpaid order expired.".to_owned();
            notify(s, NotificationKind::OrderExpired, text, *at);
        }
        E::Cancelled { at, cause } => {
            let paid = s.status != Some(S::AwaitingPayment);
            set_status(s, S::Cancelled, *at);
            s.cancelled_by = Some(*cause);
            let booked = s
                .shipments
                .iter()
                .rev()
                .find(|sh| sh.status == ShipmentStatus::Ready)
                .map(|sh| sh.tracking_number.clone());
            match booked {
                // The carrier first: money and units go back once it has called the parcel
                // off (`ShipmentCalledOff`), never while it may still ship; until then the
                // sale stands (its commit runs), as the parcel may ship after all
                // (`CancellationWithdrawn`).
                Some(tracking_number) => {
                    queue(s, Action::CancelShipment { tracking_number }, *at);
                }
                None if paid => {
                    // Restock also gives back units whose commit had not run yet.
                    drop_pending(s, &["book_shipment", "commit_stock"]);
                    compensate_paid(s, *at);
                }
                None => queue(s, Action::ReleaseStock, *at),
            }
            let (kind, text) = (NotificationKind::OrderCancelled, cause.notice().to_owned());
            notify_why(s, kind, Some(cause.as_str()), text, *at);
        }
        E::ShipmentCalledOff { at, .. } => {
            drop_pending(s, &["commit_stock"]);
            compensate_paid(s, *at);
        }
        E::CancellationWithdrawn {
            tracking_number,
            at,
        } => shipping::withdraw_cancellation(s, tracking_number, *at),
        E::ShipmentRequested { exchange } => {
            let booking = Action::BookShipment {
                exchange: *exchange,
            };
            queue(s, booking, Timestamp(0));
            // Due at once; owed since the order's last change (the event has no time).
            let since = s.history.last().map_or(Timestamp(0), |(_, at)| *at);
            if let Some(e) = s.effects.get_mut(&(s.next_effect - 1)) {
                e.queued_at = since;
            }
        }
        E::ShipmentBooked {
            carrier,
            tracking_number,
            exchange,
            at,
        } => {
            s.shipments.push(Shipment {
                carrier: carrier.clone(),
                tracking_number: tracking_number.clone(),
                status: ShipmentStatus::Ready,
                events: vec![(ShipmentStatus::Ready, *at)],
                exchange: *exchange,
            });
            set_status(s, S::Preparing, *at);
        }
        E::ShipmentTracked {
            tracking_number,
            status,
            at,
        } => shipping::tracked(s, tracking_number, *status, *at),
        E::ReturnRequested(r) => {
            set_status(s, S::ReturnRequested, r.at);
            match r.kind {
                ReturnKind::Return => {
                    let items = returns::restock_after(s, r);
                    let before = returns::returned_units(s);
                    queue(s, Action::Restock { items, before }, r.at);
                    let (amount, reason) = (r.refund_amount, format!("return: {}", r.reason));
                    queue(s, Action::RefundPayment { amount, reason }, r.at);
                }
                ReturnKind::Exchange => queue(s, Action::BookShipment { exchange: true }, r.at),
            }
            s.returns.push(r.clone());
        }
        E::Refunded { amount, at } => {
            if let Some(p) = s.payment.as_mut() {
                p.refunded += amount;
            }
            if s.status == Some(S::ReturnRequested) {
                set_status(s, S::Returned, *at);
                set_status(s, S::Refunded, *at);
            }
            if *amount > 0 {
                let currency = s.placement.as_ref().map_or("", |p| p.currency.as_str());
                let text = format!("A refund of {} was issued.", money_text(*amount, currency));
                let (kind, amount) = (NotificationKind::OrderRefunded, Some(*amount));
                let reason = None;
                queue(
                    s,
                    Action::Notify {
                        kind,
                        text,
                        amount,
                        reason,
                    },
                    *at,
                );
            }
        }
        E::RefundedAtGateway { amount, .. } => {
            if let Some(p) = s.payment.as_mut() {
                p.refunded += amount;
            }
        }
        E::RefundReduced { amount, reason, at } => {
            let (amount, reason) = (*amount, reason.clone());
            queue(s, Action::RefundPayment { amount, reason }, *at);
        }
        E::CapturedLate { at } => {
            let Some(p) = s.payment.as_mut() else {
                return;
            };
            p.captured_late = Some(*at);
            let amount = p.amount - p.refunded;
            let reason = "captured after the order's payment had failed".to_owned();
            queue(s, Action::RefundPayment { amount, reason }, *at);
        }
        E::ReplyRemembered { key, reply } => {
            s.replies.insert(key.clone(), reply.clone());
        }
    }
}
