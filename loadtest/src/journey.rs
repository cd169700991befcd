//! The `journey` scenario: whole shopper journeys, each one a new person on their own connection:
//! sign up -> read the code from the dev mailbox -> verify -> log in -> search and open the
//! product -> put it in the cart -> claim a coupon and apply it -> order the cart -> pay at the
//! sandbox gateway -> confirm -> the operator ships -> wait until the carrier delivers.
//!
//! The figure is complete journeys per minute with `--connections` shoppers at a time; each
//! step's latency is recorded so a report says where a journey spends its time (Argon2 in
//! sign-up and log-in, the carrier's clock in delivery). Workers finish the journey they are in
//! when time is up, so every order ends delivered and the audit can be exact: the SKU sold one
//! unit per completed journey, holds nothing reserved, and the coupon campaign issued one
//! coupon per journey that reached the coupon step.
//!
//! The server must run in dev mode (the mailbox and the sandboxes), with
//! `EMPORIUM_AUTH_RATE_PER_IP=0` (every shopper comes from this one address) and a short
//! `EMPORIUM_CARRIER_STEP_SECS` (the carrier's clock is part of every journey).

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const PASSWORD: &str = "journey password 1";
const CARD: &str = "4111111111111111";
const PRICE: i64 = 30_000;

/// The steps in journey order (report order).
const STEPS: &[&str] = &[
    "signup",
    "mail",
    "verify",
    "login",
    "search",
    "product",
    "cart",
    "claim",
    "apply",
    "order",
    "authorise",
    "confirm",
    "ship",
    "deliver",
];

/// What every journey shares: the product and campaign prepared before the timed part.
struct Shop {
    base: String,
    operator: String,
    run_id: u32,
    sku: String,
    product_id: String,
    coupon_code: String,
    search: String,
}

/// The outcome of the whole run.
pub struct Figures {
    pub completed: u64,
    pub failed: BTreeMap<String, u64>,
    pub elapsed: Duration,
    pub steps: BTreeMap<&'static str, Histogram<u64>>,
    pub journey: Histogram<u64>,
}

pub async fn run(
    base: &str,
    operator: &str,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<()> {
    let shop = Arc::new(prepare(base, operator).await?);
    let figures = drive(shop.clone(), connections, duration).await?;
    report(&figures, connections);
    audit(&shop, &figures).await
}

/// A product with stock for any run, and a coupon campaign without a total limit.
async fn prepare(base: &str, operator: &str) -> anyhow::Result<Shop> {
    let client = reqwest::Client::new();
    let run_id = std::process::id();
    let search = format!("journey{run_id}");
    let sku = format!("lt-journey-{run_id}");
    let product = json!({"name": format!("Journey Tee {search}"), "description": "load test",
        "category": "loadtest", "skus": [{"sku_id": sku, "options": {"size": "M"},
        "price": PRICE, "stock": 10_000_000u64}]});
    let created =
        crate::create(&client, base, operator, "/api/v1/admin/products", &product).await?;
    let product_id = created["product_id"]
        .as_str()
        .context("product_id")?
        .to_string();
    let coupon_code = format!("JOURNEY{run_id}");
    let campaign = json!({"name": "Journey 10%", "code": coupon_code, "kind": "percent",
        "value": 10, "scope": {"type": "order"}, "per_user_limit": 1});
    crate::create(
        &client,
        base,
        operator,
        "/api/v1/admin/coupon-campaigns",
        &campaign,
    )
    .await?;
    eprintln!("prepared product {product_id} (sku {sku}) and coupon {coupon_code}");
    Ok(Shop {
        base: base.to_string(),
        operator: operator.to_string(),
        run_id,
        sku,
        product_id,
        coupon_code,
        search,
    })
}

/// `connections` shoppers at a time, each starting a new journey when the last one ends.
async fn drive(shop: Arc<Shop>, connections: usize, duration: Duration) -> anyhow::Result<Figures> {
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let completed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let (shop, stop, counter, completed) = (
            shop.clone(),
            stop.clone(),
            counter.clone(),
            completed.clone(),
        );
        workers.spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(2)
                .http1_only()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client");
            let mut steps: BTreeMap<&'static str, Histogram<u64>> = BTreeMap::new();
            let mut journeys = histogram();
            let mut failed: BTreeMap<String, u64> = BTreeMap::new();
            while !stop.load(Ordering::Relaxed) {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                let mut timer = Timer {
                    steps: &mut steps,
                    at: Instant::now(),
                };
                match journey(&client, &shop, n, &mut timer).await {
                    Ok(()) => {
                        completed.fetch_add(1, Ordering::Relaxed);
                        let _ = journeys.record(t.elapsed().as_micros() as u64);
                    }
                    Err(e) => {
                        let key = e.to_string().chars().take(120).collect();
                        *failed.entry(key).or_default() += 1;
                    }
                }
            }
            (steps, journeys, failed)
        });
    }
    let progress = tokio::spawn({
        let completed = completed.clone();
        async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = completed.load(Ordering::Relaxed);
                eprintln!(
                    "  {:>6.1}s  {:>5} journeys completed this second, {now} in all",
                    started.elapsed().as_secs_f64(),
                    now - last
                );
                last = now;
            }
        }
    });
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    eprintln!("  time is up: finishing the journeys under way");
    let mut figures = Figures {
        completed: 0,
        failed: BTreeMap::new(),
        elapsed: Duration::ZERO,
        steps: BTreeMap::new(),
        journey: histogram(),
    };
    while let Some(done) = workers.join_next().await {
        let (steps, journeys, failed) = done.context("worker")?;
        for (name, h) in steps {
            figures.steps.entry(name).or_insert_with(histogram).add(h)?;
        }
        figures.journey.add(journeys)?;
        for (why, n) in failed {
            *figures.failed.entry(why).or_default() += n;
        }
    }
    figures.elapsed = started.elapsed();
    figures.completed = completed.load(Ordering::Relaxed);
    progress.abort();
    Ok(figures)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("bounds")
}

