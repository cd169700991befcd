//! One shopper, two tabs: the refresh token rotates and a spent one revokes the whole session,
//! so tabs take turns to refresh (Web Locks) and share the new access token. Two tabs loaded by
//! one script, five times, both stay signed in; logging out in one logs out the other. (The
//! test cannot force two refreshes to overlap on the wire: it passes without the lock too, and
//! guards the rest of the path.) A page reloaded while the last page's refresh is still on the
//! wire, behind a proxy that holds the server's answers to refreshes ([`crate::proxy`]), waits
//! for its answer instead of sending the spent cookie, and stays signed in. A tab that missed
//! another account's log-in acts for no one but the account it showed. A log-out the server
//! does not answer (the proxy holds it) says so and can be pressed again.

use crate::proxy::{LOGOUT, REFRESH, SlowAnswers};
use crate::{
    PASSWORD, Shop, TURN, browser, click, driver, fill, log_in, only_in_console, quiet, until,
};
use fantoccini::Client;
use std::sync::atomic::Ordering;
use std::time::Duration;

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
    // Told by the other tab, not by a refused request of its own (which the console shows).
    quiet(&page, "the tab told of the log-out").await;
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
    let product_id = socks_for_ara_and_bo(&shop).await;
    let driver = driver().await;
    let profile = tempfile::tempdir().unwrap();
    let page = browser(&driver, profile.path()).await;
    log_in(&page, &base, "ara@example.com").await;
    page.goto(&format!("{base}/#/product/{product_id}"))
        .await
        .unwrap();
    until(&page, "document.querySelector('#buy')", "the product").await;

    // Behind the page's back, Ara's session ends and Bo logs in, so the cookie is Bo's.
    log_in_behind(&page, "bo@example.com").await;
    click(&page, "#buy button[type=submit]").await;
    until(
        &page,
        "document.querySelector('#toast').textContent.includes('Another account was signed in')",
        "the page saying why nothing was done",
    )
    .await;

    // Bo's cart is empty: the press was Ara's, and Ara's session had ended.
    let bo = shop.token("bo@example.com").await;
    let cart = shop.call(&bo, "GET", "/cart", None).await;
    assert_eq!(cart["items"], serde_json::json!([]), "{cart}");
    // The page is Bo's now, and wrote nothing but the refused press (its 401).
    until(
        &page,
        "document.querySelector('#buy')",
        "the product, again",
    )
    .await;
    assert!(signed_in(&page).await);
    only_in_console(&page, "the missed log-in", "401").await;
    page.close().await.unwrap();
    shop.stop();
}

