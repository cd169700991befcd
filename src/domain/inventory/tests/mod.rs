//! Given/when/then tests of the SKU rules, without any actor.

use super::*;
use crate::domain::drop::{DropError, DropId, DropSpec, DropStatus};
use crate::domain::ids::{OrderId, ProductId, UserId};
use crate::domain::placement::Placement;
use crate::domain::time::Timestamp;

mod drops;

const NOW: Timestamp = Timestamp(1_000_000);

fn order(s: &str) -> OrderId {
    OrderId::parse(s).unwrap()
}

fn user() -> UserId {
    UserId::parse("u1").unwrap()
}

fn reserve(o: &str, qty: u32) -> SkuCommand {
    SkuCommand::Reserve {
        order_id: order(o),
        user_id: user(),
        qty,
        expires_at: Timestamp(NOW.0 + 600_000),
    }
}

/// Given these events, when this command: the events decided (already applied to a copy).
fn given(events: &[SkuEvent]) -> SkuState {
    let mut s = SkuState::default();
    for e in events {
        apply(&mut s, e);
    }
    s
}

fn when(state: &SkuState, cmd: SkuCommand) -> Result<(Vec<SkuEvent>, SkuState), SkuError> {
    when_at(state, cmd, NOW)
}

/// `when`, at `at`.
fn when_at(
    state: &SkuState,
    cmd: SkuCommand,
    at: Timestamp,
) -> Result<(Vec<SkuEvent>, SkuState), SkuError> {
    let events = decide(state, &cmd, at)?;
    let mut after = state.clone();
    for e in &events {
        apply(&mut after, e);
    }
    Ok((events, after))
}

fn stocked(n: u64) -> SkuState {
    given(&[SkuEvent::StockSet { available: n }])
}

#[test]
fn reserve_takes_available_units() {
    let (events, after) = when(&stocked(5), reserve("o1", 2)).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!((after.available, after.reserved, after.sold), (3, 2, 0));
    assert_eq!(after.total(), 5);
}

#[test]
fn reserve_more_than_available_is_refused() {
    let err = when(&stocked(1), reserve("o1", 2)).unwrap_err();
    assert_eq!(
        err,
        SkuError::InsufficientStock {
            available: 1,
            requested: 2
        }
    );
}

#[test]
fn reserve_zero_or_huge_quantity_is_refused() {
    assert_eq!(
        when(&stocked(5), reserve("o1", 0)).unwrap_err(),
        SkuError::InvalidQuantity
    );
    assert_eq!(
        when(&stocked(5), reserve("o1", MAX_RESERVE_QTY + 1)).unwrap_err(),
        SkuError::InvalidQuantity
    );
}

#[test]
fn replayed_reserve_is_idempotent() {
    let (_, s) = when(&stocked(5), reserve("o1", 2)).unwrap();
    let (events, after) = when(&s, reserve("o1", 2)).unwrap();
    assert!(events.is_empty());
    assert_eq!(after.available, 3);
    assert_eq!(
        when(&s, reserve("o1", 3)).unwrap_err(),
        SkuError::ReservationConflict(order("o1"))
    );
}

#[test]
fn commit_moves_reserved_to_sold_once() {
    let (_, s) = when(&stocked(5), reserve("o1", 2)).unwrap();
    let (_, s) = when(
        &s,
        SkuCommand::Commit {
            order_id: order("o1"),
        },
    )
    .unwrap();
    assert_eq!((s.available, s.reserved, s.sold), (3, 0, 2));
    assert_eq!(
        s.reservation_of(&order("o1")).map(|r| r.status),
        Some(ReservationStatus::Sold)
    );
    let (again, s2) = when(
        &s,
        SkuCommand::Commit {
            order_id: order("o1"),
        },
    )
    .unwrap();
    assert!(again.is_empty());
    assert_eq!(s2, s);
    // a replayed reserve of a sold order is a replay, not a second sale
    let (events, _) = when(&s, reserve("o1", 2)).unwrap();
    assert!(events.is_empty());
}

