//! `emporium-loadtest`: closed-loop load against a running server, with HDR latency.
//!
//! Scenarios:
//! - `ceiling`: `GET /healthz`, the loopback HTTP limit of the machine (the reference every other
//!   figure is quoted beside).
//! - `reserve`: `POST /api/v1/admin/skus/{sku}/reservations` with unique order ids, one hot SKU
//!   (needs the operator token); audits `available + reserved + sold` afterwards.
//! - `signup`: `POST /api/v1/auth/signup` with a new address each time (Argon2id per request).
//! - `login`: `POST /api/v1/auth/login` round-robin over accounts created first through
//!   `POST /api/v1/admin/users` (needs the operator token).
//!
//! - `browse`: `GET /api/v1/products?q=` with shoppers' prefixes (seed a catalog first:
//!   `emporium seed-demo --products 100000`).
//! - `suggest`: `GET /api/v1/search/suggest?q=` with the same prefixes.
//! - `storefront`: the web page at `/` and the files it loads, half of them revalidated (304):
//!   what serving the web faces costs beside the API.
//!
//! - `journey`: whole shopper journeys from sign-up to delivery (see [`journey`]).
//! - `compare`: Emporium and both Redis baselines (`emporium-baseline`) back to back, with
//!   the ratios (see [`compare`]).
//! - `flash-sale`: buyers on one drop, closed or open loop, audited, with a report (see
//!   [`flash`]).
//! - `failover`: a flash sale over the nodes of a cluster during which one node is SIGKILLed;
//!   buyers retry on the next node; the gap, the retries and the audit, with a chart.
//! - `ws-fanout`: WebSockets subscribed to one drop while buyers purchase from it; delivery
//!   latency and RSS per socket (see [`ws`]).
//! - `scale`: a million orders and carts on one server it starts itself: RSS per idle entity,
//!   graceful stop, restart to ready and to the first answer, disk per order (see [`scale`]).
//!
//! The auth scenarios come from one address: run the server with `EMPORIUM_AUTH_RATE_PER_IP=0`.

