//! Outgoing mail: the [`Mailer`] trait, the dev mailbox (dev mode only, read back through
//! `GET /api/v1/dev/mailbox`), and an SMTP adapter (lettre) configured by `mail.smtp_host`.

use crate::domain::time::Timestamp;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Serialize)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
#[error("mail not sent: {0}")]
pub struct MailError(pub String);

pub type MailFuture<'a> = Pin<Box<dyn Future<Output = Result<(), MailError>> + Send + 'a>>;

pub trait Mailer: Send + Sync + 'static {
    fn send<'a>(&'a self, mail: &'a Mail) -> MailFuture<'a>;
}

/// Mails kept per address (the newest 50), for development and tests: in memory on one node;
/// in a cluster in Redis (list `mailbox:{address}`), so every node reads the same mailbox
/// whichever node sent the mail.
#[derive(Default)]
pub struct DevMailbox {
    boxes: Mutex<HashMap<String, VecDeque<(Timestamp, Mail)>>>,
    shared: Option<redis::aio::ConnectionManager>,
}

const KEPT_PER_ADDRESS: usize = 50;

/// A mail as kept in Redis.
#[derive(Serialize, serde::Deserialize)]
struct Kept {
    at_ms: i64,
    to: String,
    subject: String,
    body: String,
}

impl DevMailbox {
    /// The cluster's mailbox, in `redis`.
    pub fn shared(redis: redis::aio::ConnectionManager) -> Self {
        Self {
            shared: Some(redis),
            ..Self::default()
        }
    }

    /// The mails sent to `to`, newest first.
    pub async fn list(&self, to: &str) -> Result<Vec<(Timestamp, Mail)>, MailError> {
        let Some(redis) = &self.shared else {
            let boxes = self.boxes.lock().unwrap_or_else(|e| e.into_inner());
            return Ok(boxes
                .get(to)
                .map(|b| b.iter().rev().cloned().collect())
                .unwrap_or_default());
        };
        let kept: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(format!("mailbox:{to}"))
            .arg(0)
            .arg(-1)
            .query_async(&mut redis.clone())
            .await
            .map_err(|e| MailError(e.to_string()))?;
        Ok(kept
            .iter()
            .filter_map(|k| serde_json::from_slice::<Kept>(k).ok())
            .map(|k| {
                let mail = Mail {
                    to: k.to,
                    subject: k.subject,
                    body: k.body,
                };
                (Timestamp(k.at_ms), mail)
            })
            .collect())
    }

    pub async fn deliver(&self, mail: &Mail, at: Timestamp) -> Result<(), MailError> {
        let Some(redis) = &self.shared else {
            let mut boxes = self.boxes.lock().unwrap_or_else(|e| e.into_inner());
            let inbox = boxes.entry(mail.to.clone()).or_default();
            inbox.push_back((at, mail.clone()));
            while inbox.len() > KEPT_PER_ADDRESS {
                inbox.pop_front();
            }
            return Ok(());
        };
        let kept = Kept {
            at_ms: at.millis(),
            to: mail.to.clone(),
            subject: mail.subject.clone(),
            body: mail.body.clone(),
        };
        let key = format!("mailbox:{}", mail.to);
        redis::pipe()
            .atomic()
            .lpush(&key, serde_json::to_vec(&kept).unwrap_or_default())
            .ignore()
            .ltrim(&key, 0, KEPT_PER_ADDRESS as isize - 1)
            .ignore()
            .query_async::<()>(&mut redis.clone())
            .await
            .map_err(|e| MailError(e.to_string()))
    }
}

impl Mailer for DevMailbox {
    fn send<'a>(&'a self, mail: &'a Mail) -> MailFuture<'a> {
        let now = crate::domain::time::Clock::now(&crate::domain::time::SystemClock);
        Box::pin(self.deliver(mail, now))
    }
}

/// Sends through an SMTP relay.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    /// A plain SMTP connection to a relay at `host:port` (typically the local MTA, which
    /// handles TLS and retries onwards).
    pub fn new(host: &str, port: u16, from: &str) -> anyhow::Result<Self> {
        Ok(Self {
            transport: AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                .port(port)
                .build(),
            from: from.parse()?,
        })
    }
}

impl Mailer for SmtpMailer {
    fn send<'a>(&'a self, mail: &'a Mail) -> MailFuture<'a> {
        Box::pin(async move {
            let to: Mailbox = mail.to.parse().map_err(|e| MailError(format!("{e}")))?;
            let message = Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(&mail.subject)
                .body(mail.body.clone())
                .map_err(|e| MailError(e.to_string()))?;
            self.transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| MailError(e.to_string()))
        })
    }
}

/// Every configured mailer; a mail goes to each.
#[derive(Clone, Default)]
pub struct Mailers(pub Vec<Arc<dyn Mailer>>);

impl Mailers {
    /// Sends in the background; failures are logged (the user can ask for a new code).
    pub fn send_later(&self, mail: Mail) {
        for mailer in self.0.clone() {
            let mail = mail.clone();
            tokio::spawn(async move {
                if let Err(e) = mailer.send(&mail).await {
                    tracing::warn!(error = %e, "mail delivery failed");
                }
            });
        }
    }
}
