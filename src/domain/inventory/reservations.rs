//! Reservations: units held for an order until it is paid (`Commit`: reserved -> sold),
//! cancelled (`Release`) or expired (the SKU's own timer), and returned after a sale
//! (`Restock`, to the drop that sold them if any). Every command names its order and is idempotent: what became of each order is
//! kept in `settled`, so a replay yields no event and a contradiction is refused, until the
//! order has recorded it (`forget`).
//!
//! Why forgetting is safe: an order's saga sends a step until the step is recorded done in
//! the order's own journal, and never after; so once the order tells the SKU it has recorded
//! a settlement, no replay of the commands that led to it can come. A drop purchase replayed
//! with the same key is answered by the written order before the SKU is asked. What may
//! still come is a later restock (a return, months on), and it carries the order's own
//! account of the sale ([`Recall`]): the units it bought and those back before it.
//!
//! One exception, harmless: while a shard changes owner, the old owner's request and the new
//! owner's dispatcher may drive one order for a moment, and the slower one may send a step
//! the other has just recorded. A commit or release then finds nothing
//! (`ReservationNotFound`); its driver reports the step failed, and the order ignores a
//! failure of a step no longer pending.

use crate::domain::ids::{OrderId, UserId};
use crate::domain::inventory::messages::{
    DropBuyer, MAX_RESERVE_QTY, Recall, Recorded, SkuError, SkuEvent,
};
use crate::domain::inventory::state::{ReleaseReason, Reservation, Settlement, SkuState};
use crate::domain::time::Timestamp;

pub(super) fn reserve(
    state: &SkuState,
    order_id: &OrderId,
    user_id: &UserId,
    qty: u32,
    expires_at: Timestamp,
) -> Result<Vec<SkuEvent>, SkuError> {
    if qty == 0 || qty > MAX_RESERVE_QTY {
        return Err(SkuError::InvalidQuantity);
    }
    if let Some(answer) = replay(state, order_id, qty, |held| held.qty == qty) {
        return answer;
    }
    if u64::from(qty) > state.available {
        return Err(SkuError::InsufficientStock {
            available: state.available,
            requested: u64::from(qty),
        });
    }
    Ok(vec![SkuEvent::Reserved {
        order_id: order_id.clone(),
        user_id: user_id.clone(),
        qty,
        expires_at,
    }])
}

/// The answer to a reservation the SKU has already seen for this order: the same one again
/// is a replay (no event), another is a conflict, a released one stays released. `None` for
/// an order the SKU has not seen.
pub(super) fn replay(
    state: &SkuState,
    order_id: &OrderId,
    qty: u32,
    same: impl Fn(&Reservation) -> bool,
) -> Option<Result<Vec<SkuEvent>, SkuError>> {
    if let Some(held) = state.reservations.get(order_id) {
        return Some(if same(held) {
            Ok(vec![])
        } else {
            Err(SkuError::ReservationConflict(order_id.clone()))
        });
    }
    match state.settled.get(order_id)? {
        Settlement::Sold { qty: sold } if *sold == qty => Some(Ok(vec![])),
        Settlement::Sold { .. } | Settlement::Returned { .. } => {
            Some(Err(SkuError::ReservationConflict(order_id.clone())))
        }
        Settlement::Released { .. } => Some(Err(SkuError::ReservationReleased(order_id.clone()))),
    }
}

/// A payment for the order is being captured: its hold outlasts it (see
/// [`SkuCommand::Extend`](crate::domain::inventory::SkuCommand::Extend)).
pub(super) fn extend(
    state: &SkuState,
    order_id: &OrderId,
    at_least: Timestamp,
    until: Timestamp,
) -> Result<Vec<SkuEvent>, SkuError> {
    match state.reservations.get(order_id) {
        Some(r) if r.expires_at >= at_least => Ok(vec![]),
        Some(_) => Ok(vec![SkuEvent::HoldExtended {
            order_id: order_id.clone(),
            expires_at: until.max(at_least),
        }]),
        None => toward_sale_unheld(state, order_id),
    }
}

