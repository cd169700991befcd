//! How the sandboxes refuse: the gateway's error shape, which the carrier shares.

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
