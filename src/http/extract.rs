//! Extractors whose rejections are problem+json ([`ApiJson`], [`ApiPath`]) and the operator
//! guard ([`Operator`]) for admin routes until accounts and roles arrive.

use crate::http::AppState;
use crate::http::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

/// `axum::Json` with problem+json rejections (400 malformed, 413 too large, 415 content type,
/// 422 wrong shape).
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `axum::extract::Path` with problem+json rejections.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// A request bearing the operator token (`EMPORIUM_OPERATOR_TOKEN`).
pub struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::unauthorized("missing_token", "a bearer token is required"))?;
        let valid = state.operator_token.as_ref().is_some_and(|expected| {
            bool::from(
                expected
                    .expose_secret()
                    .as_bytes()
                    .ct_eq(presented.trim().as_bytes()),
            )
        });
        if valid {
            Ok(Operator)
        } else {
            Err(ApiError::unauthorized(
                "invalid_token",
                "the bearer token is not valid",
            ))
        }
    }
}
