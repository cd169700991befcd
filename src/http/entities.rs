//! Admin inspection of one entity: its current state and journal sequence numbers.

use crate::domain::ids::{OrderId, SkuId};
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{ApiPath, OperatorUser};
use crate::http::state::AppState;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(inspect_entity))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EntityBody {
    pub kind: String,
    pub id: String,
    /// The sequence number of the last event applied.
    pub seq: u64,
    /// The sequence number the newest snapshot covers.
    pub snapshot_seq: u64,
    #[schema(value_type = Object)]
    pub state: serde_json::Value,
    /// Cluster mode: the node holding the entity's shard.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Cluster mode: the entity's shard.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
}

/// The entity's current state and journal sequence number (`kind`: `sku` or `order`).
#[utoipa::path(get, path = "/api/v1/admin/entities/{kind}/{id}", tag = "admin",
    params(("kind" = String, Path), ("id" = String, Path)), security(("bearer" = ["operator"])),
    responses((status = 200, body = EntityBody), (status = 404, body = Problem)))]
pub async fn inspect_entity(
    _: OperatorUser,
    State(state): State<AppState>,
    ApiPath((kind, id)): ApiPath<(String, String)>,
) -> Result<axum::Json<EntityBody>, ApiError> {
    let inspection = match kind.as_str() {
        "sku" => {
            let id = SkuId::parse(id).map_err(|e| ApiError::invalid_id("id", e))?;
            state.skus.inspect(&id).await?
        }
        "order" => {
            let id = OrderId::parse(id).map_err(|e| ApiError::invalid_id("id", e))?;
            state.orders.inspect(&id).await?
        }
        _ => return Err(ApiError::not_found(format!("no entity kind `{kind}`"))),
    };
    let (mut node, mut shard) = (None, None);
    if let Some(member) = &state.member
        && let Ok((s, holder)) = member.owner_of(inspection.kind, &inspection.id).await
    {
        (node, shard) = (holder.map(|h| h.node), Some(s.0));
    }
    Ok(axum::Json(EntityBody {
        node,
        shard,
        kind: inspection.kind.to_string(),
        id: inspection.id,
        seq: inspection.seq,
        snapshot_seq: inspection.snapshot_seq,
        state: inspection.state,
    }))
}
