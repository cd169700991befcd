//! The entity runtime and the entities themselves.
//!
//! An entity kind implements [`Entity`] (pure `decide`/`apply` from `crate::domain`, plus the
//! types of its messages). The runtime, from the outside in:
//! - [`Entities<E>`] (`entities.rs`) is the typed handle the edges ask: it activates the
//!   entity's actor on first use (snapshot + journal tail), bounds in-flight asks, retries once
//!   when the actor died, and passivates idle entities. In a cluster it sends asks for entities
//!   of shards other nodes hold to their owner (`remote.rs`: the protocol and the `Forward`
//!   the cluster provides; `forwarded.rs`: both ends on `Entities`).
//! - `registry.rs`: which entities of the kind are active (their slots) and their durable views.
//! - [`reminders`]: the kind's reminder timer, which wakes entities whose deadline has come,
//!   active or passivated.
//! - `context.rs`: what an actor uses besides its state — journal, clock, snapshot policy,
//!   counters, view sink. A cluster swaps the journal here.
//! - `shell.rs`: the one actor every entity runs in: decide -> journal -> apply -> reply (once
//!   durable); `message.rs`: what it is sent; `supervisor.rs`: failures and counters.
//!
//! The other files are the entity kinds, each a thin binding of its domain rules.

pub mod campaign;
pub mod cart;
pub mod chat;
mod context;
mod create;
pub mod email;
mod entities;
mod entity;
mod forwarded;
mod message;
pub mod order;
pub mod product;
mod registry;
pub mod reminders;
pub mod remote;
mod shell;
pub mod sku;
mod supervisor;
pub mod trim;
pub mod user;
pub mod watchers;

pub use create::Created;
pub use entities::{Entities, EntityKind, Runtime, RuntimeConfig};
pub use entity::{AskError, Entity, EntityKey, Inspection, RuntimeError};
pub use message::SnapshotTally;
pub use supervisor::{KindStats, active_entities};
