//! Given/when/then tests of the order rules.

use super::rules::{apply, decide};
use super::*;
use crate::domain::ids::{ProductId, SkuId, UserId};
use crate::domain::time::Timestamp;

mod cancellation;
mod returns;

const T0: Timestamp = Timestamp(1_000_000);
const POLICY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    base_backoff_ms: 100,
    max_backoff_ms: 10_000,
};

fn user() -> Requester {
    Requester {
        user_id: UserId::parse("u1").unwrap(),
        admin: false,
    }
}

fn placement(coupon: bool) -> Placement {
    let line = |sku: &str, price: i64, qty: u32| OrderLine {
        sku_id: SkuId::parse(sku).unwrap(),
        product_id: ProductId::parse("p1").unwrap(),
        name: "Tee".into(),
        unit_price: price,
        quantity: qty,
        line_total: price * i64::from(qty),
        discount: 0,
    };
    Placement {
        user_id: UserId::parse("u1").unwrap(),
        fingerprint: "f1".into(),
        lines: vec![line("a", 1000, 2), line("b", 3000, 1)],
        coupon: coupon.then(|| OrderCoupon {
            coupon_id: crate::domain::ids::CouponId::parse("k1").unwrap(),
            discount: 500,
        }),
        subtotal: 5000,
        discount: if coupon { 500 } else { 0 },
        total: if coupon { 4500 } else { 5000 },
        currency: "KRW".into(),
        shipping_address: crate::domain::sealed::Sealed(vec![1, 2, 3]),
        from_cart: true,
        drop_id: None,
        created_at: T0,
        expires_at: Timestamp(T0.0 + 600_000),
    }
}

/// Runs commands in order (each must be accepted) and returns the state.
fn given(cmds: &[OrderCommand]) -> OrderState {
    let mut s = OrderState::default();
    for c in cmds {
        for e in decide(&s, c, T0).unwrap_or_else(|e| panic!("{c:?} refused: {e}")) {
            apply(&mut s, &e);
        }
    }
    s
}

fn when(s: &mut OrderState, c: OrderCommand) -> Result<(), OrderError> {
    let events = decide(s, &c, T0)?;
    for e in events {
        apply(s, &e);
    }
    Ok(())
}

fn complete(s: &OrderState, name: &str, outcome: Outcome) -> OrderCommand {
    OrderCommand::Complete {
        effect: s.pending(name).unwrap_or_else(|| panic!("{name} pending")),
        outcome,
    }
}

fn actions(s: &OrderState) -> Vec<&'static str> {
    s.effects.values().map(|e| e.action.name()).collect()
}

fn reserved(coupon: bool) -> OrderState {
    let mut s = given(&[OrderCommand::Place(Box::new(placement(coupon)))]);
    let c = complete(&s, "reserve_stock", Outcome::Reserved);
    when(&mut s, c).unwrap();
    s
}

fn pay(amount: i64) -> OrderCommand {
    OrderCommand::RequestPayment {
        by: user(),
        payment_key: "pk1".into(),
        amount,
    }
}

fn paid(coupon: bool) -> OrderState {
    let mut s = reserved(coupon);
    let total = s.placement.as_ref().unwrap().total;
    when(&mut s, pay(total)).unwrap();
    let settle = OrderCommand::SettlePayment {
        payment_key: "pk1".into(),
        result: Ok(T0),
    };
    when(&mut s, settle).unwrap();
    s
}

#[test]
fn a_placed_order_reserves_then_awaits_payment() {
    let s = given(&[OrderCommand::Place(Box::new(placement(false)))]);
    assert_eq!(s.status, Some(OrderStatus::Pending));
    assert_eq!(actions(&s), ["reserve_stock"]);
    let s = reserved(false);
    assert_eq!(s.status, Some(OrderStatus::AwaitingPayment));
    assert!(s.effects.is_empty());
}

#[test]
fn the_same_placement_is_a_replay_and_another_body_is_refused() {
    let mut s = given(&[OrderCommand::Place(Box::new(placement(false)))]);
    assert_eq!(
        decide(&s, &OrderCommand::Place(Box::new(placement(false))), T0),
        Ok(vec![])
    );
    let mut other = placement(false);
    other.fingerprint = "f2".into();
    assert_eq!(
        when(&mut s, OrderCommand::Place(Box::new(other))),
        Err(OrderError::KeyReused)
    );
}

