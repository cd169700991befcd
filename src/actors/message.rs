//! The messages an entity actor takes. Only the runtime sends them: edges ask through
//! [`crate::actors::Entities`].

use crate::actors::entity::{AskError, Entity, Inspection};
use ractor::RpcReplyPort;

/// Where the reply to an ask goes: the command's outcome once durable, or why it has none.
pub type Reply<E> = RpcReplyPort<Result<<E as Entity>::Reply, AskError<<E as Entity>::Rejection>>>;

pub enum EntityMsg<E: Entity> {
    Ask(E::Command, Reply<E>),
    Inspect(RpcReplyPort<Inspection>),
    /// The entity's deadline was reached (timer or explicit tick).
    Deadline,
    /// Stop if still idle: snapshot first.
    Passivate,
    /// Snapshot, reply once durable, stop.
    Shutdown(RpcReplyPort<()>),
    /// Snapshot now if events came since the last one; reply once durable (`true` when one
    /// was written).
    Snapshot(RpcReplyPort<bool>),
}

/// Entity messages never leave the node (ractor_cluster is on for the whole build, so every
/// message type says whether it can): only the region actor is remotable.
impl<E: Entity> ractor::Message for EntityMsg<E> {}
