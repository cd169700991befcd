//! The user account entity: one actor per account serialises its verification attempts, logins
//! and token rotations. Rules are in `domain::user`.

use crate::actors::entity::Entity;
use crate::domain::ids::UserId;
use crate::domain::time::Timestamp;
use crate::domain::user::{self, UserCommand, UserError, UserEvent, UserState};

pub struct User;

/// The account after a command (the edge decides what of it to show).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Account {
    pub user_id: UserId,
    pub state: UserState,
}

impl Entity for User {
    const KIND: &'static str = "user";
    type Id = UserId;
    type State = UserState;
    type Command = UserCommand;
    type Event = UserEvent;
    type Rejection = UserError;
    type Reply = Account;
    type View = ();

    fn decide(s: &UserState, c: &UserCommand, now: Timestamp) -> Result<Vec<UserEvent>, UserError> {
        user::decide(s, c, now)
    }

    fn on_rejection(s: &UserState, c: &UserCommand, e: &UserError, _: Timestamp) -> Vec<UserEvent> {
        user::on_rejection(s, c, e)
    }

    fn apply(s: &mut UserState, e: &UserEvent) {
        user::apply(s, e);
    }

    fn reply(id: &UserId, s: &UserState, _: &UserCommand) -> Account {
        Account {
            user_id: id.clone(),
            state: s.clone(),
        }
    }
}
