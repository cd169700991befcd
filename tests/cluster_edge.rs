//! The live edge and sessions across the nodes of a real cluster (real processes, a real
//! `redis-server`, real WebSocket clients): a socket on one node hears what happens on
//! entities another node owns, through a request a third node took; a logout on one node is
//! refused on the others within a second; refresh rotation and reuse detection hold whichever
//! node is asked; the per-IP auth limit counts across nodes; the dev mailbox reads the same
//! everywhere.

mod common;

use common::RedisServer;
use common::cluster::{buy, cluster_file, drop_owned_by, get, shopper, start_nodes};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn socket(base: &str, token: &str) -> Ws {
    let url = format!(
        "{}/api/v1/ws?access_token={token}",
        base.replacen("http", "ws", 1)
    );
    tokio_tungstenite::connect_async(url)
        .await
        .expect("the socket opens")
        .0
}

/// Subscribes and waits for the confirmation.
async fn subscribe(ws: &mut Ws, topic: &str) {
    let frame = json!({"type": "subscribe", "topic": topic}).to_string();
    ws.send(Message::text(frame)).await.unwrap();
    let confirmed = until(ws, |v| v["type"] == "subscribed" || v["type"] == "error").await;
    assert_eq!(confirmed["type"], "subscribed", "{topic}: {confirmed}");
}

