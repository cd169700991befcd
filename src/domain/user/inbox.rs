//! A user's notification inbox: the newest [`MAX_INBOX`] notifications, newest last, each id
//! once (the outbox may deliver a notification twice after a crash). A sub-aggregate of the
//! user: its own rules and events, which the user records as its own.

use crate::domain::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Notifications kept per user; older ones drop off.
pub const MAX_INBOX: usize = 200;

/// One notification: its `kind` (`order_paid`, `chat_mention`, ...), an English `text`, and
/// what it is about, so that a client can link to it and word it in its own language.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: String,
    pub kind: String,
    pub text: String,
    pub at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_id: Option<String>,
    /// A refund's amount, in minor units of `currency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The room's name (a mention), the product's (a drop), the order's title (an order's
    /// notice: its first item's name, as `GET /orders` gives it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Which notice of its kind this is, where a kind has several: a cancellation's cause
    /// (`customer`, `store`, `stock_lost`, `gateway`), `cancel_refused` for an order shipped
    /// after all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Inbox {
    notifications: VecDeque<Notification>,
}

impl Inbox {
    /// Oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Notification> {
        self.notifications.iter()
    }

    pub fn len(&self) -> usize {
        self.notifications.len()
    }

    pub fn is_empty(&self) -> bool {
        self.notifications.is_empty()
    }
}

/// Stored in the user's journal as the user's event (`{"type": "notified", id, kind, ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InboxEvent {
    Notified(Notification),
}

/// Delivers `n` unless the inbox already holds its id. Never refuses.
pub fn decide(inbox: &Inbox, n: &Notification) -> Vec<InboxEvent> {
    if inbox.iter().any(|held| held.id == n.id) {
        return vec![];
    }
    vec![InboxEvent::Notified(n.clone())]
}

pub fn apply(inbox: &mut Inbox, event: &InboxEvent) {
    match event {
        InboxEvent::Notified(n) => {
            inbox.notifications.push_back(n.clone());
            while inbox.notifications.len() > MAX_INBOX {
                inbox.notifications.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(id: &str) -> Notification {
        Notification {
            id: id.into(),
            kind: "order_paid".into(),
            text: "paid".into(),
            at: Timestamp(1),
            ..Notification::default()
        }
    }

    #[test]
    fn a_notification_lands_once_and_the_inbox_is_bounded() {
        let mut inbox = Inbox::default();
        for e in decide(&inbox, &note("n1")) {
            apply(&mut inbox, &e);
        }
        assert_eq!(inbox.len(), 1);
        assert!(decide(&inbox, &note("n1")).is_empty());
        for i in 0..MAX_INBOX + 5 {
            apply(&mut inbox, &InboxEvent::Notified(note(&format!("x{i}"))));
        }
        assert_eq!(inbox.len(), MAX_INBOX);
        assert_eq!(
            inbox.iter().next_back().map(|n| n.id.as_str()),
            Some("x204")
        );
    }
}
