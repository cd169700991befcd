//! The home page holds still as it loads: a signed-in shopper at phone width, with a live drop
//! and products, sees no content move once painted (Cumulative Layout Shift under 0.1, the
//! "good" threshold of web.dev/articles/cls). On a slow network a page waiting for its data
//! says it is loading.

use crate::{Latency, Shop, TURN, browser, driver, log_in, now, screenshots, until};
use serde_json::Value;

/// Sums the page's layout shifts not caused by input, with what moved (web.dev's CLS, without
/// its session windows: a stricter sum).
const SHIFTS: &str = "return new Promise((done) => {
  new PerformanceObserver((list) => {
    const shifts = list.getEntries().filter((e) => !e.hadRecentInput);
    done({ total: shifts.reduce((s, e) => s + e.value, 0),
      moved: shifts.map((e) => `${e.value.toFixed(3)} at ${Math.round(e.startTime)} ms: ` +
        e.sources.map((s) => `${s.node?.nodeName}.${s.node?.className} ${JSON.stringify(s.previousRect)} -> ${JSON.stringify(s.currentRect)}`).join('; ')) });
  }).observe({ type: 'layout-shift', buffered: true });
  setTimeout(() => done({ total: 0, moved: [] }), 1000);
});";

#[tokio::test]
async fn home_does_not_shift_as_it_loads() {
    let _turn = TURN.lock().await;
    let shop = Shop::start().await;
    let base = shop.base.clone();
    let mut ids = vec![];
    for (name, sku) in [
        ("Heavyweight Cotton Crewneck Sweatshirt in Oatmeal", "crew"),
        ("Tee", "tee"),
    ] {
        let product = serde_json::json!({"name": name, "category": "tops",
            "skus": [{"sku_id": sku, "options": {"size": "M"}, "price": 39000, "stock": 10}]});
        let created = shop.admin("POST", "/admin/products", Some(product)).await;
        ids.push(created["product_id"].as_str().unwrap().to_string());
    }
    let drop = serde_json::json!({"sku_id": "crew", "quantity": 5, "price": 29000,
        "starts_at": now(), "per_user_limit": 1});
    let created = shop.admin("POST", "/admin/drops", Some(drop)).await;
    let drop_id = created["drop_id"].as_str().unwrap().to_string();
    shop.account("still@example.com", &["customer"]).await;

    let driver = driver().await;
    let profile = tempfile::tempdir().unwrap();
    let page = browser(&driver, profile.path()).await;
    log_in(&page, &base, "still@example.com").await;
    for round in 0..3 {
        page.goto(&format!("{base}/?round={round}#/"))
            .await
            .unwrap();
        until(
            &page,
            "document.querySelector('.drop .name')?.textContent",
            "the drop's name",
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let shifts: Value = page.execute(SHIFTS, vec![]).await.unwrap();
        let total = shifts["total"].as_f64().unwrap();
        println!("round {round}: {total:.3} {:#}", shifts["moved"]);
        assert!(
            total < 0.1,
            "round {round}: layout shift {total:.3}: {:#}",
            shifts["moved"]
        );
    }
    // The product in the drop leads to it, with the drop's price.
    let crew = &ids[0];
    page.execute(&format!("location.hash = '#/product/{crew}'"), vec![])
        .await
        .unwrap();
    let note = format!(
        "document.querySelector('.drop-note a[href=\"#/drop/{drop_id}\"]')?.textContent.includes('₩29,000')"
    );
    until(&page, &note, "the drop's note on its product").await;
    page.goto(&format!("{base}/#/")).await.unwrap();
    until(&page, "document.querySelector('.drop .name')", "home again").await;

    // Home's tab is the shop's name, not its first section's.
    assert_eq!(page.title().await.unwrap(), "Emporium");

    // Enter straight after typing (a phone's search key): the results, and no suggestions
    // opening over them afterwards.
    let q = page.find(fantoccini::Locator::Css("#q")).await.unwrap();
    q.send_keys("tee\u{E007}").await.unwrap();
    until(&page, "location.hash.startsWith('#/search')", "the results").await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let open = page
        .execute("return !document.querySelector('#suggest').hidden", vec![])
        .await
        .unwrap();
    assert_eq!(open, false, "suggestions opened over the results");

    // On a slow network a page waiting for its data says so, then paints over the words.
    page.issue_cmd(Latency(1500)).await.unwrap();
    page.execute("location.hash = '#/orders'", vec![])
        .await
        .unwrap();
    until(
        &page,
        "document.querySelector('main').textContent.trim() === 'Loading…'",
        "Loading… on a slow network",
    )
    .await;
    page.issue_cmd(Latency(0)).await.unwrap();
    until(
        &page,
        "document.querySelector('main h1')?.textContent === 'Orders'",
        "the orders page",
    )
    .await;

    // The language button paints the page again in Korean and keeps the focus.
    crate::click(&page, "#lang").await;
    until(
        &page,
        "document.querySelector('main h1')?.textContent === '주문 내역' \
         && document.activeElement?.id === 'lang'",
        "the orders page in Korean, the focus on the button",
    )
    .await;
    let png = page.screenshot().await.unwrap();
    std::fs::write(screenshots().join("home-signed-in.png"), png).unwrap();
    page.close().await.unwrap();
    shop.stop();
}
