//! The HTTP edge: the router (with the WebSocket edge, [`ws`], at `GET /api/v1/ws`) (one file per resource, each an `OpenApiRouter` so
//! every route lands in `/api/v1/openapi.json`), and the layers every request passes: request
//! id, a trace span with the matched route, request metrics, body limit, panic catcher, and
//! problem+json for unknown routes and methods.

pub mod admin_orders;
pub mod auth;
pub mod cart;
pub mod catalog;
pub mod chat;
pub mod cluster;
pub mod coupons;
pub mod dev;
pub mod drops;
pub mod entities;
pub mod error;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod node_admin;
pub mod notifications;
pub mod order_body;
pub mod orders;
pub mod payments;
pub mod skus;
pub mod state;
pub mod users;
pub mod wishlist;
pub mod ws;

use crate::http::error::ApiError;
use crate::http::state::AppState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Instant;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

#[derive(OpenApi)]
#[openapi(
    info(title = "Emporium", description = "The Emporium commerce engine, HTTP API v1"),
    modifiers(&BearerAuth),
    components(schemas(error::Problem))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        }
    }
}

/// The full router with its state and layers.
pub fn router(state: AppState, body_limit: usize) -> Router {
    let mut routes = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .merge(auth::router())
        .merge(users::router())
        .merge(catalog::router())
        .merge(cart::router())
        .merge(coupons::router())
        .merge(wishlist::router())
        .merge(skus::router())
        .merge(entities::router())
        .merge(orders::router())
        .merge(payments::router())
        .merge(admin_orders::router())
        .merge(drops::router())
        .merge(notifications::router())
        .merge(chat::router())
        .merge(cluster::router())
        .merge(node_admin::router())
        .routes(utoipa_axum::routes!(ws::upgrade));
    if state.dev_mode {
        routes = routes.merge(dev::router());
    }
    let (router, api) = routes.split_for_parts();
    router
        .layer(axum::Extension(Arc::new(api)))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(track_metrics))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(
            |panic: Box<dyn std::any::Any + Send>| {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                ApiError::internal(anyhow::anyhow!("a handler panicked: {message}")).into_response()
            },
        ))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map_or("", |p| p.as_str());
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            tracing::info_span!("request", method = %req.method(), route, request_id = id)
        }))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

async fn unknown_route() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}

/// Counts requests and records their latency by method, matched route and status.
async fn track_metrics(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("emporium_http_requests_total",
        "method" => method.clone(), "route" => route.clone(), "status" => status)
    .increment(1);
    metrics::histogram!("emporium_http_request_duration_seconds",
        "method" => method, "route" => route)
    .record(started.elapsed().as_secs_f64());
    response
}
