//! The command line: `emporium admin create-user` on a stopped node's data dir, then the server
//! on that data dir accepts the account's login with its roles.

mod common;

use common::{BIN, wait_ready};
use serde_json::{Value, json};
use std::process::Command;

fn create_user(dir: &std::path::Path, email: &str) -> std::process::Output {
    Command::new(BIN)
        .args(["admin", "create-user", "--data-dir"])
        .arg(dir)
        .args(["--email", email, "--name", "Boss", "--role", "admin"])
        .env("EMPORIUM_NEW_USER_PASSWORD", "correct horse battery")
        .env("EMPORIUM__AUTH__ARGON2_M_KIB", "1024")
        .output()
        .unwrap()
}

#[tokio::test]
async fn create_user_then_log_in_as_that_admin() {
    let dir = tempfile::tempdir().unwrap();
    let out = create_user(dir.path(), "Boss@Example.com");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("boss@example.com") && printed.contains("admin"),
        "{printed}"
    );

    let again = create_user(dir.path(), "boss@example.com");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already registered"));

    let mut server = common::start(dir.path(), &[]);
    let base = server.base.clone();
    let client = reqwest::Client::new();
    // The address is logged at once; the node loads in the background.
    wait_ready(&client, &base).await;

    // While the server holds the data dir, the command line refuses cleanly.
    let busy = create_user(dir.path(), "other@example.com");
    assert!(!busy.status.success());
    assert!(String::from_utf8_lossy(&busy.stderr).contains("another emporium"));

    let login: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": "boss@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"]
        .as_str()
        .expect("logged in")
        .to_string();
    let r = client
        .put(format!("{base}/api/v1/admin/skus/cli-1/stock"))
        .bearer_auth(&token)
        .json(&json!({"available": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the admin role reaches admin routes");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}
