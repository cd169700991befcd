//! The connections between nodes (ractor_cluster): this node's `NodeServer` listens on its
//! `cluster` address, and a dialer keeps a session open to every other node that Redis says
//! is up. ractor_cluster has no failure detector and does not reconnect by itself, so the
//! dialer checks every [`DIAL_EVERY`] and redials with a backoff (doubling up to
//! [`MAX_BACKOFF`]). Of each pair, the node whose name sorts first dials, so two nodes never
//! race to open two sessions to each other.
//!
//! Peers authenticate with the cookie (`EMPORIUM_CLUSTER_COOKIE`): a challenge and response,
//! not encryption — run the cluster on a private network.

use crate::cluster::config::{ClusterSettings, NodeSettings};
use crate::cluster::routing::Routing;
use ractor::{Actor, ActorRef};
use ractor_cluster::node::NodeConnectionMode;
use ractor_cluster::{NodeServer, NodeServerMessage};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub const DIAL_EVERY: Duration = Duration::from_millis(250);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Starts this node's `NodeServer` and its dialer (until `shutdown`).
pub async fn start(
    me: &NodeSettings,
    cluster: &ClusterSettings,
    cookie: String,
    routing: Arc<Routing>,
    shutdown: CancellationToken,
) -> anyhow::Result<ActorRef<NodeServerMessage>> {
    let server = NodeServer::new(
        me.cluster.port(),
        cookie,
        me.name.clone(),
        me.cluster.ip().to_string(),
        None,
        Some(NodeConnectionMode::Isolated),
    )
    .with_listen_addr(me.cluster.ip());
    let (server, _) = Actor::spawn(None, server, ())
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the cluster listener on {}: {e}", me.cluster))?;
    let peers: Vec<NodeSettings> = cluster
        .nodes
        .iter()
        .filter(|n| n.name > me.name)
        .cloned()
        .collect();
    tokio::spawn(dial(server.clone(), peers, routing, shutdown));
    Ok(server)
}

/// The names of the nodes this node has a session with (ractor names them `name@host`).
async fn connected(server: &ActorRef<NodeServerMessage>) -> Option<HashSet<String>> {
    let sessions = server
        .call(NodeServerMessage::GetSessions, Some(Duration::from_secs(1)))
        .await
        .ok()?
        .success_or(())
        .ok()?;
    Some(
        sessions
            .values()
            .filter_map(|s| s.peer_name.as_ref())
            .map(|n| n.name.split('@').next().unwrap_or(&n.name).to_owned())
            .collect(),
    )
}

/// Keeps a session open to each of `peers` that is up.
async fn dial(
    server: ActorRef<NodeServerMessage>,
    peers: Vec<NodeSettings>,
    routing: Arc<Routing>,
    shutdown: CancellationToken,
) {
    // When each peer may be dialed next, and the pause after its next failure.
    let mut next: HashMap<String, (Instant, Duration)> = HashMap::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(DIAL_EVERY) => {}
        }
        let Some(open) = connected(&server).await else {
            continue;
        };
        for peer in &peers {
            if open.contains(&peer.name) {
                next.remove(&peer.name);
                continue;
            }
            if !routing.is_live(&peer.name) {
                continue;
            }
            let (when, backoff) = next
                .entry(peer.name.clone())
                .or_insert((Instant::now(), DIAL_EVERY));
            if Instant::now() < *when {
                continue;
            }
            // A peer that drops packets must not hold up the others for a SYN timeout.
            let dialed = tokio::time::timeout(
                CONNECT_TIMEOUT,
                ractor_cluster::client_connect(&server, peer.cluster),
            )
            .await;
            let mut pause = *backoff;
            match dialed {
                Ok(Ok(())) => {
                    tracing::info!(peer = %peer.name, addr = %peer.cluster, "dialed a peer");
                    // Give the handshake time before looking again.
                    pause = pause.max(Duration::from_secs(1));
                }
                Ok(Err(e)) => {
                    tracing::debug!(peer = %peer.name, error = %e, "cannot dial a peer");
                }
                Err(_) => tracing::debug!(peer = %peer.name, "no answer from a peer"),
            }
            // Until the session shows up (the handshake may still fail: a wrong cookie), the
            // pause before the next dial doubles.
            *when = Instant::now() + pause;
            *backoff = (*backoff * 2).min(MAX_BACKOFF);
        }
    }
}
