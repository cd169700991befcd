//! One shopper, two tabs: the refresh token rotates and a spent one revokes the whole session,
//! so tabs take turns to refresh (Web Locks) and share the new access token. Two tabs loaded by
//! one script, five times, both stay signed in; logging out in one logs out the other. (The
//! test cannot force two refreshes to overlap on the wire: it passes without the lock too, and
//! guards the rest of the path.) A tab reloaded again and again on a slow network stays signed
//! in. (The page's refresh outlives it, `keepalive`, so a reload cannot cancel one whose
//! cookie the server has rotated; chromedriver's emulated latency did not make that race
//! happen without it either, so this too is a guard, not a reproduction.)

use crate::{Latency, Shop, TURN, browser, driver, log_in, quiet, until};
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
