//! Order journeys over real HTTP against the sandbox gateway and carrier served by the same
//! binary: paid and delivered, declined, wrong amount, gateway time-out, cancel with refund,
//! expiry, return, exchange, the last unit raced, Idempotency-Key replays, signatures.

use crate::helpers::{
    OPERATOR_TOKEN, TestApp, assert_problem, ok, product_with_sku, send, spawn_app_full,
    spawn_app_with,
};
use emporium::domain::time::{Clock, ManualClock, SystemClock};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub(crate) const CARD: &str = "4111111111111111";

/// Fast carrier and a short gateway time-out, so journeys take a second.
pub(crate) const FAST: &[(&str, &str)] = &[
    ("EMPORIUM_CARRIER_STEP_SECS", "0.05"),
    ("EMPORIUM__PAYMENTS__TIMEOUT_MS", "400"),
    ("EMPORIUM__SANDBOX__TIMEOUT_CARD_DELAY_MS", "1500"),
    ("EMPORIUM__OUTBOX__POLL_MS", "50"),
];

pub(crate) fn address() -> Value {
    json!({"name": "Kim", "phone": "010-1234-5678", "address": "1 Main St, Seoul"})
}

/// A product with one SKU of `stock` units at 10,000.
async fn product(app: &TestApp, sku: &str, stock: u64) {
    product_with_sku(app, "Mug", sku, 10000, stock).await;
}

