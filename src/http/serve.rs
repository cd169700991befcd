//! The HTTP listener: accepts connections and serves the router on each over HTTP/1.1 (with
//! upgrades, for WebSockets), with deadlines on clients that send nothing.
//!
//! `axum::serve` gives hyper no timer, and without one hyper's `header_read_timeout` does
//! nothing: a client that opens a connection and sends nothing, or half a request and then a
//! byte now and then, holds its connection (and a file descriptor) for ever, and a few
//! thousand such clients exhaust the process's open-file limit (slowloris). Here:
//! - a connection must send its first request's head within `header_read_timeout`
//!   (`server.header_read_timeout_secs`, 10 s), or it is closed;
//! - a connection waiting for (or reading) any request's head is closed after `idle_timeout`
//!   (`server.idle_timeout_secs`, 120 s: hyper's head deadline, which also runs while a
//!   kept-alive connection is idle). Longer than clients keep idle connections in their pools
//!   (reqwest 90 s, nginx's upstream keep-alive 60 s), so a client never reuses a connection
//!   the server is closing.
//!
//! HTTP/2 is not served: browsers speak it only over TLS, which a proxy in front ends, and
//! its connections would need deadlines of their own. (`axum::serve` also took HTTP/2 with
//! prior knowledge.)

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// The listener's deadlines (see the module doc).
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// For a connection's first request head.
    pub header_read_timeout: Duration,
    /// For any request head, idle time before it included.
    pub idle_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` completes; then accepts no more
/// connections, lets each finish the request it is answering (a kept-alive one closes), and
/// returns once they have (upgraded connections — WebSockets — are their handlers' to end).
/// Each request carries its peer's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    deadlines: Deadlines,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(deadlines.idle_timeout);
    let stopping = CancellationToken::new();
    let connections = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tokio::select! {
                        () = accept_failed(e) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let asked = Arc::new(AtomicBool::new(false));
        let first = asked.clone();
        let service = tower::service_fn(move |mut request: Request<Incoming>| {
            first.store(true, Ordering::Relaxed);
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request.map(Body::new))
        });
        let connection = http
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .with_upgrades();
        let stopping = stopping.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let first_head = tokio::time::sleep(deadlines.header_read_timeout);
            tokio::pin!(first_head);
            let mut timed = true;
            let mut told = false;
            let ended = loop {
                tokio::select! {
                    ended = connection.as_mut() => break ended,
                    () = &mut first_head, if timed => {
                        timed = false;
                        if !asked.load(Ordering::Relaxed) {
                            tracing::debug!(%peer, "no request head in time: closed");
                            return;
                        }
                    }
                    () = stopping.cancelled(), if !told => {
                        told = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            };
            if let Err(e) = ended {
                tracing::trace!(%peer, error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    stopping.cancel();
    connections.close();
    connections.wait().await;
    Ok(())
}

/// An accept that failed: a connection reset before it was accepted is nothing; anything else
/// (the open-file limit reached) is logged, and accepting waits a second rather than spin.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
