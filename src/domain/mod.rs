//! Pure business rules, no IO. Each aggregate is a `decide(state, command, now) -> events` and
//! an `apply(state, event)`; the actor shells in `crate::actors` run them, the journal stores the
//! events. Everything here is unit-tested given/when/then without any actor or disk.

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
pub mod time;
pub mod user;
