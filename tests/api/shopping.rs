//! Carts, coupons (campaigns, claims, wallet, discount edge cases), wishlists, and the
//! first-come coupon race.

use crate::helpers::{
    OPERATOR_TOKEN, TestApp, assert_problem, ok, product_with_sku, send, spawn_app, spawn_app_in,
};
use serde_json::{Value, json};
use std::sync::Arc;

/// Two products: a tee (tops, 12,900 / 13,900) and shoes (shoes, 50,000).
async fn products(app: &TestApp) -> (String, String) {
    let tee = json!({"name": "Basic Tee", "category": "tops", "skus": [
        {"sku_id": "tee-m", "options": {"size": "M"}, "price": 12900, "stock": 5},
        {"sku_id": "tee-l", "options": {"size": "L"}, "price": 13900, "stock": 1}]});
    let shoes = json!({"name": "Runner Shoes", "category": "shoes", "skus": [
        {"sku_id": "run-270", "options": {"size": "270"}, "price": 50000, "stock": 3}]});
    let a = ok(send(
        app,
        "POST",
        "/api/v1/admin/products",
        OPERATOR_TOKEN,
        Some(tee),
    )
    .await)
    .await;
    let b = ok(send(
        app,
        "POST",
        "/api/v1/admin/products",
        OPERATOR_TOKEN,
        Some(shoes),
    )
    .await)
    .await;
    (
        a["product_id"].as_str().unwrap().into(),
        b["product_id"].as_str().unwrap().into(),
    )
}

