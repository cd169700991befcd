//! `emporium-baseline`: the usual answers to a flash sale, for the load generator to measure
//! Emporium against (BENCHMARKS.md). Same HTTP stack (axum), JSON shapes and auth (HS256
//! access tokens, the operator token) as Emporium's drop routes; the stock lives in Redis:
//!
//! - `--mode lock` (what seed 002 does with Redisson): a lock per drop in Redis (`SET NX PX`,
//!   retried), then read the counts, check, write them back, record the order, unlock.
//! - `--mode lua`: one Lua script per purchase checks and takes (the industry's usual answer).
//!
//! It starts its own `redis-server` (Debian's package) on a free port with
//! `appendonly yes, appendfsync everysec` — weaker than Emporium's flushed-before-acknowledged,
//! which the README says beside the figures — unless `--redis-url` names one.
//!
//! Routes: `POST /api/v1/admin/products`, `POST /api/v1/admin/drops`, `GET /api/v1/drops/{id}`,
//! `POST /api/v1/drops/{id}/purchase`, `GET /api/v1/orders/{id}`, `GET /healthz`.

/// The allocator Emporium runs on (see its `Cargo.toml`).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use anyhow::Context;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::{Parser, ValueEnum};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Mode {
    Lock,
    Lua,
}

#[derive(Parser)]
#[command(name = "emporium-baseline")]
struct Cli {
    #[arg(long, value_enum)]
    mode: Mode,
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: String,
    #[arg(long, env = "EMPORIUM_JWT_SECRET")]
    jwt_secret: String,
    #[arg(long, env = "EMPORIUM_OPERATOR_TOKEN")]
    operator_token: String,
    /// An existing Redis; without it, a redis-server of our own is started.
    #[arg(long)]
    redis_url: Option<String>,
}

struct App {
    mode: Mode,
    redis: ConnectionManager,
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
    operator: String,
    buy: redis::Script,
    unlock: redis::Script,
}

type Shared = State<Arc<App>>;

/// Checks and takes in one step: `{1, order}` bought (or a replay), `{-1}` sold out,
/// `{-2}` limit reached, `{-3}` no such drop.
const BUY: &str = r"
local existing = redis.call('GET', KEYS[3])
if existing then return {1, existing} end
local remaining = tonumber(redis.call('HGET', KEYS[1], 'remaining'))
if remaining == nil then return {-3} end
local qty = tonumber(ARGV[1])
local limit = tonumber(redis.call('HGET', KEYS[1], 'limit'))
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
if held + qty > limit then return {-2} end
if remaining < qty then return {-1} end
redis.call('HINCRBY', KEYS[1], 'remaining', -qty)
redis.call('HINCRBY', KEYS[2], ARGV[2], qty)
redis.call('SET', KEYS[3], ARGV[3])
return {1, ARGV[3]}
";

