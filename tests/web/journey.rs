//! A shopper's whole journey in the storefront: sign-up with the mailed code, a product's
//! options, the cart, checkout through the sandbox gateway's page (Back and a reload there find
//! the same order, one cancelled meanwhile gives way to a new one) and back to a paid order,
//! whose status then changes on screen as an admin ships it; the checkout done again from
//! the keyboard alone, where a coupon code claimed again puts the wallet's coupon on the cart;
//! and a coupon for the whole total, paid without the gateway. No page writes to the console on
//! the way, but for that claim's expected refusal (its 409).

use crate::{
    PASSWORD, Shop, TURN, browser, click, driver, fill, only_in_console, quiet, shoot, until,
};
use fantoccini::Client;
use serde_json::{Value, json};

const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";

async fn go(page: &Client, base: &str, hash: &str) {
    page.goto(&format!("{base}/{hash}")).await.unwrap();
}

/// On the gateway's page, the order id it is for.
const GATEWAY_ORDER: &str = "document.title === 'Sandbox checkout' \
    && new URL(location.href).searchParams.get('order_id')";

/// From the gateway's page: Back to checkout (then a reload, if `reload`), the address typed
/// again and Pay; the order id on the gateway's page then.
async fn pay_again(page: &Client, reload: bool) -> Value {
    page.back().await.unwrap();
    let ready = "document.querySelector('#checkout-form button[type=submit]')?.disabled === false";
    until(page, ready, "checkout again, Pay on").await;
    // Without a reload, the page is the one left for the gateway (the back-forward cache),
    // marked before Pay.
    if !reload {
        let kept = page
            .execute("return window.left === 1", vec![])
            .await
            .unwrap();
        assert_eq!(kept, true, "the page kept in the back-forward cache");
    } else {
        page.refresh().await.unwrap();
        until(page, ready, "checkout reloaded").await;
    }
    fill(page, "checkout-form", "phone", "010-2222-3333").await;
    fill(page, "checkout-form", "address", "서울시 마포구 1").await;
    page.execute("window.left = 1", vec![]).await.unwrap();
    click(page, "#checkout-form button[type=submit]").await;
    until(page, GATEWAY_ORDER, "the gateway's page again").await
}

/// From the gateway's page: Back to checkout, Pay, and the navigation to the gateway stopped
/// before it leaves (as by Esc); Pay is on again on the same page, and a second press gets to
/// the gateway's page: the order id there.
async fn pay_stopped(page: &Client) -> Value {
    page.back().await.unwrap();
    let pay = "document.querySelector('#checkout-form button[type=submit]')";
    until(
        page,
        &format!("{pay}?.disabled === false"),
        "checkout again",
    )
    .await;
    fill(page, "checkout-form", "phone", "010-2222-3333").await;
    fill(page, "checkout-form", "address", "서울시 마포구 1").await;
    let stop = "window.left = 2; window.stopNext = true; \
        navigation.addEventListener('navigate', (e) => { \
          if (window.stopNext && e.destination.url.split('#')[0] !== location.href.split('#')[0]) { \
            window.stopNext = false; e.preventDefault(); } })";
    page.execute(stop, vec![]).await.unwrap();
    click(page, "#checkout-form button[type=submit]").await;
    until(page, "window.stopNext === false", "the navigation stopped").await;
    let on = format!("window.left === 2 && {pay}.disabled === false");
    until(page, &on, "Pay on again on the page that stayed").await;
    click(page, "#checkout-form button[type=submit]").await;
    until(page, GATEWAY_ORDER, "the gateway's page after the stop").await
}

