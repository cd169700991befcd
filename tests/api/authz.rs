//! The authorization matrix: every route of the OpenAPI document, called as anonymous, a
//! customer (who owns the order, room and cart used), another customer, an admin and an
//! operator, compared with the expected table below. A route the table does not list fails
//! the test, so a new route needs a decision here.
//!
//! Outcomes: `A` allowed (anything but 401/403, and not 404 where the route hides others'
//! resources), `U` 401, `F` 403, `N` 404 (someone else's resource, not revealed). A request
//! carries `{}` as its body: an allowed call is usually refused for the body (422) after
//! authorization, which is what this test looks at.

use crate::helpers::{OPERATOR_TOKEN, TestApp, ok, pay, product_with_sku, send, spawn_app};
use serde_json::{Value, json};

/// Roles in the order of the table's columns.
const ROLES: [&str; 5] = ["anonymous", "customer", "other", "admin", "operator"];

/// `METHOD path` -> outcome per role (anonymous, customer, other, admin, operator).
const EXPECTED: &[(&str, &str)] = &[
    // Health and the document: anyone.
    ("GET /healthz", "AAAAA"),
    ("GET /readyz", "AAAAA"),
    ("GET /metrics", "AAAAA"),
    ("GET /api/v1/openapi.json", "AAAAA"),
    ("GET /api/v1/ws", "AAAAA"),
    // Accounts.
    ("POST /api/v1/auth/signup", "AAAAA"),
    ("POST /api/v1/auth/verify-email", "AAAAA"),
    ("POST /api/v1/auth/resend-code", "AAAAA"),
    ("POST /api/v1/auth/login", "AAAAA"),
    ("POST /api/v1/auth/refresh", "UUUUU"), // no refresh cookie sent
    ("POST /api/v1/auth/logout", "UAAAA"),
    ("GET /api/v1/users/me", "UAAAA"),
    ("PATCH /api/v1/users/me", "UAAAA"),
    ("DELETE /api/v1/users/me", "UAAAA"),
    ("GET /api/v1/users/me/coupons", "UAAAA"),
    ("GET /api/v1/users/me/notifications", "UAAAA"),
    ("GET /api/v1/users/me/wishlist", "UAAAA"),
    ("PUT /api/v1/users/me/wishlist/{product_id}", "UAAAA"),
    ("DELETE /api/v1/users/me/wishlist/{product_id}", "UAAAA"),
    ("GET /api/v1/dev/mailbox", "AAAAA"), // 404 outside dev mode, for everyone
    // Catalog and drops: public reads.
    ("GET /api/v1/products", "AAAAA"),
    ("GET /api/v1/products/{product_id}", "AAAAA"),
    ("GET /api/v1/search/suggest", "AAAAA"),
    ("GET /api/v1/best-sellers", "AAAAA"),
    ("GET /api/v1/categories", "AAAAA"),
    ("GET /api/v1/drops", "AAAAA"),
    ("GET /api/v1/drops/{drop_id}", "AAAAA"),
    ("POST /api/v1/drops/{drop_id}/purchase", "UAAAA"),
    // The caller's own cart, coupons, orders.
    ("GET /api/v1/cart", "UAAAA"),
    ("PUT /api/v1/cart/coupon", "UAAAA"),
    ("DELETE /api/v1/cart/coupon", "UAAAA"),
    ("PUT /api/v1/cart/items/{sku_id}", "UAAAA"),
    ("DELETE /api/v1/cart/items/{sku_id}", "UAAAA"),
    ("POST /api/v1/coupons/claim", "UAAAA"),
    ("GET /api/v1/orders", "UAAAA"),
    ("POST /api/v1/orders", "UAAAA"),
    ("POST /api/v1/payments/confirm", "UAAAA"),
    // One order: its owner and admins; to anyone else it does not exist.
    ("GET /api/v1/orders/{order_id}", "UANAN"),
    ("GET /api/v1/orders/{order_id}/shipment", "UANAN"),
    ("POST /api/v1/orders/{order_id}/cancel", "UANAN"),
    ("POST /api/v1/orders/{order_id}/returns", "UANAN"),
    // Outside systems: a signature, not a token.
    ("POST /api/v1/payments/webhook", "UUUUU"),
    ("POST /api/v1/shipments/callback", "UUUUU"),
    // Chat: a room's members.
    ("GET /api/v1/chat/rooms", "UAAAA"),
    ("POST /api/v1/chat/rooms", "UAAAA"),
    ("GET /api/v1/chat/rooms/{room_id}", "UAFFF"),
    ("POST /api/v1/chat/rooms/{room_id}/join", "UAAAA"),
    ("POST /api/v1/chat/rooms/{room_id}/leave", "UAFFF"),
    ("GET /api/v1/chat/rooms/{room_id}/messages", "UAFFF"),
    ("POST /api/v1/chat/rooms/{room_id}/messages", "UAFFF"),
    // Admin: catalog, stock, drops, coupons, orders of anyone, the outbox.
    ("POST /api/v1/admin/products", "UFFAF"),
    ("PATCH /api/v1/admin/products/{product_id}", "UFFAF"),
    ("PUT /api/v1/admin/skus/{sku_id}/stock", "UFFAF"),
    ("POST /api/v1/admin/skus/{sku_id}/reservations", "UFFAF"),
    (
        "DELETE /api/v1/admin/skus/{sku_id}/reservations/{order_id}",
        "UFFAF",
    ),
    (
        "POST /api/v1/admin/skus/{sku_id}/reservations/{order_id}/commit",
        "UFFAF",
    ),
    ("POST /api/v1/admin/drops", "UFFAF"),
    ("GET /api/v1/admin/coupon-campaigns", "UFFAF"),
    ("POST /api/v1/admin/coupon-campaigns", "UFFAF"),
    ("GET /api/v1/admin/orders", "UFFAF"),
    ("POST /api/v1/admin/orders/{order_id}/ship", "UFFAF"),
    ("GET /api/v1/admin/outbox", "UFFAF"),
    ("GET /api/v1/admin/dead-letters", "UFFAF"),
    (
        "POST /api/v1/admin/dead-letters/{order_id}/{effect_id}/retry",
        "UFFAF",
    ),
    // Operator: accounts with roles, the node and the cluster.
    ("POST /api/v1/admin/users", "UFFFA"),
    ("GET /api/v1/admin/actors", "UFFFA"),
    ("POST /api/v1/admin/snapshots", "UFFFA"),
    ("GET /api/v1/admin/entities/{kind}/{id}", "UFFFA"),
    ("GET /api/v1/admin/cluster", "UFFFA"),
    ("GET /api/v1/admin/cluster/shards", "UFFFA"),
    ("POST /api/v1/admin/cluster/nodes/{name}/drain", "UFFFA"),
];