mod compare;
mod cpu;
mod drain;
mod flash;
mod journey;
mod report;
mod sale;
mod scale;
mod ws;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use sale::{Event, SaleArgs, sale_run};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "emporium-loadtest")]
pub(crate) struct Cli {
    /// Base URL of the server under test; `flash-sale` takes several (`--target A --target
    /// B`: the nodes of a cluster) and spreads its connections over them.
    #[arg(long, default_value = "http://127.0.0.1:8080", global = true)]
    pub(crate) target: Vec<String>,
    /// Concurrent connections (one request in flight on each).
    #[arg(long, default_value_t = 64, global = true)]
    pub(crate) connections: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 10, global = true)]
    pub(crate) duration: u64,
    /// The server's process id, for its CPU per request (and RSS in `ws-fanout`); by default
    /// the local process listening on the first target's port.
    #[arg(long, global = true)]
    pub(crate) server_pid: Option<u32>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// GET /healthz as fast as answered.
    Ceiling,
    /// Reserve one unit per request on one hot SKU.
    Reserve {
        #[arg(long, env = "EMPORIUM_OPERATOR_TOKEN")]
        token: String,
        #[arg(long, default_value = "loadtest-hot")]
        sku: String,
    },
    /// Sign up a new account per request.
    Signup,
    /// Search the catalog with prefixes shoppers type.
    Browse,
    /// Autocomplete with prefixes shoppers type.
    Suggest,
    /// The storefront's first page and each file it loads, gzip-compressed, round-robin;
    /// every other request revalidates with the file's ETag (a repeat visitor's 304).
    Storefront,
    /// Buyers on one drop (closed loop, or open loop with `--rate`), audited afterwards; a
    /// report under `--reports`.
    FlashSale {
        #[command(flatten)]
        sale: SaleArgs,
        /// SIGKILL a node of the cluster under test mid-run and report the fail-over gap:
        /// `PID`, or `n1=PID,n2=PID,n3=PID` to kill the node that owns the drop's SKU.
        #[arg(long)]
        kill_pid: Option<String>,
        /// Seconds into the run for `--kill-pid`.
        #[arg(long, default_value_t = 5)]
        kill_after: u64,
    },
    /// A flash sale over the nodes of a cluster (`--target` each) during which one node is
    /// SIGKILLed (or drained); buyers retry a `503` or a lost connection on the next node with
    /// the same idempotency key. Reports the gap, the retries and the audit, with a chart.
    Failover {
        #[command(flatten)]
        sale: SaleArgs,
        /// The node to kill: `PID`, or `n1=PID,n2=PID,n3=PID` for the owner of the drop's SKU.
        #[arg(long, required_unless_present = "drain", conflicts_with = "drain")]
        kill_pid: Option<String>,
        /// Instead of a kill, drain this node (by name) and report how long until it is down.
        #[arg(long)]
        drain: Option<String>,
        /// Seconds into the run for the kill or the drain.
        #[arg(long, default_value_t = 3)]
        kill_after: u64,
    },
    /// Starts Emporium, then each Redis baseline, measures each the same way, prints ratios.
    Compare {
        #[arg(
            long,
            env = "EMPORIUM_OPERATOR_TOKEN",
            default_value = "compare-operator-token"
        )]
        token: String,
        #[arg(
            long,
            env = "EMPORIUM_JWT_SECRET",
            default_value = "compare-jwt-secret-compare-jwt-secret-0123"
        )]
        jwt_secret: String,
        /// Where `emporium` and `emporium-baseline` are (default: beside this binary).
        #[arg(long)]
        bin_dir: Option<std::path::PathBuf>,
        /// Attempts of the 1,000-unit run.
        #[arg(long, default_value_t = 200_000)]
        attempts: u64,
        #[arg(long, default_value = "loadtest/reports")]
        reports: std::path::PathBuf,
    },
    /// Orders and carts by the million on a server started here (see `scale.rs`).
    Scale {
        #[arg(
            long,
            env = "EMPORIUM_OPERATOR_TOKEN",
            default_value = "scale-operator-token"
        )]
        token: String,
        #[arg(
            long,
            env = "EMPORIUM_JWT_SECRET",
            default_value = "scale-jwt-secret-scale-jwt-secret-0123456"
        )]
        jwt_secret: String,
        /// Where `emporium` is (default: beside this binary).
        #[arg(long)]
        bin_dir: Option<std::path::PathBuf>,
        /// Drop orders left awaiting payment.
        #[arg(long, default_value_t = 1_000_000)]
        orders: u64,
        /// Orders paid, shipped and delivered.
        #[arg(long, default_value_t = 20_000)]
        settled: u64,
        /// Drop buyers who also fill a cart.
        #[arg(long, default_value_t = 1_000_000)]
        carts: u64,
        /// The server's passivation period, in seconds.
        #[arg(long, default_value_t = 30)]
        idle_secs: u64,
        /// Where the server's data dir is made (and removed after).
        #[arg(long, default_value = "/tmp")]
        dir: std::path::PathBuf,
        /// Keep the data dir at the end (its path is printed), to look inside.
        #[arg(long)]
        keep: bool,
        /// After the graceful stop, run `emporium admin compact` on the data dir (with
        /// `--compression on|off` when given here) and report its disk after; the restart
        /// then opens the compacted store.
        #[arg(long)]
        compact: bool,
        #[arg(long, value_parser = ["on", "off"], requires = "compact")]
        compression: Option<String>,
    },
    /// `--sockets` WebSockets on one drop while `--connections` buyers purchase from it.
    WsFanout {
        #[arg(long, env = "EMPORIUM_OPERATOR_TOKEN")]
        token: String,
        #[arg(long, env = "EMPORIUM_JWT_SECRET")]
        jwt_secret: String,
        #[arg(long, default_value_t = 1000)]
        sockets: usize,
    },
    /// Whole shopper journeys, sign-up to delivery; `--connections` shoppers at a time.
    Journey {
        #[arg(long, env = "EMPORIUM_OPERATOR_TOKEN")]
        token: String,
    },
    /// Log in, round-robin over `--accounts` prepared accounts.
    Login {
        #[arg(long, env = "EMPORIUM_OPERATOR_TOKEN")]
        token: String,
        #[arg(long, default_value_t = 64)]
        accounts: usize,
    },
}

