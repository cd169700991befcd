//! How fast one user may post and open rooms (section `[chat]` of `emporium.toml`): a flood of
//! messages reaches every member's socket and inbox (mentions), and every room is kept for
//! good, so both are limited per user, in Redis across a cluster (`crate::limits`). A support
//! room is not counted: there is one per order, and opening it again finds the same room.

use crate::domain::ids::UserId;
use crate::limits::RateLimit;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
pub struct ChatSettings {
    /// Messages one user may post a minute (REST and `chat.send` together); 0 turns the
    /// limit off.
    pub messages_per_minute: u32,
    /// Of those, how many may come at once.
    pub message_burst: u32,
    /// Rooms (not support rooms) one user may create an hour; 0 turns the limit off.
    pub rooms_per_hour: u32,
    /// Of those, how many may come at once.
    pub room_burst: u32,
}

/// The two limits; cloned handles share their counts.
#[derive(Clone)]
pub struct ChatLimits {
    pub messages: RateLimit<UserId>,
    pub rooms: RateLimit<UserId>,
}

impl ChatLimits {
    /// This node's limits; in a cluster, [`ChatLimits::shared`].
    pub fn new(s: &ChatSettings) -> Self {
        let minute = Duration::from_secs(60);
        Self {
            messages: RateLimit::new("chat", s.messages_per_minute, minute, s.message_burst),
            rooms: RateLimit::new("room", s.rooms_per_hour, minute * 60, s.room_burst),
        }
    }

    /// The same limits, counted across the cluster in `redis`.
    pub fn shared(self, redis: &redis::aio::ConnectionManager) -> Self {
        Self {
            messages: self.messages.shared(redis.clone()),
            rooms: self.rooms.shared(redis.clone()),
        }
    }

    /// Forgets users idle for a while.
    pub fn prune(&self) {
        self.messages.prune();
        self.rooms.prune();
    }
}