pub(super) fn extended(state: &mut SkuState, order_id: &OrderId, expires_at: Timestamp) {
    state.move_expiry(order_id, expires_at);
}

/// A step toward the sale (an extension, the commit) for an order the SKU holds nothing for:
/// sold already is a replay (no event); released, its units may be someone else's; never
/// held, nothing to act on.
fn toward_sale_unheld(state: &SkuState, order_id: &OrderId) -> Result<Vec<SkuEvent>, SkuError> {
    match state.settled.get(order_id) {
        Some(Settlement::Sold { .. } | Settlement::Returned { .. }) => Ok(vec![]),
        Some(Settlement::Released { .. }) => Err(SkuError::ReservationReleased(order_id.clone())),
        None => Err(SkuError::ReservationNotFound(order_id.clone())),
    }
}

/// The order was paid: its reserved units become sold.
pub(super) fn commit(state: &SkuState, order_id: &OrderId) -> Result<Vec<SkuEvent>, SkuError> {
    match state.reservations.get(order_id) {
        Some(r) => Ok(vec![SkuEvent::Committed {
            order_id: order_id.clone(),
            qty: r.qty,
        }]),
        None => toward_sale_unheld(state, order_id),
    }
}

/// The order was cancelled: its reserved units go back.
pub(super) fn release(state: &SkuState, order_id: &OrderId) -> Result<Vec<SkuEvent>, SkuError> {
    match state.reservations.get(order_id) {
        Some(r) => Ok(vec![SkuEvent::Released {
            order_id: order_id.clone(),
            qty: r.qty,
            reason: ReleaseReason::Cancelled,
        }]),
        None => match state.settled.get(order_id) {
            Some(Settlement::Released { .. }) => Ok(vec![]),
            Some(Settlement::Sold { .. } | Settlement::Returned { .. }) => {
                Err(SkuError::AlreadySold(order_id.clone()))
            }
            None => Err(SkuError::ReservationNotFound(order_id.clone())),
        },
    }
}

/// The order's units come back (see [`SkuCommand::Restock`]): an open reservation is
/// released; sold units are returned until `returned` of them are back.
pub(super) fn restock(
    state: &SkuState,
    order_id: &OrderId,
    returned: u32,
    drop: Option<&DropBuyer>,
    recall: Option<Recall>,
) -> Result<Vec<SkuEvent>, SkuError> {
    if returned == 0 {
        return Err(SkuError::InvalidQuantity);
    }
    if let Some(r) = state.reservations.get(order_id) {
        return Ok(vec![SkuEvent::Released {
            order_id: order_id.clone(),
            qty: r.qty,
            reason: ReleaseReason::Cancelled,
        }]);
    }
    let (sold, back, recall) = match (state.settled.get(order_id), recall) {
        (Some(Settlement::Sold { qty }), _) => (*qty, 0, None),
        (Some(Settlement::Returned { qty, returned }), _) => (*qty, *returned, None),
        (Some(Settlement::Released { .. }), _) | (None, None) => return Ok(vec![]),
        // Forgotten: the order's account stands in for the record.
        (None, Some(r)) => (r.sold, r.before.min(r.sold), Some(r)),
    };
    let qty = returned.min(sold).saturating_sub(back);
    Ok(if qty == 0 {
        vec![]
    } else {
        vec![SkuEvent::Restocked {
            order_id: order_id.clone(),
            qty,
            // Units a drop sold go back to it while it runs (it must have sold them); once it
            // ended, to the shelf, where they can be sold again, counted off the drop's sales.
            drop: drop
                .filter(|d| {
                    let known = state.drops.get(&d.drop_id);
                    known.is_some_and(|x| x.sold >= qty)
                })
                .cloned(),
            recall,
        }]
    })
}

