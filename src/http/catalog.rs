//! Catalog reads (`/products`, `/products/{id}`, `/search/suggest`, `/categories`), served from
//! the in-memory index, and admin writes (`/admin/products`).

use crate::catalog::{Detail, NewProduct, NewSku};
use crate::domain::catalog::{ProductPatch, SkuPatch};
use crate::domain::ids::{ProductId, SkuId};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{AdminUser, ApiJson, ApiPath, ApiQuery};
use crate::http::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_products))
        .routes(routes!(get_product))
        .routes(routes!(suggest))
        .routes(routes!(best_sellers))
        .routes(routes!(list_categories))
        .routes(routes!(create_product))
        .routes(routes!(update_product))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub q: Option<String>,
    pub category: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    pub cursor: Option<String>,
    /// 1 to 100 (default 20).
    #[serde(default, deserialize_with = "crate::http::catalog::page_limit")]
    pub limit: Option<usize>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SuggestQuery {
    pub q: String,
    #[serde(default, deserialize_with = "crate::http::catalog::page_limit")]
    pub limit: Option<usize>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BestSellersQuery {
    /// 1 to 50 (default 10).
    #[serde(default, deserialize_with = "crate::http::catalog::page_limit")]
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct BestSellers {
    pub items: Vec<ProductSummaryBody>,
}

#[derive(Serialize, ToSchema)]
pub struct ProductSummaryBody {
    pub product_id: String,
    pub name: String,
    pub category: String,
    pub price_from: i64,
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<String>,
    pub in_stock: bool,
    pub sales: u64,
}

#[derive(Serialize, ToSchema)]
#[schema(examples(json!({"items": [{"product_id": "p0194c3a1b2c4e1f2a3b4c5d6e7f80912", "name": "오버사이즈 티셔츠 Oversized Tee", "category": "tops", "price_from": 12900, "currency": "KRW", "thumbnail": "https://cdn.example.com/tee.jpg", "in_stock": true, "sales": 2}], "next_cursor": "p0194c3a1b2c4e1f2a3b4c5d6e7f80912"})))]
pub struct ProductPage {
    pub items: Vec<ProductSummaryBody>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SkuBody {
    pub sku_id: String,
    pub options: BTreeMap<String, String>,
    pub price: i64,
    pub available: u64,
    pub sold: u64,
}

#[derive(Serialize, ToSchema)]
#[schema(examples(json!({"product_id": "p0194c3a1b2c4e1f2a3b4c5d6e7f80912", "name": "오버사이즈 티셔츠 Oversized Tee", "description": "두꺼운 면 100%. Heavy cotton.", "category": "tops", "thumbnail": "https://cdn.example.com/tee.jpg", "currency": "KRW", "skus": [{"sku_id": "tee-red-M", "options": {"color": "red", "size": "M"}, "price": 12900, "available": 48, "sold": 2}], "sales": 2})))]
pub struct ProductBody {
    pub product_id: String,
    pub name: String,
    pub description: String,
    pub category: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<String>,
    pub currency: String,
    pub skus: Vec<SkuBody>,
    pub sales: u64,
}

#[derive(Serialize, ToSchema)]
pub struct Suggestions {
    pub suggestions: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CategoryBody {
    pub category: String,
    pub product_count: usize,
}

#[derive(Serialize, ToSchema)]
pub struct CategoryList {
    pub items: Vec<CategoryBody>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSkuRequest {
    /// Generated when absent; unique within the product.
    pub sku_id: Option<String>,
    /// At most 8, such as `{"color": "red", "size": "M"}`; names and values one line of 1
    /// to 40 characters.
    #[serde(default)]
    #[schema(value_type = crate::http::schemas::SkuOptions)]
    pub options: BTreeMap<String, String>,
    /// Minor units.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub price: i64,
    #[serde(default)]
    #[schema(maximum = 1_000_000_000_000_u64)]
    pub stock: u64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"name": "오버사이즈 티셔츠 Oversized Tee", "description": "두꺼운 면 100%. Heavy cotton.", "category": "tops", "thumbnail": "https://cdn.example.com/tee.jpg", "skus": [{"sku_id": "tee-red-M", "options": {"color": "red", "size": "M"}, "price": 12900, "stock": 50}, {"sku_id": "tee-red-L", "options": {"color": "red", "size": "L"}, "price": 12900, "stock": 30}]})))]
pub struct NewProductRequest {
    #[schema(min_length = 1, max_length = 200, format = "line")]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 5000)]
    pub description: String,
    #[schema(min_length = 1, max_length = 50, format = "line")]
    pub category: String,
    #[schema(min_length = 1, max_length = 500, format = "line")]
    pub thumbnail: Option<String>,
    #[schema(min_items = 1, max_items = 100)]
    pub skus: Vec<NewSkuRequest>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkuPatchRequest {
    pub sku_id: String,
    /// Minor units.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub price: Option<i64>,
    /// Replaces the SKU's options (as at creation).
    #[schema(value_type = Option<crate::http::schemas::SkuOptions>)]
    pub options: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"description": "두꺼운 면 100%. Heavy cotton, pre-shrunk.", "skus": [{"sku_id": "tee-red-M", "price": 11900}]})))]
