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
pub mod metered;
pub mod node_admin;
pub mod notifications;
pub mod openapi;
pub mod order_body;
pub mod orders;
pub mod page;
pub mod payments;
pub mod schemas;
pub mod serve;
pub mod skus;
pub mod state;
pub mod users;
pub mod web;
pub mod wishlist;
pub mod ws;

use crate::http::error::ApiError;
use crate::http::state::AppState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
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
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some(
                            "An access token from /auth/login, or the operator token. An \
                             operation's scopes name the role it needs (`admin`, `operator`); \
                             none: any valid token. A route reading someone's own resource \
                             answers 404 to others.",
                        ))
                        .build(),
                ),
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
    let (router, mut api) = routes.split_for_parts();
    openapi::complete(&mut api);
    let rendered = openapi::render(&api);
    // The browsable reference of the same document (Swagger UI, files in the binary).
    // Its files only change with the binary, and are large (about 1.5 MB): kept an hour
    // rather than the API's `no-store` (the document itself is `/api/v1/openapi.json`).
    let docs = Router::from(
        utoipa_swagger_ui::SwaggerUi::new("/api/v1/docs")
            .config(utoipa_swagger_ui::Config::from("/api/v1/openapi.json")),
    )
    .layer(SetResponseHeaderLayer::if_not_present(
        header::CACHE_CONTROL,
        |r: &axum::response::Response| {
            let kept = HeaderValue::from_static("public, max-age=3600");
            r.status().is_success().then_some(kept)
        },
    ));
    // One stack, applied once: every `Router::layer` call wraps each route in another boxed
    // service, cloned (and allocated) per request. Outermost first.
    let layers = tower::ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(SequentialIds::default()))
        .layer(PropagateRequestIdLayer::x_request_id())
        // Its failures are not logged: every 5xx the engine makes is an `ApiError`, which logs
        // itself at the level its kind deserves (a readiness probe's 503 is no error).
        .layer(
            TraceLayer::new_for_http()
                .on_failure(())
                .make_span_with(|req: &Request| {
                    let route = req
                        .extensions()
                        .get::<MatchedPath>()
                        .map_or("", |p| p.as_str());
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!(
                        "request",
                        method = req.method().as_str(),
                        route,
                        request_id = id
                    )
                }),
        )
        // Answers are a shopper's own (a cart, an order, a profile) or change by the second
        // (stock): no cache keeps them. Without it a browser's Back reused a cached answer
        // whichever account it was for (another account's cart in a tab signed in as the
        // first). The web's files set their own (`no-cache`, revalidated by ETag). Outside the panic
        // catcher, so its 500 is not cached either.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
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
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(metered::MeteredLayer)
        .layer(axum::Extension(rendered));
    router
        .merge(docs)
        .merge(web::router())
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(layers)
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

/// Request ids unique to this process and across restarts: a random prefix drawn at start-up
/// and a counter (`3f9c0a1b-42`); cheaper than a UUID per request (no random draw each time).
#[derive(Clone)]
struct SequentialIds {
    /// `{random:08x}-`.
    prefix: [u8; 9],
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl Default for SequentialIds {
    fn default() -> Self {
        let mut prefix = [b'-'; 9];
        let random = format!("{:08x}", rand::random::<u32>());
        prefix[..8].copy_from_slice(random.as_bytes());
        Self {
            prefix,
            next: Arc::default(),
        }
    }
}

impl MakeRequestId for SequentialIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // One allocation, the header's own (no formatting machinery): `{prefix:08x}-{n}`.
        let mut id = Vec::with_capacity(29);
        id.extend_from_slice(&self.prefix);
        id.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        axum::http::HeaderValue::try_from(id)
            .ok()
            .map(RequestId::new)
    }
}
