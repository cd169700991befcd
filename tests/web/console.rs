//! The operator console: an admin logs in at `/ops`, creates a drop with the console's form,
//! and watches its remaining count fall (and purchases per second rise) while a script buys;
//! every console page renders without a console message; and on a two-node cluster an operator
//! drains a node from the console.

use crate::common::{self, cluster};
use crate::{
    PASSWORD, Shop, TURN, access_token, browser, click, driver, log_in, quiet, shoot, submit, until,
};
use serde_json::{Value, json};
use std::time::Duration;

/// Opens `/ops`, logs in with `fields` (an account's email and password, or a token) and waits
/// for the dashboard.
async fn log_in_to_console(page: &fantoccini::Client, base: &str, fields: &[(&str, &str)]) {
    page.goto(&format!("{base}/ops")).await.unwrap();
    until(
        page,
        "document.querySelector('#login-form')",
        "the console's login",
    )
    .await;
    submit(page, "login-form", fields).await;
    until(page, "document.querySelector('.stats')", "the dashboard").await;
}

#[tokio::test]
async fn an_operator_creates_a_drop_and_watches_it_sell() {
    let _turn = TURN.lock().await;
    let shop = Shop::start().await;
    let base = shop.base.clone();
    let product = json!({"name": "Drop Hoodie", "category": "tops",
        "skus": [{"sku_id": "hoodie-drop", "options": {"size": "L"}, "price": 79000, "stock": 50}]});
    shop.admin("POST", "/admin/products", Some(product)).await;
    shop.account("ops@example.com", &["admin", "operator"])
        .await;
    const BUYERS: usize = 6;
    for i in 0..BUYERS {
        shop.account(&format!("buyer{i}@example.com"), &["customer"])
            .await;
    }
    let driver = driver().await;
    let profile = tempfile::tempdir().unwrap();
    let page = browser(&driver, profile.path()).await;

    let staff = [("email", "ops@example.com"), ("password", PASSWORD)];
    log_in_to_console(&page, &base, &staff).await;
    quiet(&page, "dashboard").await;

    // The Drops section's form: ten units, live now.
    click(&page, ".sections a[href='#/drops']").await;
    until(
        &page,
        "document.querySelector('#drop-form')",
        "the drop form",
    )
    .await;
    let drop = [
        ("sku_id", "hoodie-drop"),
        ("quantity", "10"),
        ("price", "59000"),
    ];
    submit(&page, "drop-form", &drop).await;
    let remaining = "document.querySelector('#remaining')?.textContent";
    until(
        &page,
        &format!("{remaining} === '10'"),
        "the drop's watch page",
    )
    .await;
    let hash = page.execute("return location.hash", vec![]).await.unwrap();
    let drop_id = hash
        .as_str()
        .unwrap()
        .trim_start_matches("#/drop/")
        .to_string();

    // A script buys one unit per shopper, a little apart; the page is sampled meanwhile.
    let buyer = {
        let (client, base, drop_id) = (shop.client.clone(), base.clone(), drop_id.clone());
        tokio::spawn(async move {
            for i in 0..BUYERS {
                let token = access_token(&client, &base, &format!("buyer{i}@example.com")).await;
                let r = client
                    .post(format!("{base}/api/v1/drops/{drop_id}/purchase"))
                    .bearer_auth(token)
                    .header("idempotency-key", format!("buy-{i}"))
                    .json(&json!({"quantity": 1}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let mut seen: Vec<u64> = vec![];
    let mut fastest: f64 = 0.0;
    let sample = "return [document.querySelector('#remaining').textContent, \
        document.querySelector('#rate').textContent]";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = page.execute(sample, vec![]).await.unwrap();
        let left: u64 = now[0].as_str().unwrap().parse().unwrap();
        fastest = fastest.max(now[1].as_str().unwrap().parse::<f64>().unwrap());
        if seen.last() != Some(&left) {
            seen.push(left);
        }
        if left == 10 - BUYERS as u64 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    buyer.await.unwrap();
    assert_eq!(seen.last(), Some(&(10 - BUYERS as u64)), "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "only falls: {seen:?}");
    assert!(seen.len() >= 4, "watched it fall step by step: {seen:?}");
    assert!(
        fastest >= 1.0,
        "purchases per second showed the sales: {fastest}"
    );
    shoot(&page, "ops-drop").await;
    quiet(&page, "the drop's watch page").await;

    // A coupon campaign made with the console's form is listed there.
    page.goto(&format!("{base}/ops#/campaigns")).await.unwrap();
    until(
        &page,
        "document.querySelector('#campaign-form')",
        "the campaign form",
    )
    .await;
    let winter = [
        ("name", "Winter 5%"),
        ("code", "WINTER5"),
        ("value", "5"),
        ("total_quantity", "100"),
    ];
    submit(&page, "campaign-form", &winter).await;
    until(
        &page,
        "document.querySelector('main tbody').textContent.includes('WINTER5')",
        "the new campaign listed",
    )
    .await;
    quiet(&page, "campaigns").await;

    // The other sections render, and an order waiting for payment is listed by status.
    for (hash, check) in [
        ("#/", "document.querySelector('[data-drop]')"),
        ("#/products", "document.querySelector('.stock-form')"),
        ("#/drops", "document.querySelector('#drop-form')"),
        ("#/campaigns", "document.querySelector('#campaign-form')"),
        (
            "#/orders?status=awaiting_payment",
            "document.querySelectorAll('[data-order-status]').length === 6",
        ),
        ("#/outbox", "document.querySelector('.stats')"),
        (
            "#/inspect?kind=sku&id=hoodie-drop",
            "document.querySelector('#entity').textContent.includes('hoodie-drop')",
        ),
        ("#/cluster", "document.querySelector('main p')"),
    ] {
        page.goto(&format!("{base}/ops{hash}")).await.unwrap();
        let name = format!("ops {hash}");
        until(&page, check, &name).await;
        let file = match hash.trim_start_matches("#/").split(['?', '/']).next() {
            Some("") | None => "ops-dashboard".to_string(),
            Some(section) => format!("ops-{section}"),
        };
        shoot(&page, &file).await;
        quiet(&page, &name).await;
    }
    page.close().await.unwrap();
    shop.stop();
}

/// The console of a two-node cluster over a real Redis, signed in with the operator token:
/// both nodes up with their shards, then `Drain` on the second until it owns none.
#[tokio::test]
async fn an_operator_drains_a_node_from_the_console() {
    let _turn = TURN.lock().await;
    let redis = common::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = cluster::cluster_file(dir.path(), 16, &redis, &["n1", "n2"]);
    let mut nodes = cluster::start_nodes(&file, &["n1", "n2"], dir.path(), &[]).await;
    let base = nodes[0].base.clone();
    let driver = driver().await;
    let profile = tempfile::tempdir().unwrap();
    let page = browser(&driver, profile.path()).await;

    log_in_to_console(&page, &base, &[("token", cluster::TOKEN)]).await;
    click(&page, ".sections a[href='#/cluster']").await;
    let rows = "[...document.querySelectorAll('main tbody')[0]?.rows ?? []].map((r) => r.cells[0].textContent + ' ' + r.cells[1].textContent).join('|')";
    let both = until(
        &page,
        // In words: "Up", not the API's `up`.
        &format!("{rows}.match(/n1.* Up\\|n2.* Up/) && {rows}"),
        "both nodes up",
    )
    .await;
    let shards = page
        .execute(
            "return document.querySelectorAll('main tbody')[1].rows.length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(shards, 16, "{both}");
    shoot(&page, "ops-cluster").await;
    quiet(&page, "the cluster page").await;

    click(&page, "[data-drain=n2]").await;
    // The page reads the cluster again after the drain. n2 hands its shards over as it goes
    // down, and n1 takes each released lease on its next round, so a shard may show no owner
    // for a moment: read until every shard is on n1.
    let owners_now = "return [...(document.querySelectorAll('main tbody')[1]?.rows ?? [])].map((r) => r.cells[1].textContent)";
    let mut owners = Value::Null;
    for _ in 0..150 {
        page.execute("location.hash = `#/cluster?r=${Date.now()}`", vec![])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        owners = page.execute(owners_now, vec![]).await.unwrap();
        if owners
            .as_array()
            .is_some_and(|o| o.len() == 16 && o.iter().all(|o| o == "n1"))
        {
            break;
        }
    }
    assert!(
        owners
            .as_array()
            .is_some_and(|o| o.len() == 16 && o.iter().all(|o| o == "n1")),
        "every shard on n1 after the drain: {owners}"
    );
    quiet(&page, "the drain").await;
    page.close().await.unwrap();
    for node in &mut nodes {
        let _ = node.child.kill();
        let _ = node.child.wait();
    }
}

/// A shopper's session in the same browser (the refresh cookie is shared) does not open an
/// empty console of refusals: the console asks for a staff log-in and says why.
#[tokio::test]
async fn a_shoppers_session_opens_the_console_at_its_log_in() {
    let _turn = TURN.lock().await;
    let shop = Shop::start().await;
    let base = shop.base.clone();
    shop.account("browsing@example.com", &["customer"]).await;
    let driver = driver().await;
    let profile = tempfile::tempdir().unwrap();
    let page = browser(&driver, profile.path()).await;
    log_in(&page, &base, "browsing@example.com").await;
    page.goto(&format!("{base}/ops")).await.unwrap();
    until(
        &page,
        "document.querySelector('#login-form') \
         && document.querySelector('main').textContent.includes('as a shopper')",
        "the console's log-in, saying why",
    )
    .await;
    quiet(&page, "the console for a shopper").await;
    page.close().await.unwrap();
    shop.stop();
}

/// The console's sessions stay out of the shop's way: a shopper's password typed into the
/// console is refused and its session ended at once (the log-in had set the browser's cookie,
/// and the shop's tabs would have become that shopper at their next refresh), and a pasted
/// operator token is not replaced by the token a shop tab shares when it reloads.
#[tokio::test]
async fn the_console_keeps_its_sessions_apart_from_the_shops() {
    let _turn = TURN.lock().await;
    let shop = Shop::start().await;
    let base = shop.base.clone();
    for who in ["ara", "bo"] {
        shop.account(&format!("{who}@example.com"), &["customer"])
            .await;
    }
    let driver = driver().await;
    let profile = tempfile::tempdir().unwrap();
    let page = browser(&driver, profile.path()).await;
    log_in(&page, &base, "ara@example.com").await;

    // Bo's password in the console: refused, and Bo's session is over.
    page.goto(&format!("{base}/ops")).await.unwrap();
    until(
        &page,
        "document.querySelector('#login-form')",
        "the console's log-in",
    )
    .await;
    submit(
        &page,
        "login-form",
        &[("email", "bo@example.com"), ("password", PASSWORD)],
    )
    .await;
    until(
        &page,
        "document.querySelector('#login-form-error').textContent.includes('not an admin')",
        "the refusal",
    )
    .await;
    // (the account page, signed out, sends the shopper to the log-in: only once it has run)
    page.goto(&format!("{base}/#/account")).await.unwrap();
    until(
        &page,
        "location.hash === '#/login' && document.querySelector('#login-form') \
         && document.querySelector('#auth')?.textContent === 'Log in'",
        "the shop signed out, not Bo's",
    )
    .await;
    // (its page-start refresh, its cookie gone with Bo's session, is refused)
    crate::only_in_console(&page, "the shop signed out", "401").await;

    // Ara again, and the operator's token pasted into a console tab.
    log_in(&page, &base, "ara@example.com").await;
    let shop_tab = page.window().await.unwrap();
    page.execute(&format!("window.open('{base}/ops', 'console')"), vec![])
        .await
        .unwrap();
    let console_tab = page
        .windows()
        .await
        .unwrap()
        .into_iter()
        .find(|w| *w != shop_tab)
        .expect("the console's tab");
    page.switch_to_window(console_tab.clone()).await.unwrap();
    until(
        &page,
        "document.querySelector('#login-form')",
        "the console's log-in",
    )
    .await;
    submit(&page, "login-form", &[("token", crate::OPERATOR)]).await;
    until(
        &page,
        "!document.querySelector('#login-form') && document.querySelector('main h1')",
        "the dashboard",
    )
    .await;
    // The shop tab reloads: its refresh shares Ara's new token with every tab. (The console
    // tab counts what it hears, to check its token only after the shop's came.)
    page.execute(
        "window.heard = 0; \
         new BroadcastChannel('emporium-token').onmessage = (e) => { if (e.data) window.heard++; };",
        vec![],
    )
    .await
    .unwrap();
    page.switch_to_window(shop_tab.clone()).await.unwrap();
    page.execute("window.old = 1; location.reload()", vec![])
        .await
        .unwrap();
    until(
        &page,
        "!window.old && document.querySelector('#auth')?.textContent === 'Log out'",
        "the shop signed in again",
    )
    .await;
    page.switch_to_window(console_tab.clone()).await.unwrap();
    until(&page, "window.heard > 0", "the shop's token heard").await;
    let token = page
        .execute(
            "return (async () => (await import('/common/core.js')).session.token)()",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(token, crate::OPERATOR, "the console's pasted token");
    assert!(
        page.execute("return !document.querySelector('#login-form')", vec![])
            .await
            .unwrap()
            == true,
        "the console still open"
    );
    // The console logs its pasted token out: the shop stays signed in.
    page.execute("location.hash = '#/logout'", vec![])
        .await
        .unwrap();
    until(
        &page,
        "document.querySelector('#login-form')",
        "the console's log-in",
    )
    .await;
    page.switch_to_window(shop_tab).await.unwrap();
    page.execute("window.old = 1; location.reload()", vec![])
        .await
        .unwrap();
    until(
        &page,
        "!window.old && document.querySelector('#auth')?.textContent === 'Log out'",
        "the shop still signed in",
    )
    .await;
    quiet(&page, "the shop beside the console").await;
    page.close().await.unwrap();
    shop.stop();
}
