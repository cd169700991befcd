//! The EventBus: topics (`drop:{id}`, `order:{id}`, `user:{id}`, …) to subscribers, in memory.
//! A message is JSON text serialised once and shared (`Arc<str>`), so a fan-out to thousands of
//! sockets copies a pointer, not the message. Each topic is a bounded broadcast channel: a
//! subscriber that falls behind loses the oldest messages (and learns how many), the publisher
//! never waits. Topics without subscribers cost nothing: publishing to them is a map lookup.
//! A staggered topic (`drop:`) spreads its subscribers over [`SLOTS`] channels that its
//! publisher reaches in turn.
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
/// Channels a staggered topic's subscribers are spread over (see [`EventBus::stagger`]).
pub const SLOTS: usize = 16;

pub type Message = Arc<str>;

/// A message for the other nodes: its topic and its text.
pub type Relayed = (String, Message);

/// One topic: a broadcast channel per slot (one, or [`SLOTS`] for a staggered topic).
type Channel = Arc<[broadcast::Sender<Message>]>;

#[derive(Clone, Default)]
pub struct EventBus {
    topics: Arc<DashMap<String, Channel>>,
    /// Cluster mode: where announced messages go to reach the other nodes.
    relay: Arc<OnceLock<mpsc::Sender<Relayed>>>,
    /// Topics starting with this are staggered.
    staggered: Arc<OnceLock<&'static str>>,
}

impl EventBus {
    /// Receives every message published on `topic` from now on (on a staggered topic, those
    /// published to every slot and to the slot it joins: the one with the fewest subscribers).
    pub fn subscribe(&self, topic: &str) -> broadcast::Receiver<Message> {
        // Subscribed while the entry is held: a publisher that finds no one may forget the
        // topic (`forget_if_unheard`), and a receiver made after that would hear nothing.
        let channel = self.topics.entry(topic.to_owned()).or_insert_with(|| {
            let slots = if self.staggered.get().is_some_and(|p| topic.starts_with(p)) {
                SLOTS
            } else {
                1
            };
            (0..slots)
                .map(|_| broadcast::channel(TOPIC_CAPACITY).0)
                .collect()
        });
        let slot = channel
            .iter()
            .min_by_key(|s| s.receiver_count())
            .expect("a topic has at least one slot");
        slot.subscribe()
    }

    /// From now on, the subscribers of topics starting with `prefix` are spread over
    /// [`SLOTS`] channels, so that a publisher can reach them a slot at a time
    /// ([`EventBus::publish_to_slot`]): a message to 20,000 sockets takes about a fifth of a
    /// second of the whole machine to write, and sent to all at once the last socket gets it
    /// that much later than the first. Set once, before anyone subscribes.
    pub fn stagger(&self, prefix: &'static str) {
        let _ = self.staggered.set(prefix);
    }

    /// How many slots `topic` has: 1, [`SLOTS`] if staggered, or 0 once the topic is
    /// forgotten (no subscriber was left when a message was published).
    pub fn slots(&self, topic: &str) -> usize {
        self.topics.get(topic).map_or(0, |c| c.len())
    }

    /// Sends `message` to the topic's subscribers (in every slot); returns how many there were.
    pub fn publish(&self, topic: &str, message: Message) -> usize {
        let Some(channel) = self.channel(topic) else {
            return 0;
        };
        let sent = channel
            .iter()
            .map(|s| s.send(message.clone()).unwrap_or(0))
            .sum();
        self.forget_if_unheard(topic, sent)
    }

    /// Sends `message` to the subscribers of every topic starting with `prefix` (a scan of
    /// every topic: for rare messages); returns how many there were.
    pub fn publish_prefixed(&self, prefix: &str, message: Message) -> usize {
        let topics: Vec<String> = self
            .topics
            .iter()
            .filter(|t| t.key().starts_with(prefix))
            .map(|t| t.key().clone())
            .collect();
        topics
            .iter()
            .map(|topic| self.publish(topic, message.clone()))
            .sum()
    }

    /// Sends `message` to the subscribers in one slot of `topic` (`slot` < [`Self::slots`]);
    /// returns how many there were.
    pub fn publish_to_slot(&self, topic: &str, slot: usize, message: Message) -> usize {
        let Some(channel) = self.channel(topic) else {
            return 0;
        };
        let sent = channel
            .get(slot)
            .map_or(0, |s| s.send(message).unwrap_or(0));
        self.forget_if_unheard(topic, sent)
    }

    fn channel(&self, topic: &str) -> Option<Channel> {
        self.topics.get(topic).map(|c| c.clone())
    }

    /// With no one to hear `topic`, forgets it (unless someone just joined).
    fn forget_if_unheard(&self, topic: &str, sent: usize) -> usize {
        if sent == 0 {
            self.topics
                .remove_if(topic, |_, c| c.iter().all(|s| s.receiver_count() == 0));
        }
        sent
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
        self.topics
            .get(topic)
            .map_or(0, |c| c.iter().map(|s| s.receiver_count()).sum())
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

    #[tokio::test]
    async fn a_prefixed_message_reaches_every_topic_with_the_prefix_and_no_other() {
        // Given the revocation topics of two users and another topic
        let bus = EventBus::default();
        let mut a = bus.subscribe("revoked:u1");
        let mut b = bus.subscribe("revoked:u2");
        let mut other = bus.subscribe("order:1");
        // When a message goes to every `revoked:` topic
        assert_eq!(bus.publish_prefixed("revoked:", "revoked".into()), 2);
        // Then both users hear it, the other topic does not
        assert_eq!(&*a.recv().await.unwrap(), "revoked");
        assert_eq!(&*b.recv().await.unwrap(), "revoked");
        assert!(other.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_staggered_topic_spreads_its_subscribers_over_slots_reached_one_at_a_time() {
        let bus = EventBus::default();
        bus.stagger("drop:");
        let mut subs: Vec<_> = (0..SLOTS * 2).map(|_| bus.subscribe("drop:1")).collect();
        let mut other = bus.subscribe("order:1");
        assert_eq!((bus.slots("drop:1"), bus.slots("order:1")), (SLOTS, 1));
        assert_eq!(bus.receivers("drop:1"), SLOTS * 2);
        for slot in 0..SLOTS {
            assert_eq!(
                bus.publish_to_slot("drop:1", slot, format!("s{slot}").into()),
                2
            );
        }
        let mut heard: Vec<String> = subs
            .iter_mut()
            .map(|s| s.try_recv().unwrap().to_string())
            .collect();
        heard.sort();
        heard.dedup();
        assert_eq!(
            heard.len(),
            SLOTS,
            "two subscribers in each slot, each hears its own"
        );
        assert!(subs.iter_mut().all(|s| s.try_recv().is_err()));
        assert_eq!(bus.publish("drop:1", "all".into()), SLOTS * 2);
        assert!(subs.iter_mut().all(|s| &*s.try_recv().unwrap() == "all"));
        assert_eq!(bus.publish("order:1", "o".into()), 1);
        assert_eq!(&*other.try_recv().unwrap(), "o");
        drop(subs);
        assert_eq!(bus.publish_to_slot("drop:1", 3, "x".into()), 0);
        assert_eq!(
            bus.slots("drop:1"),
            0,
            "forgotten once no slot has a subscriber"
        );
    }
}
