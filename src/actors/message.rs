//! The messages an entity actor takes. Only the runtime sends them: edges ask through
//! [`crate::actors::Entities`].

use crate::actors::entity::{AskError, Entity, Inspection};
use ractor::RpcReplyPort;

/// Where the reply to an ask goes: the command's outcome once durable, or why it has none.
pub type Reply<E> = RpcReplyPort<Result<<E as Entity>::Reply, AskError<<E as Entity>::Rejection>>>;

pub enum EntityMsg<E: Entity> {
    Ask(E::Command, Reply<E>),
    Inspect(RpcReplyPort<Inspection>),
    /// The entity's deadline was reached (its reminder, or an explicit tick); the reply comes
    /// once the entity has acted on it (what it wrote submitted, not yet durable). A message
    /// an actor stopping drops unhandled drops the port too, so the sender can tell and wake
    /// a fresh activation instead.
    Deadline(RpcReplyPort<()>),
    /// The reminder timer fired the reminder stored for this time (and the kind's handler
    /// has run): a stale one is removed.
    Reminded(crate::domain::time::Timestamp),
    /// Stop (if still idle, or at once): what the entity wrote first made durable, and a
    /// snapshot written when many events came since the last one.
    Passivate(Passivation),
    /// Stop as for a passivation, and reply once what it wrote is durable.
    Shutdown(RpcReplyPort<()>),
    /// Snapshot now if events came since the last one; reply once durable (`true` when one
    /// was written).
    Snapshot(RpcReplyPort<bool>),
}

/// When a passivation request stops the entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passivation {
    /// Only if no ask came for the passivation period.
    Idle,
    /// Only if no ask came after this instant (the registry's milliseconds): the reminder
    /// timer's, for an entity it woke for its deadline alone. An ask that comes later keeps
    /// the entity; one queued before this request is handled before it.
    UnusedSince(u64),
}

/// Entity messages never leave the node (ractor_cluster is on for the whole build, so every
/// message type says whether it can): only the region actor is remotable.
impl<E: Entity> ractor::Message for EntityMsg<E> {}
