//! Operator routes about the node asked (API.md, "Cluster"; they work on a lone node too):
//! its entity kinds at a glance, and snapshots on demand (before a planned stop, or to shorten
//! the next activation's replay).

use crate::http::error::{ApiError, Problem};
use crate::http::extract::OperatorUser;
use crate::http::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(actors))
        .routes(routes!(snapshots))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActorsBody {
    /// The node that answered; `null` on a node running alone (then `/admin/cluster` is
    /// `404 not_clustered`).
    pub node: Option<String>,
    pub kinds: Vec<KindBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KindBody {
    pub kind: String,
    /// Entities of the kind active on this node now.
    pub active: u64,
    /// Entities passivated since the node started.
    pub passivated: u64,
    /// Entity actors that failed (and restart from their journal on the next ask).
    pub restarts: u64,
    /// Asks of the kind in flight (in mailboxes or being handled), 99th percentile of the
    /// last minute, sampled ten times a second.
    pub mailbox_depth_p99: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotsBody {
    /// Entities that wrote a snapshot (those with events since their last one).
    pub snapshotted: usize,
}

/// The entity kinds of the node asked.
#[utoipa::path(get, path = "/api/v1/admin/actors", tag = "admin", security(("bearer" = ["operator"])),
    responses((status = 200, body = ActorsBody), (status = 403, body = Problem)))]
pub async fn actors(_: OperatorUser, State(state): State<AppState>) -> axum::Json<ActorsBody> {
    let kinds = state
        .kind_stats()
        .into_iter()
        .map(|s| KindBody {
            kind: s.kind().to_owned(),
            active: s.active(),
            passivated: s.passivations(),
            restarts: s.failures(),
            mailbox_depth_p99: s.in_flight_p99(),
        })
        .collect();
    let node = state.member.as_ref().map(|m| m.node.clone());
    axum::Json(ActorsBody { node, kinds })
}

/// Every active entity of the node asked writes a snapshot now; answered once they are durable.
/// `503 unavailable` (with `Retry-After`) when any could not write (the store or, clustered,
/// Redis is away): those written are durable, and asking again writes the rest.
#[utoipa::path(post, path = "/api/v1/admin/snapshots", tag = "admin", security(("bearer" = ["operator"])),
    responses((status = 200, body = SnapshotsBody), (status = 403, body = Problem),
        (status = 503, body = Problem)))]
pub async fn snapshots(
    _: OperatorUser,
    State(state): State<AppState>,
) -> Result<axum::Json<SnapshotsBody>, ApiError> {
    if let Some(why) = state.journal.failure() {
        // Nothing can be written (a halted cluster node holds no entity to count either).
        return Err(
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", why).retry_after(1),
        );
    }
    let tally = state.snapshot_all().await;
    if tally.failed > 0 {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!(
                "{} entities could not write a snapshot (the store does not answer); {} did; \
                 retry shortly",
                tally.failed, tally.written
            ),
        )
        .retry_after(1));
    }
    Ok(axum::Json(SnapshotsBody {
        snapshotted: tally.written,
    }))
}