pub struct ProductPatchRequest {
    #[schema(min_length = 1, max_length = 200, format = "line")]
    pub name: Option<String>,
    #[schema(max_length = 5000)]
    pub description: Option<String>,
    #[schema(min_length = 1, max_length = 50, format = "line")]
    pub category: Option<String>,
    /// A new thumbnail URL; `null` removes the product's (absent keeps it, as JSON Merge
    /// Patch, RFC 7396, reads `null`).
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<String>, nullable, min_length = 1, max_length = 500, format = "line")]
    pub thumbnail: Option<Option<String>>,
    #[serde(default)]
    pub skus: Vec<SkuPatchRequest>,
}

/// A field that was given, `null` included (`Some(None)`); absent, it stays `None`.
fn given<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

fn detail_body(state: &AppState, d: Detail) -> ProductBody {
    let skus = d
        .product
        .skus
        .iter()
        .zip(d.stock)
        .map(|(s, stock)| SkuBody {
            sku_id: s.sku_id.to_string(),
            options: s.options.clone(),
            price: s.price,
            available: stock.available,
            sold: stock.sold,
        })
        .collect();
    ProductBody {
        product_id: d.product_id.to_string(),
        name: d.product.name.clone(),
        description: d.product.description.clone(),
        category: d.product.category.clone(),
        thumbnail: d.product.thumbnail.clone(),
        currency: state.currency.to_string(),
        skus,
        sales: d.sales,
    }
}

pub(crate) fn product_id(raw: String) -> Result<ProductId, ApiError> {
    ProductId::parse(raw).map_err(|e| ApiError::invalid_id("product_id", e))
}

/// A page's `limit` as the query gives it: any whole number, one too large for a `usize`
/// read as the largest (it is served as the route's maximum anyway).
pub(crate) fn page_limit<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<usize>, D::Error> {
    let Some(raw) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(serde::de::Error::custom("limit must be a whole number"));
    }
    Ok(Some(raw.parse().unwrap_or(usize::MAX)))
}

pub(crate) fn limit(raw: Option<usize>, default: usize, max: usize) -> Result<usize, ApiError> {
    match raw {
        None => Ok(default),
        Some(0) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "limit must be at least 1",
        )),
        Some(n) => Ok(n.min(max)),
    }
}

/// A page of products, optionally searched (`q`, word prefixes, Hangul and Latin) and filtered
/// by category.
#[utoipa::path(get, path = "/api/v1/products", tag = "catalog", params(ListQuery),
    responses((status = 200, body = ProductPage), (status = 400, body = Problem)))]
pub async fn list_products(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<axum::Json<ProductPage>, ApiError> {
    let limit = limit(query.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    let after = query
        .cursor
        .map(ProductId::parse)
        .transpose()
        .map_err(|_| ApiError::invalid_cursor())?;
    let q = crate::catalog::index::Query {
        q: query.q.as_deref(),
        category: query.category.as_deref(),
        after: after.as_ref(),
        limit,
    };
    let (page, more) = state.catalog.index.list(&q);
    let next_cursor = more
        .then(|| page.last().map(|s| s.product_id.to_string()))
        .flatten();
    let items = page.into_iter().map(|s| summary_body(&state, s)).collect();
    Ok(axum::Json(ProductPage { items, next_cursor }))
}

fn summary_body(state: &AppState, s: crate::catalog::index::Summary) -> ProductSummaryBody {
    ProductSummaryBody {
        in_stock: state.catalog.in_stock(&s.product),
        product_id: s.product_id.to_string(),
        name: s.product.name.clone(),
        category: s.product.category.clone(),
        price_from: s.product.price_from(),
        currency: state.currency.to_string(),
        thumbnail: s.product.thumbnail.clone(),
        sales: s.sales,
    }
}

/// The products with the most units sold (paid, drops included), most first; products
/// that never sold are left out. `sales` is each one's count.
#[utoipa::path(get, path = "/api/v1/best-sellers", tag = "catalog", params(BestSellersQuery),
    responses((status = 200, body = BestSellers), (status = 400, body = Problem)))]
