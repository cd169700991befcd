//! The WebSocket edge with a real `tokio-tungstenite` client: every topic delivers, private
//! topics are refused to strangers, bad and oversized frames, a slow reader cut off while a
//! fast one keeps up, logout and shutdown closing sockets, and chat history paged exactly once
//! under concurrent posting, and once more for a room of 50,000 messages after a restart.

use crate::helpers::{
    JWT_SECRET, OPERATOR_TOKEN, TestApp, assert_problem, ok, pay, product_with_sku, send,
    spawn_app, spawn_app_in, spawn_app_with,
};
use emporium::auth::tokens::TokenKeys;
use emporium::domain::ids::UserId;
use emporium::domain::time::{Clock, SystemClock};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Chat without its per-user limits, for tests that post or create in bulk.
pub(crate) const UNLIMITED_CHAT: &[(&str, &str)] = &[
    ("EMPORIUM__CHAT__MESSAGES_PER_MINUTE", "0"),
    ("EMPORIUM__CHAT__ROOMS_PER_HOUR", "0"),
];

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) fn token(user: &str) -> String {
    let keys = TokenKeys::new(JWT_SECRET.as_bytes(), 900);
    let now = SystemClock.now().millis() / 1000;
    let user = UserId::parse(user).unwrap();
    keys.issue(&user, &Default::default(), "s", now).unwrap().0
}

fn ws_url(app: &TestApp, token: Option<&str>) -> String {
    let base = app.url("/api/v1/ws").replacen("http", "ws", 1);
    match token {
        Some(t) => format!("{base}?access_token={t}"),
        None => base,
    }
}

pub(crate) async fn connect(app: &TestApp, token: Option<&str>) -> Ws {
    tokio_tungstenite::connect_async(ws_url(app, token))
        .await
        .expect("the socket opens")
        .0
}

pub(crate) async fn say(ws: &mut Ws, frame: Value) {
    ws.send(Message::text(frame.to_string())).await.unwrap();
}

/// The next JSON text frame (pings skipped); panics after 10 s.
pub(crate) async fn next(ws: &mut Ws) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("the socket is open")
            .expect("a frame");
        match frame {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Reads until a frame matches.
pub(crate) async fn until(ws: &mut Ws, what: impl Fn(&Value) -> bool) -> Value {
    loop {
        let v = next(ws).await;
        if what(&v) {
            return v;
        }
    }
}

async fn subscribe(ws: &mut Ws, topic: &str) -> Value {
    say(ws, json!({"type": "subscribe", "topic": topic})).await;
    next(ws).await
}

/// The close code the server ends the socket with (`None` if the connection just ended).
async fn closed_with(ws: &mut Ws) -> Option<CloseCode> {
    loop {
        match tokio::time::timeout(Duration::from_secs(15), ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| f.code),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => return None,
            Err(_) => panic!("the socket stayed open"),
        }
    }
}

pub(crate) async fn product(app: &TestApp, sku: &str, stock: u64) -> String {
    product_with_sku(app, "Live Tee", sku, 1000, stock).await
}

/// A live drop of 5 units of `sku` (99,000 each, up to 5 per shopper).
pub(crate) async fn live_drop(app: &TestApp, sku: &str) -> String {
    let d = crate::drops::drop_of(app, sku, 5, 5, crate::drops::an_hour_ago()).await;
    d["drop_id"].as_str().unwrap().to_string()
}

