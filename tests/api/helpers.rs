//! `spawn_app()` builds the real application in-process on port 0 with a temp data dir and
//! returns a [`TestApp`] with request helpers.

use emporium::config::{Overrides, Settings};
use emporium::startup::Application;
use serde_json::Value;
use std::collections::HashMap;
use tokio_util::sync::CancellationToken;

pub const OPERATOR_TOKEN: &str = "test-operator-token";

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
    let app = Application::build(settings(data_dir.path(), extra))
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
