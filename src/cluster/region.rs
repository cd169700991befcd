//! The region: the one remotable actor of a node (ARCHITECTURE.md, "Forwarding"). Other nodes
//! send it asks for entities whose shard this node holds, as the bytes of a versioned
//! [`Envelope`]; it answers each from the local entity, off its own mailbox, with the bytes of
//! a [`Reply`]. Entity actors are never remotable (ractor_cluster would otherwise advertise
//! every one of them to every peer).
//!
//! Every region joins the process group `emporium.region.<node>`, which ractor_cluster keeps
//! in sync between connected nodes: a sender finds the owner's region there.
//!
//! A payload that does not decode — garbage, another envelope version, an unknown kind, a bad
//! key or command — is answered `Answer::Malformed`, never a panic (ractor's own
//! `BytesConvertable` decoders may panic by contract, so the envelope is decoded here).

use crate::actors::EntityKind;
use crate::actors::remote::{self, Answer, Op};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// The envelope format this build speaks; a node refuses another (`Malformed`), so a rolling
/// upgrade that changes it must keep answering the old one first.
pub const ENVELOPE_VERSION: u16 = 1;

/// An ask for one entity, as it crosses between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub v: u16,
    pub kind: String,
    pub key: String,
    pub op: Op,
}

/// The answer to an [`Envelope`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub v: u16,
    pub answer: Answer,
}

/// The process group of `node`'s region.
pub fn group(node: &str) -> String {
    format!("emporium.region.{node}")
}

#[derive(RactorClusterMessage)]
pub enum RegionMsg {
    /// An encoded [`Envelope`]; the reply is an encoded [`Reply`].
    #[rpc]
    Forward(Vec<u8>, RpcReplyPort<Vec<u8>>),
}

/// Every entity kind of the node, by name.
pub type Kinds = HashMap<&'static str, Arc<dyn EntityKind>>;

pub struct Region;

impl Actor for Region {
    type Msg = RegionMsg;
    type State = Arc<Kinds>;
    type Arguments = Arc<Kinds>;

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        kinds: Arc<Kinds>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(kinds)
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        message: Self::Msg,
        kinds: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let RegionMsg::Forward(bytes, reply) = message;
        let kinds = kinds.clone();
        // Each ask waits for its entity on a task of its own: the region never waits.
        tokio::spawn(async move {
            let answer = serve(&kinds, &bytes).await;
            let bytes = remote::encode(&Reply {
                v: ENVELOPE_VERSION,
                answer,
            })
            .unwrap_or_default();
            let _ = reply.send(bytes);
        });
        Ok(())
    }
}

/// Decodes an envelope and answers it from the local entity.
pub async fn serve(kinds: &Kinds, bytes: &[u8]) -> Answer {
    let envelope = match remote::decode::<Envelope>(bytes) {
        Ok(envelope) => envelope,
        Err(why) => return Answer::Malformed(format!("envelope: {why}")),
    };
    if envelope.v != ENVELOPE_VERSION {
        return Answer::Malformed(format!(
            "envelope v{} (this node speaks v{ENVELOPE_VERSION})",
            envelope.v
        ));
    }
    match kinds.get(envelope.kind.as_str()) {
        Some(kind) => kind.serve(&envelope.key, envelope.op).await,
        None => Answer::Malformed(format!("unknown entity kind {:?}", envelope.kind)),
    }
}

/// Starts the node's region and puts it in its process group.
pub async fn start(node: &str, kinds: Kinds) -> anyhow::Result<ActorRef<RegionMsg>> {
    let (region, _) = Actor::spawn(None, Region, Arc::new(kinds)).await?;
    ractor::pg::join(group(node), vec![region.get_cell()]);
    Ok(region)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn given_bytes_that_are_no_envelope_when_served_then_the_answer_is_malformed() {
        let kinds = Kinds::new();
        for bytes in [&b""[..], b"\xc1", b"\x93\x01\x02"] {
            assert!(matches!(serve(&kinds, bytes).await, Answer::Malformed(_)));
        }
    }

    #[tokio::test]
    async fn given_another_version_or_kind_when_served_then_the_answer_is_malformed() {
        let kinds = Kinds::new();
        let envelope = |v, kind: &str| {
            remote::encode(&Envelope {
                v,
                kind: kind.into(),
                key: "k".into(),
                op: Op::Inspect,
            })
            .unwrap()
        };
        let Answer::Malformed(why) = serve(&kinds, &envelope(2, "sku")).await else {
            panic!("another version was served");
        };
        assert!(why.contains("v2"), "{why}");
        let Answer::Malformed(why) = serve(&kinds, &envelope(1, "nope")).await else {
            panic!("an unknown kind was served");
        };
        assert!(why.contains("nope"), "{why}");
    }
}
