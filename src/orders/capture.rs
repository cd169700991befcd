//! The payment steps of the order saga: before a capture the order's stock holds are pinned
//! on their SKUs, then the gateway confirms, time-outs retried and an unknown outcome asked
//! of the gateway; a capture counts only for its order and amount.

use crate::actors::AskError;
use crate::domain::ids::OrderId;
use crate::domain::inventory::{SkuCommand, SkuError};
use crate::domain::order::{OrderState, Placement};
use crate::integrations::payments::{GatewayError, GatewayPayment};
use crate::orders::saga::{Saga, Step, StepError, step_error};
use std::time::Duration;

impl Saga {
    /// Pins the order's hold on each of its SKUs before its payment is captured, so no hold
    /// lapses on its SKU's timer while the capture and the commit after it are under way.
    /// `false` when a hold was already let go: its units may be someone else's now.
    pub(super) async fn pin(&self, id: &OrderId, p: &Placement) -> Result<bool, StepError> {
        for line in &p.lines {
            let pin = SkuCommand::Pin {
                order_id: id.clone(),
            };
            match self.skus.ask(&line.sku_id, pin).await {
                Ok(_) => {}
                Err(AskError::Rejected(
                    SkuError::ReservationReleased(_) | SkuError::ReservationNotFound(_),
                )) => return Ok(false),
                Err(e) => return Err(step_error("pin the stock", e)),
            }
        }
        Ok(true)
    }

    /// A confirmation whose hold had lapsed (a confirmation begun by a build that did not pin
    /// holds, retried past the hold's expiry): the payment is not captured, and one that an
    /// earlier attempt did capture is refunded.
    pub(super) async fn lapsed(&self, id: &OrderId, state: &OrderState) -> Result<Step, StepError> {
        let p = state
            .payment
            .as_ref()
            .ok_or_else(|| "no payment to confirm".to_owned())?;
        let captured = match self.gateway.get(&p.payment_key).await {
            Ok(paid) => self.verify(&paid, id.as_str(), p.amount).ok(),
            Err(GatewayError::NotFound) => None,
            Err(e) => return Err(format!("query the payment: {e}")),
        };
        Ok(Step::Lapsed { captured })
    }

    /// Confirms with the gateway: time-outs are retried with backoff, and an outcome still
    /// unknown (or a confirmation the gateway already processed) is asked of the gateway, so
    /// a payment is never captured twice.
    pub(super) async fn confirm(
        &self,
        id: &OrderId,
        state: &OrderState,
    ) -> Result<Result<crate::domain::time::Timestamp, String>, StepError> {
        let p = state
            .payment
            .as_ref()
            .ok_or_else(|| "no payment to confirm".to_owned())?;
        let order_id = id.to_string();
        let mut unknown = false;
        for attempt in 0..self.confirm_attempts {
            match self
                .gateway
                .confirm(&p.payment_key, &order_id, p.amount)
                .await
            {
                Ok(paid) => return Ok(self.verify(&paid, &order_id, p.amount)),
                Err(GatewayError::Refused { message, code }) => {
                    let reason = if message.is_empty() { code } else { message };
                    return Ok(Err(reason));
                }
                Err(GatewayError::NotFound) => return Ok(Err("unknown_payment".into())),
                Err(GatewayError::AlreadyProcessed) => {
                    unknown = true;
                    break;
                }
                Err(GatewayError::Timeout) => {
                    unknown = true;
                    tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
                }
                Err(GatewayError::Unavailable(e)) => return Err(format!("confirm: {e}")),
            }
        }
        if !unknown {
            return Err("confirm: no answer".into());
        }
        match self.gateway.get(&p.payment_key).await {
            Ok(paid) if paid.status == "READY" => Err("confirm: not captured yet".into()),
            Ok(paid) => Ok(self.verify(&paid, &order_id, p.amount)),
            Err(GatewayError::NotFound) => Ok(Err("unknown_payment".into())),
            Err(e) => Err(format!("query the payment: {e}")),
        }
    }

    /// A captured payment counts only for this order and this amount.
    fn verify(
        &self,
        paid: &GatewayPayment,
        order_id: &str,
        amount: i64,
    ) -> Result<crate::domain::time::Timestamp, String> {
        if paid.order_id != order_id || paid.total_amount != amount {
            return Err("amount_mismatch".into());
        }
        match paid.status.as_str() {
            "DONE" => Ok(paid
                .approved_at
                .as_deref()
                .and_then(crate::domain::time::Timestamp::parse_rfc3339)
                .unwrap_or_else(|| self.now())),
            other => Err(other.to_lowercase()),
        }
    }
}
