//! A browser that refuses the site its storage (Chromium's "block all cookies and site data":
//! `localStorage`, `sessionStorage` and Web Locks throw, cookies are dropped). The storefront
//! still shows the catalog, signs in for the page's life and takes Add to cart.

use crate::{Shop, TURN, browser_with, click, driver, log_in, quiet, until};

#[tokio::test]
async fn a_browser_that_refuses_storage_still_browses_signs_in_and_adds_to_cart() {
    let _turn = TURN.lock().await;
    let shop = Shop::start().await;
    let base = shop.base.clone();
    let product = serde_json::json!({"name": "Storage Tee", "category": "tops",
        "skus": [{"sku_id": "storage-tee", "options": {"size": "M"}, "price": 15000, "stock": 5}]});
    let created = shop.admin("POST", "/admin/products", Some(product)).await;
    let product_id = created["product_id"].as_str().unwrap().to_string();
    let email = "no.storage@example.com";
    shop.account(email, &["customer"]).await;
    let driver = driver().await;
    let profile = tempfile::tempdir().unwrap();
    let blocked = serde_json::json!({"profile.default_content_setting_values.cookies": 2});
    let page = browser_with(&driver, profile.path(), blocked).await;

    page.goto(&format!("{base}/#/search?q=storage"))
        .await
        .unwrap();
    let refused = "(() => { try { localStorage.length; return false; } catch { return true; } })()";
    until(&page, refused, "storage refused to the page").await;
    until(
        &page,
        "document.querySelector('main')?.textContent.includes('Storage Tee')",
        "search results",
    )
    .await;
    quiet(&page, "search without storage").await;

    // The log-in form says the session lasts as long as the page.
    page.goto(&format!("{base}/#/login")).await.unwrap();
    until(
        &page,
        "document.querySelector('#no-cookies')?.textContent.includes('only while this page is open')",
        "the log-in's note on cookies",
    )
    .await;
    log_in(&page, &base, email).await;
    page.goto(&format!("{base}/#/product/{product_id}"))
        .await
        .unwrap();
    let ready = "document.querySelector('#buy button[type=submit]') \
        && !document.querySelector('#buy button[type=submit]').disabled";
    until(&page, ready, "Add to cart").await;
    click(&page, "#buy button[type=submit]").await;
    let token = shop.token(email).await;
    let mut held = 0;
    for _ in 0..100 {
        let cart = shop.call(&token, "GET", "/cart", None).await;
        held = cart["items"][0]["quantity"].as_u64().unwrap_or(0);
        if held > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(held, 1, "Add to cart without storage");
    quiet(&page, "signed in without storage").await;
}
