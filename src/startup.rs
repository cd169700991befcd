//! [`Application`]: a [`Node`] with its HTTP edge. Binds first, opens the node in the
//! background (readiness says when it serves), and runs until a shutdown signal, then stops in
//! order: readiness off, stop accepting and finish in-flight requests, final snapshots of every
//! active entity, flush and close the journal.

use crate::config::Settings;
use crate::domain::time::{Clock, SystemClock};
use crate::http;
use crate::http::error::ApiError;
use crate::http::state::{AppState, Services};
use crate::limits::RateLimit;
use crate::node::Node;
use anyhow::Context;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub struct Application {
    listener: TcpListener,
    /// `server.header_read_timeout_secs` and `server.idle_timeout_secs`.
    deadlines: crate::http::serve::Deadlines,
    /// Serves `/healthz` and `/readyz` at once; everything else waits for the node.
    shell: axum::Router,
    gate: Arc<Gate>,
    /// Opens the node in the background; yields it once it serves.
    loading: tokio::task::JoinHandle<anyhow::Result<Arc<Node>>>,
    shutdown: CancellationToken,
}

/// The router of a node that finished loading, and whether the node serves.
struct Gate {
    inner: OnceLock<axum::Router>,
    /// Set once loading finished; cleared when shutdown begins. Shared with `AppState::ready`.
    ready: Arc<AtomicBool>,
}

impl Application {
    /// Binds, opens the node and returns once it serves (what tests use).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let app = Self::start(settings, clock).await?;
        while !app.gate.ready.load(Ordering::Acquire) {
            if app.loading.is_finished() {
                // Loading failed: surface its error.
                return Err(app
                    .loading
                    .await?
                    .err()
                    .unwrap_or_else(|| anyhow::anyhow!("node did not load")));
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        Ok(app)
    }

    /// Binds at once and opens the node in the background: until it is loaded (start-up reads
    /// every durable view, which grows with the catalog), `/healthz` is 200, `/readyz` is 503
    /// and every other route answers `503 starting` with `Retry-After`.
    pub async fn start(mut settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        // The metrics recorder first: what the node counts while it loads (entities activated,
        // kinds' gauges) is lost when counted before a recorder exists.
        let _ = crate::telemetry::metrics_handle();
        let listener = TcpListener::bind(settings.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.server.listen))?;
        // Port 0 binds a free port: callbacks and the sandbox need the real one.
        settings.server.listen = listener.local_addr()?;
        let deadlines = crate::http::serve::Deadlines {
            header_read_timeout: Duration::from_secs(settings.server.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(settings.server.idle_timeout_secs),
        };
        let shutdown = CancellationToken::new();
        let gate = Arc::new(Gate {
            inner: OnceLock::new(),
            ready: Arc::new(AtomicBool::new(false)),
        });
        let loading = tokio::spawn(load(settings, clock, gate.clone(), shutdown.clone()));
        let shell = axum::Router::new()
            .fallback(dispatch)
            .with_state(gate.clone());
        Ok(Self {
            listener,
            deadlines,
            shell,
            gate,
            loading,
            shutdown,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Cancel it to shut the application down gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled (or loading fails), then shuts down in
    /// order.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            listener,
            deadlines,
            shell,
            gate,
            loading,
            shutdown,
        } = self;
        let stop = shutdown.clone();
        crate::http::serve::serve(listener, shell, deadlines, async move {
            stop.cancelled().await;
            gate.ready.store(false, Ordering::Release);
            tracing::info!("shutting down: no new connections");
        })
        .await?;
        let node = loading.await??;
        tracing::info!("snapshotting active entities");
        node.close().await?;
        tracing::info!("journal flushed; stopped");
        Ok(())
    }
}

/// Opens the node, builds its router, opens the gate. A failure stops the application.
async fn load(
    settings: Settings,
    clock: Arc<dyn Clock>,
    gate: Arc<Gate>,
    shutdown: CancellationToken,
) -> anyhow::Result<Arc<Node>> {
    let started = std::time::Instant::now();
    let node = match Node::open(&settings, clock, shutdown.clone()).await {
        Ok(node) => node,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "the node failed to load; stopping");
            shutdown.cancel();
            return Err(e);
        }
    };
    if settings.demo
        && let Err(e) = crate::demo::prepare(&node, &settings.storage.data_dir).await
    {
        tracing::error!(error = %format!("{e:#}"), "the demo shop failed; stopping");
        shutdown.cancel();
        return Err(e);
    }
    let limits = RateLimit::per_minute("auth", settings.auth.rate_per_ip);
    let limits = match &node.member {
        Some(member) => limits.shared(member.redis.clone()),
        None => limits,
    };
    spawn_pruning(limits.clone(), node.chat.limits().clone(), shutdown.clone());
    crate::actors::trim::spawn_trimmer(shutdown.clone());
    tokio::spawn(node.live_stock.clone().run(shutdown.clone()));
    node.orders.spawn_background(&shutdown);
    let node = Arc::new(node);
    let state = AppState::new(Services {
        node: node.clone(),
        webhook_secret: Arc::from(settings.payments.webhook_secret.expose_secret().as_bytes()),
        carrier_secret: Arc::from(settings.carrier.callback_secret.expose_secret().as_bytes()),
        currency: Arc::from(settings.currency.as_str()),
        limits,
        dev_mode: settings.dev_mode,
        ready: gate.ready.clone(),
        metrics: crate::telemetry::metrics_handle(),
    });
    let mut router = http::router(state, settings.server.body_limit_bytes);
    if settings.sandbox_enabled() {
        router = router.merge(match sandbox_home(&settings, &node) {
            Some(locate) => {
                let wait = Duration::from_millis(settings.sandbox.timeout_card_delay_ms);
                crate::sandbox::home::router(locate, wait + Duration::from_secs(5))
            }
            None => crate::sandbox::router(sandbox_config(&settings)),
        });
    }
    let _ = gate.inner.set(router);
    gate.ready.store(true, Ordering::Release);
    tracing::info!(elapsed = ?started.elapsed(), "ready");
    Ok(node)
}

