//! Changing a message: PATCH /rooms/CODE/messages/ID edits it, DELETE
//! deletes it (each only by its sender), POST …/ID/reactions toggles a
//! reaction (by any member); and for a page without script, POST …/ID/edit
//! and …/ID/delete, plain forms that come back to the room.

use serde::Deserialize;
use warp::http::{header, StatusCode};
use warp::hyper::body::Bytes;
use warp::reply::{Reply, Response};

use crate::app::App;
use crate::body;
use crate::client::{Visitor, VisitorKey};
use crate::error::ApiError;
use crate::model::amend::{Amend, Emoji};
use crate::model::{RoomCode, Text};
use crate::rooms::Amended;
use crate::site::Site;

use super::messages::may_send;
use super::respond::*;
use super::rooms::{render_room, room_error, Page, Shown};

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
    site: Site,
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
        (Ok(amended), Wants::Json) => json(StatusCode::OK, amended.message.json.clone()),
        (Err(err), Wants::Json) => err.into_response(),
        (reacted, Wants::Html) => back_to(&app, &asked, site, reacted).await,
    }
}

/// POST /rooms/CODE/messages/ID/edit (form: text) — the page's plain
/// form for PATCH: 303 back to the message, or the room saying why not.
pub async fn edit_form(asked: Asked, site: Site, body: Bytes, app: App) -> Response {
    let edit = body::form::<EditInput>(&body).and_then(|input| {
        let text = Text::parse(input.text.as_deref().unwrap_or_default());
        Ok(Amend::Edit(text?))
    });
    let edited = amend(&app, &asked, edit).await;
    back_to(&app, &asked, site, edited).await
}

/// POST /rooms/CODE/messages/ID/delete — the page's plain form for
/// DELETE: 303 back to the room, or the room saying why not.
pub async fn delete_form(asked: Asked, site: Site, app: App) -> Response {
    let deleted = amend(&app, &asked, Ok(Amend::Delete)).await;
    back_to(&app, &asked, site, deleted).await
}

/// A plain form's answer: done, the room page at the message (303);
/// refused, the room page again with why, under the refusal's status
/// (a stranger and a room gone get the answer they always get).
async fn back_to(
    app: &App,
    asked: &Asked,
    site: Site,
    done: Result<Amended, ApiError>,
) -> Response {
    let err = match done {
        Ok(_) => return see_other(&format!("/rooms/{}#e{}", asked.code, asked.target)),
        Err(err) => err,
    };
    let Ok((session, me)) = asking(asked.visitor.as_ref(), &asked.code) else {
        return err.into_response();
    };
    if matches!(err, ApiError::RoomNotFound(_) | ApiError::RoomEnded(..)) {
        return room_error(app, &asked.code, err);
    }
    let page = Page {
        me: &me.name,
        author: session.author(),
        site,
        status: err.status(),
        draft: String::new(),
        error: Some(err.message()),
        your_rooms: Vec::new(),
        shown: Shown::Newest,
    };
    let mut page = render_room(app, &asked.code, page).await;
    if let Some(secs) = err.retry_after() {
        set_header(&mut page, header::RETRY_AFTER, &secs.to_string());
    }
    page
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
