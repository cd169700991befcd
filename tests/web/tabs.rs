//! One shopper, two tabs: the refresh token rotates and a spent one revokes the whole session,
//! so tabs take turns to refresh (Web Locks) and share the new access token. Two tabs loaded by
//! one script, five times, both stay signed in; logging out in one logs out the other. (The
//! test cannot force two refreshes to overlap on the wire: it passes without the lock too, and
//! guards the rest of the path.) A tab reloaded again and again on a slow network stays signed
//! in. (The page's refresh outlives it, `keepalive`, so a reload cannot cancel one whose
//! cookie the server has rotated; chromedriver's emulated latency did not make that race
//! happen without it either, so this too is a guard, not a reproduction.)

use crate::{Latency, PASSWORD, Shop, TURN, browser, click, driver, log_in, quiet, until};
use fantoccini::Client;

async fn signed_in(page: &Client) -> bool {
    let state = page
        .execute("return document.querySelector('#auth').textContent", vec![])
        .await
        .unwrap();
    state == "Log out"
}

#[tokio::test]
async fn tabs_loading_together_stay_signed_in_and_log_out_together() {
    let _turn = TURN.lock().await;
    let shop = Shop::start().await;
    let base = shop.base.clone();
    shop.account("tabs@example.com", &["customer"]).await;
    let driver = driver().await;
    let profile = tempfile::tempdir().unwrap();
    let page = browser(&driver, profile.path()).await;
    log_in(&page, &base, "tabs@example.com").await;
    let first = page.window().await.unwrap();
    // The second tab is the first one's `window.open`, so one script can load both at once.
    page.execute(
        &format!("window.open('{base}/#/account', 'second')"),
        vec![],
    )
    .await
    .unwrap();
    let second = page
        .windows()
        .await
        .unwrap()
        .into_iter()
        .find(|w| *w != first)
        .expect("the second tab");

    // Five rounds of both tabs loading in the same instant (a new query string, so a real
    // load): each load refreshes through the cookie.
    for round in 0..5 {
        page.switch_to_window(first.clone()).await.unwrap();
        let both = format!(
            "const url = '{base}/?round={round}#/account'; \
             window.open(url, 'second'); location.replace(url);"
        );
        page.execute(&both, vec![]).await.unwrap();
        for tab in [&first, &second] {
            page.switch_to_window(tab.clone()).await.unwrap();
            until(
                &page,
                &format!("location.search === '?round={round}' && document.querySelector('#profile-form')"),
                "the account page, signed in",
            )
            .await;
            assert!(signed_in(&page).await, "round {round}");
        }
    }
    quiet(&page, "the tabs").await;

    // Reloads on a slow network, each as soon as the last has loaded: every load refreshes
    // through the cookie, and a spent one would revoke the session.
    page.switch_to_window(first.clone()).await.unwrap();
    page.issue_cmd(Latency(300)).await.unwrap();
    for _ in 0..4 {
        page.execute("location.reload()", vec![]).await.unwrap();
    }
    page.issue_cmd(Latency(0)).await.unwrap();
    until(
        &page,
        "document.querySelector('#profile-form')",
        "the account page after the reloads",
    )
    .await;
    assert!(
        signed_in(&page).await,
        "signed in after reloads mid-refresh"
    );

    // Log out in the second tab: the first follows without a reload.
    page.switch_to_window(second.clone()).await.unwrap();
    page.execute("location.hash = '#/logout'", vec![])
        .await
        .unwrap();
    until(
        &page,
        "document.querySelector('#auth').textContent === 'Log in'",
        "logged out",
    )
    .await;
    page.switch_to_window(first.clone()).await.unwrap();
    until(
        &page,
        "document.querySelector('#auth').textContent === 'Log in'",
        "the other tab logged out too",
    )
    .await;
    page.close().await.unwrap();
    shop.stop();
}

/// A tab that missed another account's log-in (its broadcast never came: the tab was asleep)
/// acts for no one but the account it shows. Its next request finds its token revoked and the
/// refresh brings the other account's token: the page is painted again for that account, and
/// the action (Add to cart) is not replayed as it.
#[tokio::test]
async fn a_tab_that_missed_a_log_in_does_not_act_as_the_new_account() {
    let _turn = TURN.lock().await;
    let shop = Shop::start().await;
    let base = shop.base.clone();
    let product = serde_json::json!({"name": "Socks", "category": "misc",
        "skus": [{"sku_id": "socks", "options": {"size": "M"}, "price": 5000, "stock": 10}]});
    let created = shop.admin("POST", "/admin/products", Some(product)).await;
    let product_id = created["product_id"].as_str().unwrap().to_string();
    for who in ["ara", "bo"] {
        shop.account(&format!("{who}@example.com"), &["customer"])
            .await;
    }
    let driver = driver().await;
    let profile = tempfile::tempdir().unwrap();
    let page = browser(&driver, profile.path()).await;
    log_in(&page, &base, "ara@example.com").await;
    page.goto(&format!("{base}/#/product/{product_id}"))
        .await
        .unwrap();
    until(&page, "document.querySelector('#buy')", "the product").await;

    // Behind the page's back (plain fetches, not the page's module, so no tab hears of it):
    // Ara's session ends and Bo logs in, so the cookie is Bo's.
    let behind = format!(
        "return (async () => {{
           const m = await import('/common/core.js');
           await fetch('/api/v1/auth/logout', {{ method: 'POST',
             headers: {{ authorization: `Bearer ${{m.session.token}}` }} }});
           const r = await fetch('/api/v1/auth/login', {{ method: 'POST',
             headers: {{ 'content-type': 'application/json' }},
             body: JSON.stringify({{ email: 'bo@example.com', password: '{PASSWORD}' }}) }});
           return r.status;
         }})()"
    );
    assert_eq!(page.execute(&behind, vec![]).await.unwrap(), 200);
    click(&page, "#buy button[type=submit]").await;
    until(
        &page,
        "document.querySelector('#toast').textContent.includes('Another account was signed in')",
        "the page saying why nothing was done",
    )
    .await;

    // Bo's cart is empty: the press was Ara's, and Ara's session had ended.
    let bo = shop.token("bo@example.com").await;
    let r = shop
        .client
        .get(format!("{base}/api/v1/cart"))
        .bearer_auth(bo)
        .send()
        .await
        .unwrap();
    let cart = r.json::<serde_json::Value>().await.unwrap();
    assert_eq!(cart["items"], serde_json::json!([]), "{cart}");
    page.close().await.unwrap();
    shop.stop();
}
