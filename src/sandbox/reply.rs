//! How the sandboxes answer and call back: the gateway's error shape, which the carrier
//! shares, and the signed notifications both send (carrier progress, payment webhooks).

use crate::integrations::signature;
use std::time::Duration;

/// Posts `body` to `url` signed with HMAC-SHA256 (`X-Emporium-Signature`), as a provider does:
/// retried with backoff while the receiver is unreachable or failing (eight tries), given up on
/// a 4xx answer.
pub(super) async fn deliver(client: &reqwest::Client, url: &str, secret: &[u8], body: String) {
    let sig = signature::sign(secret, body.as_bytes());
    for attempt in 0..8u32 {
        let sent = client
            .post(url)
            .header("content-type", "application/json")
            .header(signature::HEADER, &sig)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() || r.status().is_client_error() => return,
            _ => tokio::time::sleep(Duration::from_millis(200 << attempt)).await,
        }
    }
}

/// A JSON error in the gateway's shape (`{code, message}`).
pub(super) fn refuse(status: u16, code: &str, message: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    let status =
        axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::BAD_REQUEST);
    (
        status,
        axum::Json(serde_json::json!({ "code": code, "message": message })),
    )
        .into_response()
}
