//! The caller's notification inbox (`/users/me/notifications`), newest first.

use crate::domain::user::UserCommand;
use crate::domain::user::inbox::Notification;
use crate::http::error::ApiError;
use crate::http::extract::{ApiQuery, AuthUser};
use crate::http::orders::PageQuery;
use crate::http::state::AppState;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_notifications))
}

/// One notification: `text` is English; the fields after it say what it is about (each
/// present when it applies), for a client that words it in its own language.
#[derive(Serialize, ToSchema)]
#[schema(examples(json!({"id": "o3f9a0c1d2e4b5a67-9", "kind": "order_refunded", "text": "A refund of 12,900 KRW was issued. (order o3f9a0c1d2e4b5a67)", "at": "2026-11-30T09:12:44Z", "order_id": "o3f9a0c1d2e4b5a67", "amount": 12900, "currency": "KRW", "name": "Oversized Tee"})))]
pub struct NotificationBody {
    /// `order_paid`, `order_shipped`, `order_delivered`, `order_cancelled`, `order_refunded`,
    /// `order_expired`, `drop_starting`, `chat_mention`.
    pub kind: String,
    pub id: String,
    pub text: String,
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_id: Option<String>,
    /// A refund's amount, in minor units of `currency`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The room's name (`chat_mention`), the product's (`drop_starting`), the order's title
    /// (`order_*`: its first item's name, the `title` of `GET /orders`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Which notice of its kind: `order_cancelled`'s cause (`customer`, `store`, `stock_lost`,
    /// `gateway`); `cancel_refused` on an `order_shipped` that a cancellation could not stop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<&Notification> for NotificationBody {
    fn from(n: &Notification) -> Self {
        Self {
            id: n.id.clone(),
            kind: n.kind.clone(),
            text: n.text.clone(),
            at: n.at.to_rfc3339(),
            order_id: n.order_id.clone(),
            room_id: n.room_id.clone(),
            drop_id: n.drop_id.clone(),
            amount: n.amount,
            currency: n.currency.clone(),
            name: n.name.clone(),
            reason: n.reason.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct NotificationPage {
    pub items: Vec<NotificationBody>,
    pub next_cursor: Option<String>,
}

/// The caller's notifications, newest first; the cursor is the last id shown (an id that has
/// dropped off the inbox, and everything older with it, gives an empty page). A cursor that
/// cannot be a notification id (1 to [`MAX_CURSOR`] of `A-Za-z0-9._:-`) is
/// `400 invalid_cursor`.
#[utoipa::path(get, path = "/api/v1/users/me/notifications", tag = "users",
    security(("bearer" = [])),
    params(("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9._:-]{1,200}$",
            description = "the id of the last notification of the previous page"),
        ("limit" = Option<usize>, Query)),
    responses((status = 200, body = NotificationPage), (status = 400, body = crate::http::error::Problem)))]
pub async fn list_notifications(
    user: AuthUser,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<axum::Json<NotificationPage>, ApiError> {
    let limit = crate::http::catalog::limit(q.limit, 20, 100)?;
    if let Some(c) = &q.cursor
        && !is_notification_id(c)
    {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_cursor",
            "the cursor is not a notification id",
        ));
    }
    let account = state
        .accounts
        .users
        .ask(&user.user_id, UserCommand::Get)
        .await?;
    let newest_first = account.state.inbox.iter().rev();
    // An id no longer in the inbox has dropped off its old end, and so has everything older:
    // the page after it is empty.
    let after: Vec<_> = match &q.cursor {
        None => newest_first.collect(),
        Some(c) => newest_first.skip_while(|n| &n.id != c).skip(1).collect(),
    };
    let next_cursor = (after.len() > limit).then(|| after[limit - 1].id.clone());
    let items = after
        .into_iter()
        .take(limit)
        .map(NotificationBody::from)
        .collect();
    Ok(axum::Json(NotificationPage { items, next_cursor }))
}

/// The longest notification id: an order's (64) or a room's and a message's, with a suffix.
const MAX_CURSOR: usize = 200;

/// Whether `text` may be a notification id: ids are made of entity ids and dashes.
fn is_notification_id(text: &str) -> bool {
    (1..=MAX_CURSOR).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}
