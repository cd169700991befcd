//! Crash safety of a drop with the real binary: shoppers buy from one drop on many connections,
//! the engine is SIGKILLed in the middle, restarted on the same data dir, and audited: it is
//! ready within a second, every purchase answered 201 still holds its order and its units,
//! `sold + reserved + remaining == quantity`, units held beyond the 201s are at most the
//! purchases that were in flight when it died, and every held unit has its order (a purchase
//! is answered once its hold is durable; the order is written after, from the hold, so the
//! restart writes those the crash interrupted). And the drop's sales counters in `/metrics`,
//! exact in a process of their own.

mod common;

use common::{start, wait_ready};
use emporium::auth::tokens::TokenKeys;
use emporium::domain::ids::UserId;
use emporium::domain::time::{Clock, SystemClock};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const TOKEN: &str = "drop-crash-token";
const SECRET: &str = "drop-crash-jwt-secret-drop-crash-jwt-secret-01";
const QUANTITY: u64 = 3000;
const SHOPPERS: usize = 32;
const KILL_AFTER: usize = 400;

fn envs() -> Vec<(&'static str, &'static str)> {
    vec![
        ("EMPORIUM_OPERATOR_TOKEN", TOKEN),
        ("EMPORIUM_JWT_SECRET", SECRET),
        ("EMPORIUM__SANDBOX__ENABLED", "false"),
    ]
}

async fn admin(client: &reqwest::Client, base: &str, path: &str, body: Value) -> Value {
    common::admin_post(client, base, TOKEN, path, body).await
}

/// One shopper buying one unit at a time until the engine dies; the orders answered 201.
async fn shop(base: String, drop_id: String, n: usize, count: Arc<AtomicUsize>) -> Vec<String> {
    let keys = TokenKeys::new(SECRET.as_bytes(), 900);
    let user = UserId::parse(format!("u_crash{n}")).unwrap();
    let now = SystemClock.now().millis() / 1000;
    let token = keys.issue(&user, &Default::default(), "s", now).unwrap().0;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut acknowledged = Vec::new();
    for i in 0.. {
        let Ok(r) = client
            .post(format!("{base}/api/v1/drops/{drop_id}/purchase"))
            .bearer_auth(&token)
            .header("idempotency-key", format!("c{n}-{i}"))
            .json(&json!({"quantity": 1}))
            .send()
            .await
        else {
            break;
        };
        let status = r.status().as_u16();
        let Ok(body) = r.json::<Value>().await else {
            break;
        };
        assert_eq!(status, 201, "{body}");
        acknowledged.push(body["order_id"].as_str().unwrap().to_string());
        count.fetch_add(1, Ordering::Relaxed);
    }
    acknowledged
}

