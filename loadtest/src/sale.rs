//! The flash-sale scenarios' shared arguments and their run: `flash-sale` and `failover`
//! (the same sale, with retries and a kill or a drain mid-run), each with a report under
//! `--reports` and its audit.

use crate::{Cli, flash, report, unix_now};
use anyhow::bail;
use std::time::Duration;

/// What every flash sale takes.
#[derive(clap::Args)]
pub struct SaleArgs {
    #[arg(long, env = "EMPORIUM_OPERATOR_TOKEN")]
    pub(crate) token: String,
    /// The server's JWT key: shoppers' tokens are signed before the timed part.
    #[arg(long, env = "EMPORIUM_JWT_SECRET")]
    pub(crate) jwt_secret: String,
    /// Units in the drop.
    #[arg(long, default_value_t = 10_000_000)]
    pub(crate) stock: u32,
    /// Distinct shoppers (round-robin over requests).
    #[arg(long, default_value_t = 20_000)]
    pub(crate) users: usize,
    #[arg(long, default_value_t = 100)]
    pub(crate) per_user_limit: u32,
    /// Requests per second for an open loop; 0 runs a closed loop.
    #[arg(long, default_value_t = 0)]
    pub(crate) rate: u64,
    /// Stop after this many attempts (0: run for `--duration`).
    #[arg(long, default_value_t = 0)]
    pub(crate) attempts: u64,
    #[arg(long, default_value = "emporium")]
    pub(crate) label: String,
    #[arg(long, default_value = "loadtest/reports")]
    pub(crate) reports: std::path::PathBuf,
}

/// What happens to a node mid-run: a kill or a drain, `after` seconds in.
pub struct Event<'a> {
    pub kill_pid: Option<&'a str>,
    pub drain: Option<&'a str>,
    pub after: u64,
}

/// A flash sale (`retry`: the `failover` scenario), its report and its audit.
pub async fn sale_run(
    cli: &Cli,
    sale: &SaleArgs,
    event: Event<'_>,
    retry: bool,
) -> anyhow::Result<()> {
    let after = Duration::from_secs(event.after);
    let targets: Vec<String> = cli
        .target
        .iter()
        .map(|t| t.trim_end_matches('/').to_string())
        .collect();
    let targets_first = targets[0].clone();
    let run = flash::run(flash::Options {
        base: targets[0].clone(),
        targets,
        kill: event
            .kill_pid
            .map(flash::Kill::parse)
            .transpose()?
            .map(|kill| (kill, after)),
        drain: event.drain.map(|node| (node.to_string(), after)),
        operator: sale.token.clone(),
        jwt_secret: sale.jwt_secret.clone(),
        connections: cli.connections,
        duration: Duration::from_secs(cli.duration),
        stock: sale.stock,
        users: sale.users,
        per_user_limit: sale.per_user_limit,
        rate: sale.rate,
        attempts: sale.attempts,
        label: sale.label.clone(),
        retry,
        // One server's CPU means something only when it is the only one under load.
        server_pid: (cli.target.len() == 1)
            .then(|| crate::cpu::server_pid(cli.server_pid, &targets_first))
            .flatten(),
    })
    .await?;
    println!("{}", run.line());
    let (stem, title) = if retry {
        (
            format!("failover-{}", unix_now()),
            format!("fail-over: {}", run.event),
        )
    } else {
        (
            format!("flash-sale-{}", unix_now()),
            "flash sale".to_string(),
        )
    };
    let mut notes = Vec::new();
    if let Some(at) = run.killed_at_secs {
        let gap = run
            .gap_ms
            .map_or("no purchase succeeded after it".into(), |g| {
                format!("the first purchase sent after it succeeded {g:.0} ms later")
            });
        notes.push(format!(
            "{} at {at:.1} s; {gap}; {} purchases retried (503 or no answer, same \
             idempotency key, next node).",
            run.event, run.retries
        ));
        if let Some(ms) = run.drained_ms {
            notes.push(format!(
                "The drained node was down {ms:.0} ms after the request."
            ));
        }
    }
    let path = report::write(
        &sale.reports,
        &stem,
        &title,
        std::slice::from_ref(&run),
        &notes,
    )?;
    for n in &notes {
        println!("{n}");
    }
    println!("report: {}", path.display());
    if run.audit.is_some() {
        bail!("the audit failed");
    }
    Ok(())
}
