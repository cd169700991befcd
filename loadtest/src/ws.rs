//! The `ws-fanout` scenario (BENCHMARKS.md, WebSocket row): `--sockets` WebSockets subscribe
//! to one drop's `drop:{id}` topic, then buyers purchase from it (the `flash-sale` closed loop)
//! for `--duration`. Every socket records, for each stock message, the delay from the change
//! it reports (`at_ms`) to its arrival. Reported: sockets opened and still held at the end,
//! delivery latency p50/p99/max over every delivery, and — with `--server-pid` on the same
//! machine — the server's RSS growth per idle socket (measured before any purchase).

use crate::flash;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub struct Options {
    pub flash: flash::Options,
    pub sockets: usize,
    pub server_pid: Option<u32>,
}

pub async fn run(o: Options) -> anyhow::Result<()> {
    let drop_id = flash::prepare(&reqwest::Client::new(), &o.flash).await?;
    let url = format!("{}/api/v1/ws", o.flash.base.replacen("http", "ws", 1));
    let topic = format!("drop:{drop_id}");
    let rss_before = o.server_pid.and_then(rss_kib);
    let stop = Arc::new(AtomicBool::new(false));
    // Wakes every socket task at the end (a timer per read would cost the generator more
    // than the reads: 19,000 sockets re-arming timers).
    let stopped = Arc::new(tokio::sync::Notify::new());
    let held = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(128));
    let mut sockets = tokio::task::JoinSet::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
    for _ in 0..o.sockets {
        let (url, topic, stop, stopped, held, gate, ready) = (
            url.clone(),
            topic.clone(),
            stop.clone(),
            stopped.clone(),
            held.clone(),
            gate.clone(),
            ready_tx.clone(),
        );
        sockets.spawn(async move {
            let opened = {
                let _permit = gate.acquire().await;
                open(&url, &topic).await
            };
            let Ok(mut ws) = opened else {
                let _ = ready.send(false);
                return Vec::new();
            };

            held.fetch_add(1, Ordering::Relaxed);
            let _ = ready.send(true);
            drop(ready);
            let mut delays = Vec::new();
            let end = stopped.notified();
            tokio::pin!(end);
            end.as_mut().enable();
            while !stop.load(Ordering::Relaxed) {
                let frame = tokio::select! {
                    () = &mut end => break,
                    frame = ws.next() => frame,
                };
                match frame {
                    Some(Ok(Message::Text(t))) => {
                        if let Some(at) = at_ms(t.as_str()) {
                            delays.push(now_ms().saturating_sub(at) as u32);
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => {
                        held.fetch_sub(1, Ordering::Relaxed);
                        return delays;
                    }
                }
            }
            let _ = ws.close(None).await;
            delays
        });
    }
    drop(ready_tx);
    let (mut opened, mut failed) = (0usize, 0usize);
    // One word from every socket (the tasks keep their senders while they read).
    while opened + failed < o.sockets {
        match ready_rx.recv().await {
            Some(true) => opened += 1,
            Some(false) => failed += 1,
            None => break,
        }
    }
    eprintln!(
        "{opened} sockets subscribed to {topic} ({failed} failed) in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = o.server_pid.and_then(rss_kib);
    let purchases = flash::run_on(o.flash, drop_id).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still_held = held.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    stopped.notify_waiters();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 600_000, 3)?;
    while let Some(done) = sockets.join_next().await {
        for d in done? {
            latency.record(u64::from(d.max(1)))?;
        }
    }
    println!("{}", purchases.line());
    println!(
        "ws-fanout: {opened} sockets opened ({failed} failed), {still_held} held to the end; {} deliveries; latency from the stock change ms p50 {} p99 {} max {}",
        latency.len(),
        latency.value_at_quantile(0.5),
        latency.value_at_quantile(0.99),
        latency.max()
    );
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        let per = (after.saturating_sub(before) as f64) / opened.max(1) as f64;
        println!(
            "server RSS {before} KiB before the sockets, {after} KiB with them: {per:.1} KiB per idle socket"
        );
    }
    if opened == 0 || latency.is_empty() {
        anyhow::bail!("no socket received a stock message");
    }
    Ok(())
}

async fn open(
    url: &str,
    topic: &str,
) -> anyhow::Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
> {
    let config = WebSocketConfig::default()
        // Stock frames are about 110 bytes: a small buffer is less to clear per read.
        .read_buffer_size(512)
        .write_buffer_size(0);
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(url, Some(config), false).await?;
    let subscribe = serde_json::json!({"type": "subscribe", "topic": topic}).to_string();
    ws.send(Message::text(subscribe)).await?;
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await? {
            Some(Ok(Message::Text(t))) if t.as_str().contains("\"subscribed\"") => return Ok(ws),
            Some(Ok(Message::Text(t))) => anyhow::bail!("subscribe refused: {t}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("closed before subscribing"),
        }
    }
}

/// The `at_ms` of a stock message, read without parsing the rest: with thousands of sockets
/// on two cores, the generator's JSON parsing would be measured as delivery latency.
fn at_ms(text: &str) -> Option<u64> {
    let rest = &text[text.find("\"at_ms\":")? + 8..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Resident set of a process on this machine, KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn at_ms_is_read_from_a_stock_message() {
        let m = r#"{"at_ms":1795309588123,"drop_id":"d1","remaining":3,"status":"live","type":"stock"}"#;
        assert_eq!(super::at_ms(m), Some(1_795_309_588_123));
        assert_eq!(super::at_ms(r#"{"type":"pong"}"#), None);
    }
}
