//! The EventBus: topics (`drop:{id}`, `order:{id}`, `user:{id}`, …) to subscribers, in memory.
//! A message is JSON text serialised once and shared (`Arc<str>`), so a fan-out to thousands of
//! sockets copies a pointer, not the message. Each topic is a bounded broadcast channel: a
//! subscriber that falls behind loses the oldest messages (and learns how many), the publisher
//! never waits. Topics without subscribers cost nothing: publishing to them is a map lookup.
//!
//! In a cluster, what only one node produces (chat messages, notifications, logouts) is
//! [`EventBus::announce`]d: published here and handed to the relay (`cluster::relay`), which
//! carries it to the other nodes' buses over Redis pub/sub. Topics fed from durable views
//! (`drop:`, `order:`, `product:`) are [`EventBus::publish`]ed on each node from its own copy of
//! the views, so they cost Redis nothing more.

pub mod feeds;

use dashmap::DashMap;
use std::sync::{Arc, OnceLock};
use tokio::sync::{broadcast, mpsc};

/// Messages a topic keeps for a slow subscriber before it starts losing the oldest.
const TOPIC_CAPACITY: usize = 64;

pub type Message = Arc<str>;

/// A message for the other nodes: its topic and its text.
pub type Relayed = (String, Message);

#[derive(Clone, Default)]
pub struct EventBus {
    topics: Arc<DashMap<String, broadcast::Sender<Message>>>,
    /// Cluster mode: where announced messages go to reach the other nodes.
    relay: Arc<OnceLock<mpsc::Sender<Relayed>>>,
}

impl EventBus {
    /// Receives every message published on `topic` from now on.
    pub fn subscribe(&self, topic: &str) -> broadcast::Receiver<Message> {
        self.topics
            .entry(topic.to_owned())
            .or_insert_with(|| broadcast::channel(TOPIC_CAPACITY).0)
            .subscribe()
    }

    /// Sends `message` to the topic's subscribers; returns how many there were.
    pub fn publish(&self, topic: &str, message: Message) -> usize {
        let Some(sender) = self.topics.get(topic).map(|s| s.clone()) else {
            return 0;
        };
        match sender.send(message) {
            Ok(n) => n,
            Err(_) => {
                // The last subscriber left: forget the topic (unless someone just joined).
                self.topics.remove_if(topic, |_, s| s.receiver_count() == 0);
                0
            }
        }
    }

    /// Publishes on `topic` on this node and, in a cluster, on every other node (see the
    /// module doc): for messages only this node produces. Never waits: when the relay's queue
    /// is full the other nodes miss the message (the live edge is a hint; the state it reports
    /// is durable and read back over HTTP), which is logged.
    pub fn announce(&self, topic: &str, message: Message) -> usize {
        if let Some(relay) = self.relay.get()
            && relay.try_send((topic.to_owned(), message.clone())).is_err()
        {
            tracing::warn!(
                topic,
                "the relay to the other nodes is behind: a message is lost"
            );
        }
        self.publish(topic, message)
    }

    /// From now on, announced messages are also sent to `relay` (cluster mode; set once).
    pub fn relay_to(&self, relay: mpsc::Sender<Relayed>) {
        let _ = self.relay.set(relay);
    }

    /// Whether anyone listens on `topic` (a publisher may skip building the message).
    pub fn has_subscribers(&self, topic: &str) -> bool {
        self.topics.contains_key(topic)
    }

    /// How many subscribers `topic` has.
    pub fn receivers(&self, topic: &str) -> usize {
        self.topics.get(topic).map_or(0, |s| s.receiver_count())
    }

    /// Topics with at least one subscriber (for metrics).
    pub fn topics(&self) -> usize {
        self.topics.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_of_a_topic_get_what_is_published_there_only() {
        let bus = EventBus::default();
        let mut a = bus.subscribe("drop:1");
        let mut b = bus.subscribe("drop:2");
        assert_eq!(bus.publish("drop:1", "one".into()), 1);
        assert_eq!(bus.publish("nobody", "x".into()), 0);
        assert_eq!(&*a.recv().await.unwrap(), "one");
        assert!(b.try_recv().is_err());
        drop(a);
        assert_eq!(bus.publish("drop:1", "two".into()), 0);
        assert_eq!(bus.topics(), 1, "a topic without subscribers is forgotten");
    }
}
