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
    node_with(file, name, data, &[])
}

/// A node with `extra` environment besides [`envs`].
pub fn node_with(file: &str, name: &str, data: &Path, extra: &[(&str, &str)]) -> super::Server {
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
    let mut all = envs();
    all.extend_from_slice(extra);
    start_serve(&args, &all)
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

/// The value of the series `series` (its name and labels, as `/metrics` writes them) on the
/// node at `base`, and the whole text (for a failure's message).
pub async fn metric(client: &reqwest::Client, base: &str, series: &str) -> (Option<f64>, String) {
    let url = format!("{base}/metrics");
    let text = client.get(url).send().await.unwrap().text().await.unwrap();
    let value = text
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    (value, text)
}

/// One purchase attempt of one unit, never panicking: the status, the `Retry-After` header and
/// the body; `None` when no answer came (the node is stopping, gone or cut off).
pub async fn try_buy(
    client: &reqwest::Client,
    base: &str,
    drop_id: &str,
    token: &str,
    key: &str,
) -> Option<(u16, Option<String>, Value)> {
    let r = client
        .post(format!("{base}/api/v1/drops/{drop_id}/purchase"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&json!({"quantity": 1}))
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    Some((status, retry, r.json().await.unwrap_or(Value::Null)))
}

/// Buys one unit (the node must answer); the status, the order id of a 201, and the
/// `Retry-After` header or else the problem's code.
pub async fn buy(
    client: &reqwest::Client,
    base: &str,
    drop_id: &str,
    token: &str,
    key: &str,
) -> (u16, Option<String>, Option<String>) {
    let (status, retry, body) = try_buy(client, base, drop_id, token, key)
        .await
        .expect("the node answers");
    (
        status,
        body["order_id"].as_str().map(str::to_string),
        retry.or(body["code"].as_str().map(str::to_string)),
    )
}

/// Starts a node of `file` for each of `names` (data under `dir/NAME`, `extra` environment),
/// waits until each serves and every node holds shards.
pub async fn start_nodes(
    file: &str,
    names: &[&str],
    dir: &Path,
    extra: &[(&str, &str)],
) -> Vec<super::Server> {
    let client = reqwest::Client::new();
    let nodes: Vec<super::Server> = names
        .iter()
        .map(|name| node_with(file, name, &dir.join(name), extra))
        .collect();
    for n in &nodes {
        super::wait_ready(&client, &n.base).await;
    }
    // Until each node holds the shards it prefers (a round after the last one joined).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, c) = get(&client, &format!("{}/api/v1/admin/cluster", nodes[0].base)).await;
        let spread = c["nodes"]
            .as_array()
            .is_some_and(|ns| ns.iter().all(|n| n["shards"].as_u64() > Some(0)));
        if spread {
            return nodes;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "some node holds no shard 10 s after the last one joined: {c}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The node that owns an entity, as the operator sees it. A shard changing hands (the nodes
/// still spreading them) has no holder for a moment: asked again until it has one.
pub async fn owner(client: &reqwest::Client, base: &str, kind: &str, id: &str) -> String {
    for _ in 0..100 {
        let (status, e) = get(client, &format!("{base}/api/v1/admin/entities/{kind}/{id}")).await;
        assert_eq!(status, 200, "{kind}/{id}: {e}");
        if let Some(node) = e["node"].as_str() {
            return node.to_string();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{kind}/{id} has no holder after 5 s")
}

/// A live drop (see [`live_drop`]) whose SKU `node` owns: SKUs `PREFIX-0`, `PREFIX-1`, … are
/// tried until one lands there. The drop id and the SKU.
pub async fn drop_owned_by(
    client: &reqwest::Client,
    base: &str,
    node: &str,
    prefix: &str,
    units: u64,
    per_user_limit: u32,
) -> (String, String) {
    for k in 0..64 {
        let sku = format!("{prefix}-{k}");
        let product = json!({"name": format!("Tee {sku}"), "category": "tops",
            "skus": [{"sku_id": sku, "options": {}, "price": 1000, "stock": units}]});
        super::admin_post(client, base, TOKEN, "/api/v1/admin/products", product).await;
        if owner(client, base, "sku", &sku).await == node {
            let drop = json!({"sku_id": sku, "quantity": units, "price": 900,
                "starts_at": "2020-01-01T00:00:00Z", "per_user_limit": per_user_limit});
            let created = super::admin_post(client, base, TOKEN, "/api/v1/admin/drops", drop).await;
            return (created["drop_id"].as_str().unwrap().to_string(), sku);
        }
    }
    panic!("none of 64 SKUs landed on {node}");
}

/// Waits (10 s at most) until every node of `bases` shows the drop: each reads it from its own
/// copy of the views, a moment after it was written.
pub async fn visible_everywhere(client: &reqwest::Client, bases: &[String], drop_id: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for base in bases {
        while get(client, &format!("{base}/api/v1/drops/{drop_id}"))
            .await
            .0
            != 200
        {
            assert!(
                std::time::Instant::now() < deadline,
                "drop {drop_id} never showed on {base}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
