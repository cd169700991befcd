//! The `flash-sale` scenario (BENCHMARKS.md): shoppers buy one unit each from one drop through
//! `POST /api/v1/drops/{id}/purchase`, against Emporium or any server speaking the drop API.
//!
//! Before the timed part: a product with one SKU and a drop of `--stock` units are created
//! (admin token), and `--users` shoppers get access tokens signed with the server's JWT key.
//! Timed part, either closed loop (`--rate 0`: every connection sends as soon as it has its
//! answer, for peak throughput) or open loop (`--rate R`: request `i` is due at `i / R`
//! seconds; its latency is measured from that due time, so a stalled server is charged for the
//! requests it delayed — coordinated omission corrected). `--attempts` stops after that many.
//!
//! Afterwards the audit of BENCHMARKS.md: `sold + reserved + remaining == quantity`,
//! `sold <= quantity`, the number of 201s equals `sold + reserved`, and every 201 names an
//! order that exists. A report (Markdown, JSON and an SVG chart of throughput and latency per
//! second) goes to `loadtest/reports/`.

use crate::report::{Run, Second};
use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct Options {
    /// Where the drop is prepared and audited (the first target that answers).
    pub base: String,
    /// Every node the buyers spread over (connection `i` starts on target `i % n`; when its
    /// node cannot be reached it moves to the next). Empty: `base` alone.
    pub targets: Vec<String>,
    /// SIGKILL a node under test (same machine) this long into the run, and report the
    /// fail-over gap: from the kill to the first purchase sent after it that succeeds.
    pub kill: Option<(Kill, Duration)>,
    /// Drain this node of the cluster under test this long into the run (`POST
    /// /admin/cluster/nodes/{name}/drain`), and report how long until it is `down`.
    pub drain: Option<(String, Duration)>,
    pub operator: String,
    pub jwt_secret: String,
    pub connections: usize,
    pub duration: Duration,
    pub stock: u32,
    pub users: usize,
    pub per_user_limit: u32,
    /// Requests per second for an open loop; 0 for a closed loop.
    pub rate: u64,
    /// Stop after this many attempts (0: no limit).
    pub attempts: u64,
    pub label: String,
    /// Retry as a careful client does (the `failover` scenario): a `503` (with `Retry-After`)
    /// or no answer at all is sent again, with the same idempotency key, to the next target
    /// after 50 ms, up to [`MAX_TRIES`] times; counted as retries, not errors.
    pub retry: bool,
    /// The server's process id (this machine): its CPU per request is measured.
    pub server_pid: Option<u32>,
}

/// The most sends of one purchase when retrying.
pub const MAX_TRIES: u32 = 100;

/// Which process `--kill-pid` names.
#[derive(Debug, Clone)]
pub enum Kill {
    Pid(u32),
    /// `node=pid` for each node: the one that owns the drop's SKU (asked through the admin
    /// entity endpoint) is killed.
    OwnerOf(Vec<(String, u32)>),
}

impl Kill {
    /// `PID`, or `n1=PID,n2=PID,...`.
    pub fn parse(text: &str) -> anyhow::Result<Kill> {
        if let Ok(pid) = text.parse() {
            return Ok(Kill::Pid(pid));
        }
        let pairs = text
            .split(',')
            .map(|pair| {
                let (node, pid) = pair.split_once('=').context("expected node=pid")?;
                Ok((node.to_owned(), pid.parse()?))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Kill::OwnerOf(pairs))
    }

    async fn pid(
        &self,
        client: &reqwest::Client,
        o: &Options,
        drop_id: &str,
    ) -> anyhow::Result<u32> {
        let pairs = match self {
            Kill::Pid(pid) => return Ok(*pid),
            Kill::OwnerOf(pairs) => pairs,
        };
        let get = |path: String| {
            client
                .get(format!("{}{path}", o.base))
                .bearer_auth(&o.operator)
                .send()
        };
        let d: Value = get(format!("/api/v1/drops/{drop_id}"))
            .await?
            .json()
            .await?;
        let sku = d["sku_id"].as_str().context("drop without sku_id")?;
        let e: Value = get(format!("/api/v1/admin/entities/sku/{sku}"))
            .await?
            .json()
            .await?;
        let node = e["node"].as_str().context("the SKU's node (a cluster?)")?;
        eprintln!("  the drop's SKU is owned by {node}");
        pairs
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, pid)| *pid)
            .with_context(|| format!("no pid given for {node}"))
    }
}

