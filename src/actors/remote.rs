//! Asks for entities another node owns (cluster mode). The runtime does not know how nodes
//! talk: it hands a [`Forward`] the kind, the key and an [`Op`] whose command is already
//! encoded, and takes back an [`Answer`]. `cluster::forward` carries them to the owner, where
//! [`EntityKind::serve`](crate::actors::EntityKind) answers from the local entity.
//!
//! Payloads are MessagePack (`rmp-serde`, as the journal): a command, reply or rejection that
//! does not decode is an `Answer::Malformed`/`AskError::Unavailable`, never a panic.

use crate::actors::entity::AskError;
pub use crate::persistence::fences::Admission;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// What is asked of a remote entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// A command, MessagePack-encoded (`E::Command`).
    Ask(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The entity's inspection (admin).
    Inspect,
    /// Act on the entity's deadline now.
    Tick,
}

/// The owner's answer, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// `Result<E::Reply, E::Rejection>`, MessagePack-encoded: the command's outcome.
    Replied(#[serde(with = "serde_bytes")] Vec<u8>),
    /// An inspection: sequence numbers and the state as JSON text.
    Inspected {
        seq: u64,
        snapshot_seq: u64,
        state: String,
    },
    Ticked,
    /// This node holds the shard now, under a good fence (the map was stale): ask locally.
    Local,
    /// The receiving node does not hold the entity's shard.
    NotOwner,
    NotFound,
    Overloaded,
    /// No reply in time: the command may or may not have taken effect.
    Timeout,
    Unavailable,
    /// The request could not be decoded (version, kind, key or command): a bug or a node of
    /// another version, never retried.
    Malformed(String),
}

impl Answer {
    /// The runtime failure an answer without a reply stands for.
    pub fn failure<R>(self) -> AskError<R> {
        match self {
            Answer::NotFound => AskError::NotFound,
            Answer::Overloaded => AskError::Overloaded,
            Answer::Timeout => AskError::Timeout,
            Answer::Malformed(why) => {
                tracing::error!(%why, "a forwarded ask was refused as malformed");
                AskError::Unavailable
            }
            _ => AskError::Unavailable,
        }
    }

    /// The answer that carries a runtime failure (or a rejection) back.
    pub fn from_failure<R: Serialize>(e: AskError<R>) -> Answer {
        match e {
            AskError::Rejected(r) => encode(&Err::<(), R>(r)).map_or_else(
                |why| Answer::Malformed(format!("rejection: {why}")),
                Answer::Replied,
            ),
            AskError::Overloaded => Answer::Overloaded,
            AskError::Timeout => Answer::Timeout,
            AskError::Unavailable => Answer::Unavailable,
            AskError::NotFound => Answer::NotFound,
        }
    }
}

/// Carries an op to the node that owns the entity's shard (retrying a stale shard map within
/// a budget) and brings back its answer. `Answer::Local` when this node holds the shard now
/// (its fence is good).
pub trait Forward: Send + Sync {
    fn forward(&self, kind: &'static str, key: String, op: Op) -> BoxFuture<'_, Answer>;

    /// Admits an ask for the entity here, when this node serves its shard now: held while the
    /// ask runs, so a shard leaving this node waits for it (`persistence::fences`). `None`:
    /// forward it.
    fn enter(&self, kind: &'static str, key: &str) -> Option<Admission>;
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    rmp_serde::to_vec_named(value).map_err(|e| e.to_string())
}

pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_an_answer_when_encoded_then_it_decodes_the_same() {
        for answer in [
            Answer::Replied(vec![1, 2, 3]),
            Answer::Inspected {
                seq: 4,
                snapshot_seq: 2,
                state: "{}".into(),
            },
            Answer::NotOwner,
            Answer::Malformed("why".into()),
        ] {
            let bytes = encode(&answer).unwrap();
            assert_eq!(decode::<Answer>(&bytes).unwrap(), answer);
        }
    }

    #[test]
    fn given_garbage_when_decoded_then_it_is_an_error_not_a_panic() {
        assert!(decode::<Answer>(&[0xc1, 0xff, 0x00]).is_err());
        assert!(decode::<Op>(b"").is_err());
    }
}
