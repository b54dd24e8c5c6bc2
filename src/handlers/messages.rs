//! A room's messages: POST /rooms/CODE/messages speaks, GET
//! /rooms/CODE/messages reads history, GET /rooms/CODE/events follows.

use std::sync::Arc;

use serde::Deserialize;
use warp::http::{header, StatusCode};
use warp::hyper::body::Bytes;
use warp::reply::{Reply, Response};

use crate::app::App;
use crate::body;
use crate::client::{Visitor, VisitorKey};
use crate::error::ApiError;
use crate::limits::{MAX_HISTORY_BYTES, MAX_HISTORY_LIMIT, MAX_STREAM_ROOMS};
use crate::model::{IdempotencyKey, Invalid, Name, PostKey, Recorded, RoomCode, Text, Words};
use crate::session::{Participation, SessionId};
use crate::site::Site;
use crate::stream::{Handoff, RoomStream};

use super::respond::*;
use super::rooms::{render_room, room_error, Page, Shown};

/// Events a history read returns when it names no limit.
const DEFAULT_HISTORY_LIMIT: usize = 100;

#[derive(Debug, Default, Deserialize)]
pub struct MessageInput {
    /// Refused unless it is the sender's own name (see [`may_send`]).
    name: Option<String>,
    text: Option<String>,
    /// The key a page without script sends in its form (the header's
    /// place): the same form sent twice is one message. The header wins.
    idempotency_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    since: Option<u64>,
    before: Option<u64>,
    limit: Option<usize>,
    /// Words to search for: the matching messages, newest first.
    q: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamQuery {
    since: Option<u64>,
}

/// POST /rooms/CODE/messages (form or JSON: text) — 201 with the stored
/// message, sent as the participant's name; a browser form without script
/// gets 303 back to the room. With an `Idempotency-Key` header, the same
/// key again (from the same session, within a day) is answered with the
/// message stored the first time, 201 again, and nothing is stored twice.
#[allow(clippy::too_many_arguments)] // one argument per part of the request
pub async fn post_message(
    code: RoomCode,
    content_type: Option<String>,
    idempotency_key: Option<String>,
    wants: Wants,
    visitor: Option<Visitor>,
    key: VisitorKey,
    site: Site,
    body: Bytes,
    app: App,
) -> Response {
    let (id, me) = match asking(visitor.as_ref(), &code) {
        Ok(asking) => asking,
        Err(err) => return err.into_response(),
    };
    let input: MessageInput = match body::parse(content_type.as_deref(), &body) {
        Ok(input) => input,
        Err(err) => return err.into_response(),
    };
    let idempotency_key = idempotency_key.or_else(|| input.idempotency_key.clone());
    let idempotency_key = match idempotency_key.as_deref().map(IdempotencyKey::parse) {
        Some(Ok(key)) => Some(key),
        Some(Err(Invalid(why))) => return ApiError::Malformed(why).into_response(),
        None => None,
    };
    let posted = post(&app, &code, (id, me), key, &input, idempotency_key).await;
    match (posted, wants) {
        (Ok(_), Wants::Html) => see_other(&format!("/rooms/{code}")),
        // A form sent twice (a double click): the same key is being
        // stored by the first send, so the room shows it once it lands.
        (Err(ApiError::Conflict(_)), Wants::Html) => see_other(&format!("/rooms/{code}")),
        (Ok(message), Wants::Json) => json(StatusCode::CREATED, message.json.clone()),
        (Err(err @ (ApiError::RoomNotFound(_) | ApiError::RoomEnded(..))), Wants::Html) => {
            room_error(&app, &code, err)
        }
        (Err(err @ (ApiError::Invalid(_) | ApiError::TooMany(..))), Wants::Html) => {
            // The room again with the text kept, so nothing typed is lost.
            let page = Page {
                me: &me.name,
                author: id.author(),
                site,
                status: err.status(),
                draft: input.text.unwrap_or_default(),
                error: Some(err.message()),
                your_rooms: Vec::new(),
                shown: Shown::Newest,
            };
            let mut page = render_room(&app, &code, page).await;
            if let Some(secs) = err.retry_after() {
                set_header(&mut page, header::RETRY_AFTER, &secs.to_string());
            }
            page
        }
        (Err(err), _) => err.into_response(),
    }
}

/// POST /rooms/CODE/typing (no body) — 204: every other stream open on
/// the room hears `event: typing` `{"room","name"}` with the
/// participant's name (no id: never history), at most once per 2 s for
/// each participant; a watcher may not (403), as for a post.
pub async fn typing(code: RoomCode, visitor: Option<Visitor>, app: App) -> Response {
    let (id, me) = match asking(visitor.as_ref(), &code) {
        Ok(asking) => asking,
        Err(err) => return err.into_response(),
    };
    if let Err(err) = may_send(me, None) {
        return err.into_response();
    }
    match app.registry.typing(&code, id, &me.name).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// Stores one message: 404 for a room gone comes before 422 for bad
/// content.
async fn post(
    app: &App,
    code: &RoomCode,
    (id, me): (SessionId, &Participation),
    key: VisitorKey,
    input: &MessageInput,
    idempotency_key: Option<IdempotencyKey>,
) -> Result<Arc<Recorded>, ApiError> {
    app.registry.require_room(code).await?;
    may_send(me, input.name.as_deref())?;
    let text = Text::parse(input.text.as_deref().unwrap_or_default())?;
    let once = idempotency_key.map(|k| PostKey::new(k, &text));
    Ok(app
        .registry
        .post(code, id, &text, once.as_ref(), key)
        .await?)
}

/// Whether the participant may send: a message is always from them (the
/// backend names them as it stores it). A `name` in the body is refused
/// unless it is theirs (a script that sends one learns at once that it is
/// not believed); a watcher may not speak.
pub(super) fn may_send(me: &Participation, claimed: Option<&str>) -> Result<(), ApiError> {
    if me.watch {
        return Err(ApiError::Forbidden(
            "Watchers cannot post: join as a member to speak.".into(),
        ));
    }
    // The name as joined, byte for byte, needs no Unicode work (scripts
    // that send one send it so, on every post).
    if claimed.is_none_or(|claimed| claimed == me.name.as_str()) {
        return Ok(());
    }
    match claimed.map(Name::parse) {
        Some(Ok(claimed)) if claimed.key() == me.name.key() => Ok(()),
        None => Ok(()),
        Some(_) => Err(ApiError::Invalid(Invalid(format!(
            "Messages are sent as the name you joined with ({}); leave out name.",
            me.name
        )))),
    }
}

/// GET /rooms/CODE/messages?since=ID&limit=N — history as a JSON array,
/// oldest first: the N after ID, or the newest N without `since`; with
/// `before=ID` instead, the newest N below ID (paging back). With `q=WORDS`
/// (and `before` to page on), the newest N messages that have the words,
/// newest first.
pub async fn list_messages(
    code: RoomCode,
    query: Result<HistoryQuery, ApiError>,
    visitor: Option<Visitor>,
    app: App,
) -> Response {
    if let Err(err) = participant(visitor.as_ref(), &code) {
        return err.into_response();
    }
    let query = match query {
        Ok(query) => query,
        Err(err) => return err.into_response(),
    };
    let limit = query.limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
    if limit > MAX_HISTORY_LIMIT {
        let why = format!("limit can be at most {MAX_HISTORY_LIMIT}.");
        return ApiError::Malformed(why).into_response();
    }
    if let Some(q) = &query.q {
        if query.since.is_some() {
            let why = "a search pages back with before, not since.";
            return ApiError::Malformed(why.into()).into_response();
        }
        let words = match Words::parse(q) {
            Ok(words) => words,
            Err(Invalid(why)) => return ApiError::Malformed(why).into_response(),
        };
        return match app.registry.search(&code, words, query.before, limit).await {
            Ok(found) => json(StatusCode::OK, history_json(&found, false)),
            Err(err) => ApiError::from(err).into_response(),
        };
    }
    let read = match (query.since, query.before) {
        (Some(_), Some(_)) => {
            let why = "give since (to read on) or before (to page back), not both.";
            return ApiError::Malformed(why.into()).into_response();
        }
        (since, None) => app.registry.history(&code, since, limit).await,
        (None, Some(before)) => app.registry.history_before(&code, before, limit).await,
    };
    match read {
        Ok(events) => json(StatusCode::OK, history_json(&events, query.since.is_none())),
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// `events` as a JSON array of at most [`MAX_HISTORY_BYTES`]: past it, the
/// newest are kept if `newest` (the read asked for the newest), else the
/// oldest (a read after `since` goes on from the last one given).
fn history_json(events: &[Arc<Recorded>], newest: bool) -> String {
    let mut size = 2;
    let fits = |e: &&Arc<Recorded>| {
        size += e.json.len() + 1;
        size <= MAX_HISTORY_BYTES
    };
    let kept: Vec<&str> = if newest {
        let mut kept: Vec<&str> = events
            .iter()
            .rev()
            .take_while(fits)
            .map(|e| e.json.as_str())
            .collect();
        kept.reverse();
        kept
    } else {
        events
            .iter()
            .take_while(fits)
            .map(|e| e.json.as_str())
            .collect()
    };
    format!("[{}]", kept.join(","))
}

/// GET /rooms/CODE/events?since=ID — the room's SSE stream, for a
/// participant, resuming after `Last-Event-ID` (which wins: browsers send
/// it on their own reconnects) or `since`.
pub async fn open_stream(
    code: RoomCode,
    query: Result<StreamQuery, ApiError>,
    last_event_id: Option<u64>,
    visitor: Option<Visitor>,
    key: VisitorKey,
    app: App,
) -> Response {
    if let Err(err) = participant(visitor.as_ref(), &code) {
        return err.into_response();
    }
    let query = match query {
        Ok(query) => query,
        Err(err) => return err.into_response(),
    };
    let since = last_event_id.or(query.since);
    match app.registry.subscribe(&code, since, key).await {
        Ok(subscription) => sse(RoomStream::new(subscription, app.keep_alive, false)),
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// GET /events?rooms=ABCD,EFGH&since=CURSOR — one SSE stream of several
/// rooms, each joined by the caller, every event's `id:` the cursor over
/// all of them, resuming after `Last-Event-ID` (which wins) or `since`.
/// Rooms the cursor names are followed too.
pub async fn open_multiplexed(
    query: Result<MultiplexedQuery, ApiError>,
    last_event_id: Option<String>,
    visitor: Option<Visitor>,
    key: VisitorKey,
    app: App,
) -> Response {
    let rooms = match followed(query, last_event_id.as_deref()) {
        Ok(rooms) => rooms,
        Err(err) => return err.into_response(),
    };
    let Some(visitor) = visitor else {
        return ApiError::NotParticipant.into_response();
    };
    // Refused as one, with the first room the caller is not in: it named
    // that code itself, so the refusal tells it nothing new.
    if let Some((code, _)) = rooms
        .iter()
        .find(|(code, _)| visitor.session.in_room(code).is_none())
    {
        let why = format!("You have not joined {code}: join every room you follow first.");
        return ApiError::Forbidden(why).into_response();
    }
    match app.registry.follow(&rooms, key).await {
        Ok(subscription) => sse(RoomStream::new(subscription, app.keep_alive, true)),
        Err(err) => ApiError::from(err).into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct MultiplexedQuery {
    rooms: Option<String>,
    since: Option<String>,
}

/// The rooms a multiplexed stream follows, each with its resume point:
/// those of `?rooms=` in order, then any other the cursor names. 400 for
/// a bad code or cursor, for none, and past [`MAX_STREAM_ROOMS`].
fn followed(
    query: Result<MultiplexedQuery, ApiError>,
    last_event_id: Option<&str>,
) -> Result<Vec<(RoomCode, Option<u64>)>, ApiError> {
    let query = query?;
    let cursor = last_event_id.or(query.since.as_deref()).unwrap_or_default();
    let cursor = crate::cursor::parse(cursor).map_err(ApiError::Malformed)?;
    let mut rooms: Vec<(RoomCode, Option<u64>)> = Vec::new();
    let named = query.rooms.as_deref().unwrap_or_default().split(',');
    for code in named.map(str::trim).filter(|c| !c.is_empty()) {
        let code: RoomCode = code
            .parse()
            .map_err(|_| ApiError::Malformed(format!("{code:?} is not a room code.")))?;
        if !rooms.iter().any(|(seen, _)| *seen == code) {
            rooms.push((code, None));
        }
        // Refused as soon as it is over: a long list costs no more.
        if rooms.len() > MAX_STREAM_ROOMS {
            return Err(too_many());
        }
    }
    for (code, id) in cursor {
        match rooms.iter_mut().find(|(seen, _)| *seen == code) {
            Some((_, since)) => *since = Some(id),
            None => rooms.push((code, Some(id))),
        }
    }
    if rooms.is_empty() {
        let why = "name the rooms to follow: /events?rooms=ABCD,EFGH.".to_string();
        return Err(ApiError::Malformed(why));
    }
    if rooms.len() > MAX_STREAM_ROOMS {
        return Err(too_many());
    }
    Ok(rooms)
}

fn too_many() -> ApiError {
    ApiError::Malformed(format!(
        "a stream can follow at most {MAX_STREAM_ROOMS} rooms."
    ))
}

/// The response of an SSE stream.
fn sse(stream: RoomStream) -> Response {
    // The connection sends the body (see `server`): warp's own body type
    // cannot carry shared, pre-encoded frames.
    let mut response = StatusCode::OK.into_response();
    response.extensions_mut().insert(Handoff::new(stream));
    set_header(&mut response, header::CONTENT_TYPE, "text/event-stream");
    // Tell nginx-like proxies not to buffer, and middleboxes not to transform.
    set_header(
        &mut response,
        header::CACHE_CONTROL,
        "no-cache, no-transform",
    );
    set_header(&mut response, "x-accel-buffering", "no");
    response
}