/// The orders of `told` whose settlement is still what the order recorded: forgotten.
pub(super) fn forget(state: &SkuState, told: &[(OrderId, Recorded)]) -> Vec<SkuEvent> {
    let order_ids: Vec<OrderId> = told
        .iter()
        .filter(|(id, recorded)| {
            state
                .settled
                .get(id)
                .is_some_and(|s| is_recorded(s, *recorded))
        })
        .map(|(id, _)| id.clone())
        .collect();
    if order_ids.is_empty() {
        return Vec::new();
    }
    vec![SkuEvent::SettledForgotten { order_ids }]
}

/// Whether the order's record matches the SKU's (a restock since makes them differ).
fn is_recorded(settlement: &Settlement, recorded: Recorded) -> bool {
    match (settlement, recorded) {
        (Settlement::Sold { .. }, Recorded::Sold)
        | (Settlement::Released { .. }, Recorded::Released) => true,
        (Settlement::Returned { qty, returned }, Recorded::Returned { returned: told }) => {
            *returned == told.min(*qty)
        }
        _ => false,
    }
}

pub(super) fn forgotten(state: &mut SkuState, order_ids: &[OrderId]) {
    for id in order_ids {
        state.settled.remove(id);
    }
}

/// Every reservation expired as of `now`, released.
pub(super) fn expire(state: &SkuState, now: Timestamp) -> impl Iterator<Item = SkuEvent> + '_ {
    state
        .expired_by(now)
        .map(|(order_id, r)| SkuEvent::Released {
            order_id: order_id.clone(),
            qty: r.qty,
            reason: ReleaseReason::Expired,
        })
}

pub(super) fn reserved(
    state: &mut SkuState,
    order_id: &OrderId,
    user_id: &UserId,
    qty: u32,
    expires_at: Timestamp,
) {
    state.available -= u64::from(qty);
    state.hold(
        order_id,
        Reservation {
            user_id: user_id.clone(),
            qty,
            expires_at,
            drop: None,
            order: None,
        },
    );
}

pub(super) fn committed(state: &mut SkuState, order_id: &OrderId, qty: u32) {
    if let Some(d) = state.drop_of(order_id) {
        d.sell(qty);
    }
    state.close_reservation(order_id);
    state.reserved -= u64::from(qty);
    state.sold += u64::from(qty);
    state
        .settled
        .insert(order_id.clone(), Settlement::Sold { qty });
}

pub(super) fn restocked(
    state: &mut SkuState,
    order_id: &OrderId,
    qty: u32,
    drop: Option<&DropBuyer>,
    recall: Option<Recall>,
) {
    state.sold -= u64::from(qty);
    let shelved = match drop.and_then(|d| Some((state.drops.get_mut(&d.drop_id)?, &d.user_id))) {
        Some((d, user)) => d.take_back(user, qty),
        None => qty,
    };
    state.available += u64::from(shelved);
    let settled = match state.settled.get(order_id) {
        Some(Settlement::Sold { qty: sold }) => Settlement::Returned {
            qty: *sold,
            returned: qty,
        },
        Some(Settlement::Returned {
            qty: sold,
            returned,
        }) => Settlement::Returned {
            qty: *sold,
            returned: returned + qty,
        },
        _ => match recall {
            Some(r) => Settlement::Returned {
                qty: r.sold,
                returned: r.before.min(r.sold) + qty,
            },
            None => Settlement::Returned { qty, returned: qty },
        },
    };
    state.settled.insert(order_id.clone(), settled);
}

pub(super) fn released(state: &mut SkuState, order_id: &OrderId, qty: u32, reason: ReleaseReason) {
    let user = state.reservations.get(order_id).map(|r| r.user_id.clone());
    let shelved = match (state.drop_of(order_id), user) {
        // Units of a drop go back to the drop while it runs, not to the shelf.
        (Some(d), Some(user)) => d.give_back(&user, qty),
        _ => qty,
    };
    state.available += u64::from(shelved);
    state.close_reservation(order_id);
    state.reserved -= u64::from(qty);
    state
        .settled
        .insert(order_id.clone(), Settlement::Released { qty, reason });
}
