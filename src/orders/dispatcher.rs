//! The dispatcher: what the order kind's reminder timer does with an order whose reminder is
//! due (`Order::reminder`: its expiry, or the earliest step still to run). It expires the
//! order if its time has come, then runs its due steps — a retry after backoff, or a step a
//! crash interrupted. The reminders are durable and read in time order, a page at a time, so
//! nothing here is loaded at start-up or held while orders wait (`actors::reminders`).

use crate::actors::reminders::DueHandler;
use crate::domain::order::OrderCommand;
use crate::orders::book::OrderBook;
use crate::orders::saga::Saga;
use std::sync::Arc;

/// Wakes one order: `Expire` (refused without effect before the expiry, so a repeat or an
/// early wake-up changes nothing), then the saga's due steps.
pub(super) fn handler(book: OrderBook, saga: Arc<Saga>) -> DueHandler<crate::actors::order::Order> {
    Arc::new(move |id| {
        let (book, saga) = (book.clone(), saga.clone());
        Box::pin(async move {
            let _ = book.ask(&id, OrderCommand::Expire).await;
            saga.try_drive(&id).await;
        })
    })
}
