//! Rooms: POST /rooms makes one; GET /rooms/CODE is its page.

use serde::Deserialize;
use warp::http::{header, StatusCode};
use warp::hyper::body::Bytes;
use warp::reply::{Reply, Response};

use crate::app::App;
use crate::body;
use crate::client::{Client, Visitor, VisitorKey};
use crate::error::ApiError;
use crate::limits::ROOM_PAGE_EVENTS;
use crate::model::{Author, Invalid, Name, RoomCode, Words};
use crate::pages::{RoomView, YourRoom};
use crate::rooms::RoomError;
use crate::site::Site;

use super::respond::*;

#[derive(Debug, Default, Deserialize)]
pub struct CreateInput {
    private: Option<bool>,
}

/// What of the room its page shows: `?before=ID` a page of older events,
/// `?q=WORDS` a search (both work without script).
#[derive(Debug, Default, Deserialize)]
pub struct RoomQuery {
    before: Option<u64>,
    q: Option<String>,
}

/// Which events the room page shows.
pub(super) enum Shown {
    /// The newest, kept up live by the page script.
    Newest,
    /// Those before this id.
    Before(u64),
    /// The newest messages with these words (as typed), or why the words
    /// are no search.
    Found(String, Result<Words, String>),
}

impl Shown {
    fn of(query: RoomQuery) -> Shown {
        match (query.q, query.before) {
            (Some(q), _) => {
                let words = Words::parse(&q).map_err(|Invalid(why)| why);
                Shown::Found(q, words)
            }
            (None, Some(id)) => Shown::Before(id),
            (None, None) => Shown::Newest,
        }
    }
}

