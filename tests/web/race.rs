//! The last unit of a drop, raced by two shoppers in two browsers.

use crate::{Shop, TURN, browser, driver, log_in, now, screenshots, until};
use serde_json::Value;

/// Two shoppers in two browsers press `Buy now` together on a drop of one unit: exactly one
/// gets the order, the other is told it sold out, and both pages show none left without a
/// reload (the `drop:` topic).
#[tokio::test]
async fn two_browsers_press_buy_now_together_on_the_last_unit() {
    let _turn = TURN.lock().await;
    let shop = Shop::start().await;
    let base = shop.base.clone();
    let product = serde_json::json!({"name": "Last Pair", "category": "shoes",
        "skus": [{"sku_id": "last-pair", "options": {"size": "270"}, "price": 99000, "stock": 1}]});
    shop.admin("POST", "/admin/products", Some(product)).await;
    let drop = serde_json::json!({"sku_id": "last-pair", "quantity": 1, "price": 89000,
        "starts_at": now(), "per_user_limit": 1});
    let created = shop.admin("POST", "/admin/drops", Some(drop)).await;
    let drop_id = created["drop_id"].as_str().unwrap().to_string();
    for who in ["ara", "bo"] {
        shop.account(&format!("{who}@example.com"), &["customer"])
            .await;
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
    let orders = shop.admin("GET", "/admin/orders", None).await;
    assert_eq!(orders["items"].as_array().unwrap().len(), 1, "{orders}");
    shop.stop();
}

/// A shopper taps `Buy now` twice, the second tap landing just after the first purchase was
/// answered (a phone's double tap on a fast connection): one order, and the page still says it
/// is the shopper's.
#[tokio::test]
async fn a_double_tap_on_buy_now_buys_once() {
    let _turn = TURN.lock().await;
    let shop = Shop::start().await;
    let base = shop.base.clone();
    let product = serde_json::json!({"name": "Tap Tee", "category": "tops",
        "skus": [{"sku_id": "tap-tee", "options": {"size": "M"}, "price": 19000, "stock": 5}]});
    shop.admin("POST", "/admin/products", Some(product)).await;
    let drop = serde_json::json!({"sku_id": "tap-tee", "quantity": 5, "price": 15000,
        "starts_at": now(), "per_user_limit": 3});
    let created = shop.admin("POST", "/admin/drops", Some(drop)).await;
    let drop_id = created["drop_id"].as_str().unwrap().to_string();
    shop.account("tap@example.com", &["customer"]).await;
    let driver = driver().await;
    let profile = tempfile::tempdir().unwrap();
    let page = browser(&driver, profile.path()).await;
    log_in(&page, &base, "tap@example.com").await;
    page.execute(&format!("location.hash = '#/drop/{drop_id}'"), vec![])
        .await
        .unwrap();
    let ready =
        "document.querySelector('#buy-now') && !document.querySelector('#buy-now').disabled";
    until(&page, ready, "Buy now enabled").await;
    // The second tap comes the moment the first one's answer is shown.
    let double_tap = "const b = document.querySelector('#buy-now'); \
        const o = document.querySelector('#outcome'); \
        new MutationObserver((_, m) => { if (o.textContent) { m.disconnect(); b.click(); } }) \
            .observe(o, {childList: true, characterData: true, subtree: true}); \
        b.click();";
    page.execute(double_tap, vec![]).await.unwrap();
    until(&page, ready, "Buy now enabled again").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let outcome = page
        .execute(
            "return document.querySelector('#outcome').textContent;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        outcome.as_str().unwrap().starts_with("It's yours"),
        "{outcome}"
    );
    page.close().await.unwrap();
    let orders = shop.admin("GET", "/admin/orders", None).await;
    assert_eq!(orders["items"].as_array().unwrap().len(), 1, "{orders}");
    shop.stop();
}

/// One shopper presses `Add to cart` in two tabs of one browser at the same moment: the cart
/// holds two (the API sets a line's quantity, so each add reads the cart, then writes). Then a
/// double tap, its second tap landing the moment the first add is answered: one more, not two.
#[tokio::test]
async fn adds_to_cart_from_two_tabs_at_once_and_a_double_tap_count_right() {
    let _turn = TURN.lock().await;
    let shop = Shop::start().await;
    let base = shop.base.clone();
    let product = serde_json::json!({"name": "Cart Tee", "category": "tops",
        "skus": [{"sku_id": "cart-tee", "options": {"size": "M"}, "price": 19000, "stock": 9}]});
    let created = shop.admin("POST", "/admin/products", Some(product)).await;
    let product_id = created["product_id"].as_str().unwrap().to_string();
    let email = "two.tabs@example.com";
    shop.account(email, &["customer"]).await;
    let token = shop.token(email).await;
    let held = || async {
        let cart = shop.call(&token, "GET", "/cart", None).await;
        cart["items"][0]["quantity"].as_u64().unwrap_or(0)
    };
    let driver = driver().await;
    let profile = tempfile::tempdir().unwrap();
    let page = browser(&driver, profile.path()).await;
    log_in(&page, &base, email).await;
    let ready = "document.querySelector('#buy button[type=submit]') \
        && !document.querySelector('#buy button[type=submit]').disabled";
    let open = format!("{base}/#/product/{product_id}");
    page.goto(&open).await.unwrap();
    until(&page, ready, "Add to cart in the first tab").await;
    let first = page.window().await.unwrap();
    let second = page.new_window(true).await.unwrap().handle;
    page.switch_to_window(second.clone()).await.unwrap();
    page.goto(&open).await.unwrap();
    until(&page, ready, "Add to cart in the second tab").await;

    // Both tabs press at one moment, about two seconds from now on the shared clock.
    let at = "setTimeout(() => document.querySelector('#buy button[type=submit]').click(), \
            arguments[0] - Date.now());";
    // (on a whole second: a background tab's timers may be aligned to one)
    let when = page
        .execute(
            "return Math.ceil((Date.now() + 1500) / 1000) * 1000",
            vec![],
        )
        .await
        .unwrap();
    page.execute(at, vec![when.clone()]).await.unwrap();
    page.switch_to_window(first).await.unwrap();
    page.execute(at, vec![when]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    until(&page, ready, "Add to cart enabled again").await;
    for _ in 0..50 {
        if held().await >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(held().await, 2, "two tabs, two adds");

    // The second tap comes the moment the first add's answer is said.
    let double_tap = "const b = document.querySelector('#buy button[type=submit]'); \
        new MutationObserver((r, m) => { if (r.some((x) => x.addedNodes.length)) { m.disconnect(); b.click(); } }) \
            .observe(document.querySelector('#toast'), {childList: true}); \
        b.click();";
    page.execute(double_tap, vec![]).await.unwrap();
    until(
        &page,
        "document.querySelector('#cart-count').textContent === '3'",
        "three",
    )
    .await;
    until(&page, ready, "Add to cart enabled after the double tap").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(held().await, 3, "a double tap adds one");
    page.close().await.unwrap();
    shop.stop();
}
