//! The SKU stock entity: one actor per SKU owns its available/reserved/sold counters, so a
//! reservation is one message — check and take in one step, no lock. Rules are in
//! `domain::inventory`; this file only binds them to the runtime.

use crate::actors::entity::Entity;
use crate::domain::ids::SkuId;
use crate::domain::inventory::{
    self, PurchaseReceipt, ReservationView, SkuCommand, SkuError, SkuEvent, SkuState, StockView,
};
use crate::domain::time::Timestamp;
use serde::Serialize;

/// The SKU stock kind.
pub struct Sku;

/// The counters of one SKU after a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StockLevels {
    pub sku_id: SkuId,
    pub available: u64,
    pub reserved: u64,
    pub sold: u64,
    /// For commands naming an order: where that order's reservation stands now.
    pub reservation: Option<ReservationView>,
    /// For `Purchase`: the order its hold keeps (the one held first, which a replay did not
    /// replace); `None` once the hold is settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<PurchaseReceipt>,
    /// For `HeldOrders`: the order of every open drop hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_orders: Vec<PurchaseReceipt>,
}

impl Entity for Sku {
    const KIND: &'static str = "sku";
    type Id = SkuId;
    type State = SkuState;
    type Command = SkuCommand;
    type Event = SkuEvent;
    type Rejection = SkuError;
    type Reply = StockLevels;
    type View = StockView;

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
            | SkuCommand::Extend { order_id, .. }
            | SkuCommand::Commit { order_id }
            | SkuCommand::Release { order_id }
            | SkuCommand::Restock { order_id, .. } => Some(order_id),
            SkuCommand::Purchase(p) => Some(&p.order_id),
            _ => None,
        };
        let receipt = match command {
            SkuCommand::Purchase(p) => state.receipt(&p.order_id),
            _ => None,
        };
        let held_orders = match command {
            SkuCommand::HeldOrders => state.receipts(),
            _ => Vec::new(),
        };
        StockLevels {
            receipt,
            held_orders,
            reservation: order.and_then(|o| state.reservation_of(o)),
            sku_id: id.clone(),
            available: state.available,
            reserved: state.reserved,
            sold: state.sold,
        }
    }

    fn next_deadline(state: &SkuState) -> Option<Timestamp> {
        state.next_deadline()
    }

    fn on_deadline() -> Option<SkuCommand> {
        Some(SkuCommand::ExpireDue)
    }

    fn view(state: &SkuState) -> Option<StockView> {
        Some(state.levels())
    }

    fn weight(state: &SkuState) -> usize {
        state.reservations.len() + state.settled.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::{AskError, Entities, Runtime, RuntimeConfig};
    use crate::domain::ids::{OrderId, UserId};
    use crate::domain::time::{Clock, ManualClock};
    use crate::persistence::memory::MemoryJournal;
    use std::sync::Arc;
    use std::time::Duration;

    async fn skus() -> (Entities<Sku>, ManualClock, Arc<MemoryJournal>) {
        let clock = ManualClock::starting_at(Timestamp(1_000_000));
        let journal = Arc::new(MemoryJournal::new());
        let rt = Runtime {
            journal: journal.clone(),
            clock: Arc::new(clock.clone()),
            config: RuntimeConfig::default(),
            shutdown: tokio_util::sync::CancellationToken::new(),
            remote: None,
        };
        (Entities::start(rt).await.unwrap(), clock, journal)
    }

    fn reserve(order: &str, qty: u32, expires_at: Timestamp) -> SkuCommand {
        SkuCommand::Reserve {
            order_id: OrderId::parse(order).unwrap(),
            user_id: UserId::parse("u").unwrap(),
            qty,
            expires_at,
        }
    }

    #[tokio::test]
    async fn the_actor_expires_its_own_reservations() {
        let (skus, clock, journal) = skus().await;
        let id = SkuId::parse("tee").unwrap();
        skus.ask(&id, SkuCommand::SetStock { available: 3 })
            .await
            .unwrap();
        let soon = clock.now().plus(Duration::from_secs(60));
        let levels = skus.ask(&id, reserve("o1", 2, soon)).await.unwrap();
        assert_eq!((levels.available, levels.reserved), (1, 2));
        let refused = skus.ask(&id, reserve("o2", 2, soon)).await.unwrap_err();
        assert!(matches!(
            refused,
            AskError::Rejected(SkuError::InsufficientStock { .. })
        ));

        clock.advance(Duration::from_secs(61));
        skus.tick(&id).await.unwrap();
        let levels = skus.ask(&id, SkuCommand::Get).await.unwrap();
        assert_eq!((levels.available, levels.reserved), (3, 0));
        assert_eq!(journal.event_count(), 3, "set, reserved, released");
        let view = skus.view(&id).expect("a durable view");
        assert_eq!((view.available, view.reserved, view.sold), (3, 0, 0));
    }

    #[tokio::test]
    async fn a_replayed_reservation_writes_nothing() {
        let (skus, clock, journal) = skus().await;
        let id = SkuId::parse("tee").unwrap();
        skus.ask(&id, SkuCommand::SetStock { available: 3 })
            .await
            .unwrap();
        let at = clock.now().plus(Duration::from_secs(60));
        let first = skus.ask(&id, reserve("o1", 1, at)).await.unwrap();
        let again = skus.ask(&id, reserve("o1", 1, at)).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(journal.event_count(), 2);
    }
}