#[test]
fn out_of_stock_rejects_the_order_and_releases_what_was_taken() {
    let mut s = given(&[OrderCommand::Place(Box::new(placement(false)))]);
    let skus = vec![SkuId::parse("b").unwrap()];
    let c = complete(
        &s,
        "reserve_stock",
        Outcome::OutOfStock { skus: skus.clone() },
    );
    when(&mut s, c).unwrap();
    assert_eq!(s.status, Some(OrderStatus::Rejected));
    assert_eq!(s.unavailable, skus);
    assert_eq!(actions(&s), ["release_stock"]);
}

#[test]
fn approval_marks_paid_and_queues_commit_and_notification() {
    let s = paid(true);
    assert_eq!(s.status, Some(OrderStatus::Paid));
    assert_eq!(actions(&s), ["commit_stock", "notify"]);
    assert_eq!(
        s.payment.as_ref().map(|p| p.status),
        Some(PaymentStatus::Approved)
    );
}

#[test]
fn a_wrong_amount_is_refused_and_fails_the_order() {
    let s = reserved(false);
    let cmd = pay(1);
    let why = decide(&s, &cmd, T0).unwrap_err();
    assert_eq!(why, OrderError::AmountMismatch { expected: 5000 });
    let mut s2 = s.clone();
    for e in rules::on_rejection(&s, &cmd, &why, T0) {
        apply(&mut s2, &e);
    }
    assert_eq!(s2.status, Some(OrderStatus::PaymentFailed));
    assert_eq!(actions(&s2), ["release_stock"]);
}

#[test]
fn a_decline_fails_the_order_and_releases_everything() {
    let mut s = reserved(true);
    when(&mut s, pay(4500)).unwrap();
    assert_eq!(actions(&s), ["confirm_payment"]);
    let settle = OrderCommand::SettlePayment {
        payment_key: "pk1".into(),
        result: Err("insufficient_funds".into()),
    };
    when(&mut s, settle).unwrap();
    assert_eq!(s.status, Some(OrderStatus::PaymentFailed));
    assert_eq!(actions(&s), ["release_stock"]);
}

#[test]
fn a_confirmation_in_flight_holds_expiry_and_cancellation_back() {
    let mut s = reserved(false);
    assert!(s.expiry().is_some());
    when(&mut s, pay(5000)).unwrap();
    assert_eq!(s.expiry(), None);
    let cancel = OrderCommand::Cancel { by: user() };
    assert_eq!(when(&mut s, cancel), Err(OrderError::PaymentInProgress));
    // The same confirmation again is a replay; another key is refused.
    assert_eq!(decide(&s, &pay(5000), T0), Ok(vec![]));
    let other = OrderCommand::RequestPayment {
        by: user(),
        payment_key: "pk2".into(),
        amount: 5000,
    };
    assert_eq!(decide(&s, &other, T0), Err(OrderError::PaymentInProgress));
}

#[test]
fn an_unpaid_order_expires_only_after_its_deadline() {
    let s = reserved(true);
    assert_eq!(decide(&s, &OrderCommand::Expire, T0), Ok(vec![]));
    let late = Timestamp(T0.0 + 600_000);
    let events = decide(&s, &OrderCommand::Expire, late).unwrap();
    let mut s = s;
    for e in &events {
        apply(&mut s, e);
    }
    assert_eq!(s.status, Some(OrderStatus::Expired));
    assert_eq!(actions(&s), ["release_stock", "notify"]);
    assert_eq!(when(&mut s, pay(4500)), Err(OrderError::NotPayable));
}

#[test]
fn cancelling_a_paid_order_refunds_restocks_and_restores_the_coupon() {
    let mut s = paid(true);
    when(&mut s, OrderCommand::Cancel { by: user() }).unwrap();
    assert_eq!(s.status, Some(OrderStatus::Cancelled));
    assert_eq!(
        actions(&s),
        [
            "notify",
            "refund_payment",
            "restock",
            "restore_coupon",
            "notify"
        ]
    );
    let refund = s.effects.values().find_map(|e| match &e.action {
        Action::RefundPayment { amount, .. } => Some(*amount),
        _ => None,
    });
    assert_eq!(refund, Some(4500));
}

