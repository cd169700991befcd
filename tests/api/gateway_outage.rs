//! A payment gateway that stops confirming while a confirmation is under way: the order's stock
//! hold must outlast the outage however long it is, a payment is never captured for units the
//! SKU has let go, and a webhook settles nothing the gateway does not say. The gateway is the
//! real sandbox, served on its own port behind a switch that answers its confirmations 503
//! while it is "down" (reading a payment still works).

use crate::helpers::{OPERATOR_TOKEN, TestApp, assert_problem, ok, product_with_sku, send};
use crate::orders::{CARD, confirm, order_of, stock, until_status, until_stock};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::IntoResponse;
use emporium::sandbox::{SandboxConfig, router};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The sandbox gateway on a port of its own; its address, and the switch that takes its
/// confirmations down.
async fn gateway() -> (String, Arc<AtomicBool>) {
    let down = Arc::new(AtomicBool::new(false));
    let config = SandboxConfig {
        carrier_step: Duration::from_secs(1),
        carrier_callback_lag: Duration::ZERO,
        timeout_card_delay: Duration::from_secs(1),
        carrier_secret: b"test".to_vec(),
        webhook_url: String::new(),
        webhook_secret: b"test".to_vec(),
    };
    let switch = |State(down): State<Arc<AtomicBool>>, req: Request, next: Next| async move {
        if down.load(Ordering::SeqCst) && req.uri().path().ends_with("/confirm") {
            return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
        }
        next.run(req).await
    };
    let app = router(config).layer(axum::middleware::from_fn_with_state(down.clone(), switch));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, down)
}

/// An app whose orders wait 2 s, whose SKUs hold 1 s longer, and whose steps retry within
/// a few hundred milliseconds for as long as the test needs, paying at `gateway`.
async fn app_paying_at(gateway: &str) -> TestApp {
    let base_url = format!("{gateway}/sandbox/pg");
    crate::helpers::spawn_app_with(&[
        ("EMPORIUM__PAYMENTS__BASE_URL", base_url.as_str()),
        ("EMPORIUM__PAYMENTS__TIMEOUT_MS", "400"),
        ("EMPORIUM_ORDER_TTL_SECS", "2"),
        ("EMPORIUM__ORDERS__RESERVATION_GRACE_SECS", "1"),
        ("EMPORIUM__OUTBOX__POLL_MS", "50"),
        ("EMPORIUM__OUTBOX__BASE_BACKOFF_MS", "50"),
        ("EMPORIUM__OUTBOX__MAX_BACKOFF_MS", "200"),
        ("EMPORIUM__OUTBOX__MAX_ATTEMPTS", "1000"),
        ("EMPORIUM__ENTITIES__REMINDER_POLL_MS", "20"),
    ])
    .await
}

