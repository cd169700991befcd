//! Extractors whose rejections are problem+json ([`ApiJson`], [`ApiJsonBytes`], [`ApiPath`]) and
//! the access
//! guards: [`AuthUser`] (a valid access token or the operator token), [`AdminUser`],
//! [`OperatorUser`], and [`AuthRateLimited`] (per-IP limit of the auth routes).

use crate::auth::tokens::{Claims, TokenError};
use crate::domain::ids::UserId;
use crate::domain::role::Role;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use subtle::ConstantTimeEq;

/// `axum::Json` with problem+json rejections (400 malformed, 413 too large, 415 content type
/// or a compressed body, 422 wrong shape). A number with a zero fraction (`2.0`) is read where an integer is
/// expected, as JSON Schema counts it an integer (2020-12 validation, 6.1.1); that second
/// reading happens only after the first one failed, so well-formed bodies are parsed once.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let ApiJsonBytes(value, _) = ApiJsonBytes::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// [`ApiJson`] that keeps the body as sent, for a handler that digests the request (an
/// idempotency fingerprint) only past the refusals that need no digest.
pub struct ApiJsonBytes<T>(pub T, pub Bytes);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJsonBytes<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        // A body is read as sent: a compressed one would be parsed as its compressed bytes
        // (RFC 9110, 15.5.16: an unsupported content coding is a 415).
        let identity = |v: &axum::http::HeaderValue| {
            v.to_str().is_ok_and(|codings| {
                codings
                    .split(',')
                    .all(|c| c.trim().eq_ignore_ascii_case("identity"))
            })
        };
        if !req
            .headers()
            .get_all(header::CONTENT_ENCODING)
            .iter()
            .all(identity)
        {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "request bodies are read as sent: no Content-Encoding but identity",
            ));
        }
        if !json_content_type(req.headers()) {
            let e = axum::extract::rejection::MissingJsonContentType::default();
            return Err(axum::extract::rejection::JsonRejection::from(e).into());
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(axum::extract::rejection::JsonRejection::from)?;
        // Every body is a JSON object; serde would read an array into a struct's fields in
        // order (`["e@x.com", "pw"]` as a log-in).
        if bytes.trim_ascii_start().first() == Some(&b'[') {
            return Err(ApiError::invalid_body(
                "the body must be a JSON object, not an array",
            ));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(Self(value, bytes)),
            Err(first) => second_reading(&bytes, first).map(|value| Self(value, bytes)),
        }
    }
}

/// After a typed read of `bytes` failed with `first`, an untyped read decides:
/// - not JSON: 400 `malformed_json`, even where the typed read met a wrong field first (it
///   stops there, so `{"quantity": "x"` would be refused for its shape);
/// - JSON with a number that has a zero fraction: read again with those as integers;
/// - else `first`.
fn second_reading<T: DeserializeOwned>(
    bytes: &[u8],
    first: axum::extract::rejection::JsonRejection,
) -> Result<T, ApiError> {
    use axum::extract::rejection::JsonRejection;
    let mut value: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(e) if matches!(first, JsonRejection::JsonDataError(_)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("Failed to parse the request body as JSON: {e}"),
            ));
        }
        Err(_) => return Err(first.into()),
    };
    if crate::orders::placement::whole_numbers(&mut value)
        && let Ok(value) = serde_json::from_value(value)
    {
        return Ok(value);
    }
    Err(first.into())
}

/// `application/json` or `application/<anything>+json`, as `axum::Json` accepts.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (sub.eq_ignore_ascii_case("json") || sub.to_ascii_lowercase().ends_with("+json"))
}

/// `axum::extract::Query` with problem+json rejections.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `axum::extract::Path` with problem+json rejections.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// An authenticated caller: a valid, unrevoked access token, or the operator token (which
/// carries the `operator` and `admin` roles).
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: UserId,
    pub claims: Claims,
}

impl AuthUser {
    pub fn has_role(&self, role: Role) -> bool {
        self.claims.has_role(role)
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("missing_token", "a bearer token is required"))?;
        authenticate(state, presented)
    }
}

/// The credentials of an `Authorization: Bearer <token>` value; the scheme's name is
/// case-insensitive (RFC 9110, 11.1).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

/// The caller a presented token names: the operator token, or a valid, unrevoked access token.
/// (The WebSocket edge takes its token from the query or a message, not a header.)
pub fn authenticate(state: &AppState, presented: &str) -> Result<AuthUser, ApiError> {
    if let Some(operator) = &state.operator_token
        && bool::from(
            operator
                .expose_secret()
                .as_bytes()
                .ct_eq(presented.as_bytes()),
        )
    {
        return Ok(operator_principal());
    }
    let claims = state
        .accounts
        .tokens
        .verify(presented)
        .map_err(|e| match e {
            TokenError::Expired => {
                ApiError::unauthorized("token_expired", "the access token expired")
            }
            TokenError::Invalid => {
                ApiError::unauthorized("invalid_token", "the bearer token is not valid")
            }
        })?;
    if state.accounts.revocations.is_revoked(&claims) {
        return Err(ApiError::unauthorized(
            "token_revoked",
            "the access token was revoked",
        ));
    }
    let user_id = UserId::parse(claims.sub.clone())
        .map_err(|_| ApiError::unauthorized("invalid_token", "the bearer token is not valid"))?;
    Ok(AuthUser { user_id, claims })
}

fn operator_principal() -> AuthUser {
    AuthUser {
        user_id: UserId::parse("operator").expect("valid id"),
        claims: Claims {
            sub: "operator".into(),
            jti: String::new(),
            sid: String::new(),
            roles: vec![Role::Operator.as_str().into(), Role::Admin.as_str().into()],
            iat: 0,
            exp: i64::MAX,
        },
    }
}

fn require(user: AuthUser, role: Role) -> Result<AuthUser, ApiError> {
    if user.has_role(role) {
        Ok(user)
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this route needs the {} role", role.as_str()),
        ))
    }
}

/// An authenticated caller with the `admin` role.
pub struct AdminUser(pub AuthUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        require(user, Role::Admin).map(AdminUser)
    }
}

/// An authenticated caller with the `operator` role.
pub struct OperatorUser(pub AuthUser);

impl FromRequestParts<AppState> for OperatorUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        require(user, Role::Operator).map(OperatorUser)
    }
}

/// Admission to an auth route: the client IP is within its per-minute limit.
pub struct AuthRateLimited;

impl FromRequestParts<AppState> for AuthRateLimited {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let checked = match ip {
            Some(ip) => state.limits.check(&ip).await,
            None => Ok(()),
        };
        match checked {
            Err(wait) => Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests from this address",
            )
            .retry_after(u32::try_from(wait).unwrap_or(60))),
            Ok(()) => Ok(AuthRateLimited),
        }
    }
}
