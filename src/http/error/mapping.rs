//! Every domain and service error as HTTP: the status, the problem `code` (API.md's) and its
//! extensions. One `From` per error type, nowhere else.

use super::ApiError;
use crate::auth::accounts::AccountError;
use crate::catalog::CatalogFailure;
use crate::chat::ChatFailure;
use crate::domain::cart::CartError;
use crate::domain::catalog::CatalogError;
use crate::domain::chat::RoomError;
use crate::domain::coupon::CouponError;
use crate::domain::drop::DropError;
use crate::domain::email_claim::ClaimError;
use crate::domain::inventory::SkuError;
use crate::domain::order::OrderError;
use crate::domain::user::UserError;
use crate::domain::user::keys::KeyError;
use crate::domain::user::wallet::WalletError;
use crate::domain::user::wishlist::WishlistError;
use crate::domain::watchers::WatchError;
use crate::drops::DropFailure;
use crate::orders::OrderFailure;
use crate::shopping::ShoppingError;
use axum::http::StatusCode;
use axum::http::StatusCode as S;

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
            AccountError::NotASession => Self::new(S::FORBIDDEN, "forbidden", detail),
            AccountError::User(u) => u.into(),
            AccountError::Runtime(r) => r.into(),
            AccountError::Internal(cause) => Self::internal(cause),
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
            UserError::Keys(KeyError::Reused) => {
                Self::new(S::UNPROCESSABLE_ENTITY, "idempotency_key_reused", detail)
            }
            UserError::Keys(KeyError::InUse) => {
                Self::new(S::CONFLICT, "idempotency_key_in_use", detail).retry_after(1)
            }
        }
    }
}

impl From<ClaimError> for ApiError {
    fn from(e: ClaimError) -> Self {
        AccountError::from(e).into()
    }
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
            CatalogError::SkuTaken(_) | CatalogError::Abandoned => {
                Self::new(S::CONFLICT, "sku_taken", detail)
            }
        }
    }
}

impl From<CatalogFailure> for ApiError {
    fn from(e: CatalogFailure) -> Self {
        match e {
            CatalogFailure::Catalog(c) => c.into(),
            CatalogFailure::Runtime(r) => r.into(),
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
            ShoppingError::Watch(WatchError::TooMany) => {
                Self::new(S::CONFLICT, "too_many_watchers", detail)
            }
            ShoppingError::Runtime(r) => r.into(),
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
            // Which of the shopper's coupons are the campaign's, so a client can say whether
            // the one it has is still to use, held by an order or used.
            CouponError::AlreadyClaimed { coupons } => {
                let ids: Vec<String> = coupons.iter().map(ToString::to_string).collect();
                Self::new(S::CONFLICT, "already_claimed", detail).with("coupon_ids", ids)
            }
            CouponError::NotActive => Self::new(S::CONFLICT, "campaign_not_active", detail),
        }
    }
}

impl From<OrderFailure> for ApiError {
    fn from(e: OrderFailure) -> Self {
        let detail = e.to_string();
        match e {
            OrderFailure::NotFound(_) => Self::not_found(detail),
            OrderFailure::Order(o) => o.into(),
            OrderFailure::InsufficientStock { skus } => {
                Self::new(S::CONFLICT, "insufficient_stock", detail).with("sku_ids", skus)
            }
            OrderFailure::CouponNotApplicable(reason) => {
                Self::new(S::CONFLICT, "coupon_not_applicable", detail).with_reason(reason)
            }
            OrderFailure::Invalid(code @ "invalid_cursor", _) => {
                Self::new(S::BAD_REQUEST, code, detail)
            }
            OrderFailure::Invalid(code, _) => Self::new(S::UNPROCESSABLE_ENTITY, code, detail),
            OrderFailure::Conflict(code, _) => Self::new(S::CONFLICT, code, detail),
            OrderFailure::PaymentDeclined { reason } => {
                Self::new(S::PAYMENT_REQUIRED, "payment_declined", detail).with("reason", reason)
            }
            OrderFailure::Pending(code, _) => {
                Self::new(S::SERVICE_UNAVAILABLE, code, detail).retry_after(2)
            }
            OrderFailure::Runtime(r) => r.into(),
            OrderFailure::Internal(cause) => Self::internal(cause),
        }
    }
}

impl From<OrderError> for ApiError {
    fn from(e: OrderError) -> Self {
        let detail = e.to_string();
        match e {
            OrderError::NotFound | OrderError::NoSuchEffect | OrderError::UnknownShipment => {
                Self::not_found(detail)
            }
            OrderError::KeyReused => {
                Self::new(S::UNPROCESSABLE_ENTITY, "idempotency_key_reused", detail)
            }
            OrderError::NotPayable => Self::new(S::CONFLICT, "order_not_payable", detail),
            OrderError::AmountMismatch { .. } => {
                Self::new(S::BAD_REQUEST, "amount_mismatch", detail)
            }
            OrderError::PaymentInProgress => Self::new(S::CONFLICT, "payment_in_progress", detail),
            OrderError::NotCancellable => Self::new(S::CONFLICT, "order_not_cancellable", detail),
            OrderError::NotShippable => Self::new(S::CONFLICT, "order_not_shippable", detail),
            OrderError::NotReturnable(_) => Self::new(S::CONFLICT, "order_not_returnable", detail),
            OrderError::InvalidQuantity => {
                Self::new(S::UNPROCESSABLE_ENTITY, "invalid_quantity", detail)
            }
        }
    }
}

impl From<DropFailure> for ApiError {
    fn from(e: DropFailure) -> Self {
        match e {
            DropFailure::Drop(d) => d.into(),
            // The same key was used for a purchase of another quantity.
            DropFailure::Sku(SkuError::ReservationConflict(_)) => ApiError::new(
                S::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used for another request",
            ),
            DropFailure::Sku(s) => s.into(),
            DropFailure::UnknownSku => ApiError::not_found("the SKU is not in the catalog"),
            DropFailure::Order(o) => o.into(),
            DropFailure::Runtime(r) => r.into(),
        }
    }
}

impl From<ChatFailure> for ApiError {
    fn from(e: ChatFailure) -> Self {
        let detail = e.to_string();
        match e {
            ChatFailure::Room(RoomError::NotFound) => Self::not_found(detail),
            ChatFailure::Room(RoomError::NotMember) => {
                Self::new(S::FORBIDDEN, "not_a_member", detail)
            }
            ChatFailure::Room(RoomError::Forbidden) => Self::new(S::FORBIDDEN, "forbidden", detail),
            ChatFailure::Room(RoomError::Invalid(_)) => {
                Self::new(S::UNPROCESSABLE_ENTITY, "invalid_field", detail)
            }
            ChatFailure::Order(o) => o.into(),
            ChatFailure::Runtime(r) => r.into(),
            ChatFailure::RateLimited { retry_after, .. } => {
                Self::new(S::TOO_MANY_REQUESTS, "rate_limited", detail)
                    .retry_after(secs(retry_after))
            }
        }
    }
}
