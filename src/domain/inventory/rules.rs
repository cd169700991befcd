//! [`decide`] and [`apply`] of the SKU: each command and each event goes to the file that
//! owns its rule (`stock`, `reservations`, `drops`). Every arm is named, so a new command or
//! event does not compile until it is routed.

use crate::domain::inventory::messages::{SkuCommand, SkuError, SkuEvent};
use crate::domain::inventory::state::SkuState;
use crate::domain::inventory::{drops, reservations, stock};
use crate::domain::time::Timestamp;

/// Every rule of SKU stock: the events `cmd` leads to, or why it is refused.
pub fn decide(
    state: &SkuState,
    cmd: &SkuCommand,
    now: Timestamp,
) -> Result<Vec<SkuEvent>, SkuError> {
    match cmd {
        SkuCommand::SetStock { available } => stock::set(state, *available),
        SkuCommand::AdjustStock { delta } => stock::adjust(state, *delta),
        SkuCommand::Attach {
            product_id,
            replacing,
        } => stock::attach(state, product_id, replacing.as_ref()),
        SkuCommand::Reserve {
            order_id,
            user_id,
            qty,
            expires_at,
        } => reservations::reserve(state, order_id, user_id, *qty, *expires_at),
        SkuCommand::Extend {
            order_id,
            at_least,
            until,
        } => reservations::extend(state, order_id, *at_least, *until),
        SkuCommand::Commit { order_id } => reservations::commit(state, order_id),
        SkuCommand::Release { order_id } => reservations::release(state, order_id),
        SkuCommand::Restock {
            order_id,
            returned,
            drop,
            recall,
        } => reservations::restock(state, order_id, *returned, drop.as_ref(), *recall),
        SkuCommand::ExpireDue => Ok(reservations::expire(state, now)
            .chain(drops::transitions(state, now))
            .collect()),
        SkuCommand::CreateDrop { drop_id, spec } => drops::create(state, drop_id, spec),
        SkuCommand::Purchase(p) => drops::purchase(state, p, now),
        SkuCommand::OrdersWritten { order_ids } => Ok(drops::written(state, order_ids)),
        SkuCommand::ForgetSettled { orders } => Ok(reservations::forget(state, orders)),
        SkuCommand::Get | SkuCommand::HeldOrders => Ok(vec![]),
    }
}

/// Changes state by one event; no rule is checked here.
pub fn apply(state: &mut SkuState, event: &SkuEvent) {
    match event {
        SkuEvent::Attached { product_id } => stock::attached(state, product_id),
        SkuEvent::StockSet { available } => stock::set_applied(state, *available),
        SkuEvent::StockAdjusted { delta } => stock::adjusted(state, *delta),
        SkuEvent::Reserved {
            order_id,
            user_id,
            qty,
            expires_at,
        } => reservations::reserved(state, order_id, user_id, *qty, *expires_at),
        SkuEvent::HoldExtended {
            order_id,
            expires_at,
        } => reservations::extended(state, order_id, *expires_at),
        SkuEvent::Committed { order_id, qty } => reservations::committed(state, order_id, *qty),
        SkuEvent::Released {
            order_id,
            qty,
            reason,
        } => reservations::released(state, order_id, *qty, *reason),
        SkuEvent::Restocked {
            order_id,
            qty,
            drop,
            recall,
        } => reservations::restocked(state, order_id, *qty, drop.as_ref(), *recall),
        SkuEvent::DropCreated { drop_id, spec } => drops::created(state, drop_id, spec),
        SkuEvent::DropPurchased {
            drop_id,
            order_id,
            user_id,
            qty,
            expires_at,
            order,
        } => drops::purchased(
            state,
            drops::Purchased {
                drop_id,
                order_id,
                user_id,
                qty: *qty,
                expires_at: *expires_at,
                order,
            },
        ),
        SkuEvent::DropOpened { drop_id } => drops::opened(state, drop_id),
        SkuEvent::DropEnded { drop_id } => drops::ended(state, drop_id),
        SkuEvent::OrdersWritten { order_ids } => drops::orders_written(state, order_ids),
        SkuEvent::SettledForgotten { order_ids } => reservations::forgotten(state, order_ids),
    }
}
