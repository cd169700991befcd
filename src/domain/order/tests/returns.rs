//! Returns and exchanges: what may come back, and what it refunds (`returns.rs`).

use super::*;
fn return_of(kind: ReturnKind, items: &[(&str, u32)]) -> OrderCommand {
    OrderCommand::RequestReturn {
        key: None,
        fingerprint: None,
        by: user(),
        kind,
        reason: "x".into(),
        items: items
            .iter()
            .map(|(sku, quantity)| ReturnItem {
                sku_id: SkuId::parse(*sku).unwrap(),
                quantity: *quantity,
            })
            .collect(),
    }
}

fn refund_done(s: &mut OrderState) {
    let c = complete(s, "refund_payment", Outcome::Done);
    when(s, c).unwrap();
}

#[test]
fn a_sku_listed_twice_is_summed_before_the_check_and_never_refunds_more_than_was_paid() {
    // Given a delivered order with one unit of b (3000)
    let mut s = delivered();
    s.effects.clear();
    // When b is listed twice, one unit each
    let twice = return_of(ReturnKind::Return, &[("b", 1), ("b", 1)]);
    // Then the request is refused as a whole, and nothing is queued
    assert!(matches!(
        when(&mut s, twice),
        Err(OrderError::NotReturnable(_))
    ));
    assert!(s.returns.is_empty() && s.effects.is_empty());
    // And a listing of a twice (2 units bought) is one item of 2
    when(&mut s, return_of(ReturnKind::Return, &[("a", 1), ("a", 1)])).unwrap();
    assert_eq!(s.returns[0].items.len(), 1);
    assert_eq!(s.returns[0].items[0].quantity, 2);
    assert_eq!(s.returns[0].refund_amount, 2000);
}

#[test]
fn a_return_of_no_units_is_a_malformed_request() {
    // Given a delivered order
    let mut s = delivered();
    s.effects.clear();
    // When an item of 0 units is asked back
    let zero = when(&mut s, return_of(ReturnKind::Return, &[("a", 0)]));
    // Then it is refused as malformed, and nothing is recorded
    assert_eq!(zero, Err(OrderError::InvalidQuantity));
    assert!(s.returns.is_empty() && s.effects.is_empty());
}

#[test]
fn while_an_exchange_waits_for_its_replacement_no_other_return_or_exchange_is_taken() {
    // Given a delivered order and an exchange of one unit of b, its shipment not yet booked
    let mut s = delivered();
    s.effects.clear();
    when(&mut s, return_of(ReturnKind::Exchange, &[("b", 1)])).unwrap();
    // When the same unit is returned for a refund, or exchanged again, before it is booked
    let refund = when(&mut s, return_of(ReturnKind::Return, &[("b", 1)]));
    let again = when(&mut s, return_of(ReturnKind::Exchange, &[("b", 1)]));
    // Then both are refused, and nothing more is queued than the exchange's shipment
    assert!(
        matches!(refund, Err(OrderError::NotReturnable(_))),
        "{refund:?}"
    );
    assert!(
        matches!(again, Err(OrderError::NotReturnable(_))),
        "{again:?}"
    );
    assert_eq!(s.returns.len(), 1);
    assert_eq!(actions(&s), vec!["book_shipment"]);
    // And once the replacement is delivered, the unit the shopper holds may be returned
    book_then_deliver(&mut s, "T2");
    when(&mut s, return_of(ReturnKind::Return, &[("b", 1)])).unwrap();
    assert_eq!(s.returns[1].refund_amount, 3000);
}

#[test]
fn returns_over_different_lines_are_allowed_until_every_unit_is_back() {
    // Given a delivered order (a: 2 × 1000, b: 1 × 3000) and a first return refunded
    let mut s = delivered();
    s.effects.clear();
    when(&mut s, return_of(ReturnKind::Return, &[("a", 1)])).unwrap();
    refund_done(&mut s);
    assert_eq!(s.status, Some(OrderStatus::Refunded));
    s.effects.clear();
    // When the other items are returned
    when(&mut s, return_of(ReturnKind::Return, &[("b", 1), ("a", 1)])).unwrap();
    // Then the restock counts every unit back and the refund is the rest of the payment
    let restock = s.effects.values().find_map(|e| match &e.action {
        Action::Restock { items, .. } => Some(items.clone()),
        _ => None,
    });
    let a = SkuId::parse("a").unwrap();
    assert!(
        restock
            .unwrap()
            .iter()
            .any(|i| i.sku_id == a && i.quantity == 2),
        "a's restock counts both returns"
    );
    assert_eq!(s.returns[1].refund_amount, 4000);
    refund_done(&mut s);
    assert_eq!(s.payment.as_ref().unwrap().refunded, 5000);
    // And nothing is left to return
    let again = when(&mut s, return_of(ReturnKind::Return, &[]));
    assert!(matches!(again, Err(OrderError::NotReturnable(_))));
    let more = when(&mut s, return_of(ReturnKind::Return, &[("a", 1)]));
    assert!(matches!(more, Err(OrderError::NotReturnable(_))));
}