/// The same at checkout: the press is refused, no order is made for either account, and the
/// page is painted again for Bo (whose cart is empty: the cart page) with nothing thrown. (The
/// product page above threw when its handler wrote into the page drawn again; the checkout's
/// handler answers first here, so this one is a guard.)
#[tokio::test]
async fn a_checkout_stopped_by_another_accounts_log_in_leaves_no_error() {
    let _turn = TURN.lock().await;
    let shop = Shop::start().await;
    let base = shop.base.clone();
    socks_for_ara_and_bo(&shop).await;
    let ara = shop.token("ara@example.com").await;
    let line = Some(serde_json::json!({"quantity": 1}));
    shop.call(&ara, "PUT", "/cart/items/socks", line).await;
    let driver = driver().await;
    let profile = tempfile::tempdir().unwrap();
    let page = browser(&driver, profile.path()).await;
    log_in(&page, &base, "ara@example.com").await;
    page.goto(&format!("{base}/#/checkout")).await.unwrap();
    until(
        &page,
        "document.querySelector('#checkout-form')",
        "checkout",
    )
    .await;
    fill(&page, "checkout-form", "phone", "010-2222-3333").await;
    fill(&page, "checkout-form", "address", "서울시 마포구 1").await;
    quiet(&page, "checkout").await;

    log_in_behind(&page, "bo@example.com").await;
    click(&page, "#checkout-form button[type=submit]").await;
    until(
        &page,
        "document.querySelector('#toast').textContent.includes('Another account was signed in') \
         && location.hash === '#/cart'",
        "Bo's cart, and why nothing was done",
    )
    .await;
    assert!(signed_in(&page).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    only_in_console(&page, "the stopped checkout", "401").await;

    // No order for Bo, none for Ara.
    for who in ["ara", "bo"] {
        let token = shop.token(&format!("{who}@example.com")).await;
        let orders = shop.call(&token, "GET", "/orders", None).await;
        assert_eq!(orders["items"], serde_json::json!([]), "{who}: {orders}");
    }
    page.close().await.unwrap();
    shop.stop();
}

/// A product of one SKU (`socks`, ten in stock) and two shoppers, `ara@` and `bo@example.com`;
/// the product's id.
async fn socks_for_ara_and_bo(shop: &Shop) -> String {
    let product = serde_json::json!({"name": "Socks", "category": "misc",
        "skus": [{"sku_id": "socks", "options": {"size": "M"}, "price": 5000, "stock": 10}]});
    let created = shop.admin("POST", "/admin/products", Some(product)).await;
    for who in ["ara", "bo"] {
        shop.account(&format!("{who}@example.com"), &["customer"])
            .await;
    }
    created["product_id"].as_str().unwrap().to_string()
}

/// Ends the page's session and logs `email` in with plain fetches beside the page's module, so
/// no tab hears of it (as if the log-in came from a tab that was asleep): the shared cookie is
/// `email`'s.
async fn log_in_behind(page: &Client, email: &str) {
    log_in_beside(page, email, true).await;
}

/// Logs `email` in with a plain fetch beside the page's module (first ending the page's
/// session when `end` is set), so no tab hears of it: the shared cookie is `email`'s.
async fn log_in_beside(page: &Client, email: &str, end: bool) {
    let behind = format!(
        "return (async () => {{
           const m = await import('/common/core.js');
           if ({end}) await fetch('/api/v1/auth/logout', {{ method: 'POST',
             headers: {{ authorization: `Bearer ${{m.session.token}}` }} }});
           const r = await fetch('/api/v1/auth/login', {{ method: 'POST',
             headers: {{ 'content-type': 'application/json' }},
             body: JSON.stringify({{ email: '{email}', password: '{PASSWORD}' }}) }});
           return r.status;
         }})()"
    );
    assert_eq!(page.execute(&behind, vec![]).await.unwrap(), 200);
}

/// A tab still showing Ara logs out after Bo logged in from a tab it did not hear: Ara's
/// session ends, Bo's (the browser's cookie) does not, and the tab then shows Bo. (On the old
/// page, and server, the log-out cleared Bo's cookie and signed every tab out.)
#[tokio::test]
async fn a_log_out_in_a_tab_that_missed_a_log_in_ends_only_its_own_session() {
    let _turn = TURN.lock().await;
    let shop = Shop::start().await;
    let base = shop.base.clone();
    socks_for_ara_and_bo(&shop).await;
    let driver = driver().await;
    let profile = tempfile::tempdir().unwrap();
    let page = browser(&driver, profile.path()).await;
    log_in(&page, &base, "ara@example.com").await;
    let ara = page
        .execute(
            "return (async () => (await import('/common/core.js')).session.token)()",
            vec![],
        )
        .await
        .unwrap();
    log_in_beside(&page, "bo@example.com", false).await;
    page.execute("location.hash = '#/logout'", vec![])
        .await
        .unwrap();
    until(
        &page,
        "location.hash === '#/' && document.querySelector('#auth').textContent === 'Log out'",
        "home, signed in as the browser's session",
    )
    .await;
    let user = page
        .execute(
            "return (async () => (await import('/common/core.js')).session.token)()",
            vec![],
        )
        .await
        .unwrap();
    let bo = shop.token("bo@example.com").await;
    let claims = |jwt: &str| -> serde_json::Value {
        use base64::Engine;
        let part = jwt.split('.').nth(1).unwrap();
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice(&raw).unwrap()
    };
    assert_eq!(
        claims(user.as_str().unwrap())["sub"],
        claims(&bo)["sub"],
        "the tab shows Bo"
    );
    let r = shop
        .client
        .get(format!("{base}/api/v1/users/me"))
        .bearer_auth(ara.as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "Ara's session is over");
    page.close().await.unwrap();
    shop.stop();
}

