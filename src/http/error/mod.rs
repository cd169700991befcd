//! The one place errors become HTTP: [`ApiError`] renders RFC 9457 problem+json with a machine
//! `code`. The runtime's failures and the extractors' rejections map to it here, every domain
//! and service error in `mapping.rs` — each once. A 5xx is logged with its cause chain and
//! shown to the client without internals.

mod mapping;

use crate::actors::{AskError, RuntimeError};
use crate::domain::ids::InvalidId;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// A problem details document (RFC 9457).
#[derive(Debug, Serialize, ToSchema)]
#[schema(examples(json!({"type": "/problems/sold_out", "title": "Conflict", "status": 409, "detail": "the drop is sold out", "code": "sold_out"})))]
pub struct Problem {
    /// A URI reference naming the problem kind: `/problems/{code}`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The machine-readable code clients switch on.
    pub code: String,
    /// A finer machine-readable reason, for codes that have several (`coupon_not_applicable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Extension members of some problems (`sku_ids` of `insufficient_stock`, `coupon_ids` of
    /// `already_claimed`).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

/// [`Problem`] as rendered: borrowed from the error, so a refusal allocates only its body.
#[derive(Serialize)]
struct ProblemOut<'a> {
    #[serde(rename = "type")]
    kind: ProblemKind<'a>,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(flatten)]
    extensions: &'a serde_json::Map<String, serde_json::Value>,
}

/// `/problems/{code}`, written straight into the body.
struct ProblemKind<'a>(&'a str);

impl Serialize for ProblemKind<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("/problems/{}", self.0))
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    /// What the client reads; for a 5xx, never internals.
    pub detail: String,
    /// For a 5xx: what went wrong inside, logged with its cause chain, never sent.
    pub cause: Option<anyhow::Error>,
    /// Seconds, sent as `Retry-After`.
    pub retry_after: Option<u32>,
    pub reason: Option<&'static str>,
    pub extensions: serde_json::Map<String, serde_json::Value>,
    /// A 5xx that is the node working as documented (`503 starting` while it loads), logged
    /// at INFO rather than ERROR: after a restart, every request that comes before ready
    /// gets one, and they would bury real errors in the log.
    pub expected: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            cause: None,
            retry_after: None,
            reason: None,
            extensions: serde_json::Map::new(),
            expected: false,
        }
    }

    /// Marks the answer as the node working as documented: logged at INFO, not ERROR.
    pub fn expected(mut self) -> Self {
        self.expected = true;
        self
    }

    /// Adds an extension member to the problem document.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    pub fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// A 500: `cause` is logged with its chain, the client reads only that it happened.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred; it has been logged",
        );
        e.cause = Some(cause.into());
        e
    }

    /// Keeps `cause` for the log (a 5xx logs it with its chain; it is never sent).
    pub fn with_cause(mut self, cause: impl Into<anyhow::Error>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn invalid_body(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", detail)
    }

    /// `400 invalid_cursor`: a list's `cursor` that no page of it ever gave.
    pub fn invalid_cursor() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
            "the cursor is not valid",
        )
    }

    pub fn invalid_id(what: &str, e: InvalidId) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            format!("{what}: {e}"),
        )
    }

    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // A 503 with `Retry-After` (unavailable, timeout, payment_pending, ...) is what the
        // contract promises clients in place of a 500 while the engine or a provider cannot
        // serve: a warning, its cause logged where it happened. One the node gives as it
        // works (`starting`) is information; anything else is a failure of the engine.
        let retry_later =
            self.status == StatusCode::SERVICE_UNAVAILABLE && self.retry_after.is_some();
        if self.status.is_server_error() && self.expected {
            tracing::info!(
                status = self.status.as_u16(),
                code = self.code,
                "request refused"
            );
        } else if retry_later {
            let cause = self.cause.as_ref().map(|c| format!("{c:#}"));
            tracing::warn!(status = self.status.as_u16(), code = self.code,
                detail = %self.detail, cause = cause.as_deref().unwrap_or(""),
                "request refused for now");
        } else if self.status.is_server_error() {
            let cause = self.cause.as_ref().map(|c| format!("{c:#}"));
            tracing::error!(status = self.status.as_u16(), code = self.code,
                detail = %self.detail, cause = cause.as_deref().unwrap_or(""), "request failed");
        }
        let body = ProblemOut {
            kind: ProblemKind(self.code),
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
            reason: self.reason,
            extensions: &self.extensions,
        };
        let mut response = match serde_json::to_vec(&body) {
            Ok(bytes) => (self.status, bytes).into_response(),
            // Strings and JSON values only: cannot fail; the status alone if it ever did.
            Err(_) => self.status.into_response(),
        };
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let code = match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
            _ => "malformed_json",
        };
        let status = match r.status() {
            s @ (StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::UNSUPPORTED_MEDIA_TYPE
            | StatusCode::UNPROCESSABLE_ENTITY) => s,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, code, r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_path", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text())
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        let detail = e.to_string();
        match e {
            RuntimeError::Overloaded => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "overloaded", detail).retry_after(1)
            }
            RuntimeError::Timeout => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", detail).retry_after(1)
            }
            RuntimeError::Unavailable => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail).retry_after(1)
            }
            RuntimeError::NotFound => Self::not_found(detail),
        }
    }
}

