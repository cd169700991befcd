//! Drops on a SKU: creating one sets units aside from the shelf; a purchase checks the window,
//! the remaining count and the shopper's limit and holds the units in the same step, keeping
//! the order the purchase becomes with the hold; the SKU's timer opens and closes drops. The
//! rules of one drop's counters are `crate::domain::drop`'s.

use crate::domain::drop::{self, DropError, DropId, DropSpec, DropState};
use crate::domain::ids::{OrderId, UserId};
use crate::domain::inventory::messages::{DropPurchase, SkuError, SkuEvent};
use crate::domain::inventory::reservations::replay;
use crate::domain::inventory::state::{Reservation, SkuState};
use crate::domain::placement::Placement;
use crate::domain::time::Timestamp;

/// Sets `spec.quantity` available units aside for a new drop.
pub(super) fn create(
    state: &SkuState,
    drop_id: &DropId,
    spec: &DropSpec,
) -> Result<Vec<SkuEvent>, SkuError> {
    if state.drops.contains_key(drop_id) {
        return Err(DropError::Exists.into());
    }
    drop::validate(spec)?;
    if u64::from(spec.quantity) > state.available {
        return Err(SkuError::InsufficientStock {
            available: state.available,
            requested: u64::from(spec.quantity),
        });
    }
    Ok(vec![SkuEvent::DropCreated {
        drop_id: drop_id.clone(),
        spec: spec.clone(),
    }])
}

/// A shopper buys: window, stock and limit checked and the units held, or the replay of the
/// purchase this order already made.
pub(super) fn purchase(
    state: &SkuState,
    p: &DropPurchase,
    now: Timestamp,
) -> Result<Vec<SkuEvent>, SkuError> {
    let (drop_id, order_id, qty) = (&p.drop_id, &p.order_id, p.qty);
    let d = state.drops.get(drop_id).ok_or(DropError::NotFound)?;
    // A replay of a purchase this order already made (a retry with the same key).
    let same = |held: &Reservation| held.qty == qty && held.drop.as_ref() == Some(drop_id);
    if let Some(answer) = replay(state, order_id, qty, same) {
        return answer;
    }
    d.check_purchase(&p.user_id, qty, now)?;
    Ok(vec![SkuEvent::DropPurchased {
        drop_id: drop_id.clone(),
        order_id: order_id.clone(),
        user_id: p.user_id.clone(),
        qty,
        expires_at: p.expires_at,
        order: Some(p.order.clone()),
    }])
}

/// The drops to open and to close as of `now`.
pub(super) fn transitions(state: &SkuState, now: Timestamp) -> impl Iterator<Item = SkuEvent> + '_ {
    state.drops.iter().flat_map(move |(id, d)| {
        let drop_id = id.clone();
        let open = (!d.opened && d.spec.starts_at <= now).then(|| SkuEvent::DropOpened {
            drop_id: drop_id.clone(),
        });
        let end = (!d.ended && d.spec.ends_at.is_some_and(|end| end <= now))
            .then_some(SkuEvent::DropEnded { drop_id });
        open.into_iter().chain(end)
    })
}

pub(super) fn created(state: &mut SkuState, drop_id: &DropId, spec: &DropSpec) {
    state.available -= u64::from(spec.quantity);
    state
        .drops
        .insert(drop_id.clone(), DropState::new(spec.clone()));
}

/// The fields of a [`SkuEvent::DropPurchased`].
pub(super) struct Purchased<'a> {
    pub drop_id: &'a DropId,
    pub order_id: &'a OrderId,
    pub user_id: &'a UserId,
    pub qty: u32,
    pub expires_at: Timestamp,
    pub order: &'a Option<Box<Placement>>,
}

pub(super) fn purchased(state: &mut SkuState, p: Purchased<'_>) {
    if let Some(d) = state.drops.get_mut(p.drop_id) {
        d.take(p.user_id, p.qty);
    }
    state.hold(
        p.order_id,
        Reservation {
            user_id: p.user_id.clone(),
            qty: p.qty,
            expires_at: p.expires_at,
            drop: Some(p.drop_id.clone()),
            order: p.order.clone(),
        },
    );
}

/// The orders of `order_ids` whose holds still keep them: what `OrdersWritten` drops.
pub(super) fn written(state: &SkuState, order_ids: &[OrderId]) -> Vec<SkuEvent> {
    let kept: Vec<OrderId> = order_ids
        .iter()
        .filter(|id| {
            state
                .reservations
                .get(*id)
                .is_some_and(|r| r.order.is_some())
        })
        .cloned()
        .collect();
    if kept.is_empty() {
        return Vec::new();
    }
    vec![SkuEvent::OrdersWritten { order_ids: kept }]
}

pub(super) fn orders_written(state: &mut SkuState, order_ids: &[OrderId]) {
    for id in order_ids {
        state.let_order_go(id);
    }
}

pub(super) fn opened(state: &mut SkuState, drop_id: &DropId) {
    if let Some(d) = state.drops.get_mut(drop_id) {
        d.opened = true;
    }
}

/// The drop's window closed: its unsold units go back to the shelf, to be sold again.
pub(super) fn ended(state: &mut SkuState, drop_id: &DropId) {
    if let Some(d) = state.drops.get_mut(drop_id) {
        state.available += u64::from(d.end());
    }
}