pub(crate) async fn buy(app: &TestApp, token: &str, drop_id: &str, key: &str) -> Value {
    let r = app
        .client
        .post(app.url(&format!("/api/v1/drops/{drop_id}/purchase")))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&json!({"quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

#[tokio::test]
async fn drop_product_order_and_user_topics_deliver_what_happens() {
    let app = spawn_app().await;
    let product_id = product(&app, "live", 100).await;
    let drop_id = live_drop(&app, "live").await;
    // A real account: notifications go to its inbox and out on `user`.
    let (_, buyer, _) = app.customer("live@example.com").await;

    // Anonymous sockets read public topics.
    let mut public = connect(&app, None).await;
    let topic = format!("drop:{drop_id}");
    assert_eq!(
        subscribe(&mut public, &topic).await,
        json!({"type": "subscribed", "topic": topic})
    );
    let product_topic = format!("product:{product_id}");
    assert_eq!(
        subscribe(&mut public, &product_topic).await["type"],
        "subscribed"
    );

    let order = buy(&app, &buyer, &drop_id, "k1").await;
    let stock = until(&mut public, |v| v["type"] == "stock").await;
    assert_eq!(
        (stock["drop_id"].as_str(), stock["remaining"].as_u64()),
        (Some(drop_id.as_str()), Some(4))
    );
    assert_eq!(stock["status"], "live");
    assert!(stock["at_ms"].as_i64().is_some());
    let put = json!({"available": 42});
    send(
        &app,
        "PUT",
        "/api/v1/admin/skus/live/stock",
        OPERATOR_TOKEN,
        Some(put),
    )
    .await;
    let a = until(&mut public, |v| v["type"] == "availability").await;
    assert_eq!(
        (a["sku_id"].as_str(), a["available"].as_u64()),
        (Some("live"), Some(42))
    );

    // The buyer follows the order and their notifications, then pays.
    let mut own = connect(&app, Some(&buyer)).await;
    let order_id = order["order_id"].as_str().unwrap();
    assert_eq!(
        subscribe(&mut own, &format!("order:{order_id}")).await["type"],
        "subscribed"
    );
    assert_eq!(subscribe(&mut own, "user").await["type"], "subscribed");
    ok(pay(&app, &buyer, order_id, 99000).await).await;
    let paid = until(&mut own, |v| v["type"] == "order" && v["status"] == "paid").await;
    assert_eq!(paid["order_id"], order_id);
    assert!(paid["at"].is_string());
    let note = until(&mut own, |v| v["type"] == "notification").await;
    assert!(note["text"].as_str().unwrap().contains(order_id), "{note}");
    assert!(note["id"].is_string() && note["kind"].is_string());
    assert_eq!(note["order_id"], order_id, "{note}");
    assert!(note["at"].as_str().unwrap().ends_with('Z'), "{note}");
}

#[tokio::test]
async fn private_topics_are_refused_to_strangers_and_bad_frames_do_not_end_the_socket() {
    let app = spawn_app().await;
    product(&app, "priv", 10).await;
    let drop_id = live_drop(&app, "priv").await;
    let owner = token("u_owner");
    let order = buy(&app, &owner, &drop_id, "k1").await;
    let order_topic = format!("order:{}", order["order_id"].as_str().unwrap());

    let mut anonymous = connect(&app, None).await;
    for topic in [order_topic.as_str(), "user", "chat:r1"] {
        let refused = subscribe(&mut anonymous, topic).await;
        assert_eq!(
            (refused["type"].as_str(), refused["code"].as_str()),
            (Some("error"), Some("unauthorized")),
            "{topic}"
        );
    }
    let mut stranger = connect(&app, Some(&token("u_stranger"))).await;
    assert_eq!(
        subscribe(&mut stranger, &order_topic).await["code"],
        "forbidden"
    );
    assert_eq!(
        subscribe(&mut stranger, "weather:today").await["code"],
        "unknown_topic"
    );
    // An admin may follow any order.
    let mut admin = connect(&app, Some(OPERATOR_TOKEN)).await;
    assert_eq!(
        subscribe(&mut admin, &order_topic).await["type"],
        "subscribed"
    );

    // Bad frames: an error each, and the socket keeps working.
    stranger.send(Message::text("{not json")).await.unwrap();
    assert_eq!(next(&mut stranger).await["code"], "bad_frame");
    say(&mut stranger, json!({"type": "subscribe", "topic": 7})).await;
    assert_eq!(next(&mut stranger).await["code"], "bad_frame");
    stranger.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(next(&mut stranger).await["code"], "bad_frame");
    say(&mut stranger, json!({"type": "ping"})).await;
    assert_eq!(next(&mut stranger).await, json!({"type": "pong"}));

    // A token in the query must be valid; a bad one in an `auth` frame is an error.
    let bad = tokio_tungstenite::connect_async(ws_url(&app, Some("nope"))).await;
    assert!(
        bad.is_err(),
        "a bad query token is refused before the upgrade"
    );
    say(
        &mut anonymous,
        json!({"type": "auth", "access_token": "nope"}),
    )
    .await;
    assert_eq!(next(&mut anonymous).await["code"], "invalid_token");
    say(
        &mut anonymous,
        json!({"type": "auth", "access_token": owner}),
    )
    .await;
    assert_eq!(next(&mut anonymous).await["type"], "authenticated");
    assert_eq!(
        subscribe(&mut anonymous, &order_topic).await["type"],
        "subscribed"
    );

    // A frame over 16 KiB closes the socket with 1009.
    let huge = json!({"type": "ping", "pad": "x".repeat(20_000)}).to_string();
    let _ = stranger.send(Message::text(huge)).await;
    assert_eq!(closed_with(&mut stranger).await, Some(CloseCode::Size));
    // So does one of a mebibyte, still arriving when the server closes: the client reads
    // the close code rather than a reset.
    let mut big = connect(&app, None).await;
    let huge = json!({"type": "ping", "pad": "x".repeat(1 << 20)}).to_string();
    let _ = big.send(Message::text(huge)).await;
    assert_eq!(closed_with(&mut big).await, Some(CloseCode::Size));

    // A text frame that is not UTF-8 closes the socket with 1007 (RFC 6455, 8.1).
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let mut garbled = connect(&app, None).await;
    let frame = Frame::message(vec![0xff, 0xfe, 0x7b], OpCode::Data(Data::Text), true);
    let _ = garbled.send(Message::Frame(frame)).await;
    assert_eq!(closed_with(&mut garbled).await, Some(CloseCode::Invalid));
    // A frame that breaks the protocol (a reserved bit set, no extension agreed) is failed
    // with 1002 (RFC 6455, 5.2 and 7.4.1), not dropped without a word.
    let mut odd = connect(&app, None).await;
    let mut frame = Frame::message(b"{}".to_vec(), OpCode::Data(Data::Text), true);
    frame.header_mut().rsv1 = true;
    let _ = odd.send(Message::Frame(frame)).await;
    assert_eq!(closed_with(&mut odd).await, Some(CloseCode::Protocol));

    // A client's closing handshake is answered with the server's Close (RFC 6455, 5.5.1).
    let mut leaving = connect(&app, None).await;
    let bye = tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    leaving.close(Some(bye)).await.unwrap();
    assert_eq!(closed_with(&mut leaving).await, Some(CloseCode::Normal));
}

#[tokio::test]
async fn a_slow_reader_is_disconnected_while_a_fast_one_keeps_receiving() {
    let app = Arc::new(spawn_app_with(UNLIMITED_CHAT).await);
    let poster = token("u_poster");
    let room = create_room(&app, &poster, "firehose").await;
    let members = ["u_fast", "u_slow"];
    for m in members {
        join(&app, &token(m), &room).await;
    }
    let mut fast = connect(&app, Some(&token("u_fast"))).await;
    assert_eq!(
        subscribe(&mut fast, &format!("chat:{room}")).await["type"],
        "subscribed"
    );
    // The slow reader's socket takes little, and it never reads.
    let slow_socket = tokio::net::TcpSocket::new_v4().unwrap();
    slow_socket.set_recv_buffer_size(4096).unwrap();
    let addr = app.address.trim_start_matches("http://").parse().unwrap();
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(slow_socket.connect(addr).await.unwrap());
    let (mut slow, _) =
        tokio_tungstenite::client_async(ws_url(&app, Some(&token("u_slow"))), stream)
            .await
            .unwrap();
    assert_eq!(
        subscribe(&mut slow, &format!("chat:{room}")).await["type"],
        "subscribed"
    );

    const POSTS: u64 = 1500;
    let text = "x".repeat(1900);
    let posting = {
        let (app, poster, room) = (app.clone(), poster.clone(), room.clone());
        tokio::spawn(async move {
            for i in 0..POSTS {
                let body = json!({"text": format!("{i} {text}")});
                let path = format!("/api/v1/chat/rooms/{room}/messages");
                assert_eq!(
                    send(&app, "POST", &path, &poster, Some(body))
                        .await
                        .status(),
                    201
                );
            }
        })
    };
    let mut seen = 0;
    while seen < POSTS {
        let m = next(&mut fast).await;
        assert_eq!(m["type"], "chat.message");
        seen += 1;
        assert_eq!(m["message_id"].as_u64(), Some(seen), "in order, none lost");
    }
    posting.await.unwrap();
    // The slow one got part of the stream, then was cut off (1013, or the connection dropped
    // when even the close frame could not be written).
    let mut got = 0;
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(15), slow.next()).await {
            Ok(Some(Ok(Message::Text(_)))) => got += 1,
            Ok(Some(Ok(Message::Close(frame)))) => break frame.map(|f| f.code),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => break None,
            Err(_) => panic!("the slow socket was never disconnected ({got} read)"),
        }
    };
    assert!(
        got < POSTS,
        "the slow reader was cut off before the end ({got})"
    );
    assert!(matches!(end, None | Some(CloseCode::Again)), "{end:?}");
}

#[tokio::test]
async fn logout_and_shutdown_close_sockets() {
    let app = spawn_app().await;
    let (_, token, _) = app.customer("ws@example.com").await;
    let mut ws = connect(&app, Some(&token)).await;
    assert_eq!(subscribe(&mut ws, "user").await["type"], "subscribed");
    let r = send(&app, "POST", "/api/v1/auth/logout", &token, None).await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        until(&mut ws, |v| v["type"] == "error").await["code"],
        "token_revoked"
    );
    assert_eq!(closed_with(&mut ws).await, Some(CloseCode::Policy));

    // The operator's token is a setting: a logout with it is refused (it would end nothing),
    // and the operator's sockets still open and stay open.
    let r = send(&app, "POST", "/api/v1/auth/logout", OPERATOR_TOKEN, None).await;
    assert_problem(r, 403, "forbidden").await;
    let mut operator = connect(&app, Some(OPERATOR_TOKEN)).await;
    say(&mut operator, json!({"type": "ping"})).await;
    assert_eq!(next(&mut operator).await["type"], "pong");

    let mut other = connect(&app, None).await;
    say(&mut other, json!({"type": "ping"})).await;
    assert_eq!(next(&mut other).await["type"], "pong");
    let stopping = tokio::spawn(app.stop());
    assert_eq!(closed_with(&mut other).await, Some(CloseCode::Away));
    stopping.await.unwrap();
}

