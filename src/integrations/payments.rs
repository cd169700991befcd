//! The payment gateway: the [`PaymentGateway`] trait and its HTTP adapter in the shape of the
//! TossPayments API (`POST /v1/payments/confirm`, `POST /v1/payments/{key}/cancel`,
//! `GET /v1/payments/{key}`, merchant secret key as HTTP Basic). The sandbox under
//! `/sandbox/pg` speaks the same API, so a real provider is a base URL and a key away.

use crate::integrations::BoxFuture;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A payment as the gateway reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayPayment {
    pub payment_key: String,
    pub order_id: String,
    /// `READY`, `DONE`, `CANCELED`, `PARTIAL_CANCELED`, `ABORTED`.
    pub status: String,
    pub total_amount: i64,
    /// What the payment still holds (the total less what was cancelled); `None` when the
    /// answer does not say, which is never taken for nothing held.
    #[serde(default)]
    pub balance_amount: Option<i64>,
    #[serde(default)]
    pub approved_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// The gateway refused for good (declined card, wrong amount): `code` is its reason.
    #[error("refused by the gateway: {code} ({message})")]
    Refused { code: String, message: String },
    /// The payment was already confirmed (a retry of a confirmation that went through).
    #[error("already processed")]
    AlreadyProcessed,
    #[error("unknown payment")]
    NotFound,
    /// No answer in time: the call may or may not have taken effect.
    #[error("the gateway did not answer in time")]
    Timeout,
    /// Unreachable or a 5xx: nothing is known to have happened.
    #[error("the gateway is unavailable: {0}")]
    Unavailable(String),
}

impl GatewayError {
    /// Whether the gateway refused a cancel as more than the payment holds: TossPayments'
    /// `NOT_CANCELABLE_AMOUNT`, or `ALREADY_CANCELED_PAYMENT` once it holds nothing (its API
    /// reference, "Payment cancellation" errors).
    pub fn more_than_held(&self) -> bool {
        matches!(self, GatewayError::Refused { code, .. }
            if code == "NOT_CANCELABLE_AMOUNT" || code == "ALREADY_CANCELED_PAYMENT")
    }
}

impl GatewayPayment {
    /// What this payment holds, when a refund of `asked` was refused as more than it holds:
    /// `Some(balance)` for the payment of `total` when it was cancelled in part or in full and
    /// holds less than `asked`; `None` when that does not add up (the refusal had another
    /// cause, or the answer lacks the balance), and then nothing is concluded from it.
    pub fn held_below(&self, total: i64, asked: i64) -> Option<i64> {
        let cancelled = matches!(self.status.as_str(), "CANCELED" | "PARTIAL_CANCELED");
        self.balance_amount
            .filter(|b| cancelled && self.total_amount == total && (0..asked).contains(b))
    }
}

pub trait PaymentGateway: Send + Sync {
    /// Confirms (captures) an authorised payment for exactly `amount`.
    fn confirm<'a>(
        &'a self,
        payment_key: &'a str,
        order_id: &'a str,
        amount: i64,
    ) -> BoxFuture<'a, Result<GatewayPayment, GatewayError>>;

    /// Refunds `amount` of a confirmed payment; `idempotency_key` makes retries safe.
    fn cancel<'a>(
        &'a self,
        payment_key: &'a str,
        reason: &'a str,
        amount: i64,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<GatewayPayment, GatewayError>>;

    fn get<'a>(
        &'a self,
        payment_key: &'a str,
    ) -> BoxFuture<'a, Result<GatewayPayment, GatewayError>>;
}

/// The Toss-shaped HTTP adapter.
pub struct HttpGateway {
    client: reqwest::Client,
    base_url: String,
    authorization: String,
}

#[derive(Deserialize)]
struct GatewayProblem {
    code: String,
    #[serde(default)]
    message: String,
}

