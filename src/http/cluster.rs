//! The cluster as operators see it (API.md, "Cluster"): the nodes with their status, shards
//! and active entities, which node holds each shard under which epoch, and the drain of a
//! node. A node running alone answers `404 not_clustered`.

use crate::cluster::member::{DrainRefusal, Member};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{ApiPath, OperatorUser};
use crate::http::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(cluster))
        .routes(routes!(shards))
        .routes(routes!(drain))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterBody {
    /// The node that answered.
    pub node: String,
    /// The cluster's shard count.
    pub shards: u32,
    pub nodes: Vec<NodeBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeBody {
    pub name: String,
    /// Its HTTP address, from the cluster file.
    pub http: String,
    /// `up` while its membership key lives; `draining` while it hands its shards over;
    /// `down` when its key expired, or once drained (it holds no shard).
    pub status: &'static str,
    /// Shards it holds (0 when down).
    pub shards: usize,
    /// Entities active on it (0 when down).
    pub entities: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShardsBody {
    pub items: Vec<ShardBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShardBody {
    pub shard: u32,
    /// The node holding its lease; `null` while it is free (changing owner).
    pub node: Option<String>,
    /// The lease's epoch: it grows with each new term of ownership — each change of owner, and
    /// also a node taking the shard back after its lease lapsed (a stall, a restart).
    pub epoch: Option<u64>,
}

/// This node's membership; `404 not_clustered` alone, and `503 unavailable` (with why) while
/// Redis no longer holds its cluster: what Redis says of nodes and shards then is another
/// cluster's, or nothing.
fn member(state: &AppState) -> Result<&Member, ApiError> {
    let member = state.member.as_ref().ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_clustered",
            "this node runs alone (started without --cluster)",
        )
    })?;
    match member.fences.halted() {
        Some(why) => {
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", why).retry_after(1))
        }
        None => Ok(member),
    }
}

fn redis_down(e: redis::RedisError) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the cluster's Redis does not answer; retry shortly",
    )
    .retry_after(1)
    .with_cause(e)
}

/// The nodes of the cluster file: up or down, with their shards and active entities.
#[utoipa::path(get, path = "/api/v1/admin/cluster", tag = "admin", security(("bearer" = ["operator"])),
    responses((status = 200, body = ClusterBody), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn cluster(
    _: OperatorUser,
    State(state): State<AppState>,
) -> Result<axum::Json<ClusterBody>, ApiError> {
    let member = member(&state)?;
    let nodes = member.nodes().await.map_err(redis_down)?;
    Ok(axum::Json(ClusterBody {
        node: member.node.clone(),
        shards: member.cluster.shards,
        nodes: nodes
            .into_iter()
            .map(|(node, report)| NodeBody {
                name: node.name,
                http: node.http.to_string(),
                status: match &report {
                    None => "down",
                    Some(r) if r.draining && r.shards == 0 => "down",
                    Some(r) if r.draining => "draining",
                    Some(_) => "up",
                },
                shards: report.as_ref().map_or(0, |r| r.shards),
                entities: report.as_ref().map_or(0, |r| r.entities),
            })
            .collect(),
    }))
}

/// Every shard's holder and epoch.
#[utoipa::path(get, path = "/api/v1/admin/cluster/shards", tag = "admin",
    security(("bearer" = ["operator"])),
    responses((status = 200, body = ShardsBody), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn shards(
    _: OperatorUser,
    State(state): State<AppState>,
) -> Result<axum::Json<ShardsBody>, ApiError> {
    let holders = member(&state)?.shards().await.map_err(redis_down)?;
    let items = holders
        .into_iter()
        .enumerate()
        .map(|(shard, holder)| ShardBody {
            shard: shard as u32,
            node: holder.as_ref().map(|h| h.node.clone()),
            epoch: holder.map(|h| h.epoch),
        })
        .collect();
    Ok(axum::Json(ShardsBody { items }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DrainBody {
    pub node: String,
    /// `draining`: follow it on `GET /admin/cluster` until `down`.
    pub status: &'static str,
}

/// Drains a node: it hands its shards to the others (each after its asks in flight finish and
/// its entities snapshot) and takes none; `GET /admin/cluster` shows it `draining`, then
/// `down` once it holds no shard, when it can be stopped. Its next process joins as usual.
#[utoipa::path(post, path = "/api/v1/admin/cluster/nodes/{name}/drain", tag = "admin",
    security(("bearer" = ["operator"])), params(("name" = String, Path, description = "a node of the cluster file")),
    responses((status = 202, body = DrainBody), (status = 403, body = Problem),
        (status = 404, body = Problem, description = "not clustered, or no such node"),
        (status = 409, body = Problem,
            description = "the node is down, no other node is up, or it runs an older version"),
        (status = 503, body = Problem)))]
pub async fn drain(
    _: OperatorUser,
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<(StatusCode, axum::Json<DrainBody>), ApiError> {
    member(&state)?.drain(&name).await.map_err(|e| match e {
        DrainRefusal::UnknownNode => ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_node",
            format!("no node `{name}` in the cluster file"),
        ),
        DrainRefusal::Down => ApiError::new(
            StatusCode::CONFLICT,
            "node_down",
            format!("node `{name}` is down: it holds no shards to hand over"),
        ),
        DrainRefusal::LastNode => ApiError::new(
            StatusCode::CONFLICT,
            "last_node",
            "no other node is up to take the shards",
        ),
        DrainRefusal::NotReporting => ApiError::new(
            StatusCode::CONFLICT,
            "node_not_reporting",
            format!("node `{name}` does not report which process it runs; upgrade it first"),
        ),
        DrainRefusal::Redis(e) => redis_down(e),
    })?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(DrainBody {
            node: name,
            status: "draining",
        }),
    ))
}