#[derive(Default)]
struct Counts {
    created: AtomicU64,
    sold_out: AtomicU64,
    limited: AtomicU64,
    shed: AtomicU64,
    errors: AtomicU64,
}

/// What one worker saw.
struct Seen {
    latency: Histogram<u64>,
    /// Per second of the run: (answers, latency histogram).
    seconds: Vec<(u64, Histogram<u64>)>,
    /// Per second of the run: retries sent.
    retried: Vec<u64>,
    orders: Vec<String>,
}

pub async fn run(o: Options) -> anyhow::Result<Run> {
    let drop_id = prepare(&reqwest::Client::new(), &o).await?;
    run_on(o, drop_id).await
}

/// The timed part and the audit, on a drop [`prepare`]d before.
pub async fn run_on(o: Options, drop_id: String) -> anyhow::Result<Run> {
    let client = reqwest::Client::new();
    let tokens = Arc::new(tokens(&o.jwt_secret, o.users)?);
    eprintln!(
        "prepared drop {drop_id} of {} units and {} shoppers",
        o.stock, o.users
    );
    let targets = if o.targets.is_empty() {
        vec![o.base.clone()]
    } else {
        o.targets.clone()
    };
    let urls: Arc<Vec<String>> = Arc::new(
        targets
            .iter()
            .map(|t| format!("{t}/api/v1/drops/{drop_id}/purchase"))
            .collect(),
    );
    let failover = Arc::new(Failover::default());
    let counts = Arc::new(Counts::default());
    let retries = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    let meter = crate::cpu::Meter::start(o.server_pid);
    if let Some((kill, after)) = &o.kill {
        let (pid, after) = (kill.pid(&client, &o, &drop_id).await?, *after);
        let failover = failover.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            // The moment of the kill is taken before the signal goes out.
            let _ = failover.killed_at.set(Instant::now());
            let killed = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            eprintln!("  SIGKILL {pid}: {killed:?}");
        });
    }
    let drained = o.drain.clone().map(|(node, after)| {
        let (client, base, token) = (client.clone(), o.base.clone(), o.operator.clone());
        let failover = failover.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = failover.killed_at.set(Instant::now());
            crate::drain::drain(&client, &base, &token, &node).await
        })
    });
    for worker in 0..o.connections {
        let (urls, failover) = (urls.clone(), failover.clone());
        let (tokens, counts, next, stop) =
            (tokens.clone(), counts.clone(), next.clone(), stop.clone());
        let (rate, attempts, retry) = (o.rate, o.attempts, o.retry);
        let retries = retries.clone();
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .http1_only()
            .timeout(Duration::from_secs(30))
            .build()?;
        workers.spawn(async move {
            let mut seen = Seen {
                latency: histogram(),
                seconds: Vec::new(),
                retried: Vec::new(),
                orders: Vec::new(),
            };
            let mut on = worker % urls.len();
            while !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if attempts > 0 && n >= attempts {
                    break;
                }
                // Open loop: wait for the request's due time; latency counts from it.
                let due = match (n * 1_000_000_000).checked_div(rate) {
                    Some(nanos) => {
                        let due = started + Duration::from_nanos(nanos);
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => Instant::now(),
                };
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let token = &tokens[(n as usize) % tokens.len()];
                let sent_at = Instant::now();
                let mut tries = 1;
                let outcome = loop {
                    let sent = client
                        .post(urls[on].as_str())
                        .bearer_auth(token)
                        .header("idempotency-key", format!("fs-{n}"))
                        .json(&json!({"quantity": 1}))
                        .send()
                        .await;
                    let answer = match sent {
                        Ok(r) => Some((r.status().as_u16(), r.bytes().await.unwrap_or_default())),
                        Err(_) => None,
                    };
                    match answer {
                        Some((503, _)) | None
                            if retry && tries < MAX_TRIES && !stop.load(Ordering::Relaxed) =>
                        {
                            tries += 1;
                            retries.fetch_add(1, Ordering::Relaxed);
                            let second = started.elapsed().as_secs() as usize;
                            if seen.retried.len() <= second {
                                seen.retried.resize(second + 1, 0);
                            }
                            seen.retried[second] += 1;
                            on = (on + 1) % urls.len();
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Some((status, body)) => break classify(status, &body, &counts),
                        None => {
                            counts.errors.fetch_add(1, Ordering::Relaxed);
                            // The node is gone (or going): the next request goes to another.
                            on = (on + 1) % urls.len();
                            break None;
                        }
                    }
                };
                if outcome.is_some() {
                    failover.succeeded(sent_at);
                }
                let micros = due.elapsed().as_micros() as u64;
                let _ = seen.latency.record(micros);
                let second = started.elapsed().as_secs() as usize;
                while seen.seconds.len() <= second {
                    seen.seconds.push((0, histogram()));
                }
                seen.seconds[second].0 += 1;
                let _ = seen.seconds[second].1.record(micros);
                if let Some(order_id) = outcome {
                    seen.orders.push(order_id);
                }
            }
            seen
        });
    }
    let progress = tokio::spawn(progress(counts.clone(), started));
    let deadline = tokio::time::sleep(o.duration);
    tokio::pin!(deadline);
    let mut seen: Vec<Seen> = Vec::new();
    loop {
        tokio::select! {
            () = &mut deadline, if !stop.load(Ordering::Relaxed) => {
                stop.store(true, Ordering::Relaxed);
            }
            done = workers.join_next() => match done {
                Some(s) => seen.push(s.context("worker")?),
                None => break,
            },
        }
    }
    let elapsed = started.elapsed();
    progress.abort();

    let mut latency = histogram();
    let mut seconds: Vec<(u64, Histogram<u64>)> = Vec::new();
    let mut orders = Vec::new();
    let mut retried: Vec<u64> = Vec::new();
    for s in seen {
        latency.add(&s.latency)?;
        if retried.len() < s.retried.len() {
            retried.resize(s.retried.len(), 0);
        }
        for (i, n) in s.retried.iter().enumerate() {
            retried[i] += n;
        }
        for (i, (n, h)) in s.seconds.into_iter().enumerate() {
            while seconds.len() <= i {
                seconds.push((0, histogram()));
            }
            seconds[i].0 += n;
            seconds[i].1.add(&h)?;
        }
        orders.extend(s.orders);
    }
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let answered = c(&counts.created) + c(&counts.sold_out) + c(&counts.limited) + c(&counts.shed);
    let gap = failover.gap();
    let drained = match drained {
        Some(task) => Some(task.await.context("drain")??),
        None => None,
    };
    let event = match (&o.kill, &o.drain) {
        (Some(_), _) => "SIGKILL".to_string(),
        (None, Some((node, _))) => format!("drain of {node}"),
        (None, None) => String::new(),
    };
    if let Some(killed) = failover.killed_at.get() {
        eprintln!(
            "fail-over: {event} at {:.1} s; the first purchase sent after it succeeded {}",
            killed.duration_since(started).as_secs_f64(),
            gap.map_or("never".into(), |g| format!(
                "{:.0} ms later",
                g.as_secs_f64() * 1e3
            )),
        );
    }
    let cpu_us = match &meter {
        Some(meter) => meter.per_request(answered + c(&counts.errors)).await,
        None => None,
    };
    let audit = audit(&client, &o, &targets, &drop_id, &orders).await;
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Ok(Run {
        label: o.label.clone(),
        mode: if o.rate > 0 {
            format!("open loop at {} req/s", o.rate)
        } else {
            format!("closed loop, {} connections", o.connections)
        },
        elapsed_secs: elapsed.as_secs_f64(),
        attempts: answered + c(&counts.errors),
        per_sec: answered as f64 / elapsed.as_secs_f64(),
        created: c(&counts.created),
        sold_out: c(&counts.sold_out),
        limited: c(&counts.limited),
        shed: c(&counts.shed),
        errors: c(&counts.errors),
        p50_ms: ms(&latency, 0.5),
        p99_ms: ms(&latency, 0.99),
        p999_ms: ms(&latency, 0.999),
        max_ms: latency.max() as f64 / 1000.0,
        seconds: crate::report::whole_seconds(
            seconds
                .iter()
                .enumerate()
                .map(|(i, (n, h))| Second {
                    answers: *n,
                    p50_ms: ms(h, 0.5),
                    p99_ms: ms(h, 0.99),
                    retries: retried.get(i).copied().unwrap_or(0),
                })
                .collect(),
            elapsed,
        ),
        retries: retries.load(Ordering::Relaxed),
        killed_at_secs: failover
            .killed_at
            .get()
            .map(|k| k.duration_since(started).as_secs_f64()),
        gap_ms: gap.map(|g| g.as_secs_f64() * 1e3),
        event,
        drained_ms: drained.map(|d| d.as_secs_f64() * 1e3),
        cpu_us,
        audit: audit.as_ref().map_err(|e| format!("{e:#}")).err(),
        audit_detail: audit.unwrap_or_default(),
    })
}

