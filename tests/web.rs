//! The storefront in a real headless Chromium (Debian's `chromium`, which `scripts/test.sh`
//! installs): every page of a `serve --demo` node renders what a shopper needs, at phone and
//! desktop widths, with no console message (no script error, no refused request or policy
//! violation), and a screenshot of each is written under `target/screenshots/` on every run.

mod common;

use common::wait_ready;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const SIZES: [(u32, u32); 2] = [(390, 844), (1280, 800)];

/// The browser tests take turns: each runs a debug server and several browsers, which on two
/// cores would otherwise slow the other past its waits.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn chromium() -> &'static str {
    for candidate in ["chromium", "chromium-browser"] {
        let works = Command::new(candidate)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if works {
            return candidate;
        }
    }
    panic!("Chromium is not installed: run ./scripts/test.sh, or apt-get install chromium");
}

/// Runs Chromium on `url` with `action` (`--dump-dom`, `--screenshot=FILE`): headless, no
/// sandbox (CI runs as root), a fresh profile, English, its console on stderr, and 20 s of
/// virtual page time before the result (the page's one-second timers spend it; with 5 s, one
/// render in six on this machine ended before the page's first fetches). Its stdout and console
/// lines.
fn chromium_on(url: &str, (width, height): (u32, u32), action: &str) -> (String, Vec<String>) {
    let profile = tempfile::tempdir().unwrap();
    // `timeout`: a page that never lets the browser finish must not hang the run.
    let out = Command::new("timeout")
        .args(["60", chromium()])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--lang=en-US",
            "--virtual-time-budget=20000",
        ])
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(action)
        .arg(url)
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium {action} {url}");
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn every_storefront_page_renders_without_console_messages() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = common::start_demo(dir.path());
    let base = server.base.clone();
    let client = reqwest::Client::new();
    wait_ready(&client, &base).await;
    let get = |path: String| {
        let client = client.clone();
        async move {
            let r = client.get(path).send().await.unwrap();
            r.json::<Value>().await.unwrap()
        }
    };
    let tee = get(format!("{base}/api/v1/products?q=tee")).await["items"][0]["product_id"]
        .as_str()
        .unwrap()
        .to_string();
    let drop_id = get(format!("{base}/api/v1/drops")).await["items"][0]["drop_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Each page, and what its DOM must hold once its script has run.
    let pages: [(&str, String, &[&str]); 5] = [
        (
            "home",
            "/".into(),
            &[
                r#"<label for="q" class="sr-only" data-t="search">Search</label>"#,
                // Written by the script: it ran.
                r#"placeholder="Search products""#,
                "class=\"drop\"",
                "Oversized Tee",
                "₩12,900",
                ">tops <",
            ],
        ),
        (
            "search",
            "/#/search?q=%ED%8B%B0%EC%85%94%EC%B8%A0".into(),
            &["Results for", "Oversized Tee"],
        ),
        (
            "product",
            format!("/#/product/{tee}"),
            &[
                "Add to cart</button>",
                "Choose colour",
                "Choose size",
                "₩12,900",
            ],
        ),
        (
            "drop",
            format!("/#/drop/{drop_id}"),
            &[
                "Buy now</button>",
                "20 of 20 left",
                // Upcoming or, on a slow machine, already live.
                r#"<p id="drop-status"><span class="tag"#,
                "Limited Edition Sneakers",
            ],
        ),
        ("login", "/#/login".into(), &["Log in</button>", "Password"]),
    ];
    // The console check can fail: a page that logs is caught.
    let (_, noisy) = chromium_on(
        "data:text/html,<script>console.error('seen')</script>",
        SIZES[0],
        "--dump-dom",
    );
    assert!(noisy.iter().any(|l| l.contains("seen")), "{noisy:?}");

    let shots = screenshots();
    for (name, path, expected) in &pages {
        for size in SIZES {
            let url = format!("{base}{path}");
            let (dom, console) = chromium_on(&url, size, "--dump-dom");
            for needle in *expected {
                assert!(
                    dom.contains(needle),
                    "{name} at {size:?}: no {needle:?} in\n{dom}"
                );
            }
            assert!(
                console.is_empty(),
                "{name} at {size:?}: console {console:#?}"
            );
            let file = shots.join(format!("{name}-{}x{}.png", size.0, size.1));
            let _ = std::fs::remove_file(&file);
            chromium_on(&url, size, &format!("--screenshot={}", file.display()));
            assert!(
                file.metadata().is_ok_and(|m| m.len() > 1000),
                "{}",
                file.display()
            );
        }
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

/// Debian's chromedriver on a free port, for the tests that click; stopped with the test.
struct Driver {
    child: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn driver() -> Driver {
    let port = common::free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver is not installed: run ./scripts/test.sh (chromium-driver)");
    // Owned from here: killed and reaped on drop, whatever happens next.
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client
            .get(format!("{}/status", driver.url))
            .send()
            .await
            .is_ok()
        {
            return driver;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start");
}

/// A headless Chromium session of its own (a fresh profile), at phone width.
async fn browser(driver: &Driver, profile: &Path) -> fantoccini::Client {
    let options = serde_json::json!({
        "binary": "/usr/bin/chromium",
        "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--no-first-run", "--lang=en-US", "--window-size=390,844",
            format!("--user-data-dir={}", profile.display()),
        ],
    });
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), options);
    fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

/// Polls `script` (a JS expression) in the page until it is truthy; its value.
async fn until(page: &fantoccini::Client, script: &str, what: &str) -> Value {
    for _ in 0..400 {
        let value = page
            .execute(&format!("return {script};"), vec![])
            .await
            .unwrap();
        if !(value.is_null() || value == false || value == "") {
            return value;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("waited 20 s for {what}");
}

async fn log_in(page: &fantoccini::Client, base: &str, email: &str) {
    use fantoccini::Locator;
    page.goto(&format!("{base}/#/login")).await.unwrap();
    until(
        page,
        "document.querySelector('#login-form')",
        "the login form",
    )
    .await;
    let form = page.find(Locator::Id("login-form")).await.unwrap();
    form.find(Locator::Css("input[name=email]"))
        .await
        .unwrap()
        .send_keys(email)
        .await
        .unwrap();
    form.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    form.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        page,
        "document.querySelector('#auth').textContent === 'Log out'",
        "logged in",
    )
    .await;
}

const PASSWORD: &str = "correct horse battery";
const OPERATOR: &str = "web-test-operator-token";

/// Two shoppers in two browsers press `Buy now` together on a drop of one unit: exactly one
/// gets the order, the other is told it sold out, and both pages show none left without a
/// reload (the `drop:` topic).
#[tokio::test]
async fn two_browsers_press_buy_now_together_on_the_last_unit() {
    let _turn = TURN.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let args = ["--listen", "127.0.0.1:0", "--data-dir", data.as_str()];
    let envs = [
        ("EMPORIUM_DEV_MODE", "true"),
        ("EMPORIUM__AUTH__ARGON2_M_KIB", "1024"),
        ("EMPORIUM_OPERATOR_TOKEN", OPERATOR),
    ];
    let mut server = common::start_serve(&args, &envs);
    let base = server.base.clone();
    let client = reqwest::Client::new();
    wait_ready(&client, &base).await;
    let admin = |path: &str, body: Value| {
        client
            .post(format!("{base}/api/v1{path}"))
            .bearer_auth(OPERATOR)
            .json(&body)
            .send()
    };
    let product = serde_json::json!({"name": "Last Pair", "category": "shoes",
        "skus": [{"sku_id": "last-pair", "options": {"size": "270"}, "price": 99000, "stock": 1}]});
    assert_eq!(
        admin("/admin/products", product).await.unwrap().status(),
        201
    );
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let drop = serde_json::json!({"sku_id": "last-pair", "quantity": 1, "price": 89000,
        "starts_at": now, "per_user_limit": 1});
    let created = admin("/admin/drops", drop).await.unwrap();
    assert_eq!(created.status(), 201);
    let drop_id = created.json::<Value>().await.unwrap()["drop_id"]
        .as_str()
        .unwrap()
        .to_string();
    for who in ["ara", "bo"] {
        let user = serde_json::json!({"email": format!("{who}@example.com"), "password": PASSWORD,
            "name": who, "roles": ["customer"]});
        assert_eq!(admin("/admin/users", user).await.unwrap().status(), 201);
    }

    let driver = driver().await;
    let (pa, pb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (
        browser(&driver, pa.path()).await,
        browser(&driver, pb.path()).await,
    );
    for (page, who) in [(&a, "ara"), (&b, "bo")] {
        log_in(page, &base, &format!("{who}@example.com")).await;
        page.execute(&format!("location.hash = '#/drop/{drop_id}'"), vec![])
            .await
            .unwrap();
        let ready =
            "document.querySelector('#buy-now') && !document.querySelector('#buy-now').disabled";
        until(page, ready, "Buy now enabled").await;
    }
    // Both press at once.
    let press = |page: &fantoccini::Client| {
        let page = page.clone();
        async move {
            let button = page.find(fantoccini::Locator::Id("buy-now")).await.unwrap();
            button.click().await.unwrap();
        }
    };
    tokio::join!(press(&a), press(&b));
    // Each page settles: none left, and either its press was answered or the sale it lost
    // reached it first (the button then turned off before the press landed).
    let settled = "document.querySelector('#remaining').textContent === '0 of 1 left' \
        && document.querySelector('#buy-now').getAttribute('aria-busy') !== 'true' \
        && (document.querySelector('#outcome').textContent !== '' \
            || document.querySelector('#buy-now').disabled)";
    let mut outcomes = vec![];
    for page in [&a, &b] {
        until(page, settled, "the page to settle").await;
        let seen = "[document.querySelector('#outcome').textContent, \
            document.querySelector('#drop-status').textContent]";
        outcomes.push(
            page.execute(&format!("return {seen};"), vec![])
                .await
                .unwrap(),
        );
    }
    let text = |o: &Value, i: usize| o[i].as_str().unwrap().to_string();
    let won = outcomes
        .iter()
        .filter(|o| text(o, 0).starts_with("It's yours"))
        .count();
    let told = outcomes
        .iter()
        .filter(|o| text(o, 0) == "Sold out." || text(o, 1).contains("Sold out"))
        .count();
    assert_eq!(won, 1, "{outcomes:?}");
    assert!(told >= 1, "the other page says sold out: {outcomes:?}");
    let shot = b.screenshot().await.unwrap();
    std::fs::write(screenshots().join("drop-race.png"), shot).unwrap();
    for page in [a, b] {
        page.close().await.unwrap();
    }
    // One order in all.
    let orders: Value = client
        .get(format!("{base}/api/v1/admin/orders"))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(orders["items"].as_array().unwrap().len(), 1, "{orders}");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}
