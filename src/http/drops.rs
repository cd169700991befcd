//! Flash-sale drop routes: an admin creates a drop, anyone reads it, a customer buys from it.
//! Thin: the rules are the SKU entity's, the flow is `crate::drops`.

use crate::domain::drop::{DropId, DropSpec, DropStatus, DropView};
use crate::domain::ids::SkuId;
use crate::domain::time::Timestamp;
use crate::drops::Purchase;
use crate::http::catalog::{DEFAULT_LIMIT, MAX_LIMIT, limit};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{AdminUser, ApiJson, ApiJsonBytes, ApiPath, ApiQuery, AuthUser};
use crate::http::idempotency;
use crate::http::order_body::{self, OrderCreated};
use crate::http::state::AppState;
use crate::orders::placement::ShippingAddress;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_drop))
        .routes(routes!(get_drop))
        .routes(routes!(list_drops))
        .routes(routes!(purchase))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"sku_id": "sneaker-270", "quantity": 100, "price": 139000, "starts_at": "2026-12-01T10:00:00+09:00", "ends_at": "2026-12-01T12:00:00+09:00", "per_user_limit": 1})))]
pub struct CreateDrop {
    pub sku_id: String,
    #[schema(minimum = 1, maximum = 10_000_000)]
    pub quantity: u32,
    /// Minor units.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    pub price: i64,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub starts_at: String,
    /// RFC 3339, after `starts_at`.
    #[schema(format = DateTime)]
    pub ends_at: Option<String>,
    #[schema(minimum = 1, maximum = 100)]
    pub per_user_limit: u32,
}

#[derive(Serialize, ToSchema)]
#[schema(examples(json!({"drop_id": "d-sneaker-270-1201", "sku_id": "sneaker-270", "product_id": "p0194c3a1b2c4e1f2a3b4c5d6e7f80912", "status": "live", "quantity": 100, "remaining": 37, "reserved": 5, "sold": 58, "shelved": 0, "price": 139000, "currency": "KRW", "per_user_limit": 1, "starts_at": "2026-12-01T01:00:00Z", "ends_at": "2026-12-01T03:00:00Z"})))]
pub struct DropBody {
    pub drop_id: String,
    pub sku_id: String,
    /// The product the SKU belongs to.
    pub product_id: Option<String>,
    /// `scheduled`, `live`, `sold_out` or `ended`.
    pub status: &'static str,
    pub quantity: u32,
    pub remaining: u32,
    pub reserved: u32,
    pub sold: u32,
    /// Units back on the SKU's shelf since the drop ended (unsold, or released after the
    /// end): `sold + reserved + remaining + shelved == quantity`.
    pub shelved: u32,
    pub price: i64,
    pub currency: String,
    pub per_user_limit: u32,
    pub starts_at: String,
    pub ends_at: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"quantity": 1})))]
pub struct PurchaseBody {
    /// Within the drop's `per_user_limit`.
    #[schema(minimum = 1, maximum = 100)]
    pub quantity: u32,
    /// Without it, the order ships to the profile's address.
    #[schema(value_type = Option<crate::http::schemas::AddressBody>)]
    pub shipping_address: Option<ShippingAddress>,
}

fn body(state: &AppState, sku: &SkuId, d: &DropView) -> DropBody {
    DropBody {
        drop_id: d.drop_id.to_string(),
        sku_id: sku.to_string(),
        product_id: state.catalog.index.owner_of(sku).map(|p| p.to_string()),
        status: d.status(state.drops.now()).as_str(),
        quantity: d.quantity,
        remaining: d.remaining,
        reserved: d.reserved,
        sold: d.sold,
        shelved: d.shelved,
        price: d.price,
        currency: state.currency.to_string(),
        per_user_limit: d.per_user_limit,
        starts_at: d.starts_at.to_rfc3339(),
        ends_at: d.ends_at.map(|t| t.to_rfc3339()),
    }
}

fn time(field: &str, raw: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse_rfc3339(raw).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("{field} must be an RFC 3339 time"),
        )
    })
}

fn drop_id(raw: String) -> Result<DropId, ApiError> {
    DropId::parse(raw).map_err(|e| ApiError::invalid_id("drop_id", e))
}

/// Sets a drop up: its units are taken from the SKU's available stock. A window already over
/// (`ends_at` past) is `422 invalid_field`: the drop could sell nothing.
#[utoipa::path(post, path = "/api/v1/admin/drops", tag = "drops", security(("bearer" = ["admin"])),
    request_body = CreateDrop,
    responses((status = 201, body = DropBody), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_drop(
    _admin: AdminUser,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateDrop>,
) -> Result<(StatusCode, axum::Json<DropBody>), ApiError> {
    let sku = SkuId::parse(req.sku_id).map_err(|e| ApiError::invalid_id("sku_id", e))?;
    let spec = DropSpec {
        quantity: req.quantity,
        price: req.price,
        starts_at: time("starts_at", &req.starts_at)?,
        ends_at: req
            .ends_at
            .as_deref()
            .map(|t| time("ends_at", t))
            .transpose()?,
        per_user_limit: req.per_user_limit,
    };
    crate::domain::drop::check_not_over(&spec, state.clock.now())
        .map_err(crate::drops::DropFailure::from)?;
    let (_, view) = state.drops.create(&sku, spec).await?;
    Ok((StatusCode::CREATED, axum::Json(body(&state, &sku, &view))))
}

/// A drop and its remaining count; anonymous.
#[utoipa::path(get, path = "/api/v1/drops/{drop_id}", tag = "drops",
    params(("drop_id" = String, Path)),
    responses((status = 200, body = DropBody), (status = 404, body = Problem)))]