#[test]
fn release_returns_units_and_is_idempotent() {
    let (_, s) = when(&stocked(5), reserve("o1", 2)).unwrap();
    let (_, s) = when(
        &s,
        SkuCommand::Release {
            order_id: order("o1"),
        },
    )
    .unwrap();
    assert_eq!((s.available, s.reserved, s.sold), (5, 0, 0));
    let (again, _) = when(
        &s,
        SkuCommand::Release {
            order_id: order("o1"),
        },
    )
    .unwrap();
    assert!(again.is_empty());
    assert_eq!(
        when(
            &s,
            SkuCommand::Commit {
                order_id: order("o1")
            }
        )
        .unwrap_err(),
        SkuError::ReservationReleased(order("o1"))
    );
    assert_eq!(
        when(&s, reserve("o1", 2)).unwrap_err(),
        SkuError::ReservationReleased(order("o1"))
    );
}

#[test]
fn sold_units_cannot_be_released() {
    let (_, s) = when(&stocked(5), reserve("o1", 2)).unwrap();
    let (_, s) = when(
        &s,
        SkuCommand::Commit {
            order_id: order("o1"),
        },
    )
    .unwrap();
    assert_eq!(
        when(
            &s,
            SkuCommand::Release {
                order_id: order("o1")
            }
        )
        .unwrap_err(),
        SkuError::AlreadySold(order("o1"))
    );
}

#[test]
fn unknown_orders_are_not_found() {
    assert_eq!(
        when(
            &stocked(5),
            SkuCommand::Commit {
                order_id: order("x")
            }
        )
        .unwrap_err(),
        SkuError::ReservationNotFound(order("x"))
    );
    assert_eq!(
        when(
            &stocked(5),
            SkuCommand::Release {
                order_id: order("x")
            }
        )
        .unwrap_err(),
        SkuError::ReservationNotFound(order("x"))
    );
}

#[test]
fn expiry_releases_only_due_reservations() {
    let s = given(&[
        SkuEvent::StockSet { available: 10 },
        SkuEvent::Reserved {
            order_id: order("due"),
            user_id: user(),
            qty: 3,
            expires_at: Timestamp(NOW.0 - 1),
        },
        SkuEvent::Reserved {
            order_id: order("later"),
            user_id: user(),
            qty: 4,
            expires_at: Timestamp(NOW.0 + 1),
        },
    ]);
    assert_eq!(s.next_expiry(), Some(Timestamp(NOW.0 - 1)));
    let (events, after) = when(&s, SkuCommand::ExpireDue).unwrap();
    assert_eq!(
        events,
        vec![SkuEvent::Released {
            order_id: order("due"),
            qty: 3,
            reason: ReleaseReason::Expired
        }]
    );
    assert_eq!((after.available, after.reserved), (6, 4));
    assert_eq!(after.next_expiry(), Some(Timestamp(NOW.0 + 1)));
    assert_eq!(
        when(
            &after,
            SkuCommand::Commit {
                order_id: order("due")
            }
        )
        .unwrap_err(),
        SkuError::ReservationReleased(order("due"))
    );
}

