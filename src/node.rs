//! [`Node`]: the engine without its HTTP edge — storage, the entity runtime, every entity kind
//! and the services over them, built from settings. The server (`startup::Application`) and
//! the command line (`emporium admin …`) both open one; `close` snapshots every active entity
//! and flushes the journal.

use crate::actors::email::EmailOwner;
use crate::actors::remote::Forward;
use crate::actors::sku::Sku;
use crate::actors::user::User;
use crate::actors::{Entities, EntityKind, KindStats, Runtime, SnapshotTally};
use crate::auth::accounts::Accounts;
use crate::auth::password::Passwords;
use crate::auth::revocation::Revocations;
use crate::auth::secrets;
use crate::auth::tokens::TokenKeys;
use crate::auth::vault::{Vault, VaultStore};
use crate::catalog::Catalog;
use crate::cluster::member::{self, Member};
use crate::cluster::routing::Routing;
use crate::config::Settings;
use crate::domain::time::Clock;
use crate::drops::Drops;
use crate::drops::live::LiveStock;
use crate::events::EventBus;
use crate::integrations::carrier::HttpCarrier;
use crate::integrations::mailer::{DevMailbox, Mailer, Mailers, SmtpMailer};
use crate::integrations::payments::HttpGateway;
use crate::orders::{Endpoints, OrderConfig, Orders, Parts};
use crate::persistence::Journal;
use crate::persistence::sled_journal::SledJournal;
use crate::shopping::Shopping;
use anyhow::Context;
use futures_util::future::join_all;
use secrecy::{ExposeSecret, SecretString};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct Node {
    /// sled on one node, Redis in a cluster.
    pub journal: Arc<dyn Journal>,
    /// Cluster mode: the leases and the Redis connection; `None` on one node.
    pub member: Option<Member>,
    /// Every entity kind, handled alike (counters, snapshots, shutdown, views, deadlines).
    kinds: Vec<Arc<dyn EntityKind>>,
    pub skus: Entities<Sku>,
    pub catalog: Catalog,
    pub shopping: Shopping,
    pub orders: Orders,
    pub drops: Drops,
    pub chat: crate::chat::Chat,
    /// Topics to subscribers: the WebSocket edge subscribes here.
    pub bus: EventBus,
    pub live_stock: LiveStock,
    pub accounts: Arc<Accounts>,
    /// Present in dev mode only.
    pub dev_mailbox: Option<Arc<DevMailbox>>,
    pub operator_token: Option<Arc<SecretString>>,
    pub clock: Arc<dyn Clock>,
    /// Cancelled when the node begins to stop; background tasks watch it.
    pub shutdown: CancellationToken,
}

