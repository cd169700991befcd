//! `scale`: memory, start-up, stop and disk with a million orders on one node (BENCHMARKS.md,
//! "entities"). It starts `emporium serve` itself, on a fresh data dir, and:
//!
//! 1. places `--settled` orders through the whole saga (order, the sandbox gateway, confirm,
//!    ship; the sandbox carrier delivers them), waits until they are at rest (passivated, so
//!    compacted), and measures the disk they take;
//! 2. sells a drop of `--orders` units, one to each of as many shoppers: orders awaiting
//!    payment, each with its expiry as a reminder;
//! 3. puts one item in the cart of `--carts` of those shoppers;
//! 4. waits until the entities have passivated (the server runs with `--idle-secs`), then
//!    reads the server's RSS: bytes per entity (orders and carts) over the RSS it had empty;
//! 5. stops it with SIGTERM (the graceful stop's time), starts it again on the same data dir
//!    (the time to `/readyz`, then to the first answer: a shopper's order history), and reads
//!    its RSS again;
//! 6. disk per order: the data dir's size over the orders it holds, and what it holds
//!    (`emporium admin usage`: records and bytes per type and kind); with `--compact`, the
//!    same after `emporium admin compact`, before the restart.
//!
//! `EMPORIUM__STORAGE__COMPRESSION=true` in the environment runs it with sled's compression.

use crate::compare::{Server, ready, spawn};
use crate::flash::Signer;
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct Options {
    pub bin_dir: PathBuf,
    pub operator: String,
    pub jwt_secret: String,
    pub connections: usize,
    /// Drop orders left awaiting payment.
    pub orders: u64,
    /// Orders paid, shipped and delivered.
    pub settled: u64,
    /// Shoppers (of the drop's buyers) with an item in their cart.
    pub carts: u64,
    /// The server's passivation period.
    pub idle_secs: u64,
    /// Where the data dir goes (a fresh one inside it, removed at the end).
    pub dir: PathBuf,
    /// Keep the data dir at the end.
    pub keep: bool,
    /// Compact the data dir after the graceful stop (`emporium admin compact`), with this
    /// `--compression` if any.
    pub compact: Option<Option<String>>,
}

const PRICE: i64 = 10_000;

pub async fn run(o: Options) -> anyhow::Result<()> {
    let bin = o.bin_dir.join("emporium");
    let data = o.dir.join(format!("emporium-scale-{}", std::process::id()));
    std::fs::create_dir_all(&data)?;
    let server = start(&bin, &data, &o)?;
    let result = measure(&bin, &data, server, &o).await;
    if o.keep {
        println!("data dir kept: {}", data.display());
    } else {
        let _ = std::fs::remove_dir_all(&data);
    }
    result
}

fn start(bin: &Path, data: &Path, o: &Options) -> anyhow::Result<Server> {
    let dir = data.display().to_string();
    let idle = o.idle_secs.to_string();
    let env = [
        ("EMPORIUM_OPERATOR_TOKEN", o.operator.as_str()),
        ("EMPORIUM_JWT_SECRET", o.jwt_secret.as_str()),
        ("EMPORIUM_DEV_MODE", "true"),
        ("EMPORIUM_ORDER_TTL_SECS", "86400"),
        ("EMPORIUM_CARRIER_STEP_SECS", "1"),
        ("EMPORIUM__ENTITIES__IDLE_SECS", idle.as_str()),
    ];
    let args = ["serve", "--listen", "127.0.0.1:0", "--data-dir", &dir];
    spawn(bin, &args, &env, None)
}

