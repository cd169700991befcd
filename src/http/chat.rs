//! Chat rooms over REST (`/api/v1/chat/rooms…`): create, list yours, read one, join, leave,
//! post, and the history newest first with a `before` cursor (a message id).

use crate::chat::{ChatFailure, Member, NewRoom};
use crate::domain::chat::{ChatMessage, RoomError};
use crate::domain::ids::{OrderId, RoomId, UserId};
use crate::domain::role::Role;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, AuthUser};
use crate::http::orders::PageQuery;
use crate::http::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_room, list_rooms))
        .routes(routes!(get_room))
        .routes(routes!(join_room))
        .routes(routes!(leave_room))
        .routes(routes!(post_message, list_messages))
}

/// Members a new room's request may name besides its creator (a room holds fewer than
/// `domain::chat::MAX_MEMBERS`).
pub const MAX_INVITED: usize = crate::domain::chat::MAX_MEMBERS - 2;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"name": "Weekend drop crew", "members": ["u_3kR9x2LmQ0aB7cD1eF4g"]})))]
pub struct NewRoomBody {
    /// One line: no control characters, not only spaces.
    #[schema(min_length = 1, max_length = 100, format = "line")]
    pub name: String,
    /// Besides the creator: at most [`MAX_INVITED`].
    #[serde(default)]
    #[schema(max_items = 998)]
    pub members: Vec<String>,
    pub order_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(examples(json!({"room_id": "r3f9a0c1d2e4b5a67", "name": "Weekend drop crew", "order_id": null, "members": ["u_3kR9x2LmQ0aB7cD1eF4g", "u_9pQ1w2E3r4T5y6U7i8O9pA"]})))]
pub struct RoomBody {
    pub room_id: String,
    pub name: String,
    pub order_id: Option<String>,
    pub members: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RoomList {
    pub items: Vec<RoomBody>,
    /// The last room id of this page, for `?cursor=`; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"text": "@u_3kR9x2LmQ0aB7cD1eF4g 배송 언제 되나요?", "client_msg_id": "c-7f3a91"})))]
pub struct PostBody {
    /// Not only spaces; of control characters only newlines, returns and tabs.
    #[schema(
        max_length = 2000,
        pattern = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$"
    )]
    pub text: String,
    /// The client's own id for the message: a post sent again with it is stored once.
    #[schema(min_length = 1, max_length = 64)]
    pub client_msg_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(examples(json!({"room_id": "r3f9a0c1d2e4b5a67", "message_id": 42, "author": "u_3kR9x2LmQ0aB7cD1eF4g", "text": "배송 언제 되나요?", "at": "2026-11-30T09:15:02.001Z", "client_msg_id": "c-7f3a91"})))]
