//! The drain of a cluster node during a run (`failover --drain NODE`): asks for it through the
//! operator API, then follows `GET /api/v1/admin/cluster` until the node is `down` (it holds
//! no shard), every 20 ms.

use anyhow::{Context, bail};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Drains `node` through `base`; how long from the request until it was `down`.
pub async fn drain(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    node: &str,
) -> anyhow::Result<Duration> {
    let asked = Instant::now();
    let r = client
        .post(format!("{base}/api/v1/admin/cluster/nodes/{node}/drain"))
        .bearer_auth(token)
        .send()
        .await
        .context("drain request")?;
    if r.status() != 202 {
        bail!(
            "drain of {node}: {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
    }
    eprintln!("  drain of {node} asked");
    loop {
        let cluster: Value = client
            .get(format!("{base}/api/v1/admin/cluster"))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        let status = cluster["nodes"]
            .as_array()
            .and_then(|ns| ns.iter().find(|n| n["name"] == node))
            .map(|n| n["status"].as_str().unwrap_or_default().to_string());
        if status.as_deref() == Some("down") {
            eprintln!(
                "  {node} down {:.0} ms after the request",
                asked.elapsed().as_secs_f64() * 1e3
            );
            return Ok(asked.elapsed());
        }
        if asked.elapsed() > Duration::from_secs(60) {
            bail!("{node} still {status:?} a minute after the drain request");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
