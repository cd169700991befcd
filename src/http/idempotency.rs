//! `Idempotency-Key` on routes that act on an existing order (confirm, cancel, returns): the first
//! answer is kept in the order (journaled) under the route and key, with a digest of the
//! request; a replay with the same request gets that answer again, another request
//! `422 idempotency_key_reused`. The key is also kept in the requester's account with the
//! order it named (`domain::user::keys`), taken before the route acts, so the same key sent
//! for another order is refused too, racing or not; while the request that took it has not
//! answered, another request with the key is `409 idempotency_key_in_use` (`Retry-After: 1`),
//! so the key's kept answer is the one of the request that acted. (`POST /orders` needs no
//! store: the key names the order.)

use crate::actors::AskError;
use crate::domain::ids::OrderId;
use crate::domain::order::{OrderCommand, Requester, StoredReply};
use crate::domain::user::keys::KeyCommand;
use crate::domain::user::{UserCommand, UserError};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use serde::Serialize;
use std::panic::AssertUnwindSafe;

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
pub struct Remembered {
    state: AppState,
    by: Requester,
    order: OrderId,
    slot: Option<String>,
    fingerprint: String,
}

impl Remembered {
    pub fn new(
        state: &AppState,
        by: &Requester,
        order: &OrderId,
        route: &str,
        key: Option<String>,
        request: &str,
    ) -> Self {
        Self {
            state: state.clone(),
            by: by.clone(),
            order: order.clone(),
            slot: key.map(|k| format!("{route}:{k}")),
            fingerprint: crate::auth::tokens::hex(&<sha2::Sha256 as sha2::Digest>::digest(
                request.as_bytes(),
            )),
        }
    }

    /// The request's digest (hex SHA-256), as kept with its answer.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The remembered answer, or `call`'s (remembered unless it acted on nothing or asks to
    /// retry later).
    ///
    /// With a key, the call runs in a task of its own: a client that goes away (a phone's
    /// time-out) does not stop it half-way, so its answer is still kept for the client's
    /// retry, and the key it took is marked answered on every way out, never left in flight
    /// behind a request that was dropped.
    pub async fn run<T, F>(self, call: F) -> Result<Response, ApiError>
    where
        T: Serialize + Send + 'static,
        F: Future<Output = Result<(StatusCode, T), ApiError>> + Send + 'static,
    {
        let Some(slot) = self.slot.clone() else {
            let (status, body) = call.await?;
            return Ok((status, axum::Json(body)).into_response());
        };
        tokio::spawn(self.keyed(slot, call)).await.map_err(|e| {
            ApiError::internal(anyhow::Error::new(e).context("an idempotent request's task"))
        })?
    }

    /// Takes the key, answers, then lets the key go: answered (it stays this order's), or
    /// given back when the answer acted on nothing.
    async fn keyed<T: Serialize>(
        self,
        slot: String,
        call: impl Future<Output = Result<(StatusCode, T), ApiError>>,
    ) -> Result<Response, ApiError> {
        let taken = self.take(&slot).await?;
        // A panic in the call still lets the key go (as a 500 that may have acted).
        let (answer, acted) = AssertUnwindSafe(self.answer(&slot, call))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                let e = anyhow::anyhow!("an idempotent request panicked");
                (Err(ApiError::internal(e)), true)
            });
        if let Some(taken_by) = taken {
            if acted {
                self.answered(slot, taken_by).await;
            } else {
                self.give_back(slot, taken_by).await;
            }
        }
        answer
    }

    /// The kept answer of `slot`, or `call`'s, kept; and whether the key stays this order's
    /// (`false` after a `404` or `429`, which acted on nothing). A `503` may have acted (a
    /// payment still being confirmed, an ask that timed out after its write): it is not kept,
    /// so a retry acts again, but the key stays the order's.
    async fn answer<T: Serialize>(
        &self,
        slot: &str,
        call: impl Future<Output = Result<(StatusCode, T), ApiError>>,
    ) -> (Result<Response, ApiError>, bool) {
        if let Ok(order) = self.state.orders.get(&self.by, &self.order).await
            && let Some(kept) = order.replies.get(slot)
        {
            if kept.fingerprint != self.fingerprint {
                let reused = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "the idempotency key was used with a different request",
                );
                return (Err(reused), true);
            }
            return (Ok(replay(kept)), true);
        }
        let response = match call.await {
            Ok((status, body)) => (status, axum::Json(body)).into_response(),
            // The key's own request (whose answer was lost) has acted: its retry must find
            // the key free of this refusal, so the refusal is not kept.
            Err(e) if e.code == "idempotency_key_reused" => return (Err(e), true),
            Err(e) => e.into_response(),
        };
        let status = response.status();
        match status {
            StatusCode::SERVICE_UNAVAILABLE => return (Ok(response), true),
            StatusCode::NOT_FOUND | StatusCode::TOO_MANY_REQUESTS => return (Ok(response), false),
            _ => {}
        }
        let bytes = match axum::body::to_bytes(response.into_body(), 1 << 20).await {
            Ok(bytes) => bytes,
            Err(e) => {
                let e = anyhow::Error::new(e).context("reading the reply to keep");
                return (Err(ApiError::internal(e)), true);
            }
        };
        let kept = StoredReply {
            fingerprint: self.fingerprint.clone(),
            status: status.as_u16(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
        };
        let remember = OrderCommand::RememberReply {
            key: slot.to_owned(),
            reply: kept.clone(),
        };
        match self.state.orders.ask(&self.order, remember).await {
            Ok(_) => (Ok(replay(&kept)), true),
            Err(e) => (Err(e.into()), true),
        }
    }
}

impl Remembered {
    /// Takes `slot` for this order in the requester's account, as this request (a random
    /// token, returned); `None` when the requester has no account (the operator token),
    /// which then has the order's memory only.
    ///
    /// Errors: `422 idempotency_key_reused` when the key named another order, `409
    /// idempotency_key_in_use` while another request with it has not answered; the account's
    /// errors (503 when it cannot be reached).
    async fn take(&self, slot: &str) -> Result<Option<String>, ApiError> {
        let taken_by = format!("{:016x}", rand::random::<u64>());
        let command = UserCommand::Keys(KeyCommand::Use {
            slot: slot.to_owned(),
            order_id: self.order.to_string(),
            taken_by: taken_by.clone(),
        });
        let users = &self.state.accounts.users;
        match users.ask(&self.by.user_id, command).await {
            Ok(_) => Ok(Some(taken_by)),
            Err(AskError::Rejected(UserError::NotFound)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Marks `slot` answered by `taken_by` (its answer is kept, or may have acted): other
    /// requests with the key may go on. A failure (the account cannot be reached) leaves it
    /// in flight until [`crate::domain::user::keys::IN_FLIGHT`] has passed.
    async fn answered(&self, slot: String, taken_by: String) {
        let command = UserCommand::Keys(KeyCommand::Answered { slot, taken_by });
        let users = &self.state.accounts.users;
        if let Err(e) = users.ask(&self.by.user_id, command).await {
            tracing::debug!(error = %e, "an idempotency key stays in flight");
        }
    }

    /// Gives `slot` back after an answer that acted on nothing: the key may then name
    /// another order (unless another request took it: only its taker gives it back). A
    /// failure only leaves the key taken for this order.
    async fn give_back(&self, slot: String, taken_by: String) {
        let command = UserCommand::Keys(KeyCommand::Release { slot, taken_by });
        let users = &self.state.accounts.users;
        if let Err(e) = users.ask(&self.by.user_id, command).await {
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