/// POST /rooms (optionally `{"private":true}`) — 201
/// `{"code":"ABCD","url":"/rooms/ABCD"}`, and for a private room
/// `"invite":"/join/ABCD-KEY"`, which joining it needs.
pub async fn create_room(
    content_type: Option<String>,
    key: VisitorKey,
    body: Bytes,
    app: App,
) -> Response {
    let input: CreateInput = if body.is_empty() {
        CreateInput::default()
    } else {
        match body::parse(content_type.as_deref(), &body) {
            Ok(input) => input,
            Err(err) => return err.into_response(),
        }
    };
    let created = if input.private == Some(true) {
        let created = app.registry.create_private_room(key).await;
        created.map(|(code, room_key)| {
            let invite = format!("/join/{code}-{}", room_key.as_str());
            (code, Some(invite))
        })
    } else {
        app.registry.create_room(key).await.map(|code| (code, None))
    };
    match created {
        Ok((code, invite)) => {
            let url = format!("/rooms/{code}");
            let mut body = serde_json::json!({ "code": code.as_str(), "url": url });
            if let Some(invite) = invite {
                body["invite"] = invite.into();
            }
            let mut response = json(StatusCode::CREATED, body.to_string());
            set_header(&mut response, header::LOCATION, &url);
            response
        }
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// GET /rooms/CODE — the room page for a participant; others are sent to
/// the home form with the code filled in (for a private room, they get the
/// unknown room's 404: its code alone is no way in).
pub async fn room_page(
    code: RoomCode,
    query: Result<RoomQuery, ApiError>,
    visitor: Option<Visitor>,
    client: Client,
    site: Site,
    app: App,
) -> Response {
    // Whether a code is a room shows here (a page or a 404) to those not
    // in it: they spend from their address's miss allowance.
    let me = asking(visitor.as_ref(), &code).ok();
    let outsider = |err: RoomError| match me {
        Some(_) => ApiError::from(err),
        None => ApiError::from(app.registry.charge_miss(client.ip, err)),
    };
    if me.is_none() {
        if let Err(err) = app.registry.may_name_a_code(client.ip) {
            return room_error(&app, &code, err.into());
        }
    }
    let private = match app.registry.room_key(&code).await {
        Ok(key) => key.is_some(),
        Err(err) => return room_error(&app, &code, outsider(err)),
    };
    let (session, me) = match me {
        Some(me) => me,
        None if private => {
            return room_error(&app, &code, outsider(RoomError::NotFound(code.clone())))
        }
        None => return see_other(&format!("/?code={code}")),
    };
    let shown = match query {
        Ok(query) => Shown::of(query),
        Err(err) => return room_error(&app, &code, err),
    };
    let others = your_rooms(&app, visitor.as_ref(), Some(&code)).await;
    let page = Page {
        me: &me.name,
        author: session.author(),
        site,
        status: StatusCode::OK,
        draft: String::new(),
        error: None,
        your_rooms: others,
        shown,
    };
    let mut page = render_room(&app, &code, page).await;
    keep_cookie(&mut page, &app, client, visitor.as_ref());
    page
}

/// The visitor's rooms for a page's "your rooms" list, but `except` (the
/// room shown). A failure to read them (Redis away) only leaves the list
/// out: the page itself is what was asked for.
pub(super) async fn your_rooms(
    app: &App,
    visitor: Option<&Visitor>,
    except: Option<&RoomCode>,
) -> Vec<YourRoom> {
    let Some(visitor) = visitor else {
        return Vec::new();
    };
    let rooms = app.registry.rooms_of(&visitor.session).await;
    let rooms = rooms.unwrap_or_default().into_iter();
    rooms
        .filter(|(code, _, _)| Some(code) != except)
        .map(|(code, part, newest)| YourRoom {
            code: code.to_string(),
            name: part.name.to_string(),
            last: newest.as_ref().map(|e| e.event.ts.clone()),
            last_id: newest.map_or(0, |e| e.event.id),
        })
        .collect()
}

/// What a room page is rendered with, besides the room.
pub(super) struct Page<'a> {
    pub(super) me: &'a Name,
    /// Who the reader is as a sender: their own messages can be changed.
    pub(super) author: Author,
    pub(super) site: Site,
    pub(super) status: StatusCode,
    /// Text to put back in the message box, and why it was refused.
    pub(super) draft: String,
    pub(super) error: Option<String>,
    pub(super) your_rooms: Vec<YourRoom>,
    pub(super) shown: Shown,
}

pub(super) async fn render_room(app: &App, code: &RoomCode, page: Page<'_>) -> Response {
    let Page {
        me,
        author,
        site,
        status,
        draft,
        error,
        your_rooms,
        shown,
    } = page;
    // Any may fail if the room ended since it was found, or if Redis
    // went away.
    let registry = &app.registry;
    let kind = match shown {
        Shown::Newest => "live",
        Shown::Before(_) => "older",
        Shown::Found(..) => "search",
    };
    let (history, searched) = match shown {
        // The newest: older ones load as the page is scrolled up.
        Shown::Newest => (registry.history(code, None, ROOM_PAGE_EVENTS).await, None),
        Shown::Before(id) => (
            registry.history_before(code, id, ROOM_PAGE_EVENTS).await,
            None,
        ),
        Shown::Found(typed, Ok(words)) => {
            let found = registry.search(code, words, None, ROOM_PAGE_EVENTS).await;
            // Shown in the order they were said, as the log is.
            let found = found.map(|hits| hits.into_iter().rev().collect());
            (found, Some((typed, None)))
        }
        Shown::Found(typed, Err(why)) => (Ok(Vec::new()), Some((typed, Some(why)))),
    };
    let history = match history {
        Ok(history) => history,
        Err(err) => return room_error(app, code, err.into()),
    };
    let members = match app.registry.members(code).await {
        Ok(members) => members,
        Err(err) => return room_error(app, code, err.into()),
    };
    let key = match app.registry.room_key(code).await {
        Ok(key) => key,
        Err(err) => return room_error(app, code, err.into()),
    };
    let invite = match key {
        Some(key) => site.link(&format!("/join/{code}-{}", key.as_str())),
        None => site.link(&format!("/?code={code}")),
    };
    let mut view = RoomView {
        draft,
        error,
        your_rooms,
        ..RoomView::new(code, invite, (me, &author), members, &history)
    };
    let first = history.first().map(|e| e.event.id);
    // A full page may have more before it; the page of those is a link.
    if searched.is_none() && history.len() == ROOM_PAGE_EVENTS {
        view.older = first.map(|id| format!("/rooms/{code}?before={id}"));
    }
    if let Some((typed, why)) = searched {
        for event in &mut view.events {
            // Half a page of what came after it, so it sits in the middle.
            let until = event.id.saturating_add(ROOM_PAGE_EVENTS as u64 / 2);
            event.context = Some(format!("/rooms/{code}?before={until}#e{}", event.id));
        }
        let found = match view.events.len() {
            1 => "1 message".to_string(),
            n => format!("{n} messages"),
        };
        view.summary =
            Some(why.unwrap_or_else(|| format!("{found} with “{}”, newest last.", typed.trim())));
        view.searched = Some(typed);
    }
    view.view = kind;
    html(status, app.pages.room(&view))
}

/// The error page for a room: 404 when it does not exist, else the error's
/// own status (a 503 with Retry-After while Redis is away).
pub(super) fn room_error(app: &App, code: &RoomCode, err: ApiError) -> Response {
    let err = match err {
        ApiError::RoomNotFound(_) => ApiError::RoomNotFound(code.clone()),
        other => other,
    };
    let heading = match &err {
        ApiError::RoomEnded(..) => format!("Room {code} ended"),
        ApiError::RoomNotFound(_) => "Not found".into(),
        _ => format!("Room {code} is not available"),
    };
    let page = html(err.status(), app.pages.refused(&heading, &err.message()));
    refused_page(page, &err)
}
