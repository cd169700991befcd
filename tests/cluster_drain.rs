//! Draining a node of a real three-node cluster (real processes, a real `redis-server`) under
//! 64 concurrent buyers spread over all three nodes: not one purchase fails (a `503` with
//! `Retry-After` is retried with the same key, and counted), the drained node ends with no
//! shard and reports `down`, no shard stays free for a second while it changes hands, every
//! acknowledged order is found, and the drained node then stops cleanly.

mod common;

use common::cluster::{
    TOKEN, cluster_file, drop_owned_by, get, node, shopper, start_nodes, try_buy,
    visible_everywhere,
};
use common::{RedisServer, admin_post};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

const BUYERS: usize = 64;

/// The tests of this file run one at a time: each is six processes and 64 buyers on a
/// machine that may have two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Each shard's holder and epoch, as `GET /admin/cluster/shards` shows them.
type ShardMap = Vec<(Option<String>, Option<u64>)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_hands_its_shards_over_under_load_without_a_failed_purchase() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = cluster_file(dir.path(), 16, &redis, &["n1", "n2", "n3"]);
    let mut nodes = start_nodes(&file, &["n1", "n2", "n3"], dir.path(), &[]).await;
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    let client = reqwest::Client::new();
    // The hot SKU is on the node drained: its counter moves mid-drop.
    let (drop_id, _) = drop_owned_by(&client, &bases[1], "n1", "drain", 100_000, 100).await;

    visible_everywhere(&client, &bases, &drop_id).await;
    let targets = Arc::new(RwLock::new(bases.clone()));
    let load = Load::start(&targets, &drop_id);
    let stop = load.stop.clone();

    // The shard map, every 50 ms, as n2 reads it.
    let sampler = {
        let (client, base, stop) = (client.clone(), bases[1].clone(), stop.clone());
        tokio::spawn(async move {
            let mut samples: Vec<(Instant, ShardMap)> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (status, s) =
                    get(&client, &format!("{base}/api/v1/admin/cluster/shards")).await;
                if status == 200 {
                    let map = s["items"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|i| (i["node"].as_str().map(str::to_string), i["epoch"].as_u64()))
                        .collect();
                    samples.push((Instant::now(), map));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            samples
        })
    };

    load.until_more(300).await;
    let r = ask_drain(&client, &bases[2], "n1").await;
    assert_eq!(r.status(), 202);
    let asked = Instant::now();
    let sold_at_drain = load.sold.load(Ordering::Relaxed);
    let mut seen = Vec::new();
    let drained = loop {
        let (_, c) = get(&client, &format!("{}/api/v1/admin/cluster", bases[0])).await;
        let n1 = c["nodes"][0].clone();
        assert_eq!(n1["name"], "n1");
        seen.push(n1["status"].as_str().unwrap_or_default().to_string());
        if n1["status"] == "down" {
            break n1;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "n1 not drained in 10 s: {c}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let drain_took = asked.elapsed();
    assert_eq!(drained["name"], "n1");
    // The shard map, read apart from the status, agrees: nothing is left on n1.
    let (_, map) = get(
        &client,
        &format!("{}/api/v1/admin/cluster/shards", bases[2]),
    )
    .await;
    let left: Vec<&Value> = map["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["node"] == "n1")
        .collect();
    assert!(left.is_empty(), "n1 is down but holds {left:?}");
    // And draining it again is refused as the console shows it: down, nothing to hand over
    let again = ask_drain(&client, &bases[2], "n1").await;
    assert_eq!(again.status(), 409);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["code"], "node_down", "{again}");
    // The load goes on through all three nodes (n1 forwards everything now).
    load.until_more(300).await;
    let (acknowledged, failed, retried) = load.finish().await;
    let samples = sampler.await.unwrap();
    assert!(failed.is_empty(), "failed purchases: {failed:?}");

    // No shard was free for a second; none is left on n1.
    let mut free_since: HashMap<usize, Instant> = HashMap::new();
    let mut longest = Duration::ZERO;
    for (at, map) in &samples {
        for (shard, (node, _)) in map.iter().enumerate() {
            match node {
                None => {
                    free_since.entry(shard).or_insert(*at);
                }
                Some(_) => {
                    if let Some(since) = free_since.remove(&shard) {
                        longest = longest.max(*at - since);
                    }
                }
            }
        }
    }
    assert!(
        free_since.is_empty(),
        "shards still free at the end: {free_since:?}"
    );
    assert!(
        longest < Duration::from_secs(1),
        "a hand-off took {longest:?}"
    );
    let (_, last) = samples.last().unwrap();
    assert!(
        last.iter().all(|(node, _)| node.as_deref() != Some("n1")),
        "{last:?}"
    );

    audit(&client, &bases, &drop_id, &acknowledged).await;
    println!(
        "drain: {} purchases ({sold_at_drain} before the drain), 0 failed, {retried} retried \
         503s or refused connections; n1 drained in {drain_took:?} (statuses seen: {:?}); longest free shard seen \
         {longest:?}",
        acknowledged.len(),
        dedup(seen)
    );

    // What the operator reads off each node's /metrics.
    let metrics = |base: String| {
        let client = client.clone();
        async move {
            let r = client.get(format!("{base}/metrics")).send().await.unwrap();
            r.text().await.unwrap()
        }
    };
    let (m1, m2) = (
        metrics(bases[0].clone()).await,
        metrics(bases[1].clone()).await,
    );
    assert!(m1.contains("emporium_cluster_shards_owned 0"), "{m1}");
    assert!(m1.contains("emporium_shard_handovers_total"), "{m1}");
    for name in [
        "emporium_cluster_shards_owned",
        "emporium_lease_renewals_total{outcome=\"held\"}",
        "emporium_forwards_total{outcome=\"answered\"}",
        "emporium_forward_seconds_bucket",
        "emporium_redis_command_seconds_bucket{op=\"append\"",
    ] {
        assert!(m2.contains(name), "n2's metrics lack {name}");
    }

    // Drained, n1 stops cleanly; the others go on.
    stop_cleanly(&mut nodes[0]);
    let product = serde_json::json!({"name": "After", "category": "tops",
        "skus": [{"sku_id": "after-drain", "options": {}, "price": 1000, "stock": 1}]});
    let created: Value =
        admin_post(&client, &bases[1], TOKEN, "/api/v1/admin/products", product).await;
    assert!(created["product_id"].is_string(), "{created}");
}

fn dedup(mut seen: Vec<String>) -> Vec<String> {
    seen.dedup();
    seen
}

fn wait_exit(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the node did not stop in {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Tokens and orders of the acknowledged purchases.
type Acknowledged = Vec<(String, String)>;
/// Status and code of the purchases that failed.
type Failed = Vec<(u16, Option<String>)>;

/// [`BUYERS`] buyers purchasing one unit at a time, each key until it is answered: buyer `b`
/// asks `targets[b % len]`, and on a `503` with `Retry-After` or no answer the next target,
/// with the same idempotency key.
struct Load {
    stop: Arc<AtomicBool>,
    sold: Arc<AtomicUsize>,
    retries: Arc<AtomicUsize>,
    buyers: tokio::task::JoinSet<(Acknowledged, Failed)>,
}

impl Load {
    fn start(targets: &Arc<RwLock<Vec<String>>>, drop_id: &str) -> Load {
        // A purchase left unanswered for 10 s counts as no answer (and is sent again).
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let sold = Arc::new(AtomicUsize::new(0));
        let retries = Arc::new(AtomicUsize::new(0));
        let mut buyers = tokio::task::JoinSet::new();
        for b in 0..BUYERS {
            let (client, targets, drop_id) = (client.clone(), targets.clone(), drop_id.to_string());
            let (stop, retries, sold) = (stop.clone(), retries.clone(), sold.clone());
            buyers.spawn(async move {
                let (mut acknowledged, mut failed) = (Vec::new(), Vec::new());
                let (mut k, mut at) = (0, b);
                while !stop.load(Ordering::Relaxed) {
                    // A new shopper every 50 purchases: 100 units each at most.
                    let token = shopper(100_000 + b * 10_000 + k / 50);
                    let key = format!("b{b}-{k}");
                    k += 1;
                    let mut tries = 0;
                    loop {
                        let base = {
                            let t = targets.read().unwrap();
                            t[at % t.len()].clone()
                        };
                        // A 503 with `Retry-After`, or no answer (the node is stopping or
                        // gone), is sent again: to the next target, with the same key.
                        let (status, body) =
                            match try_buy(&client, &base, &drop_id, &token, &key).await {
                                Some((503, Some(_), body)) => (None, body),
                                Some((status, _, body)) => (Some(status), body),
                                None => (None, Value::Null),
                            };
                        let code = body["code"].as_str().map(str::to_string);
                        match (status, body["order_id"].as_str()) {
                            (Some(201), Some(order)) => {
                                sold.fetch_add(1, Ordering::Relaxed);
                                acknowledged.push((token.clone(), order.to_string()));
                            }
                            // Ten seconds of retries is a failure.
                            (None, _) if tries >= 200 => {
                                failed.push((0, code));
                            }
                            (None, _) => {
                                tries += 1;
                                retries.fetch_add(1, Ordering::Relaxed);
                                at += 1;
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                            (status, _) => failed.push((status.unwrap_or(0), code)),
                        }
                        break;
                    }
                }
                (acknowledged, failed)
            });
        }
        Load {
            stop,
            sold,
            retries,
            buyers,
        }
    }

    /// Stops the buyers: what was acknowledged, what failed, how many answers were retried.
    async fn finish(mut self) -> (Acknowledged, Failed, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let (mut acknowledged, mut failed) = (Vec::new(), Vec::new());
        while let Some(done) = self.buyers.join_next().await {
            let (a, f) = done.unwrap();
            acknowledged.extend(a);
            failed.extend(f);
        }
        (acknowledged, failed, self.retries.load(Ordering::Relaxed))
    }

    /// Waits until `more` purchases past those sold so far were acknowledged.
    async fn until_more(&self, more: usize) {
        let from = self.sold.load(Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.sold.load(Ordering::Relaxed) < from + more {
            assert!(Instant::now() < deadline, "purchases stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Asks the node at `base` to drain `node`, as the operator; the answer.
async fn ask_drain(client: &reqwest::Client, base: &str, node: &str) -> reqwest::Response {
    client
        .post(format!("{base}/api/v1/admin/cluster/nodes/{node}/drain"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
}

/// Sends SIGTERM and waits (15 s at most) for a clean exit.
fn stop_cleanly(server: &mut common::Server) {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = wait_exit(&mut server.child, Duration::from_secs(15));
    assert!(status.success(), "the node exits cleanly: {status}");
}

/// Every acknowledged purchase is there, once: the drop's reservations are exactly those
/// acknowledged, and every order reads back (through the nodes in turn).
async fn audit(
    client: &reqwest::Client,
    bases: &[String],
    drop_id: &str,
    acknowledged: &Acknowledged,
) {
    let (_, d) = get(client, &format!("{}/api/v1/drops/{drop_id}", bases[0])).await;
    assert_eq!(
        d["reserved"].as_u64(),
        Some(acknowledged.len() as u64),
        "{d}"
    );
    for (i, (token, order)) in acknowledged.iter().enumerate() {
        let base = &bases[i % bases.len()];
        let r = client
            .get(format!("{base}/api/v1/orders/{order}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "order {order} through {base}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_loses_no_acknowledged_purchase() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let names = ["n1", "n2", "n3"];
    let file = cluster_file(dir.path(), 16, &redis, &names);
    let mut nodes = start_nodes(&file, &names, dir.path(), &[]).await;
    let client = reqwest::Client::new();
    let targets = Arc::new(RwLock::new(
        nodes.iter().map(|n| n.base.clone()).collect::<Vec<_>>(),
    ));
    let (drop_id, _) = drop_owned_by(&client, &nodes[1].base, "n1", "roll", 100_000, 100).await;
    let bases = targets.read().unwrap().clone();
    visible_everywhere(&client, &bases, &drop_id).await;
    let load = Load::start(&targets, &drop_id);
    load.until_more(200).await;
    let started = Instant::now();
    for (i, name) in names.iter().enumerate() {
        let other = targets.read().unwrap()[(i + 1) % 3].clone();
        let r = ask_drain(&client, &other, name).await;
        assert_eq!(r.status(), 202, "drain {name}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, c) = get(&client, &format!("{other}/api/v1/admin/cluster")).await;
            if c["nodes"][i]["status"] == "down" {
                break;
            }
            assert!(Instant::now() < deadline, "{name} not drained: {c}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop_cleanly(&mut nodes[i]);
        nodes[i] = node(&file, name, &dir.path().join(format!("{name}-again")));
        common::wait_ready(&client, &nodes[i].base).await;
        targets.write().unwrap()[i] = nodes[i].base.clone();
        // Until the new process holds shards again (the others hand it its share).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, c) = get(&client, &format!("{other}/api/v1/admin/cluster")).await;
            if c["nodes"][i]["status"] == "up" && c["nodes"][i]["shards"].as_u64() > Some(0) {
                break;
            }
            assert!(Instant::now() < deadline, "{name} took no shard back: {c}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        load.until_more(100).await;
    }
    let rolled = started.elapsed();
    let (acknowledged, failed, retried) = load.finish().await;
    let bases = targets.read().unwrap().clone();
    audit(&client, &bases, &drop_id, &acknowledged).await;
    println!(
        "rolling restart of 3 nodes in {rolled:?}: {} purchases acknowledged, {} failed \
         ({failed:?}), {retried} answers retried (503 with Retry-After or no connection)",
        acknowledged.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "failed purchases: {failed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_of_the_last_node_up_is_withdrawn_and_its_purchases_go_on() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = cluster_file(dir.path(), 16, &redis, &["n1", "n2"]);
    let mut nodes = start_nodes(&file, &["n1", "n2"], dir.path(), &[]).await;
    let client = reqwest::Client::new();
    let n1 = nodes[0].base.clone();
    let (drop_id, _) = drop_owned_by(&client, &n1, "n2", "last", 1_000, 100).await;
    visible_everywhere(&client, std::slice::from_ref(&n1), &drop_id).await;
    // Given n2 SIGKILLed: its membership outlives it by up to a lease TTL (1.5 s)
    nodes[1].child.kill().unwrap();
    nodes[1].child.wait().unwrap();
    // When the operator drains n1 at once, it is accepted (n2 is not seen down yet)
    let r = ask_drain(&client, &n1, "n1").await;
    assert_eq!(r.status(), 202, "{:?}", r.text().await);
    // Then n1 withdraws the drain once n2 is down, and sells the drop n2's shard held
    let token = shopper(7);
    let asked = Instant::now();
    let sold = loop {
        let (status, order, _) = common::cluster::buy(&client, &n1, &drop_id, &token, "k1").await;
        if status == 201 {
            break order.unwrap();
        }
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "no purchase 10 s after the drain: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The console agrees once the round that took the shards has said so (it may have
    // admitted the purchase before its last take)
    let c = loop {
        let (_, c) = get(&client, &format!("{n1}/api/v1/admin/cluster")).await;
        if c["nodes"][0]["shards"] == 16 || asked.elapsed() > Duration::from_secs(12) {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(c["nodes"][0]["status"], "up", "{c}");
    assert_eq!(c["nodes"][0]["shards"], 16, "{c}");
    assert_eq!(c["nodes"][1]["status"], "down", "{c}");
    let r = client
        .get(format!("{n1}/api/v1/orders/{sold}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "order {sold}");
    // And draining it again is refused: no other node is up
    let again: Value = ask_drain(&client, &n1, "n1").await.json().await.unwrap();
    assert_eq!(again["code"], "last_node", "{again}");
    println!(
        "drain withdrawn: n1 sold again {:?} after the drain",
        asked.elapsed()
    );
}
