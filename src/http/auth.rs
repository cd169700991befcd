//! Sign-up, email verification, login, refresh and logout (`/api/v1/auth/*`). The refresh token
//! travels only in an `HttpOnly; SameSite=Strict` cookie scoped to `/api/v1/auth`.

use crate::auth::accounts::SignUp;
use crate::auth::sessions::Session;
use crate::auth::tokens::RefreshToken;
use crate::domain::role::Role;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{ApiJson, AuthRateLimited, AuthUser};
use crate::http::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub const REFRESH_COOKIE: &str = "refresh_token";
/// The refresh cookie's tag, which pages read: a random value that changes with each
/// refresh cookie set (`set_cookie`).
pub const REFRESH_TAG_COOKIE: &str = "refresh_tag";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(verify_email))
        .routes(routes!(resend_code))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"email": "minji@example.com", "password": "correct horse battery", "name": "김민지", "phone": "010-1234-5678"})))]
pub struct SignupRequest {
    #[schema(
        max_length = 254,
        pattern = r"^[ \t]*[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+[ \t]*$"
    )]
    pub email: String,
    /// 10 to 256 characters, not one character repeated or a run one step apart throughout
    /// (`1234567890`): else `422 weak_password`.
    #[schema(value_type = String, min_length = 10, max_length = 256, format = Password)]
    pub password: SecretString,
    #[schema(min_length = 1, max_length = 100, format = "line")]
    pub name: String,
    #[schema(min_length = 1, max_length = 30, format = "line")]
    pub phone: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(examples(json!({"user_id": "u_3kR9x2LmQ0aB7cD1eF4g", "email": "minji@example.com", "status": "pending_verification"})))]
pub struct SignupResponse {
    pub user_id: String,
    pub email: String,
    pub status: &'static str,
    /// Dev mode only: where the mailed code can be read (`GET /api/v1/dev/mailbox?email=`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev_mailbox: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"email": "minji@example.com", "code": "482913"})))]
pub struct VerifyRequest {
    #[schema(
        max_length = 254,
        pattern = r"^[ \t]*[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+[ \t]*$"
    )]
    pub email: String,
    /// The six digits mailed at sign-up (spaces around them are ignored).
    #[schema(pattern = r"^[ \t]*[0-9]{6}[ \t]*$")]
    pub code: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"email": "minji@example.com"})))]
pub struct EmailRequest {
    pub email: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"email": "minji@example.com", "password": "correct horse battery"})))]
pub struct LoginRequest {
    pub email: String,
    #[schema(value_type = String)]
    pub password: SecretString,
}

#[derive(Serialize, ToSchema)]
#[schema(examples(json!({"access_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1XzNrUjl4Mkxt...", "token_type": "Bearer", "expires_in": 900})))]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
}

#[derive(Serialize, ToSchema)]
pub struct StatusResponse {
    pub status: &'static str,
}

/// Registers an account and mails a 6-digit verification code.
#[utoipa::path(post, path = "/api/v1/auth/signup", tag = "accounts", request_body = SignupRequest,
    responses((status = 201, body = SignupResponse), (status = 409, body = Problem),
        (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn signup(
    _: AuthRateLimited,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SignupRequest>,
) -> Result<(StatusCode, axum::Json<SignupResponse>), ApiError> {
    let sign_up = SignUp {
        email: req.email,
        password: req.password,
        name: req.name,
        phone: req.phone,
    };
    let roles = BTreeSet::from([Role::Customer]);
    let (user_id, email) = state.accounts.sign_up(sign_up, roles, false).await?;
    let dev_mailbox = state.dev_mode.then(|| {
        let query = serde_urlencoded::to_string([("email", email.as_str())]).unwrap_or_default();
        format!("/api/v1/dev/mailbox?{query}")
    });
    let body = SignupResponse {
        user_id: user_id.to_string(),
        email: email.as_str().to_string(),
        status: "pending_verification",
        dev_mailbox,
    };
    Ok((StatusCode::CREATED, axum::Json(body)))
}

/// Activates the account with the mailed code.
#[utoipa::path(post, path = "/api/v1/auth/verify-email", tag = "accounts", request_body = VerifyRequest,
    responses((status = 200, body = StatusResponse), (status = 400, body = Problem),
        (status = 410, body = Problem), (status = 429, body = Problem)))]
pub async fn verify_email(
    _: AuthRateLimited,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> Result<axum::Json<StatusResponse>, ApiError> {
    state.accounts.verify_email(&req.email, &req.code).await?;
    Ok(axum::Json(StatusResponse { status: "active" }))
}

/// Mails a new code (at most one a minute per account). Unknown addresses get the same answer.
#[utoipa::path(post, path = "/api/v1/auth/resend-code", tag = "accounts", request_body = EmailRequest,
    responses((status = 202, body = StatusResponse), (status = 429, body = Problem)))]