#[test]
fn a_hold_extended_for_a_capture_outlasts_it_and_then_lapses_as_any_other() {
    // Given a hold about to lapse, extended because its order's payment is being captured
    let extend = |o: &str, at_least: i64, until: i64| SkuCommand::Extend {
        order_id: order(o),
        at_least: Timestamp(NOW.0 + at_least),
        until: Timestamp(NOW.0 + until),
    };
    let s = given(&[
        SkuEvent::StockSet { available: 5 },
        SkuEvent::Reserved {
            order_id: order("paying"),
            user_id: user(),
            qty: 2,
            expires_at: Timestamp(NOW.0 + 1),
        },
    ]);
    let (events, s) = when(&s, extend("paying", 1_800_000, 3_600_000)).unwrap();
    assert_eq!(
        events,
        vec![SkuEvent::HoldExtended {
            order_id: order("paying"),
            expires_at: Timestamp(NOW.0 + 3_600_000)
        }]
    );
    // When the SKU's timer comes at the old expiry, then the hold stays; an extension it
    // already meets changes nothing
    assert_eq!(s.next_deadline(), Some(Timestamp(NOW.0 + 3_600_000)));
    let (none, _) = when_at(&s, SkuCommand::ExpireDue, Timestamp(NOW.0 + 1)).unwrap();
    assert_eq!((none, s.reserved), (vec![], 2));
    assert_eq!(
        when(&s, extend("paying", 1_000, 3_600_000)).unwrap().0,
        vec![]
    );
    // And it reads back with its new expiry in the index
    let bytes = rmp_serde::to_vec_named(&s).unwrap();
    let back: SkuState = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!((back.next_deadline(), &back), (s.next_deadline(), &s));
    // Then its order's commit sells the units, and an extension after that is a replay; had
    // the order never come back, the hold would have lapsed at its new expiry
    let commit = SkuCommand::Commit {
        order_id: order("paying"),
    };
    let (_, sold) = when(&s, commit).unwrap();
    assert_eq!((sold.available, sold.reserved, sold.sold), (3, 0, 2));
    assert_eq!(when(&sold, extend("paying", 1, 2)).unwrap().0, vec![]);
    let later = Timestamp(NOW.0 + 3_600_000);
    let (lapsed, _) = when_at(&s, SkuCommand::ExpireDue, later).unwrap();
    assert_eq!(lapsed.len(), 1, "lapses at the new expiry");
}

#[test]
fn a_hold_already_let_go_or_never_taken_cannot_be_extended() {
    // Given a hold that lapsed on the SKU's timer
    let s = given(&[
        SkuEvent::StockSet { available: 5 },
        SkuEvent::Reserved {
            order_id: order("late"),
            user_id: user(),
            qty: 1,
            expires_at: Timestamp(NOW.0 - 1),
        },
    ]);
    let (_, s) = when(&s, SkuCommand::ExpireDue).unwrap();
    // When its order's payment would be captured, then the extension is refused: the unit
    // may be someone else's now
    let extend = |o: &str| SkuCommand::Extend {
        order_id: order(o),
        at_least: NOW,
        until: NOW,
    };
    assert_eq!(
        when(&s, extend("late")).unwrap_err(),
        SkuError::ReservationReleased(order("late"))
    );
    assert_eq!(
        when(&s, extend("never")).unwrap_err(),
        SkuError::ReservationNotFound(order("never"))
    );
}

#[test]
fn set_and_adjust_stock_keep_reserved_and_sold() {
    let (_, s) = when(&stocked(5), reserve("o1", 2)).unwrap();
    let (_, s) = when(&s, SkuCommand::SetStock { available: 10 }).unwrap();
    assert_eq!((s.available, s.reserved), (10, 2));
    let (_, s) = when(&s, SkuCommand::AdjustStock { delta: -4 }).unwrap();
    assert_eq!(s.available, 6);
    assert_eq!(
        when(&s, SkuCommand::AdjustStock { delta: -7 }).unwrap_err(),
        SkuError::InsufficientStock {
            available: 6,
            requested: 7
        }
    );
    assert_eq!(
        when(
            &s,
            SkuCommand::SetStock {
                available: MAX_STOCK + 1
            }
        )
        .unwrap_err(),
        SkuError::StockOutOfRange
    );
    let (none, _) = when(&s, SkuCommand::SetStock { available: 6 }).unwrap();
    assert!(none.is_empty());
}

#[test]
fn a_stored_state_reads_back_with_its_expiry_index() {
    let (_, s) = when(&stocked(5), reserve("o1", 2)).unwrap();
    let bytes = rmp_serde::to_vec_named(&s).unwrap();
    let back: SkuState = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(back, s);
    assert_eq!(back.next_expiry(), s.next_expiry());
    assert!(back.next_expiry().is_some());
}