const PASSWORD: &str = "loadtest password 1";

/// The storefront's first page and the files it loads (`web/storefront/index.html`).
const STOREFRONT_FILES: [&str; 8] = [
    "/",
    "/assets/app.css",
    "/assets/app.js",
    "/common/core.js",
    "/assets/text.js",
    "/assets/shop.js",
    "/assets/orders.js",
    "/assets/account.js",
];

/// Prefixes of words the demo catalog uses, Latin and Hangul, 1 to 4 characters.
const PREFIXES: &[&str] = &[
    "b", "ba", "cl", "sl", "re", "bl", "blu", "bla", "te", "tee", "ja", "jack", "co", "coa", "sn",
    "swe", "ho", "hood", "je", "nav", "gr", "be", "pi", "ol", "cap", "to", "sc", "pa", "ch", "sh",
    "반", "반팔", "티", "티셔", "운", "운동", "가", "모", "니", "코", "패", "원", "셔", "자", "슬",
    "청",
];

fn prefix(n: u64) -> &'static str {
    PREFIXES[(n as usize) % PREFIXES.len()]
}

struct Totals {
    ok: u64,
    failed: u64,
    latency: Histogram<u64>,
    elapsed: Duration,
    /// Server CPU per request, in microseconds, when the server could be measured.
    cpu_us: Option<f64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let targets: Vec<String> = cli
        .target
        .iter()
        .map(|t| t.trim_end_matches('/').to_string())
        .collect();
    let base = targets[0].clone();
    let duration = Duration::from_secs(cli.duration);
    let server = cpu::server_pid(cli.server_pid, &base);
    match &cli.scenario {
        Scenario::Ceiling => {
            let url = format!("{base}/healthz");
            let totals = run(cli.connections, duration, server, move |c, _| c.get(&url)).await?;
            report("ceiling GET /healthz", &totals);
        }
        Scenario::Reserve { token, sku } => {
            let run_id = std::process::id();
            let sku = &format!("{sku}-{run_id}");
            let client = reqwest::Client::new();
            let stock_url = format!("{base}/api/v1/admin/skus/{sku}/stock");
            let set = client.put(&stock_url).bearer_auth(token);
            let r = set
                .json(&json!({"available": 1_000_000_000u64}))
                .send()
                .await?;
            if !r.status().is_success() {
                bail!("cannot set stock: {}", r.status());
            }
            let url = format!("{base}/api/v1/admin/skus/{sku}/reservations");
            let token2 = token.clone();
            let totals = run(cli.connections, duration, server, move |c, n| {
                let body =
                    json!({"order_id": format!("lt{run_id}-{n}"), "user_id": "lt", "quantity": 1});
                c.post(&url).bearer_auth(&token2).json(&body)
            })
            .await?;
            report("reserve POST /admin/skus/{sku}/reservations", &totals);
            audit(&client, &base, token, sku).await?;
        }
        Scenario::Signup => {
            let url = format!("{base}/api/v1/auth/signup");
            let run_id = std::process::id();
            let totals = run(cli.connections, duration, server, move |c, n| {
                let email = format!("lt{run_id}-{n}@loadtest.example");
                c.post(&url)
                    .json(&json!({"email": email, "password": PASSWORD, "name": "Load"}))
            })
            .await?;
            report("signup POST /auth/signup", &totals);
        }
        Scenario::Storefront => {
            let client = reqwest::Client::new();
            let mut files = vec![];
            for path in STOREFRONT_FILES {
                let url = format!("{base}{path}");
                let r = client
                    .get(&url)
                    .header("accept-encoding", "gzip")
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!("{path}: {}", r.status());
                }
                let etag = r
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                files.push((url, etag));
            }
            let totals = run(cli.connections, duration, server, move |c, n| {
                let (url, etag) = &files[n as usize % files.len()];
                let request = c.get(url).header("accept-encoding", "gzip");
                if (n / files.len() as u64) % 2 == 1 {
                    request.header("if-none-match", etag)
                } else {
                    request
                }
            })
            .await?;
            report("storefront GET / and its files (gzip, half 304)", &totals);
        }
        Scenario::Browse => {
            let url = format!("{base}/api/v1/products");
            let totals = run(cli.connections, duration, server, move |c, n| {
                c.get(&url).query(&[("q", prefix(n)), ("limit", "20")])
            })
            .await?;
            report("browse GET /products?q=", &totals);
        }
        Scenario::Suggest => {
            let url = format!("{base}/api/v1/search/suggest");
            let totals = run(cli.connections, duration, server, move |c, n| {
                c.get(&url).query(&[("q", prefix(n))])
            })
            .await?;
            report("suggest GET /search/suggest?q=", &totals);
        }
        Scenario::FlashSale {
            sale,
            kill_pid,
            kill_after,
        } => {
            let event = Event {
                kill_pid: kill_pid.as_deref(),
                drain: None,
                after: *kill_after,
            };
            sale_run(&cli, sale, event, false).await?
        }
        Scenario::Failover {
            sale,
            kill_pid,
            drain,
            kill_after,
        } => {
            let event = Event {
                kill_pid: kill_pid.as_deref(),
                drain: drain.as_deref(),
                after: *kill_after,
            };
            sale_run(&cli, sale, event, true).await?
        }
        Scenario::WsFanout {
            token,
            jwt_secret,
            sockets,
        } => {
            ws::run(ws::Options {
                flash: flash::Options {
                    base: base.clone(),
                    targets: Vec::new(),
                    kill: None,
                    operator: token.clone(),
                    jwt_secret: jwt_secret.clone(),
                    connections: cli.connections,
                    duration,
                    stock: 10_000_000,
                    users: 20_000,
                    per_user_limit: 100,
                    rate: 0,
                    attempts: 0,
                    label: "ws-fanout purchases".into(),
                    retry: false,
                    drain: None,
                    server_pid: server,
                },
                sockets: *sockets,
                server_pid: server,
            })
            .await?;
        }
        Scenario::Compare {
            token,
            jwt_secret,
            bin_dir,
            attempts,
            reports,
        } => {
            let bin_dir = servers_dir(bin_dir.as_ref())?;
            compare::run(compare::Options {
                bin_dir,
                operator: token.clone(),
                jwt_secret: jwt_secret.clone(),
                connections: cli.connections,
                duration,
                attempts: *attempts,
                reports: reports.clone(),
            })
            .await?;
        }
        Scenario::Scale {
            token,
            jwt_secret,
            bin_dir,
            orders,
            settled,
            carts,
            idle_secs,
            dir,
            keep,
            compact,
            compression,
        } => {
            let bin_dir = servers_dir(bin_dir.as_ref())?;
            scale::run(scale::Options {
                bin_dir,
                operator: token.clone(),
                jwt_secret: jwt_secret.clone(),
                connections: cli.connections,
                orders: *orders,
                settled: *settled,
                carts: *carts,
                idle_secs: *idle_secs,
                dir: dir.clone(),
                keep: *keep,
                compact: compact.then(|| compression.clone()),
            })
            .await?;
        }
        Scenario::Journey { token } => {
            journey::run(&base, token, cli.connections, duration).await?;
        }
        Scenario::Login { token, accounts } => {
            let emails = prepare_accounts(&base, token, *accounts).await?;
            let url = format!("{base}/api/v1/auth/login");
            let totals = run(cli.connections, duration, server, move |c, n| {
                let email = &emails[(n as usize) % emails.len()];
                c.post(&url)
                    .json(&json!({"email": email, "password": PASSWORD}))
            })
            .await?;
            report("login POST /auth/login", &totals);
        }
    }
    Ok(())
}

