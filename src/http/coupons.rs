//! Coupon campaigns (`/admin/coupon-campaigns`), claims by code (`/coupons/claim`) and the
//! caller's wallet (`/users/me/coupons`).

use crate::domain::coupon::{Campaign, CampaignView};
use crate::domain::ids::CouponId;
use crate::domain::pricing::{CouponTerms, DiscountKind, Scope};
use crate::domain::time::Timestamp;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{AdminUser, ApiJson, ApiQuery, AuthUser};
use crate::http::orders::PageQuery;
use crate::http::page;
use crate::http::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_campaign, list_campaigns))
        .routes(routes!(claim))
        .routes(routes!(wallet))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"name": "Welcome 10%", "code": "WELCOME10", "kind": "percent", "value": 10, "min_order": 30000, "max_discount": 5000, "scope": {"type": "order"}, "total_quantity": 1000, "per_user_limit": 1, "starts_at": "2026-12-01T00:00:00+09:00", "ends_at": "2026-12-31T23:59:59+09:00"})))]
pub struct CampaignRequest {
    /// One line: no control characters, not only spaces.
    #[schema(min_length = 1, max_length = 100, format = "line")]
    pub name: String,
    /// Compared without case (`domain::text::code`).
    #[schema(pattern = "^[A-Za-z0-9_-]{3,32}$")]
    pub code: String,
    #[schema(value_type = crate::http::schemas::DiscountKindName)]
    pub kind: DiscountKind,
    /// Percent (1 to 100) or minor units, by `kind`.
    #[schema(minimum = 1)]
    pub value: i64,
    #[schema(minimum = 0)]
    pub min_order: Option<i64>,
    #[schema(minimum = 1)]
    pub max_discount: Option<i64>,
    #[schema(value_type = crate::http::schemas::ScopeBody)]
    pub scope: Scope,
    /// Coupons issued in all (unlimited without).
    #[schema(minimum = 1, maximum = 10_000_000)]
    pub total_quantity: Option<u32>,
    #[schema(minimum = 1, maximum = 100)]
    pub per_user_limit: u32,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub starts_at: Option<String>,
    /// RFC 3339, after `starts_at`.
    #[schema(format = DateTime)]
    pub ends_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(examples(json!({"campaign_id": "kc1f0a8d2e4b6c9a1f3e5d7b9a0c2e4f6", "name": "Welcome 10%", "code": "WELCOME10", "kind": "percent", "value": 10, "total_quantity": 1000, "remaining": 1000, "per_user_limit": 1, "starts_at": "2026-11-30T15:00:00Z", "ends_at": "2026-12-31T14:59:59Z"})))]
pub struct CampaignBody {
    pub campaign_id: String,
    pub name: String,
    pub code: String,
    pub kind: &'static str,
    pub value: i64,
    /// The least the lines in scope must come to for the coupon to apply (minor units).
    pub min_order: Option<i64>,
    /// The most the discount takes off (minor units).
    pub max_discount: Option<i64>,
    #[schema(value_type = crate::http::schemas::ScopeBody)]
    pub scope: Scope,
    pub total_quantity: Option<u32>,
    pub remaining: Option<u32>,
    pub per_user_limit: u32,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"code": "WELCOME10"})))]
pub struct ClaimRequest {
    pub code: String,
}

