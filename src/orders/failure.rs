//! [`OrderFailure`]: why an order flow failed, for every order, payment and shipping route;
//! mapped to HTTP once, in `http::error`.

use crate::actors::{AskError, RuntimeError};
use crate::domain::order::OrderError;

#[derive(Debug, thiserror::Error)]
pub enum OrderFailure {
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error(transparent)]
    Order(#[from] OrderError),
    #[error("not enough stock")]
    InsufficientStock { skus: Vec<String> },
    #[error("the coupon does not apply: {0}")]
    CouponNotApplicable(&'static str),
    /// A request the rules refuse before anything happens: a code and what is wrong.
    #[error("{1}")]
    Invalid(&'static str, String),
    #[error("the payment was declined: {reason}")]
    PaymentDeclined { reason: String },
    /// The order's state refuses the request, for a reason the order rules do not know (a
    /// code and what is wrong): a conflict.
    #[error("{1}")]
    Conflict(&'static str, String),
    /// The step is still being retried (gateway or carrier unreachable, a busy entity).
    #[error("{1}")]
    Pending(&'static str, &'static str),
    #[error(transparent)]
    Runtime(RuntimeError),
    /// A rejection no order flow expects (a cart or account refusing what the order did):
    /// the cause is logged, the client is told nothing of it.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<RuntimeError> for OrderFailure {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::NotFound => OrderFailure::NotFound("order"),
            other => OrderFailure::Runtime(other),
        }
    }
}

impl<R: Into<OrderFailure>> From<AskError<R>> for OrderFailure {
    fn from(e: AskError<R>) -> Self {
        e.into_failure()
    }
}

impl From<crate::domain::user::UserError> for OrderFailure {
    fn from(e: crate::domain::user::UserError) -> Self {
        match e {
            crate::domain::user::UserError::NotFound => OrderFailure::NotFound("account"),
            other => OrderFailure::Internal(other.into()),
        }
    }
}

impl From<crate::auth::vault::VaultError> for OrderFailure {
    fn from(e: crate::auth::vault::VaultError) -> Self {
        match crate::auth::accounts::AccountError::from(e) {
            crate::auth::accounts::AccountError::Runtime(r) => r.into(),
            _ => OrderFailure::NotFound("account"),
        }
    }
}

impl From<crate::domain::cart::CartError> for OrderFailure {
    fn from(e: crate::domain::cart::CartError) -> Self {
        OrderFailure::Internal(e.into())
    }
}
