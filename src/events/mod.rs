//! The EventBus: topics (`drop:{id}`, `order:{id}`, `user:{id}`, …) to subscribers, in memory.
//! A message is JSON text serialised once and shared (`Arc<str>`), so a fan-out to thousands of
//! sockets copies a pointer, not the message. Each topic is a bounded broadcast channel: a
//! subscriber that falls behind loses the oldest messages (and learns how many), the publisher
//! never waits. Topics without subscribers cost nothing: publishing to them is a map lookup.

pub mod feeds;

use dashmap::DashMap;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Messages a topic keeps for a slow subscriber before it starts losing the oldest.
const TOPIC_CAPACITY: usize = 64;

pub type Message = Arc<str>;

#[derive(Clone, Default)]
pub struct EventBus {
    topics: Arc<DashMap<String, broadcast::Sender<Message>>>,
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