async fn measure(bin: &Path, data: &Path, server: Server, o: &Options) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let base = server.base.clone();
    ready(&base).await?;
    let pid = server.child.id();
    let empty_rss = rss(pid)?;
    // sled sets its first segments aside at once: disk figures are over this.
    let empty_disk = du(data);
    let signer = Arc::new(Signer::new(&o.jwt_secret)?);
    let (sku, drop_id) = prepare(&client, &base, o).await?;
    println!("empty server: RSS {}", mib(empty_rss));

    // 1. Settled orders, through the whole saga.
    let started = Instant::now();
    let settled = {
        let (signer, base, sku, operator) = (
            signer.clone(),
            base.clone(),
            sku.clone(),
            o.operator.clone(),
        );
        each(o.connections, o.settled, "settled orders", move |c, n| {
            let (signer, base, sku, operator) =
                (signer.clone(), base.clone(), sku.clone(), operator.clone());
            async move { settle(&c, &base, &signer, &operator, &sku, o_user(n)).await }
        })
        .await?
    };
    wait_delivered(&client, &base, &o.operator, o.settled).await?;
    let took = started.elapsed();
    // At rest: the settled orders passivate and take their compacted form.
    wait_passivated(&client, &base, &o.operator, o.idle_secs, settled).await?;
    let settled_disk = du(data).saturating_sub(empty_disk);
    println!(
        "{} settled orders in {:.0} s; at rest, data dir +{} over the empty one's {} = {:.0} B per settled order",
        settled,
        took.as_secs_f64(),
        mib(settled_disk),
        mib(empty_disk),
        settled_disk as f64 / o.settled.max(1) as f64
    );

    // 2. The drop: one unit to each of `orders` shoppers.
    let started = Instant::now();
    let url = format!("{base}/api/v1/drops/{drop_id}/purchase");
    let bought = {
        let signer = signer.clone();
        each(o.connections, o.orders, "drop purchases", move |c, n| {
            let (signer, url) = (signer.clone(), url.clone());
            async move {
                let r = c
                    .post(url)
                    .bearer_auth(signer.token(n)?)
                    .header("idempotency-key", format!("scale-{n}"))
                    .json(&json!({"quantity": 1}))
                    .send()
                    .await?;
                expect(r, 201, "purchase").await.map(drop)
            }
        })
        .await?
    };
    println!(
        "{bought} drop orders in {:.0} s ({:.0}/s)",
        started.elapsed().as_secs_f64(),
        bought as f64 / started.elapsed().as_secs_f64()
    );

    // 3. Carts.
    let carts = {
        let (signer, cart_url) = (signer.clone(), format!("{base}/api/v1/cart/items/{sku}"));
        each(o.connections, o.carts, "carts", move |c, n| {
            let (signer, url) = (signer.clone(), cart_url.clone());
            async move {
                let r = c
                    .put(url)
                    .bearer_auth(signer.token(n)?)
                    .json(&json!({"quantity": 1}))
                    .send()
                    .await?;
                expect(r, 200, "cart").await.map(drop)
            }
        })
        .await?
    };
    let peak = rss(pid)?;
    println!("{carts} carts; RSS {} with the entities active", mib(peak));

    // 4. Idle.
    let entities = bought + settled + carts;
    let active = wait_passivated(&client, &base, &o.operator, o.idle_secs, entities).await?;
    let idle_rss = rss(pid)?;
    let per_entity = |rss: u64| rss.saturating_sub(empty_rss) as f64 / entities.max(1) as f64;
    println!(
        "idle ({active} entities still active): RSS {} = {:.0} B per entity over the empty server's, for {entities} entities (orders and carts)",
        mib(idle_rss),
        per_entity(idle_rss)
    );

    // 5. Stop and start again.
    let stopping = Instant::now();
    let stopped = sigterm(server)?;
    println!(
        "graceful stop: {:.2} s ({stopped})",
        stopping.elapsed().as_secs_f64()
    );
    let disk = du(data).saturating_sub(empty_disk);
    let orders = bought + settled;
    println!(
        "data dir: +{} over the empty one's = {:.0} B per order ({orders} orders, {carts} carts, their shoppers)",
        mib(disk),
        disk as f64 / orders.max(1) as f64
    );
    print_usage(bin, data)?;
    if let Some(compression) = &o.compact {
        compact(bin, data, compression.as_deref())?;
        let disk = du(data).saturating_sub(empty_disk);
        println!(
            "compacted: data dir +{} over the empty one's = {:.0} B per order",
            mib(disk),
            disk as f64 / orders.max(1) as f64
        );
    }
    let starting = Instant::now();
    let server = start(bin, data, o)?;
    ready(&server.base).await?;
    let to_ready = starting.elapsed();
    let history = format!("{}/api/v1/orders?limit=20", server.base);
    let asked = Instant::now();
    let r = client
        .get(&history)
        .bearer_auth(signer.token(o_user(0))?)
        .send()
        .await?;
    let first: Value = expect(r, 200, "history").await?;
    let first_request = asked.elapsed();
    let listed = first["items"].as_array().map_or(0, Vec::len);
    let restarted_rss = rss(server.child.id())?;
    println!(
        "restart: /readyz after {:.2} s; the first request (an order history page, {listed} orders) {:.1} ms later, {:.2} s after start; RSS {}",
        to_ready.as_secs_f64(),
        first_request.as_secs_f64() * 1000.0,
        starting.elapsed().as_secs_f64(),
        mib(restarted_rss)
    );
    let _ = sigterm(server);
    Ok(())
}