impl Node {
    /// Opens the data dir (sled takes a lock: one process at a time) and starts every kind.
    /// `shutdown` is cancelled when the node is to stop (background tasks watch it).
    pub async fn open(
        settings: &Settings,
        clock: Arc<dyn Clock>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Node> {
        let started = std::time::Instant::now();
        let data_dir = settings.storage.data_dir.clone();
        // A cluster node keeps nothing of its own (Redis holds it all): no data dir is made,
        // so none is left for a command that works on a single node's (`admin create-user`)
        // to take for this node's.
        if settings.cluster.is_none() {
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
        }
        let mut settings = settings.clone();
        let now_secs = clock.now().millis() / 1000;
        let storage = match settings.cluster {
            None => Storage::single(&settings, &data_dir, now_secs).await?,
            Some(_) => Storage::cluster(&mut settings, now_secs, shutdown.clone()).await?,
        };
        let settings = &settings;
        let journal = storage.journal.clone();
        tracing::info!(elapsed = ?started.elapsed(), "journal open");
        let runtime = Runtime {
            journal: journal.clone(),
            clock: clock.clone(),
            config: settings.runtime_config(),
            shutdown: shutdown.clone(),
            remote: storage.remote.clone(),
        };
        let skus = Entities::<Sku>::start(runtime.clone()).await?;
        skus.keep_reminders(None, None);
        tracing::info!(elapsed = ?started.elapsed(), "stock views loaded");
        let catalog = Catalog::start(runtime.clone(), skus.clone()).await?;
        tracing::info!(elapsed = ?started.elapsed(), "catalog index built");
        let dev_mailbox = settings.dev_mode.then(|| {
            Arc::new(match &storage.member {
                Some(member) => DevMailbox::shared(member.redis.clone()),
                None => DevMailbox::default(),
            })
        });
        let accounts = accounts(
            settings,
            &data_dir,
            runtime.clone(),
            storage.revocations.clone(),
            storage.vault,
            dev_mailbox.clone(),
        )
        .await?;
        let accounts = Arc::new(accounts);
        let shopping =
            Shopping::start(runtime.clone(), catalog.clone(), accounts.users.clone()).await?;
        let bus = EventBus::default();
        if let Some(member) = &storage.member {
            member.relay(&bus, shutdown.clone()).await?;
        }
        {
            // A revocation, wherever written, makes the user's sockets here re-check (every
            // socket when it is not known whose), and forgets the user's cached data key (an
            // erasure revokes the account).
            let (bus, vault) = (bus.clone(), accounts.vault.clone());
            accounts.revocations.on_revoked(move |user| match user {
                Some(user) => {
                    vault.forget(user);
                    bus.publish(&format!("revoked:{user}"), "revoked".into());
                }
                None => {
                    bus.publish_prefixed("revoked:", "revoked".into());
                }
            });
        }
        let chat_runtime = runtime.clone();
        let orders = orders(
            settings, runtime, &skus, &catalog, &shopping, &accounts, &bus,
        )
        .await?;
        tracing::info!(elapsed = ?started.elapsed(), "orders loaded");
        crate::events::feeds::start(&bus, &orders, &skus, &catalog);
        crate::drops::announce::Announcer {
            skus: skus.clone(),
            catalog: catalog.clone(),
            watchers: shopping.watchers.clone(),
            users: accounts.users.clone(),
            bus: bus.clone(),
            clock: clock.clone(),
        }
        .start(shutdown.clone());
        let live_stock = LiveStock::new(bus.clone(), clock.clone())
            .with_budget(settings.server.ws_fanout_frames_per_sec);
        let drops = Drops::start(
            skus.clone(),
            orders.clone(),
            catalog.clone(),
            live_stock.clone(),
        );
        let chat = crate::chat::Chat::start(
            chat_runtime,
            orders.clone(),
            bus.clone(),
            accounts.vault.clone(),
            accounts.users.clone(),
            {
                let limits = crate::chat::limits::ChatLimits::new(&settings.chat);
                match &storage.member {
                    Some(member) => limits.shared(&member.redis),
                    None => limits,
                }
            },
        )
        .await?;
        let promised = orders
            .recover_promises(&skus, storage.member.is_some())
            .await?
            .promised;
        let kinds: Vec<Arc<dyn EntityKind>> = vec![
            Arc::new(skus.clone()),
            Arc::new(catalog.products.clone()),
            Arc::new(shopping.carts.clone()),
            Arc::new(shopping.campaigns.clone()),
            Arc::new(shopping.watchers.clone()),
            Arc::new(accounts.users.clone()),
            Arc::new(accounts.emails.clone()),
            orders.kind(),
            Arc::new(chat.rooms().clone()),
        ];
        if let Some(member) = &storage.member {
            member.tail_views(kinds.clone(), shutdown.clone()).await?;
            member.connect(&kinds, shutdown.clone()).await?;
            spawn_takeovers(
                member.shards_taken.clone(),
                member.routing.clone(),
                (skus.clone(), orders.clone()),
                shutdown.clone(),
            );
        }
        if promised > 0 {
            tracing::info!(
                promised,
                "drop orders held but never written are written again"
            );
        }
        Ok(Node {
            operator_token: secrets::operator_token(settings, &data_dir)?.map(Arc::new),
            journal,
            member: storage.member,
            kinds,
            skus,
            catalog,
            shopping,
            orders,
            drops,
            chat,
            bus,
            live_stock,
            accounts,
            dev_mailbox,
            clock,
            shutdown,
        })
    }

    /// The life-cycle counters of every entity kind.
    pub fn kind_stats(&self) -> Vec<&KindStats> {
        self.kinds.iter().map(|k| k.stats()).collect()
    }

    /// Every active entity of every kind writes a snapshot now; how many did (once durable),
    /// and how many could not.
    pub async fn snapshot_all(&self) -> SnapshotTally {
        let counts = join_all(self.kinds.iter().map(|k| k.snapshot_all())).await;
        counts.into_iter().sum()
    }

    /// Final snapshots of every active entity, then the journal is flushed and closed.
    pub async fn close(&self) -> anyhow::Result<()> {
        // Drop orders answered but not yet written are written first (bounded: what is left
        // is written again from the holds, at the next start or by the SKU's owner).
        let started = std::time::Instant::now();
        while self.orders.promised() > 0 && started.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.shutdown.cancel();
        join_all(self.kinds.iter().map(|k| k.shutdown())).await;
        if let Some(member) = &self.member {
            // After the final snapshots: the leases go, and the others take over at once.
            member.leave().await;
        }
        let journal = self.journal.clone();
        tokio::task::spawn_blocking(move || journal.close()).await?;
        Ok(())
    }
}

/// The orders service with its gateway and carrier adapters; empty base URLs point at this
/// node's own sandboxes.
async fn orders(
    settings: &Settings,
    runtime: Runtime,
    skus: &Entities<Sku>,
    catalog: &Catalog,
    shopping: &Shopping,
    accounts: &Arc<Accounts>,
    bus: &EventBus,
) -> anyhow::Result<Orders> {
    let public = settings.public_url();
    let or_sandbox = |configured: &str, path: &str| {
        if configured.is_empty() {
            format!("{public}/sandbox/{path}")
        } else {
            configured.trim_end_matches('/').to_owned()
        }
    };
    let pg = or_sandbox(&settings.payments.base_url, "pg");
    let carrier = or_sandbox(&settings.carrier.base_url, "carrier");
    let parts = Parts {
        users: accounts.users.clone(),
        skus: skus.clone(),
        catalog: catalog.clone(),
        shopping: shopping.clone(),
        accounts: accounts.clone(),
        gateway: Arc::new(HttpGateway::new(
            &pg,
            &settings.payments.secret_key,
            settings.payments.timeout(),
        )),
        carrier: Arc::new(HttpCarrier::new(
            &carrier,
            Duration::from_millis(settings.carrier.timeout_ms),
        )),
        config: OrderConfig {
            orders: settings.orders.clone(),
            outbox: settings.outbox.clone(),
        },
        endpoints: Endpoints {
            carrier_callback_url: format!("{public}/api/v1/shipments/callback"),
            checkout_base: format!("{pg}/v1/checkout"),
            provider: if settings.payments.base_url.is_empty() {
                "sandbox".into()
            } else {
                "tosspayments".into()
            },
            carrier_name: settings.carrier.name.clone(),
            currency: settings.currency.clone(),
        },
        confirm_attempts: settings.payments.confirm_attempts,
        bus: bus.clone(),
    };
    Orders::start(runtime, parts).await
}

/// Each time this node takes shards (a node left, or handed them over), writes the drop orders
/// held there but never written — what the previous holder would have done; each time another
/// node's process is gone, writes the drop orders it promised for this node's SKUs but never
/// wrote. A run that could not read the holds of a SKU this node holds (its shard still
/// arriving, Redis slow) runs again, after 1 s and then twice as long each time, up to 30 s.
/// Until `shutdown`. (Deadlines there need nothing: each kind's reminder timer reads every
/// shard's reminders and wakes those of the shards this node holds.)
fn spawn_takeovers(
    taken: Arc<tokio::sync::Notify>,
    routing: Arc<Routing>,
    (skus, orders): (Entities<Sku>, Orders),
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        // Set after a run that could not read every SKU of this node's shards: run again then.
        let mut again: Option<Duration> = None;
        loop {
            let retry = async {
                match again {
                    Some(pause) => tokio::time::sleep(pause).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = taken.notified() => {}
                () = routing.lost.notified() => {}
                () = retry => {}
            }
            // Shards come in groups: let a round of the keeper finish first.
            tokio::time::sleep(Duration::from_millis(200)).await;
            match orders.recover_promises(&skus, true).await {
                Ok(done) => {
                    if done.promised > 0 {
                        tracing::info!(
                            promised = done.promised,
                            "held drop orders of taken shards written"
                        );
                    }
                    again = (done.unread > 0).then(|| {
                        let next = again.map_or(Duration::from_secs(1), |p| p * 2);
                        next.min(Duration::from_secs(30))
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cannot recover held drop orders");
                    again = Some(Duration::from_secs(5));
                }
            }
        }
    });
}

/// Where a node keeps its data: sled (one node) or Redis (a cluster member).
struct Storage {
    journal: Arc<dyn Journal>,
    /// Cluster mode: carries asks for other nodes' entities to them.
    remote: Option<Arc<dyn Forward>>,
    revocations: Arc<Revocations>,
    /// Where each person's data key is kept (`auth::vault`).
    vault: VaultStore,
    member: Option<Member>,
}

impl Storage {
    /// sled under the data dir (it takes a lock: one process at a time).
    async fn single(settings: &Settings, data_dir: &Path, now_secs: i64) -> anyhow::Result<Self> {
        let db_dir = crate::persistence::sled_journal::db_dir(data_dir);
        let writer = settings.writer_config();
        let journal = tokio::task::spawn_blocking(move || SledJournal::open(&db_dir, writer))
            .await?
            .map_err(|e| {
                let why = e.to_string();
                let hint = if why.contains("could not acquire lock") {
                    " (another emporium is using it: its lock is held)"
                } else if why.contains("corrupt") {
                    " (the store reads as damaged: restore the data dir from a backup)"
                } else {
                    ""
                };
                anyhow::Error::new(e).context(format!(
                    "cannot open the journal under {}{hint}",
                    data_dir.display()
                ))
            })?;
        let revocations = Arc::new(Revocations::open(journal.db(), now_secs)?);
        let vault = VaultStore::sled(journal.db())?;
        Ok(Self {
            journal,
            remote: None,
            revocations,
            vault,
            member: None,
        })
    }

    /// Redis, joined as the cluster file's node; in dev mode the shared secrets come from
    /// Redis too (they are written into `settings`).
    async fn cluster(
        settings: &mut Settings,
        now_secs: i64,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let member = Member::join(settings).await?;
        member::shared_secrets(settings, &member.redis).await?;
        let revocations =
            Revocations::open_redis(&member.client, member.redis.clone(), now_secs, shutdown)
                .await?;
        let ask_timeout = settings.runtime_config().ask_timeout;
        Ok(Self {
            journal: member.journal.clone(),
            remote: Some(Arc::new(member.forwarder(ask_timeout))),
            revocations,
            vault: VaultStore::Redis(member.redis.clone()),
            member: Some(member),
        })
    }
}

/// The account services: entities, crypto from the configured (or, in dev mode, generated)
/// secrets (`auth::secrets`), the revocation list, and the mailers.
async fn accounts(
    settings: &Settings,
    data_dir: &Path,
    runtime: Runtime,
    revocations: Arc<Revocations>,
    vault: VaultStore,
    dev_mailbox: Option<Arc<DevMailbox>>,
) -> anyhow::Result<Accounts> {
    let a = &settings.auth;
    let keys = secrets::account_keys(settings, data_dir)?;
    let vault = Vault::new(vault, keys.pii.clone());
    vault.check_keys().await?;
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
        vault: Arc::new(vault),
        pii: keys.pii,
        tokens: TokenKeys::new(
            keys.jwt_secret.expose_secret().as_bytes(),
            a.access_ttl_secs,
        ),
        revocations,
        mail: Mailers(mailers),
        clock: runtime.clock,
        refresh_ttl: std::time::Duration::from_secs(
            u64::try_from(a.refresh_ttl_days).unwrap_or(14) * 86_400,
        ),
    })
}
