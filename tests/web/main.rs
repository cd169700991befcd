//! The web faces in a real headless Chromium (Debian's `chromium` and `chromium-driver`, which
//! `scripts/test.sh` installs): every page renders what its user needs at phone and desktop
//! widths with no console message (no script error, no refused request or policy violation),
//! a shopper signs up and pays and watches the order ship, the checkout works from the keyboard
//! alone, two shoppers race for the last unit, tabs of one shopper share a session, and an
//! operator creates a drop in the console and watches it sell. Screenshots are written under `target/screenshots/` on every run.

#[path = "../common/mod.rs"]
mod common;
mod console;
mod journey;
mod pages;
mod proxy;
mod race;
mod returns;
mod shift;
mod storage;
mod tabs;

use common::wait_ready;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) const SIZES: [(u32, u32); 2] = [(390, 844), (1280, 800)];

/// The browser tests take turns: each runs a debug server and several browsers, which on two
/// cores would otherwise slow the other past its waits.
pub(crate) static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
pub(crate) fn chromium_on(
    url: &str,
    (width, height): (u32, u32),
    action: &str,
) -> (String, Vec<String>) {
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

pub(crate) fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Debian's chromedriver on a free port, for the tests that click; stopped with the test.
pub(crate) struct Driver {
    child: std::process::Child,
    url: String,
}

impl Drop for Driver {
    /// Stops the browsers first (chromedriver's children, which would outlive it when a test
    /// fails before closing its session), then chromedriver.
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .args(["-KILL", "-P", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn driver() -> Driver {
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
pub(crate) async fn browser(driver: &Driver, profile: &Path) -> fantoccini::Client {
    browser_with(driver, profile, serde_json::json!({})).await
}

/// [`browser`] with Chromium's preferences `prefs` (`goog:chromeOptions.prefs`).
pub(crate) async fn browser_with(
    driver: &Driver,
    profile: &Path,
    prefs: Value,
) -> fantoccini::Client {
    let options = serde_json::json!({
        "binary": "/usr/bin/chromium",
        "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--no-first-run", "--lang=en-US", "--window-size=390,844",
            format!("--user-data-dir={}", profile.display()),
        ],
        "prefs": prefs,
    });
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".into(), options);
    capabilities.insert(
        "goog:loggingPrefs".into(),
        serde_json::json!({"browser": "ALL"}),
    );
    fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

/// Polls `script` (a JS expression) in the page until it is truthy; its value. While the page
/// is still painting, an expression that throws (an element not there yet) counts as not yet.
pub(crate) async fn until(page: &fantoccini::Client, script: &str, what: &str) -> Value {
    for _ in 0..400 {
        let value = page
            .execute(
                &format!("try {{ return {script}; }} catch (e) {{ return null; }}"),
                vec![],
            )
            .await
            .unwrap();
        if !(value.is_null() || value == false || value == "") {
            return value;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("waited 20 s for {what}");
}

pub(crate) async fn log_in(page: &fantoccini::Client, base: &str, email: &str) {
    page.goto(&format!("{base}/#/login")).await.unwrap();
    until(
        page,
        "document.querySelector('#login-form')",
        "the login form",
    )
    .await;
    submit(
        page,
        "login-form",
        &[("email", email), ("password", PASSWORD)],
    )
    .await;
    until(
        page,
        "document.querySelector('#auth').textContent === 'Log out'",
        "logged in",
    )
    .await;
}

/// Types `text` into the field `name` of the form `#form`, replacing what it held.
pub(crate) async fn fill(page: &fantoccini::Client, form: &str, name: &str, text: &str) {
    let input = page
        .find(fantoccini::Locator::Css(&format!("#{form} [name={name}]")))
        .await
        .unwrap();
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

/// Fills `fields` (name, text) of the form `#form` and presses its submit button.
pub(crate) async fn submit(page: &fantoccini::Client, form: &str, fields: &[(&str, &str)]) {
    for (name, text) in fields {
        fill(page, form, name, text).await;
    }
    click(page, &format!("#{form} button[type=submit]")).await;
}

/// Clicks what `css` finds.
pub(crate) async fn click(page: &fantoccini::Client, css: &str) {
    page.find(fantoccini::Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

pub(crate) const PASSWORD: &str = "correct horse battery";
pub(crate) const OPERATOR: &str = "web-test-operator-token";

/// ChromeDriver's browser log (`POST /session/{id}/se/log`): what the page wrote to its
/// console, script errors and refused requests since the last read.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &reqwest::Url,
        session: Option<&str>,
    ) -> Result<reqwest::Url, <reqwest::Url as std::str::FromStr>::Err> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &reqwest::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(r#"{"type": "browser"}"#.into()),
        )
    }
}

/// ChromeDriver's network emulation (`POST /session/{id}/chromium/network_conditions`): every
/// request of the session takes at least `latency_ms` more, as on a slow mobile network.
#[derive(Debug)]
pub(crate) struct Latency(pub u32);

impl fantoccini::wd::WebDriverCompatibleCommand for Latency {
    fn endpoint(
        &self,
        base: &reqwest::Url,
        session: Option<&str>,
    ) -> Result<reqwest::Url, <reqwest::Url as std::str::FromStr>::Err> {
        let session = session.unwrap_or_default();
        base.join(&format!("session/{session}/chromium/network_conditions"))
    }

    fn method_and_body(&self, _: &reqwest::Url) -> (axum::http::Method, Option<String>) {
        // Throughput in bytes a second, far above what a page here needs.
        let conditions = serde_json::json!({"network_conditions": {"offline": false,
            "latency": self.0, "download_throughput": 50_000_000, "upload_throughput": 50_000_000}});
        (axum::http::Method::POST, Some(conditions.to_string()))
    }
}

/// Asserts that the page wrote nothing to its console since the last call (`what` names the
/// page for the message).
pub(crate) async fn quiet(page: &fantoccini::Client, what: &str) {
    let log = page.issue_cmd(BrowserLog).await.unwrap();
    let entries = log.as_array().cloned().unwrap_or_default();
    assert!(entries.is_empty(), "{what}: console {entries:#?}");
}

/// Asserts that what the page wrote to its console since the last call is only `expected`
/// (a refusal the page handles, which the browser logs as a failed load), at least once.
pub(crate) async fn only_in_console(page: &fantoccini::Client, what: &str, expected: &str) {
    let log = page.issue_cmd(BrowserLog).await.unwrap();
    let entries = log.as_array().cloned().unwrap_or_default();
    let theirs =
        |e: &serde_json::Value| e["message"].as_str().is_some_and(|m| m.contains(expected));
    assert!(
        !entries.is_empty() && entries.iter().all(theirs),
        "{what}: console {entries:#?}"
    );
}

/// Saves a screenshot of `page` as `NAME-WxH.png` at each of [`SIZES`], leaving the window at
/// the first.
pub(crate) async fn shoot(page: &fantoccini::Client, name: &str) {
    for (w, h) in SIZES.iter().rev() {
        page.set_window_size(*w, *h).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let png = page.screenshot().await.unwrap();
        std::fs::write(screenshots().join(format!("{name}-{w}x{h}.png")), png).unwrap();
    }
}

/// A node for the tests that click: dev mode, the operator token, cheap password hashing and
/// a carrier that moves a parcel on every second.
pub(crate) struct Shop {
    pub server: common::Server,
    pub base: String,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Shop {
    pub async fn start() -> Shop {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_str().unwrap().to_string();
        let args = ["--listen", "127.0.0.1:0", "--data-dir", data.as_str()];
        let envs = [
            ("EMPORIUM_DEV_MODE", "true"),
            ("EMPORIUM__AUTH__ARGON2_M_KIB", "1024"),
            ("EMPORIUM_OPERATOR_TOKEN", OPERATOR),
            ("EMPORIUM_CARRIER_STEP_SECS", "1"),
        ];
        let server = common::start_serve(&args, &envs);
        let base = server.base.clone();
        let client = reqwest::Client::new();
        wait_ready(&client, &base).await;
        Shop {
            server,
            base,
            client,
            _dir: dir,
        }
    }

    /// `METHOD /api/v1{path}` as the operator; the JSON answer, which must be a success.
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(OPERATOR, method, path, body).await
    }

    /// `METHOD /api/v1{path}` with the bearer `token`; the JSON answer (`null` for none),
    /// which must be a success.
    pub async fn call(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let r = request.send().await.unwrap();
        let status = r.status();
        let body = r.json::<Value>().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// A verified account with `roles` and [`PASSWORD`].
    pub async fn account(&self, email: &str, roles: &[&str]) {
        let user = serde_json::json!({"email": email, "password": PASSWORD, "name": "Kim Ara",
            "roles": roles});
        self.admin("POST", "/admin/users", Some(user)).await;
    }

    /// A fresh access token of the account `email` (with [`PASSWORD`]), logged in over HTTP
    /// beside the browser.
    pub async fn token(&self, email: &str) -> String {
        access_token(&self.client, &self.base, email).await
    }

    pub fn stop(mut self) {
        self.server.child.kill().unwrap();
        self.server.child.wait().unwrap();
    }
}

/// A fresh access token of the account `email` (with [`PASSWORD`]) from `POST /auth/login`.
pub(crate) async fn access_token(client: &reqwest::Client, base: &str, email: &str) -> String {
    let login = serde_json::json!({"email": email, "password": PASSWORD});
    let r = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&login);
    let body = r.send().await.unwrap().json::<Value>().await.unwrap();
    body["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

/// Now, RFC 3339.
pub(crate) fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}
