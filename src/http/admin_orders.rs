//! Admin routes of orders: every order, shipping an order (books the carrier over HTTP), and
//! the outbox's dead letters with their retry.

use crate::domain::order::OrderStatus;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{AdminUser, ApiPath, ApiQuery};
use crate::http::order_body::{self, ShipmentBody};
use crate::http::orders::{OrderPage, PageQuery, order_id, page};
use crate::http::state::AppState;
use crate::orders::history::Listing;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_all_orders))
        .routes(routes!(ship_order))
        .routes(routes!(outbox))
        .routes(routes!(dead_letters))
        .routes(routes!(retry_dead_letter))
}

/// `GET /admin/orders` query: a page, optionally of one status.
#[derive(Deserialize)]
pub struct AdminPageQuery {
    pub status: Option<String>,
    pub cursor: Option<String>,
    #[serde(default, deserialize_with = "crate::http::catalog::page_limit")]
    pub limit: Option<usize>,
}

/// Every order, or every order in one `status` (e.g. `paid`: the orders to ship), newest
/// first; an unknown status is `400 invalid_status`.
#[utoipa::path(get, path = "/api/v1/admin/orders", tag = "admin", security(("bearer" = ["admin"])),
    params(("status" = Option<String>, Query,
        pattern = "^(awaiting_payment|paid|preparing|shipped|delivered|cancelled|payment_failed|expired|return_requested|returned|refunded)$",
        description = "only orders in this status"),
        ("cursor" = Option<String>, Query, pattern = "^[0-9]{1,18}_[A-Za-z0-9._:-]{1,64}$",
        description = "`next_cursor` of the previous page"), ("limit" = Option<usize>, Query)),
    responses((status = 200, body = OrderPage), (status = 400, body = Problem),
        (status = 403, body = Problem)))]
pub async fn list_all_orders(
    _admin: AdminUser,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AdminPageQuery>,
) -> Result<axum::Json<OrderPage>, ApiError> {
    let listing = match q.status.as_deref() {
        None => Listing::All,
        Some(name) => Listing::Status(OrderStatus::parse_visible(name).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_status",
                "status is one of the order statuses in the API contract",
            )
        })?),
    };
    let page_query = PageQuery {
        cursor: q.cursor,
        limit: q.limit,
    };
    page(&state, listing, page_query).await
}

#[derive(Serialize, ToSchema)]
pub struct Shipped {
    pub order_id: String,
    pub status: &'static str,
    pub shipment: ShipmentBody,
}

/// Books the carrier for a paid order; 200 with the tracking number.
#[utoipa::path(post, path = "/api/v1/admin/orders/{order_id}/ship", tag = "admin",
    security(("bearer" = ["admin"])), params(("order_id" = String, Path)),
    responses((status = 200, body = Shipped), (status = 409, body = Problem),
        (status = 503, body = Problem)))]
pub async fn ship_order(
    _admin: AdminUser,
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<axum::Json<Shipped>, ApiError> {
    let id = order_id(raw)?;
    let order = state.orders.ship(&id).await?;
    let shipment = order
        .shipments
        .last()
        .ok_or_else(|| ApiError::not_found("no shipment"))?;
    Ok(axum::Json(Shipped {
        order_id: id.to_string(),
        status: order.status.map_or("paid", |s| s.as_str()),
        shipment: order_body::shipment_body(shipment),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct Outbox {
    /// Orders with at least one step still to run.
    pub orders_owing: usize,
    /// Steps still to run, dead letters excluded.
    pub steps_pending: usize,
    /// Of those, the steps whose time has come (a growing number means the outbox is stuck).
    pub steps_due: usize,
    pub dead_letters: usize,
    /// RFC 3339; when the oldest pending step was queued: how long the outbox has owed it,
    /// whatever its retries' backoff (alert on its age).
    pub oldest_pending_at: Option<String>,
    /// The order that step belongs to: the one to look at first.
    pub oldest_pending_order_id: Option<String>,
    /// Drop orders answered whose order is not written yet (normally a handful, briefly).
    pub orders_promised: usize,
}

/// The outbox at a glance: steps owed, due and dead.
#[utoipa::path(get, path = "/api/v1/admin/outbox", tag = "admin", security(("bearer" = ["admin"])),
    responses((status = 200, body = Outbox), (status = 403, body = Problem)))]
pub async fn outbox(
    _admin: AdminUser,
    State(state): State<AppState>,
) -> Result<axum::Json<Outbox>, ApiError> {
    let s = state.orders.outbox().await?;
    Ok(axum::Json(Outbox {
        orders_owing: s.orders_owing,
        steps_pending: s.steps_pending,
        steps_due: s.steps_due,
        dead_letters: s.dead_letters,
        oldest_pending_at: s.oldest_pending.as_ref().map(|(t, _)| t.to_rfc3339()),
        oldest_pending_order_id: s.oldest_pending.map(|(_, id)| id.to_string()),
        orders_promised: state.orders.promised(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct DeadLetter {
    pub order_id: String,
    pub effect_id: u32,
    pub action: String,
    pub attempts: u32,
    pub last_error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DeadLetters {
    pub items: Vec<DeadLetter>,
}

/// Steps that failed too often and wait for an operator.
#[utoipa::path(get, path = "/api/v1/admin/dead-letters", tag = "admin", security(("bearer" = ["admin"])),
    responses((status = 200, body = DeadLetters), (status = 403, body = Problem)))]
pub async fn dead_letters(
    _admin: AdminUser,
    State(state): State<AppState>,
) -> Result<axum::Json<DeadLetters>, ApiError> {
    let items = state
        .orders
        .dead_letters()
        .await?
        .into_iter()
        .map(|(id, e)| DeadLetter {
            order_id: id.to_string(),
            effect_id: e.id,
            action: e.action,
            attempts: e.attempts,
            last_error: e.last_error,
        })
        .collect();
    Ok(axum::Json(DeadLetters { items }))
}

/// Sends a dead letter back to the outbox and runs it now; the order's detail.
#[utoipa::path(post, path = "/api/v1/admin/dead-letters/{order_id}/{effect_id}/retry",
    tag = "admin", security(("bearer" = ["admin"])),
    params(("order_id" = String, Path), ("effect_id" = u32, Path)),
    responses((status = 200, body = order_body::OrderDetail), (status = 404, body = Problem)))]
pub async fn retry_dead_letter(
    _admin: AdminUser,
    State(state): State<AppState>,
    ApiPath((raw, effect)): ApiPath<(String, u32)>,
) -> Result<axum::Json<order_body::OrderDetail>, ApiError> {
    let id = order_id(raw)?;
    let order = state.orders.retry_dead_letter(&id, effect).await?;
    Ok(axum::Json(
        order_body::detail(&state.orders, &id, &order).await?,
    ))
}
