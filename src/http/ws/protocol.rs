//! The WebSocket protocol of API.md: client frames, server frames, and which topics exist.
//! Pure: parsing and shapes, no I/O.

use crate::domain::ids::{DropId, OrderId, ProductId};
use serde::Deserialize;
use serde_json::json;

/// The largest client frame accepted (API.md: 16 KiB).
pub const MAX_FRAME: usize = 16 * 1024;

/// A frame a client sends.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum ClientFrame {
    #[serde(rename = "auth")]
    Auth { access_token: String },
    #[serde(rename = "subscribe")]
    Subscribe { topic: String },
    #[serde(rename = "unsubscribe")]
    Unsubscribe { topic: String },
    #[serde(rename = "chat.send")]
    ChatSend {
        room_id: String,
        text: String,
        #[serde(default)]
        client_msg_id: Option<String>,
    },
    #[serde(rename = "ping")]
    Ping,
}

impl ClientFrame {
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
}

/// A topic a socket may subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    Drop(DropId),
    Product(ProductId),
    Order(OrderId),
    /// The caller's own notifications.
    User,
    Chat(String),
}

impl Topic {
    pub fn parse(raw: &str) -> Option<Self> {
        if raw == "user" {
            return Some(Topic::User);
        }
        let (kind, id) = raw.split_once(':')?;
        match kind {
            "drop" => DropId::parse(id).ok().map(Topic::Drop),
            "product" => ProductId::parse(id).ok().map(Topic::Product),
            "order" => OrderId::parse(id).ok().map(Topic::Order),
            "chat" if !id.is_empty() && id.len() <= 64 => Some(Topic::Chat(id.to_owned())),
            _ => None,
        }
    }

    /// Topics anyone may read, signed in or not.
    pub fn is_public(&self) -> bool {
        matches!(self, Topic::Drop(_) | Topic::Product(_))
    }

    /// The EventBus topic it reads (`user` is per user).
    pub fn bus_topic(&self, user: Option<&str>) -> String {
        match self {
            Topic::Drop(id) => format!("drop:{id}"),
            Topic::Product(id) => format!("product:{id}"),
            Topic::Order(id) => format!("order:{id}"),
            Topic::User => format!("user:{}", user.unwrap_or("-")),
            Topic::Chat(id) => format!("chat:{id}"),
        }
    }
}

pub fn subscribed(topic: &str) -> String {
    json!({"type": "subscribed", "topic": topic}).to_string()
}

pub fn unsubscribed(topic: &str) -> String {
    json!({"type": "unsubscribed", "topic": topic}).to_string()
}

pub fn pong() -> String {
    r#"{"type":"pong"}"#.to_owned()
}

pub fn authenticated(user_id: &str) -> String {
    json!({"type": "authenticated", "user_id": user_id}).to_string()
}

pub fn error(code: &str, message: &str) -> String {
    json!({"type": "error", "code": code, "message": message}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_by_type_and_refuse_what_is_not_in_the_protocol() {
        assert_eq!(
            ClientFrame::parse(r#"{"type":"subscribe","topic":"drop:d1"}"#),
            Ok(ClientFrame::Subscribe {
                topic: "drop:d1".into()
            })
        );
        assert_eq!(
            ClientFrame::parse(r#"{"type":"ping"}"#),
            Ok(ClientFrame::Ping)
        );
        assert!(ClientFrame::parse(r#"{"type":"shout"}"#).is_err());
        assert!(ClientFrame::parse("not json").is_err());
        assert!(ClientFrame::parse(r#"{"type":"subscribe","topic":7}"#).is_err());
    }

    #[test]
    fn topics_name_a_kind_and_an_id() {
        assert_eq!(Topic::parse("user"), Some(Topic::User));
        assert!(Topic::parse("drop:d1").is_some_and(|t| t.is_public()));
        assert!(Topic::parse("order:o1").is_some_and(|t| !t.is_public()));
        assert_eq!(Topic::parse("chat:r1"), Some(Topic::Chat("r1".into())));
        assert_eq!(Topic::parse("drop:"), None);
        assert_eq!(Topic::parse("weather:today"), None);
        assert_eq!(Topic::parse("users"), None);
    }
}
