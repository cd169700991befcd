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
    /// Snapshot now if events came since the last one; reply once durable.
    Snapshot(RpcReplyPort<Snapshotted>),
}

/// What an entity asked for a snapshot did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshotted {
    /// One is durable now.
    Written,
    /// None was needed: no event since the last one.
    Current,
    /// The journal refused the write (storage away, the shard's lease lost), or no answer
    /// came in time.
    Failed,
}

/// What a node's entities asked for snapshots did, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotTally {
    pub written: usize,
    pub failed: usize,
}

impl SnapshotTally {
    pub fn add(&mut self, outcome: Snapshotted) {
        match outcome {
            Snapshotted::Written => self.written += 1,
            Snapshotted::Current => {}
            Snapshotted::Failed => self.failed += 1,
        }
    }
}

impl std::iter::Sum for SnapshotTally {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), |a, b| Self {
            written: a.written + b.written,
            failed: a.failed + b.failed,
        })
    }
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