/// When the node was killed, and the first purchase sent after it that succeeded.
#[derive(Default)]
struct Failover {
    killed_at: std::sync::OnceLock<Instant>,
    /// Microseconds from the kill to the earliest success sent after it.
    first_success_micros: AtomicU64,
}

impl Failover {
    fn succeeded(&self, sent_at: Instant) {
        if let Some(killed) = self.killed_at.get()
            && sent_at > *killed
        {
            let micros = killed.elapsed().as_micros() as u64;
            let _ = self.first_success_micros.fetch_update(
                Ordering::Relaxed,
                Ordering::Relaxed,
                |now| (now == 0 || micros < now).then_some(micros),
            );
        }
    }

    fn gap(&self) -> Option<Duration> {
        let micros = self.first_success_micros.load(Ordering::Relaxed);
        (micros > 0).then(|| Duration::from_micros(micros))
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("bounds")
}

/// Counts the answer; the order id of a 201.
fn classify(status: u16, body: &[u8], counts: &Counts) -> Option<String> {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match (status, parsed["code"].as_str()) {
        (201, _) => {
            counts.created.fetch_add(1, Ordering::Relaxed);
            return parsed["order_id"].as_str().map(str::to_string);
        }
        (409, Some("sold_out")) => &counts.sold_out,
        (409, Some("purchase_limit_reached")) => &counts.limited,
        (429, _) => &counts.shed,
        _ => &counts.errors,
    }
    .fetch_add(1, Ordering::Relaxed);
    None
}

async fn progress(counts: Arc<Counts>, started: Instant) {
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let all = c(&counts.created) + c(&counts.sold_out) + c(&counts.limited) + c(&counts.shed);
        eprintln!(
            "  {:>5.1}s {:>8} answers/s   201 {:>8}  sold_out {:>8}  limit {:>6}  429 {:>6}  errors {:>5}",
            started.elapsed().as_secs_f64(),
            all - last,
            c(&counts.created),
            c(&counts.sold_out),
            c(&counts.limited),
            c(&counts.shed),
            c(&counts.errors)
        );
        last = all;
    }
}