/// POSTs `body` to an admin route and expects `201 Created`; the answer's JSON.
async fn create(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    body: &Value,
) -> anyhow::Result<Value> {
    let r = client
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await?;
    if r.status() != 201 {
        bail!("POST {path}: {} {}", r.status(), r.text().await?);
    }
    Ok(r.json().await?)
}

/// Where the server binaries a scenario starts itself are: `given`, else beside this one.
fn servers_dir(given: Option<&std::path::PathBuf>) -> anyhow::Result<std::path::PathBuf> {
    match given {
        Some(dir) => Ok(dir.clone()),
        None => Ok(std::env::current_exe()?
            .parent()
            .context("binary dir")?
            .to_path_buf()),
    }
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs `connections` workers, each with its own keep-alive connection, for `duration`.
async fn run<F>(
    connections: usize,
    duration: Duration,
    server: Option<u32>,
    request: F,
) -> anyhow::Result<Totals>
where
    F: Fn(&reqwest::Client, u64) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let meter = cpu::Meter::start(server);
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .http1_only()
            .build()?;
        let (request, stop, counter) = (request.clone(), stop.clone(), counter.clone());
        workers.spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            let (mut ok, mut failed) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                match request(&client, n).send().await {
                    // A 304 answers a revalidation (`storefront`).
                    Ok(r)
                        if r.status().is_success()
                            || r.status() == reqwest::StatusCode::NOT_MODIFIED =>
                    {
                        let _ = r.bytes().await;
                        ok += 1;
                    }
                    _ => failed += 1,
                }
                let _ = hist.record(t.elapsed().as_micros() as u64);
            }
            (ok, failed, hist)
        });
    }
    let progress = tokio::spawn({
        let counter = counter.clone();
        async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = counter.load(Ordering::Relaxed);
                eprintln!(
                    "  {:>6.1}s  {:>8} req/s",
                    started.elapsed().as_secs_f64(),
                    now - last
                );
                last = now;
            }
        }
    });
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut totals = Totals {
        ok: 0,
        failed: 0,
        latency: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        elapsed: Duration::ZERO,
        cpu_us: None,
    };
    while let Some(res) = workers.join_next().await {
        let (ok, failed, hist) = res.context("worker")?;
        totals.ok += ok;
        totals.failed += failed;
        totals.latency.add(hist)?;
    }
    totals.elapsed = started.elapsed();
    progress.abort();
    if let Some(meter) = meter {
        totals.cpu_us = meter.per_request(totals.ok + totals.failed).await;
    }
    Ok(totals)
}

