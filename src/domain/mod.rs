//! Pure business rules, no IO. Each aggregate is a `decide(state, command, now) -> events` and
//! an `apply(state, event)`; the actor shells in `crate::actors` run them, the journal stores the
//! events. Everything here is unit-tested given/when/then without any actor or disk.
//!
//! Leaves that any aggregate may use and that use none: [`ids`], [`time`], [`sealed`] (personal
//! data as ciphertext), [`text`] (the form text is compared in), [`role`], [`placement`] (what an order is placed with, which a drop's
//! hold also keeps). An aggregate with several parts is a folder: [`inventory`], [`order`],
//! [`user`] (with its sub-aggregates: wishlist, wallet, inbox). The stored shape of every
//! event and state is the journal's format: change it only by adding optional fields
//! (`tests/api/compat.rs` reads data written by earlier shapes).

pub mod cart;
pub mod catalog;
pub mod chat;
pub mod coupon;
pub mod drop;
pub mod email_claim;
pub mod ids;
pub mod inventory;
pub mod order;
pub mod placement;
pub mod pricing;
pub mod role;
pub mod sealed;
pub mod text;
pub mod time;
pub mod user;
pub mod watchers;
