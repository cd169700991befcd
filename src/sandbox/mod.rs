//! The sandbox payment gateway and carrier: stand-ins for the outside services, served under
//! `/sandbox` by the engine in dev mode or alone by `emporium sandbox` (the crash test runs
//! them in their own process, so they outlive the engine they serve). The engine reaches them
//! only over HTTP, through the same adapters a real provider would use.
//!
//! State is in memory: the sandbox is a test double of an outside system, not part of the
//! engine's data. In a cluster one node serves them for all (`home`).

pub mod carrier;
mod checkout;
pub mod home;
pub mod pg;
mod reply;

use axum::Router;
use std::time::Duration;

/// How the sandboxes behave.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Time per carrier step (ready -> shipping -> delivered).
    pub carrier_step: Duration,
    /// How long the carrier tells the engine of a step after taking it.
    pub carrier_callback_lag: Duration,
    /// How long the time-out card holds a confirmation before answering.
    pub timeout_card_delay: Duration,
    /// The key carrier callbacks are signed with.
    pub carrier_secret: Vec<u8>,
    /// Where the gateway posts its webhooks, and the key it signs them with.
    pub webhook_url: String,
    pub webhook_secret: Vec<u8>,
}

/// `/sandbox/pg/...` and `/sandbox/carrier/...` (in a cluster, on its first node: `home`).
pub fn router(config: SandboxConfig) -> Router {
    Router::new()
        .nest(
            "/sandbox/pg",
            pg::routes()
                .merge(checkout::routes())
                .with_state(pg::Pg::new(
                    config.timeout_card_delay,
                    pg::Webhooks::new(config.webhook_url, config.webhook_secret),
                )),
        )
        .nest(
            "/sandbox/carrier",
            carrier::router(
                config.carrier_step,
                config.carrier_callback_lag,
                config.carrier_secret,
            ),
        )
}
