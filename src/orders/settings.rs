//! The settings of orders, the outbox, the payment gateway, the carrier and the sandboxes
//! (sections `[orders]`, `[outbox]`, `[payments]`, `[carrier]`, `[sandbox]` of `emporium.toml`).

use crate::domain::order::RetryPolicy;
use secrecy::SecretString;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
pub struct OrderSettings {
    /// An unpaid order expires after this (`EMPORIUM_ORDER_TTL_SECS`).
    pub ttl_secs: u64,
    /// How much longer a SKU holds an order's units than the order itself waits: a safety net
    /// for a reservation whose order was lost, never reached in normal operation.
    pub reservation_grace_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OutboxSettings {
    /// Failures of one step before it becomes a dead letter.
    pub max_attempts: u32,
    pub base_backoff_ms: i64,
    pub max_backoff_ms: i64,
    /// How often the dispatcher looks for due steps and expired orders.
    pub poll_ms: u64,
}

impl OutboxSettings {
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.max(1),
            base_backoff_ms: self.base_backoff_ms.max(1),
            max_backoff_ms: self.max_backoff_ms.max(1),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct PaymentSettings {
    /// The gateway's base URL (`…/v1/payments/confirm` is appended); empty means this node's
    /// own sandbox.
    #[serde(default)]
    pub base_url: String,
    /// The merchant's secret key (HTTP Basic, as TossPayments expects).
    pub secret_key: SecretString,
    /// The key webhooks are signed with (HMAC-SHA256 of the body).
    pub webhook_secret: SecretString,
    /// One gateway call waits this long.
    pub timeout_ms: u64,
    /// Confirmation attempts (time-outs retried with backoff) before asking the gateway.
    pub confirm_attempts: u32,
}

impl PaymentSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct CarrierSettings {
    #[serde(default)]
    pub base_url: String,
    pub name: String,
    /// The key carrier callbacks are signed with (HMAC-SHA256 of the body).
    pub callback_secret: SecretString,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SandboxSettings {
    /// Serve `/sandbox` (defaults to dev mode).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// How long the sandbox carrier takes per step (`EMPORIUM_CARRIER_STEP_SECS`).
    pub carrier_step_secs: f64,
    /// How long the sandbox carrier's callbacks lag behind its steps.
    #[serde(default)]
    pub carrier_callback_lag_ms: u64,
    /// How long the time-out card keeps a confirmation hanging.
    pub timeout_card_delay_ms: u64,
    /// Where the sandbox gateway posts its signed webhooks; empty: this engine's
    /// `/api/v1/payments/webhook`.
    #[serde(default)]
    pub webhook_url: String,
}

/// Outside dev mode the gateway and the carrier are outside services, or a sandbox this node
/// serves on purpose (`sandbox.enabled`). An outside one must sign with a secret of its own,
/// never the published default, with which anyone could forge a capture, a refund or a
/// delivery that opens a return: that stops `serve`. A provider left unset with the sandbox
/// off (payments can never succeed) is `Ok(Some(warning))`, for the log.
pub fn check_providers(
    dev_mode: bool,
    sandbox_enabled: bool,
    (payments, carrier): (&PaymentSettings, &CarrierSettings),
) -> anyhow::Result<Option<String>> {
    use secrecy::ExposeSecret;
    if dev_mode {
        return Ok(None);
    }
    let providers = [
        (
            "payments",
            &payments.base_url,
            "webhook_secret",
            &payments.webhook_secret,
            "sandbox-webhook-secret",
        ),
        (
            "carrier",
            &carrier.base_url,
            "callback_secret",
            &carrier.callback_secret,
            "sandbox-carrier-secret",
        ),
    ];
    let mut unset = None;
    for (section, base_url, secret_name, secret, published) in providers {
        if !base_url.is_empty() && secret.expose_secret() == published {
            anyhow::bail!(
                "{section}.{secret_name} is the published sandbox default: set the secret \
                 {section}.base_url signs with"
            );
        }
        if base_url.is_empty() && !sandbox_enabled && unset.is_none() {
            unset = Some(format!(
                "{section}.base_url is unset and the sandbox is off: name the outside service \
                 (or set sandbox.enabled = true), or orders cannot be paid or shipped"
            ));
        }
    }
    Ok(unset)
}
