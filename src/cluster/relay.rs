//! The EventBus across nodes: what a node announces (`EventBus::announce`: chat messages,
//! notifications, logouts) reaches the subscribers of every other node through one Redis
//! pub/sub channel, [`CHANNEL`].
//!
//! Coalesced at the source: the sender takes what is queued (up to [`BATCH`] messages) into
//! one `PUBLISH`, so a burst costs a few Redis messages, and each message crosses Redis once
//! whatever the number of subscribers — the fan-out to sockets happens on each node. A node
//! skips its own batches (it published them locally already). A batch that does not decode
//! is logged and dropped, never a panic. The relay is best effort, like the bus it extends: a
//! message published while a node's subscription is down is missed there (what it reports is
//! durable and can be read back over HTTP); the subscription reconnects by itself.

use crate::events::{EventBus, Message, Relayed};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The Redis channel every node publishes its batches on and listens to.
pub const CHANNEL: &str = "bus";
/// The most messages in one `PUBLISH`.
pub const BATCH: usize = 256;
/// Messages waiting for the sender before new ones are dropped (the publisher never waits).
const QUEUE: usize = 16_384;
/// The batch format's version: a node ignores batches of a version it does not know.
const VERSION: u8 = 1;

/// One `PUBLISH`: messages of one node, in the order announced.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Batch {
    v: u8,
    /// The sending process (its holder id), so it can skip its own batches.
    from: String,
    /// `(topic, message text)`.
    items: Vec<(String, String)>,
}

/// Relays `bus` to and from the other nodes until `shutdown`. `me` names this process (its
/// holder id). Subscribes before it returns, so nothing announced after is missed here.
pub async fn start(
    bus: &EventBus,
    client: &redis::Client,
    redis: ConnectionManager,
    me: String,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pubsub = subscribe(client).await?;
    let (tx, rx) = mpsc::channel(QUEUE);
    bus.relay_to(tx);
    tokio::spawn(send(rx, redis, me.clone(), shutdown.clone()));
    tokio::spawn(receive(client.clone(), pubsub, bus.clone(), me, shutdown));
    Ok(())
}

async fn subscribe(client: &redis::Client) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(CHANNEL).await?;
    Ok(pubsub)
}

/// Sends what is queued, a batch per `PUBLISH`, until `shutdown`.
async fn send(
    mut rx: mpsc::Receiver<Relayed>,
    mut redis: ConnectionManager,
    me: String,
    shutdown: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            () = shutdown.cancelled() => return,
            next = rx.recv() => match next {
                Some(m) => m,
                None => return,
            },
        };
        let mut items = vec![first];
        while items.len() < BATCH {
            match rx.try_recv() {
                Ok(m) => items.push(m),
                Err(_) => break,
            }
        }
        let count = items.len();
        let payload = encode(&me, items);
        let sent: redis::RedisResult<()> = redis::cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(payload)
            .query_async(&mut redis)
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, count, "cannot relay messages to the other nodes");
        }
    }
}

/// Publishes the other nodes' batches on `bus` until `shutdown`, subscribing again (every
/// second) while Redis is away.
async fn receive(
    client: redis::Client,
    mut pubsub: redis::aio::PubSub,
    bus: EventBus,
    me: String,
    shutdown: CancellationToken,
) {
    use futures_util::StreamExt;
    loop {
        {
            let mut messages = pubsub.on_message();
            loop {
                let message = tokio::select! {
                    () = shutdown.cancelled() => return,
                    m = messages.next() => m,
                };
                let Some(message) = message else { break };
                match decode(message.get_payload_bytes()) {
                    Ok(batch) if batch.from == me => {}
                    Ok(batch) => {
                        for (topic, text) in batch.items {
                            bus.publish(&topic, Message::from(text));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "a relayed batch does not decode"),
                }
            }
        }
        tracing::warn!("the relay's subscription broke; subscribing again");
        pubsub = loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            match subscribe(&client).await {
                Ok(p) => break p,
                Err(e) => tracing::warn!(error = %e, "cannot subscribe to the relay"),
            }
        };
    }
}

fn encode(me: &str, items: Vec<Relayed>) -> Vec<u8> {
    let batch = Batch {
        v: VERSION,
        from: me.to_owned(),
        items: items
            .into_iter()
            .map(|(topic, message)| (topic, message.to_string()))
            .collect(),
    };
    serde_json::to_vec(&batch).unwrap_or_default()
}

fn decode(bytes: &[u8]) -> anyhow::Result<Batch> {
    let batch: Batch = serde_json::from_slice(bytes)?;
    anyhow::ensure!(batch.v == VERSION, "batch version {} unknown", batch.v);
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_batch_when_encoded_then_it_decodes_to_the_same_messages() {
        let items = vec![
            ("chat:r1".to_owned(), Message::from("{\"a\":1}")),
            ("user:u1".to_owned(), Message::from("x")),
        ];
        let batch = decode(&encode("n1-p", items)).unwrap();
        assert_eq!(batch.from, "n1-p");
        assert_eq!(
            batch.items,
            vec![
                ("chat:r1".to_owned(), "{\"a\":1}".to_owned()),
                ("user:u1".to_owned(), "x".to_owned())
            ]
        );
    }

    #[test]
    fn given_a_payload_that_is_not_a_batch_then_decoding_is_an_error() {
        assert!(decode(b"\xff\x00garbage").is_err());
        assert!(decode(br#"{"v":9,"from":"n","items":[]}"#).is_err());
        assert!(decode(br#"{"v":1,"from":"n","items":[[1,2]]}"#).is_err());
    }
}
