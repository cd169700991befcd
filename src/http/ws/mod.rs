//! The WebSocket edge, `GET /api/v1/ws`: one task per socket reads client frames, answers
//! them, and forwards the EventBus topics it subscribed to. Authentication by `?access_token=`
//! or an `auth` frame (again at any time, to extend past the token's expiry); anonymous sockets
//! read public topics only. Each topic is authorised when subscribed (`order:` its owner or an
//! admin, `chat:` members, `user` the caller's own).
//!
//! A frame that is not UTF-8 text closes with 1007, one that breaks the protocol with 1002.
//! Nothing grows without bound: frames are at most 16 KiB (larger closes with 1009), each
//! subscription is a bounded broadcast receiver — a socket that falls behind a topic by its
//! capacity is a slow consumer and is closed with 1013, and a write that does not finish within
//! [`WRITE_TIMEOUT`] drops the connection — so a slow reader never slows a publisher or another
//! socket. The server pings every [`PING_EVERY`] and closes a socket silent for
//! [`IDLE_TIMEOUT`]. Shutdown closes every socket with 1001; logout (the token revoked) and
//! the token's expiry close it with 1008.

pub mod protocol;

use crate::domain::order::Requester;
use crate::events::Message as BusMessage;
use crate::http::extract::{ApiQuery, AuthUser, authenticate};
use crate::http::state::AppState;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use protocol::{ClientFrame, MAX_FRAME, Topic};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tokio_stream::StreamMap;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

pub const PING_EVERY: Duration = Duration::from_secs(20);
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes of a socket's read buffer while its frames are small (it grows for a larger frame).
const READ_BUFFER: usize = 1024;
/// Topics one socket may hold at once.
pub const MAX_SUBSCRIPTIONS: usize = 64;

const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_PROTOCOL: u16 = 1002;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_BAD_DATA: u16 = 1007;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_TRY_AGAIN: u16 = 1013;

/// Sockets open now (also the `emporium_ws_sockets` gauge).
pub static SOCKETS: AtomicI64 = AtomicI64::new(0);

#[derive(Deserialize)]
pub struct WsQuery {
    access_token: Option<String>,
}

/// Upgrades to a WebSocket; a token in the query must be valid (401 problem otherwise).
#[utoipa::path(get, path = "/api/v1/ws", tag = "websocket",
    params(("access_token" = Option<String>, Query)),
    responses((status = 101, description = "switching protocols: the JSON protocol of API.md"),
        (status = 400, body = crate::http::error::Problem,
            description = "not a WebSocket handshake (`not_websocket`)"),
        (status = 401, body = crate::http::error::Problem)))]
pub async fn upgrade(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<WsQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, crate::http::error::ApiError> {
    let ws = ws.map_err(|r| {
        let status = r.status();
        crate::http::error::ApiError::new(status, "not_websocket", r.body_text())
    })?;
    let user = match q.access_token.as_deref() {
        Some(token) => Some(authenticate(&state, token)?),
        None => None,
    };
    Ok(ws
        // Client frames are a few dozen bytes (subscribe, ping, a chat line); the buffer grows
        // for a larger one, up to MAX_FRAME. Per idle socket this is most of its memory.
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| async move {
            let open = SOCKETS.fetch_add(1, Ordering::Relaxed) + 1;
            metrics::gauge!("emporium_ws_sockets").set(open as f64);
            Session::new(state, user).run(socket).await;
            let open = SOCKETS.fetch_sub(1, Ordering::Relaxed) - 1;
            metrics::gauge!("emporium_ws_sockets").set(open as f64);
        }))
}

