//! The one place errors become HTTP: [`ApiError`] renders RFC 9457 problem+json with a machine
//! `code`. Each domain error and each extractor rejection maps to it once, here. 5xx are logged
//! with their cause and shown to the client without internals.

use crate::actors::AskError;
use crate::auth::accounts::AccountError;
use crate::catalog::CatalogFailure;
use crate::domain::cart::CartError;
use crate::domain::catalog::CatalogError;
use crate::domain::coupon::CouponError;
use crate::domain::drop::DropError;
use crate::domain::email_claim::ClaimError;
use crate::domain::ids::InvalidId;
use crate::domain::inventory::SkuError;
use crate::domain::user::UserError;
use crate::domain::user::wallet::WalletError;
use crate::domain::user::wishlist::WishlistError;
use crate::shopping::ShoppingError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// A problem details document (RFC 9457).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem kind: `/problems/{code}`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The machine-readable code clients switch on.
    pub code: String,
    /// A finer machine-readable reason, for codes that have several (`coupon_not_applicable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Extension members of some problems (`sku_ids` of `insufficient_stock`).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// Seconds, sent as `Retry-After`.
    pub retry_after: Option<u32>,
    pub reason: Option<&'static str>,
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
            reason: None,
            extensions: serde_json::Map::new(),
        }
    }

    /// Adds an extension member to the problem document.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    pub fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn invalid_body(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", detail)
    }

    pub fn invalid_id(what: &str, e: InvalidId) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            format!("{what}: {e}"),
        )
    }

    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), code = self.code, detail = %self.detail, "request failed");
        }
        let body = Problem {
            kind: format!("/problems/{}", self.code),
            title: self
                .status
                .canonical_reason()
                .unwrap_or("Error")
                .to_string(),
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code.to_string(),
            reason: self.reason.map(str::to_string),
            extensions: self.extensions,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let code = match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
            _ => "malformed_json",
        };
        let status = match r.status() {
            s @ (StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::UNSUPPORTED_MEDIA_TYPE
            | StatusCode::UNPROCESSABLE_ENTITY) => s,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, code, r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_path", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text())
    }
}

impl<R: Into<ApiError>> From<AskError<R>> for ApiError {
    fn from(e: AskError<R>) -> Self {
        match e {
            AskError::Rejected(r) => r.into(),
            AskError::Overloaded => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "overloaded",
                "the engine is at capacity; retry shortly",
            )
            .retry_after(1),
            AskError::Timeout => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "no reply in time; the request may or may not have taken effect",
            )
            .retry_after(1),
            AskError::Unavailable => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the entity is unavailable; retry shortly",
            )
            .retry_after(1),
            AskError::NotFound => Self::not_found("no such entity"),
        }
    }
}

impl From<DropError> for ApiError {
    fn from(e: DropError) -> Self {
        use StatusCode as S;
        let (status, code) = match &e {
            DropError::SoldOut => (S::CONFLICT, "sold_out"),
            DropError::NotLive(_) => (S::CONFLICT, "drop_not_live"),
            DropError::LimitReached { .. } => (S::CONFLICT, "purchase_limit_reached"),
            DropError::NotFound => (S::NOT_FOUND, "not_found"),
            DropError::Exists => (S::CONFLICT, "drop_exists"),
            DropError::Invalid(_) => (S::UNPROCESSABLE_ENTITY, "invalid_field"),
        };
        let mut problem = Self::new(status, code, e.to_string());
        if let DropError::NotLive(status) = e {
            problem = problem.with("drop_status", status.as_str());
        }
        problem
    }
}