pub async fn resend_code(
    _: AuthRateLimited,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<EmailRequest>,
) -> Result<(StatusCode, axum::Json<StatusResponse>), ApiError> {
    state.accounts.resend_code(&req.email).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(StatusResponse { status: "sent" }),
    ))
}

/// Exchanges email and password for an access token and a refresh cookie.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "accounts", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 429, body = Problem)))]
pub async fn login(
    _: AuthRateLimited,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let session = state.accounts.login(&req.email, &req.password).await?;
    Ok(session_response(&state, session))
}

/// Rotates the refresh cookie and issues a new access token. A refresh token used twice
/// revokes its whole session (`401 refresh_reused`). Every answer, a refusal too, sets a new
/// `refresh_tag` (see `set_cookie`): a page waiting for this answer learns it has landed.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "accounts",
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem),
        (status = 429, body = Problem)))]
pub async fn refresh(
    limited: Result<AuthRateLimited, ApiError>,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Response {
    let answer = async {
        limited?;
        let cookie = refresh_cookie(&headers)
            .ok_or_else(|| ApiError::unauthorized("invalid_refresh", "no refresh cookie"))?;
        let session = state.accounts.refresh(&cookie).await?;
        Ok::<_, ApiError>(session_response(&state, session))
    };
    answer.await.unwrap_or_else(|refused| {
        let mut response = refused.into_response();
        let max_age = state.accounts.refresh_ttl.as_secs();
        set_tag(&mut response, &state, &new_tag(), max_age);
        response
    })
}

/// Revokes the access token and its session; clears the refresh cookie when it is that
/// session's (or unreadable): a browser's cookie of another session, such as a log-in made in
/// another tab since, is left to it. The operator token cannot be logged out (`403 forbidden`).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "accounts", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn logout(
    user: AuthUser,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Once revoked, the user's open sockets on every node re-check their tokens (see
    // `Revocations::on_revoked`): the revoked one closes.
    state.accounts.logout(&user.claims).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    clear_cookies(&mut response, &state, &headers, |c| {
        c.family == user.claims.sid
    });
    Ok(response)
}

fn session_response(state: &AppState, session: Session) -> Response {
    let body = TokenResponse {
        access_token: session.access_token,
        token_type: "Bearer",
        expires_in: session.expires_in,
    };
    let mut response = axum::Json(body).into_response();
    // A token is never stored by a cache on the way (RFC 6749, 5.1).
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    let max_age = state.accounts.refresh_ttl.as_secs();
    set_cookie(&mut response, state, &session.refresh.encode(), max_age);
    response
}

/// Sets the refresh cookie (`value`, or none: empty with `max_age` 0), then its tag: a cookie
/// pages can read (`Path=/`, not `HttpOnly`) whose random value changes with each refresh
/// cookie set, and nothing else. A page cannot see the refresh cookie, so the tag is how it
/// learns that the answer to a refresh sent by a page since gone (a reload) has landed, and
/// that the cookie it would send is no longer the spent one. The tag comes second: a browser
/// that shows a page the new tag already holds the new cookie.
fn set_cookie(response: &mut Response, state: &AppState, value: &str, max_age: u64) {
    let secure = if state.dev_mode { "" } else { "; Secure" };
    let cookie = format!(
        "{REFRESH_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/api/v1/auth; Max-Age={max_age}{secure}"
    );
    append_cookie(response, &cookie);
    let tag = if value.is_empty() {
        String::new()
    } else {
        new_tag()
    };
    set_tag(response, state, &tag, max_age);
}

/// Clears the refresh cookie and its tag when the session that ended owns them (`ended` says
/// of the cookie sent, or the cookie is missing or unreadable): a logout, an account deleted.
/// A browser's cookie of another session (a log-in made in another tab since the ending
/// request's token was issued) is left to it.
pub(crate) fn clear_cookies(
    response: &mut Response,
    state: &AppState,
    headers: &HeaderMap,
    ended: impl Fn(&RefreshToken) -> bool,
) {
    let cookie = refresh_cookie(headers).and_then(|raw| RefreshToken::parse(&raw));
    if cookie.is_none_or(|c| ended(&c)) {
        set_cookie(response, state, "", 0);
    }
}

fn set_tag(response: &mut Response, state: &AppState, tag: &str, max_age: u64) {
    let secure = if state.dev_mode { "" } else { "; Secure" };
    let cookie =
        format!("{REFRESH_TAG_COOKIE}={tag}; SameSite=Strict; Path=/; Max-Age={max_age}{secure}");
    append_cookie(response, &cookie);
}

/// A tag: eight hex digits, random.
fn new_tag() -> String {
    format!("{:08x}", rand::random::<u32>())
}

fn append_cookie(response: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn refresh_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == REFRESH_COOKIE)
        .map(|(_, value)| value.to_string())
}
