//! A cluster of real `emporium` processes over a real `redis-server`, for the cluster tests:
//! the cluster file, the nodes, a shopper's token, a live drop, and one purchase.
#![allow(dead_code)] // not every test binary uses every helper

use super::{RedisServer, free_port, start_serve};
use emporium::auth::tokens::TokenKeys;
use emporium::domain::ids::UserId;
use emporium::domain::time::{Clock, SystemClock};
use serde_json::{Value, json};
use std::path::Path;

pub const TOKEN: &str = "cluster-operator-token";
pub const SECRET: &str = "cluster-jwt-secret-cluster-jwt-secret-0123";

/// A cluster file with the nodes `names`: each listens for its peers on a free port (its HTTP
/// port in the file is unused: the tests pass `--listen 127.0.0.1:0`).
pub fn cluster_file(dir: &Path, shards: u32, redis: &RedisServer, names: &[&str]) -> String {
    let mut text = format!(
        "[cluster]\nshards = {shards}\nredis_url = \"{}\"\nlease_ttl_ms = 1500\n",
        redis.url()
    );
    for (i, name) in names.iter().enumerate() {
        text += &format!(
            "\n[[cluster.nodes]]\nname = \"{name}\"\nhttp = \"127.0.0.1:{}\"\ncluster = \"127.0.0.1:{}\"\n",
            18_000 + i,
            free_port()
        );
    }
    let path = dir.join(format!("cluster-{shards}.toml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

pub fn envs() -> Vec<(&'static str, &'static str)> {
    vec![
        ("EMPORIUM_OPERATOR_TOKEN", TOKEN),
        ("EMPORIUM_JWT_SECRET", SECRET),
        ("EMPORIUM__SANDBOX__ENABLED", "false"),
    ]
}

pub fn node(file: &str, name: &str, data: &Path) -> super::Server {
    let data = data.display().to_string();
    let args = [
        "--cluster",
        file,
        "--node",
        name,
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data,
    ];
    start_serve(&args, &envs())
}

pub fn shopper(n: usize) -> String {
    let keys = TokenKeys::new(SECRET.as_bytes(), 900);
    let now = SystemClock.now().millis() / 1000;
    let user = UserId::parse(format!("u_cluster{n}")).unwrap();
    keys.issue(&user, &Default::default(), "s", now).unwrap().0
}

/// A product with one SKU of `stock` units and a live drop of `quantity` of them; the drop id.
pub async fn live_drop(
    client: &reqwest::Client,
    base: &str,
    sku: &str,
    stock: u64,
    quantity: u64,
    per_user_limit: u32,
) -> String {
    let product = json!({"name": format!("Tee {sku}"), "category": "tops",
        "skus": [{"sku_id": sku, "options": {}, "price": 1000, "stock": stock}]});
    super::admin_post(client, base, TOKEN, "/api/v1/admin/products", product).await;
    let drop = json!({"sku_id": sku, "quantity": quantity, "price": 900,
        "starts_at": "2020-01-01T00:00:00Z", "per_user_limit": per_user_limit});
    let created = super::admin_post(client, base, TOKEN, "/api/v1/admin/drops", drop).await;
    created["drop_id"].as_str().unwrap().to_string()
}

pub async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = client.get(url).bearer_auth(TOKEN).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Buys one unit; the status and the order id of a 201.
pub async fn buy(
    client: &reqwest::Client,
    base: &str,
    drop_id: &str,
    token: &str,
    key: &str,
) -> (u16, Option<String>, Option<String>) {
    let r = client
        .post(format!("{base}/api/v1/drops/{drop_id}/purchase"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&json!({"quantity": 1}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (
        status,
        body["order_id"].as_str().map(str::to_string),
        retry.or(body["code"].as_str().map(str::to_string)),
    )
}
