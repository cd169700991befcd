//! How order failures read over HTTP: one mapping for every order, payment and shipping route.

use crate::domain::order::OrderError;
use crate::http::error::ApiError;
use crate::orders::OrderFailure;
use axum::http::StatusCode as S;

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
            OrderFailure::PaymentDeclined { reason } => {
                Self::new(S::PAYMENT_REQUIRED, "payment_declined", detail).with("reason", reason)
            }
            OrderFailure::Pending(code, _) => {
                Self::new(S::SERVICE_UNAVAILABLE, code, detail).retry_after(2)
            }
            OrderFailure::Runtime(r) => crate::http::error::runtime(r),
            OrderFailure::Internal(_) => Self::new(S::INTERNAL_SERVER_ERROR, "internal", detail),
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
        }
    }
}
