//! A user's notification inbox: the newest [`MAX_INBOX`] notifications, newest last, each id
//! once (the outbox may deliver a notification twice after a crash).

use crate::domain::time::Timestamp;
use crate::domain::user::{UserEvent, UserState};
use serde::{Deserialize, Serialize};

/// Notifications kept per user; older ones drop off.
pub const MAX_INBOX: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub id: String,
    pub kind: String,
    pub text: String,
    pub at: Timestamp,
}

pub fn decide(s: &UserState, n: &Notification) -> Vec<UserEvent> {
    if s.status.is_none() || s.inbox.iter().any(|held| held.id == n.id) {
        return vec![];
    }
    vec![UserEvent::Notified(n.clone())]
}

pub fn apply(s: &mut UserState, n: &Notification) {
    s.inbox.push_back(n.clone());
    while s.inbox.len() > MAX_INBOX {
        s.inbox.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::user::AccountStatus;

    fn note(id: &str) -> Notification {
        Notification {
            id: id.into(),
            kind: "order_paid".into(),
            text: "paid".into(),
            at: Timestamp(1),
        }
    }

    #[test]
    fn a_notification_lands_once_and_the_inbox_is_bounded() {
        let mut s = UserState {
            status: Some(AccountStatus::Active),
            ..UserState::default()
        };
        for e in decide(&s, &note("n1")) {
            if let UserEvent::Notified(n) = e {
                apply(&mut s, &n);
            }
        }
        assert!(decide(&s, &note("n1")).is_empty());
        for i in 0..MAX_INBOX + 5 {
            apply(&mut s, &note(&format!("x{i}")));
        }
        assert_eq!(s.inbox.len(), MAX_INBOX);
        assert_eq!(s.inbox.back().map(|n| n.id.as_str()), Some("x204"));
    }
}
