//! Crash safety of the real binary: thousands of concurrent reservations on one SKU, SIGKILL in
//! the middle of the load, restart on the same data dir, audit. Three kills in one test.
//!
//! After every restart: every reservation that got a 201 is held, none that got a 409 is, and
//! `available + reserved + sold` equals the stock that was set.

mod common;

use common::{Server, wait_ready};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const TOKEN: &str = "crash-test-token";
const STOCK: u64 = 1500;
const WORKERS: usize = 64;
/// Responses to wait for in a round before the kill.
const KILL_AFTER: usize = 600;

#[derive(Default)]
struct Outcomes {
    accepted: HashSet<String>,
    rejected: HashSet<String>,
}

/// Fires reservations from many workers until the server dies; returns what each got.
async fn load_until_killed(server: &mut Server, round: usize) -> Outcomes {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(WORKERS)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let responses = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..WORKERS {
        let client = client.clone();
        let url = format!("{}/api/v1/admin/skus/hot/reservations", server.base);
        let responses = responses.clone();
        workers.spawn(async move {
            let mut out = Outcomes::default();
            for i in 0.. {
                let order = format!("r{round}-w{w}-{i}");
                let sent = client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .json(&json!({"order_id": order, "user_id": format!("u{w}"), "quantity": 1}))
                    .send()
                    .await;
                let Ok(resp) = sent else { break };
                let status = resp.status().as_u16();
                responses.fetch_add(1, Ordering::Relaxed);
                match status {
                    201 => out.accepted.insert(order),
                    409 => out.rejected.insert(order),
                    other => panic!("unexpected status {other}"),
                };
            }
            out
        });
    }
    common::kill_when(server, &responses, KILL_AFTER).await;
    let mut all = Outcomes::default();
    while let Some(out) = workers.join_next().await {
        let out = out.unwrap();
        all.accepted.extend(out.accepted);
        all.rejected.extend(out.rejected);
    }
    all
}

async fn sku_state(client: &reqwest::Client, base: &str) -> Value {
    let url = format!("{base}/api/v1/admin/entities/sku/hot");
    common::admin_get(client, TOKEN, &url).await["state"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_reservations_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut server = start(dir.path());
    wait_ready(&client, &server.base).await;
    let r = client
        .put(format!("{}/api/v1/admin/skus/hot/stock", server.base))
        .bearer_auth(TOKEN)
        .json(&json!({"available": STOCK}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let mut accepted = HashSet::new();
    let mut rejected = HashSet::new();
    for round in 0..3 {
        let out = load_until_killed(&mut server, round).await;
        accepted.extend(out.accepted);
        rejected.extend(out.rejected);

        server = start(dir.path());
        let ready_after = wait_ready(&client, &server.base).await;
        eprintln!("round {round}: ready {ready_after:?} after restart");
        let state = sku_state(&client, &server.base).await;
        let held = state["reservations"].as_object().unwrap();
        let (available, reserved, sold) = (
            state["available"].as_u64().unwrap(),
            state["reserved"].as_u64().unwrap(),
            state["sold"].as_u64().unwrap(),
        );
        assert_eq!(
            available + reserved + sold,
            STOCK,
            "conservation after kill {round}"
        );
        assert_eq!(reserved, held.len() as u64, "one unit per held order");
        for order in &accepted {
            assert!(
                held.contains_key(order),
                "acknowledged {order} lost in kill {round}"
            );
        }
        for order in &rejected {
            assert!(
                !held.contains_key(order),
                "rejected {order} is held after kill {round}"
            );
        }
        eprintln!(
            "round {round}: {} acknowledged, {} rejected so far; {} held, {available} available",
            accepted.len(),
            rejected.len(),
            held.len()
        );
    }
    assert!(accepted.len() >= KILL_AFTER, "the load reached the server");
    assert!(
        !rejected.is_empty(),
        "the stock sold out, so some attempts were refused"
    );
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

fn start(data_dir: &std::path::Path) -> Server {
    common::start(data_dir, &[("EMPORIUM_OPERATOR_TOKEN", TOKEN)])
}