/// Reads JSON frames until one matches; panics after 10 s.
async fn until(ws: &mut Ws, what: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, ws.next())
            .await
            .expect("the awaited frame within 10 s")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(t) = frame {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if what(&v) {
                return v;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_on_any_node_hears_drops_and_chat_owned_and_changed_elsewhere() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = cluster_file(dir.path(), 16, &redis, &["n1", "n2", "n3"]);
    let nodes = start_nodes(&file, &["n1", "n2", "n3"], dir.path(), &[]).await;
    let (n1, n2, n3) = (&nodes[0].base, &nodes[1].base, &nodes[2].base);
    let client = reqwest::Client::new();

    // A drop whose SKU n1 owns.
    let (drop_id, _) = drop_owned_by(&client, n2, "n1", "edge", 50, 5).await;

    let buyer = shopper(1);
    let mut ws = socket(n3, &buyer).await;
    subscribe(&mut ws, &format!("drop:{drop_id}")).await;
    let (status, order, why) = buy(&client, n2, &drop_id, &buyer, "edge-1").await;
    assert_eq!(status, 201, "{why:?}");
    assert!(order.is_some());
    let stock = until(&mut ws, |v| v["type"] == "stock" && v["remaining"] == 49).await;
    assert_eq!(stock["drop_id"], drop_id.as_str());

    // A chat room: created on n1, a message posted on n2, heard by a member's socket on n3
    // (a member invited has an account).
    let alice = shopper(2);
    let (bob, _) = account(&client, [n1, n2, n3], "bob-edge@example.com").await;
    let bob_id = me(&client, n2, &bob).await.json::<Value>().await.unwrap()["user_id"].clone();
    let room: Value = client
        .post(format!("{n1}/api/v1/chat/rooms"))
        .bearer_auth(&alice)
        .json(&json!({"name": "drop talk", "members": [bob_id]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let room_id = room["room_id"].as_str().expect("a room").to_string();
    let mut bob_ws = socket(n3, &bob).await;
    subscribe(&mut bob_ws, &format!("chat:{room_id}")).await;
    let r = client
        .post(format!("{n2}/api/v1/chat/rooms/{room_id}/messages"))
        .bearer_auth(&alice)
        .json(&json!({"text": "안녕하세요", "client_msg_id": "c-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let heard = until(&mut bob_ws, |v| v["type"] == "chat.message").await;
    assert_eq!(
        (heard["text"].as_str(), heard["client_msg_id"].as_str()),
        (Some("안녕하세요"), Some("c-1"))
    );

    // The operator's view of the node asked: n1 has the SKU active, and snapshots it on demand.
    let (status, actors) = get(&client, &format!("{n1}/api/v1/admin/actors")).await;
    assert_eq!(status, 200, "{actors}");
    let sku = actors["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "sku")
        .cloned()
        .unwrap();
    assert!(sku["active"].as_u64() >= Some(1), "{actors}");
    assert!(sku["mailbox_depth_p99"].is_u64(), "{actors}");
    let r = client
        .post(format!("{n1}/api/v1/admin/snapshots"))
        .bearer_auth(common::cluster::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let snapshotted: Value = r.json().await.unwrap();
    assert!(
        snapshotted["snapshotted"].as_u64() >= Some(1),
        "the SKU sold since its last snapshot: {snapshotted}"
    );
}

const PASSWORD: &str = "correct horse battery";

/// Signs up on one node, reads the code from another node's dev mailbox, verifies on a
/// third and logs in on the first; the access token and the refresh cookie.
async fn account(client: &reqwest::Client, nodes: [&str; 3], email: &str) -> (String, String) {
    let r = client
        .post(format!("{}/api/v1/auth/signup", nodes[0]))
        .json(&json!({"email": email, "password": PASSWORD, "name": "Kim"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut code = None;
    for _ in 0..100 {
        let (_, mail) = get(
            client,
            &format!("{}/api/v1/dev/mailbox?email={email}", nodes[1]),
        )
        .await;
        if let Some(body) = mail["items"][0]["body"].as_str() {
            let digits: String = body.chars().filter(char::is_ascii_digit).collect();
            code = Some(digits[..6].to_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let code = code.expect("the code is in the mailbox another node reads");
    let r = client
        .post(format!("{}/api/v1/auth/verify-email", nodes[2]))
        .json(&json!({"email": email, "code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .post(format!("{}/api/v1/auth/login", nodes[0]))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = refresh_cookie(&r);
    let body: Value = r.json().await.unwrap();
    (body["access_token"].as_str().unwrap().to_string(), cookie)
}

fn refresh_cookie(r: &reqwest::Response) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("refresh_token="))
        .and_then(|v| v.split(';').next())
        .expect("a refresh cookie")
        .to_string()
}

async fn me(client: &reqwest::Client, base: &str, token: &str) -> reqwest::Response {
    client
        .get(format!("{base}/api/v1/users/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn refresh(client: &reqwest::Client, base: &str, cookie: &str) -> reqwest::Response {
    client
        .post(format!("{base}/api/v1/auth/refresh"))
        .header("cookie", format!("refresh_token={cookie}"))
        .send()
        .await
        .unwrap()
}

async fn code_of(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (
        status,
        body["code"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_hold_whichever_node_is_asked() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = cluster_file(dir.path(), 16, &redis, &["n1", "n2", "n3"]);
    let nodes = start_nodes(&file, &["n1", "n2", "n3"], dir.path(), &[]).await;
    let (n1, n2, n3) = (&nodes[0].base, &nodes[1].base, &nodes[2].base);
    let client = reqwest::Client::new();
    let (token, cookie) = account(&client, [n1, n2, n3], "kim@example.com").await;
    for base in [n1, n2, n3] {
        assert_eq!(me(&client, base, &token).await.status(), 200);
    }

    // Refresh rotation on n2, then the old cookie again on n3: reuse revokes the family.
    let r = refresh(&client, n2, &cookie).await;
    assert_eq!(r.status(), 200);
    let rotated = refresh_cookie(&r);
    assert_eq!(
        code_of(refresh(&client, n3, &cookie).await).await,
        (401, "refresh_reused".to_string())
    );
    assert_eq!(
        refresh(&client, n1, &rotated).await.status(),
        401,
        "the whole family is revoked, whichever node is asked"
    );

    // Logout on n1: refused on n2 and n3 within a second; a socket on n3 is closed.
    let (token, _) = account(&client, [n3, n1, n2], "lee@example.com").await;
    let mut ws = socket(n3, &token).await;
    let r = client
        .post(format!("{n1}/api/v1/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let logged_out = Instant::now();
    for base in [n2, n3] {
        loop {
            let (status, code) = code_of(me(&client, base, &token).await).await;
            if (status, code.as_str()) == (401, "token_revoked") {
                break;
            }
            assert!(
                logged_out.elapsed() < Duration::from_secs(1),
                "{base} still takes the token after a second: {status} {code}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let closed = until(&mut ws, |v| v["type"] == "error").await;
    assert_eq!(closed["code"], "token_revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_ip_auth_limit_and_a_user_s_chat_limit_count_across_nodes() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = cluster_file(dir.path(), 16, &redis, &["n1", "n2"]);
    let limit = [
        ("EMPORIUM__AUTH__RATE_PER_IP", "4"),
        ("EMPORIUM__CHAT__MESSAGES_PER_MINUTE", "4"),
        ("EMPORIUM__CHAT__MESSAGE_BURST", "4"),
    ];
    let nodes = start_nodes(&file, &["n1", "n2"], dir.path(), &limit).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let client = reqwest::Client::new();
    let wrong = json!({"email": "nobody@example.com", "password": "not the password"});
    let mut statuses = Vec::new();
    for i in 0..6 {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let r = client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&wrong)
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
        }
        statuses.push(r.status().as_u16());
    }
    assert_eq!(
        statuses,
        [401, 401, 401, 401, 429, 429],
        "four a minute from one address, whichever node it asks"
    );

    // A user's chat messages: four a minute, whichever node is asked.
    let alice = shopper(3);
    let room: Value = client
        .post(format!("{}/api/v1/chat/rooms", a.base))
        .bearer_auth(&alice)
        .json(&json!({"name": "limits"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let room_id = room["room_id"].as_str().expect("a room");
    let mut statuses = Vec::new();
    for i in 0..6 {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let r = client
            .post(format!("{base}/api/v1/chat/rooms/{room_id}/messages"))
            .bearer_auth(&alice)
            .json(&json!({"text": format!("m{i}")}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [201, 201, 201, 201, 429, 429]);
}
