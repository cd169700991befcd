//! Bad input on every route: a precise 4xx problem+json, never a 500 or a dropped connection,
//! and nothing changes.

use crate::helpers::{OPERATOR_TOKEN, assert_problem, spawn_app};
use reqwest::Method;
use serde_json::json;

/// Every route that takes a JSON body.
const BODY_ROUTES: &[(&str, &str)] = &[
    ("PUT", "/api/v1/admin/skus/sku-1/stock"),
    ("POST", "/api/v1/admin/skus/sku-1/reservations"),
];

async fn send(
    app: &crate::helpers::TestApp,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut req = app
        .client
        .request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            app.url(path),
        )
        .bearer_auth(OPERATOR_TOKEN)
        .body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.send().await.expect("the server answered")
}

#[tokio::test]
async fn malformed_bodies_get_problems_on_every_body_route() {
    let app = spawn_app().await;
    app.put_stock("sku-1", json!({"available": 5})).await;
    let json = Some("application/json");
    for (method, path) in BODY_ROUTES {
        let cases: Vec<(Option<&str>, Vec<u8>, u16, &str)> = vec![
            (json, b"{not json".to_vec(), 400, "malformed_json"),
            (json, b"".to_vec(), 400, "malformed_json"),
            // Not JSON after a field of the wrong type (cut short; not UTF-8): the syntax error
            // wins.
            (
                json,
                b"{\"available\": \"ten\"".to_vec(),
                400,
                "malformed_json",
            ),
            (
                json,
                b"{\"available\": \"ten\", \"x\": \"\xff\"}".to_vec(),
                400,
                "malformed_json",
            ),
            (json, b"\"just a string\"".to_vec(), 422, "invalid_body"),
            // An array is not read into the object's fields in order.
            (json, b"[7]".to_vec(), 422, "invalid_body"),
            (json, b" [3, 4]".to_vec(), 422, "invalid_body"),
            (json, b"42".to_vec(), 422, "invalid_body"),
            (
                json,
                b"{\"available\": \"ten\", \"order_id\": 5}".to_vec(),
                422,
                "invalid_body",
            ),
            (
                json,
                b"{\"available\": -1, \"quantity\": -1}".to_vec(),
                422,
                "invalid_body",
            ),
            (
                json,
                b"{\"unknown_field\": 1}".to_vec(),
                422,
                "invalid_body",
            ),
            (
                Some("text/plain"),
                b"{\"available\": 1}".to_vec(),
                415,
                "unsupported_media_type",
            ),
            (
                None,
                b"{\"available\": 1}".to_vec(),
                415,
                "unsupported_media_type",
            ),
            (json, vec![b' '; 200_000], 413, "body_too_large"),
        ];
        for (ct, body, status, code) in cases {
            let body_copy = body.clone();
            let r = send(&app, method, path, ct, body).await;
            let got = r.status().as_u16();
            assert_eq!(
                got,
                status,
                "{method} {path} with {ct:?} {:?} -> {got}, want {status}",
                String::from_utf8_lossy(&body_copy)
            );
            assert_problem(r, status, code).await;
        }
    }
    let r = send(
        &app,
        "PUT",
        BODY_ROUTES[0].1,
        json,
        "{\"available\": 1} trailing",
    )
    .await;
    assert_problem(r, 400, "malformed_json").await;
    // A body said to be compressed is not read as plain JSON, however it looks (7 units would
    // show below); identity is.
    let path = BODY_ROUTES[0].1;
    for (coding, status) in [("gzip", 415), ("identity, gzip", 415), ("br", 415)] {
        let r = app
            .client
            .put(app.url(path))
            .bearer_auth(OPERATOR_TOKEN)
            .header("content-type", "application/json")
            .header("content-encoding", coding)
            .body("{\"available\": 7}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{coding}");
        if status == 415 {
            assert_problem(r, 415, "unsupported_media_type").await;
        }
    }
    // Nothing changed.
    let body: serde_json::Value = app.inspect("sku", "sku-1").await.json().await.unwrap();
    assert_eq!(body["seq"], 1);
    assert_eq!(body["state"]["available"], 5);
    // `Content-Encoding: identity` is a body as sent.
    let r = app
        .client
        .put(app.url(BODY_ROUTES[0].1))
        .bearer_auth(OPERATOR_TOKEN)
        .header("content-type", "application/json")
        .header("content-encoding", "identity")
        .body("{\"available\": 7}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn bad_ids_in_paths_get_problems() {
    let app = spawn_app().await;
    let long = "x".repeat(65);
    for path in [
        format!("/api/v1/admin/skus/{long}/stock"),
        "/api/v1/admin/skus/bad%20id/stock".to_string(),
        "/api/v1/admin/skus/%C3%A9/stock".to_string(),
    ] {
        let r = send(
            &app,
            "PUT",
            &path,
            Some("application/json"),
            "{\"available\": 1}",
        )
        .await;
        assert_problem(r, 400, "invalid_id").await;
    }
    let r = send(
        &app,
        "POST",
        "/api/v1/admin/skus/ok/reservations/bad%2Fid/commit",
        None,
        "",
    )
    .await;
    assert_problem(r, 400, "invalid_id").await;
    let r = send(&app, "GET", "/api/v1/admin/entities/sku/%00", None, "").await;
    assert_problem(r, 400, "invalid_id").await;
    let r = send(
        &app,
        "POST",
        "/api/v1/admin/skus/ok/reservations",
        Some("application/json"),
        json!({"order_id": "o/1", "user_id": "u1", "quantity": 1}).to_string(),
    )
    .await;
    assert_problem(r, 400, "invalid_id").await;
    // Every kind of path id, and an id in a body, by the same rule
    for path in [
        format!("/api/v1/products/{long}"),
        "/api/v1/orders/%ED%95%9C".to_string(),
        "/api/v1/drops/a%20b".to_string(),
        "/api/v1/chat/rooms/a!b".to_string(),
        "/api/v1/orders/o%2F1/shipment".to_string(),
    ] {
        let r = send(&app, "GET", &path, None, "").await;
        assert_problem(r, 400, "invalid_id").await;
    }
    let r = send(
        &app,
        "POST",
        "/api/v1/payments/confirm",
        Some("application/json"),
        json!({"order_id": "o/1", "payment_key": "k", "amount": 1}).to_string(),
    )
    .await;
    assert_problem(r, 400, "invalid_id").await;
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_get_problems() {
    let app = spawn_app().await;
    assert_problem(send(&app, "GET", "/nope", None, "").await, 404, "not_found").await;
    assert_problem(
        send(&app, "GET", "/api/v1/admin/skus/x/stock", None, "").await,
        405,
        "method_not_allowed",
    )
    .await;
    assert_problem(
        send(&app, "DELETE", "/healthz", None, "").await,
        405,
        "method_not_allowed",
    )
    .await;
    app.stop().await;
}

/// JSON Schema counts `2.0` an integer (2020-12 validation, 6.1.1), so the OpenAPI document
/// promises it is taken where an integer is: in a typed body, and in a body the handler
/// fingerprints for its Idempotency-Key (where `1.0` and `1` are the same request).
#[tokio::test]
async fn numbers_with_a_zero_fraction_are_integers() {
    use crate::helpers::{ok, product_with_sku};
    let app = spawn_app().await;
    product_with_sku(&app, "Tee", "tee-1", 10_000, 10).await;
    let stock = send(
        &app,
        "PUT",
        "/api/v1/admin/skus/tee-1/stock",
        Some("application/json"),
        r#"{"available": 7.0}"#,
    )
    .await;
    assert_eq!(ok(stock).await["available"], 7);
    let fraction = send(
        &app,
        "PUT",
        "/api/v1/admin/skus/tee-1/stock",
        Some("application/json"),
        r#"{"available": 7.5}"#,
    )
    .await;
    assert_problem(fraction, 422, "invalid_body").await;

    let (_, token, _) = app.customer("whole@example.com").await;
    let address = r#"{"name": "Kim", "phone": "010-1234-5678", "address": "Seoul 1"}"#;
    let mut ids = vec![];
    for quantity in ["2.0", "2", "2e0"] {
        let body = format!(
            r#"{{"items": [{{"sku_id": "tee-1", "quantity": {quantity}}}], "shipping_address": {address}}}"#
        );
        let placed = app
            .client
            .post(app.url("/api/v1/orders"))
            .bearer_auth(&token)
            .header("idempotency-key", "whole-1")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let placed = ok(placed).await;
        assert_eq!(placed["items"][0]["quantity"], 2);
        ids.push(placed["order_id"].clone());
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one order: {ids:?}");
    app.stop().await;
}
