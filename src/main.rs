//! The `emporium` command line: parses arguments, loads settings, and hands over to
//! `emporium::startup::Application`.

use clap::{Parser, Subcommand};
use emporium::config::{Overrides, Settings};
use emporium::startup::{Application, shutdown_signal};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "emporium", version, about = "An actor-based commerce engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the engine.
    Serve {
        /// Settings file (default: ./emporium.toml when present, else the embedded defaults).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where sled keeps its files (default ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Address to listen on (default 127.0.0.1:8080; port 0 picks a free one).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Command::Serve {
        config,
        data_dir,
        listen,
    } = Cli::parse().command;
    let settings = Settings::load(&Overrides {
        config_file: config,
        data_dir,
        listen,
    })?;
    emporium::telemetry::init_tracing(settings.log.format, &settings.log.filter);
    let app = Application::build(settings).await?;
    let addr = app.local_addr();
    tracing::info!(%addr, "emporium listening on http://{addr}");
    let token = app.shutdown_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        token.cancel();
    });
    app.run_until_stopped().await
}
