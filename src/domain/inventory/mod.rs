//! Stock of one SKU: how many units are available, reserved (by order, until an expiry) and
//! sold, and the flash-sale drops set aside from it.
//!
//! Every rule lives in [`decide`]; [`apply`] only changes state. `available + reserved + sold`
//! (plus the units left in drops) changes only through `SetStock`/`AdjustStock`, so a
//! reservation can never create or lose a unit. Commands that name an order are idempotent:
//! replaying a `Reserve`, `Commit`, `Release` or `Purchase` the SKU has already carried out
//! yields no event. What became of each order is kept until the order has recorded it
//! (`ForgetSettled`), so the state holds open reservations and recent settlements only.
//!
//! The files: `state` (the SKU's state and views), `messages` (commands, events, errors),
//! `rules` (decide/apply, routing each to its owner), `stock` (levels and product binding),
//! `reservations` (reserve, commit, release, restock, expiry), `drops` (create, purchase,
//! open and close), `tests`.

mod drops;
mod messages;
mod reservations;
mod rules;
mod state;
mod stock;
#[cfg(test)]
mod tests;

pub use messages::{
    DropBuyer, DropPurchase, MAX_RESERVE_QTY, MAX_STOCK, Recall, Recorded, SkuCommand, SkuError,
    SkuEvent,
};
pub use rules::{apply, decide};
pub use state::{
    PurchaseReceipt, ReleaseReason, Reservation, ReservationStatus, ReservationView, Settlement,
    SkuState, StockView,
};
