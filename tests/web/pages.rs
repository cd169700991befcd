//! Every page a signed-out visitor reaches, rendered by Chromium's `--dump-dom` at both sizes.

use crate::common;
use crate::{SIZES, TURN, chromium_on, screenshots};
use common::wait_ready;
use serde_json::Value;

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
    // The tee has a picture (inline, as the page's CSP allows; an https: address would need
    // the network); the other products show their initial.
    let token = std::fs::read_to_string(dir.path().join("dev-operator-token")).unwrap();
    let picture = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 1 1'%3E%3Crect width='1' height='1' fill='%23c33'/%3E%3C/svg%3E";
    let r = client
        .patch(format!("{base}/api/v1/admin/products/{tee}"))
        .bearer_auth(token.trim())
        .json(&serde_json::json!({"thumbnail": picture}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
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
            &[
                "Results for",
                "Oversized Tee",
                r#"<img class="thumb" src="data:image/svg+xml,"#,
            ],
        ),
        (
            "product",
            format!("/#/product/{tee}"),
            &[
                "Add to cart</button>",
                r#"<img class="thumb big" src="data:image/svg+xml,"#,
                "Choose color",
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
