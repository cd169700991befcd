//! Given/when/then tests of the SKU's drops.

use super::*;

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
        drop_id: Some(drop_id()),
        ..Placement::example(u, o, NOW)
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
fn a_paid_drop_unit_that_comes_back_returns_to_its_drop_and_frees_the_allowance() {
    // Given a drop with a limit of 1 per shopper, and u1's purchase paid
    let s = with_drop(3, 1);
    let (_, s) = when(&s, buy("a", "u1", 1)).unwrap();
    let commit = SkuCommand::Commit {
        order_id: order("a"),
    };
    let (_, s) = when(&s, commit).unwrap();
    assert_eq!(drop_counts(&s), (2, 0, 1));
    // When the paid order is cancelled (its unit restocked, naming the drop)
    let restock = SkuCommand::Restock {
        order_id: order("a"),
        returned: 1,
        drop: Some(DropBuyer {
            drop_id: drop_id(),
            user_id: user(),
        }),
        recall: None,
    };
    let (_, s) = when(&s, restock.clone()).unwrap();
    // Then the unit is the drop's again, not the shelf's, and u1 may buy again
    assert_eq!(drop_counts(&s), (3, 0, 0));
    assert_eq!((s.available, s.sold, s.total()), (7, 0, 10));
    assert!(when(&s, buy("b", "u1", 1)).is_ok());
    // And a replay changes nothing
    assert!(when(&s, restock).unwrap().0.is_empty());
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

/// Given holds keeping their orders, when some are written, then those holds let their orders
/// go (the units stay held), only the others are left for a recovery, and telling again
/// changes nothing.
#[test]
fn a_hold_lets_its_order_go_once_the_order_is_written() {
    let s = with_drop(3, 5);
    let (_, s) = when(&s, buy("a", "u1", 1)).unwrap();
    let (_, s) = when(&s, buy("b", "u2", 1)).unwrap();
    let told = SkuCommand::OrdersWritten {
        order_ids: vec![order("a"), order("gone")],
    };
    let (events, s) = when(&s, told.clone()).unwrap();
    assert_eq!(
        events,
        vec![SkuEvent::OrdersWritten {
            order_ids: vec![order("a")]
        }]
    );
    assert!(s.reservations[&order("a")].order.is_none());
    assert_eq!(s.reserved, 2, "the units stay held");
    let left: Vec<OrderId> = s.receipts().into_iter().map(|r| r.order_id).collect();
    assert_eq!(left, vec![order("b")]);
    assert!(s.receipt(&order("a")).is_none());
    assert!(when(&s, told).unwrap().0.is_empty());
}

/// Given holds keeping their orders, when one lets its order go and another is settled, then
/// the view counts the one still keeping, and a snapshot read back counts the same.
#[test]
fn the_view_counts_the_holds_still_keeping_their_orders() {
    let s = with_drop(3, 5);
    let (_, s) = when(&s, buy("a", "u1", 1)).unwrap();
    let (_, s) = when(&s, buy("b", "u2", 1)).unwrap();
    let (_, s) = when(&s, buy("c", "u3", 1)).unwrap();
    assert_eq!(s.levels().keeping, Some(3));
    let told = SkuCommand::OrdersWritten {
        order_ids: vec![order("a")],
    };
    let (_, s) = when(&s, told).unwrap();
    let commit = SkuCommand::Commit {
        order_id: order("b"),
    };
    let (_, s) = when(&s, commit).unwrap();
    assert_eq!(s.levels().keeping, Some(1));
    let stored: SkuState = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
    assert_eq!(stored.levels().keeping, Some(1));
    assert_eq!(stored, s);
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

#[test]
fn a_unit_that_comes_back_after_its_drop_ended_goes_to_the_shelf() {
    // Given a paid drop unit, and the drop over
    let s = with_drop(3, 1);
    let (_, s) = when(&s, buy("a", "u1", 1)).unwrap();
    let commit = SkuCommand::Commit {
        order_id: order("a"),
    };
    let (_, s) = when(&s, commit).unwrap();
    let end = Timestamp(NOW.0 + 3_600_000);
    let (_, s) = when_at(&s, SkuCommand::ExpireDue, end).unwrap();
    // When it is returned
    let restock = SkuCommand::Restock {
        order_id: order("a"),
        returned: 1,
        drop: Some(DropBuyer {
            drop_id: drop_id(),
            user_id: user(),
        }),
        recall: None,
    };
    let (_, s) = when(&s, restock).unwrap();
    // Then it is on the shelf with the two the drop did not sell, where they can be sold again,
    // and the drop counts it sold no more: shelved with them
    assert_eq!((s.available, s.sold, s.total()), (10, 0, 10));
    let d = &s.drops[&drop_id()];
    assert_eq!((d.sold, d.reserved, d.remaining, d.shelved), (0, 0, 0, 3));
}

#[test]
fn a_drop_that_ends_gives_its_unsold_units_and_later_releases_to_the_shelf() {
    // Given a drop of 5 units out of 10, with one unit reserved past the drop's end and one sold
    let s = with_drop(5, 2);
    let mut held = buy("a", "u1", 1);
    if let SkuCommand::Purchase(p) = &mut held {
        p.expires_at = Timestamp(NOW.0 + 7_200_000);
    }
    let (_, s) = when(&s, held).unwrap();
    let (_, s) = when(&s, buy("b", "u2", 1)).unwrap();
    let commit = SkuCommand::Commit {
        order_id: order("b"),
    };
    let (_, s) = when(&s, commit).unwrap();
    assert_eq!((s.available, drop_counts(&s)), (5, (3, 1, 1)));
    // When its window closes
    let end = Timestamp(NOW.0 + 3_600_000);
    let (events, s) = when_at(&s, SkuCommand::ExpireDue, end).unwrap();
    assert!(events.contains(&SkuEvent::DropEnded { drop_id: drop_id() }));
    // Then the three unsold units are back on the shelf, the reservation still held
    assert_eq!((s.available, drop_counts(&s)), (8, (0, 1, 1)));
    assert_eq!(s.drops[&drop_id()].shelved, 3);
    // And when the reservation is released after the end, its unit goes to the shelf too
    let release = SkuCommand::Release {
        order_id: order("a"),
    };
    let (_, s) = when_at(&s, release, end).unwrap();
    let d = &s.drops[&drop_id()];
    assert_eq!((s.available, drop_counts(&s), d.shelved), (9, (0, 0, 1), 4));
    assert_eq!(
        d.sold + d.reserved + d.remaining + d.shelved,
        d.spec.quantity
    );
    assert_eq!(s.total(), 10);
    assert!(
        when(
            &s,
            SkuCommand::Reserve {
                order_id: order("c"),
                user_id: user(),
                qty: 9,
                expires_at: Timestamp(end.0 + 600_000),
            }
        )
        .is_ok(),
        "every unit not sold is for sale on the shelf"
    );
}

#[test]
fn a_drop_whose_window_is_over_is_refused_one_still_open_is_not() {
    // Given a drop that started two hours ago
    let spec = DropSpec {
        quantity: 1,
        price: 5000,
        starts_at: Timestamp(NOW.0 - 7_200_000),
        ends_at: Some(Timestamp(NOW.0 - 3_600_000)),
        per_user_limit: 1,
    };
    // When it ended an hour ago, Then it is refused
    let over = crate::domain::drop::check_not_over(&spec, NOW);
    assert!(matches!(over, Err(DropError::Invalid(_))));
    // And when it ends in an hour, or never, it is not
    let open = Timestamp(NOW.0 + 3_600_000);
    for ends_at in [Some(open), None] {
        let spec = DropSpec {
            ends_at,
            ..spec.clone()
        };
        assert_eq!(crate::domain::drop::check_not_over(&spec, NOW), Ok(()));
    }
}
