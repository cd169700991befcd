//! "Drop starting" notifications: when a drop goes live, every shopper who wishlisted its
//! product (the product's watchers, `domain::watchers`) gets a `drop_starting` notification in
//! their inbox and on their `user` topic.
//!
//! Driven by the SKUs' durable views: a drop is announced the first time a view of its SKU
//! shows it started (the SKU's timer writes one at `starts_at`; a drop created already live is
//! announced at once). Drops that started before this process are taken as announced. In a
//! cluster only the SKU's owner announces. The notification's id is the drop's, so an inbox
//! keeps it once; a crash between the view and the last notification loses the rest (at most
//! once — a start is news only when it happens).

use crate::actors::Entities;
use crate::actors::sku::Sku;
use crate::actors::user::User;
use crate::actors::watchers::ProductWatchers;
use crate::catalog::Catalog;
use crate::domain::drop::DropId;
use crate::domain::ids::{ProductId, SkuId, UserId};
use crate::domain::time::Clock;
use crate::domain::user::inbox::Notification;
use crate::domain::watchers::WatchCommand;
use crate::events::EventBus;
use dashmap::DashSet;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Notifications sent at once while announcing one drop.
const CONCURRENCY: usize = 16;

/// What announcing needs.
#[derive(Clone)]
pub struct Announcer {
    pub skus: Entities<Sku>,
    pub catalog: Catalog,
    pub watchers: Entities<ProductWatchers>,
    pub users: Entities<User>,
    pub bus: EventBus,
    pub clock: Arc<dyn Clock>,
}

impl Announcer {
    /// Announces every drop that starts from now on, until `shutdown`.
    pub fn start(self, shutdown: CancellationToken) {
        let now = self.clock.now();
        let announced: DashSet<DropId> = DashSet::new();
        for (_, view) in self.skus.views() {
            for d in view.drops.iter().filter(|d| d.starts_at <= now) {
                announced.insert(d.drop_id.clone());
            }
        }
        // Views are published from the journal's sync thread (`sled_syncer`): the listener
        // only notes what it has not announced yet and hands it over (it holds no entity
        // handle, which would keep the journal open past shutdown).
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(SkuId, DropId)>();
        let clock = self.clock.clone();
        self.skus.on_view(move |sku, view| {
            let now = clock.now();
            for d in view.drops.iter().filter(|d| d.starts_at <= now && !d.ended) {
                if !announced.contains(&d.drop_id) && announced.insert(d.drop_id.clone()) {
                    let _ = tx.send((sku.clone(), d.drop_id.clone()));
                }
            }
        });
        tokio::spawn(async move {
            loop {
                let (sku, drop_id) = tokio::select! {
                    () = shutdown.cancelled() => return,
                    next = rx.recv() => match next {
                        Some(next) => next,
                        None => return,
                    },
                };
                // In a cluster, the SKU's owner announces.
                if !self.skus.is_local(&sku) {
                    continue;
                }
                let Some(product) = self.catalog.index.owner_of(&sku) else {
                    continue;
                };
                let me = self.clone();
                tokio::spawn(async move { me.announce(&product, &drop_id).await });
            }
        });
    }

    async fn announce(&self, product: &ProductId, drop_id: &DropId) {
        use futures_util::StreamExt;
        let watchers = match self.watchers.ask(product, WatchCommand::Get).await {
            Ok(w) => w.users,
            Err(e) => {
                tracing::warn!(%drop_id, error = ?e, "cannot read the product's watchers");
                return;
            }
        };
        let name = self
            .catalog
            .index
            .get(product)
            .map(|s| s.product.name.clone())
            .unwrap_or_default();
        let note = Notification {
            id: format!("drop-{drop_id}-starting"),
            kind: "drop_starting".into(),
            text: format!("A drop of {name} has started."),
            at: self.clock.now(),
            drop_id: Some(drop_id.to_string()),
            name: Some(name.clone()),
            ..Notification::default()
        };
        tracing::info!(%drop_id, watchers = watchers.len(), "announcing a drop");
        futures_util::stream::iter(watchers)
            .for_each_concurrent(CONCURRENCY, |user| {
                let note = note.clone();
                async move { self.notify(&user, note).await }
            })
            .await;
    }

    async fn notify(&self, user: &UserId, note: Notification) {
        match crate::events::feeds::notify_user(&self.users, &self.bus, user, note).await {
            // Told; or a deleted account: nobody to tell.
            Ok(()) | Err(crate::actors::AskError::Rejected(_)) => {}
            Err(e) => tracing::warn!(%user, error = ?e, "cannot notify of a drop"),
        }
    }
}
