//! The dispatcher: a background loop that finds orders owing a step whose time has come (a
//! retry after backoff, or a step a crash interrupted — found at start-up from the durable
//! views) and drives them, and wakes orders past their expiry (timers do this too; the loop
//! also covers a clock moved by hand in tests).

use crate::domain::order::OrderCommand;
use crate::orders::Orders;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs until `shutdown` is cancelled.
pub async fn run(orders: Orders, shutdown: CancellationToken) {
    let every = Duration::from_millis(orders.config.outbox.poll_ms.max(10));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let now = orders.now();
        let due = orders.history.due(now);
        for id in due {
            let orders = orders.clone();
            tokio::spawn(async move {
                if orders
                    .book
                    .view(&id)
                    .is_some_and(|v| v.deadline.is_some_and(|at| at <= now))
                {
                    let _ = orders.book.ask(&id, OrderCommand::Expire).await;
                }
                orders.saga.try_drive(&id).await;
            });
        }
    }
}
