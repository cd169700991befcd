use crate::helpers::{spawn_app, spawn_app_in, spawn_app_with};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn healthz_and_readyz_are_ok_once_built() {
    let app = spawn_app().await;
    let h = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(h.status(), 200);
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(h.headers().contains_key("x-request-id"));
    app.stop().await;
}

/// No answer of the API is kept by a cache: a browser's Back would otherwise show a cached
/// answer whichever account it was for. The web's files keep their own rule.
#[tokio::test]
async fn api_answers_are_never_cached() {
    let app = spawn_app().await;
    for path in [
        "/api/v1/products",
        "/api/v1/cart",
        "/api/v1/no-such-route",
        "/healthz",
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
    }
    let r = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(
        r.headers()["cache-control"],
        "no-cache",
        "the storefront's page"
    );
    let r = app
        .client
        .get(app.url("/api/v1/docs/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=3600",
        "the reference's files"
    );
    let r = app
        .client
        .get(app.url("/api/v1/docs/no-such-file.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store", "a file it lacks");
    app.stop().await;
}

#[tokio::test]
async fn metrics_expose_requests_journal_and_entities() {
    let app = spawn_app().await;
    app.put_stock("m-1", serde_json::json!({"available": 3}))
        .await;
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "emporium_http_requests_total",
        "emporium_http_request_duration_seconds",
        "emporium_journal_batch_events",
        "emporium_journal_flush_seconds",
        "emporium_entities_active",
        "emporium_entity_activations_total",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
    app.stop().await;
}

/// The served OpenAPI document.
async fn document(app: &crate::helpers::TestApp) -> serde_json::Value {
    let r = app.client.get(app.url("/api/v1/openapi.json")).send();
    crate::helpers::ok(r.await.unwrap()).await
}

#[tokio::test]
async fn openapi_lists_every_route() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/openapi.json",
        "/api/v1/admin/skus/{sku_id}/stock",
        "/api/v1/admin/skus/{sku_id}/reservations",
        "/api/v1/admin/skus/{sku_id}/reservations/{order_id}",
        "/api/v1/admin/skus/{sku_id}/reservations/{order_id}/commit",
        "/api/v1/admin/entities/{kind}/{id}",
        "/api/v1/auth/signup",
        "/api/v1/auth/verify-email",
        "/api/v1/auth/resend-code",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/users/me",
        "/api/v1/admin/users",
        "/api/v1/dev/mailbox",
        "/api/v1/products",
        "/api/v1/products/{product_id}",
        "/api/v1/search/suggest",
        "/api/v1/categories",
        "/api/v1/admin/products",
        "/api/v1/admin/products/{product_id}",
        "/api/v1/cart",
        "/api/v1/cart/items/{sku_id}",
        "/api/v1/cart/coupon",
        "/api/v1/admin/coupon-campaigns",
        "/api/v1/coupons/claim",
        "/api/v1/users/me/coupons",
        "/api/v1/users/me/wishlist",
        "/api/v1/users/me/wishlist/{product_id}",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from the OpenAPI document"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_then_restart_keeps_state() {
    let app = spawn_app().await;
    app.put_stock("keep", serde_json::json!({"available": 9}))
        .await;
    assert_eq!(app.reserve("keep", "o-1", 4).await.status(), 201);
    let dir = app.stop().await;

    let app = spawn_app_in(dir, &[]).await;
    let body: serde_json::Value = app.inspect("sku", "keep").await.json().await.unwrap();
    assert_eq!(body["state"]["available"], 5);
    assert_eq!(body["state"]["reserved"], 4);
    assert_eq!(body["seq"], 2);
    assert_eq!(
        body["snapshot_seq"], 2,
        "stopping left the SKU in its smallest form: one snapshot in place of its two events"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_browsable_reference_serves_the_document_from_the_binary() {
    let app = crate::helpers::spawn_app().await;
    let get = |path: &str| app.client.get(app.url(path)).send();
    let page = get("/api/v1/docs/").await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("swagger-ui"));
    let init = get("/api/v1/docs/swagger-initializer.js").await.unwrap();
    assert!(
        init.text()
            .await
            .unwrap()
            .contains("\"/api/v1/openapi.json\""),
        "the page reads the engine's own document"
    );
    let bundle = get("/api/v1/docs/swagger-ui-bundle.js").await.unwrap();
    assert_eq!(bundle.status(), 200, "served from the binary, no CDN");
    app.stop().await;
}

/// Every JSON request body shows an example (schemathesis's examples phase sends each one to
/// a real node, so they are also checked against what the handlers accept), and every
/// operation that creates what another reads links to it.
#[tokio::test]
async fn the_document_has_request_examples_and_links() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    let mut missing = vec![];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let schema = &op["requestBody"]["content"]["application/json"]["schema"];
            let Some(reference) = schema["$ref"].as_str() else {
                continue;
            };
            let name = reference.rsplit('/').next().unwrap();
            if schemas[name]["examples"]
                .as_array()
                .is_none_or(Vec::is_empty)
            {
                missing.push(format!("{method} {path}: {name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "request bodies without an example: {missing:?}"
    );
    let created = &doc["paths"]["/api/v1/admin/products"]["post"]["responses"]["201"]["links"];
    assert_eq!(
        created["get_product"]["parameters"]["product_id"],
        "$response.body#/product_id"
    );
    assert_eq!(
        created["put_stock"]["parameters"]["sku_id"],
        "$response.body#/skus/0/sku_id"
    );
    assert!(created["get_product"]["operationId"].is_string());
    app.stop().await;
}

/// Reads one response to `GET /healthz` from `stream` (its head and its short body).
async fn answer(stream: &mut tokio::net::TcpStream) -> String {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Whether the server closes `stream` within `within`.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut rest = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut rest))
        .await
        .is_ok()
}

/// Given a one-second deadline on a connection's first request head and two seconds of idle,
/// when clients send half a request, or nothing, and stop (slowloris), then the server closes
/// their connections while it serves others; a connection that asked keeps alive past the
/// first deadline, and is closed once idle too long.
#[tokio::test]
async fn connections_that_send_nothing_or_half_a_request_are_closed_by_their_deadlines() {
    let app = spawn_app_with(&[
        ("EMPORIUM__SERVER__HEADER_READ_TIMEOUT_SECS", "1"),
        ("EMPORIUM__SERVER__IDLE_TIMEOUT_SECS", "2"),
    ])
    .await;
    let addr = app.address.trim_start_matches("http://").to_string();
    let connect = || tokio::net::TcpStream::connect(addr.clone());
    let started = Instant::now();
    let mut half = connect().await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut silent = connect().await.unwrap();
    let mut kept = connect().await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    kept.write_all(request).await.unwrap();
    assert!(answer(&mut kept).await.starts_with("HTTP/1.1 200"));
    let h = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(h.status(), 200);
    assert!(
        closed_within(&mut half, Duration::from_secs(10)).await,
        "half a request"
    );
    assert!(
        closed_within(&mut silent, Duration::from_secs(10)).await,
        "nothing sent"
    );
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    // The connection that asked is still served after the first deadline...
    tokio::time::sleep(Duration::from_millis(1200).saturating_sub(started.elapsed())).await;
    kept.write_all(request).await.unwrap();
    assert!(answer(&mut kept).await.starts_with("HTTP/1.1 200"));
    // ...and closed after two idle seconds.
    let idle = Instant::now();
    assert!(
        closed_within(&mut kept, Duration::from_secs(10)).await,
        "idle"
    );
    assert!(
        idle.elapsed() >= Duration::from_millis(1800),
        "idle for {:?}",
        idle.elapsed()
    );
    app.stop().await;
}
