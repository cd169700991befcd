//! Cluster mode with the real binary and a real `redis-server`: Redis is the system of
//! record, so a node SIGKILLed mid-drop and started again on an empty data dir finds every
//! acknowledged purchase; a node whose cluster file disagrees with the cluster in Redis refuses
//! to start and says why.

mod common;

use common::cluster::{TOKEN, buy, cluster_file, envs, get, live_drop, metric, node, shopper};
use common::{RedisServer, wait_ready};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_keeps_nothing_itself_and_loses_no_acknowledged_purchase() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = cluster_file(dir.path(), 16, &redis, &["n1"]);
    let client = reqwest::Client::new();
    let first_data = tempfile::tempdir().unwrap();
    let mut server = node(&file, "n1", first_data.path());
    wait_ready(&client, &server.base).await;

    let drop_id = live_drop(&client, &server.base, "cl-tee", 50, 30, 5).await;

    let mut buyers = tokio::task::JoinSet::new();
    for n in 0..8 {
        let (client, base, drop_id) = (client.clone(), server.base.clone(), drop_id.clone());
        buyers.spawn(async move {
            let token = shopper(n);
            let mut orders = Vec::new();
            for k in 0..5 {
                let key = format!("k{k}");
                if let (201, Some(order), _) = buy(&client, &base, &drop_id, &token, &key).await {
                    orders.push((token.clone(), order));
                }
            }
            orders
        });
    }
    let mut acknowledged = Vec::new();
    while let Some(done) = buyers.join_next().await {
        acknowledged.extend(done.unwrap());
    }
    assert_eq!(acknowledged.len(), 30, "30 units, 40 attempts");
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    // Another data dir, one that does not exist: everything comes from Redis.
    let second_parent = tempfile::tempdir().unwrap();
    let second_data = second_parent.path().join("data");
    let server = node(&file, "n1", &second_data);
    wait_ready(&client, &server.base).await;
    let (status, d) = get(&client, &format!("{}/api/v1/drops/{drop_id}", server.base)).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(
        (
            d["remaining"].as_u64(),
            d["sold"].as_u64(),
            d["reserved"].as_u64()
        ),
        (Some(0), Some(0), Some(30))
    );
    for (token, order) in &acknowledged {
        let r = client
            .get(format!("{}/api/v1/orders/{order}", server.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "order {order} after the restart");
    }
    let (status, sku) = get(
        &client,
        &format!("{}/api/v1/admin/entities/sku/cl-tee", server.base),
    )
    .await;
    assert_eq!(status, 200, "{sku}");
    assert_eq!(
        sku["state"]["reservations"].as_object().map(|r| r.len()),
        Some(30)
    );
    assert_eq!(
        (sku["node"].as_str(), sku["shard"].is_u64()),
        (Some("n1"), true)
    );
    assert!(
        !second_data.exists(),
        "a cluster node keeps no journal of its own, nor makes a data dir"
    );

    // The operator's view: one node, up, holding every shard — each under a second term, taken
    // over at once from the killed process of the same node.
    let (status, c) = get(&client, &format!("{}/api/v1/admin/cluster", server.base)).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(
        (c["node"].as_str(), c["shards"].as_u64()),
        (Some("n1"), Some(16))
    );
    assert_eq!(c["nodes"][0]["status"], "up");
    let (_, s) = get(
        &client,
        &format!("{}/api/v1/admin/cluster/shards", server.base),
    )
    .await;
    let items = s["items"].as_array().unwrap();
    assert_eq!(items.len(), 16);
    assert!(
        items.iter().all(|i| i["node"] == "n1" && i["epoch"] == 2),
        "{s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_file_disagrees_with_the_cluster_refuses_to_start() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let sixteen = cluster_file(dir.path(), 16, &redis, &["n1", "n2"]);
    let server = node(&sixteen, "n1", data.path());
    wait_ready(&client, &server.base).await;
    // n2 has not started: the operator sees it down.
    let (_, c) = get(&client, &format!("{}/api/v1/admin/cluster", server.base)).await;
    let statuses: Vec<&str> = c["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["up", "down"], "{c}");
    drop(server);

    let eight = cluster_file(dir.path(), 8, &redis, &["n1", "n2"]);
    let data = data.path().display().to_string();
    let run = |file: &str, name: &str| {
        std::process::Command::new(common::BIN)
            .args([
                "serve",
                "--cluster",
                file,
                "--node",
                name,
                "--listen",
                "127.0.0.1:0",
            ])
            .args(["--data-dir", &data])
            .envs(envs())
            .output()
            .unwrap()
    };
    let out = run(&eight, "n2");
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("the cluster file says 8 shards") && text.contains("has 16"),
        "{text}"
    );
    let out = run(&sixteen, "n7");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("node `n7` is not in the cluster file"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_a_node_acknowledges_nothing_and_recovers_by_itself() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = cluster_file(dir.path(), 8, &redis, &["n1"]);
    let client = reqwest::Client::new();
    let data = tempfile::tempdir().unwrap();
    let server = node(&file, "n1", data.path());
    wait_ready(&client, &server.base).await;
    let drop_id = live_drop(&client, &server.base, "rd-tee", 100, 100, 100).await;
    let token = shopper(1);

    let mut acknowledged = Vec::new();
    for k in 0..10 {
        let (status, order, _) =
            buy(&client, &server.base, &drop_id, &token, &format!("a{k}")).await;
        assert_eq!(status, 201);
        acknowledged.push(order.unwrap());
    }
    // Redis dies: the node acknowledges nothing, and says when to retry.
    redis.kill();
    let asked = std::time::Instant::now();
    let (status, order, retry) = buy(&client, &server.base, &drop_id, &token, "during").await;
    eprintln!("refused in {:?}", asked.elapsed());
    assert_eq!((status, order), (503, None), "{retry:?}");
    assert_eq!(retry.as_deref(), Some("1"), "503 with Retry-After");
    // Past a lease TTL (1.5 s) without Redis, the node says it is not ready: a load balancer
    // sends its requests elsewhere.
    let readyz = format!("{}/readyz", server.base);
    let readiness = |status: u16| {
        let (client, readyz) = (client.clone(), readyz.clone());
        let until = async move {
            while client.get(&readyz).send().await.unwrap().status() != status {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), until)
    };
    readiness(503)
        .await
        .expect("/readyz still 200 with Redis down");
    eprintln!("not ready {:?} after Redis died", asked.elapsed());
    // And its metrics warn of it: renewals that could not reach Redis count as errors.
    let series = "emporium_lease_renewals_total{outcome=\"error\"}";
    let (errors, metrics) = metric(&client, &server.base, series).await;
    assert!(errors.is_some_and(|n| n >= 1.0), "{metrics}");

    // Redis comes back (its append-only file read back): the node serves again by itself.
    redis.restart();
    let started = std::time::Instant::now();
    let recovered = loop {
        let (status, order, _) = buy(&client, &server.base, &drop_id, &token, "after").await;
        if status == 201 {
            break order.unwrap();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "never recovered: {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    eprintln!(
        "serving again {:?} after Redis came back",
        started.elapsed()
    );
    readiness(200)
        .await
        .expect("not ready again with Redis back");
    acknowledged.push(recovered);
    let (_, d) = get(&client, &format!("{}/api/v1/drops/{drop_id}", server.base)).await;
    let n = |k: &str| d[k].as_u64().unwrap();
    assert_eq!(n("sold") + n("reserved") + n("remaining"), 100, "{d}");
    assert!(n("reserved") >= acknowledged.len() as u64, "{d}");
    for order in &acknowledged {
        let r = client
            .get(format!("{}/api/v1/orders/{order}", server.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "order {order}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_takes_over_a_shard_runs_its_deadlines() {
    use emporium::cluster::shards::Shard;
    use emporium::domain::inventory::StockView;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = cluster_file(dir.path(), 4, &redis, &["n1", "n2"]);
    let client = reqwest::Client::new();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut n1 = node(&file, "n1", d1.path());
    let n2 = node(&file, "n2", d2.path());
    wait_ready(&client, &n1.base).await;
    wait_ready(&client, &n2.base).await;

    // A SKU in a shard n1 holds, with a reservation that expires in 3 s.
    let holders = || async {
        let (_, s) = get(&client, &format!("{}/api/v1/admin/cluster/shards", n2.base)).await;
        s["items"].as_array().cloned().unwrap_or_default()
    };
    let started = std::time::Instant::now();
    let sku = loop {
        let items = holders().await;
        let held_by_n1 = |s: u32| items.iter().any(|i| i["shard"] == s && i["node"] == "n1");
        if let Some(sku) = (0..64)
            .map(|n| format!("exp-{n}"))
            .find(|id| held_by_n1(Shard::of("sku", id, 4).0))
        {
            break sku;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "n1 holds no shard"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let put = client
        .put(format!("{}/api/v1/admin/skus/{sku}/stock", n1.base))
        .bearer_auth(TOKEN)
        .json(&json!({"available": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    common::admin_post(
        &client,
        &n1.base,
        TOKEN,
        &format!("/api/v1/admin/skus/{sku}/reservations"),
        json!({"order_id": "o-expiring", "user_id": "u1", "quantity": 2, "ttl_secs": 3}),
    )
    .await;

    // n1 dies. Nobody asks for the SKU again: n2 must take the shard and run its deadline.
    n1.child.kill().unwrap();
    n1.child.wait().unwrap();
    let shard = Shard::of("sku", &sku, 4);
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        let bytes: Vec<u8> = redis::cmd("HGET")
            .arg(format!("vw:{}:sku", shard.tag()))
            .arg(&sku)
            .query_async(&mut conn)
            .await
            .unwrap();
        let view: StockView = emporium::persistence::codec::decode_snapshot(&bytes).unwrap();
        if (view.available, view.reserved) == (5, 0) {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the reservation never expired after the takeover: {view:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (_, s) = get(&client, &format!("{}/api/v1/admin/cluster/shards", n2.base)).await;
    let item = &s["items"][shard.0 as usize];
    assert_eq!(item["node"], "n2", "{s}");
}

/// Given two nodes with the sandboxes on (the dev-mode default), when a shopper pays at one
/// node's sandbox and confirms through the other, then the order is paid: the cluster has one
/// sandbox, on its first node, which the others pass their `/sandbox` requests to. (Each node
/// had its own: the confirming node's gateway did not know the payment, and the order failed
/// with its money captured.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_made_through_one_node_is_confirmed_through_another() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = cluster_file(dir.path(), 16, &redis, &["n1", "n2"]);
    let sandbox = [("EMPORIUM__SANDBOX__ENABLED", "true")];
    let nodes = common::cluster::start_nodes(&file, &["n1", "n2"], dir.path(), &sandbox).await;
    let client = reqwest::Client::new();
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    let drop_id = live_drop(&client, &bases[0], "pay-tee", 10, 5, 5).await;
    let token = shopper(1);
    let mut paid = Vec::new();
    for (k, (bought, confirmed)) in [(1, 0), (0, 1)].into_iter().enumerate() {
        let key = format!("pay{k}");
        let (status, order, why) = buy(&client, &bases[bought], &drop_id, &token, &key).await;
        assert_eq!(status, 201, "{why:?}");
        let order = order.unwrap();
        let card = json!({"order_id": order, "amount": 900, "card_number": "4111111111111111"});
        let r = client
            .post(format!("{}/sandbox/pg/v1/payments", bases[bought]))
            .json(&card)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let payment: serde_json::Value = r.json().await.unwrap();
        let confirm = json!({"order_id": order, "payment_key": payment["payment_key"],
            "amount": 900});
        let r = client
            .post(format!("{}/api/v1/payments/confirm", bases[confirmed]))
            .bearer_auth(&token)
            .json(&confirm)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!((status, &body["status"]), (200, &json!("paid")), "{body}");
        paid.push(payment["payment_key"].as_str().unwrap().to_owned());
    }
    // Both nodes show the one sandbox: each payment captured once.
    for base in &bases {
        let (status, audit) = get(&client, &format!("{base}/sandbox/pg/v1/audit")).await;
        assert_eq!(status, 200, "{audit}");
        for key in &paid {
            let p = audit
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["payment_key"] == key.as_str());
            assert_eq!(p.map(|p| p["captures"].clone()), Some(json!(1)), "{audit}");
        }
    }
}
