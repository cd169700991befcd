//! The watchers entity: one actor per product keeps who wishlisted it (rules in
//! `domain::watchers`), for the "drop starting" notifications.

use crate::actors::entity::Entity;
use crate::domain::ids::ProductId;
use crate::domain::time::Timestamp;
use crate::domain::watchers::{self, WatchCommand, WatchError, WatchEvent, Watchers};

pub struct ProductWatchers;

impl Entity for ProductWatchers {
    const KIND: &'static str = "watchers";
    type Id = ProductId;
    type State = Watchers;
    type Command = WatchCommand;
    type Event = WatchEvent;
    type Rejection = WatchError;
    type Reply = Watchers;
    type View = ();

    fn decide(s: &Watchers, c: &WatchCommand, _: Timestamp) -> Result<Vec<WatchEvent>, WatchError> {
        watchers::decide(s, c)
    }

    fn apply(s: &mut Watchers, e: &WatchEvent) {
        watchers::apply(s, e);
    }

    /// The watchers for `Get`; nothing (empty) otherwise.
    fn reply(_: &ProductId, s: &Watchers, c: &WatchCommand) -> Watchers {
        match c {
            WatchCommand::Get => s.clone(),
            _ => Watchers::default(),
        }
    }

    fn weight(s: &Watchers) -> usize {
        s.users.len()
    }
}