async fn campaign(app: &TestApp, body: Value) -> Value {
    let r = send(
        app,
        "POST",
        "/api/v1/admin/coupon-campaigns",
        OPERATOR_TOKEN,
        Some(body),
    )
    .await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

fn set_qty(sku: &str, qty: i64) -> (String, Value) {
    (
        format!("/api/v1/cart/items/{sku}"),
        json!({"quantity": qty}),
    )
}

#[tokio::test]
async fn cart_lines_limits_stock_and_todays_prices() {
    let app = spawn_app().await;
    products(&app).await;
    let (_, me, _) = app.customer("cart@example.com").await;
    let (path, body) = set_qty("tee-m", 2);
    let cart = ok(send(&app, "PUT", &path, &me, Some(body)).await).await;
    assert_eq!(cart["items"][0]["line_total"], 25800);
    assert_eq!(
        cart["items"][0]["options"],
        json!({"size": "M"}),
        "which SKU, in words"
    );
    assert_eq!(
        (cart["subtotal"].as_i64(), cart["total"].as_i64()),
        (Some(25800), Some(25800))
    );
    assert_eq!(cart["currency"], "KRW");

    assert_eq!(cart["items"][0]["available"], 5);
    let (path, body) = set_qty("run-270", 1);
    let cart = ok(send(&app, "PUT", &path, &me, Some(body)).await).await;
    assert_eq!(cart["subtotal"], 75800);
    // Stock that falls below a line shows on the cart before checkout refuses it.
    let lowered = json!({"available": 1});
    let path_stock = "/api/v1/admin/skus/tee-m/stock";
    ok(send(&app, "PUT", path_stock, OPERATOR_TOKEN, Some(lowered)).await).await;
    let cart = ok(send(&app, "GET", "/api/v1/cart", &me, None).await).await;
    let tee = &cart["items"][1];
    assert_eq!(
        (&tee["sku_id"], &tee["quantity"]),
        (&json!("tee-m"), &json!(2))
    );
    assert_eq!(tee["available"], 1, "{cart}");
    let restored = json!({"available": 5});
    ok(send(&app, "PUT", path_stock, OPERATOR_TOKEN, Some(restored)).await).await;

    let (path, body) = set_qty("tee-l", 2);
    let r = send(&app, "PUT", &path, &me, Some(body)).await;
    assert_problem(r, 409, "insufficient_stock").await;
    let (path, body) = set_qty("tee-m", 100);
    assert_problem(
        send(&app, "PUT", &path, &me, Some(body)).await,
        422,
        "invalid_quantity",
    )
    .await;
    let (path, body) = set_qty("tee-m", -1);
    assert_problem(
        send(&app, "PUT", &path, &me, Some(body)).await,
        422,
        "invalid_body",
    )
    .await;
    let (path, body) = set_qty("no-such-sku", 1);
    assert_problem(
        send(&app, "PUT", &path, &me, Some(body)).await,
        404,
        "not_found",
    )
    .await;

    // The cart shows today's price, the one an order of it charges, not the one seen when
    // the line was added.
    let products = ok(send(&app, "GET", "/api/v1/products?q=tee", &me, None).await).await;
    let tee_id = products["items"][0]["product_id"]
        .as_str()
        .unwrap()
        .to_string();
    let patch = json!({"skus": [{"sku_id": "tee-m", "price": 1}]});
    ok(send(
        &app,
        "PATCH",
        &format!("/api/v1/admin/products/{tee_id}"),
        OPERATOR_TOKEN,
        Some(patch),
    )
    .await)
    .await;
    let cart = ok(send(&app, "GET", "/api/v1/cart", &me, None).await).await;
    assert_eq!(cart["items"][1]["unit_price"], 1, "{cart}");
    let tee_total = cart["items"][1]["line_total"].as_i64().unwrap();
    let run_total = cart["items"][0]["line_total"].as_i64().unwrap();
    assert_eq!(
        cart["subtotal"].as_i64().unwrap(),
        tee_total + run_total,
        "{cart}"
    );

    let (path, body) = set_qty("tee-m", 0);
    let cart = ok(send(&app, "PUT", &path, &me, Some(body)).await).await;
    assert_eq!(cart["items"].as_array().unwrap().len(), 1);
    let cart = ok(send(&app, "DELETE", "/api/v1/cart/items/run-270", &me, None).await).await;
    assert_eq!(cart["items"], json!([]));
    let r = app
        .client
        .get(app.url("/api/v1/cart"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "missing_token").await;
    app.stop().await;
}

#[tokio::test]
async fn coupons_claim_apply_and_edge_cases() {
    let app = spawn_app().await;
    let (_, shoes_id) = products(&app).await;
    let tops10 = campaign(
        &app,
        json!({
            "name": "Tops 10%", "code": "tops10", "kind": "percent", "value": 10,
            "min_order": 20000, "max_discount": 2000,
            "scope": {"type": "category", "category": " Tops"},
            "total_quantity": 2, "per_user_limit": 1
        }),
    )
    .await;
    assert_eq!(tops10["code"], "TOPS10");
    assert_eq!(tops10["remaining"], 2);
    // The terms read back as given: the minimum, the cap and the scope, its category in the
    // form products' categories take (so "Tops" covers products in "tops")
    assert_eq!(tops10["min_order"], 20000);
    assert_eq!(tops10["max_discount"], 2000);
    assert_eq!(
        tops10["scope"],
        json!({"type": "category", "category": "tops"})
    );
    let (_, a, _) = app.customer("a@example.com").await;
    let (_, b, _) = app.customer("b@example.com").await;
    let (_, c, _) = app.customer("c@example.com").await;
    let claim = |token: String, code: &str| {
        let body = json!({"code": code});
        let (client, url) = (app.client.clone(), app.url("/api/v1/coupons/claim"));
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let r = claim(a.clone(), "Tops10").await;
    assert_eq!(r.status(), 201);
    let claimed: Value = r.json().await.unwrap();
    assert_eq!(claimed["status"], "issued");
    let a_coupon = claimed["coupon_id"].as_str().unwrap().to_string();
    // A second claim names the coupon the shopper has, so a client can say what became of it.
    let again = assert_problem(claim(a.clone(), "TOPS10").await, 409, "already_claimed").await;
    assert_eq!(again["coupon_ids"], json!([a_coupon]), "{again}");
    assert_eq!(claim(b.clone(), "TOPS10").await.status(), 201);
    assert_problem(claim(c.clone(), "TOPS10").await, 409, "coupons_exhausted").await;
    assert_problem(claim(c.clone(), "NOPE").await, 404, "not_found").await;

    let wallet = ok(send(&app, "GET", "/api/v1/users/me/coupons", &a, None).await).await;
    assert_eq!(wallet["items"][0]["coupon_id"], a_coupon.as_str());
    assert_eq!(wallet["items"][0]["status"], "issued");

    let apply = |token: &str, coupon: &str| {
        let (client, url, token) = (
            app.client.clone(),
            app.url("/api/v1/cart/coupon"),
            token.to_string(),
        );
        let body = json!({"coupon_id": coupon});
        async move {
            client
                .put(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    // One tee: 12,900 of tops, below the 20,000 minimum.
    let (path, body) = set_qty("tee-m", 1);
    ok(send(&app, "PUT", &path, &a, Some(body)).await).await;
    let r = apply(&a, &a_coupon).await;
    let problem = assert_problem(r, 409, "coupon_not_applicable").await;
    assert_eq!(problem["reason"], "below_minimum");
    // Two tees and shoes: tops subtotal 25,800 -> 10% = 2,580, capped at 2,000; shoes untouched.
    let (path, body) = set_qty("tee-m", 2);
    ok(send(&app, "PUT", &path, &a, Some(body)).await).await;
    let (path, body) = set_qty("run-270", 1);
    ok(send(&app, "PUT", &path, &a, Some(body)).await).await;
    let cart = ok(apply(&a, &a_coupon).await).await;
    assert_eq!(
        (
            cart["subtotal"].as_i64(),
            cart["discount"].as_i64(),
            cart["total"].as_i64()
        ),
        (Some(75800), Some(2000), Some(73800))
    );
    assert_eq!(
        cart["coupon"],
        json!({"coupon_id": a_coupon, "applicable": true})
    );
    // Dropping below the minimum keeps the coupon on the cart but it gives nothing.
    let (path, body) = set_qty("tee-m", 1);
    let cart = ok(send(&app, "PUT", &path, &a, Some(body)).await).await;
    assert_eq!(cart["discount"], 0);
    assert_eq!(cart["coupon"]["reason"], "below_minimum");
    let cart = ok(send(&app, "DELETE", "/api/v1/cart/coupon", &a, None).await).await;
    assert!(cart.get("coupon").is_none());

    // Another user's coupon is not in your wallet.
    let problem = assert_problem(apply(&c, &a_coupon).await, 409, "coupon_not_applicable").await;
    assert_eq!(problem["reason"], "not_in_wallet");

    // A fixed coupon scoped to the shoes; an expired and a future campaign.
    campaign(
        &app,
        json!({"name": "Shoes 5000", "code": "SHOES5K", "kind": "fixed", "value": 5000,
        "scope": {"type": "product", "product_id": shoes_id}, "per_user_limit": 1}),
    )
    .await;
    let shoes: Value = claim(c.clone(), "shoes5k").await.json().await.unwrap();
    let (path, body) = set_qty("tee-m", 1);
    ok(send(&app, "PUT", &path, &c, Some(body)).await).await;
    let problem = assert_problem(
        apply(&c, shoes["coupon_id"].as_str().unwrap()).await,
        409,
        "coupon_not_applicable",
    )
    .await;
    assert_eq!(problem["reason"], "no_eligible_items");
    let (path, body) = set_qty("run-270", 1);
    ok(send(&app, "PUT", &path, &c, Some(body)).await).await;
    let cart = ok(apply(&c, shoes["coupon_id"].as_str().unwrap()).await).await;
    assert_eq!(cart["discount"], 5000);
    campaign(&app, json!({"name": "Old", "code": "OLD", "kind": "fixed", "value": 1, "scope": {"type": "order"},
        "per_user_limit": 1, "starts_at": "2020-01-01T00:00:00Z", "ends_at": "2020-02-01T00:00:00Z"})).await;
    assert_problem(claim(c.clone(), "OLD").await, 409, "campaign_not_active").await;
    campaign(&app, json!({"name": "Soon", "code": "SOON", "kind": "fixed", "value": 1, "scope": {"type": "order"},
        "per_user_limit": 1, "starts_at": "2099-01-01T00:00:00Z"})).await;
    assert_problem(claim(c.clone(), "SOON").await, 409, "campaign_not_active").await;

    // Every campaign, by name, for the console.
    let list = ok(send(
        &app,
        "GET",
        "/api/v1/admin/coupon-campaigns",
        OPERATOR_TOKEN,
        None,
    )
    .await)
    .await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "by name");
    for name in ["Old", "Shoes 5000", "Soon"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let shoes5k = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["code"] == "SHOES5K")
        .unwrap();
    assert_eq!(shoes5k["kind"], "fixed");
    assert_eq!(shoes5k["value"], 5000);
    let r = send(&app, "GET", "/api/v1/admin/coupon-campaigns", &c, None).await;
    assert_eq!(r.status(), 403);

    // Admin errors.
    let cases = [
        (
            json!({"code": "old", "kind": "fixed", "value": 1, "scope": {"type": "order"}}),
            409,
            "code_taken",
        ),
        (
            json!({"code": "BAD1", "kind": "percent", "value": 150, "scope": {"type": "order"}}),
            422,
            "invalid_field",
        ),
        (
            json!({"code": "BAD2", "kind": "fixed", "value": 1, "scope": {"type": "galaxy"}}),
            422,
            "invalid_body",
        ),
        (
            json!({"code": "GHOST", "kind": "fixed", "value": 1,
                "scope": {"type": "product", "product_id": "p-none"}}),
            404,
            "not_found",
        ),
        (
            json!({"code": "BELL", "kind": "fixed", "value": 1, "scope": {"type": "order"},
                "name": "\u{7}bell"}),
            422,
            "invalid_field",
        ),
    ];
    for (mut body, status, code) in cases {
        if body.get("name").is_none() {
            body["name"] = json!("Admin error case");
        }
        body["per_user_limit"] = json!(1);
        let r = send(
            &app,
            "POST",
            "/api/v1/admin/coupon-campaigns",
            OPERATOR_TOKEN,
            Some(body),
        )
        .await;
        assert_problem(r, status, code).await;
    }
    let r = send(
        &app,
        "POST",
        "/api/v1/admin/coupon-campaigns",
        &a,
        Some(json!({})),
    )
    .await;
    assert_problem(r, 403, "forbidden").await;
    app.stop().await;
}

#[tokio::test]
async fn ordering_the_cart_takes_its_coupon_off_the_cart() {
    // Given a cart of one tee with a coupon of 1,000 off applied
    let app = spawn_app().await;
    products(&app).await;
    campaign(
        &app,
        json!({"name": "Thousand off", "code": "THOUSAND", "kind": "fixed", "value": 1000,
            "scope": {"type": "order"}, "per_user_limit": 1}),
    )
    .await;
    let (_, a, _) = app.customer("orders-cart@example.com").await;
    let claim = Some(json!({"code": "THOUSAND"}));
    let coupon = ok(send(&app, "POST", "/api/v1/coupons/claim", &a, claim).await).await;
    let (path, body) = set_qty("tee-m", 1);
    ok(send(&app, "PUT", &path, &a, Some(body)).await).await;
    let apply = Some(json!({"coupon_id": coupon["coupon_id"]}));
    let cart = ok(send(&app, "PUT", "/api/v1/cart/coupon", &a, apply.clone()).await).await;
    assert_eq!(cart["discount"], 1000);
    // When the cart is ordered (with its coupon)
    let body = json!({"shipping_address": crate::orders::address()});
    let order = ok(crate::orders::place(&app, &a, "whole-cart", body).await).await;
    assert_eq!(order["discount"], 1000);
    // Then the cart, still holding its line until payment, no longer shows the discount
    let cart = ok(send(&app, "GET", "/api/v1/cart", &a, None).await).await;
    assert!(cart.get("coupon").is_none(), "{cart}");
    assert_eq!(
        (cart["discount"].as_i64(), cart["total"].as_i64()),
        (Some(0), Some(12900))
    );
    // And applying it again says why it cannot apply: the order holds it
    let r = send(&app, "PUT", "/api/v1/cart/coupon", &a, apply).await;
    let problem = assert_problem(r, 409, "coupon_not_applicable").await;
    assert_eq!(problem["reason"], "reserved");
    app.stop().await;
}

/// Every item of a paged list at `path`, `limit` a page, checking each page's size.
async fn every_page(app: &TestApp, token: &str, path: &str, limit: usize) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let after = cursor.map(|c| format!("&cursor={c}")).unwrap_or_default();
        let url = format!("{path}?limit={limit}{after}");
        let page = ok(send(app, "GET", &url, token, None).await).await;
        let got = page["items"].as_array().unwrap();
        assert!(got.len() <= limit, "{page}");
        items.extend(got.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

#[tokio::test]
async fn wallets_and_wishlists_come_in_pages() {
    // Given a shopper with 25 coupons and 25 wished products
    let app = spawn_app().await;
    let (_, a, _) = app.customer("pages@example.com").await;
    campaign(
        &app,
        json!({"name": "Many", "code": "MANY", "kind": "fixed", "value": 100,
            "scope": {"type": "order"}, "per_user_limit": 25}),
    )
    .await;
    for i in 0..25 {
        let claim = Some(json!({"code": "MANY"}));
        ok(send(&app, "POST", "/api/v1/coupons/claim", &a, claim).await).await;
        let (name, sku) = (format!("Thing {i}"), format!("thing-{i}"));
        let product = product_with_sku(&app, &name, &sku, 1000, 1).await;
        let wish = format!("/api/v1/users/me/wishlist/{product}");
        ok(send(&app, "PUT", &wish, &a, None).await).await;
    }
    // When each list is read ten at a time, Then every item comes once, in id order
    for (path, id) in [
        ("/api/v1/users/me/coupons", "coupon_id"),
        ("/api/v1/users/me/wishlist", "product_id"),
    ] {
        let items = every_page(&app, &a, path, 10).await;
        let ids: Vec<&str> = items.iter().map(|i| i[id].as_str().unwrap()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!((ids.len(), &ids), (25, &sorted), "{path}");
        // And the default page is 20; a bad cursor or a limit of 0 is refused
        let first = ok(send(&app, "GET", path, &a, None).await).await;
        assert_eq!(first["items"].as_array().unwrap().len(), 20);
        let bad = send(&app, "GET", &format!("{path}?cursor=a%20b"), &a, None).await;
        assert_problem(bad, 400, "invalid_cursor").await;
        let zero = send(&app, "GET", &format!("{path}?limit=0"), &a, None).await;
        assert_problem(zero, 400, "invalid_query").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn ten_thousand_concurrent_claims_on_a_hundred_coupons_issue_exactly_a_hundred() {
    let app = spawn_app().await;
    campaign(
        &app,
        json!({"name": "Drop", "code": "FIRST100", "kind": "fixed", "value": 1000,
        "scope": {"type": "order"}, "total_quantity": 100, "per_user_limit": 100}),
    )
    .await;
    // 100 shoppers, 100 claims each, at most 256 requests in flight.
    let mut tokens = Vec::new();
    for i in 0..100 {
        let email = format!("racer{i}@example.com");
        let body =
            json!({"email": email, "password": "correct horse battery", "name": "R", "roles": []});
        ok(send(
            &app,
            "POST",
            "/api/v1/admin/users",
            OPERATOR_TOKEN,
            Some(body),
        )
        .await)
        .await;
        tokens.push(app.login(&email, "correct horse battery").await.0);
    }
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..10_000usize {
        let (client, url, token) = (
            app.client.clone(),
            app.url("/api/v1/coupons/claim"),
            tokens[n % 100].clone(),
        );
        let gate = gate.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let r = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"code": "FIRST100"}))
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        });
    }
    let mut created = 0;
    while let Some(status) = tasks.join_next().await {
        match status.unwrap() {
            201 => created += 1,
            409 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(created, 100);
    let mut in_wallets = 0;
    for token in &tokens {
        let wallet = ok(send(&app, "GET", "/api/v1/users/me/coupons", token, None).await).await;
        in_wallets += wallet["items"].as_array().unwrap().len();
    }
    assert_eq!(
        in_wallets, 100,
        "every issued coupon is in exactly one wallet"
    );
    app.stop().await;
}

#[tokio::test]
async fn wishlist_and_a_restart_keep_carts_and_wallets() {
    let app = spawn_app().await;
    let (tee_id, _) = products(&app).await;
    let (_, me, _) = app.customer("w@example.com").await;
    let path = format!("/api/v1/users/me/wishlist/{tee_id}");
    ok(send(&app, "PUT", &path, &me, None).await).await;
    let list = ok(send(&app, "PUT", &path, &me, None).await).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "adding twice keeps one"
    );
    assert_eq!(list["items"][0]["name"], "Basic Tee");
    assert_eq!(list["items"][0]["in_stock"], true);
    assert_problem(
        send(&app, "PUT", "/api/v1/users/me/wishlist/p-none", &me, None).await,
        404,
        "not_found",
    )
    .await;

    campaign(&app, json!({"name": "Keep", "code": "KEEP", "kind": "fixed", "value": 100, "scope": {"type": "order"}, "per_user_limit": 1})).await;
    ok(send(
        &app,
        "POST",
        "/api/v1/coupons/claim",
        &me,
        Some(json!({"code": "KEEP"})),
    )
    .await)
    .await;
    let (p, b) = set_qty("tee-m", 3);
    let before = ok(send(&app, "PUT", &p, &me, Some(b)).await).await;

    let dir = app.stop().await;
    let app = spawn_app_in(dir, &[]).await;
    let (me, _) = app.login("w@example.com", "correct horse battery").await;
    assert_eq!(
        ok(send(&app, "GET", "/api/v1/cart", &me, None).await).await,
        before
    );
    let wallet = ok(send(&app, "GET", "/api/v1/users/me/coupons", &me, None).await).await;
    assert_eq!(wallet["items"][0]["status"], "issued");
    let list = ok(send(&app, "GET", "/api/v1/users/me/wishlist", &me, None).await).await;
    assert_eq!(list["items"][0]["product_id"], tee_id.as_str());
    let list = ok(send(
        &app,
        "DELETE",
        &format!("/api/v1/users/me/wishlist/{tee_id}"),
        &me,
        None,
    )
    .await)
    .await;
    assert_eq!(list["items"], json!([]));
    // A code claimed before the restart is still known to the code index.
    let r = send(
        &app,
        "POST",
        "/api/v1/coupons/claim",
        &me,
        Some(json!({"code": "keep"})),
    )
    .await;
    assert_problem(r, 409, "already_claimed").await;
    app.stop().await;
}
