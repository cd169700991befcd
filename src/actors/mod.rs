//! The entity runtime and the entities themselves.
//!
//! An entity kind implements [`Entity`] (pure `decide`/`apply` from `crate::domain`, plus the
//! types of its messages). [`Entities<E>`] is the typed handle the edges ask: it activates the
//! entity's actor on first use (snapshot + journal tail), bounds in-flight asks, retries once
//! when the actor died, and passivates idle entities. [`shell`] is the one actor every entity
//! runs in: decide -> journal -> apply -> reply (once durable).

pub mod campaign;
pub mod cart;
pub mod chat;
pub mod email;
mod entities;
mod entity;
pub mod order;
pub mod product;
mod shell;
pub mod sku;
mod supervisor;
pub mod user;

pub use entities::{Entities, Runtime, RuntimeConfig};
pub use entity::{AskError, Entity, EntityKey, Inspection};
pub use supervisor::KindStats;
