//! Payments and carrier callbacks: `POST /payments/confirm` (the engine confirms with the
//! gateway over HTTP, verifying the amount), the gateway's signed webhook, and the carrier's
//! signed progress callbacks.

use crate::domain::order::ShipmentStatus;
use crate::domain::time::Timestamp;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{ApiJson, AuthUser};
use crate::http::idempotency::{self, Remembered};
use crate::http::order_body::{self, OrderDetail};
use crate::http::orders::{order_id, requester};
use crate::http::state::AppState;
use crate::integrations::signature;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(confirm_payment))
        .routes(routes!(payment_webhook))
        .routes(routes!(carrier_callback))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"order_id": "o8f14e45fceea167a5a36dedd", "payment_key": "pk_5b0e1f3c9d2a4e6b8c7d9e0f1a2b3c4d", "amount": 25800})))]
pub struct ConfirmRequest {
    pub order_id: String,
    /// The gateway's key for the payment, as the checkout page returned it.
    #[schema(min_length = 1, max_length = 200)]
    pub payment_key: String,
    /// Minor units; must be the order's total.
    pub amount: i64,
}

/// Confirms the payment with the gateway; 200 with the paid order.
#[utoipa::path(post, path = "/api/v1/payments/confirm", tag = "payments",
    security(("bearer" = [])), request_body = ConfirmRequest,
    responses((status = 200, body = OrderDetail), (status = 400, body = Problem),
        (status = 402, body = Problem), (status = 409, body = Problem),
        (status = 503, body = Problem)))]
pub async fn confirm_payment(
    user: AuthUser,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ConfirmRequest>,
) -> Result<Response, ApiError> {
    let id = order_id(req.order_id)?;
    if req.payment_key.is_empty() || req.payment_key.chars().count() > 200 {
        return Err(ApiError::invalid_body(
            "payment_key must be 1 to 200 characters",
        ));
    }
    let by = requester(&user);
    let request = format!("{}\n{}", req.payment_key, req.amount);
    let key = idempotency::key(&headers)?;
    let call = Remembered::new(&state, &by, &id, "confirm", key, &request);
    call.run(async move {
        let order = state
            .orders
            .pay(by, &id, req.payment_key, req.amount)
            .await?;
        Ok((
            StatusCode::OK,
            order_body::detail(&state.orders, &id, &order).await?,
        ))
    })
    .await
}

#[derive(Deserialize, ToSchema)]
pub struct WebhookData {
    pub payment_key: String,
    pub order_id: String,
    /// `DONE`, `ABORTED`, `EXPIRED`, `CANCELED`, ...
    pub status: String,
    /// Why a payment failed (`ABORTED`).
    #[serde(default)]
    pub failure: Option<WebhookFailure>,
}

#[derive(Deserialize, ToSchema)]
pub struct WebhookFailure {
    pub code: String,
    pub message: String,
}

#[derive(Deserialize, ToSchema)]
#[schema(examples(json!({"event_type": "PAYMENT_STATUS_CHANGED", "data": {"payment_key": "pk_5b0e1f3c9d2a4e6b8c7d9e0f1a2b3c4d", "order_id": "o8f14e45fceea167a5a36dedd", "status": "DONE"}})))]
pub struct WebhookEvent {
    pub event_type: String,
    pub data: WebhookData,
}

/// Verifies the body's signature (`X-Emporium-Signature`, hex HMAC-SHA256 of the raw body with
/// the shared secret); `401 invalid_signature` otherwise.
fn signed<T: serde::de::DeserializeOwned>(
    key: &[u8],
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, ApiError> {
    let presented = headers
        .get(signature::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !signature::verify(key, body, presented) {
        return Err(ApiError::unauthorized(
            "invalid_signature",
            "the signature does not match the body",
        ));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::invalid_body(e.to_string()))
}

/// A payment status change from the gateway.
#[utoipa::path(post, path = "/api/v1/payments/webhook", tag = "payments",
    request_body = WebhookEvent,
    responses((status = 200), (status = 401, body = Problem), (status = 503, body = Problem)))]
pub async fn payment_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let event: WebhookEvent = signed(&state.webhook_secret, &headers, &body)?;
    let id = order_id(event.data.order_id)?;
    tracing::info!(order_id = %id, event = event.event_type, status = event.data.status, "payment webhook");
    state
        .orders
        .payment_event(
            &id,
            event.data.payment_key,
            &event.data.status,
            event.data.failure.map(|f| f.message),
        )
        .await?;
    Ok(StatusCode::OK)
}

#[derive(Deserialize, ToSchema)]
#[schema(examples(json!({"tracking_number": "SBX1234567890", "order_id": "o8f14e45fceea167a5a36dedd", "status": "shipping", "at": "2026-12-02T09:30:00+09:00"})))]
pub struct CarrierEvent {
    pub tracking_number: String,
    pub order_id: String,
    /// `ready`, `shipping` or `delivered`.
    pub status: String,
    pub at: String,
}

/// A shipment's progress from the carrier (signed like webhooks, with the carrier's secret).
#[utoipa::path(post, path = "/api/v1/shipments/callback", tag = "payments",
    request_body = CarrierEvent,
    responses((status = 200), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn carrier_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let event: CarrierEvent = signed(&state.carrier_secret, &headers, &body)?;
    let id = order_id(event.order_id)?;
    let status = ShipmentStatus::parse(&event.status)
        .ok_or_else(|| ApiError::invalid_body("status must be ready, shipping or delivered"))?;
    let at = Timestamp::parse_rfc3339(&event.at)
        .ok_or_else(|| ApiError::invalid_body("at must be an RFC 3339 time"))?;
    state
        .orders
        .track(&id, event.tracking_number, status, at)
        .await?;
    Ok(StatusCode::OK)
}
