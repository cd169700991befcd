//! Chat as a service: rooms (ordinary, or support rooms bound to an order), membership, posting
//! (REST and the WebSocket's `chat.send` both come here) and history. Each post is published on
//! `chat:{room}` once durable. Which rooms a user belongs to is kept from the rooms' durable
//! views, so listing them asks no room. The WebSocket checks [`Chat::reads`] before it hands
//! a socket a post: a member who left hears no post made after, on a subscription opened
//! before (the room's view is updated before any later post is answered, so on one node this
//! holds exactly; another node's copy of the view may lag by its replication).

use crate::actors::Entity;
use crate::actors::chat::{Room, RoomView, archive_key};
use crate::actors::user::User;
use crate::actors::{AskError, Entities, Runtime, RuntimeError};
use crate::auth::vault::Vault;
use crate::domain::chat::{ChatMessage, MAX_PAGE, RoomCommand, RoomError, mentions};
use crate::domain::ids::{OrderId, RoomId, UserId};
use crate::domain::order::Requester;
use crate::domain::user::UserCommand;
use crate::domain::user::inbox::Notification;
use crate::events::EventBus;
use crate::orders::{OrderFailure, Orders};
use crate::persistence::{StreamId, blocking, codec};
use dashmap::DashMap;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;

pub mod limits;
use limits::ChatLimits;

#[derive(Clone)]
pub struct Chat {
    rooms: Entities<Room>,
    orders: Orders,
    bus: EventBus,
    /// Message texts are sealed for their authors.
    vault: Arc<Vault>,
    /// Mentioned members are notified.
    users: Entities<User>,
    /// Rooms by member.
    index: Arc<DashMap<UserId, BTreeSet<RoomId>>>,
    /// How fast one user may post and create rooms.
    limits: ChatLimits,
}

/// Why a chat request failed; mapped to HTTP once, in `http::chat`.
#[derive(Debug, thiserror::Error)]
pub enum ChatFailure {
    #[error(transparent)]
    Room(#[from] RoomError),
    #[error(transparent)]
    Order(#[from] OrderFailure),
    #[error(transparent)]
    Runtime(RuntimeError),
    /// Over a per-user limit of [`ChatLimits`]: `retry_after` whole seconds.
    #[error("too many {what} from you; try again in {retry_after} s")]
    RateLimited {
        what: &'static str,
        retry_after: u64,
    },
}

impl From<RuntimeError> for ChatFailure {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::NotFound => ChatFailure::Room(RoomError::NotFound),
            other => ChatFailure::Runtime(other),
        }
    }
}

impl From<AskError<RoomError>> for ChatFailure {
    fn from(e: AskError<RoomError>) -> Self {
        e.into_failure()
    }
}

/// Who asks: a user, and whether they are an admin.
#[derive(Debug, Clone)]
pub struct Member {
    pub user: UserId,
    pub admin: bool,
}

/// A room to create.
pub struct NewRoom {
    pub name: String,
    pub members: Vec<UserId>,
    pub order_id: Option<OrderId>,
}

impl Chat {
    pub async fn start(
        rt: Runtime,
        orders: Orders,
        bus: EventBus,
        vault: Arc<Vault>,
        users: Entities<User>,
        limits: ChatLimits,
    ) -> anyhow::Result<Self> {
        let rooms = Entities::<Room>::start(rt).await?;
        let index: Arc<DashMap<UserId, BTreeSet<RoomId>>> = Arc::default();
        // Each room's members as last indexed: a post rewrites the view, not the members.
        let indexed: Arc<DashMap<RoomId, Vec<UserId>>> = Arc::default();
        let record = {
            let index = index.clone();
            move |id: &RoomId, view: &RoomView| {
                if indexed.get(id).is_some_and(|m| *m == view.members) {
                    return;
                }
                let before = indexed.insert(id.clone(), view.members.clone());
                for gone in before.unwrap_or_default() {
                    if !view.members.contains(&gone)
                        && let Some(mut rooms) = index.get_mut(&gone)
                    {
                        rooms.remove(id);
                    }
                }
                for m in &view.members {
                    index.entry(m.clone()).or_default().insert(id.clone());
                }
            }
        };
        for (id, view) in rooms.views() {
            record(&id, &view);
        }
        rooms.on_view(record);
        Ok(Self {
            rooms,
            orders,
            bus,
            vault,
            users,
            index,
            limits,
        })
    }

