//! The `emporium` command line: parses arguments, loads settings, and hands over to the library
//! (`startup::Application` to serve, `node::Node` for admin commands).

/// jemalloc: see `Cargo.toml` for why, and `actors::trim` for giving memory back.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use emporium::auth::accounts::SignUp;
use emporium::config::{Overrides, Settings};
use emporium::domain::role::Role;
use emporium::domain::time::SystemClock;
use emporium::node::Node;
use emporium::startup::{Application, shutdown_signal};
use secrecy::SecretString;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "emporium", version, about = "An actor-based commerce engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Common {
    /// Settings file (default: ./emporium.toml when present, else the embedded defaults).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where sled keeps its files (default ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the engine.
    Serve {
        #[command(flatten)]
        common: Common,
        /// Address to listen on (default 127.0.0.1:8080, or the node's `http` in cluster
        /// mode; port 0 picks a free one).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Cluster mode: the cluster file (e.g. cluster.toml); Redis holds the data.
        #[arg(long, requires = "node")]
        cluster: Option<PathBuf>,
        /// Which node of the cluster file this is.
        #[arg(long, requires = "cluster")]
        node: Option<String>,
        /// Dev mode: on an empty data dir, a demo shop (products, a coupon, a drop starting a
        /// minute after start) and a demo shopper and admin, whose passwords the log prints.
        #[arg(long, conflicts_with = "cluster")]
        demo: bool,
    },
    /// Serves only the sandbox payment gateway and carrier (under /sandbox), as an outside
    /// service for an engine pointed at it (`payments.base_url`, `carrier.base_url`).
    Sandbox {
        /// Settings file (default: ./emporium.toml when present, else the embedded defaults);
        /// `sandbox.webhook_url` says where its payment webhooks go.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
    },
    /// Operator commands on a stopped node's data dir.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Fills a stopped node's catalog with demo products (Latin and Hangul names, two SKUs
    /// each; the same names and stock on every run, new ids): for demos and the catalog
    /// benchmarks. A data dir that does not exist is made.
    SeedDemo {
        #[command(flatten)]
        common: Common,
        /// How many products.
        #[arg(long, default_value_t = 1000)]
        products: u64,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Creates a verified account with the given roles (like POST /api/v1/admin/users).
    CreateUser {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        email: String,
        /// The password (or set EMPORIUM_NEW_USER_PASSWORD to keep it out of `ps`).
        #[arg(long, env = "EMPORIUM_NEW_USER_PASSWORD", hide_env_values = true)]
        password: String,
        /// The account's display name.
        #[arg(long, default_value = "Administrator")]
        name: String,
        /// `customer`, `admin` or `operator`; repeat for several (none: a customer only).
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Prints what the data dir holds: records and bytes per record type and kind, and the
    /// size sled takes on disk.
    Usage {
        #[command(flatten)]
        common: Common,
    },
    /// Rewrites a stopped node's sled database into a fresh one holding only its live records
    /// (sled keeps rewritten pages on disk long after they die), checks the copy reads back
    /// the same, and puts it in place. Needs free disk for the live records.
    Compact {
        #[command(flatten)]
        common: Common,
        /// Keep the old database as `db.old` beside the new one instead of removing it.
        #[arg(long)]
        keep_old: bool,
        /// Make the new database zstd-compressed (`on`) or not (`off`); by default it keeps
        /// what the old one was made with. Compressed takes less disk and more CPU per write.
        #[arg(long, value_parser = ["on", "off"])]
        compression: Option<String>,
    },
}

fn settings(common: Common, listen: Option<SocketAddr>) -> anyhow::Result<Settings> {
    Ok(Settings::load(&Overrides {
        config_file: common.config,
        data_dir: common.data_dir,
        listen,
        ..Overrides::default()
    })?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve {
            common,
            listen,
            cluster,
            node,
            demo,
        } => {
            let overrides = Overrides {
                config_file: common.config,
                data_dir: common.data_dir,
                listen,
                cluster_file: cluster,
                node,
                demo,
            };
            let settings = Settings::load(&overrides)?;
            if settings.demo && !settings.dev_mode {
                anyhow::bail!("--demo is for dev mode (EMPORIUM_DEV_MODE=true)");
            }
            if settings.demo && settings.cluster.is_some() {
                anyhow::bail!("--demo is for a single node, not a cluster");
            }
            serve(settings).await
        }
        Command::Sandbox { config, listen } => {
            let common = Common {
                config,
                data_dir: None,
            };
            sandbox(settings(common, Some(listen))?).await
        }
        Command::Admin {
            command:
                AdminCommand::CreateUser {
                    common,
                    email,
                    password,
                    name,
                    roles,
                },
        } => create_user(settings(common, None)?, email, password, name, roles).await,
        Command::Admin {
            command: AdminCommand::Usage { common },
        } => usage(settings(common, None)?),
        Command::Admin {
            command:
                AdminCommand::Compact {
                    common,
                    keep_old,
                    compression,
                },
        } => {
            let options = emporium::persistence::sled_compact::CompactOptions {
                keep_old,
                compression: compression.map(|c| c == "on"),
            };
            compact(settings(common, None)?, &options)
        }
        Command::SeedDemo { common, products } => {
            seed_demo(settings(common, None)?, products).await
        }
    }
}

async fn seed_demo(mut settings: Settings, products: u64) -> anyhow::Result<()> {
    // Entities created here are not asked again: let them go quickly.
    settings.entities.idle_secs = 2;
    let node = Node::open(&settings, Arc::new(SystemClock), Default::default()).await?;
    let started = std::time::Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..128 {
        let (catalog, next, clock) = (node.catalog.clone(), next.clone(), node.clock.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= products {
                    return Ok::<_, anyhow::Error>(());
                }
                let product = emporium::catalog::demo::product(i, 7);
                catalog
                    .create(product, clock.now().millis())
                    .await
                    .map_err(|e| anyhow::anyhow!("product {i}: {e}"))?;
                if (i + 1) % 10_000 == 0 {
                    eprintln!("  {} products", i + 1);
                }
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    let took = started.elapsed();
    node.close().await?;
    println!(
        "seeded {products} products in {took:.1?} ({:.0}/s)",
        products as f64 / took.as_secs_f64()
    );
    Ok(())
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    emporium::telemetry::init_tracing(settings.log.format, &settings.log.filter);
    match emporium::process::raise_open_files() {
        Some(open_files) => tracing::info!(open_files, "open-file limit"),
        None => tracing::warn!("the open-file limit could not be read"),
    }
    let (dev, sandbox) = (settings.dev_mode, settings.sandbox_enabled());
    let providers = (&settings.payments, &settings.carrier);
    if let Some(unset) = emporium::orders::settings::check_providers(dev, sandbox, providers)? {
        tracing::warn!("{unset}");
    }
    if settings.cluster.is_none() && std::env::var_os(emporium::config::REDIS_URL_ENV).is_some() {
        tracing::info!(
            "EMPORIUM_REDIS_URL is set, but a node without a cluster file (--cluster) journals \
             to sled and uses no Redis"
        );
    }
    let app = Application::start(settings, Arc::new(SystemClock)).await?;
    let addr = app.local_addr();
    tracing::info!(%addr, "emporium listening on http://{addr}");
    let token = app.shutdown_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        token.cancel();
    });
    app.run_until_stopped().await
}

async fn sandbox(settings: Settings) -> anyhow::Result<()> {
    emporium::telemetry::init_tracing(settings.log.format, &settings.log.filter);
    let listener = tokio::net::TcpListener::bind(settings.server.listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "sandbox listening on http://{addr}");
    let router = emporium::sandbox::router(emporium::startup::sandbox_config(&settings));
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

async fn create_user(
    settings: Settings,
    email: String,
    password: String,
    name: String,
    roles: Vec<String>,
) -> anyhow::Result<()> {
    let mut parsed = BTreeSet::from([Role::Customer]);
    for r in &roles {
        parsed.insert(Role::parse(r).ok_or_else(|| anyhow::anyhow!("unknown role `{r}`"))?);
    }
    let dir = &settings.storage.data_dir;
    if settings.cluster.is_none() && !dir.exists() {
        // A mistyped path would otherwise make a new, empty node with this one account.
        anyhow::bail!(
            "no data dir at {}: check the path, or create it (mkdir -p) for a new node. \
             A cluster keeps its accounts in Redis, not in a data dir: create one there with \
             POST /api/v1/admin/users and the operator token",
            dir.display()
        );
    }
    let node = Node::open(&settings, Arc::new(SystemClock), Default::default()).await?;
    let sign_up = SignUp {
        email,
        password: SecretString::from(password),
        name,
        phone: None,
    };
    let created = node.accounts.sign_up(sign_up, parsed.clone(), true).await;
    node.close().await?;
    let (user_id, email) = created?;
    let roles: Vec<_> = parsed.iter().map(|r| r.as_str()).collect();
    println!(
        "created {user_id} <{}> with roles {}",
        email.as_str(),
        roles.join(", ")
    );
    Ok(())
}

fn compact(
    settings: Settings,
    options: &emporium::persistence::sled_compact::CompactOptions,
) -> anyhow::Result<()> {
    let db = emporium::persistence::sled_journal::db_dir(&settings.storage.data_dir);
    let started = std::time::Instant::now();
    let mut copied = 0;
    let done = emporium::persistence::sled_compact::compact(&db, options, &mut |n| {
        copied += n;
        if n == emporium::persistence::sled_compact::PROGRESS_EVERY {
            eprintln!("  {copied} records copied");
        }
    })
    .with_context(|| format!("cannot compact the database under {}", db.display()))?;
    println!(
        "compacted {}: {} records ({} B of keys and values); sled on disk {} B before, {} B after ({}); {:.1} s",
        db.display(),
        done.records,
        done.bytes,
        done.disk_before,
        done.disk_after,
        if done.compression {
            "compressed"
        } else {
            "not compressed"
        },
        started.elapsed().as_secs_f64()
    );
    if let Some(old) = done.kept {
        println!("the old database is kept at {}", old.display());
    }
    Ok(())
}

fn usage(settings: Settings) -> anyhow::Result<()> {
    let report = emporium::persistence::sled_usage::usage(
        &emporium::persistence::sled_journal::db_dir(&settings.storage.data_dir),
    )?;
    println!(
        "{:<12} {:<16} {:>10} {:>12} {:>12} {:>9}",
        "record", "kind", "records", "key bytes", "value bytes", "B/record"
    );
    let (mut keys, mut values) = (0, 0);
    for row in &report.rows {
        println!(
            "{:<12} {:<16} {:>10} {:>12} {:>12} {:>9.0}",
            row.record,
            row.kind,
            row.records,
            row.key_bytes,
            row.value_bytes,
            (row.key_bytes + row.value_bytes) as f64 / row.records.max(1) as f64
        );
        keys += row.key_bytes;
        values += row.value_bytes;
    }
    println!(
        "keys and values: {} B; sled on disk: {} B",
        keys + values,
        report.disk_bytes
    );
    Ok(())
}