fn report(name: &str, t: &Totals) {
    let secs = t.elapsed.as_secs_f64();
    let ms = |q: f64| t.latency.value_at_quantile(q) as f64 / 1000.0;
    let cpu = t.cpu_us.map_or(String::new(), |us| {
        format!("; server CPU {us:.1} µs/request")
    });
    println!(
        "{name}: {:.0} ok/s ({} ok, {} failed in {secs:.1}s); latency ms p50 {:.2} p99 {:.2} p99.9 {:.2}{cpu}",
        t.ok as f64 / secs,
        t.ok,
        t.failed,
        ms(0.5),
        ms(0.99),
        ms(0.999)
    );
}

/// Creates verified accounts through the admin route; returns their addresses.
async fn prepare_accounts(base: &str, token: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let client = reqwest::Client::new();
    let run_id = std::process::id();
    let mut emails = Vec::with_capacity(n);
    for i in 0..n {
        let email = format!("lt{run_id}-login{i}@loadtest.example");
        let body = json!({"email": email, "password": PASSWORD, "name": "Load", "roles": []});
        let r = client
            .post(format!("{base}/api/v1/admin/users"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        if r.status() != 201 {
            bail!("cannot create {email}: {}", r.status());
        }
        emails.push(email);
    }
    eprintln!("prepared {n} accounts");
    Ok(emails)
}

async fn audit(client: &reqwest::Client, base: &str, token: &str, sku: &str) -> anyhow::Result<()> {
    let url = format!("{base}/api/v1/admin/entities/sku/{sku}");
    let v: Value = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    let s = &v["state"];
    let (a, r, so) = (
        s["available"].as_u64(),
        s["reserved"].as_u64(),
        s["sold"].as_u64(),
    );
    let (Some(a), Some(r), Some(so)) = (a, r, so) else {
        bail!("unexpected entity body: {v}");
    };
    println!(
        "audit: available {a} + reserved {r} + sold {so} = {}",
        a + r + so
    );
    if a + r + so != 1_000_000_000 {
        bail!("conservation violated");
    }
    Ok(())
}