#[test]
fn a_sku_belongs_to_one_product_unless_its_owner_never_came_to_be() {
    let p = |s: &str| ProductId::parse(s).unwrap();
    let attach = |id: &str, replacing: Option<&str>| SkuCommand::Attach {
        product_id: p(id),
        replacing: replacing.map(p),
    };
    let (_, s) = when(&SkuState::default(), attach("a", None)).unwrap();
    assert_eq!(s.product, Some(p("a")));
    assert_eq!(when(&s, attach("a", None)).unwrap().0, vec![]);
    assert_eq!(
        when(&s, attach("b", None)).unwrap_err(),
        SkuError::AttachedElsewhere(p("a"))
    );
    assert_eq!(
        when(&s, attach("b", Some("x"))).unwrap_err(),
        SkuError::AttachedElsewhere(p("a"))
    );
    let (_, s) = when(&s, attach("b", Some("a"))).unwrap();
    assert_eq!(s.product, Some(p("b")));
}

#[test]
fn conservation_holds_over_any_sequence() {
    let mut s = stocked(20);
    let cmds = [
        reserve("a", 5),
        reserve("b", 7),
        reserve("c", 9),
        SkuCommand::Commit {
            order_id: order("a"),
        },
        SkuCommand::Release {
            order_id: order("b"),
        },
        reserve("d", 8),
        SkuCommand::ExpireDue,
    ];
    for c in cmds {
        if let Ok((_, after)) = when(&s, c) {
            s = after;
        }
        assert_eq!(s.total(), 20);
        assert_eq!(
            s.reserved,
            s.reservations
                .values()
                .map(|r| u64::from(r.qty))
                .sum::<u64>()
        );
    }
}

#[test]
fn restock_returns_sold_units_once_and_releases_open_reservations() {
    let restock = |o: &str, returned| SkuCommand::Restock {
        order_id: order(o),
        returned,
        drop: None,
        recall: None,
    };
    let (_, s) = when(&stocked(10), reserve("a", 3)).unwrap();
    let (_, s) = when(
        &s,
        SkuCommand::Commit {
            order_id: order("a"),
        },
    )
    .unwrap();
    let (_, s) = when(&s, restock("a", 2)).unwrap();
    assert_eq!((s.available, s.reserved, s.sold), (9, 0, 1));
    let (events, s) = when(&s, restock("a", 2)).unwrap();
    assert!(events.is_empty(), "a second restock is a replay");
    assert_eq!(
        s.reservation_of(&order("a"))
            .map(|r| (r.quantity, r.status)),
        Some((2, ReservationStatus::Returned))
    );
    // An order whose commit had not run yet: its reservation is released instead.
    let (_, s) = when(&s, reserve("b", 4)).unwrap();
    let (_, s) = when(&s, restock("b", 4)).unwrap();
    assert_eq!((s.available, s.reserved, s.sold), (9, 0, 1));
    assert_eq!(s.total(), 10);
    let (events, _) = when(&s, restock("never", 1)).unwrap();
    assert!(events.is_empty());
}

#[test]
fn returns_of_one_order_restock_up_to_what_it_bought_counted_over_all_of_them() {
    // Given an order that bought 3 units
    let restock = |returned| SkuCommand::Restock {
        order_id: order("a"),
        returned,
        drop: None,
        recall: None,
    };
    let (_, s) = when(&stocked(10), reserve("a", 3)).unwrap();
    let commit = SkuCommand::Commit {
        order_id: order("a"),
    };
    let (_, s) = when(&s, commit).unwrap();
    // When a first return brings 1 back, then a second brings the total to 2
    let (_, s) = when(&s, restock(1)).unwrap();
    let (events, s) = when(&s, restock(2)).unwrap();
    // Then each restocks only what is new, and a replay of either restocks nothing
    assert_eq!(
        events,
        vec![SkuEvent::Restocked {
            order_id: order("a"),
            qty: 1,
            drop: None,
            recall: None,
        }]
    );
    assert_eq!((s.available, s.sold), (9, 1));
    assert!(when(&s, restock(1)).unwrap().0.is_empty());
    assert!(when(&s, restock(2)).unwrap().0.is_empty());
    // And never more than it bought
    let (_, s) = when(&s, restock(99)).unwrap();
    assert_eq!((s.available, s.sold, s.total()), (10, 0, 10));
}