/// Runs `emporium admin compact` on the stopped server's data dir and prints its report.
fn compact(bin: &Path, data: &Path, compression: Option<&str>) -> anyhow::Result<()> {
    match compression {
        Some(compression) => admin(bin, data, &["compact", "--compression", compression]),
        None => admin(bin, data, &["compact"]),
    }
}

/// Prints `emporium admin usage` of the stopped server's data dir: where the disk goes.
fn print_usage(bin: &Path, data: &Path) -> anyhow::Result<()> {
    admin(bin, data, &["usage"])
}

/// Runs `emporium admin <command> --data-dir <data>` and prints what it printed.
fn admin(bin: &Path, data: &Path, command: &[&str]) -> anyhow::Result<()> {
    let out = std::process::Command::new(bin)
        .arg("admin")
        .args(command)
        .arg("--data-dir")
        .arg(data)
        .output()?;
    if !out.status.success() {
        bail!(
            "admin {}: {}",
            command[0],
            String::from_utf8_lossy(&out.stderr)
        );
    }
    print!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}

/// The shopper of settled order `n`: after the drop's buyers, so their histories hold one
/// order each.
fn o_user(n: u64) -> u64 {
    1 << 40 | n
}

/// A product with two SKUs: one sold in a live drop of `orders` units (one per shopper), one
/// in stock for the settled orders and the carts.
async fn prepare(
    client: &reqwest::Client,
    base: &str,
    o: &Options,
) -> anyhow::Result<(String, String)> {
    let run = format!("{:08x}", rand::random::<u32>());
    let (dropped, stocked) = (format!("sc-drop-{run}"), format!("sc-{run}"));
    let product = json!({"name": format!("Scale {run}"), "description": "scale", "category":
        "loadtest", "skus": [
            {"sku_id": dropped, "options": {"kind": "drop"}, "price": PRICE, "stock": o.orders},
            {"sku_id": stocked, "options": {"kind": "stock"}, "price": PRICE,
                "stock": o.settled + 1_000_000}]});
    crate::create(
        client,
        base,
        &o.operator,
        "/api/v1/admin/products",
        &product,
    )
    .await?;
    let drop = json!({"sku_id": dropped, "quantity": o.orders.max(1), "price": PRICE,
        "starts_at": "2020-01-01T00:00:00Z", "per_user_limit": 1});
    let body = crate::create(client, base, &o.operator, "/api/v1/admin/drops", &drop).await?;
    let drop_id = body["drop_id"].as_str().context("drop_id")?.to_owned();
    Ok((stocked, drop_id))
}

/// One order through the saga: placed, authorised at the sandbox gateway, confirmed, shipped.
async fn settle(
    c: &reqwest::Client,
    base: &str,
    signer: &Signer,
    operator: &str,
    sku: &str,
    user: u64,
) -> anyhow::Result<()> {
    let token = signer.token(user)?;
    let api = |path: &str| format!("{base}/api/v1{path}");
    let body = json!({"items": [{"sku_id": sku, "quantity": 1}], "shipping_address":
        {"name": "Scale Kim", "phone": "010-0000-0000", "address": "1 Scale St, Seoul"}});
    let r = c
        .post(api("/orders"))
        .bearer_auth(&token)
        .header("idempotency-key", format!("settle-{user}"))
        .json(&body)
        .send()
        .await?;
    let order: Value = expect(r, 201, "order").await?;
    let id = order["order_id"].as_str().context("order_id")?;
    let total = order["total"].as_i64().context("total")?;
    let pay = json!({"order_id": id, "amount": total, "card_number": "4242424242424242"});
    let r = c
        .post(format!("{base}/sandbox/pg/v1/payments"))
        .json(&pay)
        .send()
        .await?;
    let payment: Value = expect(r, 201, "authorise").await?;
    let key = payment["payment_key"].as_str().context("payment_key")?;
    let confirm = json!({"order_id": id, "payment_key": key, "amount": total});
    let r = c
        .post(api("/payments/confirm"))
        .bearer_auth(&token)
        .json(&confirm)
        .send()
        .await?;
    expect(r, 200, "confirm").await?;
    let r = c
        .post(api(&format!("/admin/orders/{id}/ship")))
        .bearer_auth(operator)
        .send()
        .await?;
    expect(r, 200, "ship").await.map(drop)
}

