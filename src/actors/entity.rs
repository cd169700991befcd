//! What an entity kind must provide to run in the runtime, and how an ask can fail.

use crate::domain::ids::{CampaignId, EmailKey, OrderId, ProductId, RoomId, SkuId, UserId};
use crate::domain::time::Timestamp;
use serde::{Serialize, de::DeserializeOwned};
use std::fmt::{Debug, Display};
use std::hash::Hash;

/// The key of an entity; also the id part of its journal stream.
pub trait EntityKey: Clone + Eq + Hash + Display + Debug + Send + Sync + 'static {
    /// Parses a key read back from storage (reminders).
    fn parse_key(raw: &str) -> Option<Self>;
}

impl EntityKey for SkuId {
    fn parse_key(raw: &str) -> Option<Self> {
        SkuId::parse(raw).ok()
    }
}

impl EntityKey for OrderId {
    fn parse_key(raw: &str) -> Option<Self> {
        OrderId::parse(raw).ok()
    }
}

impl EntityKey for EmailKey {
    fn parse_key(raw: &str) -> Option<Self> {
        EmailKey::parse(raw).ok()
    }
}

impl EntityKey for CampaignId {
    fn parse_key(raw: &str) -> Option<Self> {
        CampaignId::parse(raw).ok()
    }
}

impl EntityKey for ProductId {
    fn parse_key(raw: &str) -> Option<Self> {
        ProductId::parse(raw).ok()
    }
}

impl EntityKey for RoomId {
    fn parse_key(raw: &str) -> Option<Self> {
        RoomId::parse(raw).ok()
    }
}

impl EntityKey for UserId {
    fn parse_key(raw: &str) -> Option<Self> {
        UserId::parse(raw).ok()
    }
}

/// An entity kind: its state, commands, events and the rules that join them.
pub trait Entity: Send + Sync + Sized + 'static {
    /// The kind's name: the first part of its journal keys and its metrics label.
    const KIND: &'static str;
    type Id: EntityKey;
    type State: Default + Serialize + DeserializeOwned + Send + 'static;
    /// Serializable so it can be carried to the node that owns the entity (cluster mode).
    type Command: Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static;
    type Event: Serialize + DeserializeOwned + Send + 'static;
    /// A business rejection, sent back in the reply (never a reason to stop the actor).
    type Rejection: Debug + Serialize + DeserializeOwned + Send + 'static;
    /// Serializable, like the command, to travel back from the owner.
    type Reply: Serialize + DeserializeOwned + Send + 'static;
    /// The public face of the state that read models use (`()` for kinds without one).
    type View: Clone + Serialize + DeserializeOwned + Send + Sync + 'static;

    /// Every rule: the events a command produces, or why it is refused.
    fn decide(
        state: &Self::State,
        command: &Self::Command,
        now: Timestamp,
    ) -> Result<Vec<Self::Event>, Self::Rejection>;

    /// Changes state by one event.
    fn apply(state: &mut Self::State, event: &Self::Event);

    /// Events to persist although the command is refused (a failed attempt counted, a token
    /// family revoked on reuse). The rejection is replied once they are durable.
    fn on_rejection(
        _state: &Self::State,
        _command: &Self::Command,
        _rejection: &Self::Rejection,
        _now: Timestamp,
    ) -> Vec<Self::Event> {
        Vec::new()
    }

    /// The reply to a command that succeeded, from the state after its events.
    fn reply(id: &Self::Id, state: &Self::State, command: &Self::Command) -> Self::Reply;

    /// Whether the kind keeps every entity's view in memory (`Entities::view`, `views`): for
    /// kinds with few entities that reads need at once (SKUs, products). A kind without keeps
    /// its views only on disk, read one at a time (`Entities::stored_view`).
    const KEEP_VIEWS: bool = true;

    /// When the entity next needs to act on its own (a reservation expiring). It is kept as the
    /// stream's reminder: the kind's reminder timer wakes the entity then, whether it is active
    /// or passivated, and runs [`Entity::on_deadline`].
    fn next_deadline(_state: &Self::State) -> Option<Timestamp> {
        None
    }

    /// The reminder stored for the entity: its deadline, or earlier when something outside it
    /// must act on it sooner (an order's step to retry). Defaults to [`Entity::next_deadline`].
    fn reminder(state: &Self::State) -> Option<Timestamp> {
        Self::next_deadline(state)
    }

    /// The command to run when the deadline is reached. It may run more than once for one
    /// deadline (reminders are delivered at least once), and early: it must decide by the
    /// clock, not by having been called.
    fn on_deadline() -> Option<Self::Command> {
        None
    }

    /// Moves out of the state what it no longer keeps in memory (a chat room's messages older
    /// than its recent window), as archive records `(key, value)` of its stream: written with
    /// the events that moved them out, read back with `Journal::archive_range`. Called after
    /// every change and after an activation's replay (whose records are written again, which
    /// is harmless: a record never changes). Must be deterministic.
    fn evict(_state: &mut Self::State) -> Vec<crate::persistence::Record> {
        Vec::new()
    }

    /// The index entries the entity's view puts it under (an order under its shopper's
    /// history); kept in the journal beside the view, in the same batch. Derived from the
    /// view alone, so entries can be rebuilt from stored views.
    fn index(_id: &Self::Id, _view: &Self::View) -> Vec<crate::persistence::IndexEntry> {
        Vec::new()
    }

    /// The view of `state`, stored with the events that led to it and published once durable;
    /// `None` when the kind has no view.
    fn view(_state: &Self::State) -> Option<Self::View> {
        None
    }

    /// A rough size of the state (entries). Snapshots are taken every `max(N, weight)` events so
    /// a large state is not re-serialised too often.
    fn weight(_state: &Self::State) -> usize {
        1
    }
}

