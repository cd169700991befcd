//! Dev-mode helpers, mounted only in dev mode: the mailbox of mails the engine "sent".

use crate::http::error::ApiError;
use crate::http::state::AppState;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(mailbox))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MailboxQuery {
    pub email: String,
}

#[derive(Serialize, ToSchema)]
pub struct DevMail {
    pub to: String,
    pub subject: String,
    pub body: String,
    pub sent_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct MailboxBody {
    pub items: Vec<DevMail>,
}

/// Mails sent to an address, newest first (dev mode only).
#[utoipa::path(get, path = "/api/v1/dev/mailbox", tag = "dev", params(MailboxQuery),
    responses((status = 200, body = MailboxBody)))]
pub async fn mailbox(
    State(state): State<AppState>,
    query: Result<Query<MailboxQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<MailboxBody>, ApiError> {
    let Query(q) = query?;
    let Some(dev) = &state.dev_mailbox else {
        return Err(ApiError::not_found("no such route"));
    };
    let email = crate::domain::text::fold(&q.email);
    let items = dev
        .list(&email)
        .await
        .map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the mailbox cannot be read now; retry shortly",
            )
            .retry_after(1)
            .with_cause(e)
        })?
        .into_iter()
        .map(|(at, m)| DevMail {
            to: m.to,
            subject: m.subject,
            body: m.body,
            sent_at: at.to_rfc3339(),
        })
        .collect();
    Ok(axum::Json(MailboxBody { items }))
}