/// Why a session ended, and the close frame it sends (if the socket can still take one).
struct Close(u16, &'static str);

struct Session {
    state: AppState,
    user: Option<AuthUser>,
    /// Subscriptions by topic name as the client wrote it (shared: a message hands it out).
    topics: StreamMap<Arc<str>, BroadcastStream<BusMessage>>,
    /// The last message forwarded per topic: a view written again unchanged is not re-sent.
    last: HashMap<Arc<str>, BusMessage>,
    /// When the signed-in token expires (far off for anonymous and operator sockets).
    expiry: Instant,
    /// Logout of this user: re-check the token.
    revocations: Option<BroadcastStream<BusMessage>>,
    /// Re-check the token before the next frame: a revocation published between the token's
    /// check and the subscription above (the HTTP upgrade answers before the session runs)
    /// reached no one.
    recheck: bool,
}

impl Session {
    fn new(state: AppState, user: Option<AuthUser>) -> Self {
        let mut session = Self {
            state,
            user: None,
            topics: StreamMap::new(),
            last: HashMap::new(),
            revocations: None,
            expiry: Instant::now(),
            recheck: false,
        };
        session.sign_in(user);
        session
    }

    fn sign_in(&mut self, user: Option<AuthUser>) {
        if let Some(u) = &user {
            let topic = format!("revoked:{}", u.user_id);
            self.revocations = Some(BroadcastStream::new(self.state.bus.subscribe(&topic)));
            self.recheck = true;
        }
        self.user = user;
        self.expiry = self.token_expiry();
    }

    async fn run(mut self, socket: WebSocket) {
        let (mut sink, mut stream) = socket.split();
        let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        let mut heard = Instant::now();
        // Made once, not per message: each is a registration (the shutdown token's waiters are
        // shared by every socket, the expiry is a timer) that the loop would redo per frame.
        let shutdown = self.state.shutdown.clone();
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        let expires = tokio::time::sleep_until(self.expiry);
        tokio::pin!(expires);
        let close = loop {
            if std::mem::take(&mut self.recheck) && self.is_revoked() {
                let _ = send(&mut sink, revoked()).await;
                break Some(Close(CLOSE_POLICY, "token revoked"));
            }
            if expires.deadline() != self.expiry {
                expires.as_mut().reset(self.expiry); // signed in again
            }
            let out: Result<Option<String>, Close> = tokio::select! {
                () = &mut cancelled => Err(Close(CLOSE_GOING_AWAY, "the server is shutting down")),
                () = &mut expires => {
                    let _ = send(&mut sink, protocol::error("token_expired", "the access token expired")).await;
                    Err(Close(CLOSE_POLICY, "token expired"))
                }
                frame = stream.next() => {
                    heard = Instant::now();
                    match frame {
                        None => break None,
                        // tungstenite has queued the closing handshake's answer (RFC 6455,
                        // 5.5.1): it leaves with a flush, the socket is not just dropped.
                        Some(Ok(Message::Close(_))) => {
                            let _ = tokio::time::timeout(Duration::from_secs(1), sink.flush()).await;
                            break None;
                        }
                        // Boxed: answering a frame can await an actor (an order's owner, a chat
                        // post), and inline that state would sit in every idle socket's task.
                        Some(Ok(Message::Text(text))) => Box::pin(self.on_frame(text.as_str())).await,
                        Some(Ok(Message::Binary(_))) => Ok(Some(protocol::error("bad_frame", "frames are JSON text"))),
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(None),
                        // tungstenite's capacity error: a frame over the limit.
                        Some(Err(e)) if e.to_string().contains("Space limit exceeded") => {
                            Err(Close(CLOSE_TOO_BIG, "frame too large"))
                        }
                        // tungstenite's error for a text frame that is not UTF-8 (RFC 6455,
                        // 8.1: close with 1007).
                        Some(Err(e)) if e.to_string().contains("UTF-8") => {
                            Err(Close(CLOSE_BAD_DATA, "text frames are UTF-8"))
                        }
                        // Any other breach of the protocol (reserved bits, an unmasked or
                        // fragmented control frame, …) fails the connection with 1002 (RFC
                        // 6455, 7.1.7 and 7.4.1); an I/O error has no one left to tell.
                        Some(Err(e)) if e.to_string().contains("protocol error") => {
                            Err(Close(CLOSE_PROTOCOL, "WebSocket protocol error"))
                        }
                        Some(Err(_)) => break None,
                    }
                }
                Some((topic, item)) = self.topics.next(), if !self.topics.is_empty() => match item {
                    Ok(message) => {
                        if !self.still_reads(&topic) {
                            Ok(Some(self.end(&topic)))
                        } else if self.last.get(&topic).is_some_and(|m| *m == message) {
                            Ok(None)
                        } else {
                            self.last.insert(topic, message.clone());
                            Ok(Some(message.to_string()))
                        }
                    }
                    Err(BroadcastStreamRecvError::Lagged(_)) => Err(Close(CLOSE_TRY_AGAIN, "slow consumer: reconnect")),
                },
                Some(_) = next_revocation(&mut self.revocations) => {
                    if self.is_revoked() {
                        let _ = send(&mut sink, revoked()).await;
                        Err(Close(CLOSE_POLICY, "token revoked"))
                    } else {
                        Ok(None)
                    }
                }
                _ = ping.tick() => {
                    if heard.elapsed() > IDLE_TIMEOUT {
                        Err(Close(CLOSE_GOING_AWAY, "idle"))
                    } else {
                        match tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Ping(Default::default()))).await {
                            Ok(Ok(())) => Ok(None),
                            _ => break None,
                        }
                    }
                }
            };
            match out {
                Ok(Some(text)) => {
                    if !send(&mut sink, text).await {
                        break None;
                    }
                }
                Ok(None) => {}
                Err(close) => break Some(close),
            }
        };
        if let Some(Close(code, reason)) = close {
            let frame = CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            };
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                sink.send(Message::Close(Some(frame))),
            )
            .await;
        }
    }

    /// Whether the socket may still read `topic`: a `chat:` topic is its room's members' (and
    /// for a support room admins'), and a member who left is not one; every other topic's
    /// reader stays one.
    fn still_reads(&self, topic: &str) -> bool {
        let (Some(room), Some(user)) = (topic.strip_prefix("chat:"), &self.user) else {
            return true;
        };
        let admin = user.has_role(crate::domain::role::Role::Admin);
        self.state.chat.reads(&user.user_id, admin, room)
    }

    /// Ends the subscription to `topic` (the client's `unsubscribe`, or a room it left);
    /// what the client is told.
    fn end(&mut self, topic: &str) -> String {
        self.topics.remove(topic);
        self.last.remove(topic);
        protocol::unsubscribed(topic)
    }

    /// Whether the signed-in token has been revoked (never for an anonymous socket).
    fn is_revoked(&self) -> bool {
        self.user
            .as_ref()
            .is_some_and(|u| self.state.accounts.revocations.is_revoked(&u.claims))
    }

    /// When the socket's token expires (never for anonymous and operator sockets).
    fn token_expiry(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        match &self.user {
            Some(user) if user.claims.exp != i64::MAX => {
                let left = user
                    .claims
                    .exp
                    .saturating_sub(self.state.clock.now().millis() / 1000);
                Instant::now() + Duration::from_secs(u64::try_from(left).unwrap_or(0))
            }
            _ => far,
        }
    }

    /// Answers one client frame: a reply to send, nothing, or a reason to close.
    async fn on_frame(&mut self, text: &str) -> Result<Option<String>, Close> {
        let frame = match ClientFrame::parse(text) {
            Ok(f) => f,
            Err(e) => return Ok(Some(protocol::error("bad_frame", &e))),
        };
        Ok(Some(match frame {
            ClientFrame::Ping => protocol::pong(),
            ClientFrame::Auth { access_token } => match authenticate(&self.state, &access_token) {
                Ok(user) => {
                    if self
                        .user
                        .as_ref()
                        .is_some_and(|u| u.user_id != user.user_id)
                    {
                        protocol::error("forbidden", "a socket stays with the user it signed in as")
                    } else {
                        let reply = protocol::authenticated(user.user_id.as_str());
                        self.sign_in(Some(user));
                        reply
                    }
                }
                Err(e) => protocol::error(e.code, &e.detail),
            },
            ClientFrame::Subscribe { topic } => self.subscribe(topic).await,
            ClientFrame::Unsubscribe { topic } => self.end(&topic),
            ClientFrame::ChatSend {
                room_id,
                text,
                client_msg_id,
            } => {
                let Some(user) = &self.user else {
                    return Ok(Some(protocol::error("unauthorized", "sign in to chat")));
                };
                match self
                    .state
                    .chat
                    .post(&user.user_id, &room_id, text, client_msg_id)
                    .await
                {
                    // A new message arrives on `chat:{room}` for a socket subscribed to it;
                    // any other socket, and a resend (pushed again only while it is the
                    // room's newest, which a socket that had it skips), are answered with the
                    // message itself: the sender always hears what was stored.
                    Ok(posted) => {
                        let topic = format!("chat:{}", posted.room);
                        if posted.fresh && self.topics.contains_key(topic.as_str()) {
                            return Ok(None);
                        }
                        crate::chat::pushed(&posted.room, &posted.message).to_string()
                    }
                    Err(e) => {
                        let e = crate::http::error::ApiError::from(e);
                        protocol::error(e.code, &e.detail)
                    }
                }
            }
        }))
    }

    async fn subscribe(&mut self, raw: String) -> String {
        let Some(topic) = Topic::parse(&raw) else {
            return protocol::error("unknown_topic", "no such topic");
        };
        if self.topics.contains_key(raw.as_str()) {
            return protocol::subscribed(&raw);
        }
        if self.topics.len() >= MAX_SUBSCRIPTIONS {
            return protocol::error("too_many_subscriptions", "64 topics per socket at most");
        }
        if let Err((code, message)) = self.authorize(&topic).await {
            return protocol::error(code, message);
        }
        let user = self.user.as_ref().map(|u| u.user_id.as_str());
        let receiver = self.state.bus.subscribe(&topic.bus_topic(user));
        self.topics
            .insert(Arc::from(raw.as_str()), BroadcastStream::new(receiver));
        protocol::subscribed(&raw)
    }

    async fn authorize(&self, topic: &Topic) -> Result<(), (&'static str, &'static str)> {
        let unknown = ("not_found", "no such drop or product");
        match topic {
            Topic::Drop(id) => return self.state.drops.get(id).map(|_| ()).ok_or(unknown),
            Topic::Product(id) => {
                return self.state.catalog.index.get(id).map(|_| ()).ok_or(unknown);
            }
            _ => {}
        }
        let Some(user) = &self.user else {
            return Err(("unauthorized", "sign in to subscribe to this topic"));
        };
        let forbidden = ("forbidden", "this topic is not yours");
        match topic {
            Topic::Order(id) => {
                let by = Requester {
                    user_id: user.user_id.clone(),
                    admin: user.has_role(crate::domain::role::Role::Admin),
                };
                self.state
                    .orders
                    .get(&by, id)
                    .await
                    .map(|_| ())
                    .map_err(|_| forbidden)
            }
            Topic::Chat(room) => {
                let admin = user.has_role(crate::domain::role::Role::Admin);
                if self.state.chat.reads(&user.user_id, admin, room) {
                    Ok(())
                } else {
                    Err(forbidden)
                }
            }
            _ => Ok(()),
        }
    }
}

/// The frame a socket whose token was revoked gets before it closes.
fn revoked() -> String {
    protocol::error("token_revoked", "the access token was revoked")
}

async fn next_revocation(revocations: &mut Option<BroadcastStream<BusMessage>>) -> Option<()> {
    match revocations {
        Some(stream) => stream.next().await.map(|_| ()),
        None => std::future::pending().await,
    }
}

/// Sends a text frame; false when the socket is gone or too slow to take it.
async fn send<S>(sink: &mut S, text: String) -> bool
where
    S: futures_util::Sink<Message> + Unpin,
{
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Text(text.into()))).await,
        Ok(Ok(()))
    )
}
