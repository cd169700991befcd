//! The SMTP adapter against a real SMTP server on loopback (Python's debugging SMTP server,
//! which prints every message it receives).

use crate::helpers::spawn_app_with;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct SmtpServer {
    child: Child,
    port: u16,
    received: Arc<Mutex<String>>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_smtp_server() -> SmtpServer {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let has = |module: &str| {
        Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let args: Vec<String> = if has("smtpd") {
        [
            "-u",
            "-W",
            "ignore",
            "-m",
            "smtpd",
            "-n",
            "-c",
            "DebuggingServer",
            &listen,
        ]
        .map(String::from)
        .to_vec()
    } else if has("aiosmtpd") {
        ["-u", "-m", "aiosmtpd", "-n", "-l", &listen]
            .map(String::from)
            .to_vec()
    } else {
        panic!("no SMTP server: scripts/test.sh installs aiosmtpd when smtpd is missing");
    };
    let mut child = Command::new("python3")
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 runs");
    let received = Arc::new(Mutex::new(String::new()));
    let stdout = child.stdout.take().unwrap();
    let sink = received.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&line);
            sink.lock().unwrap().push('\n');
        }
    });
    for _ in 0..100 {
        if std::net::TcpStream::connect(&listen).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    SmtpServer {
        child,
        port,
        received,
    }
}

#[tokio::test]
async fn the_verification_code_goes_out_over_smtp() {
    let smtp = start_smtp_server();
    let port = smtp.port.to_string();
    let app = spawn_app_with(&[
        ("EMPORIUM__MAIL__SMTP_HOST", "127.0.0.1"),
        ("EMPORIUM__MAIL__SMTP_PORT", &port),
    ])
    .await;
    let r = app
        .post_json(
            "/api/v1/auth/signup",
            json!({"email": "smtp@example.com", "password": "correct horse battery", "name": "S"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let code = app.mailed_code("smtp@example.com").await;
    let mut seen = String::new();
    for _ in 0..100 {
        seen = smtp.received.lock().unwrap().clone();
        if seen.contains(&code) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen.contains("smtp@example.com"), "recipient in:\n{seen}");
    assert!(
        seen.contains(&format!("Your verification code is {code}")),
        "code in:\n{seen}"
    );
    app.stop().await;
}