pub async fn get_drop(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<axum::Json<DropBody>, ApiError> {
    let id = drop_id(raw)?;
    let (sku, view) = state
        .drops
        .get(&id)
        .ok_or_else(|| ApiError::not_found("no such drop"))?;
    Ok(axum::Json(body(&state, &sku, &view)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DropsQuery {
    /// `scheduled`, `live`, `sold_out` or `ended`.
    #[param(pattern = "^(scheduled|live|sold_out|ended)$")]
    pub status: Option<String>,
    /// Only the drops of this product's SKUs (`400 invalid_id` for one that cannot be an id).
    #[param(pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    pub product_id: Option<String>,
    /// `next_cursor` of the previous page: the last drop's start (ms) and id.
    #[param(pattern = "^[0-9]{1,18}~[A-Za-z0-9._:-]{1,64}$")]
    pub cursor: Option<String>,
    /// 1 to 100 (default 20).
    #[serde(default, deserialize_with = "crate::http::catalog::page_limit")]
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct DropPage {
    pub items: Vec<DropBody>,
    pub next_cursor: Option<String>,
}

/// A page of drops, soonest start first; anonymous. `status` filters by the status now,
/// `product_id` by the product whose SKU a drop sells.
#[utoipa::path(get, path = "/api/v1/drops", tag = "drops", params(DropsQuery),
    responses((status = 200, body = DropPage), (status = 400, body = Problem)))]
pub async fn list_drops(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DropsQuery>,
) -> Result<axum::Json<DropPage>, ApiError> {
    let bad = |code: &'static str, what: &str| {
        ApiError::new(StatusCode::BAD_REQUEST, code, what.to_owned())
    };
    let limit = limit(query.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let status = match query.status.as_deref() {
        None => None,
        Some("scheduled") => Some(DropStatus::Scheduled),
        Some("live") => Some(DropStatus::Live),
        Some("sold_out") => Some(DropStatus::SoldOut),
        Some("ended") => Some(DropStatus::Ended),
        Some(_) => {
            let what = "status must be scheduled, live, sold_out or ended";
            return Err(bad("invalid_query", what));
        }
    };
    // The cursor: the last drop's start (ms) and id, `millis~drop_id`.
    let after = match query.cursor.as_deref() {
        None => None,
        Some(raw) => {
            let parsed = raw
                .split_once('~')
                .and_then(|(at, id)| Some((Timestamp(at.parse().ok()?), DropId::parse(id).ok()?)));
            Some(parsed.ok_or_else(ApiError::invalid_cursor)?)
        }
    };
    let product = query
        .product_id
        .map(crate::http::catalog::product_id)
        .transpose()?;
    let of_product = |sku: &SkuId| {
        product
            .as_ref()
            .is_none_or(|p| state.catalog.index.owner_of(sku).as_ref() == Some(p))
    };
    let (page, more) = state.drops.list(status, after.as_ref(), limit, of_product);
    let next_cursor = more
        .then(|| {
            page.last()
                .map(|(_, d)| format!("{}~{}", d.starts_at.0, d.drop_id))
        })
        .flatten();
    let items = page.iter().map(|(sku, d)| body(&state, sku, d)).collect();
    Ok(axum::Json(DropPage { items, next_cursor }))
}

/// Buys from a live drop: 201 with an order awaiting payment, once the reservation is durable.
#[utoipa::path(post, path = "/api/v1/drops/{drop_id}/purchase", tag = "drops",
    security(("bearer" = [])), params(("drop_id" = String, Path),
        ("Idempotency-Key" = String, Header, pattern = r"^[!-~]{1,200}$",
        description = "1 to 200 visible ASCII characters, new for each purchase")), request_body = PurchaseBody,
    responses((status = 201, body = OrderCreated), (status = 409, body = Problem),
        (status = 429, body = Problem)))]
pub async fn purchase(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    headers: HeaderMap,
    ApiJsonBytes(req, request): ApiJsonBytes<PurchaseBody>,
) -> Result<(StatusCode, axum::Json<OrderCreated>), ApiError> {
    let id = drop_id(raw)?;
    let key = idempotency::key(&headers)?
        .ok_or_else(|| idempotency::required("POST /drops/{drop_id}/purchase"))?;
    let purchase = Purchase {
        user: user.user_id.clone(),
        drop_id: id,
        quantity: req.quantity,
        idempotency_key: key,
        request,
        shipping_address: req.shipping_address,
    };
    let (order_id, order) = state.drops.purchase(purchase).await?;
    let created = order_body::created(&state.orders, &order_id, &order);
    Ok((StatusCode::CREATED, axum::Json(created)))
}