/// The shopper's card authorised at `gateway` for `order`; the payment key.
async fn authorised(app: &TestApp, gateway: &str, order: &Value) -> String {
    let body =
        json!({"order_id": order["order_id"], "amount": order["total"], "card_number": CARD});
    let url = format!("{gateway}/sandbox/pg/v1/payments");
    let r = app.client.post(url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["payment_key"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A shopper's order of the last unit of a new SKU, its payment authorised, and its
/// confirmation cut off by the gateway (`503 payment_pending`).
struct CutOff {
    gateway: String,
    down: Arc<AtomicBool>,
    app: TestApp,
    buyer: String,
    order: Value,
    key: String,
}

async fn cut_off(name: &str, sku: &str, email: &str) -> CutOff {
    let (gateway, down) = gateway().await;
    let app = app_paying_at(&gateway).await;
    product_with_sku(&app, name, sku, 10000, 1).await;
    let (_, buyer, _) = app.customer(email).await;
    let order = order_of(&app, &buyer, sku, 1).await;
    let key = authorised(&app, &gateway, &order).await;
    down.store(true, Ordering::SeqCst);
    let r = confirm(&app, &buyer, &order, &key, 10000).await;
    assert_problem(r, 503, "payment_pending").await;
    CutOff {
        gateway,
        down,
        app,
        buyer,
        order,
        key,
    }
}

/// The payment as the gateway has it.
async fn payment_at(app: &TestApp, gateway: &str, key: &str) -> Value {
    let url = format!("{gateway}/sandbox/pg/v1/payments/{key}");
    let r = app.client.get(url).send().await.unwrap();
    r.json().await.unwrap()
}

/// Given the last unit ordered and its payment confirmation cut off by a gateway outage that
/// outlasts the order's wait and the SKU's grace, when the gateway comes back, then the
/// engine's own retry captures the payment for a unit that was held all along: no other
/// shopper could order it meanwhile, and it ends sold once, to the payer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_outage_during_a_confirmation_keeps_the_units_held_until_it_is_captured() {
    let CutOff {
        down,
        app,
        buyer,
        order,
        ..
    } = cut_off("Last mug", "mug-last", "held@example.com").await;

    // The operator's outbox says since when the confirmation is owed, whatever its retries
    let outbox = || async {
        let r = send(&app, "GET", "/api/v1/admin/outbox", OPERATOR_TOKEN, None).await;
        ok(r).await["oldest_pending_at"].clone()
    };
    let owed_since = outbox().await;
    assert!(owed_since.is_string(), "{owed_since}");
    // Past the order's wait and the SKU's grace (2 s + 1 s), the unit is still held
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    assert_eq!(stock(&app, "mug-last").await, (0, 1, 0));
    assert_eq!(
        outbox().await,
        owed_since,
        "the step's age, not its next retry"
    );
    let (_, other, _) = app.customer("other@example.com").await;
    let body = json!({"items": [{"sku_id": "mug-last", "quantity": 1}],
        "shipping_address": crate::orders::address()});
    let r = crate::orders::place(&app, &other, "other-1", body).await;
    assert_problem(r, 409, "insufficient_stock").await;

    down.store(false, Ordering::SeqCst);
    let id = order["order_id"].as_str().unwrap();
    until_status(&app, &buyer, id, "paid").await;
    until_stock(&app, "mug-last", (0, 0, 1)).await;
}

/// Given a confirmation under way whose hold is let go before the payment is captured (an
/// operator releasing it by hand while the gateway is down: what a confirmation begun by an
/// older build meets when its hold lapsed), when the gateway comes back, then the payment is
/// not captured and the order fails as `reservation_lapsed`, its unit on the shelf.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_is_not_captured_once_its_orders_hold_was_let_go() {
    let CutOff {
        gateway,
        down,
        app,
        buyer,
        order,
        key,
    } = cut_off("Let-go mug", "mug-gone", "gone@example.com").await;
    let id = order["order_id"].as_str().unwrap();
    let release = format!("/api/v1/admin/skus/mug-gone/reservations/{id}");
    ok(send(&app, "DELETE", &release, OPERATOR_TOKEN, None).await).await;

    down.store(false, Ordering::SeqCst);
    let failed = until_status(&app, &buyer, id, "payment_failed").await;
    assert_eq!(
        failed["payment"]["reason"], "reservation_lapsed",
        "{failed}"
    );
    let payment = payment_at(&app, &gateway, &key).await;
    assert_eq!(payment["status"], "READY", "never captured: {payment}");
    assert_eq!(stock(&app, "mug-gone").await, (1, 0, 0));
}

/// Given a confirmation cut off by the gateway, when a webhook signed with the engine's secret
/// says the payment is DONE (as anyone who learnt the secret could send), then the engine asks
/// the gateway, which has captured nothing: the order stays unpaid; and once the gateway
/// confirms again, the engine's own retry captures the payment and the order is paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_settles_only_what_the_gateway_says() {
    let CutOff {
        gateway,
        down,
        app,
        buyer,
        order,
        key,
    } = cut_off("Forged mug", "mug-forged", "forged@example.com").await;
    let id = order["order_id"].as_str().unwrap();
    let body = json!({"event_type": "PAYMENT_STATUS_CHANGED",
        "data": {"payment_key": key, "order_id": id, "status": "DONE"}})
    .to_string();
    let signature =
        emporium::integrations::signature::sign(b"sandbox-webhook-secret", body.as_bytes());
    let r = app
        .client
        .post(app.url("/api/v1/payments/webhook"))
        .header(emporium::integrations::signature::HEADER, signature)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let detail = crate::orders::detail(&app, &buyer, id).await;
    assert_eq!(detail["status"], "awaiting_payment", "{detail}");
    assert_eq!(detail["payment"]["status"], "confirming", "{detail}");

    down.store(false, Ordering::SeqCst);
    until_status(&app, &buyer, id, "paid").await;
    let payment = payment_at(&app, &gateway, &key).await;
    assert_eq!(
        payment["status"], "DONE",
        "captured by the engine: {payment}"
    );
}
