//! [`Application`]: a [`Node`] with its HTTP edge. Builds from settings (opens the node, binds
//! the listener) and runs until a shutdown signal, then stops in order: readiness off,
//! stop accepting and finish in-flight requests, final snapshots of every active entity, flush
//! and close the journal.

use crate::auth::limits::AuthLimits;
use crate::config::Settings;
use crate::domain::time::{Clock, SystemClock};
use crate::http::{self, AppState};
use crate::node::Node;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
    node: Node,
}

impl Application {
    /// Opens storage, starts the runtime and binds; the node is ready when this returns.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let node = Node::open(&settings, clock).await?;
        let limits = AuthLimits::new(settings.auth.rate_per_ip);
        spawn_pruning(limits.clone(), node.shutdown.clone());
        let state = AppState {
            skus: node.skus.clone(),
            catalog: node.catalog.clone(),
            shopping: node.shopping.clone(),
            currency: Arc::from(settings.currency.as_str()),
            accounts: node.accounts.clone(),
            limits,
            dev_mailbox: node.dev_mailbox.clone(),
            dev_mode: settings.dev_mode,
            ready: Arc::new(AtomicBool::new(false)),
            metrics: crate::telemetry::metrics_handle(),
            operator_token: node.operator_token.clone(),
            clock: node.clock.clone(),
        };
        let router = http::router(state.clone(), settings.server.body_limit_bytes);
        let listener = TcpListener::bind(settings.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.server.listen))?;
        state.ready.store(true, Ordering::Release);
        Ok(Self {
            listener,
            router,
            state,
            node,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Cancel it to shut the application down gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.node.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then shuts down in order.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            listener,
            router,
            state,
            node,
        } = self;
        let ready = state.ready.clone();
        let stop = node.shutdown.clone();
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            stop.cancelled().await;
            ready.store(false, Ordering::Release);
            tracing::info!("shutting down: no new connections");
        })
        .await?;
        tracing::info!("snapshotting active entities");
        node.close().await?;
        tracing::info!("journal flushed; stopped");
        Ok(())
    }
}

/// Forgets idle rate-limit keys every minute until shutdown.
fn spawn_pruning(limits: AuthLimits, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => limits.prune(),
            }
        }
    });
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