/// The accounts of each role (by login), and the products and drop every call may use.
struct World {
    logins: [Option<String>; 5],
    owner: String,
    product: String,
    drop_id: String,
}

const PASSWORD: &str = "correct horse battery";

async fn world(app: &TestApp) -> World {
    let product = product_with_sku(app, "Mug", "mug", 10000, 1000).await;
    product_with_sku(app, "Sneaker", "snk", 200000, 10).await;
    let (_, owner, _) = app.customer("owner@example.com").await;
    app.customer("other@example.com").await;
    for (email, role) in [
        ("admin@example.com", "admin"),
        ("op@example.com", "operator"),
    ] {
        let body = json!({"email": email, "password": PASSWORD, "name": "Staff", "roles": [role]});
        ok(send(
            app,
            "POST",
            "/api/v1/admin/users",
            OPERATOR_TOKEN,
            Some(body),
        )
        .await)
        .await;
    }
    let drop = json!({"sku_id": "snk", "quantity": 2, "price": 99000,
        "starts_at": "2020-01-01T00:00:00Z", "per_user_limit": 1});
    let drop = ok(send(
        app,
        "POST",
        "/api/v1/admin/drops",
        OPERATOR_TOKEN,
        Some(drop),
    )
    .await)
    .await;
    World {
        logins: [
            None,
            Some("owner@example.com".into()),
            Some("other@example.com".into()),
            Some("admin@example.com".into()),
            Some("op@example.com".into()),
        ],
        owner,
        product,
        drop_id: drop["drop_id"].as_str().unwrap().to_owned(),
    }
}

