//! The dispatcher: a background loop that finds orders owing a step whose time has come (a
//! retry after backoff, or a step a crash interrupted — found at start-up from the durable
//! views) and drives them, and wakes orders past their expiry (timers do this too; the loop
//! also covers a clock moved by hand in tests).

use crate::domain::order::OrderCommand;
use crate::domain::time::Clock;
use crate::orders::book::OrderBook;
use crate::orders::history::History;
use crate::orders::saga::Saga;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What the loop reads and drives.
pub(super) struct Dispatcher {
    pub(super) book: OrderBook,
    /// Its due queue says which orders need the dispatcher, and when.
    pub(super) history: Arc<History>,
    pub(super) saga: Arc<Saga>,
    /// How often the due queue is read.
    pub(super) every: Duration,
    pub(super) clock: Arc<dyn Clock>,
}

/// Runs until `shutdown` is cancelled.
pub(super) async fn run(d: Dispatcher, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(d.every) => {}
        }
        let now = d.clock.now();
        for id in d.history.due(now) {
            let (book, saga) = (d.book.clone(), d.saga.clone());
            tokio::spawn(async move {
                if book
                    .view(&id)
                    .is_some_and(|v| v.deadline.is_some_and(|at| at <= now))
                {
                    let _ = book.ask(&id, OrderCommand::Expire).await;
                }
                saga.try_drive(&id).await;
            });
        }
    }
}