#[derive(Serialize, ToSchema)]
pub struct ClaimBody {
    pub coupon_id: String,
    pub campaign: CampaignBody,
    pub status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct WalletItem {
    pub coupon_id: String,
    pub campaign_id: String,
    pub name: Option<String>,
    /// `issued`, `reserved`, `used` or `expired`.
    pub status: &'static str,
    pub issued_at: String,
    pub ends_at: Option<String>,
    /// What the coupon takes off and when it applies (`null` if its campaign is unknown here),
    /// as a claim answers it.
    pub campaign: Option<CampaignBody>,
}

#[derive(Serialize, ToSchema)]
pub struct WalletBody {
    pub items: Vec<WalletItem>,
    /// The `cursor` of the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

fn time(field: &str, raw: Option<String>) -> Result<Option<Timestamp>, ApiError> {
    raw.map(|r| {
        Timestamp::parse_rfc3339(&r)
            .ok_or_else(|| ApiError::invalid_body(format!("{field} must be an RFC 3339 time")))
    })
    .transpose()
}

fn campaign_body(id: &str, v: &CampaignView) -> CampaignBody {
    let c = &v.campaign;
    CampaignBody {
        campaign_id: id.to_string(),
        name: c.name.clone(),
        code: c.code.clone(),
        kind: match c.terms.kind {
            DiscountKind::Percent => "percent",
            DiscountKind::Fixed => "fixed",
        },
        value: c.terms.value,
        min_order: c.terms.min_order,
        max_discount: c.terms.max_discount,
        scope: c.terms.scope.clone(),
        total_quantity: c.total_quantity,
        remaining: v.remaining(),
        per_user_limit: c.per_user_limit,
        starts_at: c.terms.starts_at.map(Timestamp::to_rfc3339),
        ends_at: c.terms.ends_at.map(Timestamp::to_rfc3339),
    }
}

/// Creates a coupon campaign (admin).
#[utoipa::path(post, path = "/api/v1/admin/coupon-campaigns", tag = "admin", request_body = CampaignRequest,
    security(("bearer" = ["admin"])),
    responses((status = 201, body = CampaignBody), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
pub async fn create_campaign(
    _: AdminUser,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CampaignRequest>,
) -> Result<(StatusCode, axum::Json<CampaignBody>), ApiError> {
    let campaign = Campaign {
        name: req.name,
        code: req.code,
        terms: CouponTerms {
            kind: req.kind,
            value: req.value,
            min_order: req.min_order,
            max_discount: req.max_discount,
            scope: req.scope,
            starts_at: time("starts_at", req.starts_at)?,
            ends_at: time("ends_at", req.ends_at)?,
        },
        total_quantity: req.total_quantity,
        per_user_limit: req.per_user_limit,
    };
    let (id, view) = state.shopping.create_campaign(campaign).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(campaign_body(id.as_str(), &view)),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct CampaignList {
    pub items: Vec<CampaignBody>,
}

/// Every coupon campaign (admin), by name: what the console lists beside its form.
#[utoipa::path(get, path = "/api/v1/admin/coupon-campaigns", tag = "admin",
    security(("bearer" = ["admin"])),
    responses((status = 200, body = CampaignList), (status = 403, body = Problem)))]
pub async fn list_campaigns(
    _: AdminUser,
    State(state): State<AppState>,
) -> axum::Json<CampaignList> {
    let mut items: Vec<CampaignBody> = state
        .shopping
        .campaigns
        .views()
        .iter()
        .map(|(id, view)| campaign_body(id.as_str(), view))
        .collect();
    items.sort_by(|a, b| (&a.name, &a.campaign_id).cmp(&(&b.name, &b.campaign_id)));
    axum::Json(CampaignList { items })
}

/// Claims a coupon by code, first come first served.
#[utoipa::path(post, path = "/api/v1/coupons/claim", tag = "coupons", request_body = ClaimRequest,
    security(("bearer" = [])),
    responses((status = 201, body = ClaimBody), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn claim(
    user: AuthUser,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ClaimRequest>,
) -> Result<(StatusCode, axum::Json<ClaimBody>), ApiError> {
    let (coupon_id, campaign_id, view) = state.shopping.claim(&user.user_id, &req.code).await?;
    let body = ClaimBody {
        coupon_id: coupon_id.to_string(),
        campaign: campaign_body(campaign_id.as_str(), &view),
        status: "issued",
    };
    Ok((StatusCode::CREATED, axum::Json(body)))
}

/// The caller's coupons, by id.
#[utoipa::path(get, path = "/api/v1/users/me/coupons", tag = "coupons", security(("bearer" = [])),
    params(("cursor" = Option<String>, Query, pattern = r"^[A-Za-z0-9._:-]{1,64}$",
        description = "`next_cursor` of the previous page"), ("limit" = Option<usize>, Query)),
    responses((status = 200, body = WalletBody), (status = 400, body = Problem)))]
pub async fn wallet(
    user: AuthUser,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<axum::Json<WalletBody>, ApiError> {
    let wallet = state.shopping.wallet(&user.user_id).await?;
    let sorted = wallet.iter().map(|(id, coupon)| (id.clone(), (id, coupon)));
    let parse = |raw| CouponId::parse(raw).ok();
    let (page, next_cursor) = page::after(sorted, q.cursor.as_deref(), q.limit, parse)?;
    // Only the page's coupons are looked up in their campaigns.
    let items = page
        .into_iter()
        .map(|(id, coupon)| state.shopping.owned(id, coupon))
        .map(|c| WalletItem {
            coupon_id: c.coupon_id.to_string(),
            campaign_id: c.coupon.campaign_id.to_string(),
            name: c.campaign.as_ref().map(|v| v.campaign.name.clone()),
            status: c.status,
            issued_at: c.coupon.issued_at.to_rfc3339(),
            ends_at: c
                .campaign
                .as_ref()
                .and_then(|v| v.campaign.terms.ends_at)
                .map(Timestamp::to_rfc3339),
            campaign: c
                .campaign
                .as_ref()
                .map(|v| campaign_body(c.coupon.campaign_id.as_str(), v)),
        })
        .collect();
    Ok(axum::Json(WalletBody { items, next_cursor }))
}
