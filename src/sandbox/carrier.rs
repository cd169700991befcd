//! The sandbox carrier: `POST /v1/shipments {order_id, label, callback_url}` (with an
//! `Idempotency-Key`: the same key books once) answers a tracking number, then the shipment
//! advances `ready -> shipping -> delivered`, one step per configured interval, and each step is
//! posted to the callback URL signed with HMAC-SHA256 (retried with backoff while the engine is
//! unreachable). `GET /v1/shipments/{tracking_number}` reads one;
//! `POST /v1/shipments/{tracking_number}/cancel` calls a `ready` one off (`409
//! ALREADY_PICKED_UP` once it is shipping).

use crate::domain::time::{Clock, SystemClock};
use crate::sandbox::reply::{deliver, refuse};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct SandboxShipment {
    pub tracking_number: String,
    pub order_id: String,
    pub status: &'static str,
}

#[derive(Default)]
struct Shipments {
    by_tracking: HashMap<String, SandboxShipment>,
    by_key: HashMap<String, String>,
}

#[derive(Clone)]
struct CarrierState {
    shipments: Arc<Mutex<Shipments>>,
    step: Duration,
    lag: Duration,
    secret: Arc<[u8]>,
    client: reqwest::Client,
}

/// The carrier: a shipment moves a step every `step`, and the engine hears of each `lag`
/// after it was taken.
pub fn router(step: Duration, lag: Duration, secret: Vec<u8>) -> Router {
    let state = CarrierState {
        shipments: Arc::default(),
        step,
        lag,
        secret: secret.into(),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("an HTTP client builds"),
    };
    Router::new()
        .route("/v1/shipments", post(book))
        .route("/v1/shipments/{tracking}", get(read))
        .route("/v1/shipments/{tracking}/cancel", post(cancel))
        .with_state(state)
}

#[derive(Deserialize)]
struct Book {
    order_id: String,
    label: String,
    callback_url: String,
}

async fn book(
    State(c): State<CarrierState>,
    headers: HeaderMap,
    Json(req): Json<Book>,
) -> Response {
    if req.label.trim().is_empty() || !req.callback_url.starts_with("http") {
        return refuse(
            400,
            "INVALID_REQUEST",
            "a label and an http callback_url are required",
        );
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let shipment = {
        let mut all = c.shipments.lock().expect("sandbox lock");
        if let Some(tracking) = key.as_ref().and_then(|k| all.by_key.get(k)) {
            let known = all.by_tracking[tracking].clone();
            return (StatusCode::CREATED, Json(known)).into_response();
        }
        let tracking = format!("SBX{:012}", rand::random::<u64>() % 1_000_000_000_000);
        let shipment = SandboxShipment {
            tracking_number: tracking.clone(),
            order_id: req.order_id,
            status: "ready",
        };
        all.by_tracking.insert(tracking.clone(), shipment.clone());
        if let Some(k) = key {
            all.by_key.insert(k, tracking);
        }
        shipment
    };
    tokio::spawn(advance(
        c,
        shipment.tracking_number.clone(),
        req.callback_url,
    ));
    (StatusCode::CREATED, Json(shipment)).into_response()
}

/// Moves the shipment along and tells the engine of each step, `lag` after taking it (the
/// next step follows the telling).
async fn advance(c: CarrierState, tracking: String, callback_url: String) {
    for status in ["shipping", "delivered"] {
        tokio::time::sleep(c.step).await;
        let order_id = {
            let mut all = c.shipments.lock().expect("sandbox lock");
            let Some(s) = all.by_tracking.get_mut(&tracking) else {
                return;
            };
            if s.status == "cancelled" {
                return;
            }
            s.status = status;
            s.order_id.clone()
        };
        let body = serde_json::json!({
            "tracking_number": tracking, "order_id": order_id, "status": status,
            "at": SystemClock.now().to_rfc3339(),
        })
        .to_string();
        tokio::time::sleep(c.lag).await;
        deliver(&c.client, &callback_url, &c.secret, body).await;
    }
}

async fn cancel(State(c): State<CarrierState>, Path(tracking): Path<String>) -> Response {
    let mut all = c.shipments.lock().expect("sandbox lock");
    match all.by_tracking.get_mut(&tracking) {
        Some(s) if matches!(s.status, "ready" | "cancelled") => {
            s.status = "cancelled";
            Json(s.clone()).into_response()
        }
        Some(_) => refuse(409, "ALREADY_PICKED_UP", "the parcel is on its way"),
        None => refuse(404, "NOT_FOUND", "no such shipment"),
    }
}

async fn read(State(c): State<CarrierState>, Path(tracking): Path<String>) -> Response {
    let all = c.shipments.lock().expect("sandbox lock");
    match all.by_tracking.get(&tracking) {
        Some(s) => Json(s.clone()).into_response(),
        None => refuse(404, "NOT_FOUND", "no such shipment"),
    }
}