/// A second reload while the first reload's refresh is still on the wire (the server has
/// rotated the cookie; its answer, held here for seven seconds, has not landed): the new page
/// waits until the refresh tag changes, instead of sending the spent cookie (`refresh_reused`
/// would end the session), and stays signed in. (Seven, so that a wait of a fixed few seconds
/// would not do; and the page must be signed in well before the note's 15 s limit, so a
/// tag that never changed would fail too.)
#[tokio::test]
async fn a_page_loaded_while_the_last_ones_refresh_is_on_the_wire_stays_signed_in() {
    let _turn = TURN.lock().await;
    let shop = Shop::start().await;
    shop.account("reload@example.com", &["customer"]).await;
    let slow = SlowAnswers::start(&shop.base, REFRESH, Duration::from_secs(7)).await;
    let base = slow.base.clone();
    let driver = driver().await;
    let profile = tempfile::tempdir().unwrap();
    let page = browser(&driver, profile.path()).await;
    log_in(&page, &base, "reload@example.com").await;
    page.goto(&format!("{base}/#/account")).await.unwrap();
    until(
        &page,
        "document.querySelector('#profile-form')",
        "the account page",
    )
    .await;

    let before = slow.seen.load(Ordering::SeqCst);
    page.execute("location.reload()", vec![]).await.unwrap();
    // The reloaded page's refresh has reached the server (which rotates the cookie as it
    // reads it); its answer is held.
    for _ in 0..200 {
        if slow.seen.load(Ordering::SeqCst) > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        slow.seen.load(Ordering::SeqCst) > before,
        "no refresh after the reload"
    );
    let sent = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    page.execute("location.reload()", vec![]).await.unwrap();
    // (the second page's own refresh, once it goes, is answered at once)
    slow.holding.store(false, Ordering::SeqCst);
    until(
        &page,
        "document.querySelector('#profile-form')",
        "the account page after the second reload, signed in",
    )
    .await;
    assert!(signed_in(&page).await, "signed in after the second reload");
    // Signed in once the held answer's tag landed (7 s), not at the note's 15 s limit.
    let waited = sent.elapsed();
    assert!(
        waited < Duration::from_secs(12),
        "signed in after {waited:?}"
    );
    page.close().await.unwrap();
    shop.stop();
}

/// A log-out whose answer never comes (held here for 15 s) says so after 10 s instead of
/// hanging; the page then logs out for good — pressed again once the server answers (the
/// session the first request ended is refused with 401, which ends it here too), or told by
/// its socket — and a reload stays signed out.
#[tokio::test]
async fn a_log_out_without_an_answer_says_so_and_a_second_press_logs_out() {
    let _turn = TURN.lock().await;
    let shop = Shop::start().await;
    shop.account("stuck@example.com", &["customer"]).await;
    let slow = SlowAnswers::start(&shop.base, LOGOUT, Duration::from_secs(15)).await;
    let base = slow.base.clone();
    let driver = driver().await;
    let profile = tempfile::tempdir().unwrap();
    let page = browser(&driver, profile.path()).await;
    log_in(&page, &base, "stuck@example.com").await;

    // What the page says is kept as it is said: a line may give way to the next at once (the
    // server did end the session, and the page may learn so from its socket).
    let record = "window.said = []; new MutationObserver(() => \
        window.said.push(document.querySelector('#toast').textContent)) \
        .observe(document.querySelector('#toast'), { childList: true, subtree: true });";
    page.execute(record, vec![]).await.unwrap();
    let pressed = std::time::Instant::now();
    click(&page, "#auth").await;
    let failed = "window.said.some((t) => t.includes(\"Couldn't log out\"))";
    until(&page, failed, "the log-out's failure said").await;
    let waited = pressed.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(14),
        "said after {waited:?}"
    );
    assert_eq!(slow.seen.load(Ordering::SeqCst), 1, "one log-out sent");

    // The server did end the session (only its answer was held): the page may learn so from
    // its socket, which the server closes, and show itself signed out; else a second press
    // logs out.
    slow.holding.store(false, Ordering::SeqCst);
    if signed_in(&page).await {
        click(&page, "#auth").await;
    }
    let out = "document.querySelector('#auth').textContent === 'Log in'";
    until(&page, out, "logged out by the second press").await;
    page.refresh().await.unwrap();
    until(
        &page,
        "document.querySelector('#auth')",
        "the page reloaded",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!signed_in(&page).await, "signed out after a reload");
    page.close().await.unwrap();
    shop.stop();
}