#[tokio::test]
async fn sigkill_during_a_drop_loses_no_acknowledged_purchase() {
    let data = tempfile::tempdir().unwrap();
    let env = envs();
    let client = reqwest::Client::new();
    let mut server = start(data.path(), &env);
    wait_ready(&client, &server.base).await;
    let product = json!({"name": "Crash Sneaker", "category": "shoes",
        "skus": [{"sku_id": "crash-snk", "options": {}, "price": 1000, "stock": QUANTITY}]});
    admin(&client, &server.base, "/api/v1/admin/products", product).await;
    let drop = json!({"sku_id": "crash-snk", "quantity": QUANTITY, "price": 900,
        "starts_at": "2020-01-01T00:00:00Z", "per_user_limit": 100});
    let created = admin(&client, &server.base, "/api/v1/admin/drops", drop).await;
    let drop_id = created["drop_id"].as_str().unwrap().to_string();

    let count = Arc::new(AtomicUsize::new(0));
    let mut shoppers = tokio::task::JoinSet::new();
    for n in 0..SHOPPERS {
        shoppers.spawn(shop(server.base.clone(), drop_id.clone(), n, count.clone()));
    }
    common::kill_when(&mut server, &count, KILL_AFTER).await;
    let mut acknowledged = Vec::new();
    while let Some(done) = shoppers.join_next().await {
        acknowledged.extend(done.unwrap());
    }
    assert!(acknowledged.len() >= KILL_AFTER);

    let server = start(data.path(), &env);
    let ready = wait_ready(&client, &server.base).await;
    assert!(ready < Duration::from_secs(1), "ready after {ready:?}");
    let d: Value = client
        .get(format!("{}/api/v1/drops/{drop_id}", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let n = |k: &str| d[k].as_u64().unwrap();
    let (sold, reserved, remaining) = (n("sold"), n("reserved"), n("remaining"));
    assert_eq!(sold + reserved + remaining, QUANTITY, "{d}");
    assert_eq!(sold, 0);
    let acked = acknowledged.len() as u64;
    assert!(
        reserved >= acked,
        "{reserved} reserved < {acked} acknowledged"
    );
    assert!(
        reserved - acked <= SHOPPERS as u64,
        "more units held than purchases in flight: {reserved} vs {acked}"
    );
    // Admin reads, as the operator.
    let get = |url: String| {
        let client = client.clone();
        async move { common::admin_get(&client, TOKEN, &url).await }
    };
    for id in &acknowledged {
        let o = get(format!("{}/api/v1/orders/{id}", server.base)).await;
        assert_eq!(
            o["status"], "awaiting_payment",
            "acknowledged order {id}: {o}"
        );
    }
    let stock = get(format!(
        "{}/api/v1/admin/entities/sku/crash-snk",
        server.base
    ))
    .await;
    assert_eq!(stock["state"]["reserved"].as_u64(), Some(reserved));

    // Every hold becomes an order, even those whose buyer got no answer: the hold keeps the
    // order, and the restart writes the ones the crash left unwritten.
    let outbox = format!("{}/api/v1/admin/outbox", server.base);
    let mut promised = Value::Null;
    for _ in 0..500 {
        promised = get(outbox.clone()).await["orders_promised"].clone();
        if promised == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(promised, 0, "every promised order written");
    let (mut orders, mut cursor) = (0u64, String::new());
    loop {
        let page = get(format!(
            "{}/api/v1/admin/orders?limit=100{cursor}",
            server.base
        ))
        .await;
        orders += page["items"].as_array().unwrap().len() as u64;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(orders, reserved, "one order per hold");
}

/// The value of the sample `name` (with its labels) in `/metrics`; 0 when absent.
async fn metric(client: &reqwest::Client, base: &str, name: &str) -> f64 {
    let text = client.get(format!("{base}/metrics")).send().await.unwrap();
    let text = text.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_drop_counts_each_sale_and_refusal_once_and_no_replay() {
    // Given a node of its own (its counters count only this test) with a live drop of five,
    // one to a shopper
    let data = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let server = start(data.path(), &envs());
    wait_ready(&client, &server.base).await;
    let product = json!({"name": "Counted Tee", "category": "tops",
        "skus": [{"sku_id": "counted", "options": {}, "price": 1000, "stock": 10}]});
    admin(&client, &server.base, "/api/v1/admin/products", product).await;
    let drop = json!({"sku_id": "counted", "quantity": 5, "price": 900,
        "starts_at": "2020-01-01T00:00:00Z", "per_user_limit": 1});
    let created = admin(&client, &server.base, "/api/v1/admin/drops", drop).await;
    let drop_id = created["drop_id"].as_str().unwrap();
    let keys = TokenKeys::new(SECRET.as_bytes(), 900);
    let user = UserId::parse("u_counted").unwrap();
    let now = SystemClock.now().millis() / 1000;
    let token = keys.issue(&user, &Default::default(), "s", now).unwrap().0;
    // Then before any sale, the counters a dashboard rates are there at zero
    let text = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    let text = text.text().await.unwrap();
    for series in [
        r#"emporium_drop_purchases_total{outcome="sold"} 0"#,
        r#"emporium_drop_purchases_total{outcome="sold_out"} 0"#,
        "emporium_drop_units_sold_total 0",
        r#"emporium_entity_restarts_total{kind="sku"} 0"#,
        r#"emporium_entity_restarts_total{kind="order"} 0"#,
        "emporium_log_writes_failed_total 0",
    ] {
        assert!(text.lines().any(|l| l == series), "{series} in {text}");
    }
    let buy = |key: &'static str| {
        client
            .post(format!("{}/api/v1/drops/{drop_id}/purchase", server.base))
            .bearer_auth(&token)
            .header("idempotency-key", key)
            .json(&json!({"quantity": 1}))
            .send()
    };
    // When the shopper buys one, replays the purchase, and tries a second
    assert_eq!(buy("m-1").await.unwrap().status(), 201);
    assert_eq!(buy("m-1").await.unwrap().status(), 201);
    assert_eq!(buy("m-2").await.unwrap().status(), 409);
    // Then exactly one sale of one unit and one refusal are counted: the replay is neither
    let count = |name: &'static str| metric(&client, &server.base, name);
    let sold = r#"emporium_drop_purchases_total{outcome="sold"}"#;
    let limited = r#"emporium_drop_purchases_total{outcome="limit_reached"}"#;
    assert_eq!(count(sold).await, 1.0);
    assert_eq!(count("emporium_drop_units_sold_total").await, 1.0);
    assert_eq!(count(limited).await, 1.0);
}
