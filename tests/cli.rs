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

/// Logs in as the account `create_user` made; its access token.
async fn log_in(client: &reqwest::Client, base: &str) -> String {
    let login: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": "boss@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["access_token"]
        .as_str()
        .expect("logged in")
        .to_string()
}

/// `PUT /admin/skus/{sku}/stock` with `body`, as the holder of `token`.
async fn set_stock(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    sku: &str,
    body: Value,
) -> reqwest::Response {
    client
        .put(format!("{base}/api/v1/admin/skus/{sku}/stock"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
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

    let token = log_in(&client, &base).await;
    let r = set_stock(&client, &base, &token, "cli-1", json!({"available": 5})).await;
    assert_eq!(r.status(), 200, "the admin role reaches admin routes");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

/// `serve --demo` on an empty data dir opens on a shop: products with Hangul and Latin names,
/// a coupon to claim, a drop that starts a minute later, and a demo shopper who can log in
/// with the password the data dir keeps. Started again, it adds nothing and logs the same
/// accounts.
#[tokio::test]
async fn serve_demo_opens_on_a_shop() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let get = |url: String| {
        let client = client.clone();
        async move {
            client
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let mut first_products = 0;
    for start in 0..2 {
        let mut server = common::start_demo(dir.path());
        let base = server.base.clone();
        wait_ready(&client, &base).await;
        let products = get(format!("{base}/api/v1/products?limit=100")).await;
        let items = products["items"].as_array().unwrap();
        assert!(items.len() >= 12, "{products}");
        assert!(
            items
                .iter()
                .any(|p| p["name"].as_str().unwrap().contains("티셔츠"))
        );
        if start == 0 {
            first_products = items.len();
        } else {
            assert_eq!(items.len(), first_products, "a second start adds nothing");
        }
        let hits = get(format!(
            "{base}/api/v1/products?q=%EC%8A%A4%EB%8B%88%EC%BB%A4%EC%A6%88"
        ))
        .await;
        assert!(
            !hits["items"].as_array().unwrap().is_empty(),
            "Hangul search: {hits}"
        );

        let drops = get(format!("{base}/api/v1/drops")).await;
        let drops = drops["items"].as_array().unwrap();
        assert_eq!(drops.len(), 1, "{drops:?}");
        assert_eq!(drops[0]["sku_id"], "sneaker-limited-270");
        assert_eq!(drops[0]["quantity"], 20);

        let kept = std::fs::read_to_string(dir.path().join("demo-credentials")).unwrap();
        let shopper = kept.lines().find(|l| l.starts_with("shopper@")).unwrap();
        let password = shopper.split_whitespace().nth(1).unwrap();
        let login: Value = client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": "shopper@example.com", "password": password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["access_token"].as_str().expect("the shopper logs in");
        let claimed = client
            .post(format!("{base}/api/v1/coupons/claim"))
            .bearer_auth(token)
            .json(&json!({"code": "welcome10"}))
            .send()
            .await
            .unwrap();
        let expected = if start == 0 { 201 } else { 409 };
        assert_eq!(claimed.status(), expected, "claim on start {start}");
        let me = client
            .get(format!("{base}/api/v1/users/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        assert!(me["address"].as_str().unwrap().contains("테헤란로"), "{me}");
        server.child.kill().unwrap();
        server.child.wait().unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("demo-credentials"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "owner-only");
    }
}

/// A data dir started with another personal-data key than it was made with refuses to start,
/// naming the key, instead of serving a shop where no account opens and every email can sign
/// up again; with its own key back it serves as before.
#[test]
fn a_node_refuses_a_personal_data_key_its_data_was_not_sealed_with() {
    // Given a dev-mode data dir with an account (its key generated into dev-pii-key)
    let dir = tempfile::tempdir().unwrap();
    assert!(create_user(dir.path(), "boss@example.com").status.success());
    let key_file = dir.path().join("dev-pii-key");
    let kept = std::fs::read(&key_file).unwrap();
    // When the key file is lost (a new key is generated), or another key is configured
    std::fs::remove_file(&key_file).unwrap();
    let lost = create_user(dir.path(), "boss@example.com");
    std::fs::write(&key_file, &kept).unwrap();
    let other = Command::new(BIN)
        .args(["admin", "create-user", "--data-dir"])
        .arg(dir.path())
        .args(["--email", "boss@example.com", "--name", "Boss"])
        .env("EMPORIUM_NEW_USER_PASSWORD", "correct horse battery")
        .env(
            "EMPORIUM_PII_KEY",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        )
        .output()
        .unwrap();
    // Then neither starts, and each says which key is wrong
    for out in [lost, other] {
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("EMPORIUM_PII_KEY"), "{err}");
        assert!(!err.contains("already registered"), "{err}");
    }
    // And with its key back the account is still found
    let again = create_user(dir.path(), "boss@example.com");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already registered"));
}

/// A node whose log cannot be written (its disk full: here `/dev/full`, which refuses every
/// write with ENOSPC, for both standard output and standard error) keeps serving: a lost
/// log line is counted, never a panic in the handler that logged it.
#[tokio::test]
async fn a_node_whose_log_disk_is_full_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "debug")
        .stdout(full())
        .stderr(full())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..400 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            ready = true;
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the node stopped");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "the node never became ready");
    // When requests that log are served (a sign-up logs its mail, a 404 its problem)
    let signup =
        json!({"email": "log@example.com", "password": "correct horse battery", "name": "Log"});
    let r = client
        .post(format!("{base}/api/v1/auth/signup"))
        .json(&signup)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    for _ in 0..20 {
        let r = client
            .get(format!("{base}/api/v1/products/nope"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
    // Then the node is still up, and says how many log writes it lost
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    let lost = text
        .lines()
        .find_map(|l| l.strip_prefix("emporium_log_writes_failed_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(lost > 0.0, "{text}");
    assert!(child.try_wait().unwrap().is_none(), "the node stopped");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `admin create-user`, `admin usage` and `admin compact` on a data dir that does not exist (a
/// typo) refuse, making nothing: a compaction that made the dir would have let a later
/// create-user take it for a new node's.
#[test]
fn the_admin_commands_refuse_a_data_dir_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("dta");
    for command in ["usage", "compact"] {
        let out = Command::new(BIN)
            .args(["admin", command, "--data-dir"])
            .arg(&typo)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{command}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("no data dir at"), "{command}: {said}");
        assert!(!typo.exists(), "{command} made the data dir");
    }
    let out = create_user(&typo, "boss@example.com");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no data dir at"));
    assert!(!typo.exists());
}

/// `--demo` outside dev mode refuses to start.
#[test]
fn demo_needs_dev_mode() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--demo", "--data-dir"])
        .arg(dir.path())
        .env("EMPORIUM_DEV_MODE", "false")
        .env(
            "EMPORIUM_JWT_SECRET",
            "demo-test-secret-demo-test-secret-0123456789",
        )
        .env(
            "EMPORIUM_PII_KEY",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        )
        .env("EMPORIUM_OPERATOR_TOKEN", "demo-test-operator")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--demo is for dev mode"));
}

/// `emporium admin compact` and `admin usage` refuse a data dir a running node holds; on the stopped node's
/// dir it rewrites the store, and the node started again has the same accounts and stock.
#[tokio::test]
async fn compact_a_stopped_node_then_it_serves_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    assert!(create_user(dir.path(), "boss@example.com").status.success());
    let compact = || {
        Command::new(BIN)
            .args(["admin", "compact", "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let client = reqwest::Client::new();
    let stock = |base: String, token: String, body: Value| {
        let client = client.clone();
        async move {
            let r = set_stock(&client, &base, &token, "cli-2", body).await;
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()["available"].clone()
        }
    };

    let mut server = common::start(dir.path(), &[]);
    wait_ready(&client, &server.base).await;
    let token = log_in(&client, &server.base).await;
    // Churn: the stock set forty times over.
    for n in 1..=40 {
        stock(server.base.clone(), token.clone(), json!({"available": n})).await;
    }
    // (and so does the usage report, which reads the same store)
    let usage = Command::new(BIN)
        .args(["admin", "usage", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    for busy in [compact(), usage] {
        assert!(!busy.status.success());
        assert!(
            String::from_utf8_lossy(&busy.stderr).contains("in use by a running emporium"),
            "{}",
            String::from_utf8_lossy(&busy.stderr)
        );
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let out = compact();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("compacted"));

    let mut server = common::start(dir.path(), &[]);
    wait_ready(&client, &server.base).await;
    let token = log_in(&client, &server.base).await;
    let available = stock(server.base.clone(), token, json!({"delta": 1})).await;
    assert_eq!(available, json!(41), "the stock as it was, plus one");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}
