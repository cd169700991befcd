//! Account abuse over real HTTP, found by a black-box attack: guesses sent together against
//! the per-account login limit, and refresh cookies made up from what an access token shows.

use crate::accounts::{me, refresh};
use crate::helpers::{assert_problem, spawn_app};
use serde_json::json;

#[tokio::test]
async fn guesses_sent_together_are_checked_no_more_than_the_limit_allows() {
    // Given a verified account
    let app = spawn_app().await;
    app.customer("guessed@example.com").await;
    // When thirty wrong passwords and the right one arrive at once
    let attempts = (0..31).map(|i| {
        let password = if i == 15 {
            "correct horse battery".to_string()
        } else {
            format!("wrong guess {i}")
        };
        let body = json!({"email": "guessed@example.com", "password": password});
        app.post_json("/api/v1/auth/login", body)
    });
    let answers = futures::future::join_all(attempts).await;
    // Then at most ten passwords were checked (the per-account limit of 10 failed logins);
    // the rest are refused before their password is looked at
    let mut checked_wrong = 0;
    let mut refused = 0;
    for (i, r) in answers.into_iter().enumerate() {
        match r.status().as_u16() {
            401 if i != 15 => checked_wrong += 1,
            429 => refused += 1,
            200 if i == 15 => {}
            other => panic!("attempt {i}: {other}"),
        }
    }
    assert!(
        checked_wrong <= 10,
        "{checked_wrong} wrong passwords checked"
    );
    assert!(refused >= 20, "{refused} refused");
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
