//! The caller's wishlist (`/users/me/wishlist`).

use crate::domain::ids::ProductId;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{ApiPath, ApiQuery, AuthUser};
use crate::http::orders::PageQuery;
use crate::http::page;
use crate::http::state::AppState;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_wishlist))
        .routes(routes!(add_wish, remove_wish))
}

#[derive(Serialize, ToSchema)]
pub struct WishItem {
    pub product_id: String,
    pub name: String,
    pub price_from: i64,
    pub in_stock: bool,
}

#[derive(Serialize, ToSchema)]
pub struct WishlistBody {
    pub items: Vec<WishItem>,
    /// The `cursor` of the next page; `null` on the last (only `GET` pages).
    pub next_cursor: Option<String>,
}

fn body(state: &AppState, ids: Vec<ProductId>, next_cursor: Option<String>) -> WishlistBody {
    let items = ids
        .into_iter()
        .filter_map(|id| {
            let s = state.catalog.index.get(&id)?;
            Some(WishItem {
                product_id: id.to_string(),
                name: s.product.name.clone(),
                price_from: s.product.price_from(),
                in_stock: state.catalog.in_stock(&s.product),
            })
        })
        .collect();
    WishlistBody { items, next_cursor }
}

fn product_id(raw: String) -> Result<ProductId, ApiError> {
    ProductId::parse(raw).map_err(|e| ApiError::invalid_id("product_id", e))
}

/// The caller's wishlist, by product id.
#[utoipa::path(get, path = "/api/v1/users/me/wishlist", tag = "wishlist", security(("bearer" = [])),
    params(("cursor" = Option<String>, Query, pattern = r"^[A-Za-z0-9._:-]{1,64}$",
        description = "`next_cursor` of the previous page"), ("limit" = Option<usize>, Query)),
    responses((status = 200, body = WishlistBody), (status = 400, body = Problem)))]
pub async fn get_wishlist(
    user: AuthUser,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<axum::Json<WishlistBody>, ApiError> {
    let ids = state.shopping.wishlist(&user.user_id).await?;
    let sorted = ids.into_iter().map(|id| (id.clone(), id));
    let parse = |raw| ProductId::parse(raw).ok();
    let (page, next) = page::after(sorted, q.cursor.as_deref(), q.limit, parse)?;
    Ok(axum::Json(body(&state, page, next)))
}

/// Adds a product (idempotent).
#[utoipa::path(put, path = "/api/v1/users/me/wishlist/{product_id}", tag = "wishlist",
    security(("bearer" = [])), params(("product_id" = String, Path)),
    responses((status = 200, body = WishlistBody), (status = 404, body = Problem)))]
pub async fn add_wish(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<axum::Json<WishlistBody>, ApiError> {
    let ids = state
        .shopping
        .wish(&user.user_id, &product_id(raw)?, true)
        .await?;
    Ok(axum::Json(body(&state, ids, None)))
}

/// Removes a product (idempotent).
#[utoipa::path(delete, path = "/api/v1/users/me/wishlist/{product_id}", tag = "wishlist",
    security(("bearer" = [])), params(("product_id" = String, Path)),
    responses((status = 200, body = WishlistBody)))]
pub async fn remove_wish(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<axum::Json<WishlistBody>, ApiError> {
    let ids = state
        .shopping
        .wish(&user.user_id, &product_id(raw)?, false)
        .await?;
    Ok(axum::Json(body(&state, ids, None)))
}
