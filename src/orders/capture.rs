//! The payment steps of the order saga: before a capture the order's stock holds are extended
//! on their SKUs to outlast it, then the gateway confirms, time-outs retried and an unknown
//! outcome asked of the gateway; a capture counts only for its order and amount.

use crate::actors::AskError;
use crate::domain::ids::OrderId;
use crate::domain::inventory::{SkuCommand, SkuError};
use crate::domain::order::{OrderState, Placement};
use crate::integrations::payments::{GatewayError, GatewayPayment};
use crate::orders::saga::{Saga, Step, StepError, step_error};
use std::time::Duration;

/// How long a hold lasts past a capture attempt: far past the attempt and the commit after it,
/// and past the time a gateway keeps an authorisation (so a confirmation retried after the
/// hold lapsed finds the authorisation gone too); not for ever, so a confirmation that became
/// a dead letter keeps its units from others for an hour at most.
const CAPTURE_HOLD: Duration = Duration::from_secs(3600);

impl Saga {
    /// Extends the order's hold on each of its SKUs before its payment is captured, so no
    /// hold lapses on its SKU's timer while the capture and the commit after it are under
    /// way: to [`CAPTURE_HOLD`] from now, when it would end within half of that. `false`
    /// when a hold was already let go: its units may be someone else's now.
    pub(super) async fn hold(&self, id: &OrderId, p: &Placement) -> Result<bool, StepError> {
        let now = self.now();
        for line in &p.lines {
            let extend = SkuCommand::Extend {
                order_id: id.clone(),
                at_least: now.plus(CAPTURE_HOLD / 2),
                until: now.plus(CAPTURE_HOLD),
            };
            match self.skus.ask(&line.sku_id, extend).await {
                Ok(_) => {}
                Err(AskError::Rejected(
                    SkuError::ReservationReleased(_) | SkuError::ReservationNotFound(_),
                )) => return Ok(false),
                Err(e) => return Err(step_error("hold the stock", e)),
            }
        }
        Ok(true)
    }

    /// A confirmation whose hold had lapsed (retried past it: a dead letter revived, or one
    /// begun by a build that did not extend holds): the payment is not captured, and one that
    /// an earlier attempt did capture is refunded.
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
    pub(super) fn verify(
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