/// Access tokens live 2 s here: a socket signed in with one is told `token_expired` and closed
/// with 1008 when it expires, unless it signed in again (an `auth` frame) with a later one.
#[tokio::test]
async fn a_socket_closes_when_its_token_expires_unless_it_signs_in_again() {
    let app = spawn_app_with(&[("EMPORIUM__AUTH__ACCESS_TTL_SECS", "2")]).await;
    let (_, first, _) = app.customer("expiry@example.com").await;
    let mut lapsing = connect(&app, Some(&first)).await;
    let mut renewed = connect(&app, Some(&first)).await;
    for ws in [&mut lapsing, &mut renewed] {
        assert_eq!(subscribe(ws, "user").await["type"], "subscribed");
    }
    // A second later, one socket signs in again with a token issued now (it lives a second
    // or more past the first).
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (later, _) = app
        .login("expiry@example.com", "correct horse battery")
        .await;
    say(&mut renewed, json!({"type": "auth", "access_token": later})).await;
    assert_eq!(next(&mut renewed).await["type"], "authenticated");

    // The other is told its token expired, and closed as a policy violation.
    assert_eq!(
        until(&mut lapsing, |v| v["type"] == "error").await["code"],
        "token_expired"
    );
    assert_eq!(closed_with(&mut lapsing).await, Some(CloseCode::Policy));
    // The renewed one still answers, until its own token expires.
    say(&mut renewed, json!({"type": "ping"})).await;
    assert_eq!(next(&mut renewed).await["type"], "pong");
    assert_eq!(
        until(&mut renewed, |v| v["type"] == "error").await["code"],
        "token_expired"
    );
    assert_eq!(closed_with(&mut renewed).await, Some(CloseCode::Policy));
}

