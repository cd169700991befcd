//! The order entity: one actor per order runs the rules of `domain::order`. Its journal is the
//! saga's outbox — pending effects are part of the state. Its view (read from disk, never all
//! in memory: there are millions) and its index entries ([`sets`]) feed the order history and
//! the admin listings; its reminder (expiry, or the next step to retry) wakes the dispatcher.

use crate::actors::entity::Entity;
use crate::domain::ids::{OrderId, UserId};
use crate::domain::order::{self, OrderCommand, OrderError, OrderEvent, OrderState, OrderStatus};
use crate::domain::time::Timestamp;
use crate::persistence::{IndexEntry, time_key};
use serde::{Deserialize, Serialize};

/// The index sets orders are listed from (members `time ++ id`, [`member`]).
pub mod sets {
    use crate::domain::ids::UserId;
    use crate::domain::order::OrderStatus;

    /// Every visible order of one shopper, by creation time.
    pub fn user(user_id: &UserId) -> String {
        format!("order.user:{user_id}")
    }

    /// Every visible order, by creation time: kept by earlier versions, now only emptied at
    /// start-up (`orders::history::forget_all_set`). The status sets partition it, so all
    /// orders are listed from them, and each order writes one entry fewer.
    pub const LEGACY_ALL: &str = "order.all";

    /// The visible orders now in `status`, by creation time.
    pub fn status(status: OrderStatus) -> String {
        format!("order.status:{}", status.as_str())
    }

    /// Orders with a step still to run, by when the earliest is due.
    pub const OWING: &str = "order.owing";

    /// Orders holding a dead letter, by creation time.
    pub const DEAD: &str = "order.dead";
}

/// When the order's dispatcher is due, from its view: what [`Order::reminder`] stores.
pub fn due_of(view: &OrderView) -> Option<Timestamp> {
    let next_step = view
        .effects
        .iter()
        .filter(|e| !e.dead)
        .map(|e| e.not_before);
    view.deadline.into_iter().chain(next_step).min()
}

/// An index member: `time` then the order id, so members sort by time, then id.
pub fn member(at: Timestamp, id: &OrderId) -> Vec<u8> {
    let mut m = time_key(at).to_vec();
    m.extend_from_slice(id.as_str().as_bytes());
    m
}

/// The time and order id of an index member.
pub fn parse_member(member: &[u8]) -> Option<(Timestamp, OrderId)> {
    let at = crate::persistence::time_of_key(member)?;
    let id = OrderId::parse(std::str::from_utf8(member.get(8..)?).ok()?).ok()?;
    Some((at, id))
}

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
    /// When it was queued (0: not known).
    #[serde(default)]
    pub queued_at: Timestamp,
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
    const KEEP_VIEWS: bool = false;

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

    /// The expiry, or the earliest step still to run if that comes first: the dispatcher is
    /// woken for both.
    fn reminder(state: &OrderState) -> Option<Timestamp> {
        let next_step = state
            .effects
            .values()
            .filter(|e| !e.dead)
            .map(|e| e.not_before)
            .min();
        state.expiry().into_iter().chain(next_step).min()
    }

    fn on_deadline() -> Option<OrderCommand> {
        Some(OrderCommand::Expire)
    }

    fn index(id: &OrderId, view: &OrderView) -> Vec<IndexEntry> {
        let mut entries = Vec::with_capacity(2);
        let created = member(view.created_at, id);
        if view.status.visible() {
            entries.push(IndexEntry::new(sets::user(&view.user_id), created.clone()));
            entries.push(IndexEntry::new(sets::status(view.status), created.clone()));
        }
        let live = view.effects.iter().filter(|e| !e.dead);
        if let Some(next) = live.map(|e| e.not_before).min() {
            entries.push(IndexEntry::new(sets::OWING, member(next, id)));
        }
        if view.effects.iter().any(|e| e.dead) {
            entries.push(IndexEntry::new(sets::DEAD, created));
        }
        entries
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
                    queued_at: e.queued_at,
                })
                .collect(),
        })
    }

    fn weight(state: &OrderState) -> usize {
        state.history.len() + state.effects.len()
    }
}