impl From<SkuError> for ApiError {
    fn from(e: SkuError) -> Self {
        let (status, code) = match &e {
            SkuError::InsufficientStock { .. } => (StatusCode::CONFLICT, "insufficient_stock"),
            SkuError::InvalidQuantity => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_quantity"),
            SkuError::StockOutOfRange => (StatusCode::UNPROCESSABLE_ENTITY, "stock_out_of_range"),
            SkuError::ReservationConflict(_) => (StatusCode::CONFLICT, "reservation_conflict"),
            SkuError::ReservationNotFound(_) => (StatusCode::NOT_FOUND, "reservation_not_found"),
            SkuError::ReservationReleased(_) => (StatusCode::CONFLICT, "reservation_released"),
            SkuError::AlreadySold(_) => (StatusCode::CONFLICT, "already_sold"),
            SkuError::AttachedElsewhere(_) => (StatusCode::CONFLICT, "sku_taken"),
            SkuError::Drop(d) => return d.clone().into(),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        use StatusCode as S;
        let detail = e.to_string();
        match e {
            AccountError::EmailTaken => Self::new(S::CONFLICT, "email_taken", detail),
            AccountError::WeakPassword(_) => {
                Self::new(S::UNPROCESSABLE_ENTITY, "weak_password", detail)
            }
            AccountError::InvalidField(_) => {
                Self::new(S::UNPROCESSABLE_ENTITY, "invalid_field", detail)
            }
            AccountError::InvalidCredentials => Self::unauthorized("invalid_credentials", detail),
            AccountError::User(u) => u.into(),
            AccountError::Runtime(r) => runtime(r),
            AccountError::Internal(_) => Self::new(S::INTERNAL_SERVER_ERROR, "internal", detail),
        }
    }
}

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        use StatusCode as S;
        let detail = e.to_string();
        match e {
            UserError::NotFound => Self::not_found(detail),
            UserError::AlreadyRegistered => Self::new(S::CONFLICT, "email_taken", detail),
            UserError::InvalidCode => Self::new(S::BAD_REQUEST, "invalid_code", detail),
            UserError::CodeExpired => Self::new(S::GONE, "code_expired", detail),
            UserError::TooManyAttempts => {
                Self::new(S::TOO_MANY_REQUESTS, "too_many_attempts", detail).retry_after(60)
            }
            UserError::ResendTooSoon { retry_after_secs } => {
                Self::new(S::TOO_MANY_REQUESTS, "rate_limited", detail)
                    .retry_after(secs(retry_after_secs))
            }
            UserError::AlreadyVerified => Self::new(S::CONFLICT, "already_verified", detail),
            UserError::NotVerified => Self::new(S::FORBIDDEN, "email_not_verified", detail),
            UserError::LoginLocked { retry_after_secs } => {
                Self::new(S::TOO_MANY_REQUESTS, "too_many_attempts", detail)
                    .retry_after(secs(retry_after_secs))
            }
            UserError::RefreshReused => Self::unauthorized("refresh_reused", detail),
            UserError::InvalidRefresh => Self::unauthorized("invalid_refresh", detail),
            UserError::Wishlist(WishlistError::Full) => {
                Self::new(S::CONFLICT, "wishlist_full", detail)
            }
            UserError::Wallet(WalletError::NotInWallet) => {
                Self::new(S::NOT_FOUND, "coupon_not_found", detail)
            }
            UserError::Wallet(WalletError::NotAvailable(_)) => {
                Self::new(S::CONFLICT, "coupon_not_applicable", detail)
            }
        }
    }
}

impl From<ClaimError> for ApiError {
    fn from(e: ClaimError) -> Self {
        AccountError::from(e).into()
    }
}

/// A runtime failure (overload, timeout, unavailable) of a flow that has no rejection of its own.
pub(crate) fn runtime(e: AskError<()>) -> ApiError {
    let never = |()| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "unexpected");
    e.map_rejection(never).into()
}

fn secs(s: u64) -> u32 {
    u32::try_from(s).unwrap_or(u32::MAX)
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        use StatusCode as S;
        let detail = e.to_string();
        match e {
            CatalogError::NotFound => Self::not_found(detail),
            CatalogError::AlreadyExists => Self::new(S::CONFLICT, "product_exists", detail),
            CatalogError::Invalid(_) => Self::new(S::UNPROCESSABLE_ENTITY, "invalid_field", detail),
            CatalogError::SkuTaken(_) => Self::new(S::CONFLICT, "sku_taken", detail),
        }
    }
}

impl From<CatalogFailure> for ApiError {
    fn from(e: CatalogFailure) -> Self {
        match e {
            CatalogFailure::Catalog(c) => c.into(),
            CatalogFailure::Runtime(r) => runtime(r),
        }
    }
}

impl From<ShoppingError> for ApiError {
    fn from(e: ShoppingError) -> Self {
        use StatusCode as S;
        let detail = e.to_string();
        match e {
            ShoppingError::NotFound(_) => Self::not_found(detail),
            ShoppingError::Cart(c) => c.into(),
            ShoppingError::Coupon(c) => c.into(),
            ShoppingError::User(u) => u.into(),
            ShoppingError::NotApplicable(reason) => {
                Self::new(S::CONFLICT, "coupon_not_applicable", detail).with_reason(reason)
            }
            ShoppingError::CodeTaken => Self::new(S::CONFLICT, "code_taken", detail),
            ShoppingError::Runtime(r) => runtime(r),
        }
    }
}

impl From<CartError> for ApiError {
    fn from(e: CartError) -> Self {
        use StatusCode as S;
        let detail = e.to_string();
        match e {
            CartError::InvalidQuantity => {
                Self::new(S::UNPROCESSABLE_ENTITY, "invalid_quantity", detail)
            }
            CartError::TooManyLines => Self::new(S::CONFLICT, "cart_full", detail),
            CartError::InsufficientStock { .. } => {
                Self::new(S::CONFLICT, "insufficient_stock", detail)
            }
            CartError::CouponNotApplicable(why) => {
                Self::new(S::CONFLICT, "coupon_not_applicable", detail).with_reason(why.code())
            }
        }
    }
}

impl From<CouponError> for ApiError {
    fn from(e: CouponError) -> Self {
        use StatusCode as S;
        let detail = e.to_string();
        match e {
            CouponError::NotFound => Self::not_found(detail),
            CouponError::AlreadyExists => Self::new(S::CONFLICT, "campaign_exists", detail),
            CouponError::Invalid(_) => Self::new(S::UNPROCESSABLE_ENTITY, "invalid_field", detail),
            CouponError::Exhausted => Self::new(S::CONFLICT, "coupons_exhausted", detail),
            CouponError::AlreadyClaimed { .. } => Self::new(S::CONFLICT, "already_claimed", detail),
            CouponError::NotActive => Self::new(S::CONFLICT, "campaign_not_active", detail),
        }
    }
}
