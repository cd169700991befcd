//! `Idempotency-Key` on routes that act on an existing order (confirm, cancel): the first
//! answer is kept in the order (journaled) under the route and key, with a digest of the
//! request; a replay with the same request gets that answer again, another request
//! `422 idempotency_key_reused`. The key is also kept in the requester's account with the
//! order it named (`domain::user::keys`), taken before the route acts, so the same key sent
//! for another order is refused too, racing or not. (`POST /orders` needs no store: the key
//! names the order.)

use crate::actors::AskError;
use crate::domain::ids::OrderId;
use crate::domain::order::{OrderCommand, Requester, StoredReply};
use crate::domain::user::keys::KeyCommand;
use crate::domain::user::{UserCommand, UserError};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

const MAX_KEY: usize = 200;

/// The request's key, if any; one that is empty, too long or not visible ASCII is refused.
pub fn key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = raw.to_str().unwrap_or_default().trim();
    if key.is_empty() || key.len() > MAX_KEY || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            format!("Idempotency-Key must be 1 to {MAX_KEY} visible ASCII characters"),
        ));
    }
    Ok(Some(key.to_owned()))
}

pub fn required(route: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "idempotency_key_required",
        format!("{route} requires an Idempotency-Key header"),
    )
}

/// One call of a route that remembers its answer.
pub struct Remembered<'a> {
    state: &'a AppState,
    by: &'a Requester,
    order: &'a OrderId,
    slot: Option<String>,
    fingerprint: String,
}

impl<'a> Remembered<'a> {
    pub fn new(
        state: &'a AppState,
        by: &'a Requester,
        order: &'a OrderId,
        route: &str,
        key: Option<String>,
        request: &str,
    ) -> Self {
        Self {
            state,
            by,
            order,
            slot: key.map(|k| format!("{route}:{k}")),
            fingerprint: crate::auth::tokens::hex(&<sha2::Sha256 as sha2::Digest>::digest(
                request.as_bytes(),
            )),
        }
    }

    /// The remembered answer, or `call`'s (remembered unless it asks to retry later).
    pub async fn run<T: Serialize>(
        self,
        call: impl Future<Output = Result<(StatusCode, T), ApiError>>,
    ) -> Result<Response, ApiError> {
        let Some(slot) = self.slot.clone() else {
            let (status, body) = call.await?;
            return Ok((status, axum::Json(body)).into_response());
        };
        let taken = self.take(&slot).await?;
        if let Ok(order) = self.state.orders.get(self.by, self.order).await
            && let Some(kept) = order.replies.get(&slot)
        {
            if kept.fingerprint != self.fingerprint {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "the idempotency key was used with a different request",
                ));
            }
            return Ok(replay(kept));
        }
        let response = match call.await {
            Ok((status, body)) => (status, axum::Json(body)).into_response(),
            Err(e) => e.into_response(),
        };
        let status = response.status();
        if status == StatusCode::SERVICE_UNAVAILABLE
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::NOT_FOUND
        {
            if taken {
                self.give_back(slot).await;
            }
            return Ok(response);
        }
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.map_err(|e| {
            ApiError::internal(anyhow::Error::new(e).context("reading the reply to keep"))
        })?;
        let kept = StoredReply {
            fingerprint: self.fingerprint,
            status: status.as_u16(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
        };
        let remember = OrderCommand::RememberReply {
            key: slot,
            reply: kept.clone(),
        };
        self.state.orders.ask(self.order, remember).await?;
        drop(parts);
        Ok(replay(&kept))
    }
}

impl Remembered<'_> {
    /// Takes `slot` for this order in the requester's account: false when the requester has
    /// no account (the operator token), which then has the order's memory only.
    ///
    /// Errors: `422 idempotency_key_reused` when the key named another order; the account's
    /// errors (503 when it cannot be reached).
    async fn take(&self, slot: &str) -> Result<bool, ApiError> {
        let command = UserCommand::Keys(KeyCommand::Use {
            slot: slot.to_owned(),
            order_id: self.order.to_string(),
        });
        match self
            .state
            .accounts
            .users
            .ask(&self.by.user_id, command)
            .await
        {
            Ok(_) => Ok(true),
            Err(AskError::Rejected(UserError::NotFound)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives `slot` back after an answer that is not kept: the key may then name another
    /// order. A failure only leaves the key taken for this order.
    async fn give_back(&self, slot: String) {
        let command = UserCommand::Keys(KeyCommand::Release {
            slot,
            order_id: self.order.to_string(),
        });
        if let Err(e) = self
            .state
            .accounts
            .users
            .ask(&self.by.user_id, command)
            .await
        {
            tracing::debug!(error = %e, "an idempotency key stays taken");
        }
    }
}

fn replay(kept: &StoredReply) -> Response {
    let status = StatusCode::from_u16(kept.status).unwrap_or(StatusCode::OK);
    let content_type = if status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    let mut response = (status, kept.body.clone()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
