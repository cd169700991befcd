//! [`Application`]: builds the node from settings (opens the journal, starts the entity kinds,
//! binds the listener) and runs it until a shutdown signal, then stops in order: readiness off,
//! stop accepting and finish in-flight requests, final snapshots of every active entity, flush
//! and close the journal.

use crate::actors::sku::Sku;
use crate::actors::{Entities, Runtime};
use crate::config::Settings;
use crate::domain::time::{Clock, SystemClock};
use crate::http::{self, AppState};
use crate::persistence::Journal;
use crate::persistence::sled_journal::SledJournal;
use anyhow::Context;
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
    journal: Arc<SledJournal>,
    /// Cancelled to begin shutdown (signals, tests); also stops background tasks.
    shutdown: CancellationToken,
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
        let data_dir = settings.storage.data_dir.clone();
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
        let db_dir = data_dir.join("db");
        let writer = settings.writer_config();
        let journal = tokio::task::spawn_blocking(move || SledJournal::open(&db_dir, writer))
            .await?
            .with_context(|| format!("cannot open the journal under {}", data_dir.display()))?;
        let shutdown = CancellationToken::new();
        let runtime = Runtime {
            journal: journal.clone(),
            clock: clock.clone(),
            config: settings.runtime_config(),
            shutdown: shutdown.clone(),
        };
        let skus = Entities::<Sku>::start(runtime).await?;
        skus.wake_reminders();
        let state = AppState {
            skus,
            ready: Arc::new(AtomicBool::new(false)),
            metrics: crate::telemetry::metrics_handle(),
            operator_token: operator_token(&settings, &data_dir)?.map(Arc::new),
            clock,
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
            journal,
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

    /// Serves until the shutdown token is cancelled, then shuts down in order.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            listener,
            router,
            state,
            journal,
            shutdown,
        } = self;
        let ready = state.ready.clone();
        let stop = shutdown.clone();
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
        state.skus.shutdown().await;
        tokio::task::spawn_blocking(move || journal.close()).await?;
        tracing::info!("journal flushed; stopped");
        Ok(())
    }
}

/// The operator token from settings; in dev mode without one, a generated token kept in the
/// data dir (so it survives restarts) and announced in the log.
fn operator_token(settings: &Settings, data_dir: &Path) -> anyhow::Result<Option<SecretString>> {
    if let Some(token) = &settings.auth.operator_token {
        return Ok(Some(token.clone()));
    }
    if !settings.dev_mode {
        tracing::warn!("no operator token configured: admin routes refuse every request");
        return Ok(None);
    }
    let path = data_dir.join("dev-operator-token");
    let token = match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
        _ => {
            let bytes: [u8; 24] = rand::random();
            let token =
                base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
            std::fs::write(&path, &token)
                .with_context(|| format!("cannot write {}", path.display()))?;
            token
        }
    };
    tracing::info!(path = %path.display(), "dev mode: operator token is in this file");
    Ok(Some(SecretString::from(token)))
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