async fn expect(r: reqwest::Response, status: u16, what: &str) -> anyhow::Result<Value> {
    if r.status().as_u16() != status {
        bail!(
            "{what}: {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
    }
    Ok(r.json().await.unwrap_or(Value::Null))
}

/// Runs jobs `0..count` over `connections` workers, each with its own connection; how many
/// succeeded. A job that fails is tried twice more (every request it sends is idempotent or
/// refused when repeated), then the run stops.
async fn each<F, Fut>(connections: usize, count: u64, what: &str, job: F) -> anyhow::Result<u64>
where
    F: Fn(reqwest::Client, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let job = Arc::new(job);
    let (next, done) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .http1_only()
            .timeout(Duration::from_secs(60))
            .build()?;
        let (job, next, done) = (job.clone(), next.clone(), done.clone());
        workers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    return Ok::<(), anyhow::Error>(());
                }
                let mut tries = 0;
                while let Err(e) = job(client.clone(), n).await {
                    tries += 1;
                    if tries == 3 {
                        return Err(e);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let progress = {
        let (done, what) = (done.clone(), what.to_owned());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                eprintln!("  {what}: {} of {count}", done.load(Ordering::Relaxed));
            }
        })
    };
    while let Some(worker) = workers.join_next().await {
        if let Err(e) = worker.context("worker")? {
            progress.abort();
            return Err(e.context(format!("{what} failed")));
        }
    }
    progress.abort();
    Ok(done.load(Ordering::Relaxed))
}

/// Waits until no order is `shipped` any more (the carrier delivered them all).
async fn wait_delivered(
    client: &reqwest::Client,
    base: &str,
    operator: &str,
    settled: u64,
) -> anyhow::Result<()> {
    let url = format!("{base}/api/v1/admin/orders?status=shipped&limit=1");
    for _ in 0..600 {
        let page: Value = client
            .get(&url)
            .bearer_auth(operator)
            .send()
            .await?
            .json()
            .await?;
        if page["items"].as_array().is_some_and(Vec::is_empty) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("{settled} orders were not all delivered in 300 s")
}

/// Waits until the entities have passivated: at most 1 % of `entities` still active, or the
/// passivation period and a minute more; how many are active then.
async fn wait_passivated(
    client: &reqwest::Client,
    base: &str,
    operator: &str,
    idle_secs: u64,
    entities: u64,
) -> anyhow::Result<u64> {
    let url = format!("{base}/api/v1/admin/actors");
    let deadline = Instant::now() + Duration::from_secs(idle_secs * 2 + 60);
    loop {
        let body: Value = client
            .get(&url)
            .bearer_auth(operator)
            .send()
            .await?
            .json()
            .await?;
        let active: u64 = body["kinds"]
            .as_array()
            .map_or(0, |k| k.iter().filter_map(|k| k["active"].as_u64()).sum());
        if active <= entities / 100 || Instant::now() > deadline {
            // Let the allocator settle after the last wave of passivations.
            tokio::time::sleep(Duration::from_secs(5)).await;
            return Ok(active);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Sends SIGTERM and waits for the exit (at most 60 s); how it ended.
fn sigterm(mut server: Server) -> anyhow::Result<String> {
    std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(status) = server.child.try_wait()? {
            return Ok(status.to_string());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!("the server did not stop within 60 s of SIGTERM")
}

/// The resident set of a process, in bytes (`VmRSS` of `/proc/<pid>/status`).
fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .context("no VmRSS")?;
    Ok(kb * 1024)
}

/// The bytes of every file under `dir`.
fn du(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
