//! `compare`: Emporium, the ceiling and both Redis baselines back to back on this machine, each
//! server started fresh (temp data dir, its own redis-server), the same two flash-sale runs
//! against each — every purchase succeeds (hot SKU), then 1,000 units for 200,000 attempts —
//! and the ratios BENCHMARKS.md asks for. One report with every run under `--reports`.

use crate::flash;
use crate::report::{self, Run};
use anyhow::{Context, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Options {
    pub bin_dir: PathBuf,
    pub operator: String,
    pub jwt_secret: String,
    pub connections: usize,
    pub duration: Duration,
    /// Attempts of the 1,000-unit run.
    pub attempts: u64,
    pub reports: PathBuf,
}

/// A server process, stopped (SIGTERM, then SIGKILL) when dropped; its data dir, if given,
/// removed then.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) _data: Option<PathBuf>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            // Stopped already (`scale` times its own SIGTERM).
            if let Some(dir) = &self._data {
                let _ = std::fs::remove_dir_all(dir);
            }
            return;
        }
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self._data {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Starts `bin args…` with `env` and waits for the "listening on" line.
pub(crate) fn spawn(
    bin: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    data: Option<PathBuf>,
) -> anyhow::Result<Server> {
    let mut child = Command::new(bin)
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let stdout = child.stdout.take().context("stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // The server's start-up steps, with their times (`elapsed=`), for `scale`.
            if line.contains("elapsed=") {
                eprintln!("  server: {}", line.trim());
            }
            if let Some(at) = line.find("listening on http://") {
                let url: String = line[at + "listening on ".len()..]
                    .chars()
                    .take_while(|c| *c != '"' && !c.is_whitespace())
                    .collect();
                let _ = tx.send(url);
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(30))
        .with_context(|| format!("{} did not start", bin.display()))?;
    Ok(Server {
        child,
        base,
        _data: data,
    })
}

pub(crate) async fn ready(base: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{base} never became ready")
}

/// The ceiling and the two flash-sale runs against one server.
/// The ceiling (requests a second, server CPU per request in µs) and the two runs.
async fn measure(
    server: &Server,
    label: &str,
    o: &Options,
) -> anyhow::Result<((f64, Option<f64>), Run, Run)> {
    ready(&server.base).await?;
    let url = format!("{}/healthz", server.base);
    let pid = Some(server.child.id());
    let ceiling = crate::run(o.connections, Duration::from_secs(5), pid, move |c, _| {
        c.get(&url)
    })
    .await?;
    let ceiling_cpu = ceiling.cpu_us;
    let ceiling = ceiling.ok as f64 / ceiling.elapsed.as_secs_f64();
    let cpu = ceiling_cpu.map_or("unknown".to_string(), |us| format!("{us:.1}"));
    eprintln!("{label}: ceiling {ceiling:.0} req/s, server CPU {cpu} µs/request");
    let options = |stock, users, limit, attempts, what: &str| flash::Options {
        base: server.base.clone(),
        targets: Vec::new(),
        kill: None,
        operator: o.operator.clone(),
        jwt_secret: o.jwt_secret.clone(),
        connections: o.connections,
        duration: o.duration,
        stock,
        users,
        per_user_limit: limit,
        rate: 0,
        attempts,
        label: format!("{label}, {what}"),
        retry: false,
        drain: None,
        server_pid: pid,
    };
    let hot = flash::run(options(10_000_000, 20_000, 100, 0, "hot SKU")).await?;
    println!("{}", hot.line());
    let scarce = flash::run(options(1_000, 5_000, 1, o.attempts, "1,000 units")).await?;
    println!("{}", scarce.line());
    Ok(((ceiling, ceiling_cpu), hot, scarce))
}

/// The secrets every server of the comparison shares.
fn secrets(o: &Options) -> [(&str, &str); 2] {
    [
        ("EMPORIUM_OPERATOR_TOKEN", o.operator.as_str()),
        ("EMPORIUM_JWT_SECRET", o.jwt_secret.as_str()),
    ]
}

pub async fn run(o: Options) -> anyhow::Result<()> {
    let emporium = o.bin_dir.join("emporium");
    let baseline = o.bin_dir.join("emporium-baseline");
    let data = std::env::temp_dir().join(format!("emporium-compare-{}", std::process::id()));
    let dir = data.display().to_string();
    let server = spawn(
        &emporium,
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", &dir],
        &secrets(&o),
        Some(data.clone()),
    )?;
    let ours = measure(&server, "emporium", &o).await?;
    drop(server);
    let mut baselines = Vec::new();
    for mode in ["lua", "lock"] {
        let server = spawn(
            &baseline,
            &["--mode", mode, "--listen", "127.0.0.1:0"],
            &secrets(&o),
            None,
        )?;
        baselines.push(measure(&server, &format!("redis-{mode}"), &o).await?);
    }
    let ratio = |a: &Run, b: &Run| a.per_sec / b.per_sec.max(1.0);
    let (lua, lock) = (&baselines[0], &baselines[1]);
    let notes = vec![
        format!(
            "Ceilings (`GET /healthz` on each server, 5 s): emporium {:.0}, redis-lua {:.0}, redis-lock {:.0} req/s.",
            ours.0.0, lua.0.0, lock.0.0
        ),
        cpu_note(&ours, lua, lock),
        format!(
            "Hot SKU: emporium {:.0} purchases/s = {:.0} % of its ceiling (target 50 %); {:.2}x redis-lua (target 2x), {:.1}x redis-lock (target 20x).",
            ours.1.per_sec,
            100.0 * ours.1.per_sec / ours.0.0,
            ratio(&ours.1, &lua.1),
            ratio(&ours.1, &lock.1)
        ),
        format!(
            "1,000 units: emporium {:.0} attempts/s = {:.0} % of its ceiling (target 70 %); {:.2}x redis-lua, {:.1}x redis-lock.",
            ours.2.per_sec,
            100.0 * ours.2.per_sec / ours.0.0,
            ratio(&ours.2, &lua.2),
            ratio(&ours.2, &lock.2)
        ),
        "Durability differs: Emporium answers 201 after its journal is flushed; the baselines' Redis runs with appendfsync everysec (up to a second of acknowledged purchases can be lost).".to_string(),
    ];
    for n in &notes {
        println!("{n}");
    }
    let runs: Vec<Run> = [
        ours.1,
        ours.2,
        lua.1.clone(),
        lua.2.clone(),
        lock.1.clone(),
        lock.2.clone(),
    ]
    .to_vec();
    let stem = format!("compare-{}", crate::unix_now());
    let path = report::write(
        &o.reports,
        &stem,
        "flash sale: emporium vs redis baselines",
        &runs,
        &notes,
    )?;
    println!("report: {}", path.display());
    if runs.iter().any(|r| r.audit.is_some()) {
        bail!("an audit failed");
    }
    Ok(())
}

type Measured = ((f64, Option<f64>), Run, Run);

/// Server CPU per request of each server, and Emporium's purchase against its own `healthz`.
fn cpu_note(ours: &Measured, lua: &Measured, lock: &Measured) -> String {
    let us = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.1}"));
    let per = |m: &Measured| {
        format!(
            "healthz {} / hot-SKU purchase {} / 1,000-unit attempt {}",
            us(m.0.1),
            us(m.1.cpu_us),
            us(m.2.cpu_us)
        )
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.1}x", a / b),
        _ => "?".to_string(),
    };
    format!(
        "Server CPU per request, µs (the server and the processes it started, from /proc): \
         emporium {}; redis-lua {}; redis-lock {}. Emporium's purchase costs {} its healthz \
         (target 3x); its healthz {} the baseline's, a bare axum handler without middleware \
         (target 1.5x).",
        per(ours),
        per(lua),
        per(lock),
        ratio(ours.1.cpu_us, ours.0.1),
        ratio(ours.0.1, lua.0.1)
    )
}