    /// The per-user limits, to prune now and then.
    pub fn limits(&self) -> &ChatLimits {
        &self.limits
    }

    pub fn rooms(&self) -> &Entities<Room> {
        &self.rooms
    }

    /// Creates a room; a support room (with `order_id`) is for the order's owner (or an admin)
    /// to open, has the id `s{order_id}`, and opening it again finds the same room.
    pub async fn create(
        &self,
        by: &Member,
        new: NewRoom,
    ) -> Result<(RoomId, RoomView), ChatFailure> {
        let new_order = new.order_id.is_some();
        let (id, members) = match &new.order_id {
            Some(order_id) => {
                let requester = Requester {
                    user_id: by.user.clone(),
                    admin: by.admin,
                };
                let order = self.orders.get(&requester, order_id).await?;
                let owner = order.owner().cloned().ok_or(RoomError::NotFound)?;
                let id = RoomId::parse(format!("s{order_id}"))
                    .map_err(|_| RoomError::Invalid("order id".into()))?;
                // An erased shopper's order keeps its support room for admins only.
                let owners = match self.have_accounts(std::slice::from_ref(&owner)).await {
                    Ok(()) => vec![owner],
                    Err(ChatFailure::Room(RoomError::Invalid(_))) => vec![],
                    Err(e) => return Err(e),
                };
                (id, owners)
            }
            None => {
                // The name first: a request refused for it asks no account.
                crate::domain::chat::check_name(new.name.trim())?;
                self.have_accounts(&new.members).await?;
                admit(&self.limits.rooms, "rooms", &by.user).await?;
                let id = RoomId::parse(format!("r{:016x}", rand::random::<u64>()))
                    .map_err(|_| RoomError::Invalid("room id".into()))?;
                (id, new.members)
            }
        };
        let create = RoomCommand::Create {
            name: new.name,
            by: by.user.clone(),
            members,
            order_id: new.order_id,
        };
        let reply = self.rooms.ask(&id, create).await?;
        // Opening a support room again as its order's owner, after leaving it, is coming back.
        let owner_away = new_order && !by.admin && !reply.room.members.contains(&by.user);
        if owner_away {
            return Ok((id.clone(), self.join(by, &id).await?));
        }
        Ok((id, reply.room))
    }