/// Deletes the lock only if we still hold it.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (url, _redis) = match &cli.redis_url {
        Some(url) => (url.clone(), None),
        None => {
            let (url, child) = start_redis()?;
            (url, Some(child))
        }
    };
    let client = redis::Client::open(url.as_str())?;
    let mut redis = None;
    for _ in 0..100 {
        if let Ok(c) = ConnectionManager::new(client.clone()).await {
            redis = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let redis = redis.context("redis did not start")?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    let app = Arc::new(App {
        mode: cli.mode,
        redis,
        key: jsonwebtoken::DecodingKey::from_secret(cli.jwt_secret.as_bytes()),
        validation,
        operator: cli.operator_token,
        buy: redis::Script::new(BUY),
        unlock: redis::Script::new(UNLOCK),
    });
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/api/v1/admin/products", post(create_product))
        .route("/api/v1/admin/drops", post(create_drop))
        .route("/api/v1/drops/{id}", get(get_drop))
        .route("/api/v1/drops/{id}/purchase", post(purchase))
        .route("/api/v1/orders/{id}", get(get_order))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(&cli.listen).await?;
    println!(
        "emporium-baseline listening on http://{}",
        listener.local_addr()?
    );
    // Stop on SIGTERM or Ctrl-C so the redis-server we started is stopped with us.
    let stop = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await?;
    Ok(())
}

/// A redis-server of our own on a free port, in a temporary directory, killed with us.
fn start_redis() -> anyhow::Result<(String, KillOnDrop)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = std::env::temp_dir().join(format!("emporium-baseline-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "yes", "--appendfsync", "everysec"])
        .arg("--dir")
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("cannot start redis-server (apt-get install redis-server)")?;
    Ok((format!("redis://127.0.0.1:{port}/"), KillOnDrop(child, dir)))
}

struct KillOnDrop(std::process::Child, std::path::PathBuf);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn problem(status: StatusCode, code: &str) -> Response {
    (
        status,
        Json(json!({"status": status.as_u16(), "code": code})),
    )
        .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn is_operator(app: &App, headers: &HeaderMap) -> bool {
    bearer(headers) == Some(app.operator.as_str())
}

/// The shopper's id from an access token.
fn shopper(app: &App, headers: &HeaderMap) -> Option<String> {
    let token = bearer(headers)?;
    if token == app.operator {
        return Some("operator".into());
    }
    #[derive(serde::Deserialize)]
    struct Claims {
        sub: String,
    }
    jsonwebtoken::decode::<Claims>(token, &app.key, &app.validation)
        .ok()
        .map(|d| d.claims.sub)
}

fn redis_down(e: redis::RedisError) -> Response {
    eprintln!("redis: {e}");
    problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable")
}

async fn create_product(
    State(app): Shared,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !is_operator(&app, &headers) {
        return problem(StatusCode::FORBIDDEN, "forbidden");
    }
    let mut redis = app.redis.clone();
    for sku in body["skus"].as_array().into_iter().flatten() {
        let (Some(id), Some(stock)) = (sku["sku_id"].as_str(), sku["stock"].as_u64()) else {
            return problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
        };
        if let Err(e) = redis.set::<_, _, ()>(format!("stock:{id}"), stock).await {
            return redis_down(e);
        }
    }
    let id = format!("p{:016x}", rand::random::<u64>());
    (StatusCode::CREATED, Json(json!({"product_id": id}))).into_response()
}

async fn create_drop(State(app): Shared, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if !is_operator(&app, &headers) {
        return problem(StatusCode::FORBIDDEN, "forbidden");
    }
    let (Some(sku), Some(quantity), Some(limit)) = (
        body["sku_id"].as_str(),
        body["quantity"].as_u64(),
        body["per_user_limit"].as_u64(),
    ) else {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    };
    let id = format!("d{:016x}", rand::random::<u64>());
    let mut redis = app.redis.clone();
    let fields = [
        ("sku", sku.to_string()),
        ("quantity", quantity.to_string()),
        ("remaining", quantity.to_string()),
        ("limit", limit.to_string()),
    ];
    if let Err(e) = redis
        .hset_multiple::<_, _, _, ()>(format!("drop:{id}"), &fields)
        .await
    {
        return redis_down(e);
    }
    let body = json!({"drop_id": id, "sku_id": sku, "status": "live", "quantity": quantity,
        "remaining": quantity, "reserved": 0, "sold": 0});
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn get_drop(State(app): Shared, Path(id): Path<String>) -> Response {
    let mut redis = app.redis.clone();
    let counts: Result<(Option<u64>, Option<u64>), _> = redis::cmd("HMGET")
        .arg(format!("drop:{id}"))
        .arg("quantity")
        .arg("remaining")
        .query_async(&mut redis)
        .await;
    match counts {
        Ok((Some(quantity), Some(remaining))) => {
            let status = if remaining == 0 { "sold_out" } else { "live" };
            Json(
                json!({"drop_id": id, "status": status, "quantity": quantity,
                "remaining": remaining, "reserved": quantity - remaining, "sold": 0}),
            )
            .into_response()
        }
        Ok(_) => problem(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => redis_down(e),
    }
}

async fn get_order(State(app): Shared, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if shopper(&app, &headers).is_none() {
        return problem(StatusCode::UNAUTHORIZED, "invalid_token");
    }
    let mut redis = app.redis.clone();
    match redis.get::<_, Option<String>>(format!("order:{id}")).await {
        Ok(Some(order)) => {
            Json(serde_json::from_str::<Value>(&order).unwrap_or(Value::Null)).into_response()
        }
        Ok(None) => problem(StatusCode::NOT_FOUND, "not_found"),
        Err(e) => redis_down(e),
    }
}

async fn purchase(
    State(app): Shared,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let Some(user) = shopper(&app, &headers) else {
        return problem(StatusCode::UNAUTHORIZED, "invalid_token");
    };
    let Some(key) = headers.get("idempotency-key").and_then(|k| k.to_str().ok()) else {
        return problem(StatusCode::BAD_REQUEST, "idempotency_key_required");
    };
    let Some(qty) = body["quantity"].as_u64().filter(|q| (1..=100).contains(q)) else {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    };
    let digest = Sha256::digest(format!("{user}\n{key}").as_bytes());
    let order_id: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    let order_id = format!("o{order_id}");
    let order = json!({"order_id": order_id, "status": "awaiting_payment", "drop_id": id,
        "quantity": qty})
    .to_string();
    let keys = [
        format!("drop:{id}"),
        format!("drop:{id}:users"),
        format!("order:{order_id}"),
    ];
    let outcome = match app.mode {
        Mode::Lua => buy_with_script(&app, &keys, qty, &user, &order).await,
        Mode::Lock => buy_with_lock(&app, &keys, qty, &user, &order).await,
    };
    match outcome {
        Ok(Bought::Order(order)) => {
            let body = serde_json::from_str::<Value>(&order).unwrap_or(Value::Null);
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Ok(Bought::SoldOut) => problem(StatusCode::CONFLICT, "sold_out"),
        Ok(Bought::Limit) => problem(StatusCode::CONFLICT, "purchase_limit_reached"),
        Ok(Bought::NoDrop) => problem(StatusCode::NOT_FOUND, "not_found"),
        Ok(Bought::Busy) => problem(StatusCode::TOO_MANY_REQUESTS, "overloaded"),
        Err(e) => redis_down(e),
    }
}

enum Bought {
    Order(String),
    SoldOut,
    Limit,
    NoDrop,
    /// The lock could not be had in time.
    Busy,
}

async fn buy_with_script(
    app: &App,
    keys: &[String; 3],
    qty: u64,
    user: &str,
    order: &str,
) -> Result<Bought, redis::RedisError> {
    let mut redis = app.redis.clone();
    let reply: Vec<redis::Value> = app
        .buy
        .key(&keys[0])
        .key(&keys[1])
        .key(&keys[2])
        .arg(qty)
        .arg(user)
        .arg(order)
        .invoke_async(&mut redis)
        .await?;
    Ok(decode(&reply))
}

fn decode(reply: &[redis::Value]) -> Bought {
    let code = reply
        .first()
        .and_then(|v| redis::from_redis_value::<i64>(v.clone()).ok());
    match code {
        Some(1) => match reply
            .get(1)
            .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
        {
            Some(order) => Bought::Order(order),
            None => Bought::NoDrop,
        },
        Some(-1) => Bought::SoldOut,
        Some(-2) => Bought::Limit,
        _ => Bought::NoDrop,
    }
}

/// Seed 002's way: lock, read, check, write, unlock.
async fn buy_with_lock(
    app: &App,
    keys: &[String; 3],
    qty: u64,
    user: &str,
    order: &str,
) -> Result<Bought, redis::RedisError> {
    let mut redis = app.redis.clone();
    let lock = format!("lock:{}", keys[0]);
    let token = format!("{:016x}", rand::random::<u64>());
    let started = std::time::Instant::now();
    loop {
        let got: Option<String> = redis::cmd("SET")
            .arg(&lock)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(3000)
            .query_async(&mut redis)
            .await?;
        if got.is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(5) {
            return Ok(Bought::Busy);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let result = locked_purchase(&mut redis, keys, qty, user, order).await;
    let _: redis::RedisResult<i64> = app
        .unlock
        .key(&lock)
        .arg(&token)
        .invoke_async(&mut redis)
        .await;
    result
}

async fn locked_purchase(
    redis: &mut ConnectionManager,
    keys: &[String; 3],
    qty: u64,
    user: &str,
    order: &str,
) -> Result<Bought, redis::RedisError> {
    if let Some(existing) = redis.get::<_, Option<String>>(&keys[2]).await? {
        return Ok(Bought::Order(existing));
    }
    let (remaining, limit): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
        .arg(&keys[0])
        .arg("remaining")
        .arg("limit")
        .query_async(redis)
        .await?;
    let (Some(remaining), Some(limit)) = (remaining, limit) else {
        return Ok(Bought::NoDrop);
    };
    let held: Option<u64> = redis.hget(&keys[1], user).await?;
    if held.unwrap_or(0) + qty > limit {
        return Ok(Bought::Limit);
    }
    if remaining < qty {
        return Ok(Bought::SoldOut);
    }
    redis
        .hset::<_, _, _, ()>(&keys[0], "remaining", remaining - qty)
        .await?;
    redis.hincr::<_, _, _, ()>(&keys[1], user, qty).await?;
    redis.set::<_, _, ()>(&keys[2], order).await?;
    Ok(Bought::Order(order.to_string()))
}