fn sold(o: &str, qty: u32) -> SkuState {
    let (_, s) = when(&stocked(10), reserve(o, qty)).unwrap();
    let commit = SkuCommand::Commit { order_id: order(o) };
    when(&s, commit).unwrap().1
}

fn forget(o: &str, recorded: Recorded) -> SkuCommand {
    SkuCommand::ForgetSettled {
        orders: vec![(order(o), recorded)],
    }
}

#[test]
fn a_settlement_the_order_recorded_is_forgotten_and_a_note_overtaken_by_a_restock_is_not() {
    // Given an order that bought 3 units
    let s = sold("a", 3);
    // When the order notes it recorded the sale
    let (events, after) = when(&s, forget("a", Recorded::Sold)).unwrap();
    // Then the SKU forgets it, and nothing else changes
    assert_eq!(
        events,
        vec![SkuEvent::SettledForgotten {
            order_ids: vec![order("a")]
        }]
    );
    assert!(after.settled.is_empty());
    assert_eq!((after.available, after.sold), (s.available, s.sold));
    // Given a restock since the sale, a late note of the sale forgets nothing
    let restock = SkuCommand::Restock {
        order_id: order("a"),
        returned: 1,
        drop: None,
        recall: None,
    };
    let (_, s) = when(&s, restock).unwrap();
    assert!(when(&s, forget("a", Recorded::Sold)).unwrap().0.is_empty());
    assert!(
        when(&s, forget("a", Recorded::Released))
            .unwrap()
            .0
            .is_empty()
    );
    // and the note of that restock does
    let note = forget("a", Recorded::Returned { returned: 1 });
    assert_eq!(when(&s, note).unwrap().0.len(), 1);
    // An open reservation is never forgotten
    let (_, s) = when(&stocked(10), reserve("b", 1)).unwrap();
    assert!(when(&s, forget("b", Recorded::Sold)).unwrap().0.is_empty());
}

#[test]
fn a_restock_of_a_forgotten_order_goes_by_the_order_s_recall_and_a_replay_brings_nothing_more() {
    // Given an order of 3 units, one of them back already, forgotten by the SKU
    let s = sold("a", 3);
    let restock = |returned, before| SkuCommand::Restock {
        order_id: order("a"),
        returned,
        drop: None,
        recall: Some(Recall { sold: 3, before }),
    };
    let (_, s) = when(&s, restock(1, 0)).unwrap();
    let (_, s) = when(&s, forget("a", Recorded::Returned { returned: 1 })).unwrap();
    assert!(s.settled.is_empty());
    assert_eq!((s.available, s.sold), (8, 2));
    // When a second return brings the count to 3
    let (events, s) = when(&s, restock(3, 1)).unwrap();
    // Then the two units not back yet come back
    assert_eq!(events.len(), 1);
    assert_eq!((s.available, s.sold, s.total()), (10, 0, 10));
    // And a replay of it (the order has not recorded it yet) brings nothing more
    assert!(when(&s, restock(3, 1)).unwrap().0.is_empty());
    // A forgotten order without a recall (a step queued before recalls) restocks nothing
    let s = sold("b", 2);
    let (_, s) = when(&s, forget("b", Recorded::Sold)).unwrap();
    let old = SkuCommand::Restock {
        order_id: order("b"),
        returned: 2,
        drop: None,
        recall: None,
    };
    assert!(when(&s, old).unwrap().0.is_empty());
}
