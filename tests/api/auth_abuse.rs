//! Account abuse and account ends over real HTTP, found by a black-box attack: guesses sent
//! together against the per-account login limit, refresh cookies made up from what an access
//! token shows, and an order with a coupon outliving its shopper's account.

use crate::accounts::{me, refresh};
use crate::helpers::{
    OPERATOR_TOKEN, assert_problem, ok, product_with_sku, send, spawn_app, spawn_app_with,
};
use crate::orders::{FAST, address, place};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test]
async fn guesses_sent_together_are_checked_no_more_than_the_limit_allows() {
    // Given a verified account
    let app = spawn_app().await;
    app.customer("guessed@example.com").await;
    // When thirty wrong passwords arrive at once
    let attempts = (0..30).map(|i| {
        let body = json!({"email": "guessed@example.com", "password": format!("wrong guess {i}")});
        app.post_json("/api/v1/auth/login", body)
    });
    let answers = futures::future::join_all(attempts).await;
    // Then at most ten were checked (the per-account limit of 10 failed logins); the rest
    // are refused before their password is looked at
    let mut checked = 0;
    let mut refused = 0;
    for (i, r) in answers.into_iter().enumerate() {
        match r.status().as_u16() {
            401 => checked += 1,
            429 => refused += 1,
            other => panic!("attempt {i}: {other}"),
        }
    }
    assert_eq!((checked, refused), (10, 20));
    // And the right password, sent after, is refused too: the account is locked
    let right = json!({"email": "guessed@example.com", "password": "correct horse battery"});
    assert_problem(
        app.post_json("/api/v1/auth/login", right).await,
        429,
        "too_many_attempts",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_made_up_refresh_cookie_is_invalid_and_ends_no_session() {
    // Given a signed-in shopper: the cookie is `user.family.secret`, and the user and the
    // family (the access token's `sub` and `sid`) are readable by anyone holding a token
    let app = spawn_app().await;
    app.customer("victim@example.com").await;
    let (access, cookie) = app
        .login("victim@example.com", "correct horse battery")
        .await;
    let (user_and_family, _) = cookie.rsplit_once('.').unwrap();
    // When someone presents a cookie with a made-up secret
    let forged = format!("{user_and_family}.not-the-secret");
    assert_problem(refresh(&app, &forged).await, 401, "invalid_refresh").await;
    // Then the shopper's access token and refresh cookie still work
    assert_eq!(me(&app, &access).await.status(), 200);
    assert_eq!(refresh(&app, &cookie).await.status(), 200);
    // And presenting the replaced cookie again is a replay, which ends the session
    assert_problem(refresh(&app, &cookie).await, 401, "refresh_reused").await;
    assert_problem(me(&app, &access).await, 401, "token_revoked").await;
    app.stop().await;
}

#[tokio::test]
async fn an_order_whose_shopper_deleted_the_account_is_cancelled_without_a_dead_letter() {
    // Given an order placed with a coupon from the shopper's wallet
    let app = spawn_app_with(FAST).await;
    product_with_sku(&app, "Mug", "mug", 10000, 5).await;
    let (_, token, _) = app.customer("leaving@example.com").await;
    let campaign = json!({"name": "Ten", "code": "TEN", "kind": "fixed", "value": 1000,
        "scope": {"type": "order"}, "per_user_limit": 1});
    let admin = |path: &'static str, body| send(&app, "POST", path, OPERATOR_TOKEN, Some(body));
    ok(admin("/api/v1/admin/coupon-campaigns", campaign).await).await;
    let claim = Some(json!({"code": "TEN"}));
    let coupon = ok(send(&app, "POST", "/api/v1/coupons/claim", &token, claim).await).await;
    let body = json!({"items": [{"sku_id": "mug", "quantity": 1}],
        "coupon_id": coupon["coupon_id"], "shipping_address": address()});
    let order = ok(place(&app, &token, "left-behind", body).await).await;
    // When the shopper deletes the account and an admin cancels the order
    let deleted = send(&app, "DELETE", "/api/v1/users/me", &token, None).await;
    assert_eq!(deleted.status(), 204);
    let cancel = format!(
        "/api/v1/orders/{}/cancel",
        order["order_id"].as_str().unwrap()
    );
    let cancelled = ok(send(&app, "POST", &cancel, OPERATOR_TOKEN, None).await).await;
    assert_eq!(cancelled["status"], "cancelled");
    // Then its steps finish (the stock released; the coupon went with the wallet), and none
    // is left failing for an operator to look at
    let mut outbox = Value::Null;
    for _ in 0..200 {
        outbox = ok(send(&app, "GET", "/api/v1/admin/outbox", OPERATOR_TOKEN, None).await).await;
        if outbox["steps_pending"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(outbox["steps_pending"], 0, "{outbox}");
    assert_eq!(outbox["dead_letters"], 0, "{outbox}");
    app.stop().await;
}
