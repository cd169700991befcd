//! Flash-sale drops over real HTTP: the lifecycle, thousands of concurrent buyers on a few
//! units, the per-user limit under one user's many connections, a drop not live before its
//! start, an expired order giving its units back to the drop, and replays told from new
//! buyers after a restart.

use crate::helpers::{
    JWT_SECRET, OPERATOR_TOKEN, TestApp, assert_problem, ok, pay, product_with_sku, send,
    spawn_app, spawn_app_full, spawn_app_in,
};
use emporium::auth::tokens::TokenKeys;
use emporium::domain::ids::UserId;
use emporium::domain::time::{Clock, ManualClock, SystemClock, Timestamp};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// A product whose SKU holds `stock` units.
async fn sku(app: &TestApp, sku: &str, stock: u64) {
    product_with_sku(app, "Limited Sneaker", sku, 200000, stock).await;
}

/// A drop of `quantity` units of `sku` opening at `starts_at`.
pub(crate) async fn drop_of(
    app: &TestApp,
    sku: &str,
    quantity: u32,
    limit: u32,
    starts_at: Timestamp,
) -> Value {
    let body = json!({"sku_id": sku, "quantity": quantity, "price": 99000,
        "starts_at": starts_at.to_rfc3339(), "per_user_limit": limit});
    let r = create_drop(app, OPERATOR_TOKEN, body).await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

/// `POST /api/v1/admin/drops` with `body`, as `token`.
async fn create_drop(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    send(app, "POST", "/api/v1/admin/drops", token, Some(body)).await
}

pub(crate) fn an_hour_ago() -> Timestamp {
    Timestamp(SystemClock.now().millis() - 3_600_000)
}

/// Access tokens for `n` shoppers, signed with the test key (no sign-up: the drop path needs
/// only an authenticated user id).
fn shoppers(n: usize) -> Vec<String> {
    let keys = TokenKeys::new(JWT_SECRET.as_bytes(), 900);
    let now = SystemClock.now().millis() / 1000;
    (0..n)
        .map(|i| {
            let user = UserId::parse(format!("u_shopper{i}")).unwrap();
            keys.issue(&user, &Default::default(), "s", now).unwrap().0
        })
        .collect()
}

pub(crate) async fn buy(
    app: &TestApp,
    token: &str,
    drop_id: &str,
    key: &str,
    qty: u32,
) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/drops/{drop_id}/purchase")))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&json!({"quantity": qty}))
        .send()
        .await
        .unwrap()
}