/// In a cluster whose first node is not this one, where that node (the sandboxes' home, see
/// `sandbox::home`) serves HTTP now, from its heartbeat in Redis.
fn sandbox_home(settings: &Settings, node: &Arc<Node>) -> Option<crate::sandbox::home::Locate> {
    let first = settings.cluster.as_ref()?.nodes.first()?.name.clone();
    if settings.node.as_deref() == Some(first.as_str()) {
        return None;
    }
    let node = node.clone();
    Some(Arc::new(move || {
        let node = node.clone();
        Box::pin(async move {
            let nodes = node.member.as_ref()?.nodes().await.ok()?;
            let (_, report) = nodes.into_iter().next()?;
            Some(report?.http)
        })
    }))
}

/// The sandboxes' behaviour from settings (`emporium sandbox` uses it too).
pub fn sandbox_config(settings: &Settings) -> crate::sandbox::SandboxConfig {
    crate::sandbox::SandboxConfig {
        carrier_step: std::time::Duration::from_secs_f64(settings.sandbox.carrier_step_secs),
        carrier_callback_lag: std::time::Duration::from_millis(
            settings.sandbox.carrier_callback_lag_ms,
        ),
        timeout_card_delay: std::time::Duration::from_millis(
            settings.sandbox.timeout_card_delay_ms,
        ),
        carrier_secret: settings
            .carrier
            .callback_secret
            .expose_secret()
            .as_bytes()
            .to_vec(),
        webhook_url: match settings.sandbox.webhook_url.as_str() {
            "" => format!("{}/api/v1/payments/webhook", settings.public_url()),
            url => url.to_owned(),
        },
        webhook_secret: settings
            .payments
            .webhook_secret
            .expose_secret()
            .as_bytes()
            .to_vec(),
    }
}

/// Hands the request to the loaded node's router; while loading, `/healthz` is 200, `/readyz`
/// 503 and anything else `503 starting`.
async fn dispatch(State(gate): State<Arc<Gate>>, request: Request) -> Response {
    match gate.inner.get() {
        Some(router) => match router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        None if request.uri().path() == "/healthz" => StatusCode::OK.into_response(),
        None if request.uri().path() == "/readyz" => {
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        None => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting",
            "the node is loading its data; retry shortly",
        )
        .retry_after(1)
        .expected()
        .into_response(),
    }
}

/// Forgets idle rate-limit keys every minute until shutdown.
fn spawn_pruning(
    limits: RateLimit<std::net::IpAddr>,
    chat: crate::chat::limits::ChatLimits,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {
                    limits.prune();
                    chat.prune();
                }
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
