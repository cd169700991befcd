//! The cart entity: one actor per shopper (keyed by user id). Rules are in `domain::cart`.

use crate::actors::entity::Entity;
use crate::domain::cart::{self, CartCommand, CartError, CartEvent, CartState};
use crate::domain::ids::UserId;
use crate::domain::time::Timestamp;

pub struct Cart;

impl Entity for Cart {
    const KIND: &'static str = "cart";
    type Id = UserId;
    type State = CartState;
    type Command = CartCommand;
    type Event = CartEvent;
    type Rejection = CartError;
    type Reply = CartState;
    type View = ();

    fn decide(s: &CartState, c: &CartCommand, now: Timestamp) -> Result<Vec<CartEvent>, CartError> {
        cart::decide(s, c, now)
    }

    fn apply(s: &mut CartState, e: &CartEvent) {
        cart::apply(s, e);
    }

    fn reply(_: &UserId, s: &CartState, _: &CartCommand) -> CartState {
        s.clone()
    }
}
