//! Who watches a product: the shoppers who put it on their wishlist, kept by one entity per
//! product so that when a drop of it starts the engine knows whom to tell without reading
//! every shopper. The wishlist (the user's) stays the source of what a shopper sees; this is
//! the index kept beside it, updated after it (both idempotent, so a retry repairs a miss).

use crate::domain::ids::UserId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Watchers one product keeps at most.
pub const MAX_WATCHERS: usize = 1_000_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watchers {
    pub users: BTreeSet<UserId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WatchCommand {
    Watch(UserId),
    Unwatch(UserId),
    Get,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WatchEvent {
    Watched { user: UserId },
    Unwatched { user: UserId },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum WatchError {
    #[error("the product has {MAX_WATCHERS} watchers")]
    TooMany,
}

pub fn decide(s: &Watchers, c: &WatchCommand) -> Result<Vec<WatchEvent>, WatchError> {
    Ok(match c {
        WatchCommand::Watch(user) if s.users.contains(user) => vec![],
        WatchCommand::Watch(_) if s.users.len() >= MAX_WATCHERS => {
            return Err(WatchError::TooMany);
        }
        WatchCommand::Watch(user) => vec![WatchEvent::Watched { user: user.clone() }],
        WatchCommand::Unwatch(user) if s.users.contains(user) => {
            vec![WatchEvent::Unwatched { user: user.clone() }]
        }
        WatchCommand::Unwatch(_) | WatchCommand::Get => vec![],
    })
}

pub fn apply(s: &mut Watchers, e: &WatchEvent) {
    match e {
        WatchEvent::Watched { user } => {
            s.users.insert(user.clone());
        }
        WatchEvent::Unwatched { user } => {
            s.users.remove(user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watching_twice_or_unwatching_a_stranger_changes_nothing() {
        let u = UserId::parse("u1").unwrap();
        let mut s = Watchers::default();
        for e in decide(&s, &WatchCommand::Watch(u.clone())).unwrap() {
            apply(&mut s, &e);
        }
        assert_eq!(decide(&s, &WatchCommand::Watch(u.clone())), Ok(vec![]));
        let stranger = UserId::parse("u2").unwrap();
        assert_eq!(decide(&s, &WatchCommand::Unwatch(stranger)), Ok(vec![]));
        let gone = decide(&s, &WatchCommand::Unwatch(u.clone())).unwrap();
        assert_eq!(gone, vec![WatchEvent::Unwatched { user: u }]);
    }
}
