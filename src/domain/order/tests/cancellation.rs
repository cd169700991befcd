//! Cancelling a paid order whose shipment is booked: the carrier is asked first (`shipping.rs`).

use super::*;

/// A paid order whose shipment `T1` is booked.
fn preparing() -> OrderState {
    let mut s = paid(false);
    s.effects.clear();
    book(&mut s);
    s
}

/// Ships `s` and books its shipment `T1` with the carrier.
fn book(s: &mut OrderState) {
    when(s, OrderCommand::Ship).unwrap();
    let booked = Outcome::ShipmentBooked {
        carrier: "sandbox".into(),
        tracking_number: "T1".into(),
    };
    let c = complete(s, "book_shipment", booked);
    when(s, c).unwrap();
}

#[test]
fn cancelling_a_preparing_order_calls_the_shipment_off_before_the_refund() {
    // Given a paid order whose shipment is booked (preparing)
    let mut s = preparing();
    s.effects.clear();
    // When it is cancelled
    when(&mut s, OrderCommand::Cancel { by: user() }).unwrap();
    // Then only the carrier is told: nothing goes back while it may still ship
    assert_eq!(s.status, Some(OrderStatus::Cancelled));
    assert_eq!(actions(&s), ["cancel_shipment", "notify"]);
    // When the carrier has called the parcel off, the money and units go back
    let c = complete(&s, "cancel_shipment", Outcome::Done);
    when(&mut s, c).unwrap();
    assert_eq!(actions(&s), ["notify", "refund_payment", "restock"]);
}

#[test]
fn a_cancellation_the_carrier_refuses_having_picked_the_parcel_up_is_withdrawn() {
    // Given a paid order whose shipment is booked, cancelled in the moment the carrier picks
    // it up, with the carrier's "on its way" arriving while the call-off is asked
    let mut s = preparing();
    when(&mut s, OrderCommand::Cancel { by: user() }).unwrap();
    s.effects
        .retain(|_, e| e.action.name() == "cancel_shipment");
    let track = |status| OrderCommand::TrackShipment {
        tracking_number: "T1".into(),
        status,
        at: T0,
    };
    when(&mut s, track(ShipmentStatus::Shipping)).unwrap();
    assert_eq!(s.status, Some(OrderStatus::Cancelled));
    // When the carrier refuses the call-off
    let c = complete(&s, "cancel_shipment", Outcome::ShipmentUnderWay);
    when(&mut s, c).unwrap();
    // Then the order ships after all, nothing is refunded or restocked, and the buyer is told
    assert_eq!(s.status, Some(OrderStatus::Shipped));
    assert_eq!(actions(&s), ["notify"]);
    assert_eq!(s.payment.as_ref().unwrap().refunded, 0);
    assert_eq!(
        when(&mut s, OrderCommand::Cancel { by: user() }),
        Err(OrderError::NotCancellable)
    );
    // And once delivered it may be returned, for the whole payment
    s.effects.clear();
    when(&mut s, track(ShipmentStatus::Delivered)).unwrap();
    assert_eq!(s.status, Some(OrderStatus::Delivered));
    let back = OrderCommand::RequestReturn {
        key: None,
        fingerprint: None,
        by: user(),
        kind: ReturnKind::Return,
        reason: "changed my mind".into(),
        items: vec![],
    };
    when(&mut s, back).unwrap();
    assert_eq!(s.returns[0].refund_amount, 5000);
}

#[test]
fn an_order_once_delivered_is_not_cancelled_even_while_an_exchange_ships() {
    // Given a delivered order whose exchange is booked (preparing again)
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
    let booked = Outcome::ShipmentBooked {
        carrier: "sandbox".into(),
        tracking_number: "T2".into(),
    };
    let c = complete(&s, "book_shipment", booked);
    when(&mut s, c).unwrap();
    assert_eq!(s.status, Some(OrderStatus::Preparing));
    // When it is cancelled, Then it is refused: nothing is refunded for goods kept
    let cancel = OrderCommand::Cancel { by: user() };
    assert_eq!(when(&mut s, cancel), Err(OrderError::NotCancellable));
}

#[test]
fn a_refund_that_meets_money_refunded_at_the_gateway_counts_it_and_refunds_the_rest_apart() {
    // Given a paid order of 5,000, cancelled, of which 2,000 was refunded at the gateway's
    // console without the engine
    let mut s = paid(false);
    s.effects.clear();
    when(&mut s, OrderCommand::Cancel { by: user() }).unwrap();
    let first = s.pending("refund_payment").unwrap();
    // When its refund is refused, the gateway holding only 3,000
    let c = complete(&s, "refund_payment", Outcome::HeldOnly { balance: 3000 });
    when(&mut s, c).unwrap();
    // Then the 2,000 counts as refunded at the gateway, and the 3,000 is asked by a step of
    // its own (its own refund key), not by a retry of the refused one
    assert_eq!(s.payment.as_ref().unwrap().refunded, 2000);
    let rest = s.pending("refund_payment").expect("the rest is refunded");
    assert!(!s.effects.contains_key(&first), "the refused step is done");
    assert!(matches!(
        s.effects[&rest].action,
        Action::RefundPayment { amount: 3000, .. }
    ));
    // When that refund goes through
    let c = complete(&s, "refund_payment", Outcome::Done);
    when(&mut s, c).unwrap();
    // Then the order counts all 5,000 refunded, and stays cancelled
    assert_eq!(s.payment.as_ref().unwrap().refunded, 5000);
    assert_eq!(s.status, Some(OrderStatus::Cancelled));
    assert!(s.pending("refund_payment").is_none());
}

