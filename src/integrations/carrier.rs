//! The carrier: the [`Carrier`] trait and its HTTP adapter (`POST /v1/shipments` with an
//! `Idempotency-Key`, so a retried booking never books twice). The carrier reports progress by
//! calling the engine back at `callback_url`, signed with HMAC-SHA256.

use crate::integrations::BoxFuture;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CarrierError {
    #[error("refused by the carrier: {0}")]
    Refused(String),
    #[error("the carrier is unavailable: {0}")]
    Unavailable(String),
    /// A call-off refused because the parcel was picked up (`409 ALREADY_PICKED_UP`).
    #[error("the carrier has picked the parcel up")]
    AlreadyPickedUp,
}

/// What a shipment booking needs.
#[derive(Debug, Clone)]
pub struct Booking<'a> {
    pub order_id: &'a str,
    /// Recipient, phone and address as one label text.
    pub label: &'a str,
    pub callback_url: &'a str,
    pub idempotency_key: &'a str,
}

pub trait Carrier: Send + Sync {
    /// Books a shipment; the tracking number.
    fn book<'a>(&'a self, booking: Booking<'a>) -> BoxFuture<'a, Result<String, CarrierError>>;

    /// Calls a booked shipment off (done again is done). [`CarrierError::AlreadyPickedUp`]
    /// once the parcel was picked up.
    fn cancel<'a>(&'a self, tracking_number: &'a str) -> BoxFuture<'a, Result<(), CarrierError>>;
}

pub struct HttpCarrier {
    client: reqwest::Client,
    base_url: String,
}

#[derive(Deserialize)]
struct Booked {
    tracking_number: String,
}

/// The carrier's answer if it accepted the request: a 4xx is a refusal (with its text),
/// anything else unsuccessful means the carrier is unavailable.
async fn accepted(response: reqwest::Response) -> Result<reqwest::Response, CarrierError> {
    let status = response.status();
    if status.is_client_error() {
        let text = response.text().await.unwrap_or_default();
        return Err(CarrierError::Refused(format!("{status}: {text}")));
    }
    if !status.is_success() {
        return Err(CarrierError::Unavailable(format!("status {status}")));
    }
    Ok(response)
}

impl HttpCarrier {
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("an HTTP client with a time-out builds"),
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }
}

impl Carrier for HttpCarrier {
    fn book<'a>(&'a self, booking: Booking<'a>) -> BoxFuture<'a, Result<String, CarrierError>> {
        Box::pin(async move {
            let body = serde_json::json!({
                "order_id": booking.order_id,
                "label": booking.label,
                "callback_url": booking.callback_url,
            });
            let response = self
                .client
                .post(format!("{}/v1/shipments", self.base_url))
                .header("idempotency-key", booking.idempotency_key)
                .json(&body)
                .send()
                .await
                .map_err(|e| CarrierError::Unavailable(e.to_string()))?;
            let response = accepted(response).await?;
            let booked: Booked = response
                .json()
                .await
                .map_err(|e| CarrierError::Unavailable(format!("bad answer: {e}")))?;
            Ok(booked.tracking_number)
        })
    }

    fn cancel<'a>(&'a self, tracking_number: &'a str) -> BoxFuture<'a, Result<(), CarrierError>> {
        Box::pin(async move {
            let response = self
                .client
                .post(format!(
                    "{}/v1/shipments/{tracking_number}/cancel",
                    self.base_url
                ))
                .send()
                .await
                .map_err(|e| CarrierError::Unavailable(e.to_string()))?;
            match accepted(response).await {
                Err(CarrierError::Refused(text)) if text.contains("ALREADY_PICKED_UP") => {
                    Err(CarrierError::AlreadyPickedUp)
                }
                other => other.map(drop),
            }
        })
    }
}
