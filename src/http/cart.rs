//! The shopper's cart (`/cart`): lines at today's catalog prices (what ordering the cart
//! charges), one coupon, totals.

use crate::domain::cart::CartState;
use crate::domain::ids::{CouponId, SkuId};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{ApiJson, ApiPath, AuthUser};
use crate::http::state::AppState;
use crate::shopping::refusal_code;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_cart))
        .routes(routes!(set_item, remove_item))
        .routes(routes!(apply_coupon, remove_coupon))
}

#[derive(Serialize, ToSchema)]
pub struct CartItem {
    pub sku_id: String,
    pub product_id: String,
    pub name: String,
    /// What tells this SKU from the product's others (`{"color": "navy", "size": "M"}`), as
    /// the product page lists them.
    pub options: std::collections::BTreeMap<String, String>,
    pub quantity: u32,
    pub unit_price: i64,
    pub line_total: i64,
    /// Units of the SKU on sale now (the node's stock view; 0 once the product or SKU is no
    /// longer sold). A line above it cannot be ordered as it is: `POST /orders` would answer
    /// `409 insufficient_stock`. It may lag a purchase made on another node by moments.
    pub available: u64,
}

#[derive(Serialize, ToSchema)]
pub struct CartCoupon {
    pub coupon_id: String,
    /// False when the cart no longer qualifies (then `reason` says why and the discount is 0).
    pub applicable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

#[derive(Serialize, ToSchema)]
#[schema(examples(json!({"items": [{"sku_id": "tee-red-M", "product_id": "p0194c3a1b2c4e1f2a3b4c5d6e7f80912", "name": "오버사이즈 티셔츠 Oversized Tee", "options": {"color": "red", "size": "M"}, "quantity": 2, "unit_price": 12900, "line_total": 25800, "available": 48}], "subtotal": 25800, "discount": 0, "total": 25800, "currency": "KRW"})))]
pub struct CartBody {
    pub items: Vec<CartItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coupon: Option<CartCoupon>,
    pub subtotal: i64,
    pub discount: i64,
    pub total: i64,
    pub currency: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"quantity": 2})))]
pub struct QuantityRequest {
    /// 0 removes the line; at most 99.
    #[schema(maximum = 99)]
    pub quantity: u32,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"coupon_id": "kc1f0a8d2e4b6c9a1f3e5d7b9a0c2e4f6:1"})))]
pub struct CouponRequest {
    pub coupon_id: String,
}

pub fn cart_body(state: &AppState, cart: CartState) -> CartBody {
    let (cart, mut options) = state.shopping.priced(cart);
    let (totals, refusal) = cart.totals(state.shopping.now());
    let items = cart
        .lines
        .iter()
        .map(|(sku, l)| {
            // A SKU the catalog no longer lists has no options left, and nothing on sale.
            let listed = options.remove(sku);
            let available = match &listed {
                Some(_) => state.catalog.skus.view(sku).map_or(0, |v| v.available),
                None => 0,
            };
            CartItem {
                sku_id: sku.to_string(),
                product_id: l.product_id.to_string(),
                name: l.name.clone(),
                options: listed.unwrap_or_default(),
                quantity: l.quantity,
                unit_price: l.unit_price,
                line_total: l.unit_price * i64::from(l.quantity),
                available,
            }
        })
        .collect();
    CartBody {
        items,
        coupon: cart.coupon.map(|c| CartCoupon {
            coupon_id: c.coupon_id.to_string(),
            applicable: refusal.is_none(),
            reason: refusal_code(refusal),
        }),
        subtotal: totals.subtotal,
        discount: totals.discount,
        total: totals.total,
        currency: state.currency.to_string(),
    }
}

fn sku_id(raw: String) -> Result<SkuId, ApiError> {
    SkuId::parse(raw).map_err(|e| ApiError::invalid_id("sku_id", e))
}

/// The caller's cart with totals.
#[utoipa::path(get, path = "/api/v1/cart", tag = "cart", security(("bearer" = [])),
    responses((status = 200, body = CartBody), (status = 401, body = Problem)))]
pub async fn get_cart(
    user: AuthUser,
    State(state): State<AppState>,
) -> Result<axum::Json<CartBody>, ApiError> {
    let cart = state.shopping.cart(&user.user_id).await?;
    Ok(axum::Json(cart_body(&state, cart)))
}

/// Sets a line's quantity (0 removes it), checked against available stock.
#[utoipa::path(put, path = "/api/v1/cart/items/{sku_id}", tag = "cart", security(("bearer" = [])),
    params(("sku_id" = String, Path)), request_body = QuantityRequest,
    responses((status = 200, body = CartBody), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn set_item(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    ApiJson(req): ApiJson<QuantityRequest>,
) -> Result<axum::Json<CartBody>, ApiError> {
    let cart = state
        .shopping
        .set_item(&user.user_id, &sku_id(raw)?, req.quantity)
        .await?;
    Ok(axum::Json(cart_body(&state, cart)))
}

/// Removes a line.
#[utoipa::path(delete, path = "/api/v1/cart/items/{sku_id}", tag = "cart", security(("bearer" = [])),
    params(("sku_id" = String, Path)), responses((status = 200, body = CartBody)))]
pub async fn remove_item(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<axum::Json<CartBody>, ApiError> {
    let cart = state
        .shopping
        .remove_item(&user.user_id, &sku_id(raw)?)
        .await?;
    Ok(axum::Json(cart_body(&state, cart)))
}

/// Applies a coupon from the caller's wallet; `409 coupon_not_applicable` with a `reason`.
#[utoipa::path(put, path = "/api/v1/cart/coupon", tag = "cart", security(("bearer" = [])),
    request_body = CouponRequest,
    responses((status = 200, body = CartBody), (status = 409, body = Problem)))]
pub async fn apply_coupon(
    user: AuthUser,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CouponRequest>,
) -> Result<axum::Json<CartBody>, ApiError> {
    let coupon =
        CouponId::parse(req.coupon_id).map_err(|e| ApiError::invalid_id("coupon_id", e))?;
    let cart = state.shopping.apply_coupon(&user.user_id, &coupon).await?;
    Ok(axum::Json(cart_body(&state, cart)))
}

/// Removes the applied coupon.
#[utoipa::path(delete, path = "/api/v1/cart/coupon", tag = "cart", security(("bearer" = [])),
    responses((status = 200, body = CartBody)))]
pub async fn remove_coupon(
    user: AuthUser,
    State(state): State<AppState>,
) -> Result<axum::Json<CartBody>, ApiError> {
    let cart = state.shopping.remove_coupon(&user.user_id).await?;
    Ok(axum::Json(cart_body(&state, cart)))
}