/// Why an ask did not produce a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskError<R> {
    #[error("rejected: {0:?}")]
    Rejected(R),
    /// Too many asks in flight for this kind; retry later.
    #[error("overloaded")]
    Overloaded,
    /// No reply within the ask timeout; the command may or may not have taken effect.
    #[error("timed out")]
    Timeout,
    /// The entity could not be reached or could not persist (storage failure, shutting down,
    /// or it failed twice).
    #[error("unavailable")]
    Unavailable,
    /// No such entity (only for reads that must not create one).
    #[error("not found")]
    NotFound,
}

/// Why an entity gave no answer of its own: the runtime's failures, the same for every kind.
/// Services keep it as is in their error types; the HTTP edge maps it once (429 or 503 with
/// `Retry-After`, 404).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// Too many asks in flight for the kind; retry later.
    #[error("the engine is at capacity; retry shortly")]
    Overloaded,
    /// No reply within the ask timeout, or the node asked went away before it replied; the
    /// command may or may not have taken effect.
    #[error(
        "no reply (in time, or the node asked went away); the request may or may not have taken effect"
    )]
    Timeout,
    /// Storage failure, shutting down, or the entity failed twice.
    #[error("the entity is unavailable; retry shortly")]
    Unavailable,
    /// No such entity (only for reads that must not create one).
    #[error("no such entity")]
    NotFound,
}

impl<R> AskError<R> {
    /// The entity's rejection, or the runtime's failure.
    pub fn rejection(self) -> Result<R, RuntimeError> {
        match self {
            AskError::Rejected(r) => Ok(r),
            AskError::Overloaded => Err(RuntimeError::Overloaded),
            AskError::Timeout => Err(RuntimeError::Timeout),
            AskError::Unavailable => Err(RuntimeError::Unavailable),
            AskError::NotFound => Err(RuntimeError::NotFound),
        }
    }

    /// A service's error from this: the rejection converted, the runtime failure kept. Every
    /// service error type converts its asks' errors with this one rule.
    pub fn into_failure<F: From<RuntimeError>>(self) -> F
    where
        R: Into<F>,
    {
        match self.rejection() {
            Ok(rejection) => rejection.into(),
            Err(runtime) => runtime.into(),
        }
    }
}

/// An entity's state as the admin endpoint shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub kind: &'static str,
    pub id: String,
    /// The sequence number of the last event applied.
    pub seq: u64,
    /// The sequence number the newest snapshot covers.
    pub snapshot_seq: u64,
    pub state: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use crate::domain::drop::DropError;
    use crate::domain::ids::{CouponId, OrderId};
    use crate::domain::inventory::{SkuCommand, SkuError};
    use crate::domain::order::OrderError;
    use crate::domain::user::keys::{KeyCommand, KeyError};
    use crate::domain::user::wallet::{WalletCommand, WalletError};
    use crate::domain::user::{UserCommand, UserError};
    use crate::persistence::codec::{decode_snapshot, encode_snapshot};
    use serde::{Serialize, de::DeserializeOwned};
    use std::fmt::Debug;

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: T) {
        let bytes = encode_snapshot(&value).unwrap();
        assert_eq!(decode_snapshot::<T>(&bytes).unwrap(), value);
    }

    /// Commands, replies and rejections travel to the entity's owner in a cluster: they
    /// survive the codec, texts included.
    #[test]
    fn commands_and_rejections_survive_the_codec() {
        let order = OrderId::parse("o1").unwrap();
        round_trip(SkuCommand::Commit {
            order_id: order.clone(),
        });
        round_trip(SkuError::Drop(DropError::Invalid(
            "price must be positive".into(),
        )));
        round_trip(UserCommand::Wallet(WalletCommand::Reserve {
            coupon_id: CouponId::parse("c.1").unwrap(),
            order_id: order,
        }));
        round_trip(UserError::Wallet(WalletError::NotAvailable(
            "already used".into(),
        )));
        round_trip(OrderError::NotReturnable(
            "an item is not in the order".into(),
        ));
        round_trip(UserCommand::Keys(KeyCommand::Use {
            slot: "confirm:K".into(),
            order_id: "o1".into(),
            taken_by: "r1".into(),
        }));
        round_trip(UserError::Keys(KeyError::Reused));
    }
}