#[test]
fn partial_refunds_with_a_discount_add_up_to_exactly_what_was_paid() {
    // Given an order paid 4500 for 5000 of goods (a: 2 × 1000, b: 3000), delivered
    let mut s = paid(true);
    s.effects.clear();
    when(&mut s, OrderCommand::Ship).unwrap();
    book_then_deliver(&mut s, "T1");
    // When every unit comes back one at a time
    for sku in ["a", "b", "a"] {
        when(&mut s, return_of(ReturnKind::Return, &[(sku, 1)])).unwrap();
        refund_done(&mut s);
    }
    // Then each line refunded its share, and the last return the exact rest
    let refunds: Vec<i64> = s.returns.iter().map(|r| r.refund_amount).collect();
    assert_eq!(refunds, [900, 2700, 900]);
    assert_eq!(s.payment.as_ref().unwrap().refunded, 4500);
}

#[test]
fn a_product_coupons_discount_is_refunded_only_by_a_return_of_that_product() {
    // Given an order of a: 2 × 1000 and b: 3000, where a coupon for b's product made b free
    // (paid 2000), delivered
    let mut p = placement(true);
    p.coupon.as_mut().unwrap().discount = 3000;
    p.lines[1].discount = 3000;
    (p.discount, p.total) = (3000, 2000);
    let mut s = given(&[OrderCommand::Place(Box::new(p))]);
    let c = complete(&s, "reserve_stock", Outcome::Reserved);
    when(&mut s, c).unwrap();
    when(&mut s, pay(2000)).unwrap();
    let settle = OrderCommand::SettlePayment {
        payment_key: "pk1".into(),
        result: Ok(T0),
    };
    when(&mut s, settle).unwrap();
    s.effects.clear();
    when(&mut s, OrderCommand::Ship).unwrap();
    book_then_deliver(&mut s, "T1");
    // When the free b comes back, then it refunds nothing
    when(&mut s, return_of(ReturnKind::Return, &[("b", 1)])).unwrap();
    refund_done(&mut s);
    // And when one a comes back, then it refunds its full price, which the coupon never cut
    when(&mut s, return_of(ReturnKind::Return, &[("a", 1)])).unwrap();
    refund_done(&mut s);
    let refunds: Vec<i64> = s.returns.iter().map(|r| r.refund_amount).collect();
    assert_eq!(refunds, [0, 1000]);
}

#[test]
fn a_return_asked_again_with_its_key_is_the_same_return() {
    // Given a delivered order, and a return of one unit made with key k1 (its answer lost)
    let mut s = delivered();
    s.effects.clear();
    when(&mut s, keyed("k1", "f1")).unwrap();
    // When it comes again with the same key and request, then nothing new is returned or
    // refunded
    assert_eq!(decide(&s, &keyed("k1", "f1"), T0), Ok(vec![]));
    // But another key is another return
    when(&mut s, keyed("k2", "f1")).unwrap();
    assert_eq!(s.returns.len(), 2);
}

#[test]
fn a_return_key_sent_with_another_request_is_refused() {
    // Given a return made with key k1 for request f1 (its answer lost)
    let mut s = delivered();
    when(&mut s, keyed("k1", "f1")).unwrap();
    // When k1 comes with another request, then it is refused as a reused key
    assert_eq!(
        decide(&s, &keyed("k1", "f2"), T0),
        Err(OrderError::KeyReused)
    );
    // And a return stored before digests were kept (none) takes the key as a replay
    s.returns[0].fingerprint = None;
    assert_eq!(decide(&s, &keyed("k1", "f2"), T0), Ok(vec![]));
}

/// A return of one `a`, made with `key` by a request whose digest is `fingerprint`.
fn keyed(key: &str, fingerprint: &str) -> OrderCommand {
    match return_of(ReturnKind::Return, &[("a", 1)]) {
        OrderCommand::RequestReturn {
            by,
            kind,
            reason,
            items,
            ..
        } => OrderCommand::RequestReturn {
            by,
            kind,
            reason,
            items,
            key: Some(key.into()),
            fingerprint: Some(fingerprint.into()),
        },
        _ => unreachable!(),
    }
}
