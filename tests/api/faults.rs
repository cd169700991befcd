//! Faults that users of other commerce systems reported, each tried on Emporium over real
//! HTTP and kept as a test (issue 16): a return listing a SKU twice, several partial returns,
//! a paid drop purchase cancelled, an order with nothing to pay, access tokens of an ended
//! session, one coupon code created eight times at once, Hangul typed decomposed.

use crate::accounts::{me, refresh};
use crate::drops::{an_hour_ago, buy, drop_of, drop_showing};
use crate::helpers::{
    OPERATOR_TOKEN, TestApp, assert_problem, ok, pay, product_with_sku, refresh_cookie, send,
    spawn_app_in, spawn_app_with,
};
use crate::orders::{
    CARD, FAST, address, audit, confirm, order_of, payment_key, place, rand_suffix, stock,
    until_status, until_stock,
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

/// Given a delivered order of three mugs, when the shopper's app sends one return twice with
/// its Idempotency-Key (the first answer lost on the way), then one unit comes back and is
/// refunded once, the retry gets the first answer, and the key with another body is refused.
#[tokio::test]
async fn a_return_retried_with_its_idempotency_key_returns_and_refunds_once() {
    let app = spawn_app_with(FAST).await;
    product_with_sku(&app, "Mug", "mug", 10000, 5).await;
    let (_, token, _) = app.customer("retry-return@example.com").await;
    let (id, pk) = delivered(&app, &token, &[("mug", 3)]).await;
    let path = format!("/api/v1/orders/{id}/returns");
    let returning = |key: &'static str, quantity: u32| {
        let body = json!({"reason": "chipped", "kind": "return",
            "items": [{"sku_id": "mug", "quantity": quantity}]});
        app.client
            .post(app.url(&path))
            .bearer_auth(&token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let first = ok(returning("ret-1", 1).await.unwrap()).await;
    let again = returning("ret-1", 1).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(
        again.json::<Value>().await.unwrap(),
        first,
        "the first answer"
    );
    let other = returning("ret-1", 2).await.unwrap();
    assert_problem(other, 422, "idempotency_key_reused").await;
    let d = until_status(&app, &token, &id, "refunded").await;
    assert_eq!(d["returns"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(d["payment"]["refunded"], 10000);
    assert_eq!(gateway_balance(&app, &pk).await, 20000);
    until_stock(&app, "mug", (3, 0, 2)).await;
    // And the buyer is told once, with the amount in words and as figures for the client
    let notes = "/api/v1/users/me/notifications";
    let notes = ok(send(&app, "GET", notes, &token, None).await).await;
    let refunds: Vec<&Value> = notes["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "order_refunded")
        .collect();
    assert_eq!(refunds.len(), 1, "{notes}");
    let refund = refunds[0];
    assert_eq!(
        (&refund["order_id"], &refund["amount"], &refund["currency"]),
        (&json!(id), &json!(10000), &json!("KRW"))
    );
    assert_eq!(refund["name"], "Mug", "the order's title: {refund}");
    assert!(
        refund["text"].as_str().unwrap().contains("10,000 KRW"),
        "{refund}"
    );
}

/// Refunds `amount` of a payment at the sandbox gateway's console, outside the engine.
async fn refund_at_console(app: &TestApp, payment_key: &str, amount: i64) {
    let path = format!("/sandbox/pg/v1/payments/{payment_key}/cancel");
    let body = json!({"reason": "goodwill, by the merchant's console", "amount": amount});
    assert_eq!(app.post_json(&path, body).await.status(), 200);
}

#[tokio::test]
async fn refunds_made_at_the_gateways_console_are_counted_before_the_engine_refunds() {
    let app = spawn_app_with(FAST).await;
    product_with_sku(&app, "Mug", "mug", 10000, 5).await;
    let (_, token, _) = app.customer("console@example.com").await;
    // Given a paid order of 10,000 of which 3,000 was refunded at the gateway's console
    let order = order_of(&app, &token, "mug", 1).await;
    let pk = payment_key(&app, &order, CARD).await;
    ok(confirm(&app, &token, &order, &pk, 10000).await).await;
    refund_at_console(&app, &pk, 3000).await;
    // When the shopper cancels it
    let id = order["order_id"].as_str().unwrap();
    let cancel = format!("/api/v1/orders/{id}/cancel");
    assert_eq!(
        send(&app, "POST", &cancel, &token, None).await.status(),
        200
    );
    // Then the 7,000 left goes back (not a refund of 10,000 refused for ever), and the order
    // counts all 10,000 refunded
    let d = until_refunded(&app, &token, id, 10000).await;
    assert_eq!(d["status"], "cancelled");
    assert_eq!(gateway_balance(&app, &pk).await, 0);
    // Given a delivered order of 10,000 of which 4,000 was refunded at the console
    let (id, pk) = delivered(&app, &token, &[("mug", 1)]).await;
    refund_at_console(&app, &pk, 4000).await;
    // When it is returned
    let r = request_return(&app, &token, &id, json!([])).await;
    assert_eq!(r.status(), 201);
    // Then the return refunds the 6,000 the gateway still held and the order ends refunded
    let d = until_refunded(&app, &token, &id, 10000).await;
    assert_eq!(d["status"], "refunded", "{d}");
    assert_eq!(gateway_balance(&app, &pk).await, 0);
    assert!(dead_letters(&app).await.is_empty());
}

/// Polls the order until its payment counts `refunded`; the order.
async fn until_refunded(app: &TestApp, token: &str, id: &str, refunded: i64) -> Value {
    let mut d = Value::Null;
    for _ in 0..200 {
        d = ok(send(app, "GET", &format!("/api/v1/orders/{id}"), token, None).await).await;
        if d["payment"]["refunded"] == refunded {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(d["payment"]["refunded"], refunded, "{d}");
    d
}

/// Every dead letter the operator sees.
async fn dead_letters(app: &TestApp) -> Vec<Value> {
    let r = send(
        app,
        "GET",
        "/api/v1/admin/dead-letters",
        OPERATOR_TOKEN,
        None,
    )
    .await;
    ok(r).await["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_return_key_raced_by_another_request_still_replays_to_the_request_that_made_it() {
    // Given a delivered order, and two returns sent at once with one key and other bodies
    // (the operator token, which has no account, so no request holds the key in flight:
    // both reach the order, and the second finds the key's return already made)
    let app = spawn_app_with(FAST).await;
    product_with_sku(&app, "Mug", "mug", 10000, 5).await;
    let (_, token, _) = app.customer("race-return@example.com").await;
    let (id, _) = delivered(&app, &token, &[("mug", 3)]).await;
    let path = format!("/api/v1/orders/{id}/returns");
    let returning = |reason: &'static str| {
        let body = json!({"reason": reason, "kind": "return",
            "items": [{"sku_id": "mug", "quantity": 1}]});
        app.client
            .post(app.url(&path))
            .bearer_auth(OPERATOR_TOKEN)
            .header("idempotency-key", "raced")
            .json(&body)
            .send()
    };
    let (a, b) = tokio::join!(returning("reason a"), returning("reason b"));
    let statuses = [a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
    assert!(statuses.contains(&201), "{statuses:?}");
    // When each retries, then the one that made the return gets it, the other is refused
    for (reason, first) in [("reason a", statuses[0]), ("reason b", statuses[1])] {
        let again = returning(reason).await.unwrap();
        let made = first == 201;
        assert_eq!(
            again.status().as_u16(),
            if made { 201 } else { 422 },
            "{reason}"
        );
    }
    let d = ok(send(&app, "GET", &format!("/api/v1/orders/{id}"), &token, None).await).await;
    assert_eq!(d["returns"].as_array().unwrap().len(), 1, "{d}");
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
    until_stock(&app, "mug", (4, 0, 1)).await;
    let coupons = ok(send(&app, "GET", "/api/v1/users/me/coupons", &token, None).await).await;
    assert_eq!(coupons["items"][0]["status"], "used");
    // (the wallet says what the coupon takes off)
    let terms = &coupons["items"][0]["campaign"];
    assert_eq!(
        (&terms["kind"], &terms["value"]),
        (&json!("fixed"), &json!(10000))
    );
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

#[tokio::test]
async fn simultaneous_campaigns_with_one_code_create_one_and_a_shopper_claims_it_once() {
    // Given eight admins creating a campaign with the same code at once (cases and widths vary)
    let app = spawn_app_with(&[]).await;
    let codes = ["SPRING", "spring", " Spring ", "ＳＰＲＩＮＧ"];
    let creations = (0..8).map(|i| {
        let body = json!({"name": format!("Spring {i}"), "code": codes[i % 4], "kind": "fixed",
            "value": 1000, "scope": {"type": "order"}, "per_user_limit": 1});
        send(
            &app,
            "POST",
            "/api/v1/admin/coupon-campaigns",
            OPERATOR_TOKEN,
            Some(body),
        )
    });
    let answers = futures::future::join_all(creations).await;
    // Then exactly one is created and the others are told the code is taken
    let mut created = 0;
    for r in answers {
        match r.status().as_u16() {
            201 => created += 1,
            _ => {
                assert_problem(r, 409, "code_taken").await;
            }
        }
    }
    assert_eq!(created, 1);
    // And after a restart one shopper claims once, whatever form the code is typed in
    let app = spawn_app_in(app.stop().await, &[]).await;
    let (_, token, _) = app.customer("claimer@example.com").await;
    let claim = |code: &str| {
        let body = Some(json!({"code": code}));
        send(&app, "POST", "/api/v1/coupons/claim", &token, body)
    };
    assert_eq!(claim("spring").await.status(), 201);
    assert_problem(claim("SPRING").await, 409, "already_claimed").await;
    assert_problem(claim("ｓｐｒｉｎｇ").await, 409, "already_claimed").await;
    let wallet = ok(send(&app, "GET", "/api/v1/users/me/coupons", &token, None).await).await;
    assert_eq!(wallet["items"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn hangul_typed_decomposed_or_composed_finds_the_same_products() {
    use unicode_normalization::UnicodeNormalization;
    let nfd = |s: &str| s.nfd().collect::<String>();
    // Given one product named composed and one named decomposed, in a decomposed category
    let app = spawn_app_with(&[]).await;
    let create = |name: String, category: String, sku: &str| {
        let body = json!({"name": name, "category": category, "skus": [
            {"sku_id": sku, "options": {}, "price": 1000, "stock": 1}]});
        send(
            &app,
            "POST",
            "/api/v1/admin/products",
            OPERATOR_TOKEN,
            Some(body),
        )
    };
    ok(create("빨간 티셔츠".into(), nfd("의류"), "tee").await).await;
    ok(create(nfd("파란 바지"), "의류".into(), "pants").await).await;
    let get = |path: String| {
        let app = &app;
        async move {
            let r = app.client.get(app.url(&path)).send().await.unwrap();
            ok(r).await
        }
    };
    let enc = |s: &str| serde_urlencoded::to_string([("q", s)]).unwrap();
    // When each is searched in the other form
    let tee = get(format!("/api/v1/products?{}", enc(&nfd("티셔츠")))).await;
    let pants = get(format!("/api/v1/products?{}", enc("바지"))).await;
    let suggest = get(format!("/api/v1/search/suggest?{}", enc(&nfd("빨간")))).await;
    let category = serde_urlencoded::to_string([("category", "의류")]).unwrap();
    let clothes = get(format!("/api/v1/products?{category}")).await;
    // Then each is found
    assert_eq!(tee["items"].as_array().unwrap().len(), 1, "{tee}");
    assert_eq!(pants["items"].as_array().unwrap().len(), 1, "{pants}");
    assert_eq!(
        suggest["suggestions"].as_array().unwrap().len(),
        1,
        "{suggest}"
    );
    assert_eq!(clothes["items"].as_array().unwrap().len(), 2, "{clothes}");
    app.stop().await;
}

#[tokio::test]
async fn an_erased_shopper_s_orders_and_chat_show_no_personal_data_even_after_a_restart() {
    // Given a shopper with a profile and a paid order shipping to a full address
    let app = spawn_app_with(FAST).await;
    product_with_sku(&app, "Mug", "mug", 10000, 5).await;
    let (user_id, token, _) = app.customer("erase-me@example.com").await;
    let profile = json!({"name": "Hong Gildong", "phone": "010-9876-5432", "address": "Seoul"});
    ok(send(&app, "PATCH", "/api/v1/users/me", &token, Some(profile)).await).await;
    let to = json!({"name": "Hong Gildong", "phone": "010-9876-5432",
        "address": "12 Teheran-ro, Gangnam-gu", "postal_code": "06234"});
    let body = json!({"items": [{"sku_id": "mug", "quantity": 1}], "shipping_address": to});
    let order = ok(place(&app, &token, "erase-1", body).await).await;
    let id = order["order_id"].as_str().unwrap().to_string();
    ok(pay(&app, &token, &id, 10000).await).await;
    let path = format!("/api/v1/orders/{id}");
    let before = ok(send(&app, "GET", &path, OPERATOR_TOKEN, None).await).await;
    assert_eq!(before["shipping_address"]["postal_code"], "06234");
    // ... and a support chat where they wrote their number
    let room = json!({"name": "Help", "order_id": id});
    let room = ok(send(&app, "POST", "/api/v1/chat/rooms", &token, Some(room)).await).await;
    let messages = format!(
        "/api/v1/chat/rooms/{}/messages",
        room["room_id"].as_str().unwrap()
    );
    let said = json!({"text": "Call me at 010-9876-5432"});
    let posted = ok(send(&app, "POST", &messages, &token, Some(said)).await).await;
    assert_eq!(posted["text"], "Call me at 010-9876-5432");
    let join = format!(
        "/api/v1/chat/rooms/{}/join",
        room["room_id"].as_str().unwrap()
    );
    ok(send(&app, "POST", &join, OPERATOR_TOKEN, None).await).await;
    let history = ok(send(&app, "GET", &messages, OPERATOR_TOKEN, None).await).await;
    assert_eq!(history["items"][0]["text"], "Call me at 010-9876-5432");
    // When the shopper deletes the account
    let deleted = send(&app, "DELETE", "/api/v1/users/me", &token, None).await;
    assert_eq!(deleted.status(), 204);
    // Then an admin still reads the order — cancelled and refunded, as it could not ship
    // without its address — anonymised: no name, phone, street or postal code
    let after = ok(send(&app, "GET", &path, OPERATOR_TOKEN, None).await).await;
    assert_eq!(after["status"], "cancelled");
    assert_eq!(after["payment"]["refunded"], 10000);
    assert_eq!(after["total"], 10000);
    assert!(after["shipping_address"].is_null(), "{after}");
    // And they are no longer listed in the room, whose history stays
    let room_path = format!("/api/v1/chat/rooms/{}", room["room_id"].as_str().unwrap());
    let listed = ok(send(&app, "GET", &room_path, OPERATOR_TOKEN, None).await).await;
    assert!(
        !listed["members"].to_string().contains(&user_id),
        "{listed}"
    );
    // Nor can anyone put them back on a list
    // (nor anyone who never had an account, named twice or not)
    for nobody in [user_id.as_str(), "u_never_made"] {
        let invite = json!({"name": "Again", "members": [nobody, nobody]});
        let rooms = "/api/v1/chat/rooms";
        let refused = send(&app, "POST", rooms, OPERATOR_TOKEN, Some(invite)).await;
        assert_problem(refused, 422, "invalid_field").await;
    }
    // And after a restart too: the key is gone, not only hidden
    let app = spawn_app_in(app.stop().await, FAST).await;
    let after = ok(send(&app, "GET", &path, OPERATOR_TOKEN, None).await).await;
    assert!(after["shipping_address"].is_null(), "{after}");
    let history = ok(send(&app, "GET", &messages, OPERATOR_TOKEN, None).await).await;
    assert_eq!(history["items"][0]["erased"], true, "{history}");
    let text = serde_json::to_string(&[after, history]).unwrap();
    for personal in ["Hong", "010-9876", "Teheran", "06234"] {
        assert!(!text.contains(personal), "{personal} in {text}");
    }
    app.stop().await;
}

/// A paid order of one mug (10,000 of a stock of 5) whose shipment is booked.
struct Preparing {
    id: String,
    token: String,
    pk: String,
    tracking: String,
}

async fn preparing_mug(app: &TestApp) -> Preparing {
    product_with_sku(app, "Mug", "mug", 10000, 5).await;
    let (_, token, _) = app.customer("second-thoughts@example.com").await;
    let body = json!({"items": [{"sku_id": "mug", "quantity": 1}], "shipping_address": address()});
    let order = ok(place(app, &token, "prep-1", body).await).await;
    let id = order["order_id"].as_str().unwrap().to_string();
    let pk = payment_key(app, &order, CARD).await;
    ok(confirm(app, &token, &order, &pk, 10000).await).await;
    let ship = format!("/api/v1/admin/orders/{id}/ship");
    ok(send(app, "POST", &ship, OPERATOR_TOKEN, None).await).await;
    let preparing = until_status(app, &token, &id, "preparing").await;
    let tracking = preparing["shipment"]["tracking_number"].as_str().unwrap();
    Preparing {
        tracking: tracking.to_string(),
        id,
        token,
        pk,
    }
}

/// Polls the sandbox carrier's shipment `tracking` until it is `status` (5 s at most); the
/// last status read.
async fn until_carrier_status(app: &TestApp, tracking: &str, status: &str) -> Value {
    let shipment = format!("/sandbox/carrier/v1/shipments/{tracking}");
    let mut seen = Value::Null;
    for _ in 0..200 {
        let r = app.client.get(app.url(&shipment)).send().await.unwrap();
        seen = r.json::<Value>().await.unwrap()["status"].clone();
        if seen == status {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    seen
}

#[tokio::test]
async fn cancelling_a_preparing_order_calls_off_its_carrier_booking_then_refunds() {
    // Given a paid order booked with a carrier that has not picked it up yet
    let slow = [
        ("EMPORIUM_CARRIER_STEP_SECS", "60"),
        ("EMPORIUM__OUTBOX__POLL_MS", "50"),
    ];
    let app = spawn_app_with(&slow).await;
    let Preparing {
        id,
        token,
        pk,
        tracking,
    } = preparing_mug(&app).await;
    // When the shopper cancels
    let cancel = format!("/api/v1/orders/{id}/cancel");
    let cancelled = ok(send(&app, "POST", &cancel, &token, None).await).await;
    assert_eq!(cancelled["status"], "cancelled");
    // Then the carrier's booking is called off, the payment refunded and the unit back
    assert_eq!(
        until_carrier_status(&app, &tracking, "cancelled").await,
        "cancelled"
    );
    for _ in 0..200 {
        if gateway_balance(&app, &pk).await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(gateway_balance(&app, &pk).await, 0);
    assert_eq!(stock(&app, "mug").await, (5, 0, 0));
}

#[tokio::test]
async fn a_cancellation_the_carrier_refuses_having_picked_the_parcel_up_ships_the_order() {
    // Given a paid order whose parcel the carrier has picked up, though its tracking feed has
    // not told the engine yet (it lags a minute behind)
    let lagging = [
        ("EMPORIUM_CARRIER_STEP_SECS", "0.2"),
        ("EMPORIUM__SANDBOX__CARRIER_CALLBACK_LAG_MS", "60000"),
        ("EMPORIUM__OUTBOX__POLL_MS", "50"),
    ];
    let app = spawn_app_with(&lagging).await;
    let Preparing {
        id,
        token,
        pk,
        tracking,
    } = preparing_mug(&app).await;
    assert_eq!(
        until_carrier_status(&app, &tracking, "shipping").await,
        "shipping"
    );
    // When the shopper cancels
    let cancel = format!("/api/v1/orders/{id}/cancel");
    let r = send(&app, "POST", &cancel, &token, None).await;
    // Then the cancellation is refused as too late, and the order ships: nothing refunded,
    // the unit still sold, and the shopper told why
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "order_not_cancellable"
    );
    let after = until_status(&app, &token, &id, "shipped").await;
    assert_eq!(after["shipment"]["status"], "shipping", "{after}");
    assert_eq!(gateway_balance(&app, &pk).await, 10000);
    assert_eq!(stock(&app, "mug").await, (4, 0, 1));
    let note = crate::orders::until_notice(&app, &token, &id, "order_shipped").await;
    assert_eq!(note["reason"], "cancel_refused", "{note}");
    app.stop().await;
}

/// A merchant endpoint that keeps every webhook it is sent: (signature header, body).
async fn webhook_receiver() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
) {
    use axum::http::HeaderMap;
    let kept: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>> = Default::default();
    let k = kept.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let k = k.clone();
            async move {
                let sig = headers
                    .get("x-emporium-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                k.lock().unwrap().push((sig, body));
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, kept)
}

#[tokio::test]
async fn the_sandbox_gateway_sends_signed_webhooks_and_the_engine_takes_each_once() {
    // Given a sandbox gateway posting its webhooks to a merchant endpoint of ours
    let (url, kept) = webhook_receiver().await;
    let app = spawn_app_with(&[("EMPORIUM__SANDBOX__WEBHOOK_URL", url.as_str())]).await;
    product_with_sku(&app, "Mug", "mug", 10000, 5).await;
    let (_, token, _) = app.customer("hooked@example.com").await;
    let body = json!({"items": [{"sku_id": "mug", "quantity": 1}], "shipping_address": address()});
    let order = ok(place(&app, &token, "hook-1", body).await).await;
    let id = order["order_id"].as_str().unwrap().to_string();
    // When the payment is confirmed
    ok(pay(&app, &token, &id, 10000).await).await;
    // Then a DONE webhook for the order arrives, signed with the webhook secret
    let mut hook = None;
    for _ in 0..200 {
        hook = kept.lock().unwrap().first().cloned();
        if hook.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (sig, body) = hook.expect("a webhook");
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["event_type"], "PAYMENT_STATUS_CHANGED");
    assert_eq!(event["data"]["status"], "DONE");
    assert_eq!(event["data"]["order_id"], id.as_str());
    let secret = b"sandbox-webhook-secret";
    assert!(emporium::integrations::signature::verify(
        secret,
        body.as_bytes(),
        &sig
    ));
    // And the engine, sent it twice, answers both and the order is paid once
    for _ in 0..2 {
        let r = app
            .client
            .post(app.url("/api/v1/payments/webhook"))
            .header("x-emporium-signature", &sig)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let d = until_status(&app, &token, &id, "paid").await;
    let paid = d["status_history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["status"] == "paid")
        .count();
    assert_eq!(paid, 1);
    let captured = audit(&app)
        .await
        .into_iter()
        .find(|p| p["order_id"] == id.as_str())
        .unwrap();
    assert_eq!(captured["captures"], 1);
}

/// The caller's notifications of `kind`, waiting up to 5 s for at least `want` of them.
async fn notifications_of(app: &TestApp, token: &str, kind: &str, want: usize) -> Vec<Value> {
    let mut found = Vec::new();
    for _ in 0..250 {
        let path = "/api/v1/users/me/notifications";
        let page = ok(send(app, "GET", path, token, None).await).await;
        found = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["kind"] == kind)
            .cloned()
            .collect();
        if found.len() >= want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    found
}

#[tokio::test]
async fn a_drop_starting_is_announced_to_those_who_wishlisted_its_product() {
    // Given a product one shopper wishlisted and another did not
    let app = spawn_app_with(&[]).await;
    let product = product_with_sku(&app, "Sneaker", "snk", 200000, 10).await;
    let (_, fan, _) = app.customer("fan@example.com").await;
    let (_, other, _) = app.customer("other@example.com").await;
    let wish = format!("/api/v1/users/me/wishlist/{product}");
    ok(send(&app, "PUT", &wish, &fan, None).await).await;
    // When a drop of it starts a second from now
    let starts = emporium::domain::time::Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            + 1000,
    );
    let drop = json!({"sku_id": "snk", "quantity": 2, "price": 99000,
        "starts_at": starts.to_rfc3339(), "per_user_limit": 1});
    let created = send(
        &app,
        "POST",
        "/api/v1/admin/drops",
        OPERATOR_TOKEN,
        Some(drop),
    )
    .await;
    assert_eq!(created.status(), 201);
    // Then the fan is told once it starts, and the other shopper is not
    let told = notifications_of(&app, &fan, "drop_starting", 1).await;
    assert_eq!(told.len(), 1, "the fan is told");
    assert!(told[0]["text"].as_str().unwrap().contains("Sneaker"));
    assert!(
        notifications_of(&app, &other, "drop_starting", 1)
            .await
            .is_empty()
    );
    // And the fan's page after that notification is empty, while a cursor no notification
    // can have is refused
    let id = told[0]["id"].as_str().unwrap();
    let path = format!("/api/v1/users/me/notifications?cursor={id}");
    let after = ok(send(&app, "GET", &path, &fan, None).await).await;
    assert_eq!(after["items"], json!([]));
    for bad in ["", "garbage!", "%FF"] {
        let path = format!("/api/v1/users/me/notifications?cursor={bad}");
        let r = send(&app, "GET", &path, &fan, None).await;
        assert_problem(r, 400, "invalid_cursor").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_chat_mention_notifies_the_member_mentioned() {
    // Given a room of two shoppers
    let app = spawn_app_with(&[]).await;
    let (kim_id, kim, _) = app.customer("kim@example.com").await;
    let (_, lee, _) = app.customer("lee@example.com").await;
    let room = json!({"name": "Sneakers", "members": [kim_id]});
    let room = ok(send(&app, "POST", "/api/v1/chat/rooms", &lee, Some(room)).await).await;
    let messages = format!(
        "/api/v1/chat/rooms/{}/messages",
        room["room_id"].as_str().unwrap()
    );
    // When Lee mentions Kim
    let said = json!({"text": format!("@{kim_id} the drop is live!")});
    ok(send(&app, "POST", &messages, &lee, Some(said)).await).await;
    // Then Kim is notified, and Lee is not
    let told = notifications_of(&app, &kim, "chat_mention", 1).await;
    assert_eq!(told.len(), 1);
    assert!(told[0]["text"].as_str().unwrap().contains("Sneakers"));
    assert!(
        notifications_of(&app, &lee, "chat_mention", 1)
            .await
            .is_empty()
    );
    app.stop().await;
}