/// Records how long each step took.
struct Timer<'a> {
    steps: &'a mut BTreeMap<&'static str, Histogram<u64>>,
    at: Instant,
}

impl Timer<'_> {
    fn lap(&mut self, step: &'static str) {
        let h = self.steps.entry(step).or_insert_with(histogram);
        let _ = h.record(self.at.elapsed().as_micros() as u64);
        self.at = Instant::now();
    }
}

/// Sends a request and reads a JSON answer with the expected status.
async fn expect(
    step: &str,
    request: reqwest::RequestBuilder,
    status: u16,
) -> anyhow::Result<Value> {
    let r = request
        .send()
        .await
        .with_context(|| format!("{step}: send"))?;
    let got = r.status().as_u16();
    let body = r.bytes().await.with_context(|| format!("{step}: body"))?;
    if got != status {
        let text = String::from_utf8_lossy(&body);
        bail!(
            "{step}: {got} {}",
            text.chars().take(80).collect::<String>()
        );
    }
    Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn journey(
    c: &reqwest::Client,
    shop: &Shop,
    n: u64,
    t: &mut Timer<'_>,
) -> anyhow::Result<()> {
    let api = |path: &str| format!("{}/api/v1{path}", shop.base);
    let email = format!("j{}-{n}@loadtest.example", shop.run_id);

    let signup = json!({"email": email, "password": PASSWORD, "name": "Journey Kim"});
    expect("signup", c.post(api("/auth/signup")).json(&signup), 201).await?;
    t.lap("signup");
    let code = mailed_code(c, shop, &email).await?;
    t.lap("mail");
    let verify = json!({"email": email, "code": code});
    expect(
        "verify",
        c.post(api("/auth/verify-email")).json(&verify),
        200,
    )
    .await?;
    t.lap("verify");
    let login = json!({"email": email, "password": PASSWORD});
    let session = expect("login", c.post(api("/auth/login")).json(&login), 200).await?;
    let token = session["access_token"].as_str().context("access_token")?;
    t.lap("login");

    let query = [("q", shop.search.as_str()), ("limit", "20")];
    let found = expect("search", c.get(api("/products")).query(&query), 200).await?;
    let listed = found["items"].as_array().is_some_and(|items| {
        items
            .iter()
            .any(|p| p["product_id"] == shop.product_id.as_str())
    });
    if !listed {
        bail!("search: the product is not listed");
    }
    t.lap("search");
    let product_url = api(&format!("/products/{}", shop.product_id));
    let product = expect("product", c.get(product_url), 200).await?;
    let sku = product["skus"][0]["sku_id"].as_str().context("sku_id")?;
    if sku != shop.sku {
        bail!("product: unexpected sku {sku}");
    }
    t.lap("product");
    let line = c
        .put(api(&format!("/cart/items/{sku}")))
        .bearer_auth(token)
        .json(&json!({"quantity": 1}));
    expect("cart", line, 200).await?;
    t.lap("cart");

    let claim = c
        .post(api("/coupons/claim"))
        .bearer_auth(token)
        .json(&json!({"code": shop.coupon_code}));
    let coupon = expect("claim", claim, 201).await?;
    let coupon_id = coupon["coupon_id"].as_str().context("coupon_id")?;
    t.lap("claim");
    let apply = c
        .put(api("/cart/coupon"))
        .bearer_auth(token)
        .json(&json!({"coupon_id": coupon_id}));
    let cart = expect("apply", apply, 200).await?;
    if cart["total"] != PRICE - PRICE / 10 {
        bail!("apply: the cart total is {}", cart["total"]);
    }
    t.lap("apply");

    let body = json!({"coupon_id": coupon_id, "shipping_address":
        {"name": "Journey Kim", "phone": "010-0000-0000", "address": "1 Load St, Seoul"}});
    let place = c
        .post(api("/orders"))
        .bearer_auth(token)
        .header("idempotency-key", format!("journey-{n}"))
        .json(&body);
    let order = expect("order", place, 201).await?;
    let order_id = order["order_id"].as_str().context("order_id")?;
    let total = order["total"].as_i64().context("total")?;
    t.lap("order");

    let pay = json!({"order_id": order_id, "amount": total, "card_number": CARD});
    let sandbox = format!("{}/sandbox/pg/v1/payments", shop.base);
    let payment = expect("authorise", c.post(sandbox).json(&pay), 201).await?;
    let payment_key = payment["payment_key"].as_str().context("payment_key")?;
    t.lap("authorise");
    let confirm = json!({"order_id": order_id, "payment_key": payment_key, "amount": total});
    let paid = c
        .post(api("/payments/confirm"))
        .bearer_auth(token)
        .json(&confirm);
    expect("confirm", paid, 200).await?;
    t.lap("confirm");

    let ship = c
        .post(api(&format!("/admin/orders/{order_id}/ship")))
        .bearer_auth(&shop.operator);
    expect("ship", ship, 200).await?;
    t.lap("ship");
    let detail = api(&format!("/orders/{order_id}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let d = expect("deliver", c.get(&detail).bearer_auth(token), 200).await?;
        if d["status"] == "delivered" {
            break;
        }
        if Instant::now() > deadline {
            bail!("deliver: still {} after 120 s", d["status"]);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.lap("deliver");
    Ok(())
}

/// Polls the dev mailbox until the verification mail is there; its first six digits.
async fn mailed_code(c: &reqwest::Client, shop: &Shop, email: &str) -> anyhow::Result<String> {
    let url = format!("{}/api/v1/dev/mailbox", shop.base);
    for _ in 0..500 {
        let mail = expect("mail", c.get(&url).query(&[("email", email)]), 200).await?;
        if let Some(text) = mail["items"][0]["body"].as_str() {
            let digits: String = text.chars().filter(char::is_ascii_digit).take(6).collect();
            if digits.len() == 6 {
                return Ok(digits);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("mail: no verification mail after 10 s (is the server in dev mode?)")
}

fn report(f: &Figures, connections: usize) {
    let minutes = f.elapsed.as_secs_f64() / 60.0;
    let failed: u64 = f.failed.values().sum();
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "journey: {:.0} complete journeys/min ({} completed, {failed} failed in {:.1}s, {connections} shoppers at a time); journey ms p50 {:.0} p99 {:.0}",
        f.completed as f64 / minutes,
        f.completed,
        f.elapsed.as_secs_f64(),
        ms(&f.journey, 0.5),
        ms(&f.journey, 0.99),
    );
    println!("  step        p50 ms   p99 ms");
    for step in STEPS {
        if let Some(h) = f.steps.get(step) {
            println!("  {step:<10} {:>8.1} {:>8.1}", ms(h, 0.5), ms(h, 0.99));
        }
    }
    for (why, n) in &f.failed {
        println!("  failed {n}x: {why}");
    }
}

/// Every journey completed and sold one unit; nothing stays reserved once every journey ended.
async fn audit(shop: &Shop, f: &Figures) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/admin/entities/sku/{}", shop.base, shop.sku);
    let v: Value = client
        .get(url)
        .bearer_auth(&shop.operator)
        .send()
        .await?
        .json()
        .await?;
    let s = &v["state"];
    let (sold, reserved) = (s["sold"].as_u64(), s["reserved"].as_u64());
    let (Some(sold), Some(reserved)) = (sold, reserved) else {
        bail!("unexpected entity body: {v}");
    };
    println!(
        "audit: sold {sold}, reserved {reserved}, completed journeys {}",
        f.completed
    );
    let failed: u64 = f.failed.values().sum();
    if failed > 0 {
        bail!("{failed} journeys failed: not a valid measurement");
    }
    if sold != f.completed || reserved != 0 {
        bail!("the stock does not match the journeys");
    }
    Ok(())
}
