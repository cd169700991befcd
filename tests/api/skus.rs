use crate::helpers::{OPERATOR_TOKEN, assert_problem, spawn_app};
use serde_json::{Value, json};

#[tokio::test]
async fn set_and_adjust_stock() {
    let app = spawn_app().await;
    let r = app.put_stock("s1", json!({"available": 10})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"sku_id": "s1", "available": 10, "reserved": 0, "sold": 0})
    );
    let body: Value = app
        .put_stock("s1", json!({"delta": -3}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["available"], 7);
    let r = app.put_stock("s1", json!({"delta": -8})).await;
    assert_problem(r, 409, "insufficient_stock").await;
    for bad in [json!({}), json!({"available": 1, "delta": 1})] {
        assert_problem(app.put_stock("s1", bad).await, 422, "invalid_body").await;
    }
    let r = app
        .put_stock("s1", json!({"available": 2_000_000_000_000u64}))
        .await;
    assert_problem(r, 422, "stock_out_of_range").await;
    app.stop().await;
}

#[tokio::test]
async fn reserve_commit_release_lifecycle() {
    let app = spawn_app().await;
    app.put_stock("s2", json!({"available": 5})).await;

    let r = app.reserve("s2", "o1", 2).await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["available"].as_u64(), body["reserved"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(body["reservation"]["status"], "reserved");
    let expires = body["reservation"]["expires_at"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(expires.ends_with('Z'), "RFC 3339 UTC: {expires}");

    // A replay of the same reservation is idempotent and reports the original expiry.
    let replay: Value = app.reserve("s2", "o1", 2).await.json().await.unwrap();
    assert_eq!(replay["available"], 3);
    assert_eq!(replay["reservation"]["expires_at"], expires.as_str());
    assert_problem(
        app.reserve("s2", "o1", 3).await,
        409,
        "reservation_conflict",
    )
    .await;
    assert_problem(app.reserve("s2", "o2", 4).await, 409, "insufficient_stock").await;
    assert_problem(app.reserve("s2", "o3", 0).await, 422, "invalid_quantity").await;

    let commit = |order: &str| {
        app.client
            .post(app.url(&format!(
                "/api/v1/admin/skus/s2/reservations/{order}/commit"
            )))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
    };
    let release = |order: &str| {
        app.client
            .delete(app.url(&format!("/api/v1/admin/skus/s2/reservations/{order}")))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
    };
    let body: Value = commit("o1").await.unwrap().json().await.unwrap();
    assert_eq!(
        (body["reserved"].as_u64(), body["sold"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(body["reservation"]["status"], "sold");
    assert_eq!(
        commit("o1").await.unwrap().status(),
        200,
        "commit is idempotent"
    );
    assert_problem(release("o1").await.unwrap(), 409, "already_sold").await;
    assert_problem(release("nope").await.unwrap(), 404, "reservation_not_found").await;
    assert_problem(commit("nope").await.unwrap(), 404, "reservation_not_found").await;

    assert_eq!(app.reserve("s2", "o4", 1).await.status(), 201);
    let body: Value = release("o4").await.unwrap().json().await.unwrap();
    assert_eq!(body["available"], 3);
    assert_eq!(body["reservation"]["status"], "released");
    assert_eq!(
        release("o4").await.unwrap().status(),
        200,
        "release is idempotent"
    );
    assert_problem(commit("o4").await.unwrap(), 409, "reservation_released").await;
    app.stop().await;
}

#[tokio::test]
async fn an_expired_reservation_returns_its_units() {
    let app = spawn_app().await;
    app.put_stock("s3", json!({"available": 4})).await;
    let r = app
        .client
        .post(app.url("/api/v1/admin/skus/s3/reservations"))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&json!({"order_id": "o1", "user_id": "u1", "quantity": 3, "ttl_secs": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut state = Value::Null;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        state = app.inspect("sku", "s3").await.json().await.unwrap();
        if state["state"]["available"] == 4 {
            break;
        }
    }
    assert_eq!(state["state"]["available"], 4, "{state}");
    assert_eq!(state["state"]["reserved"], 0);
    assert_eq!(
        state["state"]["settled"]["o1"]["released"]["reason"],
        "expired"
    );
    app.stop().await;
}

#[tokio::test]
async fn inspect_shows_state_and_sequence() {
    let app = spawn_app().await;
    app.put_stock("s4", json!({"available": 2})).await;
    app.reserve("s4", "o1", 1).await;
    let body: Value = app.inspect("sku", "s4").await.json().await.unwrap();
    assert_eq!(body["kind"], "sku");
    assert_eq!(body["id"], "s4");
    assert_eq!(body["seq"], 2);
    assert_problem(app.inspect("sku", "never-seen").await, 404, "not_found").await;
    assert_problem(app.inspect("wizard", "x").await, 404, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn admin_routes_need_the_operator_token() {
    let app = spawn_app().await;
    let url = app.url("/api/v1/admin/skus/s5/stock");
    let r = app
        .client
        .put(&url)
        .json(&json!({"available": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_problem(r, 401, "missing_token").await;
    let r = app
        .client
        .put(&url)
        .bearer_auth("wrong")
        .json(&json!({"available": 1}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "invalid_token").await;
    let r = app
        .client
        .get(app.url("/api/v1/admin/entities/sku/s5"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "missing_token").await;
    // The scheme's name is case-insensitive (RFC 9110); another scheme is no bearer token
    let inspect = app.url("/api/v1/admin/entities/sku/s5");
    for (value, status) in [
        (format!("bearer {OPERATOR_TOKEN}"), 404),
        (format!("BEARER {OPERATOR_TOKEN}"), 404),
        (format!("Basic {OPERATOR_TOKEN}"), 401),
    ] {
        let r = app
            .client
            .get(&inspect)
            .header("authorization", value.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{value}");
    }
    app.stop().await;
}

#[tokio::test]
async fn past_the_in_flight_limit_asks_are_shed_with_429_and_nothing_is_lost() {
    let app = crate::helpers::spawn_app_with(&[("EMPORIUM__ENTITIES__MAX_IN_FLIGHT", "2")]).await;
    app.put_stock("s6", json!({"available": 1000})).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let (client, url) = (
            app.client.clone(),
            app.url("/api/v1/admin/skus/s6/reservations"),
        );
        tasks.spawn(async move {
            let order = format!("o{i}");
            let r = client
                .post(url)
                .bearer_auth(OPERATOR_TOKEN)
                .json(&json!({"order_id": order, "user_id": "u1", "quantity": 1}))
                .send()
                .await
                .unwrap();
            (order, r)
        });
    }
    let (mut created, mut shed) = (Vec::new(), 0);
    while let Some(done) = tasks.join_next().await {
        let (order, r) = done.unwrap();
        match r.status().as_u16() {
            201 => created.push(order),
            429 => {
                assert_eq!(r.headers()["retry-after"], "1");
                assert_problem(r, 429, "overloaded").await;
                shed += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(shed > 0, "200 concurrent asks over a limit of 2 shed some");
    assert!(!created.is_empty());
    let state: Value = app.inspect("sku", "s6").await.json().await.unwrap();
    let held = state["state"]["reservations"].as_object().unwrap();
    assert_eq!(
        held.len(),
        created.len(),
        "exactly the acknowledged ones are held"
    );
    for order in &created {
        assert!(held.contains_key(order));
    }
    app.stop().await;
}
