//! The caller's own account (`/api/v1/users/me`) and operator-created accounts
//! (`POST /api/v1/admin/users`).

use crate::auth::accounts::{ProfileView, SignUp};
use crate::domain::role::Role;
use crate::domain::user::AccountStatus;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{ApiJson, AuthUser, OperatorUser};
use crate::http::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_me, update_me, delete_me))
        .routes(routes!(create_user))
}

#[derive(Serialize, ToSchema)]
#[schema(examples(json!({"user_id": "u_3kR9x2LmQ0aB7cD1eF4g", "email": "minji@example.com", "name": "김민지", "phone": "010-1234-5678", "address": "서울특별시 강남구 테헤란로 427, 5층", "roles": ["customer"], "status": "active", "created_at": "2026-11-30T09:12:44.120Z"})))]
pub struct ProfileBody {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub roles: Vec<&'static str>,
    pub status: &'static str,
    pub created_at: String,
}

impl From<ProfileView> for ProfileBody {
    fn from(p: ProfileView) -> Self {
        Self {
            user_id: p.user_id.to_string(),
            email: p.email,
            name: p.name,
            phone: p.phone,
            address: p.address,
            roles: p.roles.iter().map(|r| r.as_str()).collect(),
            status: match p.status {
                AccountStatus::PendingVerification => "pending_verification",
                AccountStatus::Active => "active",
                AccountStatus::Deleted => "deleted",
            },
            created_at: p.created_at.to_rfc3339(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"name": "김민지", "phone": "010-1234-5678", "address": "서울특별시 강남구 테헤란로 427, 5층"})))]
pub struct ProfilePatch {
    /// Changed when present; it cannot be removed.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, required = false, nullable = false, min_length = 1, max_length = 100, format = "line")]
    pub name: Option<Option<String>>,
    /// Changed when present, removed by `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 30, format = "line")]
    pub phone: Option<Option<String>>,
    /// One free-text line, at most 200 characters; removed by `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 200, format = "line")]
    pub address: Option<Option<String>>,
}

/// A field sent, `null` or not (`Some`), told apart from one left out (`None`, by `default`):
/// a merge patch's `null` removes (RFC 7396).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"email": "ops@example.com", "password": "correct horse battery", "name": "Night shift", "roles": ["admin"]})))]
pub struct CreateUserRequest {
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
    /// `customer`, `admin`, `operator`.
    #[schema(value_type = Vec<crate::http::schemas::RoleName>)]
    pub roles: Vec<String>,
}

/// The caller's profile.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = ProfileBody), (status = 401, body = Problem)))]
pub async fn get_me(
    user: AuthUser,
    State(state): State<AppState>,
) -> Result<axum::Json<ProfileBody>, ApiError> {
    Ok(axum::Json(
        state.accounts.profile(&user.user_id).await?.into(),
    ))
}

/// Changes name, phone or address; `null` removes a phone or an address (the name stays).
#[utoipa::path(patch, path = "/api/v1/users/me", tag = "accounts", security(("bearer" = [])),
    request_body = ProfilePatch,
    responses((status = 200, body = ProfileBody), (status = 422, body = Problem)))]
pub async fn update_me(
    user: AuthUser,
    State(state): State<AppState>,
    ApiJson(patch): ApiJson<ProfilePatch>,
) -> Result<axum::Json<ProfileBody>, ApiError> {
    let profile = state
        .accounts
        .update_profile(&user.user_id, patch.name, patch.phone, patch.address)
        .await?;
    Ok(axum::Json(profile.into()))
}

/// Cancels the account's orders not yet with the carrier (a paid one refunded: erased, their
/// address no longer opens), leaves its chat rooms, erases its personal data and revokes its
/// tokens, and clears the refresh cookie if it is the account's. The operator token, which is
/// a setting and has no account, is refused (`403 forbidden`). While an order's payment is
/// being confirmed, `409 payment_in_progress` and nothing is erased (the other orders are
/// cancelled): a retry finishes.
#[utoipa::path(delete, path = "/api/v1/users/me", tag = "accounts", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 503, body = Problem)))]
pub async fn delete_me(
    user: AuthUser,
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    if user.claims.is_operator_token() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the operator token is a setting, not an account: there is nothing to delete",
        ));
    }
    // First, while the token still works: a failure here is finished by the client's retry.
    // Orders not yet with the carrier are cancelled (a paid one refunded): erased, the
    // account's address no longer opens, so they could never ship.
    state.orders.cancel_unshipped(&user.user_id).await?;
    state.chat.leave_all(&user.user_id).await?;
    state.accounts.delete(&user.user_id).await?;
    // Again for a room made between the two (it found the account still there); the account
    // is gone now, so no later room can list it.
    if let Err(e) = state.chat.leave_all(&user.user_id).await {
        tracing::warn!(user = %user.user_id, error = ?e, "a deleted account left in a room");
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    crate::http::auth::clear_cookies(&mut response, &state, &headers, |c| c.user == user.user_id);
    Ok(response)
}

/// Creates a verified account with the given roles (operator only).
#[utoipa::path(post, path = "/api/v1/admin/users", tag = "admin", security(("bearer" = ["operator"])),
    request_body = CreateUserRequest,
    responses((status = 201, body = ProfileBody), (status = 409, body = Problem),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_user(
    _: OperatorUser,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> Result<(StatusCode, axum::Json<ProfileBody>), ApiError> {
    let roles = parse_roles(&req.roles)?;
    let sign_up = SignUp {
        email: req.email,
        password: req.password,
        name: req.name,
        phone: None,
    };
    let (user_id, _) = state.accounts.sign_up(sign_up, roles, true).await?;
    let profile = state.accounts.profile(&user_id).await?;
    Ok((StatusCode::CREATED, axum::Json(profile.into())))
}

fn parse_roles(raw: &[String]) -> Result<BTreeSet<Role>, ApiError> {
    let mut roles = BTreeSet::from([Role::Customer]);
    for r in raw {
        roles.insert(Role::parse(r).ok_or_else(|| {
            ApiError::invalid_body(format!("unknown role `{r}`: customer, admin or operator"))
        })?);
    }
    Ok(roles)
}
