//! The real `emporium` binary as a child process, for tests that need real processes (crash
//! tests, the command line): start it on a free port, learn its address, wait until it serves.

pub mod cluster;
pub mod netns;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_emporium");

pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT`, as the server logged it.
    pub base: String,
    /// The lines it logged at ERROR so far.
    #[allow(dead_code)] // read by the tests that check what is logged
    pub errors: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// A test that fails must not leave its servers running: they hold the test runner's stderr
/// open, and CI would wait for them.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `count` reaches `at_least` (the load got that far), then SIGKILLs the server
/// and reaps it: the crash in the middle of the load.
#[allow(dead_code)] // not every test binary uses it
pub async fn kill_when(
    server: &mut Server,
    count: &std::sync::atomic::AtomicUsize,
    at_least: usize,
) {
    while count.load(std::sync::atomic::Ordering::Relaxed) < at_least {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.child.kill().expect("SIGKILL");
    server.child.wait().unwrap();
}

/// Starts `emporium serve` on port 0 over `data_dir`, with `envs`; returns once the address
/// is logged (the node may still be loading: see [`wait_ready`]).
#[allow(dead_code)] // not every test binary uses it
pub fn start(data_dir: &Path, envs: &[(&str, &str)]) -> Server {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir);
    spawn(command, envs)
}

/// Starts `emporium serve ARGS` with `envs` (cluster nodes: `--cluster FILE --node NAME`).
#[allow(dead_code)] // not every test binary uses it
pub fn start_serve(args: &[&str], envs: &[(&str, &str)]) -> Server {
    let mut command = Command::new(BIN);
    command.arg("serve").args(args);
    spawn(command, envs)
}

/// Starts `emporium serve --demo` on `data_dir`: dev mode, cheap password hashing.
#[allow(dead_code)] // not every test binary uses it
pub fn start_demo(data_dir: &Path) -> Server {
    let data = data_dir.to_str().expect("a UTF-8 path");
    start_serve(
        &["--listen", "127.0.0.1:0", "--data-dir", data, "--demo"],
        &[
            ("EMPORIUM_DEV_MODE", "true"),
            ("EMPORIUM__AUTH__ARGON2_M_KIB", "1024"),
        ],
    )
}

/// Starts `emporium serve ARGS` inside the network namespace `ns` (`ip netns exec`, which
/// execs: the child is the server itself).
#[allow(dead_code)] // not every test binary uses it
pub fn start_serve_in(ns: &str, args: &[&str], envs: &[(&str, &str)]) -> Server {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", ns, BIN, "serve"]).args(args);
    spawn(command, envs)
}

/// Starts `emporium sandbox` (the sandbox gateway and carrier alone) on port 0.
#[allow(dead_code)] // not every test binary uses it
pub fn start_sandbox(envs: &[(&str, &str)]) -> Server {
    let mut command = Command::new(BIN);
    command.args(["sandbox", "--listen", "127.0.0.1:0"]);
    spawn(command, envs)
}

fn spawn(mut command: Command, envs: &[(&str, &str)]) -> Server {
    let mut child = command
        .env("EMPORIUM__LOG__FORMAT", "json")
        .env("RUST_LOG", "info")
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the emporium binary starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let errors_seen = errors.clone();
    // With EMPORIUM_TEST_LOGS=DIR, each server's log is kept in DIR/PID.log.
    let mut keep = std::env::var_os("EMPORIUM_TEST_LOGS").and_then(|dir| {
        std::fs::File::create(Path::new(&dir).join(format!("{}.log", child.id()))).ok()
    });
    std::thread::spawn(move || {
        // Keep draining so the server never blocks on a full pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(file) = keep.as_mut() {
                let _ = writeln!(file, "{line}");
            }
            if line.contains(r#""level":"ERROR""#) {
                errors_seen.lock().unwrap().push(line.clone());
            }
            if let Some(at) = line.find("listening on http://") {
                let rest = &line[at + "listening on ".len()..];
                let url: String = rest
                    .chars()
                    .take_while(|c| *c != '"' && !c.is_whitespace())
                    .collect();
                let _ = tx.send(url);
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the server logs its address");
    Server {
        child,
        base,
        errors,
    }
}

/// Polls `/readyz` until 200; returns how long it took. Fails the test after 20 s.
pub async fn wait_ready(client: &reqwest::Client, base: &str) -> Duration {
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never became ready"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `GET url` with `token`; the response must be a success, its JSON is returned.
#[allow(dead_code)] // not every test binary uses it
pub async fn admin_get(client: &reqwest::Client, token: &str, url: &str) -> serde_json::Value {
    let r = client.get(url).bearer_auth(token).send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.unwrap()
}

/// POSTs `body` to `path` with `token` and expects a success; the answer's JSON.
#[allow(dead_code)] // not every test binary uses it
pub async fn admin_post(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let r = client
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

/// A port free now (whoever asked binds it soon after), below the kernel's ephemeral range:
/// a port from that range may be taken meanwhile as the local port of any outgoing connection
/// (a test's buyers open hundreds), and a server binding it then fails with "address in use".
#[allow(dead_code)] // not every test binary uses it
pub fn free_port() -> u16 {
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let below = ephemeral_from.clamp(12_000, 32_768);
    for _ in 0..1_000 {
        let port = rand::random_range(below - 10_000..below);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below {below}")
}

/// A real `redis-server` (Debian's package) of the test's own, on a free port in a temporary
/// dir, durable as the cluster runs it (`appendonly yes`, `appendfsync always`). Killed with
/// SIGKILL when dropped.
#[allow(dead_code)] // not every test binary uses it
pub struct RedisServer {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// The address it listens on.
    pub bind: String,
}

#[allow(dead_code)] // not every test binary uses it
impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_on("127.0.0.1")
    }

    /// Listening on `bind` (an address of this host).
    pub fn start_on(bind: &str) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Self::spawn(bind, port, dir.path());
        RedisServer {
            child,
            port,
            dir,
            bind: bind.to_string(),
        }
    }

    fn spawn(bind: &str, port: u16, dir: &Path) -> Child {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", bind, "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            // Clients from other namespaces (partition tests) are not loopback clients.
            .args(["--protected-mode", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts (scripts/test.sh installs it)");
        let started = Instant::now();
        while std::net::TcpStream::connect((bind, port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server never listened"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        child
    }

    pub fn url(&self) -> String {
        format!("redis://{}:{}/", self.bind, self.port)
    }

    /// SIGKILL, then a new redis-server on the same port and data dir.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.restart();
    }

    /// SIGKILL (and reap).
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL redis-server");
        self.child.wait().unwrap();
    }

    /// A new redis-server on the same port and data dir (after `kill`).
    pub fn restart(&mut self) {
        self.child = Self::spawn(&self.bind, self.port, self.dir.path());
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
