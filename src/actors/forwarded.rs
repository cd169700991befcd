//! The two ends of a forwarded ask on [`Entities`]: the sending node's (`ask_remote`,
//! `inspect_remote`, `tick_remote`: encode, hand to the [`Forward`], decode) and the owner's
//! (`serve_remote`: decode, ask the local entity, encode). See `remote.rs` for the protocol.

use crate::actors::entities::Entities;
use crate::actors::entity::{AskError, Entity, EntityKey, Inspection};
use crate::actors::message::EntityMsg;
use crate::actors::remote::{Answer, Forward, Op, decode, encode};

impl<E: Entity> Entities<E> {
    /// Asks the owner of `id` (another node) to run `command`.
    pub(super) async fn ask_remote(
        &self,
        remote: &dyn Forward,
        id: &E::Id,
        command: E::Command,
    ) -> Result<E::Reply, AskError<E::Rejection>> {
        let bytes = encode(&command).map_err(|why| {
            tracing::error!(kind = E::KIND, %why, "a command does not encode");
            AskError::Unavailable
        })?;
        match remote
            .forward(E::KIND, id.to_string(), Op::Ask(bytes))
            .await
        {
            Answer::Replied(bytes) => match decode::<Result<E::Reply, E::Rejection>>(&bytes) {
                Ok(outcome) => outcome.map_err(AskError::Rejected),
                Err(why) => Err(Answer::Malformed(format!("reply: {why}")).failure()),
            },
            Answer::Local => match self.enter(id) {
                Some(_admitted) => {
                    self.call(id, |reply| EntityMsg::Ask(command.clone(), reply))
                        .await?
                }
                None => Err(AskError::Unavailable),
            },
            other => Err(other.failure()),
        }
    }

    /// The inspection of an entity another node owns.
    pub(super) async fn inspect_remote(
        &self,
        remote: &dyn Forward,
        id: &E::Id,
    ) -> Result<Inspection, AskError<E::Rejection>> {
        match remote.forward(E::KIND, id.to_string(), Op::Inspect).await {
            Answer::Inspected {
                seq,
                snapshot_seq,
                state,
            } => Ok(Inspection {
                kind: E::KIND,
                id: id.to_string(),
                seq,
                snapshot_seq,
                state: serde_json::from_str(&state).map_err(|_| AskError::Unavailable)?,
            }),
            Answer::Local => match self.enter(id) {
                Some(_admitted) => self.inspect_local(id).await,
                None => Err(AskError::Unavailable),
            },
            other => Err(other.failure()),
        }
    }

    /// Makes an entity another node owns act on its deadline.
    pub(super) async fn tick_remote(
        &self,
        remote: &dyn Forward,
        id: &E::Id,
    ) -> Result<(), AskError<E::Rejection>> {
        match remote.forward(E::KIND, id.to_string(), Op::Tick).await {
            Answer::Ticked => Ok(()),
            Answer::Local => match self.enter(id) {
                Some(_admitted) => self.tick_local(id).await,
                None => Err(AskError::Unavailable),
            },
            other => Err(other.failure()),
        }
    }

    /// Answers an op forwarded by another node, from the local entity: `NotOwner` when this
    /// node does not hold the entity's shard (never forwarded again).
    pub(super) async fn serve_remote(&self, raw_id: &str, op: Op) -> Answer {
        let Some(id) = E::Id::parse_key(raw_id) else {
            return Answer::Malformed(format!("{}: bad key {raw_id:?}", E::KIND));
        };
        // Held until answered: a shard leaving this node waits for the asks it admitted.
        let Some(_admitted) = self.enter(&id) else {
            return Answer::NotOwner;
        };
        match op {
            Op::Ask(bytes) => {
                let command = match decode::<E::Command>(&bytes) {
                    Ok(command) => command,
                    Err(why) => return Answer::Malformed(format!("{} command: {why}", E::KIND)),
                };
                match self.ask_local(&id, command).await {
                    Ok(reply) => encode(&Ok::<E::Reply, ()>(reply)).map_or_else(
                        |why| Answer::Malformed(format!("reply: {why}")),
                        Answer::Replied,
                    ),
                    Err(e) => Answer::from_failure(e),
                }
            }
            Op::Inspect => match self.inspect_local(&id).await {
                Ok(i) => Answer::Inspected {
                    seq: i.seq,
                    snapshot_seq: i.snapshot_seq,
                    state: i.state.to_string(),
                },
                Err(e) => Answer::from_failure(e),
            },
            Op::Tick => match self.tick_local(&id).await {
                Ok(()) => Answer::Ticked,
                Err(e) => Answer::from_failure(e),
            },
        }
    }
}