    /// Refuses (`Invalid`) a member with no account, never made or deleted: a room lists
    /// people, and a deleted one is not put back on a list.
    ///
    /// Each id is looked up once, a few at a time; one never written is refused without
    /// waking an actor, so naming a thousand made-up ids costs a thousand key lookups, not a
    /// thousand actors.
    async fn have_accounts(&self, members: &[UserId]) -> Result<(), ChatFailure> {
        use futures_util::{StreamExt, TryStreamExt};
        let unique: BTreeSet<UserId> = members.iter().cloned().collect();
        futures_util::stream::iter(unique)
            .map(|member| async move { self.has_account(&member).await })
            .buffer_unordered(8)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn has_account(&self, member: &UserId) -> Result<(), ChatFailure> {
        // A rejection or `NotFound` means no account; any other failure is the runtime's.
        let failed = |e: AskError<_>| match e.rejection() {
            Ok(_) | Err(RuntimeError::NotFound) => {
                let why = format!("members: {member} has no account");
                ChatFailure::Room(RoomError::Invalid(why.into()))
            }
            Err(failure) => ChatFailure::Runtime(failure),
        };
        if !self.users.stored(member).await.map_err(failed)? {
            return Err(failed(AskError::NotFound));
        }
        self.users
            .ask(member, UserCommand::Get)
            .await
            .map(drop)
            .map_err(failed)
    }

    /// The rooms `user` belongs to, by id.
    pub fn rooms_of(&self, user: &UserId) -> Vec<(RoomId, RoomView)> {
        let ids = self.index.get(user).map(|r| r.clone()).unwrap_or_default();
        ids.into_iter()
            .filter_map(|id| self.rooms.view(&id).map(|v| (id, v)))
            .collect()
    }

    /// Joins `room`. A support room admits admins and its order's owner (the room knows its
    /// order, not who owns it: the order is asked), so an owner who left may come back.
    pub async fn join(&self, by: &Member, room: &RoomId) -> Result<RoomView, ChatFailure> {
        let admitted = by.admin || self.owns_order_of(by, room).await?;
        let join = RoomCommand::Join {
            user: by.user.clone(),
            admin: admitted,
        };
        Ok(self.rooms.ask(room, join).await?.room)
    }

    /// Whether `room` is a support room whose order `by` owns. A support room's id is `s`
    /// and its order's id (`create`), so the order is known without the room's view.
    async fn owns_order_of(&self, by: &Member, room: &RoomId) -> Result<bool, ChatFailure> {
        let Some(order_id) = room
            .as_str()
            .strip_prefix('s')
            .and_then(|id| OrderId::parse(id).ok())
        else {
            return Ok(false);
        };
        let owner = Requester {
            user_id: by.user.clone(),
            admin: false,
        };
        match self.orders.get(&owner, &order_id).await {
            Ok(_) => Ok(true),
            Err(OrderFailure::NotFound(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn leave(&self, by: &Member, room: &RoomId) -> Result<RoomView, ChatFailure> {
        let leave = RoomCommand::Leave {
            user: by.user.clone(),
        };
        Ok(self.rooms.ask(room, leave).await?.room)
    }

    /// Leaves every room `user` is listed in (an account being deleted); a room already left
    /// is no error, so a retry after a failure finishes the rest.
    pub async fn leave_all(&self, user: &UserId) -> Result<(), ChatFailure> {
        let rooms = self.index.get(user).map(|r| r.clone()).unwrap_or_default();
        let by = Member {
            user: user.clone(),
            admin: false,
        };
        for room in rooms {
            match self.leave(&by, &room).await {
                Ok(_) | Err(ChatFailure::Room(RoomError::NotMember | RoomError::NotFound)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Posts (or finds the message a resent `client_msg_id` made) and publishes it on
    /// `chat:{room}`: a new message always; a resend only while it is still the room's newest
    /// (its first answer may have been lost before the push; a socket that had it skips the
    /// same message again), so members never get an old message after newer ones. Whether
    /// the post made the message is told here, from the post's own seal, not by the room: a
    /// room on a node of an older build answers the same.
    pub async fn post(
        &self,
        author: &UserId,
        room: &str,
        text: String,
        client_msg_id: Option<String>,
    ) -> Result<Posted, ChatFailure> {
        let room = RoomId::parse(room).map_err(|_| RoomError::NotFound)?;
        admit(&self.limits.messages, "messages", author).await?;
        let sealed = self.vault.seal(author, &text).await;
        let post = RoomCommand::Post {
            author: author.clone(),
            text,
            client_msg_id,
            sealed: Some(sealed.map_err(OrderFailure::from)?),
        };
        let reply = self.rooms.ask(&room, post.clone()).await?;
        let message = reply
            .posted
            .ok_or(RoomError::Invalid("the message was not recorded".into()))?;
        let fresh = crate::domain::chat::made(&message, &post);
        let message = self.reveal(message).await?;
        if fresh || reply.newest {
            self.bus
                .announce(&format!("chat:{room}"), pushed(&room, &message));
        }
        self.notify_mentioned(&room, &message).await;
        Ok(Posted {
            room,
            message,
            fresh,
        })
    }

    /// Tells each member `@`-mentioned in `message` (a `chat_mention` notification: the room,
    /// not the text, which stays the author's). Best effort: the message is posted whatever
    /// happens here; a resent message notifies again under the same id, which inboxes keep once.
    async fn notify_mentioned(&self, room: &RoomId, message: &ChatMessage) {
        let Some(view) = self.rooms.view(room) else {
            return;
        };
        for user in mentions(&message.text, &view.members, &message.author) {
            let note = Notification {
                id: format!("chat-{room}-{}-mention", message.id),
                kind: "chat_mention".into(),
                text: format!("You were mentioned in the chat \"{}\".", view.name),
                at: message.at,
                room_id: Some(room.to_string()),
                name: Some(view.name.clone()),
                ..Notification::default()
            };
            let told = crate::events::feeds::notify_user(&self.users, &self.bus, &user, note);
            if let Err(e) = told.await {
                tracing::warn!(%user, error = ?e, "cannot notify a mention");
            }
        }
    }

    /// A page of history, newest first, for a reader of the room; and the cursor of the next.
    pub async fn history(
        &self,
        by: &Member,
        room: &RoomId,
        before: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<ChatMessage>, Option<u64>), ChatFailure> {
        let view = self.rooms.view(room).ok_or(RoomError::NotFound)?;
        if !view.can_read(&by.user, by.admin) {
            return Err(RoomError::NotMember.into());
        }
        let limit = limit.clamp(1, MAX_PAGE);
        let page = RoomCommand::Page { before, limit };
        let reply = self.rooms.ask(room, page).await?;
        let (mut messages, mut more) = (reply.page, reply.more);
        let short = limit - messages.len().min(limit);
        // Below the window, the page goes on in the archive.
        let below = before.map_or(reply.archived + 1, |b| b.min(reply.archived + 1));
        if short > 0 && below > 1 {
            let older = self.archived(room, below, short + 1).await?;
            more = older.len() > short;
            messages.extend(older.into_iter().take(short));
        } else if short > 0 {
            more = false;
        }
        let next = more.then(|| messages.last().map(|m| m.id)).flatten();
        let mut page = Vec::with_capacity(messages.len());
        for m in messages {
            page.push(self.reveal(m).await?);
        }
        Ok((page, next))
    }

    /// Up to `limit` archived messages of `room` with ids below `below`, newest first.
    async fn archived(
        &self,
        room: &RoomId,
        below: u64,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, ChatFailure> {
        let journal = self.rooms.journal().clone();
        let stream = StreamId::new(Room::KIND, room.to_string());
        let read = move || journal.archive_range(&stream, Some(&archive_key(below)), limit);
        fn unavailable<E>(_: E) -> ChatFailure {
            ChatFailure::Runtime(RuntimeError::Unavailable)
        }
        let records = blocking(read).await.map_err(unavailable)?;
        records
            .map_err(unavailable)?
            .iter()
            .map(|(_, bytes)| codec::decode_snapshot::<ChatMessage>(bytes).map_err(unavailable))
            .collect()
    }

    /// The message with its text opened; an erased author's stays sealed, its text empty —
    /// also a message from before texts were sealed, whose text is in clear.
    async fn reveal(&self, mut m: ChatMessage) -> Result<ChatMessage, ChatFailure> {
        match &m.sealed {
            Some(sealed) => {
                let opened = self.vault.open(&m.author, sealed).await;
                if let Some(text) = opened.map_err(OrderFailure::from)? {
                    m.text = text;
                    m.sealed = None;
                }
            }
            None => {
                let erased = self.vault.is_erased(&m.author).await;
                if erased.map_err(OrderFailure::from)? {
                    m.text.clear();
                    m.sealed = Some(crate::domain::sealed::Sealed(Vec::new()));
                }
            }
        }
        Ok(m)
    }

    /// Whether `user` may read `room` (its `chat:` topic), by this node's view of the room:
    /// a lookup, no ask and no copy (the WebSocket asks before each post it hands over).
    pub fn reads(&self, user: &UserId, admin: bool, room: &str) -> bool {
        let Ok(room) = RoomId::parse(room) else {
            return false;
        };
        self.rooms
            .view_with(&room, |v| v.can_read(user, admin))
            .unwrap_or(false)
    }
}

/// What a post answers: the room, its message (in clear), and whether the post made it or
/// found it again by its `client_msg_id`.
#[derive(Debug)]
pub struct Posted {
    pub room: RoomId,
    pub message: ChatMessage,
    pub fresh: bool,
}

/// `{"type": "chat.message", "room_id", "message_id", "author", "text", "at", "client_msg_id"}`.
pub fn pushed(room: &RoomId, m: &ChatMessage) -> crate::events::Message {
    json!({
        "type": "chat.message",
        "room_id": room,
        "message_id": m.id,
        "author": m.author,
        "text": m.text,
        "at": m.at.to_rfc3339(),
        "client_msg_id": m.client_msg_id,
    })
    .to_string()
    .into()
}

/// Counts one of `what` by `user` against `limit`; refused with the wait when over it.
async fn admit(
    limit: &crate::limits::RateLimit<UserId>,
    what: &'static str,
    user: &UserId,
) -> Result<(), ChatFailure> {
    let limited = limit.check(user).await;
    limited.map_err(|retry_after| ChatFailure::RateLimited { what, retry_after })
}
