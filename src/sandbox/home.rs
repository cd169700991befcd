//! One sandbox for a whole cluster. Each node's sandbox keeps its payments and shipments in
//! its own memory, while a shopper's checkout, the engine's confirmation, a refund and a
//! carrier query may each reach a different node: a payment made at one node's sandbox was
//! unknown to the next (`unknown_payment`, the order failed with its money captured). So in a
//! cluster the first node of the cluster file is the sandboxes' home, and every other node
//! passes its `/sandbox/...` requests there unchanged (to the address the home's heartbeat
//! gives), answers included; while the home is down they answer `503` with `Retry-After`, as
//! an outside provider's outage would look.

use crate::sandbox::reply::refuse;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

/// Where the home node serves HTTP now (`http://HOST:PORT`, from its heartbeat); `None` while
/// it is down.
pub type Locate = Arc<dyn Fn() -> BoxFuture<'static, Option<String>> + Send + Sync>;

/// The most a sandbox request or answer carries (its bodies are small JSON or one HTML page).
const MAX_BODY: usize = 1 << 20;
/// Request headers the sandboxes read, and answer headers passed back.
const ASKED: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::AUTHORIZATION,
    header::ACCEPT,
    HeaderName::from_static("idempotency-key"),
];
const ANSWERED: [HeaderName; 3] = [header::CONTENT_TYPE, header::LOCATION, header::RETRY_AFTER];

#[derive(Clone)]
struct Home {
    locate: Locate,
    client: reqwest::Client,
}

/// `/sandbox/...` passed to the home node, found with `locate` for each request; `wait` bounds
/// one request (above the time-out card's delay, so the caller's own time-out decides).
pub fn router(locate: Locate, wait: Duration) -> Router {
    let client = reqwest::Client::builder()
        .timeout(wait)
        .build()
        .expect("an HTTP client builds");
    Router::new()
        .route("/sandbox/{*rest}", axum::routing::any(forward))
        .with_state(Home { locate, client })
}

async fn forward(State(home): State<Home>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return refuse(413, "INVALID_REQUEST", "the request is too large");
    };
    let Some(base) = (home.locate)().await else {
        return unavailable("it is not up");
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut asked = home
        .client
        .request(parts.method, format!("{base}{path}"))
        .body(body);
    for name in ASKED {
        if let Some(value) = parts.headers.get(&name) {
            asked = asked.header(name, value);
        }
    }
    let answer = match asked.send().await {
        Ok(answer) => answer,
        Err(e) => return unavailable(&e.to_string()),
    };
    let status = answer.status();
    let headers: Vec<(HeaderName, HeaderValue)> = ANSWERED
        .into_iter()
        .filter_map(|name| Some((name.clone(), answer.headers().get(&name)?.clone())))
        .collect();
    match answer.bytes().await {
        Ok(bytes) => {
            let mut response = (status, Body::from(bytes)).into_response();
            response.headers_mut().extend(headers);
            response
        }
        Err(e) => unavailable(&e.to_string()),
    }
}

fn unavailable(why: &str) -> Response {
    tracing::info!(error = why, "the sandboxes' home node cannot be reached");
    let mut response = refuse(
        503,
        "PROVIDER_ERROR",
        "the sandbox's home node cannot be reached",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
