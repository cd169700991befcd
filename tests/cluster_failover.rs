//! Three real nodes over a real `redis-server`, with real signals: 64 buyers buy a drop through
//! all three nodes while the node that owns the SKU's shard is SIGKILLed, or SIGSTOPped past
//! its lease (a zombie) and let go again. Afterwards every acknowledged purchase names an order
//! readable from every surviving node, the drop's counts add up with no oversell, and the
//! nodes answer reads alike. The time from the kill to the next purchase is printed (the
//! README's fail-over figures come from the load tool, not from here).

mod common;

use common::cluster::{
    TOKEN, cluster_file, live_drop, metric, node, node_with, shopper, start_nodes, try_buy,
};
use common::{RedisServer, Server, wait_ready};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NAMES: [&str; 3] = ["n1", "n2", "n3"];
const BUYERS: usize = 64;
/// The test cluster's lease TTL (`common::cluster::cluster_file`).
const TTL: Duration = Duration::from_millis(1500);

struct Cluster {
    _redis: RedisServer,
    _dirs: Vec<tempfile::TempDir>,
    nodes: Vec<Server>,
    client: reqwest::Client,
}

impl Cluster {
    /// Three nodes, up, with the shards placed (the map unchanged for two keeper rounds).
    async fn start(dir: &Path) -> Cluster {
        let redis = RedisServer::start();
        let file = cluster_file(dir, 32, &redis, &NAMES);
        let dirs: Vec<_> = NAMES.iter().map(|_| tempfile::tempdir().unwrap()).collect();
        let nodes: Vec<_> = NAMES
            .iter()
            .zip(&dirs)
            .map(|(name, d)| node(&file, name, d.path()))
            .collect();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        for n in &nodes {
            wait_ready(&client, &n.base).await;
        }
        let cluster = Cluster {
            _redis: redis,
            _dirs: dirs,
            nodes,
            client,
        };
        let started = Instant::now();
        let mut last = Vec::new();
        loop {
            let map = cluster.holders(0).await;
            let placed = NAMES.iter().all(|n| map.iter().any(|h| h == n));
            if placed && map == last {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "never placed");
            last = map;
            tokio::time::sleep(TTL).await;
        }
        cluster
    }

