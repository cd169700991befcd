//! One chat room: its members and its message log. Messages are numbered by the room in the
//! order it accepts them, so a page "before message N" never changes once N exists — history
//! is stable however many people post meanwhile. A client's `client_msg_id` makes a resend
//! (after a lost answer) the same message, not a second one.
//!
//! A support room belongs to an order: its owner is its member, and admins may join it; nobody
//! else can. Any signed-in user may join an ordinary room.

use crate::domain::ids::{OrderId, UserId};
use crate::domain::sealed::Sealed;
use crate::domain::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

pub const MAX_TEXT: usize = 2000;
pub const MAX_NAME: usize = 100;
pub const MAX_MEMBERS: usize = 1000;

/// A room's name: one line of 1 to [`MAX_NAME`] characters, some of them visible.
pub fn check_name(name: &str) -> Result<(), RoomError> {
    if !crate::domain::text::is_line(name, 1, MAX_NAME) {
        return Err(RoomError::Invalid(
            "name must be 1 to 100 characters on one line, some of them visible".into(),
        ));
    }
    Ok(())
}
pub const MAX_CLIENT_MSG_ID: usize = 64;
pub const MAX_PAGE: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub id: u64,
    pub author: UserId,
    /// In clear only in messages from before texts were sealed, or once opened for a reader.
    pub text: String,
    pub at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    /// The text sealed with the author's data key (`crate::auth::vault`): it stops opening
    /// when the author is erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<Sealed>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomState {
    pub name: String,
    pub created_by: Option<UserId>,
    /// Set for a support room.
    pub order_id: Option<OrderId>,
    pub members: BTreeSet<UserId>,
    /// The newest messages, ids `archived + 1 ..`: at most [`WINDOW`] once [`evict`] ran. The
    /// older ones are in the room's archive.
    pub messages: Vec<ChatMessage>,
    /// Messages `1..=archived` have left the state for the archive.
    #[serde(default)]
    pub archived: u64,
    /// `(author, client_msg_id)` -> message id, for the messages of the window (a resend of
    /// an archived message is a new post: a client resends within seconds, not 200 messages
    /// later).
    #[serde(default)]
    pub client_ids: HashMap<String, u64>,
}

/// The messages a room keeps in its state: the newest, which most reads want.
pub const WINDOW: usize = 200;

/// A page of a room's window (see [`RoomState::page`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WindowPage {
    /// Newest first.
    pub page: Vec<ChatMessage>,
    /// Whether older messages remain, in the window or the archive.
    pub more: bool,
    /// Messages `1..=archived` are in the archive, not the window.
    pub archived: u64,
}

impl RoomState {
    pub fn exists(&self) -> bool {
        self.created_by.is_some()
    }

    /// The id the next message gets.
    pub fn next_id(&self) -> u64 {
        self.archived + self.messages.len() as u64 + 1
    }

    /// Up to `limit` messages of the window older than `before` (all, without it), newest
    /// first; the reader reads the rest of a short page from the archive, below `archived + 1`.
    pub fn page(&self, before: Option<u64>, limit: usize) -> WindowPage {
        // Ids are consecutive: message `id` sits at index `id - archived - 1`.
        let end = before.map_or(self.messages.len(), |b| {
            usize::try_from(b.saturating_sub(1).saturating_sub(self.archived))
                .unwrap_or(usize::MAX)
                .min(self.messages.len())
        });
        let start = end.saturating_sub(limit);
        WindowPage {
            page: self.messages[start..end].iter().rev().cloned().collect(),
            more: start > 0 || self.archived > 0,
            archived: self.archived,
        }
    }

    /// The window's message with this id.
    fn message(&self, id: u64) -> Option<&ChatMessage> {
        let at = id.checked_sub(self.archived + 1)?;
        self.messages.get(usize::try_from(at).ok()?)
    }
}

/// Moves the messages beyond the newest [`WINDOW`] out of the state, oldest first, and forgets
/// their `client_msg_id`s: what the room archives.
pub fn evict(s: &mut RoomState) -> Vec<ChatMessage> {
    let excess = s.messages.len().saturating_sub(WINDOW);
    if excess == 0 {
        return Vec::new();
    }
    let gone: Vec<ChatMessage> = s.messages.drain(..excess).collect();
    s.archived = gone.last().map_or(s.archived, |m| m.id);
    let archived = s.archived;
    s.client_ids.retain(|_, id| *id > archived);
    gone
}

