//! The sandbox payment gateway, in the shape of TossPayments: the checkout step creates a
//! payment (`POST /v1/payments`), the merchant confirms it (`POST /v1/payments/confirm`, the
//! amount must match), cancels it in full or in part (`POST /v1/payments/{key}/cancel`, with an
//! `Idempotency-Key`), and reads it (`GET /v1/payments/{key}`). Test cards: `4000000000000002`
//! is declined for insufficient funds; `4000000000000119` is captured but its confirmation
//! answers only after a long delay (a time-out for the caller). `GET /v1/audit` lists every
//! payment with how many times it was captured, for the tests' audits. The checkout page a
//! shopper is sent to is `checkout.rs`.
//!
//! Like the real gateway, every status change (a confirmation's outcome, a cancel) is also
//! posted to the merchant's webhook URL as `{event_type: "PAYMENT_STATUS_CHANGED", data:
//! {payment_key, order_id, status, failure?: {code, message}}}`, signed, retried while the merchant is unreachable; the
//! engine may hear of an outcome from the webhook before (or after) its own confirmation call.

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

pub const DECLINED_CARD: &str = "4000000000000002";
pub const TIMEOUT_CARD: &str = "4000000000000119";

#[derive(Debug, Clone, Serialize)]
pub struct SandboxPayment {
    pub payment_key: String,
    pub order_id: String,
    pub status: &'static str,
    pub total_amount: i64,
    pub balance_amount: i64,
    pub approved_at: Option<String>,
    /// How many times the payment was captured (must never exceed 1).
    pub captures: u32,
    pub cancels: Vec<i64>,
    #[serde(skip)]
    card: String,
}

#[derive(Default)]
struct Gateway {
    payments: HashMap<String, SandboxPayment>,
    /// Cancel answers by idempotency key.
    cancels: HashMap<String, SandboxPayment>,
}

#[derive(Clone)]
pub(super) struct Pg {
    state: Arc<Mutex<Gateway>>,
    delay: Duration,
    webhooks: Webhooks,
}

/// Where status changes are posted, signed with `secret`.
#[derive(Clone)]
pub(super) struct Webhooks {
    url: Arc<str>,
    secret: Arc<[u8]>,
    client: reqwest::Client,
}

impl Webhooks {
    pub(super) fn new(url: String, secret: Vec<u8>) -> Self {
        Self {
            url: url.into(),
            secret: secret.into(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("an HTTP client builds"),
        }
    }

    /// Tells the merchant of `p`'s status, in the background.
    fn send(&self, p: &SandboxPayment) {
        let mut data = serde_json::json!({"payment_key": p.payment_key,
            "order_id": p.order_id, "status": p.status});
        if p.status == "ABORTED" {
            data["failure"] =
                serde_json::json!({"code": "REJECT_CARD_PAYMENT", "message": "insufficient_funds"});
        }
        let body =
            serde_json::json!({"event_type": "PAYMENT_STATUS_CHANGED", "data": data}).to_string();
        let hooks = self.clone();
        tokio::spawn(async move { deliver(&hooks.client, &hooks.url, &hooks.secret, body).await });
    }
}

impl Pg {
    /// A gateway with no payments; the time-out card answers after `timeout_card_delay`.
    pub(super) fn new(timeout_card_delay: Duration, webhooks: Webhooks) -> Self {
        Pg {
            state: Arc::default(),
            delay: timeout_card_delay,
            webhooks,
        }
    }
}

/// The merchant API (the checkout page's routes are `checkout`'s).
pub(super) fn routes() -> Router<Pg> {
    Router::new()
        .route("/v1/payments", post(create))
        .route("/v1/payments/confirm", post(confirm))
        .route("/v1/payments/{key}", get(read))
        .route("/v1/payments/{key}/cancel", post(cancel))
        .route("/v1/audit", get(audit))
}

#[derive(Deserialize)]
pub(super) struct Create {
    pub order_id: String,
    pub amount: i64,
    pub card_number: String,
}

async fn create(State(pg): State<Pg>, Json(req): Json<Create>) -> Response {
    match pg.register(req) {
        Ok(payment) => (StatusCode::CREATED, Json(payment)).into_response(),
        Err((code, message)) => refuse(400, code, message),
    }
}

impl Pg {
    /// A payment the shopper authorised at checkout, waiting for the merchant's confirmation.
    /// Refusals are `(code, message)` in the gateway's words.
    pub(super) fn register(
        &self,
        req: Create,
    ) -> Result<SandboxPayment, (&'static str, &'static str)> {
        if req.card_number.len() != 16 || !req.card_number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(("INVALID_CARD_NUMBER", "a card number has 16 digits"));
        }
        if req.amount <= 0 {
            return Err(("INVALID_REQUEST", "the amount must be positive"));
        }
        let payment_key = format!("pk_{:032x}", rand::random::<u128>());
        let payment = SandboxPayment {
            payment_key: payment_key.clone(),
            order_id: req.order_id,
            status: "READY",
            total_amount: req.amount,
            balance_amount: req.amount,
            approved_at: None,
            captures: 0,
            cancels: vec![],
            card: req.card_number,
        };
        let mut gateway = self.state.lock().expect("sandbox lock");
        gateway.payments.insert(payment_key, payment.clone());
        Ok(payment)
    }
}