    /// Every shard's holder as node `via` reads it.
    async fn holders(&self, via: usize) -> Vec<String> {
        let (_, s) = self.get(via, "/api/v1/admin/cluster/shards").await;
        s["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|i| i["node"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn get(&self, via: usize, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.nodes[via].base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// The node (index) that owns the SKU's shard, as node `via` answers.
    async fn owner_of_sku(&self, via: usize, sku: &str) -> usize {
        let (status, e) = self
            .get(via, &format!("/api/v1/admin/entities/sku/{sku}"))
            .await;
        assert_eq!(status, 200, "{e}");
        let name = e["node"].as_str().unwrap();
        NAMES.iter().position(|n| *n == name).unwrap()
    }

    fn pid(&self, i: usize) -> String {
        self.nodes[i].child.id().to_string()
    }
}

fn signal(sig: &str, pid: &str) {
    let done = std::process::Command::new("kill")
        .args([sig, pid])
        .status()
        .unwrap();
    assert!(done.success(), "kill {sig} {pid}");
}

/// What the buyers saw.
#[derive(Default)]
struct Ledger {
    /// order id -> (buyer's token, when acknowledged, when its key was first tried).
    acknowledged: Mutex<HashMap<String, (String, Instant, Instant)>>,
    /// order id -> (key, the node that answered), for a failure's report.
    answered_by: Mutex<HashMap<String, (String, usize)>>,
    /// Answers that said "try again" (429/503) or a connection that failed.
    retries: AtomicUsize,
    /// Nodes the buyers must not use (killed).
    dead: Mutex<HashSet<usize>>,
    sold_out: AtomicBool,
}

/// Buyer `b` buys one unit after another, through the nodes in turn, each key until it gets
/// a definite answer, until the drop is sold out or the buyer's limit is reached.
async fn buyer(b: usize, bases: Vec<String>, drop_id: String, ledger: Arc<Ledger>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let token = shopper(1000 + b);
    let mut via = b % bases.len();
    for k in 0.. {
        if ledger.sold_out.load(Ordering::Relaxed) {
            return;
        }
        let key = format!("b{b}-{k}");
        let first_try = Instant::now();
        loop {
            while ledger.dead.lock().unwrap().contains(&via) {
                via = (via + 1) % bases.len();
            }
            let answer = try_buy(&client, &bases[via], &drop_id, &token, &key).await;
            let asked = via;
            via = (via + 1) % bases.len();
            match answer {
                Some((201, _, body)) => {
                    let order = body["order_id"].as_str().unwrap().to_owned();
                    let at = Instant::now();
                    ledger
                        .answered_by
                        .lock()
                        .unwrap()
                        .insert(order.clone(), (key.clone(), asked));
                    ledger
                        .acknowledged
                        .lock()
                        .unwrap()
                        .insert(order, (token.clone(), at, first_try));
                    break;
                }
                Some((409, _, body)) if body["code"] == "sold_out" => {
                    ledger.sold_out.store(true, Ordering::Relaxed);
                    return;
                }
                Some((409, _, body)) if body["code"] == "purchase_limit_reached" => return,
                None | Some((429 | 502 | 503 | 504, ..)) => {
                    ledger.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Some((status, _, body)) => panic!("buyer {b}, key {key}: {status} {body}"),
            }
        }
    }
}

/// Starts the buyers; they end when the drop is sold out.
fn buyers(cluster: &Cluster, drop_id: &str, ledger: &Arc<Ledger>) -> tokio::task::JoinSet<()> {
    let bases: Vec<String> = cluster.nodes.iter().map(|n| n.base.clone()).collect();
    let mut set = tokio::task::JoinSet::new();
    for b in 0..BUYERS {
        set.spawn(buyer(b, bases.clone(), drop_id.to_owned(), ledger.clone()));
    }
    set
}

async fn wait_acknowledged(ledger: &Ledger, at_least: usize) {
    let started = Instant::now();
    while ledger.acknowledged.lock().unwrap().len() < at_least {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the buyers are stuck"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The audit through every node in `alive`: the drop's counts add up to `quantity` with every
/// acknowledged order held or sold, each order reads the same from every node, and so do the
/// drop and the product.
async fn audit(cluster: &Cluster, alive: &[usize], drop_id: &str, quantity: u64, ledger: &Ledger) {
    let acknowledged: Vec<(String, String)> = ledger
        .acknowledged
        .lock()
        .unwrap()
        .iter()
        .map(|(order, (token, _, _))| (order.clone(), token.clone()))
        .collect();
    // The views reach every node within moments: wait until the nodes agree.
    let started = Instant::now();
    let drop = loop {
        let mut seen = Vec::new();
        for &i in alive {
            seen.push(cluster.get(i, &format!("/api/v1/drops/{drop_id}")).await.1);
        }
        if seen.windows(2).all(|w| w[0] == w[1]) {
            break seen.remove(0);
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the nodes disagree on the drop: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let n = |k: &str| drop[k].as_u64().unwrap();
    eprintln!(
        "the drop after: {drop}; {} acknowledged",
        acknowledged.len()
    );
    if acknowledged.len() as u64 > n("reserved") + n("sold") {
        let (_, sku) = cluster
            .get(
                alive[0],
                &format!(
                    "/api/v1/admin/entities/sku/{}",
                    drop["sku_id"].as_str().unwrap()
                ),
            )
            .await;
        let held = &sku["state"]["reservations"];
        for (order, _) in &acknowledged {
            if held.get(order).is_none() {
                let by = ledger.answered_by.lock().unwrap().get(order).cloned();
                let (_, o) = cluster
                    .get(alive[0], &format!("/api/v1/admin/entities/order/{order}"))
                    .await;
                eprintln!("acknowledged but not held: {order} {by:?}: {o}");
            }
        }
    }
    assert!(acknowledged.len() as u64 <= quantity, "oversold");
    assert_eq!(
        n("sold") + n("reserved") + n("remaining"),
        quantity,
        "{drop}"
    );
    assert_eq!(n("remaining"), 0, "sold out: {drop}");
    assert!(
        n("reserved") + n("sold") >= acknowledged.len() as u64,
        "an acknowledged purchase holds no unit: {drop}, {} acknowledged",
        acknowledged.len()
    );
    let (_, product) = cluster
        .get(alive[0], &format!("/api/v1/drops/{drop_id}"))
        .await;
    let product_id = product["product_id"].as_str().map(str::to_owned);
    if let Some(product_id) = product_id {
        let mut seen = Vec::new();
        for &i in alive {
            seen.push(
                cluster
                    .get(i, &format!("/api/v1/products/{product_id}"))
                    .await,
            );
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
    }
    // Every acknowledged order, through every surviving node, reads the same.
    let checks = Arc::new(tokio::sync::Semaphore::new(32));
    let mut set = tokio::task::JoinSet::new();
    for (order, token) in acknowledged {
        let bases: Vec<String> = alive
            .iter()
            .map(|&i| cluster.nodes[i].base.clone())
            .collect();
        let (client, checks) = (cluster.client.clone(), checks.clone());
        set.spawn(async move {
            let _permit = checks.acquire().await.unwrap();
            let mut bodies = Vec::new();
            for base in &bases {
                // A moment after the fail-over an order may still be on its way to its shard's
                // new owner (503) or being written (404): readable within seconds.
                let started = Instant::now();
                let r = loop {
                    let r = client
                        .get(format!("{base}/api/v1/orders/{order}"))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .unwrap();
                    let settling = matches!(r.status().as_u16(), 404 | 503);
                    if !settling || started.elapsed() > Duration::from_secs(10) {
                        break r;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                };
                assert_eq!(r.status(), 200, "order {order} through {base}");
                let mut body: Value = r.json().await.unwrap();
                // Payment links carry the node's own address.
                body.as_object_mut().unwrap().remove("payment");
                bodies.push(body);
            }
            assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
        });
    }
    while let Some(done) = set.join_next().await {
        done.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_of_a_drop_is_killed_mid_drop_and_no_acknowledged_purchase_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path()).await;
    let quantity = 2000;
    let drop_id = live_drop(
        &cluster.client,
        &cluster.nodes[0].base,
        "fo-tee",
        2000,
        quantity,
        40,
    )
    .await;
    let owner = cluster.owner_of_sku(0, "fo-tee").await;
    let ledger = Arc::new(Ledger::default());
    let mut set = buyers(&cluster, &drop_id, &ledger);

    wait_acknowledged(&ledger, 300).await;
    ledger.dead.lock().unwrap().insert(owner);
    signal("-KILL", &cluster.pid(owner));
    let killed = Instant::now();
    cluster.nodes[owner].child.wait().unwrap();
    while let Some(done) = set.join_next().await {
        done.unwrap();
    }

    let gap = ledger
        .acknowledged
        .lock()
        .unwrap()
        .values()
        .filter(|(_, _, tried)| *tried > killed)
        .map(|(_, at, _)| at.duration_since(killed))
        .min()
        .expect("purchases went on after the kill");
    eprintln!(
        "SIGKILL of {} (owner): next purchase after {gap:?}; {} acknowledged, {} retries",
        NAMES[owner],
        ledger.acknowledged.lock().unwrap().len(),
        ledger.retries.load(Ordering::Relaxed)
    );
    assert!(
        gap < Duration::from_secs(20),
        "the drop never came back: {gap:?}"
    );
    let alive: Vec<usize> = (0..3).filter(|i| *i != owner).collect();
    audit(&cluster, &alive, &drop_id, quantity, &ledger).await;
    // Another node holds the shard now.
    assert_ne!(cluster.owner_of_sku(alive[0], "fo-tee").await, owner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_owner_acknowledges_nothing_after_its_shard_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path()).await;
    let quantity = 600;
    let drop_id = live_drop(
        &cluster.client,
        &cluster.nodes[0].base,
        "zo-tee",
        600,
        quantity,
        40,
    )
    .await;
    let owner = cluster.owner_of_sku(0, "zo-tee").await;
    let other = (owner + 1) % 3;
    let shard_epoch = |s: Value, sku_shard: u64| s["items"][sku_shard as usize]["epoch"].as_u64();
    let (_, e) = cluster
        .get(other, "/api/v1/admin/entities/sku/zo-tee")
        .await;
    let shard = e["shard"].as_u64().unwrap();
    let (_, before) = cluster.get(other, "/api/v1/admin/cluster/shards").await;
    let epoch_before = shard_epoch(before, shard).unwrap();
    let ledger = Arc::new(Ledger::default());
    let mut set = buyers(&cluster, &drop_id, &ledger);

    wait_acknowledged(&ledger, 100).await;
    signal("-STOP", &cluster.pid(owner));
    let stopped = Instant::now();
    tokio::time::sleep(TTL * 2).await;
    // The others took the shard under a new epoch while the owner slept.
    let (_, during) = cluster.get(other, "/api/v1/admin/cluster/shards").await;
    let item = &during["items"][shard as usize];
    signal("-CONT", &cluster.pid(owner));
    assert_ne!(item["node"], NAMES[owner], "{during}");
    assert!(item["epoch"].as_u64().unwrap() > epoch_before, "{during}");
    let acknowledged_by_then = ledger
        .acknowledged
        .lock()
        .unwrap()
        .values()
        .filter(|(_, at, _)| *at > stopped)
        .count();
    eprintln!(
        "while {} slept, {acknowledged_by_then} purchases went through the others",
        NAMES[owner]
    );
    while let Some(done) = set.join_next().await {
        done.unwrap();
    }
    eprintln!(
        "{} acknowledged, {} retries",
        ledger.acknowledged.lock().unwrap().len(),
        ledger.retries.load(Ordering::Relaxed)
    );
    audit(&cluster, &[0, 1, 2], &drop_id, quantity, &ledger).await;
    // The zombie tells its operator that it lost its leases.
    let series = "emporium_lease_renewals_total{outcome=\"lost\"}";
    let (lost, metrics) = metric(&cluster.client, &cluster.nodes[owner].base, series).await;
    assert!(lost.is_some_and(|n| n >= 1.0), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_away_a_node_answers_503_logs_no_error_and_serves_again_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start();
    let file = cluster_file(dir.path(), 16, &redis, &["n1"]);
    let n1 = node(&file, "n1", &dir.path().join("n1"));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    wait_ready(&client, &n1.base).await;
    let base = n1.base.clone();
    let drop_id = live_drop(&client, &base, "away-tee", 100, 100, 5).await;
    let (first, second) = (shopper(1), shopper(2));
    let bought = try_buy(&client, &base, &drop_id, &first, "k-before").await;
    assert_eq!(bought.map(|b| b.0), Some(201));
    let operator = |method: reqwest::Method, path: &str| {
        client
            .request(method, format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .send()
    };

    // Given Redis SIGKILLed (its journal is fsynced on every write: nothing acknowledged is lost)
    redis.kill();
    // Then the node says it is not ready once a lease TTL passed without Redis
    let killed = Instant::now();
    loop {
        let r = client.get(format!("{base}/readyz")).send().await.unwrap();
        if r.status() == 503 {
            break;
        }
        assert!(killed.elapsed() < 3 * TTL, "/readyz still {}", r.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And what needs Redis is 503 with Retry-After and a code: a purchase by a shopper never
    // seen (new entities cannot load), and snapshots (none can be written)
    let refused = try_buy(&client, &base, &drop_id, &second, "k-away").await;
    let (status, retry, body) = refused.expect("an answer");
    assert_eq!((status, retry.is_some()), (503, true), "{body}");
    assert!(body["code"].is_string(), "{body}");
    let cart = client
        .get(format!("{base}/api/v1/cart"))
        .bearer_auth(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(cart.status(), 503);
    assert!(cart.headers().contains_key("retry-after"));
    let snapshots = operator(reqwest::Method::POST, "/api/v1/admin/snapshots")
        .await
        .unwrap();
    assert_eq!(snapshots.status(), 503);
    assert!(snapshots.headers().contains_key("retry-after"));
    let problem: Value = snapshots.json().await.unwrap();
    assert_eq!(problem["code"], "unavailable", "{problem}");
    // And an outage it expects is not logged as an error
    let errors = n1.errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "logged at ERROR: {errors:#?}");

    // When Redis comes back on its data
    redis.restart();
    // Then the node serves again: the purchase retried with its key succeeds
    let back = Instant::now();
    loop {
        let retried = try_buy(&client, &base, &drop_id, &second, "k-away").await;
        if retried.as_ref().map(|r| r.0) == Some(201) {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(15), "{retried:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let snapshots = operator(reqwest::Method::POST, "/api/v1/admin/snapshots")
        .await
        .unwrap();
    assert_eq!(snapshots.status(), 200);
    let (_, d) = common::cluster::get(&client, &format!("{base}/api/v1/drops/{drop_id}")).await;
    assert_eq!(d["reserved"], 2, "{d}");
    println!("served again {:?} after Redis came back", back.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restarted_empty_halts_the_node_until_its_data_is_restored() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start();
    let file = cluster_file(dir.path(), 16, &redis, &["n1", "n2"]);
    // One cookie for every process (in dev mode one is made into Redis, which the new cluster
    // would not share: n1 could not reach its nodes at all).
    let cookie = [("EMPORIUM_CLUSTER_COOKIE", "one-cookie")];
    let mut nodes = start_nodes(&file, &["n1", "n2"], dir.path(), &cookie).await;
    let (n2, n1) = (nodes.pop().unwrap(), nodes.pop().unwrap());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let base = n1.base.clone();
    let drop_id = live_drop(&client, &base, "empty-tee", 100, 100, 5).await;
    let (first, second) = (shopper(1), shopper(2));
    let bought = try_buy(&client, &base, &drop_id, &first, "k-before").await;
    assert_eq!(bought.map(|b| b.0), Some(201));
    let ready = |base: String| {
        let client = client.clone();
        async move {
            client
                .get(format!("{base}/readyz"))
                .send()
                .await
                .unwrap()
                .status()
        }
    };

    // Given Redis restarted on an empty data dir (its append-only file kept aside)
    redis.kill();
    let kept = std::mem::replace(&mut redis.dir, tempfile::tempdir().unwrap());
    redis.restart();
    // Then n1 stops serving: not ready, purchases 503 with Retry-After, one ERROR saying why
    let emptied = Instant::now();
    while ready(base.clone()).await != 503 {
        assert!(
            emptied.elapsed() < 3 * TTL,
            "n1 still ready on an empty Redis"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = try_buy(&client, &base, &drop_id, &second, "k-empty").await;
    let (status, retry, body) = refused.expect("an answer");
    assert_eq!((status, retry.is_some()), (503, true), "{body}");
    let errors = n1.errors.lock().unwrap().clone();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("Redis lost the cluster's data"),
        "{}",
        errors[0]
    );
    // And n2, killed and started again, makes a new, empty cluster that n1 does not join
    drop(n2);
    let n2 = node_with(&file, "n2", &dir.path().join("n2-again"), &cookie);
    wait_ready(&client, &n2.base).await;
    tokio::time::sleep(2 * TTL).await;
    assert_eq!(ready(base.clone()).await, 503, "n1 joined the new cluster");
    // And n1 does not act for it either: what it would forward to n2 (which holds every shard
    // of the new cluster) is 503, not answered from the new cluster's data
    // (asked for 8 s: n1 dials the new n2 again within its dialer's backoff, 5 s at most)
    let asking = Instant::now();
    let mut made = Vec::new();
    while asking.elapsed() < Duration::from_secs(8) {
        let product = serde_json::json!({"name": "Tee", "category": "tops",
            "skus": [{"sku_id": format!("new-tee-{}", made.len()), "options": {}, "price": 1000,
                "stock": 5}]});
        let r = client
            .post(format!("{base}/api/v1/admin/products"))
            .bearer_auth(TOKEN)
            .json(&product)
            .send()
            .await
            .unwrap();
        made.push(r.status().as_u16());
    }
    let answered: Vec<&u16> = made.iter().filter(|s| **s != 503).collect();
    assert!(
        answered.is_empty(),
        "{} of {} answered for the new cluster, first {:?}",
        answered.len(),
        made.len(),
        answered.first()
    );
    let refused = try_buy(&client, &base, &drop_id, &second, "k-empty").await;
    let (status, retry, body) = refused.expect("an answer");
    assert_eq!((status, retry.is_some()), (503, true), "{body}");
    let snapshots = client
        .post(format!("{base}/api/v1/admin/snapshots"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(snapshots.status(), 503);
    // And its cluster view says why rather than listing another cluster's nodes
    let (status, view) =
        common::cluster::get(&client, &format!("{base}/api/v1/admin/cluster")).await;
    assert_eq!(status, 503, "{view}");
    assert!(
        view["detail"]
            .as_str()
            .unwrap()
            .contains("no longer holds cluster"),
        "{view}"
    );

    // When Redis is restored from its append-only file
    drop(n2);
    redis.kill();
    redis.dir = kept;
    redis.restart();
    // Then n1 serves again: the retried purchase is sold, after the one from before
    let restored = Instant::now();
    loop {
        let retried = try_buy(&client, &base, &drop_id, &second, "k-empty").await;
        if retried.as_ref().map(|r| r.0) == Some(201) {
            break;
        }
        assert!(restored.elapsed() < Duration::from_secs(15), "{retried:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready(base.clone()).await, 200);
    let (_, d) = common::cluster::get(&client, &format!("{base}/api/v1/drops/{drop_id}")).await;
    assert_eq!(d["reserved"], 2, "{d}");
}
