//! Notes to SKUs sent in the background, in batches: one SKU command, and so one SKU event,
//! for up to [`BATCH`] orders, at most every [`TELL_EVERY`]. A note is an optimisation the SKU
//! can live without (a lost batch leaves the SKU remembering more than it needs), so notes are
//! kept in memory only.

use crate::actors::Entities;
use crate::actors::sku::Sku;
use crate::domain::ids::SkuId;
use crate::domain::inventory::SkuCommand;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The most orders one note names.
pub const BATCH: usize = 512;
/// How often the SKUs are told.
pub const TELL_EVERY: Duration = Duration::from_millis(100);

/// Sends each SKU the notes queued for it on `notes`, every [`TELL_EVERY`], as `make` of
/// them, until `shutdown`.
pub async fn in_batches<T: Clone + Send + 'static>(
    skus: Entities<Sku>,
    mut notes: mpsc::UnboundedReceiver<(SkuId, T)>,
    shutdown: CancellationToken,
    make: fn(Vec<T>) -> SkuCommand,
) {
    let mut due: HashMap<SkuId, Vec<T>> = HashMap::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(TELL_EVERY) => {}
        }
        while let Ok((sku, note)) = notes.try_recv() {
            due.entry(sku).or_default().push(note);
        }
        for (sku, notes) in due.drain() {
            tell(&skus, &sku, &notes, make).await;
        }
    }
}

/// Tells `sku` the `notes`, [`BATCH`] at a time, as `make` of them. A batch that fails is
/// logged and dropped.
pub async fn tell<T: Clone>(
    skus: &Entities<Sku>,
    sku: &SkuId,
    notes: &[T],
    make: fn(Vec<T>) -> SkuCommand,
) {
    for chunk in notes.chunks(BATCH) {
        if let Err(e) = skus.ask(sku, make(chunk.to_vec())).await {
            tracing::debug!(%sku, error = %e, "a note to a SKU was not delivered");
        }
    }
}