pub(crate) async fn create_room(app: &TestApp, token: &str, name: &str) -> String {
    let r = send(
        app,
        "POST",
        "/api/v1/chat/rooms",
        token,
        Some(json!({"name": name})),
    )
    .await;
    assert_eq!(r.status(), 201);
    ok(r).await["room_id"].as_str().unwrap().to_string()
}

pub(crate) async fn join(app: &TestApp, token: &str, room: &str) {
    let path = format!("/api/v1/chat/rooms/{room}/join");
    ok(send(app, "POST", &path, token, None).await).await;
}

#[tokio::test]
async fn a_member_who_leaves_hears_no_later_message_on_an_open_subscription() {
    // Given Bob subscribed to a room's topic on two sockets, and Alice in the room too
    let app = spawn_app().await;
    let (alice, bob) = (token("u_alice"), token("u_bob"));
    let room = create_room(&app, &alice, "team").await;
    join(&app, &bob, &room).await;
    let topic = format!("chat:{room}");
    let mut bob_ws = connect(&app, Some(&bob)).await;
    let mut bob_phone = connect(&app, Some(&bob)).await;
    let mut alice_ws = connect(&app, Some(&alice)).await;
    for ws in [&mut bob_ws, &mut bob_phone, &mut alice_ws] {
        assert_eq!(subscribe(ws, &topic).await["type"], "subscribed");
    }
    // When Bob leaves and Alice posts
    let leave = format!("/api/v1/chat/rooms/{room}/leave");
    ok(send(&app, "POST", &leave, &bob, None).await).await;
    let path = format!("/api/v1/chat/rooms/{room}/messages");
    let body = Some(json!({"text": "the door code is 4711"}));
    ok(send(&app, "POST", &path, &alice, body).await).await;
    // Then each of Bob's sockets is told its subscription ended, and the post never comes
    for ws in [&mut bob_ws, &mut bob_phone] {
        let ended = next(ws).await;
        assert_eq!(ended, json!({"type": "unsubscribed", "topic": topic}));
        say(ws, json!({"type": "ping"})).await;
        assert_eq!(next(ws).await["type"], "pong", "nothing came between");
    }
    // And Alice, still a member, reads it
    let m = until(&mut alice_ws, |v| v["type"] == "chat.message").await;
    assert_eq!(m["text"], "the door code is 4711");
    app.stop().await;
}

