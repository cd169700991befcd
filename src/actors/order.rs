//! The order entity: one actor per order runs the rules of `domain::order`. Its journal is the
//! saga's outbox — pending effects are part of the state — and its view feeds the order
//! history, the admin listing and the dispatcher that carries effects out.

use crate::actors::entity::Entity;
use crate::domain::ids::{OrderId, UserId};
use crate::domain::order::{self, OrderCommand, OrderError, OrderEvent, OrderState, OrderStatus};
use crate::domain::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The order kind.
pub struct Order;

/// One pending step as read models see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEffect {
    pub id: u32,
    pub action: String,
    pub attempts: u32,
    pub dead: bool,
    pub last_error: Option<String>,
    pub not_before: Timestamp,
}

/// What the history, the admin listing and the dispatcher know of an order without asking it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    pub user_id: UserId,
    pub status: OrderStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub total: i64,
    pub currency: String,
    pub item_count: u32,
    pub title: String,
    /// When the order must act on its own (expiry of an unpaid order).
    pub deadline: Option<Timestamp>,
    pub effects: Vec<PendingEffect>,
}

impl Entity for Order {
    const KIND: &'static str = "order";
    type Id = OrderId;
    type State = OrderState;
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Rejection = OrderError;
    type Reply = OrderState;
    type View = OrderView;

    fn decide(
        state: &OrderState,
        command: &OrderCommand,
        now: Timestamp,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        order::rules::decide(state, command, now)
    }

    fn apply(state: &mut OrderState, event: &OrderEvent) {
        order::rules::apply(state, event);
    }

    fn on_rejection(
        state: &OrderState,
        command: &OrderCommand,
        rejection: &OrderError,
        now: Timestamp,
    ) -> Vec<OrderEvent> {
        order::rules::on_rejection(state, command, rejection, now)
    }

    fn reply(_: &OrderId, state: &OrderState, _: &OrderCommand) -> OrderState {
        state.clone()
    }

    fn next_deadline(state: &OrderState) -> Option<Timestamp> {
        state.expiry()
    }

    fn on_deadline() -> Option<OrderCommand> {
        Some(OrderCommand::Expire)
    }

    fn view(state: &OrderState) -> Option<OrderView> {
        let p = state.placement.as_ref()?;
        Some(OrderView {
            user_id: p.user_id.clone(),
            status: state.status?,
            created_at: p.created_at,
            updated_at: state.history.last().map_or(p.created_at, |(_, at)| *at),
            total: p.total,
            currency: p.currency.clone(),
            item_count: p.lines.iter().map(|l| l.quantity).sum(),
            title: p.lines.first().map(|l| l.name.clone()).unwrap_or_default(),
            deadline: state.expiry(),
            effects: state
                .effects
                .iter()
                .map(|(id, e)| PendingEffect {
                    id: *id,
                    action: e.action.name().to_owned(),
                    attempts: e.attempts,
                    dead: e.dead,
                    last_error: e.last_error.clone(),
                    not_before: e.not_before,
                })
                .collect(),
        })
    }

    fn weight(state: &OrderState) -> usize {
        state.history.len() + state.effects.len()
    }
}
