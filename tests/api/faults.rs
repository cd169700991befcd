//! Faults that users of other commerce systems reported, each tried on Emporium over real
//! HTTP and kept as a test (issue 16): a return listing a SKU twice, several partial returns,
//! a paid drop purchase cancelled, an order with nothing to pay, access tokens of an ended
//! session.

use crate::accounts::{me, refresh};
use crate::drops::{an_hour_ago, buy, drop_of, drop_showing};
use crate::helpers::{
    OPERATOR_TOKEN, TestApp, assert_problem, ok, pay, product_with_sku, refresh_cookie, send,
    spawn_app_in, spawn_app_with,
};
use crate::orders::{
    CARD, FAST, address, audit, confirm, payment_key, place, rand_suffix, stock, until_status,
};
use serde_json::{Value, json};

/// An order of `items` (sku, quantity) paid and delivered; its id and payment key.
async fn delivered(app: &TestApp, token: &str, items: &[(&str, u32)]) -> (String, String) {
    let items: Vec<Value> = items
        .iter()
        .map(|(sku, q)| json!({"sku_id": sku, "quantity": q}))
        .collect();
    let key = format!("k-{}", rand_suffix());
    let body = json!({"items": items, "shipping_address": address()});
    let order = ok(place(app, token, &key, body).await).await;
    let pk = payment_key(app, &order, CARD).await;
    let total = order["total"].as_i64().unwrap();
    ok(confirm(app, token, &order, &pk, total).await).await;
    let id = order["order_id"].as_str().unwrap().to_string();
    let ship = format!("/api/v1/admin/orders/{id}/ship");
    ok(send(app, "POST", &ship, OPERATOR_TOKEN, None).await).await;
    until_status(app, token, &id, "delivered").await;
    (id, pk)
}

async fn request_return(app: &TestApp, token: &str, id: &str, items: Value) -> reqwest::Response {
    let body = json!({"reason": "changed my mind", "kind": "return", "items": items});
    let path = format!("/api/v1/orders/{id}/returns");
    send(app, "POST", &path, token, Some(body)).await
}

/// What the gateway holds of a payment: (refunded in all, balance left).
async fn gateway_balance(app: &TestApp, payment_key: &str) -> i64 {
    let p = audit(app)
        .await
        .into_iter()
        .find(|p| p["payment_key"] == payment_key)
        .expect("the gateway knows the payment");
    p["balance_amount"].as_i64().unwrap()
}

#[tokio::test]
async fn a_return_listing_one_sku_twice_is_checked_on_the_sum_and_never_refunds_more_than_was_paid()
{
    // Given a delivered order of one unit at 10,000
    let app = spawn_app_with(FAST).await;
    product_with_sku(&app, "Mug", "mug", 10000, 5).await;
    let (_, token, _) = app.customer("twice@example.com").await;
    let (id, pk) = delivered(&app, &token, &[("mug", 1)]).await;
    // When the return lists the SKU twice, one unit each
    let twice = json!([{"sku_id": "mug", "quantity": 1}, {"sku_id": "mug", "quantity": 1}]);
    let r = request_return(&app, &token, &id, twice).await;
    // Then it is refused whole: nothing restocked, nothing refunded
    assert_problem(r, 409, "order_not_returnable").await;
    assert_eq!(stock(&app, "mug").await, (4, 0, 1));
    assert_eq!(gateway_balance(&app, &pk).await, 10000);
    // And the honest return refunds exactly what was paid
    let once = json!([{"sku_id": "mug", "quantity": 1}]);
    assert_eq!(request_return(&app, &token, &id, once).await.status(), 201);
    let d = until_status(&app, &token, &id, "refunded").await;
    assert_eq!(d["payment"]["refunded"], 10000);
    assert_eq!(gateway_balance(&app, &pk).await, 0);
    assert_eq!(stock(&app, "mug").await, (5, 0, 0));
}