pub(crate) async fn place(app: &TestApp, token: &str, key: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/orders"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn order_of(app: &TestApp, token: &str, sku: &str, qty: u32) -> Value {
    let key = format!("k-{}", rand_suffix());
    let body = json!({"items": [{"sku_id": sku, "quantity": qty}], "shipping_address": address()});
    let r = place(app, token, &key, body).await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

pub(crate) fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// What the checkout widget does: the shopper's card at the sandbox gateway.
pub(crate) async fn payment_key(app: &TestApp, order: &Value, card: &str) -> String {
    let body =
        json!({"order_id": order["order_id"], "amount": order["total"], "card_number": card});
    let r = app.post_json("/sandbox/pg/v1/payments", body).await;
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["payment_key"]
        .as_str()
        .unwrap()
        .to_string()
}

pub(crate) async fn confirm(
    app: &TestApp,
    token: &str,
    order: &Value,
    key: &str,
    amount: i64,
) -> reqwest::Response {
    let body = json!({"order_id": order["order_id"], "payment_key": key, "amount": amount});
    send(app, "POST", "/api/v1/payments/confirm", token, Some(body)).await
}

pub(crate) async fn stock(app: &TestApp, sku: &str) -> (u64, u64, u64) {
    let r = ok(app.inspect("sku", sku).await).await;
    let s = &r["state"];
    (
        s["available"].as_u64().unwrap(),
        s["reserved"].as_u64().unwrap(),
        s["sold"].as_u64().unwrap(),
    )
}

/// Polls the SKU's levels until they are `want` (available, reserved, sold): its steps run in
/// the background. Fails after 10 s with the levels it last saw.
pub(crate) async fn until_stock(app: &TestApp, sku: &str, want: (u64, u64, u64)) {
    for _ in 0..500 {
        if stock(app, sku).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stock(app, sku).await, want, "{sku}");
}

pub(crate) async fn detail(app: &TestApp, token: &str, id: &str) -> Value {
    ok(send(app, "GET", &format!("/api/v1/orders/{id}"), token, None).await).await
}

/// Polls the order until it reaches `status` (the carrier and the dispatcher work in the
/// background).
pub(crate) async fn until_status(app: &TestApp, token: &str, id: &str, status: &str) -> Value {
    for _ in 0..200 {
        let d = detail(app, token, id).await;
        if d["status"] == status {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "order {id} never reached {status}: {}",
        detail(app, token, id).await
    );
}

/// The shopper's notification of `kind` about order `id`, once it is in their inbox.
pub(crate) async fn until_notice(app: &TestApp, token: &str, id: &str, kind: &str) -> Value {
    let path = "/api/v1/users/me/notifications";
    for _ in 0..200 {
        let notes = ok(send(app, "GET", path, token, None).await).await;
        let found = notes["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["kind"] == kind && n["order_id"] == id)
            .cloned();
        if let Some(note) = found {
            return note;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no {kind} notification about {id}");
}

pub(crate) async fn audit(app: &TestApp) -> Vec<Value> {
    let r = app
        .client
        .get(app.url("/sandbox/pg/v1/audit"))
        .send()
        .await
        .unwrap();
    r.json().await.unwrap()
}

/// An order of `qty` units of `sku` paid `amount` with the test card; the order and its
/// payment key.
async fn paid_order(
    app: &TestApp,
    token: &str,
    sku: &str,
    qty: u32,
    amount: i64,
) -> (Value, String) {
    let order = order_of(app, token, sku, qty).await;
    let key = payment_key(app, &order, CARD).await;
    ok(confirm(app, token, &order, &key, amount).await).await;
    (order, key)
}

#[tokio::test]
async fn a_paid_order_ships_and_is_delivered_with_notifications() {
    let app = spawn_app_with(FAST).await;
    product(&app, "mug", 5).await;
    let (_, token, _) = app.customer("buyer@example.com").await;
    ok(send(
        &app,
        "PUT",
        "/api/v1/cart/items/mug",
        &token,
        Some(json!({"quantity": 2})),
    )
    .await)
    .await;
    let r = place(
        &app,
        &token,
        "cart-1",
        json!({"shipping_address": address()}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let order: Value = r.json().await.unwrap();
    assert_eq!(order["status"], "awaiting_payment");
    assert_eq!(order["total"], 20000);
    assert!(
        order["payment"]["checkout_url"]
            .as_str()
            .unwrap()
            .contains("order_id=")
    );
    assert_eq!(stock(&app, "mug").await, (3, 2, 0));

    let key = payment_key(&app, &order, CARD).await;
    let paid = ok(confirm(&app, &token, &order, &key, 20000).await).await;
    assert_eq!(paid["status"], "paid");
    assert_eq!(
        stock(&app, "mug").await,
        (3, 0, 2),
        "reserved units are sold"
    );
    let cart = ok(send(&app, "GET", "/api/v1/cart", &token, None).await).await;
    assert_eq!(
        cart["items"].as_array().unwrap().len(),
        0,
        "the cart is cleared"
    );

    let id = order["order_id"].as_str().unwrap();
    let shipped = ok(send(
        &app,
        "POST",
        &format!("/api/v1/admin/orders/{id}/ship"),
        OPERATOR_TOKEN,
        None,
    )
    .await)
    .await;
    assert!(
        shipped["shipment"]["tracking_number"]
            .as_str()
            .unwrap()
            .starts_with("SBX")
    );
    let done = until_status(&app, &token, id, "delivered").await;
    let history: Vec<&str> = done["status_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        history,
        [
            "awaiting_payment",
            "paid",
            "preparing",
            "shipped",
            "delivered"
        ]
    );
    let shipment = ok(send(
        &app,
        "GET",
        &format!("/api/v1/orders/{id}/shipment"),
        &token,
        None,
    )
    .await)
    .await;
    assert_eq!(shipment["status"], "delivered");
    assert_eq!(shipment["events"].as_array().unwrap().len(), 3);

    let notes = ok(send(&app, "GET", "/api/v1/users/me/notifications", &token, None).await).await;
    let kinds: Vec<&str> = notes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["order_delivered", "order_shipped", "order_paid"]);
    assert!(
        notes["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["order_id"] == json!(id)),
        "each names its order: {notes}"
    );
    // Each notification is mailed too, through the same outbox step.
    let mails: Value = app
        .client
        .get(app.url("/api/v1/dev/mailbox"))
        .query(&[("email", "buyer@example.com")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let subjects: Vec<&str> = mails["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    for text in [
        "Your order is paid.",
        "on its way",
        "Your order was delivered.",
    ] {
        assert!(
            subjects.iter().any(|s| s.contains(text) && s.contains(id)),
            "no mail saying {text:?}: {subjects:?}"
        );
    }
    let list = ok(send(&app, "GET", "/api/v1/orders", &token, None).await).await;
    assert_eq!(list["items"][0]["order_id"], id);
    let captures: u64 = audit(&app)
        .await
        .iter()
        .map(|p| p["captures"].as_u64().unwrap())
        .sum();
    assert_eq!(captures, 1);

    let outbox = ok(send(&app, "GET", "/api/v1/admin/outbox", OPERATOR_TOKEN, None).await).await;
    assert_eq!(outbox["steps_pending"], 0, "nothing left to do: {outbox}");
    assert_eq!(outbox["dead_letters"], 0);
    let r = send(&app, "GET", "/api/v1/admin/outbox", &token, None).await;
    assert_eq!(r.status(), 403, "the outbox is for admins");
}

#[tokio::test]
async fn a_declined_card_fails_the_order_and_gives_the_stock_back() {
    let app = spawn_app_with(FAST).await;
    product(&app, "mug", 5).await;
    let (_, token, _) = app.customer("declined@example.com").await;
    let order = order_of(&app, &token, "mug", 1).await;
    let key = payment_key(&app, &order, "4000000000000002").await;
    let body = assert_problem(
        confirm(&app, &token, &order, &key, 10000).await,
        402,
        "payment_declined",
    )
    .await;
    assert_eq!(body["reason"], "insufficient_funds");
    let id = order["order_id"].as_str().unwrap();
    assert_eq!(detail(&app, &token, id).await["status"], "payment_failed");
    assert_eq!(stock(&app, "mug").await, (5, 0, 0));
}

#[tokio::test]
async fn a_wrong_amount_is_refused_and_the_order_fails() {
    let app = spawn_app_with(FAST).await;
    product(&app, "mug", 5).await;
    let (_, token, _) = app.customer("cheat@example.com").await;
    let order = order_of(&app, &token, "mug", 2).await;
    let key = payment_key(&app, &order, CARD).await;
    assert_problem(
        confirm(&app, &token, &order, &key, 100).await,
        400,
        "amount_mismatch",
    )
    .await;
    let id = order["order_id"].as_str().unwrap();
    assert_eq!(detail(&app, &token, id).await["status"], "payment_failed");
    assert_eq!(stock(&app, "mug").await, (5, 0, 0));
    let captures: u64 = audit(&app)
        .await
        .iter()
        .map(|p| p["captures"].as_u64().unwrap())
        .sum();
    assert_eq!(captures, 0, "nothing was charged");
}

#[tokio::test]
async fn a_gateway_time_out_is_resolved_by_asking_the_gateway_without_charging_twice() {
    let app = spawn_app_with(FAST).await;
    product(&app, "mug", 5).await;
    let (_, token, _) = app.customer("slow@example.com").await;
    let order = order_of(&app, &token, "mug", 1).await;
    let key = payment_key(&app, &order, "4000000000000119").await;
    let paid = ok(confirm(&app, &token, &order, &key, 10000).await).await;
    assert_eq!(paid["status"], "paid");
    let payments = audit(&app).await;
    let p = payments
        .iter()
        .find(|p| p["payment_key"] == key.as_str())
        .unwrap();
    assert_eq!(p["captures"], 1, "captured exactly once");
    assert_eq!(stock(&app, "mug").await, (4, 0, 1));
}

#[tokio::test]
async fn cancelling_a_paid_order_refunds_it_at_the_gateway_and_restocks() {
    let app = spawn_app_with(FAST).await;
    product(&app, "mug", 5).await;
    let (_, token, _) = app.customer("regret@example.com").await;
    let (order, key) = paid_order(&app, &token, "mug", 2, 20000).await;
    let id = order["order_id"].as_str().unwrap();
    let path = format!("/api/v1/orders/{id}/cancel");
    let cancelled = ok(send(&app, "POST", &path, &token, None).await).await;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["payment"]["refunded"], 20000);
    let p = audit(&app)
        .await
        .into_iter()
        .find(|p| p["payment_key"] == key.as_str())
        .unwrap();
    assert_eq!(p["status"], "CANCELED");
    assert_eq!(p["balance_amount"], 0);
    assert_eq!(stock(&app, "mug").await, (5, 0, 0));
    // Cancelling again changes nothing; a delivered order cannot be cancelled (below).
    let again = ok(send(&app, "POST", &path, &token, None).await).await;
    assert_eq!(again["status"], "cancelled");
}

/// The admin reservation routes are operator tools: committing an unpaid order's reservation
/// there sold a unit that its cancellation then lost, so reserving or committing under an
/// order's id is refused (a release by hand stays: `gateway_outage` shows the order copes).
#[tokio::test]
async fn the_admin_reservation_routes_leave_an_orders_reservation_to_its_saga() {
    let app = spawn_app_with(FAST).await;
    product(&app, "mug", 5).await;
    let (user, token, _) = app.customer("held@example.com").await;
    let order = order_of(&app, &token, "mug", 1).await;
    let id = order["order_id"].as_str().unwrap();
    let commit = format!("/api/v1/admin/skus/mug/reservations/{id}/commit");
    let reserve = "/api/v1/admin/skus/mug/reservations";
    let again = json!({"order_id": id, "user_id": user, "quantity": 2});
    for (path, body) in [(commit.as_str(), None), (reserve, Some(again))] {
        let r = send(&app, "POST", path, OPERATOR_TOKEN, body).await;
        assert_problem(r, 409, "held_by_order").await;
    }
    assert_eq!(stock(&app, "mug").await, (4, 1, 0));
    let cancel = format!("/api/v1/orders/{id}/cancel");
    ok(send(&app, "POST", &cancel, &token, None).await).await;
    assert_eq!(stock(&app, "mug").await, (5, 0, 0));
    // A bare counter's reservation (no order of that id) still works.
    let bare = json!({"order_id": "bench-1", "user_id": user, "quantity": 1});
    ok(send(&app, "POST", reserve, OPERATOR_TOKEN, Some(bare)).await).await;
    let commit = "/api/v1/admin/skus/mug/reservations/bench-1/commit";
    ok(send(&app, "POST", commit, OPERATOR_TOKEN, None).await).await;
    assert_eq!(stock(&app, "mug").await, (4, 0, 1));
}

/// An account erased with orders not yet shipped: its address no longer opens, so they
/// could never ship. They are cancelled — the paid one refunded at the gateway — and the
/// stock comes back.
#[tokio::test]
async fn deleting_an_account_cancels_and_refunds_its_orders_not_yet_shipped() {
    let app = spawn_app_with(FAST).await;
    product(&app, "mug", 5).await;
    let (_, token, _) = app.customer("leaving@example.com").await;
    let (paid, key) = paid_order(&app, &token, "mug", 2, 20000).await;
    let unpaid = order_of(&app, &token, "mug", 1).await;
    assert_eq!(stock(&app, "mug").await, (2, 1, 2));
    let r = send(&app, "DELETE", "/api/v1/users/me", &token, None).await;
    assert_eq!(r.status(), 204);
    for (order, refunded) in [(&paid, 20000), (&unpaid, 0)] {
        let id = order["order_id"].as_str().unwrap();
        let r = ok(app.inspect("order", id).await).await;
        assert_eq!(r["state"]["status"], "cancelled", "{id}");
        let got = r["state"]["payment"]["refunded"].as_i64().unwrap_or(0);
        assert_eq!(got, refunded, "{id}");
    }
    let p = audit(&app)
        .await
        .into_iter()
        .find(|p| p["payment_key"] == key.as_str())
        .unwrap();
    assert_eq!(
        (&p["status"], &p["balance_amount"]),
        (&json!("CANCELED"), &json!(0))
    );
    assert_eq!(stock(&app, "mug").await, (5, 0, 0));
}

#[tokio::test]
async fn a_payment_cancelled_at_the_gateway_cancels_the_order_and_restocks() {
    // Given a paid order of two mugs
    let app = spawn_app_with(FAST).await;
    product(&app, "mug", 5).await;
    let (_, token, _) = app.customer("console@example.com").await;
    let (order, key) = paid_order(&app, &token, "mug", 2, 20000).await;
    let id = order["order_id"].as_str().unwrap();
    // When the payment is cancelled at the gateway (its console), which sends its webhook
    let path = format!("/sandbox/pg/v1/payments/{key}/cancel");
    let r = app
        .post_json(&path, json!({"reason": "fraud review"}))
        .await;
    assert_eq!(r.status(), 200);
    // Then the order is cancelled with the refund recorded, its units back on the shelf, and
    // the gateway asked for nothing more (the balance was already 0)
    let d = until_status(&app, &token, id, "cancelled").await;
    assert_eq!(d["payment"]["refunded"], 20000);
    until_stock(&app, "mug", (5, 0, 0)).await;
    let p = audit(&app)
        .await
        .into_iter()
        .find(|p| p["payment_key"] == key.as_str())
        .unwrap();
    assert_eq!(p["cancels"], json!([20000]), "{p}");
    // And the shopper is told it was the payment provider, not them
    let note = until_notice(&app, &token, id, "order_cancelled").await;
    assert_eq!(note["reason"], "gateway", "{note}");
}

#[tokio::test]
async fn an_unpaid_order_expires_and_releases_stock_and_coupon() {
    let clock = ManualClock::starting_at(SystemClock.now());
    let app = spawn_app_full(tempfile::tempdir().unwrap(), FAST, Arc::new(clock.clone())).await;
    product(&app, "mug", 5).await;
    let (_, token, _) = app.customer("late@example.com").await;
    let campaign = json!({"name": "Ten", "code": "TEN", "kind": "percent", "value": 10,
        "scope": {"type": "order"}, "per_user_limit": 1});
    ok(send(
        &app,
        "POST",
        "/api/v1/admin/coupon-campaigns",
        OPERATOR_TOKEN,
        Some(campaign),
    )
    .await)
    .await;
    let claimed = ok(send(
        &app,
        "POST",
        "/api/v1/coupons/claim",
        &token,
        Some(json!({"code": "TEN"})),
    )
    .await)
    .await;
    let body = json!({"items": [{"sku_id": "mug", "quantity": 3}], "coupon_id": claimed["coupon_id"],
        "shipping_address": address()});
    let order: Value = place(&app, &token, "expiring", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(order["total"], 27000);
    let coupons = ok(send(&app, "GET", "/api/v1/users/me/coupons", &token, None).await).await;
    assert_eq!(coupons["items"][0]["status"], "reserved");
    clock.advance(Duration::from_secs(601));
    let id = order["order_id"].as_str().unwrap();
    until_status(&app, &token, id, "expired").await;
    until_stock(&app, "mug", (5, 0, 0)).await;
    let coupons = ok(send(&app, "GET", "/api/v1/users/me/coupons", &token, None).await).await;
    assert_eq!(coupons["items"][0]["status"], "issued");
    let key = payment_key(&app, &order, CARD).await;
    assert_problem(
        confirm(&app, &token, &order, &key, 27000).await,
        409,
        "order_not_payable",
    )
    .await;
}

async fn delivered(app: &TestApp, token: &str, qty: u32) -> String {
    let (order, _) = paid_order(app, token, "mug", qty, 10000 * i64::from(qty)).await;
    let id = order["order_id"].as_str().unwrap().to_string();
    ok(send(
        app,
        "POST",
        &format!("/api/v1/admin/orders/{id}/ship"),
        OPERATOR_TOKEN,
        None,
    )
    .await)
    .await;
    until_status(app, token, &id, "delivered").await;
    id
}

#[tokio::test]
async fn a_return_after_delivery_ends_refunded_and_an_exchange_ships_again() {
    let app = spawn_app_with(FAST).await;
    product(&app, "mug", 10).await;
    let (_, token, _) = app.customer("returns@example.com").await;
    let id = delivered(&app, &token, 2).await;
    let cancel = send(
        &app,
        "POST",
        &format!("/api/v1/orders/{id}/cancel"),
        &token,
        None,
    )
    .await;
    assert_problem(cancel, 409, "order_not_cancellable").await;
    let path = format!("/api/v1/orders/{id}/returns");
    let zero =
        json!({"reason": "chipped", "kind": "return", "items": [{"sku_id": "mug", "quantity": 0}]});
    let r = send(&app, "POST", &path, &token, Some(zero)).await;
    assert_problem(r, 422, "invalid_quantity").await;
    let body =
        json!({"reason": "chipped", "kind": "return", "items": [{"sku_id": "mug", "quantity": 1}]});
    let r = send(
        &app,
        "POST",
        &format!("/api/v1/orders/{id}/returns"),
        &token,
        Some(body),
    )
    .await;
    assert_eq!(r.status(), 201);
    let d = until_status(&app, &token, &id, "refunded").await;
    assert_eq!(d["payment"]["refunded"], 10000);
    assert_eq!(
        stock(&app, "mug").await,
        (9, 0, 1),
        "the returned unit is back in stock"
    );

    let other = delivered(&app, &token, 1).await;
    let body = json!({"reason": "wrong colour", "kind": "exchange"});
    let r = send(
        &app,
        "POST",
        &format!("/api/v1/orders/{other}/returns"),
        &token,
        Some(body),
    )
    .await;
    assert_eq!(r.status(), 201);
    let d = until_status(&app, &token, &other, "delivered").await;
    assert_eq!(d["shipment"]["exchange"], true);
    let statuses: Vec<&str> = d["status_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses.ends_with(&["return_requested", "preparing", "shipped", "delivered"]),
        "{statuses:?}"
    );
}

/// Polls the SKU until it holds no settlement of any order (the saga tells it, in the
/// background, once the order has recorded its own).
async fn until_forgotten(app: &TestApp, sku: &str) {
    for _ in 0..100 {
        let r = ok(app.inspect("sku", sku).await).await;
        if r["state"]["settled"]
            .as_object()
            .is_some_and(|m| m.is_empty())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("SKU {sku} still remembers settled orders");
}

#[tokio::test]
async fn a_sku_forgets_orders_that_recorded_their_sale_and_later_returns_still_restock_exactly() {
    // Given a delivered order of 2 units, which its SKU has forgotten
    let app = spawn_app_with(FAST).await;
    product(&app, "mug", 10).await;
    let (_, token, _) = app.customer("forgotten@example.com").await;
    let id = delivered(&app, &token, 2).await;
    until_forgotten(&app, "mug").await;
    assert_eq!(stock(&app, "mug").await, (8, 0, 2));
    // When one unit comes back, then (forgotten again) the other
    for (n, expected) in [(1, (9, 0, 1)), (2, (10, 0, 0))] {
        let body = json!({"reason": "chipped", "kind": "return",
            "items": [{"sku_id": "mug", "quantity": 1}]});
        let path = format!("/api/v1/orders/{id}/returns");
        let r = send(&app, "POST", &path, &token, Some(body)).await;
        assert_eq!(r.status(), 201, "return {n}");
        for _ in 0..200 {
            let d = detail(&app, &token, &id).await;
            if d["status"] == "refunded" && d["payment"]["refunded"] == 10000 * n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Then each brings back exactly its unit, from the order's own account of the sale
        until_forgotten(&app, "mug").await;
        assert_eq!(stock(&app, "mug").await, expected, "after return {n}");
    }
    let d = detail(&app, &token, &id).await;
    assert_eq!(d["payment"]["refunded"], 20000);
}

#[tokio::test]
async fn two_buyers_race_for_the_last_unit_and_exactly_one_gets_it() {
    let app = Arc::new(spawn_app_with(FAST).await);
    product(&app, "last", 1).await;
    let (_, a, _) = app.customer("a@example.com").await;
    let (_, b, _) = app.customer("b@example.com").await;
    let body = json!({"items": [{"sku_id": "last", "quantity": 1}], "shipping_address": address()});
    let (ra, rb) = tokio::join!(
        place(&app, &a, "race", body.clone()),
        place(&app, &b, "race", body)
    );
    let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [201, 409]);
    let loser = if ra.status() == 409 { ra } else { rb };
    let problem = assert_problem(loser, 409, "insufficient_stock").await;
    assert_eq!(problem["sku_ids"], json!(["last"]));
    assert_eq!(stock(&app, "last").await, (0, 1, 0));
}

#[tokio::test]
async fn the_same_idempotency_key_places_one_order_with_identical_answers() {
    let app = spawn_app_with(FAST).await;
    product(&app, "mug", 5).await;
    let (_, token, _) = app.customer("twice@example.com").await;
    let body = json!({"items": [{"sku_id": "mug", "quantity": 1}], "shipping_address": address()});
    let first = place(&app, &token, "same", body.clone()).await;
    assert_eq!(first.status(), 201);
    let first = first.text().await.unwrap();
    let second = place(&app, &token, "same", body).await;
    assert_eq!(second.status(), 201);
    assert_eq!(second.text().await.unwrap(), first);
    assert_eq!(stock(&app, "mug").await, (4, 1, 0), "one reservation");
    let other = json!({"items": [{"sku_id": "mug", "quantity": 2}], "shipping_address": address()});
    assert_problem(
        place(&app, &token, "same", other).await,
        422,
        "idempotency_key_reused",
    )
    .await;
    let missing = send(&app, "POST", "/api/v1/orders", &token, Some(json!({}))).await;
    assert_problem(missing, 400, "idempotency_key_required").await;
    let list = ok(send(&app, "GET", "/api/v1/orders", &token, None).await).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

/// A cancellation with an `Idempotency-Key`.
async fn cancel_with_key(app: &TestApp, token: &str, id: &str, key: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/orders/{id}/cancel")))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_idempotency_key_names_one_order_even_when_two_requests_race() {
    // Given a shopper with four orders awaiting payment
    let app = Arc::new(spawn_app_with(FAST).await);
    product(&app, "mug", 10).await;
    let (_, token, _) = app.customer("keys@example.com").await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let order = order_of(&app, &token, "mug", 1).await;
        ids.push(order["order_id"].as_str().unwrap().to_owned());
    }
    // When the first is cancelled with a key, then the second with the same key
    let first = cancel_with_key(&app, &token, &ids[0], "K").await;
    assert_eq!(first.status(), 200);
    let first = first.text().await.unwrap();
    let second = cancel_with_key(&app, &token, &ids[1], "K").await;
    // Then the second is refused and its order untouched, and the first replays as it was
    assert_problem(second, 422, "idempotency_key_reused").await;
    assert_eq!(
        detail(&app, &token, &ids[1]).await["status"],
        "awaiting_payment"
    );
    let again = cancel_with_key(&app, &token, &ids[0], "K").await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.text().await.unwrap(), first);
    // And of two cancellations racing with one new key, one acts and the other is refused
    let (a, b) = tokio::join!(
        cancel_with_key(&app, &token, &ids[2], "K2"),
        cancel_with_key(&app, &token, &ids[3], "K2")
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 422]);
    let mut cancelled = 0;
    for id in &ids[2..] {
        if detail(&app, &token, id).await["status"] == "cancelled" {
            cancelled += 1;
        }
    }
    assert_eq!(cancelled, 1);
    // And a key whose request found no order may name another one
    let missing = cancel_with_key(&app, &token, "o-no-such-order", "K3").await;
    assert_eq!(missing.status(), 404);
    let taken = order_of(&app, &token, "mug", 1).await;
    let taken = taken["order_id"].as_str().unwrap();
    assert_eq!(
        cancel_with_key(&app, &token, taken, "K3").await.status(),
        200
    );
}

/// A payment confirmation with an `Idempotency-Key`.
async fn confirm_with_key(app: &TestApp, token: &str, body: &Value, key: &str) -> (u16, String) {
    let r = app
        .client
        .post(app.url("/api/v1/payments/confirm"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn of_two_confirmations_racing_with_one_key_the_one_that_acted_keeps_the_key() {
    let app = spawn_app_with(FAST).await;
    product(&app, "mug", 50).await;
    let (_, token, _) = app.customer("two-tabs@example.com").await;
    for round in 0..5 {
        // Given an order and two payments of it at the gateway (two tabs of one checkout)
        let order = order_of(&app, &token, "mug", 1).await;
        let [a, b] = [
            payment_key(&app, &order, CARD).await,
            payment_key(&app, &order, CARD).await,
        ];
        let body = |pk: &str| json!({"order_id": order["order_id"], "payment_key": pk, "amount": order["total"]});
        let key = format!("pay-{round}");
        // When both are confirmed at once with one Idempotency-Key
        let (body_a, body_b) = (body(&a), body(&b));
        let (ra, rb) = tokio::join!(
            confirm_with_key(&app, &token, &body_a, &key),
            confirm_with_key(&app, &token, &body_b, &key)
        );
        // Then one is paid, and the other refused without acting: in use, or reused once the
        // first had answered
        let (won, lost, winner) = match ra.0 {
            200 => (ra, rb, a),
            _ => (rb, ra, b),
        };
        assert_eq!(won.0, 200, "round {round}: {won:?} {lost:?}");
        let code: Value = serde_json::from_str(&lost.1).unwrap();
        assert!(
            matches!(
                (lost.0, code["code"].as_str()),
                (409, Some("idempotency_key_in_use")) | (422, Some("idempotency_key_reused"))
            ),
            "round {round}: {lost:?}"
        );
        // And the winner's request, sent again, gets its own answer back
        let again = confirm_with_key(&app, &token, &body(&winner), &key).await;
        assert_eq!(again, won, "round {round}");
        // And the key cannot cancel the order: it named a confirmation
        let id = order["order_id"].as_str().unwrap();
        let cancel = cancel_with_key(&app, &token, id, &key).await;
        assert_problem(cancel, 422, "idempotency_key_reused").await;
    }
}

#[tokio::test]
async fn a_confirmation_whose_client_went_away_keeps_its_answer_for_the_retry() {
    let app = spawn_app_with(FAST).await;
    product(&app, "mug", 5).await;
    let (_, token, _) = app.customer("gone@example.com").await;
    // Given an order paid with the slow card (its confirmation takes over a second)
    let order = order_of(&app, &token, "mug", 1).await;
    let pk = payment_key(&app, &order, "4000000000000119").await;
    let body = json!({"order_id": order["order_id"], "payment_key": pk, "amount": order["total"]});
    // When the shopper's app gives up after 300 ms and closes the connection
    let gone = app
        .client
        .post(app.url("/api/v1/payments/confirm"))
        .bearer_auth(&token)
        .header("idempotency-key", "gone-1")
        .timeout(Duration::from_millis(300))
        .json(&body)
        .send()
        .await;
    assert!(gone.is_err_and(|e| e.is_timeout()));
    // Then its retry with the key is told to wait only while the confirmation runs, and then
    // gets its answer: the request went on without its client
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    let (status, text) = loop {
        let (status, text) = confirm_with_key(&app, &token, &body, "gone-1").await;
        if status != 409 {
            break (status, text);
        }
        assert!(std::time::Instant::now() < give_up, "still in use: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 200, "{text}");
    let paid: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(paid["status"], "paid");
    // And the gateway captured the payment once
    let p = audit(&app)
        .await
        .into_iter()
        .find(|p| p["payment_key"] == pk.as_str())
        .unwrap();
    assert_eq!(p["captures"], 1);
}

#[tokio::test]
async fn other_users_orders_are_not_found_and_bad_input_is_a_problem() {
    let app = spawn_app_with(FAST).await;
    product(&app, "mug", 5).await;
    let (_, owner, _) = app.customer("owner@example.com").await;
    let (_, stranger, _) = app.customer("stranger@example.com").await;
    let order = order_of(&app, &owner, "mug", 1).await;
    let id = order["order_id"].as_str().unwrap();
    for (method, path) in [
        ("GET", format!("/api/v1/orders/{id}")),
        ("POST", format!("/api/v1/orders/{id}/cancel")),
        ("GET", format!("/api/v1/orders/{id}/shipment")),
    ] {
        assert_problem(
            send(&app, method, &path, &stranger, None).await,
            404,
            "not_found",
        )
        .await;
    }
    let key = payment_key(&app, &order, CARD).await;
    assert_problem(
        confirm(&app, &stranger, &order, &key, 10000).await,
        404,
        "not_found",
    )
    .await;
    let unknown =
        json!({"items": [{"sku_id": "nope", "quantity": 1}], "shipping_address": address()});
    assert_problem(place(&app, &owner, "u1", unknown).await, 404, "not_found").await;
    let zero = json!({"items": [{"sku_id": "mug", "quantity": 0}], "shipping_address": address()});
    assert_problem(
        place(&app, &owner, "u2", zero).await,
        422,
        "invalid_quantity",
    )
    .await;
    let no_address = json!({"items": [{"sku_id": "mug", "quantity": 1}]});
    assert_problem(
        place(&app, &owner, "u3", no_address).await,
        422,
        "shipping_address_required",
    )
    .await;
    let wrong_type = json!({"items": "mug", "shipping_address": address()});
    assert_problem(
        place(&app, &owner, "u4", wrong_type).await,
        422,
        "invalid_body",
    )
    .await;
    assert_problem(
        place(&app, &owner, "u5", json!({"shipping_address": address()})).await,
        422,
        "empty_order",
    )
    .await;
}

#[tokio::test]
async fn webhooks_and_carrier_callbacks_need_a_valid_signature() {
    let app = spawn_app_with(FAST).await;
    let body = json!({"event_type": "PAYMENT_STATUS_CHANGED",
        "data": {"payment_key": "pk", "order_id": "o1", "status": "DONE"}})
    .to_string();
    for (path, secret) in [
        ("/api/v1/payments/webhook", "sandbox-webhook-secret"),
        ("/api/v1/shipments/callback", "sandbox-carrier-secret"),
    ] {
        let r = app
            .client
            .post(app.url(path))
            .header("x-emporium-signature", "00ff")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_problem(r, 401, "invalid_signature").await;
        let sig = emporium::integrations::signature::sign(secret.as_bytes(), body.as_bytes());
        let r = app
            .client
            .post(app.url(path))
            .header("x-emporium-signature", sig)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert!(
            r.status() == 404 || r.status() == 422,
            "{path}: signed but unknown: {}",
            r.status()
        );
    }
}

#[tokio::test]
async fn a_step_that_keeps_failing_becomes_a_dead_letter_and_an_operator_retries_it() {
    // The carrier's address accepts connections but nobody answers yet: every booking times out.
    let carrier = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let carrier_url = format!("http://{}/sandbox/carrier", carrier.local_addr().unwrap());
    const SECRET: &str = "dead-letter-carrier-secret";
    let mut env = FAST.to_vec();
    env.extend([
        ("EMPORIUM__CARRIER__BASE_URL", carrier_url.as_str()),
        ("EMPORIUM__CARRIER__CALLBACK_SECRET", SECRET),
        ("EMPORIUM__CARRIER__TIMEOUT_MS", "200"),
        ("EMPORIUM__OUTBOX__MAX_ATTEMPTS", "2"),
        ("EMPORIUM__OUTBOX__BASE_BACKOFF_MS", "20"),
    ]);
    let app = spawn_app_with(&env).await;
    product(&app, "dl", 3).await;
    let (_, token, _) = app.customer("dl@example.com").await;
    let (order, _) = paid_order(&app, &token, "dl", 1, 10000).await;
    let id = order["order_id"].as_str().unwrap();

    let ship = format!("/api/v1/admin/orders/{id}/ship");
    let r = send(&app, "POST", &ship, OPERATOR_TOKEN, None).await;
    assert_problem(r, 503, "carrier_unavailable").await;
    let mut letters = Value::Null;
    for _ in 0..200 {
        letters = ok(send(
            &app,
            "GET",
            "/api/v1/admin/dead-letters",
            OPERATOR_TOKEN,
            None,
        )
        .await)
        .await;
        if !letters["items"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let letter = &letters["items"][0];
    assert_eq!(letter["order_id"], id);
    assert_eq!(letter["action"], "book_shipment");
    assert_eq!(letter["attempts"], 2);
    assert!(
        letter["last_error"]
            .as_str()
            .unwrap()
            .contains("book a shipment")
    );
    let outbox = ok(send(&app, "GET", "/api/v1/admin/outbox", OPERATOR_TOKEN, None).await).await;
    assert_eq!(outbox["dead_letters"], 1);
    assert_eq!(detail(&app, &token, id).await["status"], "paid");

    // The carrier comes back; the operator sends the letter back to the outbox.
    let sandbox = emporium::sandbox::router(emporium::sandbox::SandboxConfig {
        carrier_step: Duration::from_millis(50),
        carrier_callback_lag: Duration::ZERO,
        timeout_card_delay: Duration::from_secs(1),
        carrier_secret: SECRET.as_bytes().to_vec(),
        webhook_url: app.url("/api/v1/payments/webhook"),
        webhook_secret: b"sandbox-webhook-secret".to_vec(),
    });
    tokio::spawn(async move { axum::serve(carrier, sandbox).await });
    let effect = letter["effect_id"].as_u64().unwrap();
    let retry = format!("/api/v1/admin/dead-letters/{id}/{effect}/retry");
    let retried = ok(send(&app, "POST", &retry, OPERATOR_TOKEN, None).await).await;
    assert_eq!(retried["status"], "preparing");
    until_status(&app, &token, id, "delivered").await;
    let letters = ok(send(
        &app,
        "GET",
        "/api/v1/admin/dead-letters",
        OPERATOR_TOKEN,
        None,
    )
    .await)
    .await;
    assert_eq!(letters["items"], json!([]));
    let r = send(&app, "POST", &retry, OPERATOR_TOKEN, None).await;
    assert_problem(r, 404, "not_found").await;
}

#[tokio::test]
async fn the_checkout_page_authorises_a_payment_and_sends_the_shopper_back_to_the_shop() {
    let app = spawn_app_with(FAST).await;
    product(&app, "co", 2).await;
    let (_, token, _) = app.customer("co@example.com").await;
    let order = order_of(&app, &token, "co", 1).await;
    let id = order["order_id"].as_str().unwrap();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let checkout = order["payment"]["checkout_url"].as_str().unwrap();
    let page = browser.get(checkout).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains(id) && html.contains("10000"), "{html}");

    let form = [
        ("order_id", id),
        ("amount", "10000"),
        ("card_number", "4111111111111111"),
        ("success_url", "https://shop.example/paid?step=2"),
    ];
    let r = browser
        .post(app.url("/sandbox/pg/v1/checkout"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let back = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(back.host_str(), Some("shop.example"));
    let query: std::collections::HashMap<_, _> = back.query_pairs().into_owned().collect();
    assert_eq!(query["step"], "2");
    assert_eq!(query["orderId"], id);
    assert_eq!(query["amount"], "10000");
    let paid = ok(confirm(&app, &token, &order, &query["paymentKey"], 10000).await).await;
    assert_eq!(paid["status"], "paid");

    // A bad card number or a missing amount is an error page, not a payment.
    let bad = [
        ("order_id", id),
        ("amount", "10000"),
        ("card_number", "4111"),
    ];
    let r = browser
        .post(app.url("/sandbox/pg/v1/checkout"))
        .form(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = browser
        .get(app.url(&format!("/sandbox/pg/v1/checkout?order_id={id}&amount=0")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // A script in the order id is shown as text.
    let r = browser
        .get(app.url("/sandbox/pg/v1/checkout?order_id=%3Cscript%3E&amount=5"))
        .send()
        .await
        .unwrap();
    let html = r.text().await.unwrap();
    assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"));
}

#[tokio::test]
async fn admins_list_orders_by_status_and_best_sellers_follow_paid_units() {
    let app = spawn_app_with(FAST).await;
    let mug = product_with_sku(&app, "Mug", "bs-mug", 10000, 10).await;
    let cup = product_with_sku(&app, "Cup", "bs-cup", 5000, 10).await;
    product_with_sku(&app, "Bowl", "bs-bowl", 8000, 10).await;
    let (_, token, _) = app.customer("status@example.com").await;
    let unpaid = order_of(&app, &token, "bs-cup", 1).await;
    let paid = order_of(&app, &token, "bs-mug", 3).await;
    let key = payment_key(&app, &paid, CARD).await;
    ok(confirm(&app, &token, &paid, &key, 30000).await).await;
    let cup_paid = order_of(&app, &token, "bs-cup", 1).await;
    let key = payment_key(&app, &cup_paid, CARD).await;
    ok(confirm(&app, &token, &cup_paid, &key, 5000).await).await;

    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["order_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = |status: &'static str| {
        let app = &app;
        async move {
            let path = format!("/api/v1/admin/orders?status={status}");
            ok(send(app, "GET", &path, OPERATOR_TOKEN, None).await).await
        }
    };
    let paid_id = paid["order_id"].as_str().unwrap();
    let cup_paid_id = cup_paid["order_id"].as_str().unwrap();
    assert_eq!(
        ids(&list("paid").await),
        [cup_paid_id, paid_id],
        "paid orders, newest first"
    );
    assert_eq!(
        ids(&list("awaiting_payment").await),
        [unpaid["order_id"].as_str().unwrap()]
    );
    let r = send(
        &app,
        "GET",
        "/api/v1/admin/orders?status=paid&limit=1",
        OPERATOR_TOKEN,
        None,
    )
    .await;
    let first = ok(r).await;
    assert_eq!(ids(&first), [cup_paid_id]);
    let next = first["next_cursor"].as_str().expect("a second page");
    let path = format!("/api/v1/admin/orders?status=paid&limit=1&cursor={next}");
    let second = ok(send(&app, "GET", &path, OPERATOR_TOKEN, None).await).await;
    assert_eq!(ids(&second), [paid_id]);
    assert!(second["next_cursor"].is_null());

    // Shipping moves the order out of `paid`.
    let ship = format!("/api/v1/admin/orders/{paid_id}/ship");
    ok(send(&app, "POST", &ship, OPERATOR_TOKEN, None).await).await;
    until_status(&app, &token, paid_id, "delivered").await;
    assert_eq!(ids(&list("paid").await), [cup_paid_id]);
    assert_eq!(ids(&list("delivered").await), [paid_id]);

    // All orders, whatever their status (here three), newest first and paged.
    let all = |query: String| {
        let app = &app;
        async move {
            let path = format!("/api/v1/admin/orders?{query}");
            ok(send(app, "GET", &path, OPERATOR_TOKEN, None).await).await
        }
    };
    let first = all("limit=2".into()).await;
    assert_eq!(ids(&first), [cup_paid_id, paid_id]);
    let next = first["next_cursor"].as_str().expect("a second page");
    let second = all(format!("limit=2&cursor={next}")).await;
    assert_eq!(ids(&second), [unpaid["order_id"].as_str().unwrap()]);
    assert!(second["next_cursor"].is_null());

    let r = send(
        &app,
        "GET",
        "/api/v1/admin/orders?status=shipping",
        OPERATOR_TOKEN,
        None,
    )
    .await;
    assert_problem(r, 400, "invalid_status").await;
    let r = send(
        &app,
        "GET",
        "/api/v1/admin/orders?status=paid",
        &token,
        None,
    )
    .await;
    assert_eq!(
        r.status(),
        403,
        "a customer does not list everyone's orders"
    );

    // Best sellers: units paid, most first; the bowl never sold and the unpaid cup does not count.
    let best = ok(send(&app, "GET", "/api/v1/best-sellers", &token, None).await).await;
    let ranked: Vec<(&str, u64)> = best["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["product_id"].as_str().unwrap(),
                p["sales"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ranked, [(mug.as_str(), 3), (cup.as_str(), 1)]);
    let one = ok(send(&app, "GET", "/api/v1/best-sellers?limit=1", "", None).await).await;
    assert_eq!(one["items"].as_array().unwrap().len(), 1);
    let r = send(&app, "GET", "/api/v1/best-sellers?limit=0", "", None).await;
    assert_problem(r, 400, "invalid_query").await;
}
