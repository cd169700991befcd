//! Read models on every node: each shard's view changes go to the stream `vs:{sN}` in the same
//! fenced script that stores them (`persistence::redis_journal`), and every node tails all the
//! streams, handing each view another node wrote to its kind ([`EntityKind`]). So the catalog
//! index, stock levels, drop pages and order listings answer locally on every node.
//!
//! The tail starts from the streams' ends as read *before* the node loads the stored views,
//! so a view written in between is received again after loading (it is never missed).
//! Entries of one shard arrive in the order they were written, whichever node wrote them; a
//! node's own entries are skipped (it published them itself once durable). Known gaps: after a
//! shard moves away and back, a node may receive another node's older view after publishing
//! its own newer one (views carry no sequence yet); and a tail that lags past the stream's
//! cap (~100,000 entries per shard) loses the entries cut.

use crate::actors::EntityKind;
use crate::cluster::shards::Shard;
use redis::aio::ConnectionManager;
use redis::streams::{StreamReadOptions, StreamReadReply};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Where each shard's stream ends now: where a tail that must miss nothing starts.
pub async fn positions(redis: &ConnectionManager, shards: u32) -> redis::RedisResult<Vec<String>> {
    let mut pipe = redis::pipe();
    for s in 0..shards {
        pipe.cmd("XREVRANGE")
            .arg(format!("vs:{}", Shard(s).tag()))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1);
    }
    let last: Vec<redis::streams::StreamRangeReply> = pipe.query_async(&mut redis.clone()).await?;
    Ok(last
        .into_iter()
        .map(|r| {
            r.ids
                .first()
                .map_or_else(|| "0-0".to_owned(), |e| e.id.clone())
        })
        .collect())
}

/// Tails every shard's view stream from `from` (see [`positions`]) until `shutdown`, handing
/// views written by others than `me` (this process's holder id) to their kind. `redis` must be
/// a connection of its own: a blocking read holds up every other command on its connection.
pub async fn tail(
    redis: ConnectionManager,
    mut from: Vec<String>,
    me: String,
    receivers: Vec<Arc<dyn EntityKind>>,
    fences: Arc<crate::persistence::fences::Fences>,
    shutdown: CancellationToken,
) {
    let keys: Vec<String> = (0..from.len())
        .map(|s| format!("vs:{}", Shard(s as u32).tag()))
        .collect();
    let by_kind: HashMap<&'static str, Arc<dyn EntityKind>> =
        receivers.into_iter().map(|r| (r.kind(), r)).collect();
    let options = StreamReadOptions::default().block(1000).count(1000);
    loop {
        // Redis lost this node's cluster: what it streams now is another cluster's views.
        if fences.is_halted() {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(500)) => continue,
            }
        }
        let mut command = redis::cmd("XREAD");
        command.arg(&options).arg("STREAMS").arg(&keys).arg(&from);
        let mut conn = redis.clone();
        let read = command.query_async::<Option<StreamReadReply>>(&mut conn);
        let reply = tokio::select! {
            () = shutdown.cancelled() => return,
            reply = read => reply,
        };
        let reply = match reply {
            Ok(reply) => reply.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the view streams; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        for stream in reply.keys {
            let Some(shard) = keys.iter().position(|k| *k == stream.key) else {
                continue;
            };
            for entry in stream.ids {
                from[shard] = entry.id.clone();
                let field = |name: &str| -> Option<Vec<u8>> { entry.get(name) };
                let by = field("by").and_then(|b| String::from_utf8(b).ok());
                if by.is_some_and(|by| by.split(':').next() == Some(me.as_str())) {
                    continue;
                }
                let (Some(kind), Some(id), Some(view)) =
                    (field("kind"), field("id"), field("view"))
                else {
                    tracing::warn!(entry = %entry.id, "a view entry without kind, id or view");
                    continue;
                };
                let kind = String::from_utf8_lossy(&kind).into_owned();
                let id = String::from_utf8_lossy(&id).into_owned();
                match by_kind.get(kind.as_str()) {
                    Some(receiver) => {
                        if let Err(e) = receiver.receive(&id, &view) {
                            tracing::warn!(%kind, %id, error = %e, "a view from another node was refused");
                        }
                    }
                    None => tracing::warn!(%kind, "a view of an unknown kind"),
                }
            }
        }
    }
}
