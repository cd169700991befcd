//! [`Application`]: builds the node from settings (opens the journal, starts the entity kinds,
//! binds the listener) and runs it until a shutdown signal, then stops in order: readiness off,
//! stop accepting and finish in-flight requests, final snapshots of every active entity, flush
//! and close the journal.

use crate::actors::email::EmailOwner;
use crate::actors::sku::Sku;
use crate::actors::user::User;
use crate::actors::{Entities, Runtime};
use crate::auth::accounts::Accounts;
use crate::auth::limits::AuthLimits;
use crate::auth::password::Passwords;
use crate::auth::pii::Pii;
use crate::auth::revocation::Revocations;
use crate::auth::tokens::TokenKeys;
use crate::config::Settings;
use crate::domain::time::{Clock, SystemClock};
use crate::http::{self, AppState};
use crate::integrations::mailer::{DevMailbox, Mailer, Mailers, SmtpMailer};
use crate::persistence::Journal;
use crate::persistence::sled_journal::SledJournal;
use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretString};
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
        let skus = Entities::<Sku>::start(runtime.clone()).await?;
        skus.wake_reminders();
        let dev_mailbox = settings.dev_mode.then(|| Arc::new(DevMailbox::default()));
        let accounts =
            accounts(&settings, &data_dir, runtime, &journal, dev_mailbox.clone()).await?;
        let limits = AuthLimits::new(settings.auth.rate_per_ip);
        spawn_pruning(limits.clone(), shutdown.clone());
        let state = AppState {
            skus,
            accounts: Arc::new(accounts),
            limits,
            dev_mailbox,
            dev_mode: settings.dev_mode,
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
        tokio::join!(
            state.skus.shutdown(),
            state.accounts.users.shutdown(),
            state.accounts.emails.shutdown()
        );
        tokio::task::spawn_blocking(move || journal.close()).await?;
        tracing::info!("journal flushed; stopped");
        Ok(())
    }
}

/// The account services: entities, crypto from the configured (or, in dev mode, generated)
/// secrets, the revocation list beside the journal, and the mailers.
async fn accounts(
    settings: &Settings,
    data_dir: &Path,
    runtime: Runtime,
    journal: &SledJournal,
    dev_mailbox: Option<Arc<DevMailbox>>,
) -> anyhow::Result<Accounts> {
    let a = &settings.auth;
    let jwt = secret(
        settings,
        data_dir,
        a.jwt_secret.as_ref(),
        "EMPORIUM_JWT_SECRET",
        "dev-jwt-secret",
        48,
    )?;
    if jwt.len() < 32 {
        anyhow::bail!("EMPORIUM_JWT_SECRET must be at least 32 bytes");
    }
    let pii_key = secret(
        settings,
        data_dir,
        a.pii_key.as_ref(),
        "EMPORIUM_PII_KEY",
        "dev-pii-key",
        32,
    )?;
    let decode = |what: &str, b64: &str| -> anyhow::Result<Vec<u8>> {
        let key = STANDARD
            .decode(b64.trim())
            .or_else(|_| URL_SAFE_NO_PAD.decode(b64.trim()))
            .map_err(|_| anyhow::anyhow!("{what} must be base64"))?;
        Ok(key)
    };
    let current = decode("EMPORIUM_PII_KEY", &pii_key)?;
    let previous = match &a.pii_previous_keys {
        Some(keys) => keys
            .expose_secret()
            .split(',')
            .filter(|k| !k.trim().is_empty())
            .map(|k| decode("auth.pii_previous_keys", k))
            .collect::<anyhow::Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    let index_key = match &a.index_key {
        Some(k) => Some(decode("auth.index_key", k.expose_secret())?),
        None => None,
    };
    let pii = Pii::new(&current, &previous, index_key.as_deref())
        .map_err(|e| anyhow::anyhow!("EMPORIUM_PII_KEY: {e}"))?;
    let now_secs = runtime.clock.now().millis() / 1000;
    let revocations = Revocations::open(journal.db(), now_secs)?;
    let mut mailers: Vec<Arc<dyn Mailer>> = Vec::new();
    if let Some(dev) = dev_mailbox {
        mailers.push(dev);
    }
    if !settings.mail.smtp_host.is_empty() {
        let smtp = SmtpMailer::new(
            &settings.mail.smtp_host,
            settings.mail.smtp_port,
            &settings.mail.from,
        )?;
        mailers.push(Arc::new(smtp));
    }
    Ok(Accounts {
        users: Entities::<User>::start(runtime.clone()).await?,
        emails: Entities::<EmailOwner>::start(runtime.clone()).await?,
        passwords: Passwords::new(a.argon2_m_kib, a.argon2_t, a.argon2_p, a.hash_concurrency)?,
        pii,
        tokens: TokenKeys::new(jwt.as_bytes(), a.access_ttl_secs),
        revocations: Arc::new(revocations),
        mail: Mailers(mailers),
        clock: runtime.clock,
        refresh_ttl: std::time::Duration::from_secs(
            u64::try_from(a.refresh_ttl_days).unwrap_or(14) * 86_400,
        ),
    })
}

/// A configured secret; in dev mode without one, a random one generated once into the data
/// dir (kept across restarts); outside dev mode without one, a clear start-up error.
fn secret(
    settings: &Settings,
    data_dir: &Path,
    configured: Option<&SecretString>,
    env_name: &str,
    file: &str,
    random_bytes: usize,
) -> anyhow::Result<String> {
    if let Some(s) = configured {
        return Ok(s.expose_secret().to_string());
    }
    if !settings.dev_mode {
        anyhow::bail!(
            "{env_name} is required outside dev mode (set it, or EMPORIUM_DEV_MODE=true)"
        );
    }
    let path = data_dir.join(file);
    if let Ok(existing) = std::fs::read_to_string(&path)
        && !existing.trim().is_empty()
    {
        return Ok(existing.trim().to_string());
    }
    let bytes: Vec<u8> = (0..random_bytes).map(|_| rand::random::<u8>()).collect();
    let value = STANDARD.encode(bytes);
    write_private(&path, &value)?;
    Ok(value)
}

fn write_private(path: &Path, value: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(value.as_bytes())?;
    Ok(())
}

/// The operator token from settings; in dev mode without one, a generated token kept in the
/// data dir and announced in the log.
fn operator_token(settings: &Settings, data_dir: &Path) -> anyhow::Result<Option<SecretString>> {
    if settings.auth.operator_token.is_none() && !settings.dev_mode {
        tracing::warn!("no operator token configured: only accounts with roles reach admin routes");
        return Ok(None);
    }
    let token = secret(
        settings,
        data_dir,
        settings.auth.operator_token.as_ref(),
        "EMPORIUM_OPERATOR_TOKEN",
        "dev-operator-token",
        24,
    )?;
    if settings.auth.operator_token.is_none() {
        let path = data_dir.join("dev-operator-token");
        tracing::info!(path = %path.display(), "dev mode: operator token is in this file");
    }
    Ok(Some(SecretString::from(token)))
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
