//! Promised orders, in the background: [`keep`] writes every order promised by a drop
//! purchase (`OrderBook::promise`) soon after its answer, and [`recover`] promises again
//! every order a SKU still holds units for but the order kind never wrote (a crash between the
//! hold and the write): at start-up, and in a cluster also when the node takes shards or
//! another node's process is gone. See `book.rs` for why requests never miss one.
//!
//! Once an order is written, its SKU is told (`OrdersWritten`, batched by [`tell`]) and its
//! hold stops keeping the order, so a SKU's state holds only the orders still to write and a
//! recovery reads only those.

use crate::actors::Entities;
use crate::actors::sku::Sku;
use crate::domain::ids::OrderId;
use crate::domain::inventory::SkuCommand;
use crate::orders::book::OrderBook;
use crate::orders::tell;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// How many batches of promised orders are written at once in the background.
const WRITERS: usize = 8;
/// The most promised orders one batch writes (submitted together, so mostly one group
/// commit).
const BATCH: usize = 256;

/// Writes promised orders until `shutdown`, new ones straight to the journal in batches
/// (`OrderBook::create`); what is left then is promised again at the next start, from the
/// holds.
pub async fn keep(book: OrderBook, skus: Entities<Sku>, shutdown: CancellationToken) {
    let Some(mut queue) = book.take_queue() else {
        return;
    };
    let (written, told) = mpsc::unbounded_channel();
    tokio::spawn(tell::in_batches(skus, told, shutdown.clone(), written_note));
    book.tell_written(written);
    let writers = Arc::new(Semaphore::new(WRITERS));
    loop {
        let Ok(permit) = writers.clone().acquire_owned().await else {
            return;
        };
        let mut ids = Vec::with_capacity(BATCH);
        tokio::select! {
            () = shutdown.cancelled() => return,
            n = queue.recv_many(&mut ids, BATCH) => if n == 0 {
                return;
            },
        }
        let claimed = book.claim_all(ids);
        if claimed.is_empty() {
            continue;
        }
        let book = book.clone();
        tokio::spawn(async move {
            if book.create(claimed).await > 0 {
                // This writer pauses before its next batch: a journal refusing writes is not
                // asked again at once by every writer.
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            drop(permit);
        });
    }
}

/// How long a writer whose batch left orders unwritten waits before its next batch.
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// The note that these drop orders are written. A lost one leaves those holds keeping their
/// orders: a recovery finds them written and tells again.
fn written_note(order_ids: Vec<OrderId>) -> SkuCommand {
    SkuCommand::OrdersWritten { order_ids }
}

/// What a [`recover`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Orders promised again.
    pub promised: usize,
    /// SKUs of this node's shards whose holds could not be read (cluster mode): to read again.
    pub unread: usize,
}

/// Promises again every order a SKU holds units for but the order kind never wrote. One node
/// runs it before it is ready. In a cluster (`clustered`) only the SKUs of shards this node
/// holds are read, and a node runs it whenever it takes shards or another node's process is
/// gone (it may have answered purchases whose orders it never wrote); a SKU that cannot be
/// read then is counted `unread`, to be read again, where on one node it is an error.
pub async fn recover(
    book: &OrderBook,
    skus: &Entities<Sku>,
    clustered: bool,
) -> anyhow::Result<Recovered> {
    let mut promised = 0;
    let mut unread = 0;
    // A SKU whose holds all let their orders go is not read: a hot SKU's state may hold a
    // million open reservations.
    let holding = skus.views().into_iter().filter(|(sku, view)| {
        let keeping = match view.keeping {
            Some(n) => n > 0,
            None => view.drops.iter().any(|d| d.reserved > 0),
        };
        keeping && (!clustered || skus.is_local(sku))
    });
    for (sku, _) in holding {
        let held = match skus.ask(&sku, SkuCommand::HeldOrders).await {
            Ok(held) => held,
            Err(e) if clustered => {
                // Its shard may have left this node since (its next owner reads it), or be
                // arriving still: read again, unless another node holds it by then.
                tracing::debug!(%sku, error = %e, "holds not read now");
                unread += usize::from(skus.is_local(&sku));
                continue;
            }
            Err(e) => anyhow::bail!("reading the holds of SKU {sku}: {e}"),
        };
        let ids = held
            .held_orders
            .iter()
            .map(|r| r.order_id.clone())
            .collect();
        let stored = book.stored_views(ids).await?;
        let mut written = Vec::new();
        for (receipt, view) in held.held_orders.into_iter().zip(stored) {
            if view.is_none() {
                book.promise(receipt.order_id, receipt.order);
                promised += 1;
            } else {
                written.push(receipt.order_id);
            }
        }
        // Orders written whose SKU was never told (a batch lost in a crash): it is now.
        tell::tell(skus, &sku, &written, written_note).await;
    }
    Ok(Recovered { promised, unread })
}