#[test]
fn a_refund_that_meets_a_payment_refunded_in_full_at_the_gateway_asks_nothing_more() {
    // Given a paid order of 5,000, cancelled, the whole payment refunded at the console
    let mut s = paid(false);
    s.effects.clear();
    when(&mut s, OrderCommand::Cancel { by: user() }).unwrap();
    // When its refund is refused, the gateway holding nothing
    let c = complete(&s, "refund_payment", Outcome::HeldOnly { balance: 0 });
    when(&mut s, c).unwrap();
    // Then all 5,000 counts as refunded at the gateway and no refund is left to ask
    assert_eq!(s.payment.as_ref().unwrap().refunded, 5000);
    assert!(s.pending("refund_payment").is_none());
    assert_eq!(s.status, Some(OrderStatus::Cancelled));
}

#[test]
fn a_confirmation_whose_hold_was_let_go_fails_and_refunds_an_earlier_capture_at_once() {
    // Given a payment being confirmed
    let confirming = || {
        let mut s = reserved(true);
        let total = s.placement.as_ref().unwrap().total;
        when(&mut s, pay(total)).unwrap();
        s
    };
    let lapsed = |captured| OrderCommand::PaymentLapsed {
        payment_key: "pk1".into(),
        captured,
    };
    // When its hold is found let go and nothing was captured, then the payment fails without
    // a refund, and stock and coupon go back
    let mut s = confirming();
    when(&mut s, lapsed(None)).unwrap();
    assert_eq!(s.status, Some(OrderStatus::PaymentFailed));
    let p = s.payment.as_ref().unwrap();
    assert_eq!(p.reason.as_deref(), Some(RESERVATION_LAPSED));
    assert_eq!(actions(&s), ["release_stock"]);
    // When an earlier attempt had captured it, then the same record queues its refund
    let mut s = confirming();
    when(&mut s, lapsed(Some(T0))).unwrap();
    assert_eq!(s.status, Some(OrderStatus::PaymentFailed));
    assert!(s.payment.as_ref().unwrap().captured_late.is_some());
    assert_eq!(actions(&s), ["release_stock", "refund_payment"]);
    // And a report that comes again changes nothing
    assert_eq!(decide(&s, &lapsed(Some(T0)), T0), Ok(vec![]));
}

#[test]
fn a_paid_order_whose_hold_was_let_go_before_its_commit_is_cancelled_and_refunded() {
    // Given a paid order whose commit finds the hold let go (the units may be another's)
    let mut s = paid(true);
    let total = s.placement.as_ref().unwrap().total;
    let lost = complete(&s, "commit_stock", Outcome::StockLost);
    when(&mut s, lost).unwrap();
    // Then it is cancelled: the whole payment refunded, the coupon back, nothing committed
    assert_eq!(s.status, Some(OrderStatus::Cancelled));
    assert!(!actions(&s).contains(&"commit_stock"));
    assert_eq!(
        refund_of(&s),
        Some((total, CancelCause::StockLost.refund_reason()))
    );
    assert!(actions(&s).contains(&"restore_coupon"), "{:?}", actions(&s));
    // And the buyer is told why, not that they cancelled it
    assert!(notices(&s).contains(&CancelCause::StockLost.notice()));
    // But one already booked with the carrier is not cancelled by it (the goods may be on
    // their way): the step stays the operator's
    let mut s = paid(true);
    book(&mut s);
    let lost = complete(&s, "commit_stock", Outcome::StockLost);
    assert_eq!(when(&mut s, lost), Err(OrderError::NoSuchEffect));
}

#[test]
fn a_cancellation_says_who_cancelled_in_its_refund_and_notice() {
    // Given two paid orders
    let admin = Requester {
        user_id: UserId::parse("ops").unwrap(),
        admin: true,
    };
    for (who, cause) in [(user(), CancelCause::Customer), (admin, CancelCause::Store)] {
        let mut s = paid(true);
        let total = s.placement.as_ref().unwrap().total;
        // When the buyer, or an admin, cancels it
        when(&mut s, OrderCommand::Cancel { by: who }).unwrap();
        // Then the refund and the buyer's notice name who did
        assert_eq!(refund_of(&s), Some((total, cause.refund_reason())));
        assert!(notices(&s).contains(&cause.notice()), "{:?}", notices(&s));
    }
}

/// The pending refund's amount and reason.
fn refund_of(s: &OrderState) -> Option<(i64, &str)> {
    s.effects.values().find_map(|e| match &e.action {
        Action::RefundPayment { amount, reason } => Some((*amount, reason.as_str())),
        _ => None,
    })
}

/// The texts of the pending notices.
fn notices(s: &OrderState) -> Vec<&str> {
    s.effects
        .values()
        .filter_map(|e| match &e.action {
            Action::Notify { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}