pub async fn best_sellers(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<BestSellersQuery>,
) -> Result<axum::Json<BestSellers>, ApiError> {
    let limit = limit(query.limit, 10, 50)?;
    let items = state
        .catalog
        .index
        .best_sellers(limit)
        .into_iter()
        .map(|s| summary_body(&state, s))
        .collect();
    Ok(axum::Json(BestSellers { items }))
}

/// One product with its SKUs, prices and available stock.
#[utoipa::path(get, path = "/api/v1/products/{product_id}", tag = "catalog",
    params(("product_id" = String, Path)),
    responses((status = 200, body = ProductBody), (status = 404, body = Problem)))]
pub async fn get_product(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<axum::Json<ProductBody>, ApiError> {
    let detail = state
        .catalog
        .detail(&product_id(raw)?)
        .ok_or_else(|| ApiError::not_found("no such product"))?;
    Ok(axum::Json(detail_body(&state, detail)))
}

/// Product names completing `q` (word prefixes, case-insensitive), best-selling first.
#[utoipa::path(get, path = "/api/v1/search/suggest", tag = "catalog", params(SuggestQuery),
    responses((status = 200, body = Suggestions), (status = 400, body = Problem)))]
pub async fn suggest(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<SuggestQuery>,
) -> Result<axum::Json<Suggestions>, ApiError> {
    let limit = limit(query.limit, 10, 20)?;
    let suggestions = state.catalog.index.suggest(&query.q, limit);
    Ok(axum::Json(Suggestions { suggestions }))
}

/// Every category with its number of products.
#[utoipa::path(get, path = "/api/v1/categories", tag = "catalog",
    responses((status = 200, body = CategoryList)))]
pub async fn list_categories(State(state): State<AppState>) -> axum::Json<CategoryList> {
    let items = state
        .catalog
        .index
        .categories()
        .into_iter()
        .map(|(category, product_count)| CategoryBody {
            category,
            product_count,
        })
        .collect();
    axum::Json(CategoryList { items })
}

/// Creates a product with its SKUs and their initial stock.
#[utoipa::path(post, path = "/api/v1/admin/products", tag = "admin", request_body = NewProductRequest,
    security(("bearer" = ["admin"])),
    responses((status = 201, body = ProductBody), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
pub async fn create_product(
    _: AdminUser,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<NewProductRequest>,
) -> Result<(StatusCode, axum::Json<ProductBody>), ApiError> {
    let mut skus = Vec::with_capacity(req.skus.len());
    for s in req.skus {
        let sku_id = s
            .sku_id
            .map(SkuId::parse)
            .transpose()
            .map_err(|e| ApiError::invalid_id("sku_id", e))?;
        skus.push(NewSku {
            sku_id,
            options: s.options,
            price: s.price,
            stock: s.stock,
        });
    }
    let new = NewProduct {
        name: req.name,
        description: req.description,
        category: req.category,
        thumbnail: req.thumbnail,
        skus,
    };
    let (id, _) = state
        .catalog
        .create(new, state.clock.now().millis())
        .await?;
    let detail = state
        .catalog
        .detail(&id)
        .ok_or_else(|| ApiError::not_found("no such product"))?;
    Ok((StatusCode::CREATED, axum::Json(detail_body(&state, detail))))
}

/// Changes a product's fields or its SKUs' prices and options.
#[utoipa::path(patch, path = "/api/v1/admin/products/{product_id}", tag = "admin",
    params(("product_id" = String, Path)), request_body = ProductPatchRequest,
    security(("bearer" = ["admin"])),
    responses((status = 200, body = ProductBody), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
pub async fn update_product(
    _: AdminUser,
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    ApiJson(req): ApiJson<ProductPatchRequest>,
) -> Result<axum::Json<ProductBody>, ApiError> {
    let id = product_id(raw)?;
    let mut skus = Vec::with_capacity(req.skus.len());
    for s in req.skus {
        let sku_id = SkuId::parse(s.sku_id).map_err(|e| ApiError::invalid_id("sku_id", e))?;
        skus.push(SkuPatch {
            sku_id,
            price: s.price,
            options: s.options,
        });
    }
    let patch = ProductPatch {
        name: req.name,
        description: req.description,
        category: req.category,
        clear_thumbnail: matches!(req.thumbnail, Some(None)),
        thumbnail: req.thumbnail.flatten(),
        skus,
    };
    state.catalog.update(&id, patch).await?;
    let detail = state
        .catalog
        .detail(&id)
        .ok_or_else(|| ApiError::not_found("no such product"))?;
    Ok(axum::Json(detail_body(&state, detail)))
}