#[test]
fn a_capture_reported_after_the_order_declined_its_payment_is_refunded_once() {
    // Given an order whose confirmation failed on our side (the gateway did not know the key)
    let mut s = reserved(false);
    when(&mut s, pay(5000)).unwrap();
    let declined = OrderCommand::SettlePayment {
        payment_key: "pk1".into(),
        result: Err("unknown_payment".into()),
    };
    when(&mut s, declined).unwrap();
    assert_eq!(s.status, Some(OrderStatus::PaymentFailed));
    // When the gateway's webhook says the payment was captured after all
    let captured = OrderCommand::SettlePayment {
        payment_key: "pk1".into(),
        result: Ok(T0),
    };
    when(&mut s, captured.clone()).unwrap();
    // Then the order stays failed and queues a refund of the whole amount
    assert_eq!(s.status, Some(OrderStatus::PaymentFailed));
    let refund = s.effects.values().find_map(|e| match &e.action {
        Action::RefundPayment { amount, .. } => Some(*amount),
        _ => None,
    });
    assert_eq!(refund, Some(5000));
    // And the same report again (webhooks are retried) refunds nothing more
    assert_eq!(decide(&s, &captured, T0), Ok(vec![]));
    // And a decline reported twice is no capture
    let again = OrderCommand::SettlePayment {
        payment_key: "pk1".into(),
        result: Err("unknown_payment".into()),
    };
    assert_eq!(decide(&s, &again, T0), Ok(vec![]));
}

#[test]
fn a_payment_cancelled_at_the_gateway_cancels_the_order_without_refunding_it_again() {
    // Given a paid order (4500 paid)
    let mut s = paid(true);
    s.effects.clear();
    let key = s.payment.as_ref().unwrap().payment_key.clone();
    // When the gateway says its payment was cancelled there
    let at_gateway = OrderCommand::CancelledAtGateway {
        payment_key: key.clone(),
    };
    when(&mut s, at_gateway.clone()).unwrap();
    // Then the refund is recorded, the order cancelled, units and coupon given back, and the
    // refund queued is of nothing (the gateway is not asked again)
    assert_eq!(s.status, Some(OrderStatus::Cancelled));
    assert_eq!(s.payment.as_ref().unwrap().refunded, 4500);
    let refund = s.effects.values().find_map(|e| match &e.action {
        Action::RefundPayment { amount, .. } => Some(*amount),
        _ => None,
    });
    assert_eq!(refund, Some(0));
    assert!(actions(&s).contains(&"restock") && actions(&s).contains(&"restore_coupon"));
    // And the same webhook again, or another payment's, changes nothing
    let before = s.clone();
    when(&mut s, at_gateway).unwrap();
    let other = OrderCommand::CancelledAtGateway {
        payment_key: "another".into(),
    };
    when(&mut s, other).unwrap();
    assert_eq!(s, before);
}

#[test]
fn a_cancellation_of_ours_or_of_a_delivered_order_at_the_gateway_is_only_recorded() {
    // Given an order cancelled by its buyer (our refund queued), and a delivered one
    let mut ours = paid(false);
    when(&mut ours, OrderCommand::Cancel { by: user() }).unwrap();
    let mut out = delivered();
    out.effects.clear();
    // When their payments are cancelled at the gateway
    for s in [&mut ours, &mut out] {
        let key = s.payment.as_ref().unwrap().payment_key.clone();
        when(s, OrderCommand::CancelledAtGateway { payment_key: key }).unwrap();
    }
    // Then ours changes nothing, and the delivered one records the refund and stays delivered
    assert_eq!(ours.payment.as_ref().unwrap().refunded, 0);
    assert_eq!(out.status, Some(OrderStatus::Delivered));
    assert_eq!(out.payment.as_ref().unwrap().refunded, 5000);
    assert!(!actions(&out).contains(&"refund_payment"));
}

#[test]
fn strangers_cannot_see_or_cancel_an_order() {
    let mut s = reserved(false);
    let stranger = Requester {
        user_id: UserId::parse("u2").unwrap(),
        admin: false,
    };
    let cancel = OrderCommand::Cancel { by: stranger };
    assert_eq!(when(&mut s, cancel), Err(OrderError::NotFound));
}

fn delivered() -> OrderState {
    let mut s = paid(false);
    when(&mut s, OrderCommand::Ship).unwrap();
    book_then_deliver(&mut s, "T1");
    s
}