/// A product with color and size SKUs; its id.
async fn shirt(shop: &Shop) -> String {
    let skus = json!([
        {"sku_id": "linen-white-M", "options": {"color": "white", "size": "M"}, "price": 39000, "stock": 5},
        {"sku_id": "linen-white-L", "options": {"color": "white", "size": "L"}, "price": 39000, "stock": 5},
        {"sku_id": "linen-navy-M", "options": {"color": "navy", "size": "M"}, "price": 41000, "stock": 5},
    ]);
    let body = json!({"name": "린넨 셔츠 Linen Shirt", "category": "tops", "description": "Cool linen.",
        "skus": skus});
    let p = shop.admin("POST", "/admin/products", Some(body)).await;
    p["product_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_shopper_signs_up_pays_and_watches_the_order_ship() {
    let _turn = TURN.lock().await;
    let shop = Shop::start().await;
    let base = shop.base.clone();
    let product = shirt(&shop).await;
    let driver = driver().await;
    let profile = tempfile::tempdir().unwrap();
    let page = browser(&driver, profile.path()).await;

    // Sign up, then the code from the dev mailbox the page links to.
    let email = "new.shopper@example.com";
    go(&page, &base, "#/signup").await;
    until(
        &page,
        "document.querySelector('#signup-form')",
        "the sign-up form",
    )
    .await;
    fill(&page, "signup-form", "email", email).await;
    fill(&page, "signup-form", "password", PASSWORD).await;
    fill(&page, "signup-form", "name", "Lee Bora").await;
    click(&page, "#signup-form button[type=submit]").await;
    let link = until(
        &page,
        "document.querySelector('a[href^=\"/api/v1/dev/mailbox\"]')?.getAttribute('href')",
        "the dev mailbox link",
    )
    .await;
    quiet(&page, "sign-up").await;
    let mails: Value = shop
        .client
        .get(format!("{base}{}", link.as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let body = mails["items"][0]["body"].as_str().unwrap();
    let code: String = body
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("a 6-digit code in the mail")
        .into();
    shoot(&page, "verify").await;
    fill(&page, "verify-form", "code", &code).await;
    click(&page, "#verify-form button[type=submit]").await;
    until(
        &page,
        "location.hash.startsWith('#/login')",
        "the login page",
    )
    .await;
    quiet(&page, "verify").await;
    fill(&page, "login-form", "password", PASSWORD).await;
    click(&page, "#login-form button[type=submit]").await;
    until(
        &page,
        "document.querySelector('#auth').textContent === 'Log out'",
        "logged in",
    )
    .await;

    // The product: navy is one SKU; Add to cart.
    go(&page, &base, &format!("#/product/{product}")).await;
    until(&page, "document.querySelector('#buy')", "the product").await;
    click(&page, "input[name=color][value=navy]").await;
    until(
        &page,
        "document.querySelector('#price').textContent.includes('41,000')",
        "navy's price",
    )
    .await;
    click(&page, "#buy button[type=submit]").await;
    until(
        &page,
        "document.querySelector('#cart-count').textContent === '1'",
        "one in the cart",
    )
    .await;
    quiet(&page, "product").await;

    // The cart, then checkout with the address typed in (the profile has none).
    click(&page, "a[href='#/cart']").await;
    until(&page, "document.querySelector('#checkout')", "the cart").await;
    // The line says which SKU in the product's words, not its code.
    let chosen = "document.querySelector('.lines .muted').textContent.startsWith('navy / M ·')";
    until(&page, chosen, "the line's options").await;
    // Stock that runs out under a line shows on the cart, before checkout would refuse it.
    let stock = "/admin/skus/linen-navy-M/stock";
    shop.admin("PUT", stock, Some(json!({"available": 0})))
        .await;
    page.refresh().await.unwrap();
    let short = "document.querySelector('.lines .short')?.textContent \
        === 'Out of stock: remove it to order the rest.' \
        && document.querySelector('.lines input').getAttribute('aria-invalid') === 'true'";
    until(&page, short, "the line out of stock").await;
    shop.admin("PUT", stock, Some(json!({"available": 5})))
        .await;
    page.refresh().await.unwrap();
    let back = "document.querySelector('#checkout') && !document.querySelector('.lines .short')";
    until(&page, back, "the line in stock again").await;
    shoot(&page, "cart").await;
    quiet(&page, "cart").await;
    click(&page, "#checkout").await;
    until(
        &page,
        "document.querySelector('#checkout-form')",
        "checkout",
    )
    .await;
    let prefilled = page
        .execute(
            "return document.querySelector('#checkout-form [name=name]').value",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(prefilled, "Lee Bora", "the name comes from the profile");
    fill(&page, "checkout-form", "phone", "010-2222-3333").await;
    fill(&page, "checkout-form", "address", "서울시 마포구 1").await;
    shoot(&page, "checkout").await;
    quiet(&page, "checkout").await;
    page.execute("window.left = 1", vec![]).await.unwrap();
    click(&page, "#checkout-form button[type=submit]").await;

    // The gateway's page; Back (and a reload), and Pay again with the same address: the same
    // order is on the gateway's page, not a second one holding the same stock. Once that order is
    // cancelled, Pay makes a new one.
    let first = until(&page, GATEWAY_ORDER, "the gateway's page").await;
    let again = pay_again(&page, false).await;
    assert_eq!(again, first, "Pay after Back finds the order it made");
    let again = pay_again(&page, true).await;
    assert_eq!(again, first, "Pay after a reload finds the order it made");
    let again = pay_stopped(&page).await;
    assert_eq!(
        again, first,
        "Pay after a stopped navigation finds the order it made"
    );
    let token = shop.token(email).await;
    let first = first.as_str().unwrap();
    let cancel = format!("/orders/{first}/cancel");
    shop.call(&token, "POST", &cancel, None).await;
    let last = pay_again(&page, true).await;
    assert_ne!(last, first, "an order cancelled meanwhile is not paid for");
    let orders = shop.call(&token, "GET", "/orders", None).await;
    assert_eq!(orders["items"].as_array().unwrap().len(), 2, "{orders}");

    // Pay, and back to a paid order.
    click(&page, "button[type=submit]").await;
    until(
        &page,
        "location.hash.startsWith('#/order/')",
        "the order page",
    )
    .await;
    until(
        &page,
        "document.querySelector('#order-status')?.textContent === 'Paid'",
        "paid",
    )
    .await;
    quiet(&page, "paid order").await;
    let hash = page.execute("return location.hash", vec![]).await.unwrap();
    let order_id = hash
        .as_str()
        .unwrap()
        .trim_start_matches("#/order/")
        .to_string();

    // Back to the gateway's page, and Pay again: the order is paid already, nothing more is
    // charged, and the page says so instead of "the payment didn't go through".
    page.back().await.unwrap();
    until(
        &page,
        "document.title === 'Sandbox checkout'",
        "the gateway's page again",
    )
    .await;
    click(&page, "button[type=submit]").await;
    until(
        &page,
        &format!(
            "location.hash === '#/order/{order_id}' \
             && document.querySelector('#toast').textContent.includes('paid already')"
        ),
        "the order page, saying it was paid already",
    )
    .await;
    until(
        &page,
        "document.querySelector('#order-status')?.textContent === 'Paid'",
        "still paid",
    )
    .await;
    only_in_console(
        &page,
        "paying again",
        "payments/confirm - Failed to load resource: the server responded with a status of 409",
    )
    .await;

    // An admin ships it: the page follows on the `order:` topic, without reloading.
    page.execute("window.stayed = true", vec![]).await.unwrap();
    let shipped = shop
        .admin("POST", &format!("/admin/orders/{order_id}/ship"), None)
        .await;
    let tracking = shipped["shipment"]["tracking_number"].as_str().unwrap();
    until(
        &page,
        "['Preparing', 'Shipped', 'Delivered'].includes(document.querySelector('#order-status').textContent)",
        "the status to leave Paid",
    )
    .await;
    until(
        &page,
        "document.querySelector('#order-status').textContent === 'Delivered'",
        "delivered",
    )
    .await;
    let seen = page
        .execute(
            "return [window.stayed, document.querySelector('#order-body').textContent]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(seen[0], true, "the page was not reloaded");
    assert!(seen[1].as_str().unwrap().contains(tracking), "{seen}");
    shoot(&page, "order").await;
    quiet(&page, "shipped order").await;

    // The support chat of the order.
    click(&page, "#open-chat").await;
    until(&page, "document.querySelector('#chat-form')", "the chat").await;
    fill(&page, "chat-form", "text", "When does it arrive?").await;
    click(&page, "#chat-form button[type=submit]").await;
    until(
        &page,
        "document.querySelector('#messages').textContent.includes('When does it arrive?')",
        "the message",
    )
    .await;
    quiet(&page, "chat").await;

    // A return after delivery: the form, then the status follows on its own.
    fill(&page, "return-form", "reason", "Too small").await;
    click(&page, "#return-form button[type=submit]").await;
    until(
        &page,
        "['Return requested', 'Returned', 'Refunded'].includes(document.querySelector('#order-status').textContent)",
        "the return",
    )
    .await;
    quiet(&page, "return").await;

    // The bell heard the notifications; the pages behind it render. A notification is worded
    // by the page (not the server's "(order o…)" text), says which order by its title and
    // leads to it.
    let notified = format!(
        "[...document.querySelectorAll('.lines a[href=\"#/order/{order_id}\"]')]\
         .some(a => a.textContent === 'Your order is paid. (린넨 셔츠 Linen Shirt)')"
    );
    for (hash, name, check) in [
        ("#/notifications", "notifications", notified.as_str()),
        (
            "#/orders",
            "orders",
            "document.querySelector('.lines a[href^=\"#/order/\"]')",
        ),
        (
            "#/account",
            "account",
            "document.querySelector('#profile-form')",
        ),
    ] {
        go(&page, &base, hash).await;
        until(&page, check, name).await;
        shoot(&page, name).await;
        quiet(&page, name).await;
    }
    page.close().await.unwrap();
    shop.stop();
}

/// Tab to `label`'s control (a button's text, or an input's name), at most 40 presses.
async fn tab_to(page: &Client, wanted: &str) {
    let active = "const a = document.activeElement; return a.textContent.trim() || a.name || ''";
    for _ in 0..40 {
        page.active_element()
            .await
            .unwrap()
            .send_keys(TAB)
            .await
            .unwrap();
        let now = page.execute(active, vec![]).await.unwrap();
        if now.as_str().is_some_and(|t| t.starts_with(wanted)) {
            return;
        }
    }
    panic!("Tab never reached {wanted}");
}

async fn keys(page: &Client, text: &str) {
    page.active_element()
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_checkout_works_from_the_keyboard_alone() {
    let _turn = TURN.lock().await;
    let shop = Shop::start().await;
    let base = shop.base.clone();
    shirt(&shop).await;
    shop.account("keys@example.com", &["customer"]).await;
    // A coupon in the shopper's wallet, which the cart offers with what it takes off.
    let campaign = json!({"name": "Welcome", "code": "WELCOME10", "kind": "percent", "value": 10,
        "max_discount": 5000, "scope": {"type": "order"}, "per_user_limit": 1});
    shop.admin("POST", "/admin/coupon-campaigns", Some(campaign))
        .await;
    let token = shop.token("keys@example.com").await;
    let url = format!("{base}/api/v1/coupons/claim");
    let claim = json!({"code": "WELCOME10"});
    let r = shop.client.post(url).bearer_auth(token).json(&claim);
    assert_eq!(r.send().await.unwrap().status(), 201);
    let driver = driver().await;
    let profile = tempfile::tempdir().unwrap();
    let page = browser(&driver, profile.path()).await;

    // Log in: the page focuses its content; Tab to each field.
    go(&page, &base, "#/login").await;
    until(
        &page,
        "document.querySelector('#login-form')",
        "the login form",
    )
    .await;
    tab_to(&page, "email").await;
    keys(&page, "keys@example.com").await;
    tab_to(&page, "password").await;
    keys(&page, &format!("{PASSWORD}{ENTER}")).await;
    until(
        &page,
        "document.querySelector('#auth').textContent === 'Log out'",
        "logged in",
    )
    .await;

    // A line in the cart, from the keyboard: choose white L with the arrow keys, Add to cart.
    let product = until(
        &page,
        "document.querySelector('.card')?.getAttribute('href')",
        "the products",
    )
    .await;
    go(&page, &base, product.as_str().unwrap()).await;
    until(&page, "document.querySelector('#buy')", "the product").await;
    tab_to(&page, "color").await;
    tab_to(&page, "size").await;
    keys(&page, "\u{E015}").await; // ArrowDown: M -> L
    until(
        &page,
        "document.querySelector('input[name=size][value=L]').checked",
        "size L",
    )
    .await;
    tab_to(&page, "Add to cart").await;
    keys(&page, ENTER).await;
    until(
        &page,
        "document.querySelector('#cart-count').textContent === '1'",
        "one in the cart",
    )
    .await;
    // The button, disabled while it worked, has the focus back: the keyboard keeps its place.
    until(
        &page,
        "document.activeElement?.textContent === 'Add to cart' && !document.activeElement.disabled",
        "the focus back on Add to cart",
    )
    .await;

    // The cart's Checkout, then the form: the address typed, Pay with Enter.
    go(&page, &base, "#/cart").await;
    until(&page, "document.querySelector('#checkout')", "the cart").await;
    let offered = "[...document.querySelectorAll('#coupon-form option')]\
        .some(o => o.textContent === 'Welcome (10% off, up to ₩5,000)')";
    until(&page, offered, "the coupon with what it takes off").await;
    // Apply (no coupon): the cart is drawn again, and the keyboard stays on Apply.
    tab_to(&page, "Apply").await;
    page.execute("window.pressed = document.activeElement", vec![])
        .await
        .unwrap();
    keys(&page, ENTER).await;
    until(
        &page,
        "document.activeElement !== window.pressed && !window.pressed.isConnected \
         && document.activeElement?.textContent === 'Apply' \
         && document.activeElement.closest('#coupon-form')",
        "the focus on the Apply of the cart drawn again",
    )
    .await;
    // The code claimed again (its coupon is in the wallet, ready): it goes on the cart.
    tab_to(&page, "code").await;
    keys(&page, &format!("welcome10{ENTER}")).await;
    until(
        &page,
        "document.querySelector('#toast').textContent.includes('You already have this coupon.') \
         && document.querySelector('#coupon-form select').selectedOptions[0]?.textContent \
            === 'Welcome (10% off, up to ₩5,000)'",
        "the coupon claimed before, on the cart",
    )
    .await;
    only_in_console(&page, "the code claimed again", "409").await;
    tab_to(&page, "Checkout").await;
    keys(&page, ENTER).await;
    until(
        &page,
        "document.querySelector('#checkout-form')",
        "checkout",
    )
    .await;
    tab_to(&page, "phone").await;
    keys(&page, "010-4444-5555").await;
    tab_to(&page, "address").await;
    keys(&page, "1 Keyboard Rd, Seoul").await;
    tab_to(&page, "Pay").await;
    keys(&page, ENTER).await;

    // The gateway's page: Tab to its Pay button, Enter.
    until(
        &page,
        "document.title === 'Sandbox checkout'",
        "the gateway's page",
    )
    .await;
    tab_to(&page, "Pay").await;
    keys(&page, ENTER).await;
    until(
        &page,
        "document.querySelector('#order-status')?.textContent === 'Paid'",
        "paid",
    )
    .await;
    let order = page
        .execute(
            "return document.querySelector('#order-body').textContent",
            vec![],
        )
        .await
        .unwrap();
    assert!(order.as_str().unwrap().contains("1 Keyboard Rd"), "{order}");
    quiet(&page, "the keyboard checkout").await;

    // Cancel it, still from the keyboard: the second button takes the focus.
    tab_to(&page, "Cancel order").await;
    keys(&page, ENTER).await;
    until(
        &page,
        "document.activeElement.id === 'confirm-cancel'",
        "the confirmation focused",
    )
    .await;
    keys(&page, ENTER).await;
    until(
        &page,
        "document.querySelector('#order-status').textContent === 'Cancelled'",
        "cancelled",
    )
    .await;
    quiet(&page, "the keyboard cancel").await;
    page.close().await.unwrap();
    shop.stop();
}

#[tokio::test]
async fn a_coupon_for_the_whole_total_checks_out_without_the_gateway() {
    let _turn = TURN.lock().await;
    let shop = Shop::start().await;
    let base = shop.base.clone();
    shirt(&shop).await;
    let email = "free@example.com";
    shop.account(email, &["customer"]).await;
    let campaign = json!({"name": "On us", "code": "ONUS", "kind": "percent", "value": 100,
        "scope": {"type": "order"}, "per_user_limit": 1});
    shop.admin("POST", "/admin/coupon-campaigns", Some(campaign))
        .await;
    // As the shopper: the coupon claimed, a line in the cart, the coupon on it.
    let token = shop.token(email).await;
    let claim = Some(json!({"code": "ONUS"}));
    let claimed = shop.call(&token, "POST", "/coupons/claim", claim).await;
    let line = Some(json!({"quantity": 1}));
    shop.call(&token, "PUT", "/cart/items/linen-white-M", line)
        .await;
    let coupon = Some(json!({"coupon_id": claimed["coupon_id"]}));
    shop.call(&token, "PUT", "/cart/coupon", coupon).await;
    let driver = driver().await;
    let profile = tempfile::tempdir().unwrap();
    let page = browser(&driver, profile.path()).await;

    // Pay ₩0: no gateway's page, the order shows paid and the cart is empty.
    crate::log_in(&page, &base, email).await;
    go(&page, &base, "#/checkout").await;
    until(
        &page,
        "document.querySelector('#checkout-form button[type=submit]')?.textContent.includes('₩0')",
        "checkout for nothing",
    )
    .await;
    fill(&page, "checkout-form", "phone", "010-6666-7777").await;
    fill(&page, "checkout-form", "address", "1 Free St, Seoul").await;
    click(&page, "#checkout-form button[type=submit]").await;
    until(
        &page,
        "location.hash.startsWith('#/order/') \
         && document.querySelector('#order-status')?.textContent === 'Paid'",
        "the paid order",
    )
    .await;
    until(
        &page,
        "document.querySelector('#cart-count').textContent === ''",
        "an empty cart",
    )
    .await;
    quiet(&page, "a checkout for nothing").await;
    page.close().await.unwrap();
    shop.stop();
}
