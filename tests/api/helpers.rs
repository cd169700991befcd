//! `spawn_app()` builds the real application in-process on port 0 with a temp data dir and
//! returns a [`TestApp`] with request helpers.

use emporium::config::{Overrides, Settings};
use emporium::domain::time::{Clock, SystemClock};
use emporium::startup::Application;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub const OPERATOR_TOKEN: &str = "test-operator-token";
pub const JWT_SECRET: &str = "test-jwt-secret-test-jwt-secret-0123456789";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub shutdown: CancellationToken,
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub data_dir: tempfile::TempDir,
}

pub fn settings(data_dir: &std::path::Path, extra: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = HashMap::from([
        ("EMPORIUM_OPERATOR_TOKEN".into(), OPERATOR_TOKEN.into()),
        ("EMPORIUM_LISTEN".into(), "127.0.0.1:0".into()),
        ("EMPORIUM_DATA_DIR".into(), data_dir.display().to_string()),
        ("EMPORIUM_JWT_SECRET".into(), JWT_SECRET.into()),
        // Cheap hashing keeps the suite fast; production parameters are in emporium.toml.
        ("EMPORIUM__AUTH__ARGON2_M_KIB".into(), "1024".into()),
        ("EMPORIUM__AUTH__ARGON2_T".into(), "1".into()),
        // Every test request comes from 127.0.0.1; the per-IP limit has its own test.
        ("EMPORIUM_AUTH_RATE_PER_IP".into(), "0".into()),
    ]);
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    Settings::load_with_env(&Overrides::default(), env).expect("test settings")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let data_dir = tempfile::tempdir().unwrap();
    spawn_app_in(data_dir, extra).await
}

pub async fn spawn_app_in(data_dir: tempfile::TempDir, extra: &[(&str, &str)]) -> TestApp {
    spawn_app_full(data_dir, extra, Arc::new(SystemClock)).await
}

pub async fn spawn_app_full(
    data_dir: tempfile::TempDir,
    extra: &[(&str, &str)],
    clock: Arc<dyn Clock>,
) -> TestApp {
    let app = Application::build_with_clock(settings(data_dir.path(), extra), clock)
        .await
        .expect("app builds");
    let address = format!("http://{}", app.local_addr());
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        shutdown,
        server,
        data_dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Shuts down gracefully and returns the data dir for a restart.
    pub async fn stop(self) -> tempfile::TempDir {
        self.shutdown.cancel();
        self.server.await.unwrap().unwrap();
        self.data_dir
    }

    pub async fn put_stock(&self, sku: &str, body: Value) -> reqwest::Response {
        self.client
            .put(self.url(&format!("/api/v1/admin/skus/{sku}/stock")))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn reserve(&self, sku: &str, order: &str, qty: u32) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/api/v1/admin/skus/{sku}/reservations")))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&serde_json::json!({"order_id": order, "user_id": "u1", "quantity": qty}))
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// The newest verification code mailed to `email` (dev mailbox).
    pub async fn mailed_code(&self, email: &str) -> String {
        for _ in 0..50 {
            let body: Value = self
                .client
                .get(self.url("/api/v1/dev/mailbox"))
                .query(&[("email", email)])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(text) = body["items"][0]["body"].as_str() {
                let digits: String = text.chars().filter(|c| c.is_ascii_digit()).collect();
                return digits[..6].to_string();
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("no mail for {email}");
    }

    /// Signs up, verifies and logs in; returns (user_id, access token, refresh cookie).
    pub async fn customer(&self, email: &str) -> (String, String, String) {
        let r = self
            .post_json(
                "/api/v1/auth/signup",
                serde_json::json!({"email": email, "password": "correct horse battery", "name": "Kim"}),
            )
            .await;
        assert_eq!(r.status(), 201);
        let user_id = r.json::<Value>().await.unwrap()["user_id"]
            .as_str()
            .unwrap()
            .to_string();
        let code = self.mailed_code(email).await;
        let r = self
            .post_json(
                "/api/v1/auth/verify-email",
                serde_json::json!({"email": email, "code": code}),
            )
            .await;
        assert_eq!(r.status(), 200);
        let (token, cookie) = self.login(email, "correct horse battery").await;
        (user_id, token, cookie)
    }

    /// Logs in; returns the access token and the refresh cookie value.
    pub async fn login(&self, email: &str, password: &str) -> (String, String) {
        let r = self
            .post_json(
                "/api/v1/auth/login",
                serde_json::json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(r.status(), 200, "login of {email}");
        let cookie = refresh_cookie(&r);
        let body: Value = r.json().await.unwrap();
        (body["access_token"].as_str().unwrap().to_string(), cookie)
    }

    pub async fn inspect(&self, kind: &str, id: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/api/v1/admin/entities/{kind}/{id}")))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .unwrap()
    }
}

/// Asserts a problem+json response with `status` and `code`; returns the body.
pub async fn assert_problem(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert_eq!(ct, "application/problem+json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], code, "problem code in {body}");
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string() && body["type"].is_string() && body["detail"].is_string());
    body
}

/// The refresh cookie a response sets.
pub fn refresh_cookie(r: &reqwest::Response) -> String {
    let header = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("refresh_token="))
        .expect("a refresh cookie");
    header["refresh_token=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// A request with a bearer token and an optional JSON body.
pub async fn send(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app
        .client
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            app.url(path),
        )
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

/// Asserts success; the JSON body.
pub async fn ok(r: reqwest::Response) -> Value {
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{status}: {body}");
    body
}

/// Creates a product with one SKU of `stock` units at `price` (operator token); its id.
pub async fn product_with_sku(
    app: &TestApp,
    name: &str,
    sku: &str,
    price: i64,
    stock: u64,
) -> String {
    let body = serde_json::json!({"name": name, "category": "test", "skus": [
        {"sku_id": sku, "options": {}, "price": price, "stock": stock}]});
    let created = ok(send(
        app,
        "POST",
        "/api/v1/admin/products",
        OPERATOR_TOKEN,
        Some(body),
    )
    .await)
    .await;
    created["product_id"].as_str().unwrap().to_string()
}

/// Pays an order through the sandbox gateway with a good card and confirms it; the confirm
/// response.
pub async fn pay(app: &TestApp, token: &str, order_id: &str, amount: i64) -> reqwest::Response {
    let card = serde_json::json!({"order_id": order_id, "amount": amount,
        "card_number": "4111111111111111"});
    let p: Value = app
        .post_json("/sandbox/pg/v1/payments", card)
        .await
        .json()
        .await
        .unwrap();
    let confirm = serde_json::json!({"order_id": order_id, "payment_key": p["payment_key"],
        "amount": amount});
    send(
        app,
        "POST",
        "/api/v1/payments/confirm",
        token,
        Some(confirm),
    )
    .await
}