/// The queued shipment booked as `tracking`, then carried to the door.
fn book_then_deliver(s: &mut OrderState, tracking: &str) {
    let booked = Outcome::ShipmentBooked {
        carrier: "sandbox".into(),
        tracking_number: tracking.into(),
    };
    let c = complete(s, "book_shipment", booked);
    when(s, c).unwrap();
    assert_eq!(s.status, Some(OrderStatus::Preparing));
    for status in [ShipmentStatus::Shipping, ShipmentStatus::Delivered] {
        let track = OrderCommand::TrackShipment {
            tracking_number: tracking.into(),
            status,
            at: T0,
        };
        when(s, track).unwrap();
    }
}

#[test]
fn the_carrier_moves_the_order_to_shipped_then_delivered_and_never_back() {
    let mut s = delivered();
    assert_eq!(s.status, Some(OrderStatus::Delivered));
    let back = OrderCommand::TrackShipment {
        tracking_number: "T1".into(),
        status: ShipmentStatus::Shipping,
        at: T0,
    };
    assert_eq!(decide(&s, &back, T0), Ok(vec![]));
    let cancel = OrderCommand::Cancel { by: user() };
    assert_eq!(when(&mut s, cancel), Err(OrderError::NotCancellable));
}

#[test]
fn a_return_restocks_and_refunds_the_items_share() {
    let mut s = delivered();
    s.effects.clear();
    let ret = OrderCommand::RequestReturn {
        key: None,
        fingerprint: None,
        by: user(),
        kind: ReturnKind::Return,
        reason: "too small".into(),
        items: vec![ReturnItem {
            sku_id: SkuId::parse("a").unwrap(),
            quantity: 1,
        }],
    };
    when(&mut s, ret).unwrap();
    assert_eq!(s.status, Some(OrderStatus::ReturnRequested));
    assert_eq!(actions(&s), ["restock", "refund_payment"]);
    assert_eq!(s.returns[0].refund_amount, 1000);
    let c = complete(&s, "refund_payment", Outcome::Done);
    when(&mut s, c).unwrap();
    assert_eq!(s.status, Some(OrderStatus::Refunded));
    let statuses: Vec<_> = s.history.iter().map(|(st, _)| *st).collect();
    assert!(statuses.ends_with(&[
        OrderStatus::ReturnRequested,
        OrderStatus::Returned,
        OrderStatus::Refunded
    ]));
}

#[test]
fn an_exchange_books_a_new_shipment() {
    let mut s = delivered();
    s.effects.clear();
    let ex = OrderCommand::RequestReturn {
        key: None,
        fingerprint: None,
        by: user(),
        kind: ReturnKind::Exchange,
        reason: "wrong colour".into(),
        items: vec![],
    };
    when(&mut s, ex).unwrap();
    assert_eq!(actions(&s), ["book_shipment"]);
    assert_eq!(s.returns[0].items.len(), 2);
}

#[test]
fn a_return_before_delivery_or_of_unknown_items_is_refused() {
    let mut s = paid(false);
    let ret = |items| OrderCommand::RequestReturn {
        key: None,
        fingerprint: None,
        by: user(),
        kind: ReturnKind::Return,
        reason: "x".into(),
        items,
    };
    assert!(matches!(
        when(&mut s, ret(vec![])),
        Err(OrderError::NotReturnable(_))
    ));
    let mut s = delivered();
    let unknown = vec![ReturnItem {
        sku_id: SkuId::parse("zz").unwrap(),
        quantity: 1,
    }];
    assert!(matches!(
        when(&mut s, ret(unknown)),
        Err(OrderError::NotReturnable(_))
    ));
}

#[test]
fn a_step_keeps_when_it_was_queued_across_its_retries() {
    // Given a paid order asked to ship (the booking's event has no time of its own)
    let mut s = paid(false);
    let paid_at = s.history.last().unwrap().1;
    when(&mut s, OrderCommand::Ship).unwrap();
    let id = s.pending("book_shipment").unwrap();
    // Then the booking is owed since the order was paid, and stays so when it fails
    assert_eq!(s.effects[&id].queued_at, paid_at);
    assert!(paid_at.0 > 0);
    let fail = OrderCommand::Fail {
        effect: id,
        error: "carrier down".into(),
        policy: POLICY,
    };
    when(&mut s, fail).unwrap();
    assert_eq!(s.effects[&id].queued_at, paid_at);
    assert!(s.effects[&id].not_before > paid_at);
}

