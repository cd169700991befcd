//! Crash safety of the order saga with the real binary: shoppers place orders and confirm
//! payments concurrently against the sandbox gateway (its own process, so it outlives the
//! engine), the engine is SIGKILLed in the middle of the confirmations, restarted on the same
//! data dir, and left to re-drive what the crash interrupted. Then the audit: every order is in
//! a consistent state, an order is paid exactly when its payment was captured, no payment was
//! captured twice, every confirmation answered 200 is paid, and the stock adds up.

mod common;

use common::{start, start_sandbox, wait_ready};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const TOKEN: &str = "order-crash-token";
const STOCK: u64 = 5000;
const SHOPPERS: usize = 16;
const KILL_AFTER: usize = 150;

fn envs(gateway: &str) -> Vec<(&'static str, String)> {
    vec![
        ("EMPORIUM_OPERATOR_TOKEN", TOKEN.into()),
        (
            "EMPORIUM_JWT_SECRET",
            "crash-jwt-secret-crash-jwt-secret-0123456789".into(),
        ),
        ("EMPORIUM_AUTH_RATE_PER_IP", "0".into()),
        ("EMPORIUM__AUTH__ARGON2_M_KIB", "1024".into()),
        ("EMPORIUM__AUTH__ARGON2_T", "1".into()),
        (
            "EMPORIUM__PAYMENTS__BASE_URL",
            format!("{gateway}/sandbox/pg"),
        ),
        ("EMPORIUM__OUTBOX__POLL_MS", "50".into()),
        ("EMPORIUM__SANDBOX__ENABLED", "false".into()),
    ]
}

async fn admin(client: &reqwest::Client, base: &str, path: &str, body: Value) -> Value {
    common::admin_post(client, base, TOKEN, path, body).await
}

/// One shopper: order one unit, pay at the gateway, confirm; until the engine dies.
/// Returns the orders whose confirmation answered 200.
async fn shop(
    client: reqwest::Client,
    base: String,
    gateway: String,
    token: String,
    n: usize,
    count: Arc<AtomicUsize>,
) -> Vec<String> {
    let mut confirmed = Vec::new();
    for i in 0.. {
        let body = json!({"items": [{"sku_id": "crash", "quantity": 1}], "shipping_address":
            {"name": "Kim", "phone": "010", "address": "Seoul"}});
        let Ok(r) = client
            .post(format!("{base}/api/v1/orders"))
            .bearer_auth(&token)
            .header("idempotency-key", format!("s{n}-{i}"))
            .json(&body)
            .send()
            .await
        else {
            break;
        };
        if r.status() != 201 {
            break;
        }
        let order: Value = r.json().await.unwrap();
        let pay = json!({"order_id": order["order_id"], "amount": order["total"], "card_number": "4111111111111111"});
        let p: Value = client
            .post(format!("{gateway}/sandbox/pg/v1/payments"))
            .json(&pay)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let confirm = json!({"order_id": order["order_id"], "payment_key": p["payment_key"], "amount": order["total"]});
        let Ok(r) = client
            .post(format!("{base}/api/v1/payments/confirm"))
            .bearer_auth(&token)
            .json(&confirm)
            .send()
            .await
        else {
            break;
        };
        match r.status().as_u16() {
            200 => confirmed.push(order["order_id"].as_str().unwrap().to_string()),
            s => panic!("confirm answered {s}"),
        }
        count.fetch_add(1, Ordering::Relaxed);
    }
    confirmed
}

