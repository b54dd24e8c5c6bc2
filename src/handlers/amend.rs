//! Changing a message: PATCH /rooms/CODE/messages/ID edits it, DELETE
//! deletes it (each only by its sender), POST …/ID/reactions toggles a
//! reaction (by any member); and for a page without script, POST …/ID/edit
//! and …/ID/delete, plain forms that come back to the room.

use serde::Deserialize;
use warp::http::StatusCode;
use warp::hyper::body::Bytes;
use warp::reply::{Reply, Response};

use crate::app::App;
use crate::body;
use crate::client::{Visitor, VisitorKey};
use crate::error::ApiError;
use crate::model::{Amend, Emoji, Text};
use crate::rooms::Amended;

use super::messages::{asking, may_send};
use super::respond::*;
use crate::model::RoomCode;

#[derive(Debug, Default, Deserialize)]
pub struct EditInput {
    text: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ReactionInput {
    emoji: Option<String>,
}

/// The request's parts every change of a message has.
pub struct Asked {
    pub code: RoomCode,
    pub target: u64,
    pub visitor: Option<Visitor>,
    pub key: VisitorKey,
}

/// PATCH /rooms/CODE/messages/ID (form or JSON: text) — 200 with the
/// message as it now reads (`edited` says when); appends
/// `{"kind":"edit","target":ID,"text":…}`. Another's message: 403; no
/// such message: 404; the text as for a post (422).
pub async fn edit_message(
    asked: Asked,
    content_type: Option<String>,
    body: Bytes,
    app: App,
) -> Response {
    let input: EditInput = match body::parse(content_type.as_deref(), &body) {
        Ok(input) => input,
        Err(err) => return err.into_response(),
    };
    let edit = Text::parse(input.text.as_deref().unwrap_or_default()).map(Amend::Edit);
    match amend(&app, &asked, edit.map_err(ApiError::from)).await {
        Ok(amended) => json(StatusCode::OK, amended.message.json.clone()),
        Err(err) => err.into_response(),
    }
}

/// DELETE /rooms/CODE/messages/ID — 204; appends
/// `{"kind":"delete","target":ID}`, and the message then reads
/// `{"deleted":true}` with nothing of its words or its sender's name
/// kept anywhere. Another's message: 403; no such message: 404.
pub async fn delete_message(asked: Asked, app: App) -> Response {
    match amend(&app, &asked, Ok(Amend::Delete)).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => err.into_response(),
    }
}

/// POST /rooms/CODE/messages/ID/reactions (form or JSON: emoji, one of
/// `model::REACTIONS`) — 200 with the message as it now reads; puts the
/// member's reaction on, or takes it off if it was on, and appends
/// `{"kind":"reaction","target":ID,"emoji":…,"name":…,"on":…}`. A page
/// without script gets 303 back to the message.
pub async fn react(
    asked: Asked,
    content_type: Option<String>,
    wants: Wants,
    body: Bytes,
    app: App,
) -> Response {
    let input: ReactionInput = match body::parse(content_type.as_deref(), &body) {
        Ok(input) => input,
        Err(err) => return err.into_response(),
    };
    let react = Emoji::parse(input.emoji.as_deref().unwrap_or_default()).map(Amend::React);
    let reacted = amend(&app, &asked, react.map_err(ApiError::from)).await;
    match (reacted, wants) {
        (Ok(_), Wants::Html) => back_to(&asked),
        (Ok(amended), Wants::Json) => json(StatusCode::OK, amended.message.json.clone()),
        (Err(err), _) => err.into_response(),
    }
}

/// POST /rooms/CODE/messages/ID/edit (form: text) — the page's plain
/// form for PATCH: 303 back to the message.
pub async fn edit_form(asked: Asked, body: Bytes, app: App) -> Response {
    let input: EditInput = match body::form(&body) {
        Ok(input) => input,
        Err(err) => return err.into_response(),
    };
    let edit = Text::parse(input.text.as_deref().unwrap_or_default()).map(Amend::Edit);
    match amend(&app, &asked, edit.map_err(ApiError::from)).await {
        Ok(_) => back_to(&asked),
        Err(err) => err.into_response(),
    }
}

/// POST /rooms/CODE/messages/ID/delete — the page's plain form for
/// DELETE: 303 back to the room.
pub async fn delete_form(asked: Asked, app: App) -> Response {
    match amend(&app, &asked, Ok(Amend::Delete)).await {
        Ok(_) => back_to(&asked),
        Err(err) => err.into_response(),
    }
}

/// The room page, at the message.
fn back_to(asked: &Asked) -> Response {
    see_other(&format!("/rooms/{}#e{}", asked.code, asked.target))
}

/// Makes the change: 401 for anyone not in the room, 404 for a room gone,
/// before 403 for a watcher and 422 for what cannot be a change.
async fn amend(
    app: &App,
    asked: &Asked,
    amend: Result<Amend, ApiError>,
) -> Result<Amended, ApiError> {
    let (session, me) = asking(asked.visitor.as_ref(), &asked.code)?;
    app.registry.require_room(&asked.code).await?;
    may_send(me, None)?;
    let amend = amend?;
    Ok(app
        .registry
        .amend(&asked.code, session, asked.target, &amend, asked.key)
        .await?)
}
