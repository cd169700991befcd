//! The SKU stock entity: one actor per SKU owns its available/reserved/sold counters, so a
//! reservation is one message — check and take in one step, no lock. Rules are in
//! `domain::inventory`; this file only binds them to the runtime.

use crate::actors::entity::Entity;
use crate::domain::ids::SkuId;
use crate::domain::inventory::{self, ReservationView, SkuCommand, SkuError, SkuEvent, SkuState};
use crate::domain::time::Timestamp;
use serde::Serialize;

/// The SKU stock kind.
pub struct Sku;

/// The counters of one SKU after a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StockLevels {
    pub sku_id: SkuId,
    pub available: u64,
    pub reserved: u64,
    pub sold: u64,
    /// For commands naming an order: where that order's reservation stands now.
    pub reservation: Option<ReservationView>,
}

impl Entity for Sku {
    const KIND: &'static str = "sku";
    type Id = SkuId;
    type State = SkuState;
    type Command = SkuCommand;
    type Event = SkuEvent;
    type Rejection = SkuError;
    type Reply = StockLevels;

    fn decide(
        state: &SkuState,
        command: &SkuCommand,
        now: Timestamp,
    ) -> Result<Vec<SkuEvent>, SkuError> {
        inventory::decide(state, command, now)
    }

    fn apply(state: &mut SkuState, event: &SkuEvent) {
        inventory::apply(state, event);
    }

    fn reply(id: &SkuId, state: &SkuState, command: &SkuCommand) -> StockLevels {
        let order = match command {
            SkuCommand::Reserve { order_id, .. }
            | SkuCommand::Commit { order_id }
            | SkuCommand::Release { order_id } => Some(order_id),
            _ => None,
        };
        StockLevels {
            reservation: order.and_then(|o| state.reservation_of(o)),
            sku_id: id.clone(),
            available: state.available,
            reserved: state.reserved,
            sold: state.sold,
        }
    }

    fn next_deadline(state: &SkuState) -> Option<Timestamp> {
        state.next_expiry()
    }

    fn on_deadline() -> Option<SkuCommand> {
        Some(SkuCommand::ExpireDue)
    }

    fn weight(state: &SkuState) -> usize {
        state.reservations.len() + state.settled.len()
    }
}
