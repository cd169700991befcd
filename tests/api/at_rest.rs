//! Orders at rest: passivated, the node restarted, then read and expired from storage alone
//! (the durable history index and the reminder index; no order is in memory).

use crate::helpers::{OPERATOR_TOKEN, TestApp, ok, product_with_sku, send, spawn_app_full};
use crate::orders::{FAST, detail, order_of, stock};
use emporium::domain::time::{Clock, ManualClock, SystemClock};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

const ORDERS: usize = 30;

/// `field` (`active`, `passivated`) of entity kind `kind` in `GET /admin/actors`.
async fn actors(app: &TestApp, kind: &str, field: &str) -> u64 {
    let body = ok(send(app, "GET", "/api/v1/admin/actors", OPERATOR_TOKEN, None).await).await;
    body["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == kind)
        .and_then(|k| k[field].as_u64())
        .expect("the kind is listed")
}

/// Every order id of the shopper's history, paged `limit` at a time.
async fn history(app: &TestApp, token: &str, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/orders?limit={limit}&cursor={c}"),
            None => format!("/api/v1/orders?limit={limit}"),
        };
        let page = ok(send(app, "GET", &path, token, None).await).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit);
        ids.extend(
            items
                .iter()
                .map(|o| o["order_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return ids,
        }
    }
}

/// Given a shopper's unpaid orders, every one passivated and the node restarted, when the
/// history is paged, then each order appears exactly once, newest first; and when the clock
/// passes their expiry, the reminder timer alone (no request names them) expires every one and
/// the stock is whole again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passivated_unpaid_orders_page_in_order_and_expire_on_time_after_a_restart() {
    let clock = ManualClock::starting_at(SystemClock.now());
    let mut extra = FAST.to_vec();
    extra.push(("EMPORIUM__ENTITIES__IDLE_SECS", "1"));
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_full(dir, &extra, Arc::new(clock.clone())).await;
    product_with_sku(&app, "Cup", "cup", 10000, ORDERS as u64).await;
    let (_, token, _) = app.customer("rest@example.com").await;
    let mut placed = Vec::new();
    for _ in 0..ORDERS {
        clock.advance(Duration::from_millis(3));
        let order: Value = order_of(&app, &token, "cup", 1).await;
        placed.push(order["order_id"].as_str().unwrap().to_owned());
    }
    for _ in 0..100 {
        if actors(&app, "order", "active").await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        actors(&app, "order", "active").await,
        0,
        "every order passivated"
    );
    assert!(actors(&app, "order", "passivated").await >= ORDERS as u64);
    let dir = app.stop().await;

    let app = spawn_app_full(dir, &extra, Arc::new(clock.clone())).await;
    let newest_first: Vec<String> = placed.iter().rev().cloned().collect();
    assert_eq!(history(&app, &token, 7).await, newest_first);
    assert_eq!(
        actors(&app, "order", "active").await,
        0,
        "the history read no order's actor"
    );
    assert_eq!(stock(&app, "cup").await, (0, ORDERS as u64, 0));

    clock.advance(Duration::from_secs(601));
    for _ in 0..200 {
        if stock(&app, "cup").await == (ORDERS as u64, 0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        stock(&app, "cup").await,
        (ORDERS as u64, 0, 0),
        "every unit back"
    );
    for id in &placed {
        assert_eq!(detail(&app, &token, id).await["status"], "expired", "{id}");
    }
    app.stop().await;
}