#[tokio::test]
async fn chat_rooms_membership_support_rooms_and_resends() {
    let app = spawn_app().await;
    let (alice, bob, carol) = (token("u_alice"), token("u_bob"), token("u_carol"));
    let room = create_room(&app, &alice, "team").await;
    join(&app, &bob, &room).await;
    let mine = ok(send(&app, "GET", "/api/v1/chat/rooms", &bob, None).await).await;
    assert_eq!(mine["items"][0]["room_id"], room.as_str());
    assert_eq!(mine["items"][0]["members"], json!(["u_alice", "u_bob"]));

    // chat.send over the socket reaches REST readers and subscribers alike.
    let mut bob_ws = connect(&app, Some(&bob)).await;
    assert_eq!(
        subscribe(&mut bob_ws, &format!("chat:{room}")).await["type"],
        "subscribed"
    );
    let mut alice_ws = connect(&app, Some(&alice)).await;
    say(
        &mut alice_ws,
        json!({"type": "chat.send", "room_id": room, "text": "hello", "client_msg_id": "c1"}),
    )
    .await;
    let m = until(&mut bob_ws, |v| v["type"] == "chat.message").await;
    assert_eq!(
        (
            m["author"].as_str(),
            m["text"].as_str(),
            m["client_msg_id"].as_str()
        ),
        (Some("u_alice"), Some("hello"), Some("c1"))
    );
    // The same client_msg_id again is the same message.
    let path = format!("/api/v1/chat/rooms/{room}/messages");
    let again = send(
        &app,
        "POST",
        &path,
        &alice,
        Some(json!({"text": "hello", "client_msg_id": "c1"})),
    )
    .await;
    assert_eq!(ok(again).await["message_id"], m["message_id"]);
    let history = ok(send(&app, "GET", &path, &bob, None).await).await;
    assert_eq!(history["items"].as_array().unwrap().len(), 1);
    // The sender's socket, not subscribed, is answered with the message it stored.
    let mine = until(&mut alice_ws, |v| v["type"] == "chat.message").await;
    assert_eq!(mine["message_id"], m["message_id"]);
    // After another message, c1 again over the socket (its text changed): the sender is
    // answered with the message stored, and the members are not sent it again (no longer the
    // newest, it would come after a newer one).
    let second = Some(json!({"text": "second"}));
    ok(send(&app, "POST", &path, &bob, second).await).await;
    let second = until(&mut bob_ws, |v| v["type"] == "chat.message").await;
    assert_eq!(second["text"], "second");
    say(
        &mut alice_ws,
        json!({"type": "chat.send", "room_id": room, "text": "hello, edited", "client_msg_id": "c1"}),
    )
    .await;
    let again = next(&mut alice_ws).await;
    assert_eq!(
        (&again["type"], &again["message_id"], &again["text"]),
        (&json!("chat.message"), &m["message_id"], &json!("hello"))
    );
    // (the topic is ordered: the next message Bob hears is the third, not c1 again)
    let third = Some(json!({"text": "third"}));
    ok(send(&app, "POST", &path, &bob, third).await).await;
    let heard = until(&mut bob_ws, |v| v["type"] == "chat.message").await;
    assert_eq!(heard["text"], "third", "no second push of c1: {heard}");
    // `cursor`, API.md's general name, pages as `before` does; `before` wins when both come.
    let older = format!("{path}?cursor={}", second["message_id"]);
    let older = ok(send(&app, "GET", &older, &bob, None).await).await;
    assert_eq!(older["items"][0]["message_id"], m["message_id"]);
    assert_eq!(older["items"].as_array().unwrap().len(), 1);
    let both = format!("{path}?before=2&cursor=3");
    let both = ok(send(&app, "GET", &both, &bob, None).await).await;
    assert_eq!(both["items"].as_array().unwrap().len(), 1, "{both}");

    // Outsiders neither read nor post; a chat.send they try is an error on their socket.
    assert_eq!(send(&app, "GET", &path, &carol, None).await.status(), 403);
    let r = send(&app, "POST", &path, &carol, Some(json!({"text": "hi"}))).await;
    assert_eq!(r.status(), 403);
    let mut carol_ws = connect(&app, Some(&carol)).await;
    assert_eq!(
        subscribe(&mut carol_ws, &format!("chat:{room}")).await["code"],
        "forbidden"
    );
    say(
        &mut carol_ws,
        json!({"type": "chat.send", "room_id": room, "text": "hi"}),
    )
    .await;
    assert_eq!(next(&mut carol_ws).await["code"], "not_a_member");
    let r = send(
        &app,
        "POST",
        &path,
        &alice,
        Some(json!({"text": "x".repeat(2001)})),
    )
    .await;
    assert_eq!(r.status(), 422);
    let r = send(
        &app,
        "GET",
        "/api/v1/chat/rooms/nope/messages",
        &alice,
        None,
    )
    .await;
    assert_eq!(r.status(), 404);

    // A support room: the order's owner and admins; another customer cannot join.
    product(&app, "sup", 10).await;
    let drop_id = live_drop(&app, "sup").await;
    let order = buy(&app, &alice, &drop_id, "k1").await;
    let body = json!({"name": "help", "order_id": order["order_id"]});
    let r = send(
        &app,
        "POST",
        "/api/v1/chat/rooms",
        &alice,
        Some(body.clone()),
    )
    .await;
    assert_eq!(r.status(), 201);
    let support = ok(r).await["room_id"].as_str().unwrap().to_string();
    let r = send(&app, "POST", "/api/v1/chat/rooms", &bob, Some(body)).await;
    assert_eq!(r.status(), 404, "another's order is not found");
    let join_path = format!("/api/v1/chat/rooms/{support}/join");
    assert_eq!(
        send(&app, "POST", &join_path, &bob, None).await.status(),
        403
    );
    assert_eq!(
        send(&app, "POST", &join_path, OPERATOR_TOKEN, None)
            .await
            .status(),
        200
    );
    // Its owner may leave and come back, by joining or by opening it again
    let leave_path = format!("/api/v1/chat/rooms/{support}/leave");
    for back in [&join_path, "/api/v1/chat/rooms"] {
        assert_eq!(
            send(&app, "POST", &leave_path, &alice, None).await.status(),
            200
        );
        let body = (back == "/api/v1/chat/rooms")
            .then(|| json!({"name": "help", "order_id": order["order_id"]}));
        let r = send(&app, "POST", back, &alice, body).await;
        assert!(r.status().is_success(), "{back}: {}", r.status());
        let posted = send(
            &app,
            "POST",
            &format!("/api/v1/chat/rooms/{support}/messages"),
            &alice,
            Some(json!({"text": "back"})),
        )
        .await;
        assert_eq!(posted.status(), 201, "{back}");
    }
}

