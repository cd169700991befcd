//! The chat room entity: one actor per room owns its members and message log, so messages are
//! numbered in one order and a resend is recognised. It keeps the newest messages in its state
//! and archives the older ones ([`archive_key`]), so a room of any length costs a window of
//! memory. Rules are in `domain::chat`.

use crate::actors::entity::Entity;
use crate::domain::chat::{self, ChatMessage, RoomCommand, RoomError, RoomEvent, RoomState};
use crate::domain::ids::{OrderId, RoomId, UserId};
use crate::domain::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The chat room kind.
pub struct Room;

/// A room after a command: who is in it, the message a post made (or found again), the page
/// a `Page` read.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RoomReply {
    pub room: RoomView,
    pub posted: Option<ChatMessage>,
    /// Whether `posted` is the room's newest message (absent from older builds: false).
    #[serde(default)]
    pub newest: bool,
    pub page: Vec<ChatMessage>,
    pub more: bool,
    /// Messages `1..=archived` are in the room's archive: a short page goes on there.
    #[serde(default)]
    pub archived: u64,
}

/// The archive key of message `id`: its id big-endian, so keys sort by id.
pub fn archive_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// What listings read without asking the room: its name, order and members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomView {
    pub name: String,
    pub order_id: Option<OrderId>,
    pub members: Vec<UserId>,
}

impl RoomView {
    /// Members read the room; admins read support rooms too.
    pub fn can_read(&self, user: &UserId, admin: bool) -> bool {
        self.members.contains(user) || (admin && self.order_id.is_some())
    }
}

impl Entity for Room {
    const KIND: &'static str = "room";
    type Id = RoomId;
    type State = RoomState;
    type Command = RoomCommand;
    type Event = RoomEvent;
    type Rejection = RoomError;
    type Reply = RoomReply;
    type View = RoomView;

    fn decide(s: &RoomState, c: &RoomCommand, now: Timestamp) -> Result<Vec<RoomEvent>, RoomError> {
        chat::decide(s, c, now)
    }

    fn apply(s: &mut RoomState, e: &RoomEvent) {
        chat::apply(s, e);
    }

    fn reply(_: &RoomId, s: &RoomState, c: &RoomCommand) -> RoomReply {
        let window = match c {
            RoomCommand::Page { before, limit } => s.page(*before, *limit),
            _ => chat::WindowPage::default(),
        };
        let posted = chat::posted(s, c).cloned();
        RoomReply {
            room: view_of(s),
            newest: posted
                .as_ref()
                .is_some_and(|m| s.messages.last().is_some_and(|last| last.id == m.id)),
            posted,
            page: window.page,
            more: window.more,
            archived: window.archived,
        }
    }

    fn evict(s: &mut RoomState) -> Vec<crate::persistence::Record> {
        chat::evict(s)
            .into_iter()
            .filter_map(|m| {
                let record = crate::persistence::codec::encode_snapshot(&m);
                match record {
                    Ok(bytes) => Some((archive_key(m.id).to_vec(), bytes)),
                    Err(e) => {
                        tracing::error!(message = m.id, error = %e, "cannot archive a message");
                        None
                    }
                }
            })
            .collect()
    }

    fn view(s: &RoomState) -> Option<RoomView> {
        s.exists().then(|| view_of(s))
    }

    fn weight(s: &RoomState) -> usize {
        s.messages.len()
    }
}

fn view_of(s: &RoomState) -> RoomView {
    RoomView {
        name: s.name.clone(),
        order_id: s.order_id.clone(),
        members: s.members.iter().cloned().collect(),
    }
}
