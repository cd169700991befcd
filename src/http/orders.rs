//! Orders (`/orders`): place (from the cart or given items, `Idempotency-Key` required),
//! history, detail, cancel, returns and exchanges, shipment.

use crate::domain::ids::{CouponId, OrderId, SkuId};
use crate::domain::order::{Requester, ReturnItem, ReturnKind};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, AuthUser};
use crate::http::idempotency::{self, Remembered};
use crate::http::order_body::{self, OrderCreated, OrderDetail, ShipmentBody};
use crate::http::state::AppState;
use crate::orders::history::Listing;
use crate::orders::placement::{PlaceOrder, ShippingAddress, fingerprint};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(place_order, list_orders))
        .routes(routes!(get_order))
        .routes(routes!(cancel_order))
        .routes(routes!(request_return))
        .routes(routes!(get_shipment))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    pub sku_id: String,
    /// 1 to 99 per SKU (a SKU listed twice counts once, its quantities added up).
    #[schema(minimum = 1, maximum = 99)]
    pub quantity: u32,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"items": [{"sku_id": "tee-red-M", "quantity": 1}], "shipping_address": {"name": "김민지", "phone": "010-1234-5678", "address": "서울특별시 강남구 테헤란로 427, 5층", "postal_code": "06159"}})))]
pub struct PlaceRequest {
    /// Without items, the cart is ordered.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Option<Vec<ItemRequest>>,
    pub coupon_id: Option<String>,
    /// Without it, the order ships to the profile's address.
    #[schema(value_type = Option<crate::http::schemas::AddressBody>)]
    pub shipping_address: Option<ShippingAddress>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"reason": "사이즈가 맞지 않아요", "kind": "return", "items": [{"sku_id": "tee-red-M", "quantity": 1}]})))]
pub struct ReturnRequestBody {
    #[schema(max_length = 500, pattern = r"\S")]
    pub reason: String,
    /// `return` or `exchange`.
    #[schema(pattern = "^(return|exchange)$")]
    pub kind: String,
    /// Empty or absent: every item.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub items: Vec<ItemRequest>,
}

#[derive(Deserialize, ToSchema)]
pub struct PageQuery {
    pub cursor: Option<String>,
    #[serde(default, deserialize_with = "crate::http::catalog::page_limit")]
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct OrderSummary {
    pub order_id: String,
    pub status: &'static str,
    pub title: String,
    pub item_count: u32,
    pub total: i64,
    pub currency: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct OrderPage {
    pub items: Vec<OrderSummary>,
    pub next_cursor: Option<String>,
}

pub fn order_id(raw: String) -> Result<OrderId, ApiError> {
    OrderId::parse(raw).map_err(|e| ApiError::invalid_id("order_id", e))
}

pub fn requester(user: &AuthUser) -> Requester {
    Requester {
        user_id: user.user_id.clone(),
        admin: user.has_role(crate::domain::role::Role::Admin),
    }
}

pub fn items(raw: Vec<ItemRequest>) -> Result<Vec<(SkuId, u32)>, ApiError> {
    raw.into_iter()
        .map(|i| {
            let sku = SkuId::parse(i.sku_id).map_err(|e| ApiError::invalid_id("sku_id", e))?;
            Ok((sku, i.quantity))
        })
        .collect()
}

/// Places an order: every line reserved or none (`409 insufficient_stock` names the SKUs).
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders", security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, pattern = r"^[!-~]{1,200}$",
        description = "1 to 200 visible ASCII characters, new for each purchase")), request_body = PlaceRequest,
    responses((status = 201, body = OrderCreated), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
pub async fn place_order(
    user: AuthUser,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(mut body): ApiJson<serde_json::Value>,
) -> Result<(StatusCode, axum::Json<OrderCreated>), ApiError> {
    let key = idempotency::key(&headers)?.ok_or_else(|| idempotency::required("POST /orders"))?;
    // `1.0` and `1` are one request (see `ApiJson`), for the fingerprint too.
    crate::orders::placement::whole_numbers(&mut body);
    let fingerprint = fingerprint(&body);
    let req: PlaceRequest =
        serde_json::from_value(body).map_err(|e| ApiError::invalid_body(e.to_string()))?;
    let coupon_id = req
        .coupon_id
        .map(CouponId::parse)
        .transpose()
        .map_err(|e| ApiError::invalid_id("coupon_id", e))?;
    let place = PlaceOrder {
        user: user.user_id.clone(),
        idempotency_key: key,
        fingerprint,
        items: req.items.map(items).transpose()?,
        coupon_id,
        shipping_address: req.shipping_address,
    };
    let (id, order) = state.orders.place_order(place).await?;
    let body = order_body::created(&state.orders, &id, &order);
    Ok((StatusCode::CREATED, axum::Json(body)))
}

/// The caller's orders, newest first.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", security(("bearer" = [])),
    params(("cursor" = Option<String>, Query, pattern = "^[0-9]{1,18}_[A-Za-z0-9._:-]{1,64}$",
        description = "`next_cursor` of the previous page"), ("limit" = Option<usize>, Query)),
    responses((status = 200, body = OrderPage), (status = 400, body = Problem)))]