#[tokio::test]
async fn chat_history_pages_every_message_exactly_once_under_concurrent_posting() {
    let app = Arc::new(spawn_app_with(UNLIMITED_CHAT).await);
    let writers: Vec<String> = (0..8).map(|i| token(&format!("u_w{i}"))).collect();
    let room = create_room(&app, &writers[0], "busy").await;
    for w in &writers[1..] {
        join(&app, w, &room).await;
    }
    let path = format!("/api/v1/chat/rooms/{room}/messages");
    let before: u64 = 100;
    for i in 0..before {
        send(
            &app,
            "POST",
            &path,
            &writers[0],
            Some(json!({"text": format!("old {i}")})),
        )
        .await;
    }
    // Page through the history while eight writers keep posting.
    let mut posting = tokio::task::JoinSet::new();
    for w in writers.clone() {
        let (app, path) = (app.clone(), path.clone());
        posting.spawn(async move {
            for i in 0..40 {
                let r = send(
                    &app,
                    "POST",
                    &path,
                    &w,
                    Some(json!({"text": format!("new {i}")})),
                )
                .await;
                assert_eq!(r.status(), 201);
            }
        });
    }
    let reader = &writers[1];
    let first = ok(send(&app, "GET", &format!("{path}?limit=7"), reader, None).await).await;
    let mut ids: Vec<u64> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message_id"].as_u64().unwrap())
        .collect();
    let newest_at_start = ids[0];
    let mut cursor = first["next_cursor"].as_str().map(String::from);
    while let Some(c) = cursor {
        let page = ok(send(
            &app,
            "GET",
            &format!("{path}?limit=7&before={c}"),
            reader,
            None,
        )
        .await)
        .await;
        ids.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["message_id"].as_u64().unwrap()),
        );
        cursor = page["next_cursor"].as_str().map(String::from);
        tokio::task::yield_now().await;
    }
    while posting.join_next().await.is_some() {}
    let unique: HashSet<u64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no message twice");
    assert_eq!(
        ids,
        (1..=newest_at_start).rev().collect::<Vec<_>>(),
        "every message up to the first page's newest, newest first"
    );
    let r = send(&app, "GET", &format!("{path}?before=abc"), reader, None).await;
    assert_eq!(r.status(), 400);
}