impl HttpGateway {
    pub fn new(base_url: &str, secret_key: &SecretString, timeout: Duration) -> Self {
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:", secret_key.expose_secret()));
        Self {
            client: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("an HTTP client with a time-out builds"),
            base_url: base_url.trim_end_matches('/').to_owned(),
            authorization: format!("Basic {basic}"),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<GatewayPayment, GatewayError> {
        let response = request
            .header("authorization", &self.authorization)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    GatewayError::Timeout
                } else {
                    GatewayError::Unavailable(e.to_string())
                }
            })?;
        let status = response.status();
        if status.is_success() {
            return response
                .json()
                .await
                .map_err(|e| GatewayError::Unavailable(format!("bad answer: {e}")));
        }
        if status.is_server_error() {
            return Err(GatewayError::Unavailable(format!("status {status}")));
        }
        let problem: GatewayProblem = response
            .json()
            .await
            .map_err(|e| GatewayError::Unavailable(format!("bad problem ({status}): {e}")))?;
        Err(match problem.code.as_str() {
            "ALREADY_PROCESSED_PAYMENT" => GatewayError::AlreadyProcessed,
            "NOT_FOUND_PAYMENT" => GatewayError::NotFound,
            _ => GatewayError::Refused {
                code: problem.code,
                message: problem.message,
            },
        })
    }
}

impl PaymentGateway for HttpGateway {
    fn confirm<'a>(
        &'a self,
        payment_key: &'a str,
        order_id: &'a str,
        amount: i64,
    ) -> BoxFuture<'a, Result<GatewayPayment, GatewayError>> {
        let body = serde_json::json!({
            "payment_key": payment_key, "order_id": order_id, "amount": amount,
        });
        let url = format!("{}/v1/payments/confirm", self.base_url);
        Box::pin(self.send(self.client.post(url).json(&body)))
    }

    fn cancel<'a>(
        &'a self,
        payment_key: &'a str,
        reason: &'a str,
        amount: i64,
        idempotency_key: &'a str,
    ) -> BoxFuture<'a, Result<GatewayPayment, GatewayError>> {
        let body = serde_json::json!({ "reason": reason, "amount": amount });
        let url = format!("{}/v1/payments/{payment_key}/cancel", self.base_url);
        let request = self
            .client
            .post(url)
            .header("idempotency-key", idempotency_key)
            .json(&body);
        Box::pin(self.send(request))
    }

    fn get<'a>(
        &'a self,
        payment_key: &'a str,
    ) -> BoxFuture<'a, Result<GatewayPayment, GatewayError>> {
        let url = format!("{}/v1/payments/{payment_key}", self.base_url);
        Box::pin(self.send(self.client.get(url)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(status: &str, total: i64, balance: Option<i64>) -> GatewayPayment {
        GatewayPayment {
            payment_key: "pk".into(),
            order_id: "o".into(),
            status: status.into(),
            total_amount: total,
            balance_amount: balance,
            approved_at: None,
        }
    }

    #[test]
    fn a_refused_refund_is_put_down_to_the_console_only_when_the_payment_says_so() {
        // Given refunds of 5,000 refused by the gateway
        let refused = |code: &str| GatewayError::Refused {
            code: code.into(),
            message: String::new(),
        };
        assert!(refused("NOT_CANCELABLE_AMOUNT").more_than_held());
        assert!(refused("ALREADY_CANCELED_PAYMENT").more_than_held());
        assert!(!refused("INVALID_REFUND_ACCOUNT_INFO").more_than_held());
        // Then a payment of 10,000 cancelled in part, holding 3,000, holds less than asked
        let partly = payment("PARTIAL_CANCELED", 10000, Some(3000));
        assert_eq!(partly.held_below(10000, 5000), Some(3000));
        assert_eq!(
            payment("CANCELED", 10000, Some(0)).held_below(10000, 5000),
            Some(0)
        );
        // And nothing is concluded from an answer that does not add up: enough held, another
        // payment's total, a payment never cancelled, or no balance in the answer
        assert_eq!(partly.held_below(10000, 3000), None);
        assert_eq!(partly.held_below(20000, 5000), None);
        assert_eq!(
            payment("DONE", 10000, Some(3000)).held_below(10000, 5000),
            None
        );
        assert_eq!(
            payment("CANCELED", 10000, None).held_below(10000, 5000),
            None
        );
    }
}