impl<R: Into<ApiError>> From<AskError<R>> for ApiError {
    fn from(e: AskError<R>) -> Self {
        e.into_failure()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn problem(e: ApiError) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = e.into_response();
        let status = response.status();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, retry, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn an_internal_error_shows_the_client_nothing_of_its_cause() {
        let cause = anyhow::anyhow!("key id 7 does not open").context("opening the address");
        let (status, _, body) = problem(ApiError::internal(cause)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["code"], "internal");
        let text = body.to_string();
        assert!(
            !text.contains("key id") && !text.contains("address"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_problem_renders_as_the_documented_problem_with_its_members_in_order() {
        // Given a refusal with a reason and an extension member
        let e = ApiError::new(StatusCode::CONFLICT, "coupon_not_applicable", "not today")
            .with_reason("min_subtotal")
            .with("sku_ids", serde_json::json!(["a", "b"]));
        let documented = Problem {
            kind: "/problems/coupon_not_applicable".into(),
            title: "Conflict".into(),
            status: 409,
            detail: "not today".into(),
            code: "coupon_not_applicable".into(),
            reason: Some("min_subtotal".into()),
            extensions: e.extensions.clone(),
        };
        // When it is rendered
        let response = e.into_response();
        let kind = response.headers()[header::CONTENT_TYPE].clone();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        // Then the bytes are the documented document's, member for member, in order
        assert_eq!(kind, "application/problem+json");
        assert_eq!(body, serde_json::to_vec(&documented).unwrap());
        assert!(body.starts_with(br#"{"type":"/problems/coupon_not_applicable","title""#));
    }

    #[tokio::test]
    async fn runtime_failures_map_once_with_retry_after() {
        let cases = [
            (RuntimeError::Overloaded, 429, "overloaded", Some("1")),
            (RuntimeError::Timeout, 503, "timeout", Some("1")),
            (RuntimeError::Unavailable, 503, "unavailable", Some("1")),
            (RuntimeError::NotFound, 404, "not_found", None),
        ];
        for (e, status, code, retry) in cases {
            let (s, r, body) = problem(e.into()).await;
            let got = (s.as_u16(), r.as_deref(), body["code"].as_str());
            assert_eq!(got, (status, retry, Some(code)));
        }
        let asked: ApiError = AskError::<RuntimeError>::Timeout.into();
        assert_eq!(
            (asked.status, asked.code),
            (StatusCode::SERVICE_UNAVAILABLE, "timeout")
        );
    }

    #[test]
    fn a_start_up_503_is_info_a_retry_later_a_warning_and_a_failure_an_error() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Log(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Log {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        // Given a log, a node answering `503 starting` while it loads, and a real failure
        let log = Log::default();
        let sink = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        let starting = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "starting", "loading")
            .retry_after(1)
            .expected();
        // When both are answered
        tracing::subscriber::with_default(subscriber, || {
            let _ = starting.into_response();
            let _ = ApiError::from(RuntimeError::Unavailable).into_response();
            let _ = ApiError::internal(anyhow::anyhow!("broken")).into_response();
        });
        // Then the start-up answer is an INFO line, a "retry later" a WARN one, a failure an
        // ERROR one
        let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        let level = |code: &str| {
            text.lines()
                .find(|l| l.contains(&format!("code=\"{code}\"")))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_owned())
        };
        assert_eq!(level("starting").as_deref(), Some("INFO"), "{text}");
        assert_eq!(level("unavailable").as_deref(), Some("WARN"), "{text}");
        assert_eq!(level("internal").as_deref(), Some("ERROR"), "{text}");
    }
}