/// A room of 50,000 messages keeps only its newest in memory and archives the rest; after a
/// restart, paging from the newest message to the first reads each one exactly once, in order,
/// with its text, across the window and the archive.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_room_of_fifty_thousand_messages_pages_its_whole_history_once() {
    const MESSAGES: u64 = 50_000;
    const WRITERS: u64 = 25;
    let app = Arc::new(spawn_app_with(UNLIMITED_CHAT).await);
    let writers: Vec<String> = (0..WRITERS).map(|i| token(&format!("u_big{i}"))).collect();
    let room = create_room(&app, &writers[0], "archive").await;
    for w in &writers[1..] {
        join(&app, w, &room).await;
    }
    let path = format!("/api/v1/chat/rooms/{room}/messages");
    let mut posting = tokio::task::JoinSet::new();
    for (i, w) in writers.iter().cloned().enumerate() {
        let (app, path) = (app.clone(), path.clone());
        posting.spawn(async move {
            for n in 0..MESSAGES / WRITERS {
                let text = json!({"text": format!("w{i} n{n}")});
                let r = send(&app, "POST", &path, &w, Some(text)).await;
                assert_eq!(r.status(), 201);
            }
        });
    }
    while let Some(done) = posting.join_next().await {
        done.unwrap();
    }
    let app = Arc::into_inner(app).unwrap();
    let dir = app.stop().await;
    let app = spawn_app_in(dir, &[]).await;
    let reader = &writers[1];
    let (mut seen, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let query = match &cursor {
            Some(c) => format!("{path}?limit=100&before={c}"),
            None => format!("{path}?limit=100"),
        };
        let page = ok(send(&app, "GET", &query, reader, None).await).await;
        for m in page["items"].as_array().unwrap() {
            let text = m["text"].as_str().unwrap();
            assert!(text.starts_with('w') && text.contains(" n"), "{m}");
            seen.push(m["message_id"].as_u64().unwrap());
        }
        pages += 1;
        cursor = page["next_cursor"].as_str().map(String::from);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(pages, MESSAGES / 100, "full pages all the way");
    assert_eq!(
        seen,
        (1..=MESSAGES).rev().collect::<Vec<_>>(),
        "every message once, newest first"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_members_rooms_come_a_page_at_a_time() {
    // Given Dana in 25 rooms
    let app = spawn_app_with(UNLIMITED_CHAT).await;
    let dana = token("u_dana");
    let mut made = Vec::new();
    for i in 0..25 {
        made.push(create_room(&app, &dana, &format!("room {i}")).await);
    }
    made.sort();
    // When she pages them, the default page is 20, then the last 5: each room once, by id
    let first = ok(send(&app, "GET", "/api/v1/chat/rooms", &dana, None).await).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_string();
    let path = format!("/api/v1/chat/rooms?cursor={cursor}&limit=100");
    let rest = ok(send(&app, "GET", &path, &dana, None).await).await;
    assert_eq!(rest["next_cursor"], Value::Null);
    let ids = |page: &Value| -> Vec<String> {
        let items = page["items"].as_array().unwrap();
        items
            .iter()
            .map(|r| r["room_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&first).len(), 20);
    assert_eq!([ids(&first), ids(&rest)].concat(), made);
    // And a cursor that is not a room id, or a limit of 0, is refused
    for (query, code) in [
        ("cursor=a%20b", "invalid_cursor"),
        ("limit=0", "invalid_query"),
    ] {
        let r = send(
            &app,
            "GET",
            &format!("/api/v1/chat/rooms?{query}"),
            &dana,
            None,
        )
        .await;
        assert_eq!(r.status(), 400, "{query}");
        assert_eq!(r.json::<Value>().await.unwrap()["code"], code, "{query}");
    }
    app.stop().await;
}