#[test]
fn failing_effects_back_off_and_become_dead_letters_until_revived() {
    let mut s = paid(false);
    let id = s.pending("commit_stock").unwrap();
    for attempt in 1..=3 {
        let fail = OrderCommand::Fail {
            effect: id,
            error: "sku unavailable".into(),
            policy: POLICY,
        };
        when(&mut s, fail).unwrap();
        let e = &s.effects[&id];
        assert_eq!(e.attempts, attempt);
        assert_eq!(e.not_before.0, T0.0 + 100 * (1 << attempt));
        assert_eq!(e.dead, attempt == 3);
    }
    // A second driver's failure, reported once the step is a dead letter, changes nothing
    let late = OrderCommand::Fail {
        effect: id,
        error: "sku unavailable".into(),
        policy: POLICY,
    };
    assert_eq!(decide(&s, &late, T0), Ok(vec![]));
    when(&mut s, OrderCommand::Revive { effect: id }).unwrap();
    assert!(!s.effects[&id].dead);
    assert!(
        s.effects[&id].not_before <= T0,
        "a revived step is due at once"
    );
    let done = complete(&s, "commit_stock", Outcome::Done);
    when(&mut s, done).unwrap();
    assert_eq!(s.pending("commit_stock"), None);
    // A late second report of the same step changes nothing.
    let again = OrderCommand::Complete {
        effect: id,
        outcome: Outcome::Done,
    };
    assert_eq!(decide(&s, &again, T0), Ok(vec![]));
}

#[test]
fn a_failure_reported_after_another_driver_finished_the_step_changes_nothing() {
    // Given a paid order whose stock commit one driver finished
    let mut s = paid(false);
    let id = s.pending("commit_stock").unwrap();
    let done = complete(&s, "commit_stock", Outcome::Done);
    when(&mut s, done).unwrap();
    // When a second driver, which ran the same step and was refused (the SKU had forgotten
    // the settled reservation), reports its failure
    let fail = OrderCommand::Fail {
        effect: id,
        error: "commit stock: ReservationNotFound".into(),
        policy: POLICY,
    };
    // Then it is no error (the shopper's confirm answers the paid order, not 404)
    assert_eq!(decide(&s, &fail, T0), Ok(vec![]));
    assert_eq!(s.status, Some(OrderStatus::Paid));
}

#[test]
fn a_drop_order_starts_awaiting_payment_and_expires_like_any_other() {
    let drop = Placement {
        drop_id: Some(crate::domain::ids::DropId::parse("d1").unwrap()),
        from_cart: false,
        ..placement(false)
    };
    let mut s = given(&[OrderCommand::Place(Box::new(drop))]);
    assert_eq!(s.status, Some(OrderStatus::AwaitingPayment));
    assert!(
        actions(&s).is_empty(),
        "the purchase already reserved the units"
    );
    let expire = OrderCommand::Expire;
    let events = decide(&s, &expire, Timestamp(T0.0 + 600_000)).unwrap();
    for e in events {
        apply(&mut s, &e);
    }
    assert_eq!(s.status, Some(OrderStatus::Expired));
    assert!(actions(&s).contains(&"release_stock"));
}

#[test]
fn an_order_with_nothing_to_pay_is_paid_without_the_gateway() {
    // Given a placement whose coupon covers everything
    let mut p = placement(true);
    p.coupon.as_mut().unwrap().discount = 5000;
    p.discount = 5000;
    p.total = 0;
    let mut s = given(&[OrderCommand::Place(Box::new(p))]);
    // When its stock is reserved
    let c = complete(&s, "reserve_stock", Outcome::Reserved);
    when(&mut s, c).unwrap();
    // Then it is paid at once: stock committed, no payment, no expiry
    assert_eq!(s.status, Some(OrderStatus::Paid));
    assert!(s.payment.is_none() && s.expiry().is_none());
    assert_eq!(actions(&s), ["commit_stock", "notify"]);
    // And cancelling it refunds nothing through the gateway but restocks
    when(&mut s, OrderCommand::Cancel { by: user() }).unwrap();
    let refund = s.effects.values().find_map(|e| match &e.action {
        Action::RefundPayment { amount, .. } => Some(*amount),
        _ => None,
    });
    assert_eq!(refund, Some(0));
    assert!(actions(&s).contains(&"restock"));
}