#[tokio::test]
async fn sigkill_during_confirmations_leaves_every_order_consistent_and_no_double_charge() {
    let mut sandbox = start_sandbox(&[]);
    let gateway = sandbox.base.clone();
    let data = tempfile::tempdir().unwrap();
    let owned = envs(&gateway);
    let env: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let mut server = start(data.path(), &env);
    wait_ready(&client, &server.base).await;
    let product = json!({"name": "Crash Mug", "category": "kitchen",
        "skus": [{"sku_id": "crash", "options": {}, "price": 1000, "stock": STOCK}]});
    admin(&client, &server.base, "/api/v1/admin/products", product).await;
    let mut tokens = Vec::new();
    for n in 0..SHOPPERS {
        let email = format!("s{n}@example.com");
        let user = json!({"email": email, "password": "correct horse battery", "name": "S", "roles": ["customer"]});
        admin(&client, &server.base, "/api/v1/admin/users", user).await;
        let r: Value = client
            .post(format!("{}/api/v1/auth/login", server.base))
            .json(&json!({"email": email, "password": "correct horse battery"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tokens.push(r["access_token"].as_str().unwrap().to_string());
    }

    let count = Arc::new(AtomicUsize::new(0));
    let mut shoppers = tokio::task::JoinSet::new();
    for (n, token) in tokens.iter().enumerate() {
        shoppers.spawn(shop(
            client.clone(),
            server.base.clone(),
            gateway.clone(),
            token.clone(),
            n,
            count.clone(),
        ));
    }
    common::kill_when(&mut server, &count, KILL_AFTER).await;
    let mut confirmed = Vec::new();
    while let Some(done) = shoppers.join_next().await {
        confirmed.extend(done.unwrap());
    }
    assert!(confirmed.len() >= KILL_AFTER);

    let mut server = start(data.path(), &env);
    wait_ready(&client, &server.base).await;
    // The dispatcher re-drives interrupted steps: wait until the outbox owes nothing (an
    // order whose placement the crash interrupted is invisible in listings until its
    // reservation is re-driven, so listings alone cannot tell "settled").
    let mut settled = false;
    let mut outbox = Value::Null;
    for _ in 0..400 {
        outbox = common::admin_get(
            &client,
            TOKEN,
            &format!("{}/api/v1/admin/outbox", server.base),
        )
        .await;
        assert_eq!(outbox["dead_letters"], 0, "{outbox}");
        if outbox["steps_pending"] == 0 {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !settled {
        let id = outbox["oldest_pending_order_id"].as_str().unwrap_or("-");
        let stuck = stuck_orders(&client, &server.base, id).await;
        panic!("the outbox did not drain after the restart: {stuck:#?}");
    }
    let orders = all_orders(&client, &server.base).await;

    let payments: Vec<Value> = client
        .get(format!("{gateway}/sandbox/pg/v1/audit"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut captures: HashMap<String, u64> = HashMap::new();
    for p in &payments {
        assert!(
            p["captures"].as_u64().unwrap() <= 1,
            "a payment captured twice: {p}"
        );
        *captures
            .entry(p["order_id"].as_str().unwrap().to_string())
            .or_default() += p["captures"].as_u64().unwrap();
    }
    let mut paid = 0u64;
    let mut awaiting = 0u64;
    for o in &orders {
        let id = o["order_id"].as_str().unwrap();
        let charged = captures.get(id).copied().unwrap_or(0);
        match o["status"].as_str().unwrap() {
            "paid" => {
                paid += 1;
                assert_eq!(charged, 1, "paid order {id} charged {charged} times");
            }
            "awaiting_payment" => {
                awaiting += 1;
                assert_eq!(charged, 0, "unpaid order {id} was charged");
            }
            other => panic!("order {id} is {other}"),
        }
    }
    for id in &confirmed {
        let o = orders
            .iter()
            .find(|o| o["order_id"] == id.as_str())
            .expect("a confirmed order exists");
        assert_eq!(o["status"], "paid", "confirmed order {id}");
    }
    let (available, reserved, sold) = stock(&client, &server.base).await;
    assert_eq!(available + reserved + sold, STOCK);
    assert_eq!(sold, paid, "sold units = paid orders");
    assert_eq!(reserved, awaiting, "reserved units = unpaid orders");
    server.child.kill().unwrap();
    sandbox.child.kill().unwrap();
}

async fn all_orders(client: &reqwest::Client, base: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = client
            .get(format!("{base}/api/v1/admin/orders?limit=100"))
            .bearer_auth(TOKEN);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        let page: Value = req.send().await.unwrap().json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            let id = item["order_id"].as_str().unwrap();
            let d: Value =
                common::admin_get(client, TOKEN, &format!("{base}/api/v1/orders/{id}")).await;
            out.push(d);
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

async fn stock(client: &reqwest::Client, base: &str) -> (u64, u64, u64) {
    let r: Value = common::admin_get(
        client,
        TOKEN,
        &format!("{base}/api/v1/admin/entities/sku/crash"),
    )
    .await;
    let s = &r["state"];
    (
        s["available"].as_u64().unwrap(),
        s["reserved"].as_u64().unwrap(),
        s["sold"].as_u64().unwrap(),
    )
}

/// The entity states of orders holding units on the SKU, or owing a step (for the failure
/// message; an order whose placement was interrupted is not listed, but holds a reservation).
async fn stuck_orders(client: &reqwest::Client, base: &str, oldest: &str) -> Vec<Value> {
    let sku: Value = common::admin_get(
        client,
        TOKEN,
        &format!("{base}/api/v1/admin/entities/sku/crash"),
    )
    .await;
    let mut ids: Vec<String> = sku["state"]["reservations"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    ids.push(oldest.to_string());
    for o in all_orders(client, base).await {
        ids.push(o["order_id"].as_str().unwrap().to_string());
    }
    let mut out = Vec::new();
    for id in ids {
        // Not `admin_get`: an order never written answers 404, and is reported as it is.
        let e: Value = client
            .get(format!("{base}/api/v1/admin/entities/order/{id}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let owes = e["state"]["effects"]
            .as_object()
            .is_some_and(|m| !m.is_empty());
        if owes || e["state"]["status"] != "paid" {
            out.push(e);
        }
    }
    out
}
