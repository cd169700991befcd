//! Accounts over HTTP: the whole flow and every error code of the Accounts table, token abuse,
//! revocation across a restart, refresh reuse, roles, concurrent sign-ups, and what reaches disk.

use crate::helpers::{
    JWT_SECRET, OPERATOR_TOKEN, TestApp, assert_problem, refresh_cookie, send, spawn_app,
    spawn_app_full, spawn_app_in, spawn_app_with,
};
use emporium::auth::tokens::TokenKeys;
use emporium::domain::ids::UserId;
use emporium::domain::time::{ManualClock, Timestamp};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const PASSWORD: &str = "correct horse battery";

async fn signup(app: &TestApp, email: &str) -> reqwest::Response {
    app.post_json(
        "/api/v1/auth/signup",
        json!({"email": email, "password": PASSWORD, "name": "Kim", "phone": "010-1234-5678"}),
    )
    .await
}

pub(crate) async fn me(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .get(app.url("/api/v1/users/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn refresh(app: &TestApp, cookie: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/auth/refresh"))
        .header("cookie", format!("refresh_token={cookie}"))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn sign_up_verify_login_profile_refresh_logout() {
    let app = spawn_app().await;
    let r = signup(&app, " Kim@Example.com ").await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["email"], "kim@example.com");
    assert_eq!(body["status"], "pending_verification");
    // Dev mode names the mailbox the code can be read from (the storefront links it).
    let mailbox = body["dev_mailbox"].as_str().unwrap();
    assert_eq!(mailbox, "/api/v1/dev/mailbox?email=kim%40example.com");
    let mails: Value = app
        .client
        .get(app.url(mailbox))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mails["items"].as_array().unwrap().len(), 1);

    let code = app.mailed_code("kim@example.com").await;
    let r = app
        .post_json(
            "/api/v1/auth/verify-email",
            json!({"email": "kim@example.com", "code": code}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "active"})
    );

    let r = app
        .post_json(
            "/api/v1/auth/login",
            json!({"email": "KIM@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["cache-control"],
        "no-store",
        "tokens are never cached"
    );
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for part in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/api/v1/auth",
        "Max-Age=1209600",
    ] {
        assert!(set_cookie.contains(part), "{part} in {set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "dev mode serves plain HTTP");
    // Beside it, the tag pages read to tell one refresh cookie from the next.
    let tag = refresh_tag(&r);
    let value = tag.split(';').next().unwrap();
    assert!(value.len() == "refresh_tag=".len() + 8, "{tag}");
    assert!(
        tag.contains("Path=/;") && !tag.contains("HttpOnly"),
        "{tag}"
    );
    let cookie = refresh_cookie(&r);
    let login: Value = r.json().await.unwrap();
    assert_eq!(login["token_type"], "Bearer");
    assert_eq!(login["expires_in"], 900);
    let token = login["access_token"].as_str().unwrap().to_string();

    let profile: Value = me(&app, &token).await.json().await.unwrap();
    assert_eq!(profile["email"], "kim@example.com");
    assert_eq!(profile["name"], "Kim");
    assert_eq!(profile["phone"], "010-1234-5678");
    assert_eq!(profile["roles"], json!(["customer"]));
    assert!(profile["created_at"].as_str().unwrap().ends_with('Z'));

    let r = app
        .client
        .patch(app.url("/api/v1/users/me"))
        .bearer_auth(&token)
        .json(&json!({"address": "서울특별시 강남구 테헤란로 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap()["address"],
        "서울특별시 강남구 테헤란로 1"
    );
    let r = app
        .client
        .patch(app.url("/api/v1/users/me"))
        .bearer_auth(&token)
        .json(&json!({"address": "x".repeat(201)}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 422, "invalid_field").await;
    // A `null` removes the phone (a merge patch's null), leaves the address; a name cannot go.
    let patch = |body: Value| {
        app.client
            .patch(app.url("/api/v1/users/me"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let r = patch(json!({"phone": null})).await.unwrap();
    assert_eq!(r.status(), 200);
    let cleared: Value = r.json().await.unwrap();
    assert_eq!(cleared["phone"], Value::Null, "{cleared}");
    assert_eq!(cleared["address"], "서울특별시 강남구 테헤란로 1");
    let profile: Value = me(&app, &token).await.json().await.unwrap();
    assert_eq!(profile["phone"], Value::Null, "{profile}");
    let r = patch(json!({"name": null})).await.unwrap();
    assert_problem(r, 422, "invalid_field").await;
    // The operator token has no account to delete
    let r = app
        .client
        .delete(app.url("/api/v1/users/me"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_problem(r, 403, "forbidden").await;
    assert_eq!(
        me(&app, &token).await.json::<Value>().await.unwrap()["name"],
        "Kim"
    );

    // Refresh rotates the cookie; the new access token works.
    let r = refresh(&app, &cookie).await;
    assert_eq!(r.status(), 200);
    let rotated = refresh_cookie(&r);
    assert_ne!(rotated, cookie);
    assert_ne!(refresh_tag(&r), tag, "a new tag with the new cookie");
    let fresh = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(me(&app, &fresh).await.status(), 200);

    // A logout sent with the cookie of another session (a browser where another tab logged in
    // since) ends its own session and leaves that cookie alone.
    let r = app
        .post_json(
            "/api/v1/auth/login",
            json!({"email": "kim@example.com", "password": PASSWORD}),
        )
        .await;
    let other_cookie = refresh_cookie(&r);
    let other: Value = r.json().await.unwrap();
    let other = other["access_token"].as_str().unwrap();
    let r = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(other)
        .header("cookie", format!("refresh_token={rotated}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.headers().get("set-cookie").is_none(), "{:?}", r.headers());
    assert_problem(me(&app, other).await, 401, "token_revoked").await;
    assert_problem(refresh(&app, &other_cookie).await, 401, "invalid_refresh").await;

    // Logout: the token is revoked and so is its session's refresh family; its cookie is
    // cleared.
    let r = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&fresh)
        .header("cookie", format!("refresh_token={rotated}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert!(refresh_tag(&r).starts_with("refresh_tag=;"));
    assert_problem(me(&app, &fresh).await, 401, "token_revoked").await;
    assert_problem(refresh(&app, &rotated).await, 401, "invalid_refresh").await;
    app.stop().await;
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_its_whole_family() {
    let app = spawn_app().await;
    let (_, _, first) = app.customer("reuse@example.com").await;
    let r = refresh(&app, &first).await;
    let second = refresh_cookie(&r);
    // The stolen first token comes back: the family dies, so the legitimate second one too.
    assert_problem(refresh(&app, &first).await, 401, "refresh_reused").await;
    assert_problem(refresh(&app, &second).await, 401, "invalid_refresh").await;
    assert_problem(refresh(&app, "garbage").await, 401, "invalid_refresh").await;
    let r = app
        .client
        .post(app.url("/api/v1/auth/refresh"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "invalid_refresh").await;
    app.stop().await;
}

#[tokio::test]
async fn sign_up_errors() {
    let app = spawn_app().await;
    assert_eq!(signup(&app, "dup@example.com").await.status(), 201);
    assert_problem(signup(&app, "DUP@example.com").await, 409, "email_taken").await;
    let weak = app
        .post_json(
            "/api/v1/auth/signup",
            json!({"email": "w@example.com", "password": "short", "name": "W"}),
        )
        .await;
    assert_problem(weak, 422, "weak_password").await;
    // Ten spaces, or a run, are ten characters but no secret (NIST SP 800-63B, 5.1.1.2)
    for password in ["          ", "1234567890"] {
        let body = json!({"email": "w@example.com", "password": password, "name": "W"});
        let weak = app.post_json("/api/v1/auth/signup", body.clone()).await;
        assert_problem(weak, 422, "weak_password").await;
        // and so is an account an operator makes
        let mut body = body;
        body["roles"] = json!(["admin"]);
        let made = send(
            &app,
            "POST",
            "/api/v1/admin/users",
            OPERATOR_TOKEN,
            Some(body),
        )
        .await;
        assert_problem(made, 422, "weak_password").await;
    }
    assert_problem(signup(&app, "not-an-email").await, 422, "invalid_field").await;
    let r = app
        .post_json("/api/v1/auth/signup", json!({"email": "x@example.com"}))
        .await;
    assert_problem(r, 422, "invalid_body").await;
    let r = app
        .post_json(
            "/api/v1/auth/signup",
            json!({"email": "n@example.com", "password": PASSWORD, "name": ""}),
        )
        .await;
    assert_problem(r, 422, "invalid_field").await;
    app.stop().await;
}

/// Given a sign-up with someone else's address (never verified: the codes go to the owner),
/// when the owner signs up within the hour, then the address is taken; after it, the owner's
/// sign-up replaces the squatter's, and only the owner's password logs in once verified.
#[tokio::test]
async fn a_sign_up_never_verified_gives_its_address_up_after_an_hour() {
    let clock = ManualClock::starting_at(Timestamp(1_795_251_600_000));
    let app = spawn_app_full(tempfile::tempdir().unwrap(), &[], Arc::new(clock.clone())).await;
    let sign_up = |password: &'static str| {
        app.post_json(
            "/api/v1/auth/signup",
            json!({"email": "owner@example.com", "password": password, "name": "Kim"}),
        )
    };
    let squatter = "the squatter's secret";
    assert_eq!(sign_up(squatter).await.status(), 201);
    clock.advance(Duration::from_secs(59 * 60));
    assert_problem(sign_up(PASSWORD).await, 409, "email_taken").await;
    clock.advance(Duration::from_secs(60));
    assert_eq!(sign_up(PASSWORD).await.status(), 201);
    let code = app.mailed_code("owner@example.com").await;
    let verify = json!({"email": "owner@example.com", "code": code});
    let r = app.post_json("/api/v1/auth/verify-email", verify).await;
    assert_eq!(r.status(), 200);
    let login = |password: &'static str| {
        app.post_json(
            "/api/v1/auth/login",
            json!({"email": "owner@example.com", "password": password}),
        )
    };
    assert_problem(login(squatter).await, 401, "invalid_credentials").await;
    assert_eq!(login(PASSWORD).await.status(), 200);
    // And a verified account is never replaced
    clock.advance(Duration::from_secs(2 * 3600));
    assert_problem(sign_up(squatter).await, 409, "email_taken").await;
    app.stop().await;
}

#[tokio::test]
async fn verification_errors_wrong_codes_lock_and_resend_is_limited() {
    let clock = ManualClock::starting_at(Timestamp(1_795_251_600_000));
    let app = spawn_app_full(tempfile::tempdir().unwrap(), &[], Arc::new(clock.clone())).await;
    assert_eq!(signup(&app, "v@example.com").await.status(), 201);
    let code = app.mailed_code("v@example.com").await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let verify = |code: String| {
        app.post_json(
            "/api/v1/auth/verify-email",
            json!({"email": "v@example.com", "code": code}),
        )
    };

    // Not verified yet: the right password is refused with 403.
    let r = app
        .post_json(
            "/api/v1/auth/login",
            json!({"email": "v@example.com", "password": PASSWORD}),
        )
        .await;
    assert_problem(r, 403, "email_not_verified").await;

    for _ in 0..5 {
        assert_problem(verify(wrong.to_string()).await, 400, "invalid_code").await;
    }
    assert_problem(verify(code.clone()).await, 429, "too_many_attempts").await;

    let resend = || {
        app.post_json(
            "/api/v1/auth/resend-code",
            json!({"email": "v@example.com"}),
        )
    };
    assert_problem(resend().await, 429, "rate_limited").await;
    clock.advance(Duration::from_secs(61));
    assert_eq!(resend().await.status(), 202);
    let fresh = app.mailed_code("v@example.com").await;
    clock.advance(Duration::from_secs(601));
    assert_problem(verify(fresh.clone()).await, 410, "code_expired").await;

    clock.advance(Duration::from_secs(61));
    assert_eq!(resend().await.status(), 202);
    let last = app.mailed_code("v@example.com").await;
    assert_eq!(verify(last).await.status(), 200);
    // Unknown addresses look the same as known ones.
    let r = app
        .post_json(
            "/api/v1/auth/resend-code",
            json!({"email": "nobody@example.com"}),
        )
        .await;
    assert_eq!(r.status(), 202);
    let r = app
        .post_json(
            "/api/v1/auth/verify-email",
            json!({"email": "nobody@example.com", "code": "123456"}),
        )
        .await;
    assert_problem(r, 400, "invalid_code").await;
    app.stop().await;
}

#[tokio::test]
async fn login_errors_and_the_per_account_lock() {
    let app = spawn_app().await;
    app.customer("l@example.com").await;
    let login = |email: &str, pw: &str| {
        app.post_json(
            "/api/v1/auth/login",
            json!({"email": email, "password": pw}),
        )
    };
    assert_problem(
        login("nobody@example.com", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    for _ in 0..10 {
        assert_problem(
            login("l@example.com", "wrong password!!").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    let r = login("l@example.com", PASSWORD).await;
    assert!(r.headers().contains_key("retry-after"));
    assert_problem(r, 429, "too_many_attempts").await;
    app.stop().await;
}

#[tokio::test]
async fn the_per_ip_limit_answers_429_with_retry_after() {
    let app = spawn_app_with(&[("EMPORIUM_AUTH_RATE_PER_IP", "5")]).await;
    for _ in 0..5 {
        let r = app
            .post_json(
                "/api/v1/auth/resend-code",
                json!({"email": "a@example.com"}),
            )
            .await;
        assert_eq!(r.status(), 202);
    }
    let r = app
        .post_json(
            "/api/v1/auth/resend-code",
            json!({"email": "a@example.com"}),
        )
        .await;
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait));
    assert_problem(r, 429, "rate_limited").await;
    app.stop().await;
}

#[tokio::test]
async fn bad_tokens_are_refused_with_precise_codes() {
    let app = spawn_app().await;
    let (user_id, token, _) = app.customer("t@example.com").await;
    let user = UserId::parse(user_id).unwrap();
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let ours = TokenKeys::new(JWT_SECRET.as_bytes(), 900);
    let theirs = TokenKeys::new(b"somebody else's secret, 32+ bytes long", 900);
    let roles = std::collections::BTreeSet::new();
    let (expired, _) = ours.issue(&user, &roles, "s", now - 3600).unwrap();
    let (foreign, _) = theirs.issue(&user, &roles, "s", now).unwrap();
    let mut tampered = token.clone();
    let mid = tampered.len() / 2;
    tampered.replace_range(
        mid..mid + 1,
        if &token[mid..mid + 1] == "A" {
            "B"
        } else {
            "A"
        },
    );
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let unsigned = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&format!(
            r#"{{"sub":"{user}","jti":"x","roles":["admin"],"iat":{now},"exp":{}}}"#,
            now + 900
        ))
    );
    assert_problem(me(&app, &expired).await, 401, "token_expired").await;
    for bad in [foreign, tampered, unsigned, "not.a.jwt".to_string()] {
        assert_problem(me(&app, &bad).await, 401, "invalid_token").await;
    }
    let r = app
        .client
        .get(app.url("/api/v1/users/me"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "missing_token").await;
    assert_eq!(me(&app, &token).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_revoked_token_stays_revoked_after_a_restart() {
    let app = spawn_app().await;
    let (_, token, _) = app.customer("r@example.com").await;
    let r = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let dir = app.stop().await;
    let app = spawn_app_in(dir, &[]).await;
    assert_problem(me(&app, &token).await, 401, "token_revoked").await;
    let (again, _) = app.login("r@example.com", PASSWORD).await;
    assert_eq!(me(&app, &again).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn roles_guard_admin_and_operator_routes() {
    let app = spawn_app().await;
    let (_, customer, _) = app.customer("c@example.com").await;
    let stock = |token: &str| {
        app.client
            .put(app.url("/api/v1/admin/skus/r1/stock"))
            .bearer_auth(token.to_string())
            .json(&json!({"available": 1}))
            .send()
    };
    assert_problem(stock(&customer).await.unwrap(), 403, "forbidden").await;
    let create = |token: &str, email: &str, roles: Value| {
        app.client
            .post(app.url("/api/v1/admin/users"))
            .bearer_auth(token.to_string())
            .json(&json!({"email": email, "password": PASSWORD, "name": "Admin", "roles": roles}))
            .send()
    };
    assert_problem(
        create(&customer, "a@example.com", json!(["admin"]))
            .await
            .unwrap(),
        403,
        "forbidden",
    )
    .await;
    let r = create(OPERATOR_TOKEN, "a@example.com", json!(["admin"]))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["roles"], json!(["customer", "admin"]));
    assert_eq!(body["status"], "active");
    let r = create(OPERATOR_TOKEN, "b@example.com", json!(["wizard"]))
        .await
        .unwrap();
    assert_problem(r, 422, "invalid_body").await;

    // The admin logs in straight away (created verified) and may manage stock, not the cluster.
    let (admin, _) = app.login("a@example.com", PASSWORD).await;
    assert_eq!(stock(&admin).await.unwrap().status(), 200);
    let r = app
        .client
        .get(app.url("/api/v1/admin/entities/sku/r1"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_problem(r, 403, "forbidden").await;
    app.stop().await;
}

#[tokio::test]
async fn a_hundred_concurrent_sign_ups_with_one_email_make_one_account() {
    let app = spawn_app().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let (client, url) = (app.client.clone(), app.url("/api/v1/auth/signup"));
        tasks.spawn(async move {
            let body =
                json!({"email": "race@example.com", "password": PASSWORD, "name": format!("n{i}")});
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    let mut statuses = Vec::new();
    while let Some(s) = tasks.join_next().await {
        statuses.push(s.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 99);
    app.stop().await;
}

#[tokio::test]
async fn deleting_the_account_erases_it_revokes_tokens_and_frees_the_email() {
    let app = spawn_app().await;
    let (_, token, cookie) = app.customer("d@example.com").await;
    let (other_device, _) = app.login("d@example.com", PASSWORD).await;
    let r = app
        .client
        .delete(app.url("/api/v1/users/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // The browser's session cookies go with the account.
    assert!(refresh_tag(&r).starts_with("refresh_tag=;"));
    assert_eq!(refresh_cookie(&r), "");
    assert_problem(me(&app, &other_device).await, 401, "token_revoked").await;
    // A refusal sets a new tag too: a page waiting for this answer learns that it landed.
    let r = refresh(&app, &cookie).await;
    assert_eq!(
        refresh_tag(&r).split(';').next().unwrap().len(),
        "refresh_tag=".len() + 8
    );
    assert_problem(r, 401, "invalid_refresh").await;
    let r = app
        .post_json(
            "/api/v1/auth/login",
            json!({"email": "d@example.com", "password": PASSWORD}),
        )
        .await;
    assert_problem(r, 401, "invalid_credentials").await;
    assert_eq!(
        signup(&app, "d@example.com").await.status(),
        201,
        "the address is free again"
    );
    // An account deleted from a browser whose cookie is another account's (logged in since
    // in another tab): that cookie stays, and still refreshes.
    let (_, doomed, _) = app.customer("gone@example.com").await;
    let (_, _, kept) = app.customer("kept@example.com").await;
    let r = app
        .client
        .delete(app.url("/api/v1/users/me"))
        .bearer_auth(&doomed)
        .header("cookie", format!("refresh_token={kept}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.headers().get("set-cookie").is_none(), "{:?}", r.headers());
    assert_eq!(refresh(&app, &kept).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn personal_data_never_reaches_disk_in_clear() {
    let app = spawn_app().await;
    let (_, token, _) = app.customer("pii.check@example.com").await;
    let r = app
        .client
        .patch(app.url("/api/v1/users/me"))
        .bearer_auth(&token)
        .json(&json!({"name": "Unmistakable Name", "phone": "010-9876-5432", "address": "Gangnam-daero 42 Plaintext"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let dir = app.stop().await;
    let mut haystack = Vec::new();
    for entry in walk(dir.path()) {
        haystack.extend(std::fs::read(entry).unwrap());
    }
    assert!(haystack.len() > 1000, "the data dir holds the journal");
    // Records are stored packed (zstd), which would hide plaintext from a grep of the files:
    // every record is unpacked and searched too.
    let (packed, unpacked) = unpacked_records(&dir.path().join("db"));
    assert!(packed > 0, "no record was packed");
    haystack.extend(unpacked);
    for needle in [
        "Unmistakable Name",
        "010-9876-5432",
        "Gangnam-daero",
        "pii.check@example.com",
        "Kim",
    ] {
        let found = haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes());
        assert!(!found, "{needle} found in clear in the data dir");
    }
}

/// How many records of the stopped node's database at `db` are packed, and their bytes
/// unpacked (an event run holds its events one by one: `RUN ++ first seq ++ (len ++ event)*`).
fn unpacked_records(db: &std::path::Path) -> (usize, Vec<u8>) {
    use emporium::persistence::packing::unpack;
    let db = emporium::persistence::sled_open::open_as_made(db).unwrap();
    let mut packed = 0;
    let mut look = |value: &[u8], out: &mut Vec<u8>| {
        for at in [0, 8] {
            if let Some(Ok(std::borrow::Cow::Owned(record))) = value.get(at..).map(unpack) {
                packed += 1;
                out.extend(record);
            }
        }
    };
    let mut haystack = Vec::new();
    for name in db.tree_names() {
        for row in db.open_tree(name).unwrap().iter() {
            let (_, value) = row.unwrap();
            look(&value, &mut haystack);
            if let Some(mut rest) = value.strip_prefix(&[0xC1]).and_then(|v| v.get(8..)) {
                while let Some((len, tail)) = rest.split_first_chunk::<4>() {
                    let len = (u32::from_be_bytes(*len) as usize).min(tail.len());
                    look(&tail[..len], &mut haystack);
                    rest = &tail[len..];
                }
            }
        }
    }
    (packed, haystack)
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The tag cookie a response sets, whole (`refresh_tag=…; attributes`).
fn refresh_tag(r: &reqwest::Response) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("refresh_tag="))
        .expect("a refresh tag cookie")
}