/// A product with one SKU holding the stock, and a live drop of all of it.
pub async fn prepare(client: &reqwest::Client, o: &Options) -> anyhow::Result<String> {
    let run_id = format!("{}-{}", std::process::id(), rand::random::<u32>());
    let sku = format!("fs-{run_id}");
    let product = json!({"name": format!("Flash {run_id}"), "description": "load test",
        "category": "loadtest", "skus": [{"sku_id": sku, "options": {}, "price": 100000,
        "stock": o.stock}]});
    crate::create(
        client,
        &o.base,
        &o.operator,
        "/api/v1/admin/products",
        &product,
    )
    .await?;
    let starts_at = "2020-01-01T00:00:00Z";
    let drop = json!({"sku_id": sku, "quantity": o.stock, "price": 50000,
        "starts_at": starts_at, "per_user_limit": o.per_user_limit});
    let body = crate::create(client, &o.base, &o.operator, "/api/v1/admin/drops", &drop).await?;
    body["drop_id"]
        .as_str()
        .map(str::to_string)
        .context("no drop_id in the answer")
}

#[derive(serde::Serialize)]
struct Claims {
    sub: String,
    jti: String,
    sid: String,
    roles: Vec<String>,
    iat: i64,
    exp: i64,
}

/// Signs shoppers' access tokens with the server's key: shopper `i` of a run is the user
/// [`Signer::user`].
pub(crate) struct Signer {
    key: jsonwebtoken::EncodingKey,
    header: jsonwebtoken::Header,
    run: u32,
    now: i64,
}