async fn drop_state(app: &TestApp, id: &str) -> Value {
    let r = app
        .client
        .get(app.url(&format!("/api/v1/drops/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a drop is public");
    r.json().await.unwrap()
}

/// The drop once its page shows `field == value`: the page is read from the SKU's durable
/// view, which may trail a purchase's answer by one group commit.
pub(crate) async fn drop_showing(app: &TestApp, id: &str, field: &str, value: Value) -> Value {
    let mut state = Value::Null;
    for _ in 0..200 {
        state = drop_state(app, id).await;
        if state[field] == value {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(state[field], value, "{state}");
    state
}

#[tokio::test]
async fn a_drop_sells_an_order_that_pays_like_any_other_and_replays_answer_the_same() {
    let app = spawn_app().await;
    sku(&app, "snk", 10).await;
    let d = drop_of(&app, "snk", 3, 2, an_hour_ago()).await;
    let id = d["drop_id"].as_str().unwrap();
    assert_eq!(d["status"], "live");
    assert_eq!(d["remaining"], 3);
    let stock = ok(app.inspect("sku", "snk").await).await;
    assert_eq!(
        stock["state"]["available"], 7,
        "the drop's units left the shelf"
    );

    let (_, token, _) = app.customer("fan@example.com").await;
    let r = buy(&app, &token, id, "k1", 1).await;
    assert_eq!(r.status(), 201);
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["status"], "awaiting_payment");
    assert_eq!(first["total"], 99000);
    assert!(first["expires_at"].is_string() && first["payment"]["checkout_url"].is_string());
    let again: Value = buy(&app, &token, id, "k1", 1).await.json().await.unwrap();
    assert_eq!(again, first, "the same key answers the same");
    let other = buy(&app, &token, id, "k1", 2).await;
    assert_problem(other, 422, "idempotency_key_reused").await;
    drop_showing(&app, id, "remaining", json!(2)).await;

    // Paid through the same saga as any order.
    let order_id = first["order_id"].as_str().unwrap();
    let paid = ok(pay(&app, &token, order_id, 99000).await).await;
    assert_eq!(paid["status"], "paid");
    let after = drop_showing(&app, id, "sold", json!(1)).await;
    assert_eq!(after["reserved"], 0);
    // Bought without an address, by a shopper whose profile has none: a clear conflict at
    // shipping, not a carrier retried for ever
    let path = format!("/api/v1/admin/orders/{order_id}/ship");
    let ship = send(&app, "POST", &path, OPERATOR_TOKEN, None).await;
    assert_problem(ship, 409, "shipping_address_required").await;

    let unknown = send(
        &app,
        "POST",
        "/api/v1/drops/nope/purchase",
        &token,
        Some(json!({"quantity": 1})),
    )
    .await;
    assert_eq!(unknown.status(), 400, "no Idempotency-Key");
    let unknown = buy(&app, &token, "nope", "k9", 1).await;
    assert_problem(unknown, 404, "not_found").await;
    let r = app
        .client
        .get(app.url("/api/v1/drops/nope"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 404, "not_found").await;
    let no_token = app
        .client
        .post(app.url(&format!("/api/v1/drops/{id}/purchase")))
        .header("idempotency-key", "k")
        .json(&json!({"quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 401);
    let zero = buy(&app, &token, id, "k0", 0).await;
    assert_problem(zero, 422, "invalid_field").await;
}

#[tokio::test]
async fn five_thousand_concurrent_buyers_on_a_hundred_units_buy_exactly_a_hundred() {
    let app = Arc::new(spawn_app().await);
    sku(&app, "hot", 1000).await;
    let d = drop_of(&app, "hot", 100, 1, an_hour_ago()).await;
    let id = d["drop_id"].as_str().unwrap().to_string();
    let tokens = shoppers(5000);
    let gate = Arc::new(tokio::sync::Semaphore::new(512));
    let mut buyers = tokio::task::JoinSet::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let (app, id, gate) = (app.clone(), id.clone(), gate.clone());
        buyers.spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let r = buy(&app, &token, &id, &format!("k{i}"), 1).await;
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (status, body)
        });
    }
    let mut orders = HashSet::new();
    let mut refused = 0;
    while let Some(done) = buyers.join_next().await {
        let (status, body) = done.unwrap();
        match status {
            201 => assert!(orders.insert(body["order_id"].as_str().unwrap().to_string())),
            409 | 429 => {
                assert!(
                    body["code"] == "sold_out" || status == 429,
                    "unexpected refusal {body}"
                );
                refused += 1;
            }
            other => panic!("answered {other}: {body}"),
        }
    }
    assert_eq!(orders.len(), 100, "exactly the units there were");
    assert_eq!(refused, 4900);
    let after = drop_showing(&app, &id, "reserved", json!(100)).await;
    assert_eq!(after["remaining"], 0);
    assert_eq!(after["reserved"], 100);
    assert_eq!(after["status"], "sold_out");
    for order_id in &orders {
        let r = send(
            &app,
            "GET",
            &format!("/api/v1/orders/{order_id}"),
            OPERATOR_TOKEN,
            None,
        )
        .await;
        assert_eq!(r.status(), 200, "every 201 names an order that exists");
    }
    let stock = ok(app.inspect("sku", "hot").await).await;
    assert_eq!(stock["state"]["reserved"], 100);
    assert_eq!(stock["state"]["available"], 900);
    // Answered once the holds were durable, the orders are written in the background.
    let mut outbox = Value::Null;
    for _ in 0..200 {
        outbox = ok(send(&app, "GET", "/api/v1/admin/outbox", OPERATOR_TOKEN, None).await).await;
        if outbox["orders_promised"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(outbox["orders_promised"], 0, "every promised order written");
    let listed = ok(send(
        &app,
        "GET",
        "/api/v1/admin/orders?limit=100",
        OPERATOR_TOKEN,
        None,
    )
    .await)
    .await;
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(100),
        "{listed}"
    );
}

#[tokio::test]
async fn one_user_on_many_connections_gets_no_more_than_the_limit() {
    let app = Arc::new(spawn_app().await);
    sku(&app, "lim", 100).await;
    let d = drop_of(&app, "lim", 50, 2, an_hour_ago()).await;
    let id = d["drop_id"].as_str().unwrap().to_string();
    let token = shoppers(1).remove(0);
    let mut tries = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (app, id, token) = (app.clone(), id.clone(), token.clone());
        tries.spawn(async move {
            // A client of its own: its own connection.
            let client = reqwest::Client::new();
            let r = client
                .post(app.url(&format!("/api/v1/drops/{id}/purchase")))
                .bearer_auth(&token)
                .header("idempotency-key", format!("many-{i}"))
                .json(&json!({"quantity": 1}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        });
    }
    let mut bought = 0;
    while let Some(done) = tries.join_next().await {
        let (status, body) = done.unwrap();
        match status {
            201 => bought += 1,
            409 => assert_eq!(body["code"], "purchase_limit_reached"),
            other => panic!("answered {other}: {body}"),
        }
    }
    assert_eq!(bought, 2);
    let after = drop_showing(&app, &id, "reserved", json!(2)).await;
    assert_eq!(
        (after["remaining"].as_u64(), after["reserved"].as_u64()),
        (Some(48), Some(2))
    );
}

#[tokio::test]
async fn a_drop_is_not_live_before_its_start() {
    let app = spawn_app().await;
    sku(&app, "soon", 10).await;
    let later = Timestamp(SystemClock.now().millis() + 3_600_000);
    let d = drop_of(&app, "soon", 5, 1, later).await;
    assert_eq!(d["status"], "scheduled");
    let token = shoppers(1).remove(0);
    let r = buy(&app, &token, d["drop_id"].as_str().unwrap(), "early", 1).await;
    let problem = assert_problem(r, 409, "drop_not_live").await;
    assert_eq!(problem["drop_status"], "scheduled");
    let bad = json!({"sku_id": "soon", "quantity": 6, "price": 1, "starts_at": later.to_rfc3339(),
        "per_user_limit": 1});
    let r = create_drop(&app, OPERATOR_TOKEN, bad).await;
    assert_problem(r, 409, "insufficient_stock").await;
    let bad = json!({"sku_id": "none", "quantity": 1, "price": 1, "starts_at": later.to_rfc3339(),
        "per_user_limit": 1});
    let r = create_drop(&app, OPERATOR_TOKEN, bad).await;
    assert_problem(r, 404, "not_found").await;
    let bad = json!({"sku_id": "soon", "quantity": 1, "price": 1, "starts_at": "tomorrow",
        "per_user_limit": 1});
    let r = create_drop(&app, OPERATOR_TOKEN, bad).await;
    assert_problem(r, 422, "invalid_field").await;
    let r = create_drop(&app, &token, json!({})).await;
    assert_eq!(r.status(), 403, "customers do not create drops");
}

#[tokio::test]
async fn mailbox_depths_are_in_the_metrics() {
    // Given a SKU's actor that has answered (the drop's sales counters are counted exactly
    // in a process of their own: tests/drop_crash.rs)
    let app = spawn_app().await;
    sku(&app, "counted", 10).await;
    drop_of(&app, "counted", 5, 1, an_hour_ago()).await;
    // Then each kind's mailbox depth is sampled (ten times a second)
    let mut text = String::new();
    for _ in 0..50 {
        let r = app.client.get(app.url("/metrics")).send().await.unwrap();
        text = r.text().await.unwrap();
        if text.contains(r#"emporium_mailbox_depth{kind="sku"}"#) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        text.contains(r#"emporium_mailbox_depth{kind="sku"}"#),
        "{text}"
    );
}

#[tokio::test]
async fn an_unpaid_drop_order_expires_and_its_unit_returns_to_the_drop() {
    let clock = ManualClock::starting_at(SystemClock.now());
    let env = [("EMPORIUM__OUTBOX__POLL_MS", "50")];
    let app = spawn_app_full(tempfile::tempdir().unwrap(), &env, Arc::new(clock.clone())).await;
    sku(&app, "exp", 10).await;
    let d = drop_of(&app, "exp", 1, 1, an_hour_ago()).await;
    let id = d["drop_id"].as_str().unwrap();
    let token = shoppers(1).remove(0);
    assert_eq!(buy(&app, &token, id, "first", 1).await.status(), 201);
    drop_showing(&app, id, "status", json!("sold_out")).await;
    let again = buy(&app, &token, id, "second", 1).await;
    assert_problem(again, 409, "sold_out").await;

    clock.advance(Duration::from_secs(601)); // past the order's 10 minutes
    let state = drop_showing(&app, id, "remaining", json!(1)).await;
    assert_eq!(state["status"], "live", "the unit is back");
    assert_eq!(
        buy(&app, &token, id, "third", 1).await.status(),
        201,
        "and can be bought"
    );
}

#[tokio::test]
async fn when_a_drop_ends_its_unsold_and_unpaid_units_go_back_on_sale() {
    // Given a drop of 3 of a SKU's 10 units, ending in an hour, with one unit bought, unpaid
    let clock = ManualClock::starting_at(SystemClock.now());
    let env = [("EMPORIUM__OUTBOX__POLL_MS", "50")];
    let app = spawn_app_full(tempfile::tempdir().unwrap(), &env, Arc::new(clock.clone())).await;
    sku(&app, "end", 10).await;
    let ends_at = Timestamp(clock.now().millis() + 3_600_000);
    let body = json!({"sku_id": "end", "quantity": 3, "price": 99000,
        "starts_at": an_hour_ago().to_rfc3339(), "ends_at": ends_at.to_rfc3339(),
        "per_user_limit": 1});
    let d: Value = ok(create_drop(&app, OPERATOR_TOKEN, body).await).await;
    let id = d["drop_id"].as_str().unwrap();
    let token = shoppers(1).remove(0);
    assert_eq!(buy(&app, &token, id, "held", 1).await.status(), 201);
    let shelf = |body: Value| body["available"].as_u64().unwrap();
    assert_eq!(
        shelf(ok(app.put_stock("end", json!({"delta": 0})).await).await),
        7
    );

    // When the window closes (and the order's ten minutes are long past)
    clock.advance(Duration::from_secs(3_601));

    // Then the drop has ended with nothing left in it, and all ten units are on the shelf
    let state = drop_showing(&app, id, "shelved", json!(3)).await;
    assert_eq!(state["status"], "ended");
    assert_eq!(
        (state["remaining"].clone(), state["reserved"].clone()),
        (json!(0), json!(0))
    );
    let mut available = 0;
    for _ in 0..200 {
        available = shelf(ok(app.put_stock("end", json!({"delta": 0})).await).await);
        if available == 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(available, 10, "the drop's units are for sale again");
}

#[tokio::test]
async fn after_a_restart_a_sold_out_drop_still_tells_replays_and_reused_keys_from_new_buyers() {
    // Given a sold-out drop, and an order of another drop under a second key
    let app = spawn_app().await;
    sku(&app, "rst", 10).await;
    let sold = drop_of(&app, "rst", 1, 1, an_hour_ago()).await;
    let sold = sold["drop_id"].as_str().unwrap().to_owned();
    let other = drop_of(&app, "rst", 1, 1, an_hour_ago()).await;
    let token = shoppers(1).remove(0);
    let r = buy(&app, &token, &sold, "bought", 1).await;
    assert_eq!(r.status(), 201);
    let first: Value = r.json().await.unwrap();
    let other = other["drop_id"].as_str().unwrap();
    assert_eq!(buy(&app, &token, other, "elsewhere", 1).await.status(), 201);
    drop_showing(&app, &sold, "status", json!("sold_out")).await;

    // When the node restarts (the drop path learns which ids are orders again, from the store)
    let app = spawn_app_in(app.stop().await, &[]).await;

    // Then, before and after that is learnt, the replay gets its order, the key of the other
    // order is refused as reused, and a new key is told the drop is sold out
    for _ in 0..10 {
        let again = buy(&app, &token, &sold, "bought", 1).await;
        assert_eq!(again.status(), 201);
        let mut again: Value = again.json().await.unwrap();
        // The checkout URL names the new server's port.
        again["payment"]["checkout_url"] = first["payment"]["checkout_url"].clone();
        assert_eq!(again, first);
        let reused = buy(&app, &token, &sold, "elsewhere", 1).await;
        assert_problem(reused, 422, "idempotency_key_reused").await;
        let new = buy(&app, &token, &sold, "late", 1).await;
        assert_problem(new, 409, "sold_out").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn past_the_in_flight_limit_buyers_are_shed_with_429_and_nothing_is_lost() {
    let env = [("EMPORIUM__ENTITIES__MAX_IN_FLIGHT", "2")];
    let app = Arc::new(crate::helpers::spawn_app_with(&env).await);
    sku(&app, "shed", 1000).await;
    let d = drop_of(&app, "shed", 1000, 100, an_hour_ago()).await;
    let id = d["drop_id"].as_str().unwrap().to_string();
    let tokens = shoppers(50);
    let mut buyers = tokio::task::JoinSet::new();
    for (i, token) in tokens.into_iter().cycle().take(400).enumerate() {
        let (app, id) = (app.clone(), id.clone());
        buyers.spawn(async move {
            let r = buy(&app, &token, &id, &format!("s{i}"), 1).await;
            let retry = r.headers().get("retry-after").is_some();
            (r.status().as_u16(), retry)
        });
    }
    let (mut created, mut shed) = (0u64, 0u64);
    while let Some(done) = buyers.join_next().await {
        match done.unwrap() {
            (201, _) => created += 1,
            (429, retry) => {
                assert!(retry, "a 429 says when to retry");
                shed += 1;
            }
            (other, _) => panic!("answered {other}"),
        }
    }
    assert!(shed > 0, "the limit sheds load");
    // Every 201 holds a unit, no 429 does (the page trails the last answers by a commit).
    let after = drop_showing(&app, &id, "reserved", json!(created)).await;
    assert_eq!(after["remaining"].as_u64().unwrap() + created, 1000);
}

#[tokio::test]
async fn drops_are_listed_soonest_first_filtered_by_status_and_product_and_paged_exactly_once() {
    // Given two live drops and a scheduled one, on SKUs of one product each
    let app = spawn_app().await;
    for s in ["a", "b", "c"] {
        sku(&app, s, 10).await;
    }
    let hour = 3_600_000;
    let soon = Timestamp(SystemClock.now().millis() + hour);
    let early = Timestamp(an_hour_ago().0 - hour);
    let (a, b, c) = (
        drop_of(&app, "a", 1, 1, an_hour_ago()).await,
        drop_of(&app, "b", 1, 1, early).await,
        drop_of(&app, "c", 1, 1, soon).await,
    );
    let list = |query: &str| {
        let url = app.url(&format!("/api/v1/drops{query}"));
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap() }
    };
    // Then all come soonest start first, each with its product
    let all = ok(list("").await).await;
    let ids: Vec<&Value> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["drop_id"])
        .collect();
    assert_eq!(ids, [&b["drop_id"], &a["drop_id"], &c["drop_id"]]);
    assert!(all["items"][0]["product_id"].is_string());
    // And a status filters
    let live = ok(list("?status=live").await).await;
    assert_eq!(live["items"].as_array().unwrap().len(), 2);
    let scheduled = ok(list("?status=scheduled").await).await;
    assert_eq!(scheduled["items"][0]["drop_id"], c["drop_id"]);
    // And so does a product: only the drops of its SKUs
    let of_a = all["items"][1]["product_id"].as_str().unwrap();
    let mine = ok(list(&format!("?product_id={of_a}")).await).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine["items"][0]["drop_id"], a["drop_id"]);
    let unknown = ok(list("?product_id=p0000000000000000000000000000000").await).await;
    assert_eq!(unknown["items"], json!([]));
    // And pages of one walk every drop exactly once
    let (mut seen, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let query = match &cursor {
            Some(c) => format!("?limit=1&cursor={c}"),
            None => "?limit=1".to_owned(),
        };
        let page = ok(list(&query).await).await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["drop_id"].clone()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3);
    // And nonsense is a 400 problem
    assert_problem(list("?status=maybe").await, 400, "invalid_query").await;
    assert_problem(list("?cursor=nope").await, 400, "invalid_cursor").await;
    assert_problem(list("?product_id=a%20b").await, 400, "invalid_id").await;
}