pub struct MessageBody {
    pub room_id: String,
    pub message_id: u64,
    pub author: String,
    /// Empty when `erased`.
    pub text: String,
    /// The author deleted their account: the text is erased.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub erased: bool,
    pub at: String,
    pub client_msg_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MessagePage {
    pub items: Vec<MessageBody>,
    /// Pass as `before` for older messages; absent on the oldest page.
    pub next_cursor: Option<String>,
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    pub before: Option<String>,
    /// API.md's general name for a page's cursor: the same as `before`.
    pub cursor: Option<String>,
    #[serde(default, deserialize_with = "crate::http::catalog::page_limit")]
    pub limit: Option<usize>,
}

fn member(user: &AuthUser) -> Member {
    Member {
        user: user.user_id.clone(),
        admin: user.has_role(Role::Admin),
    }
}

fn room_id(raw: String) -> Result<RoomId, ApiError> {
    RoomId::parse(raw).map_err(|e| ApiError::invalid_id("room_id", e))
}

fn room_body(id: &RoomId, v: &crate::actors::chat::RoomView) -> RoomBody {
    RoomBody {
        room_id: id.to_string(),
        name: v.name.clone(),
        order_id: v.order_id.as_ref().map(ToString::to_string),
        members: v.members.iter().map(ToString::to_string).collect(),
    }
}

fn message_body(room: &RoomId, m: ChatMessage) -> MessageBody {
    MessageBody {
        room_id: room.to_string(),
        message_id: m.id,
        author: m.author.to_string(),
        // An erased author's text no longer opens.
        erased: m.sealed.is_some(),
        text: m.text,
        at: m.at.to_rfc3339(),
        client_msg_id: m.client_msg_id,
    }
}

/// Creates a room; with `order_id`, the order's support room (its owner and admins). A user
/// creating rooms faster than `[chat]` allows (by default 20 at once, then one a minute;
/// support rooms are not counted) is told `429 rate_limited` with `Retry-After`.
#[utoipa::path(post, path = "/api/v1/chat/rooms", tag = "chat", security(("bearer" = [])),
    request_body = NewRoomBody,
    responses((status = 201, body = RoomBody), (status = 404, body = Problem),
        (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn create_room(
    user: AuthUser,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewRoomBody>,
) -> Result<(StatusCode, axum::Json<RoomBody>), ApiError> {
    // The request's own list, repeats included, as the document states it.
    if body.members.len() > MAX_INVITED {
        return Err(ApiError::invalid_body(format!(
            "members: at most {MAX_INVITED} besides you"
        )));
    }
    let members = body
        .members
        .into_iter()
        .map(|m| UserId::parse(m).map_err(|e| ApiError::invalid_id("members", e)))
        .collect::<Result<Vec<_>, _>>()?;
    let order_id = match body.order_id {
        Some(o) => Some(OrderId::parse(o).map_err(|e| ApiError::invalid_id("order_id", e))?),
        None => None,
    };
    let new = NewRoom {
        name: body.name,
        members,
        order_id,
    };
    let (id, view) = state.chat.create(&member(&user), new).await?;
    Ok((StatusCode::CREATED, axum::Json(room_body(&id, &view))))
}

/// The rooms you belong to, by room id, a page at a time (API.md's `?limit=`, default 20, at
/// most 100, and `?cursor=`, the last room id of the previous page: one that is not a room id
/// is `400 invalid_cursor`).
#[utoipa::path(get, path = "/api/v1/chat/rooms", tag = "chat", security(("bearer" = [])),
    params(("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9._:-]{1,64}$",
            description = "`next_cursor` of the previous page"),
        ("limit" = Option<usize>, Query)),
    responses((status = 200, body = RoomList), (status = 400, body = Problem)))]
pub async fn list_rooms(
    user: AuthUser,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<axum::Json<RoomList>, ApiError> {
    let rooms = state.chat.rooms_of(&user.user_id);
    let (items, next_cursor) = crate::http::page::after(
        rooms
            .iter()
            .map(|(id, v)| (id.to_string(), room_body(id, v))),
        q.cursor.as_deref(),
        q.limit,
        |raw| RoomId::parse(raw.clone()).is_ok().then_some(raw),
    )?;
    Ok(axum::Json(RoomList { items, next_cursor }))
}

/// A room and its members, for its readers (members; admins for support rooms): anyone else
/// is told `403 not_a_member`, as the room's messages answer.
#[utoipa::path(get, path = "/api/v1/chat/rooms/{room_id}", tag = "chat",
    security(("bearer" = [])), params(("room_id" = String, Path)),
    responses((status = 200, body = RoomBody), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn get_room(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<axum::Json<RoomBody>, ApiError> {
    let id = room_id(raw)?;
    let m = member(&user);
    let view = state
        .chat
        .rooms()
        .view(&id)
        .ok_or_else(|| ApiError::not_found("no such room"))?;
    if !view.can_read(&m.user, m.admin) {
        return Err(ChatFailure::Room(RoomError::NotMember).into());
    }
    Ok(axum::Json(room_body(&id, &view)))
}

/// Joins a room (a support room: admins only, besides its owner).
#[utoipa::path(post, path = "/api/v1/chat/rooms/{room_id}/join", tag = "chat",
    security(("bearer" = [])), params(("room_id" = String, Path)),
    responses((status = 200, body = RoomBody), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn join_room(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<axum::Json<RoomBody>, ApiError> {
    let id = room_id(raw)?;
    let view = state.chat.join(&member(&user), &id).await?;
    Ok(axum::Json(room_body(&id, &view)))
}

/// Leaves a room (its members; to anyone else `403 not_a_member`).
#[utoipa::path(post, path = "/api/v1/chat/rooms/{room_id}/leave", tag = "chat",
    security(("bearer" = [])), params(("room_id" = String, Path)),
    responses((status = 200, body = RoomBody), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn leave_room(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<axum::Json<RoomBody>, ApiError> {
    let id = room_id(raw)?;
    let view = state.chat.leave(&member(&user), &id).await?;
    Ok(axum::Json(room_body(&id, &view)))
}

/// Posts a message (members); also pushed on `chat:{room_id}`. The same `client_msg_id` again
/// returns the message it already made. A user posting faster than `[chat]` allows (by
/// default 20 at once, then one a second, with `chat.send` counted alike) is told `429
/// rate_limited` with `Retry-After`, and the message is not stored.
#[utoipa::path(post, path = "/api/v1/chat/rooms/{room_id}/messages", tag = "chat",
    security(("bearer" = [])), params(("room_id" = String, Path)), request_body = PostBody,
    responses((status = 201, body = MessageBody), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem)))]
pub async fn post_message(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    ApiJson(body): ApiJson<PostBody>,
) -> Result<(StatusCode, axum::Json<MessageBody>), ApiError> {
    let id = room_id(raw)?;
    let posted = state
        .chat
        .post(&user.user_id, id.as_str(), body.text, body.client_msg_id)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(message_body(&posted.room, posted.message)),
    ))
}

/// The history, newest first; `before` is the `next_cursor` of the previous page (also
/// taken as `cursor`, API.md's general name, when `before` is absent).
#[utoipa::path(get, path = "/api/v1/chat/rooms/{room_id}/messages", tag = "chat",
    security(("bearer" = [])),
    params(("room_id" = String, Path), ("before" = Option<String>, Query,
        pattern = "^([1-9][0-9]{0,17})?$", description = "`next_cursor` of the previous page"),
        ("cursor" = Option<String>, Query, pattern = "^([1-9][0-9]{0,17})?$",
            description = "the same as `before`, which wins when both are given"),
        ("limit" = Option<usize>, Query)),
    responses((status = 200, body = MessagePage), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list_messages(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<axum::Json<MessagePage>, ApiError> {
    let id = room_id(raw)?;
    let limit = crate::http::catalog::limit(q.limit, 50, 100)?;
    let cursor = q.before.as_deref().or(q.cursor.as_deref());
    let before = match cursor {
        None | Some("") => None,
        Some(raw) => Some(
            raw.parse::<u64>()
                .ok()
                .filter(|b| *b > 0)
                .ok_or_else(ApiError::invalid_cursor)?,
        ),
    };
    let (page, next) = state
        .chat
        .history(&member(&user), &id, before, limit)
        .await?;
    Ok(axum::Json(MessagePage {
        items: page.into_iter().map(|m| message_body(&id, m)).collect(),
        next_cursor: next.map(|n| n.to_string()),
    }))
}