pub async fn list_orders(
    user: AuthUser,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<axum::Json<OrderPage>, ApiError> {
    page(&state, Listing::User(&user.user_id), q).await
}

pub async fn page(
    state: &AppState,
    listing: Listing<'_>,
    q: PageQuery,
) -> Result<axum::Json<OrderPage>, ApiError> {
    let limit = crate::http::catalog::limit(q.limit, 20, 100)?;
    let (orders, next_cursor) = state
        .orders
        .list(listing, q.cursor.as_deref(), limit)
        .await?;
    let items = orders
        .into_iter()
        .map(|(id, v)| OrderSummary {
            order_id: id.to_string(),
            status: v.status.as_str(),
            title: v.title,
            item_count: v.item_count,
            total: v.total,
            currency: v.currency,
            created_at: v.created_at.to_rfc3339(),
            updated_at: v.updated_at.to_rfc3339(),
        })
        .collect();
    Ok(axum::Json(OrderPage { items, next_cursor }))
}

/// One order with its status history, payment and shipment.
#[utoipa::path(get, path = "/api/v1/orders/{order_id}", tag = "orders", security(("bearer" = [])),
    params(("order_id" = String, Path)),
    responses((status = 200, body = OrderDetail), (status = 404, body = Problem)))]
pub async fn get_order(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<axum::Json<OrderDetail>, ApiError> {
    let id = order_id(raw)?;
    let order = state.orders.get(&requester(&user), &id).await?;
    Ok(axum::Json(
        order_body::detail(&state.orders, &id, &order).await?,
    ))
}

/// Cancels before shipping (refunded through the gateway if paid; stock and coupon restored).
#[utoipa::path(post, path = "/api/v1/orders/{order_id}/cancel", tag = "orders",
    security(("bearer" = [])), params(("order_id" = String, Path)),
    responses((status = 200, body = OrderDetail), (status = 409, body = Problem)))]
pub async fn cancel_order(
    user: AuthUser,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(raw): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id = order_id(raw)?;
    let by = requester(&user);
    let call = Remembered::new(&state, &by, &id, "cancel", idempotency::key(&headers)?, "");
    call.run(async move {
        let order = state.orders.cancel(by, &id).await?;
        Ok((
            StatusCode::OK,
            order_body::detail(&state.orders, &id, &order).await?,
        ))
    })
    .await
}

/// After delivery: a return (ends refunded) or an exchange (ships again). Honours an optional
/// `Idempotency-Key` as cancel does: a retry after a lost answer gets the first answer, not a
/// second return (and a second refund).
#[utoipa::path(post, path = "/api/v1/orders/{order_id}/returns", tag = "orders",
    security(("bearer" = [])), params(("order_id" = String, Path)),
    request_body = ReturnRequestBody,
    responses((status = 201, body = OrderDetail), (status = 409, body = Problem)))]
pub async fn request_return(
    user: AuthUser,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(raw): ApiPath<String>,
    ApiJson(req): ApiJson<ReturnRequestBody>,
) -> Result<Response, ApiError> {
    let id = order_id(raw)?;
    let kind = match req.kind.as_str() {
        "return" => ReturnKind::Return,
        "exchange" => ReturnKind::Exchange,
        _ => {
            return Err(ApiError::invalid_body(
                "kind must be \"return\" or \"exchange\"",
            ));
        }
    };
    if req.reason.trim().is_empty() || req.reason.chars().count() > 500 {
        return Err(ApiError::invalid_body("reason must be 1 to 500 characters"));
    }
    let returned: Vec<ReturnItem> = items(req.items)?
        .into_iter()
        .map(|(sku_id, quantity)| ReturnItem { sku_id, quantity })
        .collect();
    let by = requester(&user);
    // Its fingerprint: the fields as JSON, so no reason can pass for other items.
    let lines: Vec<(&str, u32)> = returned
        .iter()
        .map(|i| (i.sku_id.as_str(), i.quantity))
        .collect();
    let request = serde_json::json!([req.kind, req.reason, lines]).to_string();
    let key = idempotency::key(&headers)?;
    let call = Remembered::new(&state, &by, &id, "returns", key.clone(), &request);
    // Kept with the return too: the key with another request after a lost answer is refused.
    let key = key.map(|k| (k, call.fingerprint().to_owned()));
    call.run(async move {
        let order = state
            .orders
            .request_return(by, &id, kind, req.reason, returned, key)
            .await?;
        let body = order_body::detail(&state.orders, &id, &order).await?;
        Ok((StatusCode::CREATED, body))
    })
    .await
}

/// The order's current shipment.
#[utoipa::path(get, path = "/api/v1/orders/{order_id}/shipment", tag = "orders",
    security(("bearer" = [])), params(("order_id" = String, Path)),
    responses((status = 200, body = ShipmentBody), (status = 404, body = Problem)))]
pub async fn get_shipment(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<axum::Json<ShipmentBody>, ApiError> {
    let id = order_id(raw)?;
    let order = state.orders.get(&requester(&user), &id).await?;
    let shipment = order
        .shipments
        .last()
        .ok_or_else(|| ApiError::not_found("the order has no shipment yet"))?;
    Ok(axum::Json(order_body::shipment_body(shipment)))
}