impl Signer {
    pub(crate) fn new(secret: &str) -> anyhow::Result<Signer> {
        Ok(Signer {
            key: jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
            header: jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            run: rand::random::<u32>(),
            now: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs() as i64,
        })
    }

    pub(crate) fn user(&self, i: u64) -> String {
        format!("u_lt{:08x}{i}", self.run)
    }

    /// An hour-long access token of shopper `i`.
    pub(crate) fn token(&self, i: u64) -> anyhow::Result<String> {
        let claims = Claims {
            sub: self.user(i),
            jti: format!("lt{}-{i}", self.run),
            sid: format!("lt{}", self.run),
            roles: vec!["customer".into()],
            iat: self.now,
            exp: self.now + 3600,
        };
        Ok(jsonwebtoken::encode(&self.header, &claims, &self.key)?)
    }
}

/// Access tokens for `n` shoppers, signed with the server's key.
fn tokens(secret: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let signer = Signer::new(secret)?;
    (0..n as u64).map(|i| signer.token(i)).collect()
}

/// The audit of BENCHMARKS.md; `Ok` carries a one-line account of the counts.
async fn audit(
    client: &reqwest::Client,
    o: &Options,
    targets: &[String],
    drop_id: &str,
    orders: &[String],
) -> anyhow::Result<String> {
    // Through the first node that still answers (a killed one does not), once its copy of the
    // drop stops changing (a node that does not own the SKU sees the last writes a moment
    // later).
    let mut reached = None;
    for target in targets {
        let url = format!("{target}/api/v1/drops/{drop_id}");
        let Ok(r) = client.get(&url).send().await else {
            continue;
        };
        let mut d = r.json::<Value>().await?;
        for _ in 0..15 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let again = client.get(&url).send().await?.json::<Value>().await?;
            if again == d {
                break;
            }
            d = again;
        }
        reached = Some((target.clone(), d));
        break;
    }
    let (base, d) = reached.context("no target answers")?;
    let n = |k: &str| {
        d[k].as_u64()
            .with_context(|| format!("drop without {k}: {d}"))
    };
    let (quantity, sold, reserved, remaining) =
        (n("quantity")?, n("sold")?, n("reserved")?, n("remaining")?);
    let line = format!(
        "quantity {quantity} = sold {sold} + reserved {reserved} + remaining {remaining}; {} orders acknowledged",
        orders.len()
    );
    if sold + reserved + remaining != quantity {
        bail!("conservation violated: {line}");
    }
    if sold > quantity {
        bail!("oversold: {line}");
    }
    // A node killed mid-run may have held units whose 201 never reached the buyer: then
    // fewer 201s than holds, never more.
    let answered_all = o.kill.is_none();
    if (answered_all && orders.len() as u64 != sold + reserved)
        || orders.len() as u64 > sold + reserved
    {
        bail!("201s do not match sold + reserved: {line}");
    }
    let unique: std::collections::HashSet<&String> = orders.iter().collect();
    if unique.len() != orders.len() {
        bail!("an order id was acknowledged twice: {line}");
    }
    let missing = Arc::new(Mutex::new(Vec::new()));
    let chunks: Vec<Vec<String>> = orders
        .chunks(orders.len().div_ceil(32).max(1))
        .map(<[String]>::to_vec)
        .collect();
    let mut checks = tokio::task::JoinSet::new();
    for chunk in chunks {
        let (client, base, operator, missing) = (
            client.clone(),
            base.clone(),
            o.operator.clone(),
            missing.clone(),
        );
        checks.spawn(async move {
            for id in chunk {
                let r = client
                    .get(format!("{base}/api/v1/orders/{id}"))
                    .bearer_auth(&operator)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {}
                    Ok(r) => {
                        let status = r.status();
                        let body = r.text().await.unwrap_or_default();
                        missing
                            .lock()
                            .expect("lock")
                            .push(format!("{id}: {status} {body}"));
                    }
                    Err(e) => missing.lock().expect("lock").push(format!("{id}: {e}")),
                }
            }
        });
    }
    while checks.join_next().await.is_some() {}
    let missing = missing.lock().expect("lock").clone();
    if !missing.is_empty() {
        let first: Vec<&String> = missing.iter().take(5).collect();
        bail!(
            "{} acknowledged orders do not exist ({first:?}): {line}",
            missing.len()
        );
    }
    Ok(line)
}