/// An order of the owner's: placed, or paid and shipped (for its shipment).
async fn order(app: &TestApp, w: &World, shipped: bool) -> String {
    let body = json!({"items": [{"sku_id": "mug", "quantity": 1}],
        "shipping_address": {"name": "Kim", "phone": "010-1234-5678", "address": "Seoul"}});
    let r = app
        .client
        .post(app.url("/api/v1/orders"))
        .bearer_auth(&w.owner)
        .header(
            "idempotency-key",
            format!("authz-{}", rand::random::<u64>()),
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    let id = ok(r).await["order_id"].as_str().unwrap().to_owned();
    if shipped {
        ok(pay(app, &w.owner, &id, 10000).await).await;
        let ship = format!("/api/v1/admin/orders/{id}/ship");
        ok(send(app, "POST", &ship, OPERATOR_TOKEN, None).await).await;
    }
    id
}

/// The route's path with its parameters: fresh resources of the owner's for each route, so
/// one route's calls (a join, a cancel) do not decide another's.
async fn path_of(app: &TestApp, w: &World, path: &str) -> String {
    let mut url = path.replace("{product_id}", &w.product);
    url = url
        .replace("{drop_id}", &w.drop_id)
        .replace("{sku_id}", "mug");
    url = url
        .replace("{kind}", "sku")
        .replace("{id}", "mug")
        .replace("{name}", "n1");
    url = url.replace("{effect_id}", "0");
    if url.contains("{order_id}") {
        let id = order(app, w, path.ends_with("/shipment")).await;
        url = url.replace("{order_id}", &id);
    }
    if url.contains("{room_id}") {
        let room = json!({"name": "Mine"});
        let room = ok(send(app, "POST", "/api/v1/chat/rooms", &w.owner, Some(room)).await).await;
        url = url.replace("{room_id}", room["room_id"].as_str().unwrap());
    }
    url
}

/// A body that passes validation where the rule of who may is checked after it.
fn body_of(key: &str) -> Value {
    match key {
        "POST /api/v1/orders/{order_id}/returns" => json!({"reason": "x", "kind": "return"}),
        "POST /api/v1/chat/rooms/{room_id}/messages" => json!({"text": "hello"}),
        _ => json!({}),
    }
}

/// The outcome of one call, as the table writes it.
fn outcome(status: u16, hides: bool) -> char {
    match status {
        401 => 'U',
        403 => 'F',
        404 if hides => 'N',
        _ => 'A',
    }
}

#[tokio::test]
async fn every_route_answers_each_role_as_the_matrix_says() {
    let app = spawn_app().await;
    let world = world(&app).await;
    let doc = ok(app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap())
    .await;
    let mut routes: Vec<(String, String)> = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if ops.get(method).is_some() {
                routes.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    // Deleting the accounts goes last.
    routes.sort_by_key(|(m, p)| (m == "DELETE" && p == "/api/v1/users/me", p.clone()));
    let mut wrong = Vec::new();
    for (method, path) in &routes {
        let key = format!("{method} {path}");
        let Some((_, expected)) = EXPECTED.iter().find(|(k, _)| *k == key) else {
            wrong.push(format!("{key}: not in the matrix"));
            continue;
        };
        let hides = expected.contains('N');
        let url = path_of(&app, &world, path).await;
        let mut got = String::new();
        for login in &world.logins {
            let mut request = app
                .client
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                    app.url(&url),
                )
                .header("idempotency-key", format!("authz-{}", got.len()));
            if let Some(email) = login {
                let (token, _) = app.login(email, PASSWORD).await;
                request = request.bearer_auth(token);
            }
            if method != "GET" && method != "DELETE" {
                request = request.json(&body_of(&key));
            }
            let status = request.send().await.unwrap().status().as_u16();
            got.push(outcome(status, hides));
        }
        if got != *expected {
            wrong.push(format!("{key}: expected {expected}, got {got} ({ROLES:?})"));
        }
        // The document names the role a route needs as its bearer scopes (OpenAPI 3.1,
        // 4.8.30: role names for schemes other than OAuth): what the matrix allows only to
        // admins or operators.
        let documented: Vec<&str> =
            doc["paths"][path][method.to_lowercase()]["security"][0]["bearer"]
                .as_array()
                .map(|roles| roles.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
        let cells: Vec<char> = expected.chars().collect();
        let needed: Vec<&str> = match cells[1] {
            'F' => [("admin", cells[3]), ("operator", cells[4])]
                .into_iter()
                .filter(|(_, cell)| *cell == 'A')
                .map(|(role, _)| role)
                .collect(),
            _ => vec![],
        };
        if documented != needed {
            wrong.push(format!(
                "{key}: documents roles {documented:?}, needs {needed:?}"
            ));
        }
    }
    for (key, _) in EXPECTED {
        if !routes.iter().any(|(m, p)| format!("{m} {p}") == *key) {
            wrong.push(format!("{key}: in the matrix but not in the document"));
        }
    }
    assert!(
        wrong.is_empty(),
        "authorization matrix:\n{}",
        wrong.join("\n")
    );
    app.stop().await;
}
