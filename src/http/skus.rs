//! Admin stock routes of a SKU: set or adjust its stock, and hold, commit or release a
//! reservation for an order. The reservation routes exist so stock can be exercised before the
//! orders saga does it; they stay as operator tools. An order's reservation is its saga's to
//! commit: reserving or committing under an order's id is `409 held_by_order`. Releasing one
//! by hand is allowed (an operator freeing a unit an order holds during an incident): the
//! order's payment then finds its hold gone and is not captured (`reservation_lapsed`).

use crate::actors::sku::StockLevels;
use crate::domain::ids::{OrderId, SkuId, UserId};
use crate::domain::inventory::{ReservationStatus, SkuCommand};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{AdminUser, ApiJson, ApiPath};
use crate::http::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The longest a reservation may be held through the admin route.
const MAX_TTL_SECS: u64 = 86_400;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_stock))
        .routes(routes!(reserve_stock))
        .routes(routes!(commit_reservation))
        .routes(routes!(release_reservation))
}

/// Exactly one of `available` (set) or `delta` (adjust); documented as
/// [`crate::http::schemas::StockChangeBody`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockChange {
    pub available: Option<u64>,
    pub delta: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"order_id": "manual-1", "user_id": "u_3kR9x2LmQ0aB7cD1eF4g", "quantity": 1, "ttl_secs": 600})))]
pub struct ReserveRequest {
    pub order_id: String,
    pub user_id: String,
    #[schema(minimum = 1, maximum = 10_000)]
    pub quantity: u32,
    /// Seconds until the reservation expires (default 600, at most 86400).
    #[schema(minimum = 1, maximum = 86_400)]
    pub ttl_secs: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReservationBody {
    pub order_id: String,
    pub quantity: u32,
    /// `reserved`, `sold` or `released`.
    pub status: String,
    pub expires_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(examples(json!({"sku_id": "tee-red-M", "available": 120, "reserved": 3, "sold": 41})))]
pub struct StockBody {
    pub sku_id: String,
    pub available: u64,
    pub reserved: u64,
    pub sold: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation: Option<ReservationBody>,
}

impl From<StockLevels> for StockBody {
    fn from(l: StockLevels) -> Self {
        Self {
            sku_id: l.sku_id.to_string(),
            available: l.available,
            reserved: l.reserved,
            sold: l.sold,
            reservation: l.reservation.map(|r| ReservationBody {
                order_id: r.order_id.to_string(),
                quantity: r.quantity,
                status: match r.status {
                    ReservationStatus::Reserved => "reserved",
                    ReservationStatus::Sold => "sold",
                    ReservationStatus::Released => "released",
                    ReservationStatus::Returned => "returned",
                }
                .to_string(),
                expires_at: r.expires_at.map(|t| t.to_rfc3339()),
            }),
        }
    }
}

fn sku_id(raw: String) -> Result<SkuId, ApiError> {
    SkuId::parse(raw).map_err(|e| ApiError::invalid_id("sku_id", e))
}

fn order_id(raw: String) -> Result<OrderId, ApiError> {
    OrderId::parse(raw).map_err(|e| ApiError::invalid_id("order_id", e))
}

impl StockChange {
    fn into_command(self) -> Result<SkuCommand, ApiError> {
        match (self.available, self.delta) {
            (Some(available), None) => Ok(SkuCommand::SetStock { available }),
            (None, Some(delta)) => Ok(SkuCommand::AdjustStock { delta }),
            _ => Err(ApiError::invalid_body(
                "give exactly one of `available` or `delta`",
            )),
        }
    }
}

/// Sets (`available`) or adjusts (`delta`) the available stock of a SKU.
#[utoipa::path(put, path = "/api/v1/admin/skus/{sku_id}/stock", tag = "admin",
    params(("sku_id" = String, Path)), request_body = crate::http::schemas::StockChangeBody, security(("bearer" = ["admin"])),
    responses((status = 200, body = StockBody), (status = 409, body = Problem),
        (status = 422, body = Problem), (status = 401, body = Problem)))]
pub async fn put_stock(
    _: AdminUser,
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    ApiJson(change): ApiJson<StockChange>,
) -> Result<axum::Json<StockBody>, ApiError> {
    let id = sku_id(raw)?;
    let levels = state.skus.ask(&id, change.into_command()?).await?;
    Ok(axum::Json(levels.into()))
}

/// `id` unless it names an order the engine placed or promised: that order's saga commits its
/// reservation once paid, and a commit here would sell a unit the order may never pay for (its
/// cancellation then loses the unit); a reservation here would add units to its hold.
async fn not_an_order(state: &AppState, id: OrderId) -> Result<OrderId, ApiError> {
    if state.orders.exists(&id).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "held_by_order",
            format!("{id} is an order: its payment, cancellation or expiry settles its stock"),
        ));
    }
    Ok(id)
}

/// Reserves units of a SKU for an order; replaying the same order is idempotent.
#[utoipa::path(post, path = "/api/v1/admin/skus/{sku_id}/reservations", tag = "admin",
    params(("sku_id" = String, Path)), request_body = ReserveRequest, security(("bearer" = ["admin"])),
    responses((status = 201, body = StockBody), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
pub async fn reserve_stock(
    _: AdminUser,
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    ApiJson(req): ApiJson<ReserveRequest>,
) -> Result<(StatusCode, axum::Json<StockBody>), ApiError> {
    let id = sku_id(raw)?;
    let ttl = req.ttl_secs.unwrap_or(600);
    if ttl == 0 || ttl > MAX_TTL_SECS {
        return Err(ApiError::invalid_body(format!(
            "ttl_secs must be 1..={MAX_TTL_SECS}"
        )));
    }
    let command = SkuCommand::Reserve {
        order_id: not_an_order(&state, order_id(req.order_id)?).await?,
        user_id: UserId::parse(req.user_id).map_err(|e| ApiError::invalid_id("user_id", e))?,
        qty: req.quantity,
        expires_at: state.clock.now().plus(Duration::from_secs(ttl)),
    };
    let levels = state.skus.ask(&id, command).await?;
    Ok((StatusCode::CREATED, axum::Json(levels.into())))
}

/// Turns an order's reserved units into sold ones.
#[utoipa::path(post, path = "/api/v1/admin/skus/{sku_id}/reservations/{order_id}/commit",
    tag = "admin", params(("sku_id" = String, Path), ("order_id" = String, Path)),
    security(("bearer" = ["admin"])),
    responses((status = 200, body = StockBody), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn commit_reservation(
    _: AdminUser,
    State(state): State<AppState>,
    ApiPath((sku, order)): ApiPath<(String, String)>,
) -> Result<axum::Json<StockBody>, ApiError> {
    let command = SkuCommand::Commit {
        order_id: not_an_order(&state, order_id(order)?).await?,
    };
    let levels = state.skus.ask(&sku_id(sku)?, command).await?;
    Ok(axum::Json(levels.into()))
}

/// Releases an order's reserved units back to available.
#[utoipa::path(delete, path = "/api/v1/admin/skus/{sku_id}/reservations/{order_id}",
    tag = "admin", params(("sku_id" = String, Path), ("order_id" = String, Path)),
    security(("bearer" = ["admin"])),
    responses((status = 200, body = StockBody), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn release_reservation(
    _: AdminUser,
    State(state): State<AppState>,
    ApiPath((sku, order)): ApiPath<(String, String)>,
) -> Result<axum::Json<StockBody>, ApiError> {
    let command = SkuCommand::Release {
        order_id: order_id(order)?,
    };
    let levels = state.skus.ask(&sku_id(sku)?, command).await?;
    Ok(axum::Json(levels.into()))
}
