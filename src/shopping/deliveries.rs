//! A claimed coupon's way into its wallet, past a node stopping between the campaign's step
//! and the wallet's (see `domain::coupon`): claims confirm their deliveries in batches
//! ([`Confirmations`]), and the campaign's reminder delivers what no claim confirmed
//! ([`Shopping::deliver_owed`]).

use crate::actors::campaign::CampaignEntity;
use crate::actors::{AskError, Entities};
use crate::domain::coupon::{CampaignCommand, DELIVERY_GRACE_MS};
use crate::domain::ids::{CampaignId, CouponId, UserId};
use crate::domain::user::UserError;
use crate::shopping::{Shopping, ShoppingError};
use futures_util::future::join_all;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long confirmations gather before one `ConfirmDelivery` per campaign carries them: a
/// rush of claims costs the campaign one more write per batch, not per claim.
const BATCH: Duration = Duration::from_millis(20);
/// Owed coupons the reminder delivers at once, and per confirmation (the reminder fires again
/// while a long run is under way, so a run confirms as it goes).
const AT_ONCE: usize = 16;
const CHUNK: usize = 256;

/// Deliveries waiting to be confirmed to their campaigns.
#[derive(Clone)]
pub(super) struct Confirmations {
    pending: Arc<Mutex<HashMap<CampaignId, Vec<CouponId>>>>,
    wake: Arc<tokio::sync::Notify>,
}

impl Confirmations {
    /// Sends what gathers to `campaigns` until `shutdown`. One lost (a stop, an overloaded
    /// campaign) leaves its coupons owed: the campaign's reminder delivers them again, which
    /// the wallet takes as a repeat.
    pub(super) fn start(campaigns: Entities<CampaignEntity>, shutdown: CancellationToken) -> Self {
        let confirmations = Confirmations {
            pending: Arc::default(),
            wake: Arc::default(),
        };
        let this = confirmations.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = this.wake.notified() => {}
                    () = shutdown.cancelled() => return,
                }
                tokio::time::sleep(BATCH).await;
                let batch = std::mem::take(&mut *this.pending.lock().expect("confirmations"));
                for (campaign_id, coupon_ids) in batch {
                    let confirm = CampaignCommand::ConfirmDelivery { coupon_ids };
                    if let Err(e) = campaigns.ask(&campaign_id, confirm).await {
                        tracing::info!(%campaign_id, error = %e,
                            "deliveries not confirmed; the campaign's reminder repeats them");
                    }
                }
            }
        });
        confirmations
    }

    /// `coupon_id` is in its wallet.
    pub(super) fn push(&self, campaign_id: &CampaignId, coupon_id: CouponId) {
        let mut pending = self.pending.lock().expect("confirmations");
        pending
            .entry(campaign_id.clone())
            .or_default()
            .push(coupon_id);
        self.wake.notify_one();
    }
}

impl Shopping {
    /// Puts into their wallets the coupons a campaign issued at least [`DELIVERY_GRACE_MS`]
    /// ago and never saw confirmed there (a claim cut off between its two steps), then confirms
    /// them, [`CHUNK`] at a time: the campaign's reminder. A coupon whose owner has no account
    /// (erased, or a token without one) has no wallet and is confirmed as it is; a wallet that
    /// cannot be reached now is tried again at the reminder's next firing.
    #[tracing::instrument(skip(self))]
    pub(super) async fn deliver_owed(&self, campaign_id: &CampaignId) {
        let owed = match self
            .campaigns
            .ask(campaign_id, CampaignCommand::ListOwed)
            .await
        {
            Ok(reply) => reply.owed,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the coupons owed");
                return;
            }
        };
        let due = self.now().millis() - DELIVERY_GRACE_MS;
        let owed: Vec<_> = owed.into_iter().filter(|o| o.2.millis() <= due).collect();
        for chunk in owed.chunks(CHUNK) {
            let mut delivered = Vec::with_capacity(chunk.len());
            for group in chunk.chunks(AT_ONCE) {
                let adds = group
                    .iter()
                    .map(|(coupon_id, user, _)| self.deliver_one(campaign_id, coupon_id, user));
                delivered.extend(join_all(adds).await.into_iter().flatten());
            }
            if delivered.is_empty() {
                continue;
            }
            tracing::info!(coupons = delivered.len(), "owed coupons delivered");
            let confirm = CampaignCommand::ConfirmDelivery {
                coupon_ids: delivered,
            };
            match self.campaigns.ask(campaign_id, confirm).await {
                Ok(_) => {}
                Err(AskError::Rejected(e)) => tracing::warn!(error = %e, "deliveries refused"),
                Err(e) => tracing::warn!(error = %e, "cannot confirm delivered coupons"),
            }
        }
    }

    /// One owed coupon into its wallet; the coupon when it is delivered or has no wallet.
    async fn deliver_one(
        &self,
        campaign_id: &CampaignId,
        coupon_id: &CouponId,
        user: &UserId,
    ) -> Option<CouponId> {
        match self.add_to_wallet(user, coupon_id, campaign_id).await {
            Ok(()) => Some(coupon_id.clone()),
            Err(ShoppingError::User(UserError::NotFound)) => {
                tracing::info!(%coupon_id, "an owed coupon has no wallet");
                Some(coupon_id.clone())
            }
            Err(e) => {
                tracing::warn!(%coupon_id, error = %e, "cannot deliver an owed coupon");
                None
            }
        }
    }
}
