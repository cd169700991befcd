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
/// sandbox (CI runs as root), a fresh profile, English, its console on stderr, and 5 s of page
/// time (timers, fetches, the socket) before the result. Its stdout and console lines.
fn chromium_on(url: &str, (width, height): (u32, u32), action: &str) -> (String, Vec<String>) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
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
            "--virtual-time-budget=5000",
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
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.as_str(),
        "--demo",
    ];
    let envs = [
        ("EMPORIUM_DEV_MODE", "true"),
        ("EMPORIUM__AUTH__ARGON2_M_KIB", "1024"),
    ];
    let mut server = common::start_serve(&args, &envs);
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
                "Upcoming",
                "Limited Edition Sneakers",
            ],
        ),
        ("login", "/#/login".into(), &["Log in</button>", "Password"]),
    ];
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
