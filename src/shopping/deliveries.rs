//! Claims confirm their coupons' deliveries to the campaign in batches ([`Confirmations`]);
//! what no claim confirmed (a node stopped between the campaign's step and the wallet's, see
//! `domain::coupon`) the campaign's reminder delivers (`Shopping::deliver_owed`).

use crate::actors::Entities;
use crate::actors::campaign::CampaignEntity;
use crate::domain::coupon::CampaignCommand;
use crate::domain::ids::{CampaignId, CouponId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long confirmations gather before one `ConfirmDelivery` per campaign carries them: a
/// rush of claims costs the campaign one more write per batch, not per claim.
const BATCH: Duration = Duration::from_millis(20);

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
