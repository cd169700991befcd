//! Chat's per-user limits at their shipped defaults (`[chat]` of `emporium.toml`: 20 messages
//! at once then one a second; 20 rooms at once then one a minute): a flood is refused with
//! `429 rate_limited` and `Retry-After` over REST and as an `error` frame over the WebSocket,
//! the refused post is not stored, and other users and support rooms are not held back.

use crate::helpers::{assert_problem, ok, send, spawn_app};
use crate::ws::{buy, connect, create_room, join, live_drop, product, say, token, until};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_flood_of_messages_is_refused_until_the_rate_allows_and_loses_nothing_stored() {
    // Given Alice and Bob in a room
    let app = spawn_app().await;
    let (alice, bob) = (token("u_flood_a"), token("u_flood_b"));
    let room = create_room(&app, &alice, "flood").await;
    join(&app, &bob, &room).await;
    let path = format!("/api/v1/chat/rooms/{room}/messages");
    let post = |who: &str, text: String| {
        let (app, path, who) = (&app, path.clone(), who.to_string());
        async move { send(app, "POST", &path, &who, Some(json!({"text": text}))).await }
    };

    // When Alice posts 21 messages at once
    for i in 0..20 {
        assert_eq!(post(&alice, format!("m{i}")).await.status(), 201, "m{i}");
    }
    let refused = post(&alice, "m20".into()).await;

    // Then the 21st is refused with when to retry, and Bob still posts
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_problem(refused, 429, "rate_limited").await;
    assert_eq!(post(&bob, "mine".into()).await.status(), 201);
    // Over the WebSocket too, as an error frame
    let mut ws = connect(&app, Some(&alice)).await;
    say(
        &mut ws,
        json!({"type": "chat.send", "room_id": room, "text": "m21", "client_msg_id": "c21"}),
    )
    .await;
    let frame = until(&mut ws, |v| v["type"] == "error").await;
    assert_eq!(frame["code"], "rate_limited", "{frame}");
    // The refused posts were not stored
    let history = ok(send(&app, "GET", &format!("{path}?limit=100"), &bob, None).await).await;
    let texts: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), 21, "{texts:?}");
    assert!(!texts.contains(&"m20") && !texts.contains(&"m21"));
    // And a second later Alice posts again
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(post(&alice, "later".into()).await.status(), 201);
}

#[tokio::test]
async fn a_flood_of_new_rooms_is_refused_but_a_support_room_still_opens() {
    // Given Dana, who created 20 rooms at once
    let app = spawn_app().await;
    let dana = token("u_rooms_d");
    for i in 0..20 {
        create_room(&app, &dana, &format!("room {i}")).await;
    }
    // When she creates one more
    let body = json!({"name": "one more"});
    let refused = send(&app, "POST", "/api/v1/chat/rooms", &dana, Some(body)).await;

    // Then it is refused, to retry within the minute a room takes to come back
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_problem(refused, 429, "rate_limited").await;
    let mine = ok(send(&app, "GET", "/api/v1/chat/rooms?limit=100", &dana, None).await).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 20);
    // But her order's support room opens: one per order, not counted
    product(&app, "lim", 5).await;
    let drop_id = live_drop(&app, "lim").await;
    let order = buy(&app, &dana, &drop_id, "k-lim").await;
    let body = json!({"name": "help", "order_id": order["order_id"]});
    let r = send(&app, "POST", "/api/v1/chat/rooms", &dana, Some(body)).await;
    assert_eq!(r.status(), 201);
}
