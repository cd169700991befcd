//! A TCP proxy in front of a node that holds the node's answers to one kind of request
//! (`POST /api/v1/auth/refresh`, `POST /api/v1/auth/logout`) while told to; everything else,
//! the WebSocket too, passes at once: a server slow to refresh, or to log out, while the files
//! come fast.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a request to refresh begins with (HTTP/1.1; browsers do not pipeline, so a request's
/// head begins a read).
pub(crate) const REFRESH: &[u8] = b"POST /api/v1/auth/refresh ";
/// What a request to log out begins with.
pub(crate) const LOGOUT: &[u8] = b"POST /api/v1/auth/logout ";

pub(crate) struct SlowAnswers {
    /// `http://127.0.0.1:port`, the proxy's.
    pub base: String,
    /// Requests of the kind passed to the node so far.
    pub seen: Arc<AtomicUsize>,
    /// Whether answers to requests of the kind passed from now on are held (at first, yes).
    pub holding: Arc<AtomicBool>,
}

impl SlowAnswers {
    /// A proxy to `upstream` (`http://host:port`) that holds each answer to a request beginning
    /// with `kind` ([`REFRESH`], [`LOGOUT`]) for `hold`.
    pub async fn start(upstream: &str, kind: &'static [u8], hold: Duration) -> SlowAnswers {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_string();
        let seen = Arc::new(AtomicUsize::new(0));
        let holding = Arc::new(AtomicBool::new(true));
        let (counted, held) = (seen.clone(), holding.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                match TcpStream::connect(&upstream).await {
                    Ok(node) => {
                        let (counted, held) = (counted.clone(), held.clone());
                        tokio::spawn(pass(client, node, kind, hold, counted, held));
                    }
                    Err(e) => eprintln!("proxy: cannot reach the node: {e}"),
                }
            }
        });
        SlowAnswers {
            base,
            seen,
            holding,
        }
    }
}

/// Passes bytes both ways; the bytes that answer a request beginning with `kind` wait `hold`
/// while `holding`.
async fn pass(
    client: TcpStream,
    node: TcpStream,
    kind: &[u8],
    hold: Duration,
    seen: Arc<AtomicUsize>,
    holding: Arc<AtomicBool>,
) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_node, mut to_node) = node.into_split();
    let held = AtomicBool::new(false);
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from_client.read(&mut buf).await {
            if buf[..n].starts_with(kind) {
                held.store(holding.load(Ordering::SeqCst), Ordering::SeqCst);
                seen.fetch_add(1, Ordering::SeqCst);
            }
            if to_node.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to_node.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from_node.read(&mut buf).await {
            if held.swap(false, Ordering::SeqCst) {
                tokio::time::sleep(hold).await;
            }
            if to_client.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to_client.shutdown().await;
    };
    tokio::join!(up, down);
}