#[tokio::test]
async fn returns_over_different_lines_are_allowed_until_every_unit_is_back() {
    // Given a delivered order of two mugs and a cup (30,000)
    let app = spawn_app_with(FAST).await;
    product_with_sku(&app, "Mug", "mug", 10000, 5).await;
    product_with_sku(&app, "Cup", "cup", 10000, 5).await;
    let (_, token, _) = app.customer("partial@example.com").await;
    let (id, pk) = delivered(&app, &token, &[("mug", 2), ("cup", 1)]).await;
    // When one mug is returned and refunded, then the other items
    let first = json!([{"sku_id": "mug", "quantity": 1}]);
    assert_eq!(request_return(&app, &token, &id, first).await.status(), 201);
    until_status(&app, &token, &id, "refunded").await;
    let rest = json!([{"sku_id": "cup", "quantity": 1}, {"sku_id": "mug", "quantity": 1}]);
    let r = request_return(&app, &token, &id, rest).await;
    // Then the second return is accepted, and every unit and won is back
    assert_eq!(r.status(), 201);
    let mut d = Value::Null;
    for _ in 0..200 {
        d = until_status(&app, &token, &id, "refunded").await;
        if d["payment"]["refunded"] == 30000 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(d["payment"]["refunded"], 30000, "{d}");
    assert_eq!(d["returns"].as_array().unwrap().len(), 2);
    assert_eq!(gateway_balance(&app, &pk).await, 0);
    assert_eq!(stock(&app, "mug").await, (5, 0, 0));
    assert_eq!(stock(&app, "cup").await, (5, 0, 0));
    // And nothing more can be returned
    let more = request_return(&app, &token, &id, json!([])).await;
    assert_problem(more, 409, "order_not_returnable").await;
}

#[tokio::test]
async fn a_paid_drop_purchase_cancelled_gives_its_unit_and_the_allowance_back_to_the_drop() {
    // Given a live drop of 2 with a limit of 1 per shopper, and a shopper's paid purchase
    let app = spawn_app_with(FAST).await;
    product_with_sku(&app, "Sneaker", "snk", 200000, 10).await;
    let d = drop_of(&app, "snk", 2, 1, an_hour_ago()).await;
    let drop_id = d["drop_id"].as_str().unwrap();
    let (_, token, _) = app.customer("dropper@example.com").await;
    let bought = ok(buy(&app, &token, drop_id, "first", 1).await).await;
    let order_id = bought["order_id"].as_str().unwrap();
    ok(pay(&app, &token, order_id, 99000).await).await;
    drop_showing(&app, drop_id, "remaining", json!(1)).await;
    // When the paid order is cancelled
    let cancel = format!("/api/v1/orders/{order_id}/cancel");
    let cancelled = ok(send(&app, "POST", &cancel, &token, None).await).await;
    assert_eq!(cancelled["status"], "cancelled");
    // Then the unit is the drop's again, the shelf unchanged
    drop_showing(&app, drop_id, "remaining", json!(2)).await;
    assert_eq!(stock(&app, "snk").await, (8, 0, 0));
    // And the shopper may buy again
    let again = buy(&app, &token, drop_id, "second", 1).await;
    assert_eq!(again.status(), 201);
}

#[tokio::test]
async fn an_order_with_nothing_to_pay_is_paid_at_once_and_ships() {
    // Given a coupon worth the whole order
    let app = spawn_app_with(FAST).await;
    product_with_sku(&app, "Mug", "mug", 10000, 5).await;
    let (_, token, _) = app.customer("free@example.com").await;
    let campaign = json!({"name": "Gift", "code": "GIFT", "kind": "fixed", "value": 10000,
        "scope": {"type": "order"}, "per_user_limit": 1});
    let path = "/api/v1/admin/coupon-campaigns";
    ok(send(&app, "POST", path, OPERATOR_TOKEN, Some(campaign)).await).await;
    let claim = Some(json!({"code": "GIFT"}));
    let coupon = ok(send(&app, "POST", "/api/v1/coupons/claim", &token, claim).await).await;
    // When the order is placed
    let body = json!({"items": [{"sku_id": "mug", "quantity": 1}],
        "coupon_id": coupon["coupon_id"], "shipping_address": address()});
    let order = ok(place(&app, &token, "free", body).await).await;
    // Then it is paid without a checkout, the stock sold and the coupon used
    assert_eq!(order["total"], 0);
    assert_eq!(order["status"], "paid");
    assert!(order["payment"]["checkout_url"].is_null(), "{order}");
    let id = order["order_id"].as_str().unwrap();
    until_status(&app, &token, id, "paid").await;
    for _ in 0..200 {
        if stock(&app, "mug").await == (4, 0, 1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(stock(&app, "mug").await, (4, 0, 1));
    let coupons = ok(send(&app, "GET", "/api/v1/users/me/coupons", &token, None).await).await;
    assert_eq!(coupons["items"][0]["status"], "used");
    // And it ships like any paid order
    let ship = format!("/api/v1/admin/orders/{id}/ship");
    ok(send(&app, "POST", &ship, OPERATOR_TOKEN, None).await).await;
    until_status(&app, &token, id, "delivered").await;
}

/// The access token a refresh answers with, and the rotated cookie.
async fn refreshed(app: &TestApp, cookie: &str) -> (String, String) {
    let r = refresh(app, cookie).await;
    assert_eq!(r.status(), 200);
    let cookie = refresh_cookie(&r);
    let body: Value = r.json().await.unwrap();
    (body["access_token"].as_str().unwrap().to_string(), cookie)
}

#[tokio::test]
async fn ending_a_session_revokes_every_access_token_issued_in_it_across_a_restart() {
    // Given a session whose access token was refreshed once, and a second session
    let app = spawn_app_with(&[]).await;
    let (_, first, cookie) = app.customer("stolen@example.com").await;
    let (second, _) = refreshed(&app, &cookie).await;
    let (other, _) = app
        .login("stolen@example.com", "correct horse battery")
        .await;
    // When the first refresh token is replayed (reuse detected)
    assert_problem(refresh(&app, &cookie).await, 401, "refresh_reused").await;
    // Then both access tokens of that session are refused at once; the other session lives
    assert_problem(me(&app, &first).await, 401, "token_revoked").await;
    assert_problem(me(&app, &second).await, 401, "token_revoked").await;
    assert_eq!(me(&app, &other).await.status(), 200);
    // And after a restart too
    let app = spawn_app_in(app.stop().await, &[]).await;
    assert_problem(me(&app, &second).await, 401, "token_revoked").await;
    assert_eq!(me(&app, &other).await.status(), 200);
    // When a session logs out, its earlier access token dies with the one presented
    let (_, cookie) = app
        .login("stolen@example.com", "correct horse battery")
        .await;
    let (earlier, cookie) = refreshed(&app, &cookie).await;
    let (latest, _) = refreshed(&app, &cookie).await;
    let logout = send(&app, "POST", "/api/v1/auth/logout", &latest, None).await;
    assert_eq!(logout.status(), 204);
    assert_problem(me(&app, &earlier).await, 401, "token_revoked").await;
    assert_eq!(me(&app, &other).await.status(), 200);
    app.stop().await;
}