#[derive(Deserialize)]
struct Confirm {
    payment_key: String,
    order_id: String,
    amount: i64,
}

async fn confirm(State(pg): State<Pg>, Json(req): Json<Confirm>) -> Response {
    let (answer, hang) = {
        let mut gateway = pg.state.lock().expect("sandbox lock");
        let Some(p) = gateway.payments.get_mut(&req.payment_key) else {
            return refuse(404, "NOT_FOUND_PAYMENT", "no such payment");
        };
        if p.order_id != req.order_id || p.total_amount != req.amount {
            return refuse(400, "INVALID_REQUEST", "the order or amount does not match");
        }
        match p.status {
            "READY" => {}
            "ABORTED" => return refuse(403, "REJECT_CARD_PAYMENT", "insufficient_funds"),
            _ => return refuse(400, "ALREADY_PROCESSED_PAYMENT", "already processed"),
        }
        if p.card == DECLINED_CARD {
            p.status = "ABORTED";
            pg.webhooks.send(p);
            return refuse(403, "REJECT_CARD_PAYMENT", "insufficient_funds");
        }
        p.status = "DONE";
        p.captures += 1;
        p.approved_at = Some(SystemClock.now().to_rfc3339());
        pg.webhooks.send(p);
        (p.clone(), p.card == TIMEOUT_CARD)
    };
    if hang {
        tokio::time::sleep(pg.delay).await;
    }
    Json(answer).into_response()
}

async fn read(State(pg): State<Pg>, Path(key): Path<String>) -> Response {
    let gateway = pg.state.lock().expect("sandbox lock");
    match gateway.payments.get(&key) {
        Some(p) => Json(p.clone()).into_response(),
        None => refuse(404, "NOT_FOUND_PAYMENT", "no such payment"),
    }
}

#[derive(Deserialize)]
struct Cancel {
    reason: String,
    amount: Option<i64>,
}

async fn cancel(
    State(pg): State<Pg>,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(req): Json<Cancel>,
) -> Response {
    let idempotency = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| format!("{key}/{k}"));
    let mut gateway = pg.state.lock().expect("sandbox lock");
    if let Some(done) = idempotency.as_ref().and_then(|k| gateway.cancels.get(k)) {
        return Json(done.clone()).into_response();
    }
    let Some(p) = gateway.payments.get_mut(&key) else {
        return refuse(404, "NOT_FOUND_PAYMENT", "no such payment");
    };
    // TossPayments' codes for each refusal.
    if p.status == "CANCELED" {
        return refuse(
            400,
            "ALREADY_CANCELED_PAYMENT",
            "the payment was cancelled already",
        );
    }
    if !matches!(p.status, "DONE" | "PARTIAL_CANCELED") {
        return refuse(403, "NOT_CANCELABLE_PAYMENT", "the payment is not captured");
    }
    let amount = req.amount.unwrap_or(p.balance_amount);
    if amount <= 0 || req.reason.is_empty() {
        return refuse(400, "INVALID_REQUEST", "bad cancel amount or reason");
    }
    if amount > p.balance_amount {
        return refuse(
            403,
            "NOT_CANCELABLE_AMOUNT",
            "more than the payment's balance",
        );
    }
    p.balance_amount -= amount;
    p.cancels.push(amount);
    p.status = if p.balance_amount == 0 {
        "CANCELED"
    } else {
        "PARTIAL_CANCELED"
    };
    let answer = p.clone();
    pg.webhooks.send(&answer);
    if let Some(k) = idempotency {
        gateway.cancels.insert(k, answer.clone());
    }
    Json(answer).into_response()
}

async fn audit(State(pg): State<Pg>) -> Json<Vec<SandboxPayment>> {
    let gateway = pg.state.lock().expect("sandbox lock");
    Json(gateway.payments.values().cloned().collect())
}
