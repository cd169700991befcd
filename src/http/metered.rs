//! Request metrics: `emporium_http_requests_total` (by method, matched route and status) and
//! `emporium_http_request_duration_seconds` (by method and route), as a tower layer whose
//! future is a plain struct: no boxing, no clone of the inner service per request (what
//! `axum::middleware::from_fn` costs). Each combination's handles are registered once and
//! looked up after; routes are the router's patterns (and `unmatched`), so the set is bounded.

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;
use tower::{Layer, Service};

/// Wraps every route (`Router::layer`): the matched route is known there.
#[derive(Clone, Copy, Default)]
pub struct MeteredLayer;

impl<S> Layer<S> for MeteredLayer {
    type Service = Metered<S>;

    fn layer(&self, inner: S) -> Metered<S> {
        Metered { inner }
    }
}

#[derive(Clone)]
pub struct Metered<S> {
    inner: S,
}

impl<S> Service<Request> for Metered<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = MeteredFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let method = req.method().clone();
        let route = req.extensions().get::<MatchedPath>().cloned();
        MeteredFuture {
            inner: self.inner.call(req),
            started: Instant::now(),
            method,
            route,
        }
    }
}

pin_project! {
    pub struct MeteredFuture<F> {
        #[pin]
        inner: F,
        started: Instant,
        method: Method,
        route: Option<MatchedPath>,
    }
}

impl<F, E> Future for MeteredFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let out = ready!(this.inner.poll(cx));
        if let Ok(response) = &out {
            let route = this.route.as_ref().map_or("unmatched", |p| p.as_str());
            let (counter, histogram) = handles(this.method, route, response.status().as_u16());
            counter.increment(1);
            histogram.record(this.started.elapsed().as_secs_f64());
        }
        Poll::Ready(out)
    }
}

/// Per route: `(method, status, counter, histogram)` of each combination seen.
type Handles = Vec<(Method, u16, metrics::Counter, metrics::Histogram)>;

static HANDLES: std::sync::LazyLock<dashmap::DashMap<String, Handles>> =
    std::sync::LazyLock::new(dashmap::DashMap::new);

fn handles(method: &Method, route: &str, status: u16) -> (metrics::Counter, metrics::Histogram) {
    if let Some(handles) = HANDLES.get(route)
        && let Some((.., counter, histogram)) = handles
            .iter()
            .find(|(m, s, ..)| m == method && *s == status)
    {
        return (counter.clone(), histogram.clone());
    }
    let (m, r) = (method.as_str().to_owned(), route.to_owned());
    let counter = metrics::counter!("emporium_http_requests_total",
        "method" => m.clone(), "route" => r.clone(), "status" => status.to_string());
    let histogram =
        metrics::histogram!("emporium_http_request_duration_seconds", "method" => m, "route" => r);
    HANDLES.entry(route.to_owned()).or_default().push((
        method.clone(),
        status,
        counter.clone(),
        histogram.clone(),
    ));
    (counter, histogram)
}