fn dedup_key(author: &UserId, client_msg_id: &str) -> String {
    format!("{author}\n{client_msg_id}")
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RoomCommand {
    Create {
        name: String,
        by: UserId,
        members: Vec<UserId>,
        order_id: Option<OrderId>,
    },
    Join {
        user: UserId,
        /// Whether the joiner may enter a support room: an admin, or its order's owner (the
        /// caller checks the order; the room does not know who owns it).
        admin: bool,
    },
    Leave {
        user: UserId,
    },
    /// `text` is checked; with `sealed` (the same text sealed for the author), only the
    /// sealed text is kept.
    Post {
        author: UserId,
        text: String,
        client_msg_id: Option<String>,
        sealed: Option<Sealed>,
    },
    /// Reads a page of history (see [`RoomState::page`]); never an event.
    Page {
        before: Option<u64>,
        limit: usize,
    },
    Get,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RoomEvent {
    Created {
        name: String,
        by: UserId,
        members: Vec<UserId>,
        order_id: Option<OrderId>,
    },
    Joined {
        user: UserId,
    },
    Left {
        user: UserId,
    },
    Posted(ChatMessage),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum RoomError {
    #[error("no such room")]
    NotFound,
    #[error("only members may do that")]
    NotMember,
    #[error("a support room is for its order's owner and admins")]
    Forbidden,
    #[error("{0}")]
    Invalid(std::borrow::Cow<'static, str>),
}

pub fn decide(
    s: &RoomState,
    cmd: &RoomCommand,
    now: Timestamp,
) -> Result<Vec<RoomEvent>, RoomError> {
    if !s.exists() && !matches!(cmd, RoomCommand::Create { .. }) {
        return Err(RoomError::NotFound);
    }
    match cmd {
        RoomCommand::Create {
            name,
            by,
            members,
            order_id,
        } => {
            if s.exists() {
                // Creating a support room again finds the one there is.
                return if s.order_id.is_some() && s.order_id == *order_id {
                    Ok(vec![])
                } else {
                    Err(RoomError::Invalid("the room exists".into()))
                };
            }
            let name = name.trim();
            check_name(name)?;
            if members.len() >= MAX_MEMBERS {
                return Err(RoomError::Invalid("at most 1000 members".into()));
            }
            Ok(vec![RoomEvent::Created {
                name: name.to_owned(),
                by: by.clone(),
                members: members.clone(),
                order_id: order_id.clone(),
            }])
        }
        RoomCommand::Join { user, admin } => {
            if s.members.contains(user) {
                return Ok(vec![]);
            }
            if s.order_id.is_some() && !admin {
                return Err(RoomError::Forbidden);
            }
            if s.members.len() >= MAX_MEMBERS {
                return Err(RoomError::Invalid("the room is full".into()));
            }
            Ok(vec![RoomEvent::Joined { user: user.clone() }])
        }
        // One who is not a member learns nothing of the room (its members are in the answer),
        // as a read of it answers: a leave retried after its answer was lost is refused too.
        RoomCommand::Leave { user } => {
            if !s.members.contains(user) {
                return Err(RoomError::NotMember);
            }
            Ok(vec![RoomEvent::Left { user: user.clone() }])
        }
        RoomCommand::Post {
            author,
            text,
            client_msg_id,
            sealed,
        } => {
            if !s.members.contains(author) {
                return Err(RoomError::NotMember);
            }
            // The request is checked whole before a resend is recognised: a resend answers
            // only for a post that could have been stored.
            let n = text.chars().count();
            if !text.chars().any(crate::domain::text::is_visible) || n > MAX_TEXT {
                return Err(RoomError::Invalid(
                    "text must be 1 to 2000 characters, not all of them blank".into(),
                ));
            }
            // Lines and tabs are text; other control characters (NUL, escapes) are not.
            if text
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
            {
                return Err(RoomError::Invalid(
                    "text holds no control characters but newlines and tabs".into(),
                ));
            }
            if let Some(c) = client_msg_id {
                if c.is_empty() || c.chars().count() > MAX_CLIENT_MSG_ID {
                    return Err(RoomError::Invalid(
                        "client_msg_id must be 1 to 64 characters".into(),
                    ));
                }
                if s.client_ids.contains_key(&dedup_key(author, c)) {
                    return Ok(vec![]);
                }
            }
            Ok(vec![RoomEvent::Posted(ChatMessage {
                id: s.next_id(),
                author: author.clone(),
                text: if sealed.is_some() {
                    String::new()
                } else {
                    text.clone()
                },
                at: now,
                client_msg_id: client_msg_id.clone(),
                sealed: sealed.clone(),
            })])
        }
        RoomCommand::Get | RoomCommand::Page { .. } => Ok(vec![]),
    }
}

pub fn apply(s: &mut RoomState, e: &RoomEvent) {
    match e {
        RoomEvent::Created {
            name,
            by,
            members,
            order_id,
        } => {
            s.name = name.clone();
            s.created_by = Some(by.clone());
            s.order_id = order_id.clone();
            s.members.insert(by.clone());
            s.members.extend(members.iter().cloned());
        }
        RoomEvent::Joined { user } => {
            s.members.insert(user.clone());
        }
        RoomEvent::Left { user } => {
            s.members.remove(user);
        }
        RoomEvent::Posted(m) => {
            if let Some(c) = &m.client_msg_id {
                s.client_ids.insert(dedup_key(&m.author, c), m.id);
            }
            s.messages.push(m.clone());
        }
    }
}

/// The message a post names: the new one, or the earlier one its `client_msg_id` already sent.
pub fn posted<'a>(s: &'a RoomState, cmd: &RoomCommand) -> Option<&'a ChatMessage> {
    let RoomCommand::Post {
        author,
        client_msg_id,
        ..
    } = cmd
    else {
        return None;
    };
    match client_msg_id {
        Some(c) => s.message(*s.client_ids.get(&dedup_key(author, c))?),
        None => s.messages.last().filter(|m| &m.author == author),
    }
}

/// Whether `m`, the message a post names ([`posted`]), is the one this post made, not an
/// earlier one its `client_msg_id` had sent: a post's text is sealed afresh (a new nonce)
/// each time, so only the post that made a message carries its seal. An unsealed post (rooms
/// of tests) made `m` when it has no client id, or when `m` holds its text.
pub fn made(m: &ChatMessage, cmd: &RoomCommand) -> bool {
    let RoomCommand::Post {
        text,
        client_msg_id,
        sealed,
        ..
    } = cmd
    else {
        return false;
    };
    match sealed {
        Some(seal) => m.sealed.as_ref() == Some(seal),
        None => client_msg_id.is_none() || &m.text == text,
    }
}

/// The members `text` mentions as `@user_id` (each once, in order; the author never).
pub fn mentions(text: &str, members: &[UserId], author: &UserId) -> Vec<UserId> {
    let id_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    let mut found: Vec<UserId> = Vec::new();
    for (at, _) in text.match_indices('@') {
        let rest = &text[at + 1..];
        let end = rest.find(|c: char| !id_char(c)).unwrap_or(rest.len());
        let raw = rest[..end].trim_end_matches(['.', ':']);
        let Ok(user) = UserId::parse(raw) else {
            continue;
        };
        if &user != author && members.contains(&user) && !found.contains(&user) {
            found.push(user);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_000);

    fn user(u: &str) -> UserId {
        UserId::parse(u).unwrap()
    }

    fn given(cmds: Vec<RoomCommand>) -> RoomState {
        let mut s = RoomState::default();
        for c in cmds {
            for e in decide(&s, &c, NOW).unwrap() {
                apply(&mut s, &e);
            }
        }
        s
    }

    fn create(order: Option<&str>) -> RoomCommand {
        RoomCommand::Create {
            name: "help".into(),
            by: user("owner"),
            members: vec![],
            order_id: order.map(|o| OrderId::parse(o).unwrap()),
        }
    }

    fn post(author: &str, text: &str, client: Option<&str>) -> RoomCommand {
        RoomCommand::Post {
            author: user(author),
            text: text.into(),
            client_msg_id: client.map(Into::into),
            sealed: None,
        }
    }

    #[test]
    fn messages_are_numbered_and_paged_newest_first() {
        let mut cmds = vec![create(None)];
        cmds.extend((1..=5).map(|i| post("owner", &format!("m{i}"), None)));
        let s = given(cmds);
        let ids = |p: WindowPage| (p.page.iter().map(|m| m.id).collect::<Vec<_>>(), p.more);
        assert_eq!(ids(s.page(None, 2)), (vec![5, 4], true));
        assert_eq!(ids(s.page(Some(4), 2)), (vec![3, 2], true));
        assert_eq!(ids(s.page(Some(2), 2)), (vec![1], false));
    }

    /// Given more than a window of messages, when the room evicts, then it keeps the newest
    /// [`WINDOW`], hands over the older ones in order, numbers on, pages its window by id, and
    /// says older messages remain in the archive.
    #[test]
    fn a_room_keeps_a_window_and_hands_older_messages_to_its_archive() {
        let mut cmds = vec![create(None)];
        cmds.extend(
            (1..=WINDOW + 5).map(|i| post("owner", &format!("m{i}"), Some(&format!("c{i}")))),
        );
        let mut s = given(cmds);
        let gone = evict(&mut s);
        assert_eq!(
            gone.iter().map(|m| m.id).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        assert_eq!(
            (s.messages.len(), s.archived, s.next_id()),
            (WINDOW, 5, WINDOW as u64 + 6)
        );
        assert!(evict(&mut s).is_empty(), "nothing more to evict");
        let window = s.page(Some(8), 10);
        assert_eq!(
            window.page.iter().map(|m| m.id).collect::<Vec<_>>(),
            vec![7, 6]
        );
        assert!(window.more, "1..=5 are in the archive");
        assert_eq!(window.archived, 5);
        assert!(s.page(Some(6), 10).page.is_empty());
        // A resend of a message still in the window is recognised; of an archived one, not.
        let kept = post("owner", "m6", Some("c6"));
        assert_eq!(decide(&s, &kept, NOW), Ok(vec![]));
        assert_eq!(posted(&s, &kept).map(|m| m.id), Some(6));
        let archived = post("owner", "m1", Some("c1"));
        assert_eq!(decide(&s, &archived, NOW).unwrap().len(), 1);
    }

    #[test]
    fn a_resent_client_msg_id_is_the_same_message() {
        let s = given(vec![create(None), post("owner", "hi", Some("c1"))]);
        let again = post("owner", "hi", Some("c1"));
        assert_eq!(decide(&s, &again, NOW), Ok(vec![]));
        assert_eq!(posted(&s, &again).map(|m| m.id), Some(1));
        assert!(
            !decide(&s, &post("owner", "hi", Some("c2")), NOW)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_resend_with_a_text_that_could_not_be_stored_is_refused() {
        // Given a message sent with client id c1,
        let s = given(vec![create(None), post("owner", "hi", Some("c1"))]);
        // when c1 comes again with a blank text,
        let blank = decide(&s, &post("owner", "   ", Some("c1")), NOW);
        // then it is refused as a post would be, not answered as the earlier message.
        assert!(matches!(blank, Err(RoomError::Invalid(_))));
    }

    #[test]
    fn control_characters_are_refused_but_lines_and_tabs() {
        // Given a room
        let s = given(vec![create(None)]);
        // When a post holds a NUL or an escape, Then it is refused
        for bad in ["a\0b", "\u{1b}[31mred"] {
            let r = decide(&s, &post("owner", bad, None), NOW);
            assert!(matches!(r, Err(RoomError::Invalid(_))), "{bad:?}");
        }
        // And lines and tabs are text
        assert!(decide(&s, &post("owner", "one\r\ntwo\tthree", None), NOW).is_ok());
        // And a room's name holds no control character at all
        let named = |name: &str| RoomCommand::Create {
            name: name.into(),
            by: user("owner"),
            members: vec![],
            order_id: None,
        };
        let fresh = RoomState::default();
        assert!(matches!(
            decide(&fresh, &named("a\0b"), NOW),
            Err(RoomError::Invalid(_))
        ));
        assert!(decide(&fresh, &named("team"), NOW).is_ok());
    }

    #[test]
    fn only_members_post_and_support_rooms_admit_admins_only() {
        let s = given(vec![create(Some("o1"))]);
        assert_eq!(
            decide(&s, &post("stranger", "hi", None), NOW),
            Err(RoomError::NotMember)
        );
        let join = |admin| RoomCommand::Join {
            user: user("someone"),
            admin,
        };
        assert_eq!(decide(&s, &join(false), NOW), Err(RoomError::Forbidden));
        assert!(decide(&s, &join(true), NOW).is_ok());
        assert_eq!(decide(&s, &create(Some("o1")), NOW), Ok(vec![]));
        // And only a member leaves: to anyone else the room's members stay unsaid
        let leave = |who: &str| RoomCommand::Leave { user: user(who) };
        assert_eq!(
            decide(&s, &leave("stranger"), NOW),
            Err(RoomError::NotMember)
        );
        assert_eq!(decide(&s, &leave("owner"), NOW).unwrap().len(), 1);
    }

    #[test]
    fn mentions_name_members_once_and_never_the_author() {
        let members = [user("kim"), user("lee"), user("owner")];
        let text = "@kim, see @lee. @kim again, @stranger and @owner: hi";
        assert_eq!(
            mentions(text, &members, &user("owner")),
            [user("kim"), user("lee")]
        );
        assert!(mentions("mail me at a@b", &members, &user("kim")).is_empty());
    }

    #[test]
    fn text_and_names_have_limits() {
        let s = given(vec![create(None)]);
        let long = "x".repeat(MAX_TEXT + 1);
        assert!(decide(&s, &post("owner", &long, None), NOW).is_err());
        assert!(decide(&s, &post("owner", "  ", None), NOW).is_err());
        let unnamed = RoomCommand::Create {
            name: " ".into(),
            by: user("a"),
            members: vec![],
            order_id: None,
        };
        assert!(decide(&RoomState::default(), &unnamed, NOW).is_err());
    }
}
