//! One async function per endpoint: parsed input in, a response out. The
//! room registry does the work; nothing here holds a lock or a channel.

use std::sync::Arc;

use log::error;
use serde::{Deserialize, Serialize};
use warp::http::{header, HeaderValue, StatusCode};
use warp::hyper::body::Bytes;
use warp::reply::{Reply, Response};

use crate::app::App;
use crate::body;
use crate::client::{Client, Visitor, VisitorKey};
use crate::error::ApiError;
use crate::model::{Invalid, Name, Recorded, RoomCode, Text};
use crate::pages::{HomeView, RoomView, YourRoom};
use crate::session::{Participation, SessionId};
use crate::stream::{Handoff, RoomStream};

/// Events a history read returns when it names no limit.
const DEFAULT_HISTORY_LIMIT: usize = 100;

#[derive(Debug, Default, Deserialize)]
pub struct HomeQuery {
    code: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct HomeForm {
    name: Option<String>,
    code: Option<String>,
    action: Option<String>,
    /// A private room's key, from its invite link.
    key: Option<String>,
    /// "on" (the checkbox) to create a private room.
    private: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct JoinInput {
    name: Option<String>,
    watch: Option<bool>,
    key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CreateInput {
    private: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct MessageInput {
    /// Refused unless it is the sender's own name (see [`sender`]).
    name: Option<String>,
    text: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    since: Option<u64>,
    limit: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamQuery {
    since: Option<u64>,
}

/// What the client asked for: a page (a browser form without script) or JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wants {
    Html,
    Json,
}

/// GET /?code=ABCD — the home form, the code prefilled from invite links and
/// the name from the session.
pub async fn home(
    query: Result<HomeQuery, ApiError>,
    visitor: Option<Visitor>,
    client: Client,
    app: App,
) -> Response {
    let query = query.unwrap_or_default(); // a mangled invite link is just no code
    let code = query.code.unwrap_or_default();
    let mut page = home_page(&app, visitor.as_ref(), code, String::new()).await;
    keep_cookie(&mut page, &app, client, visitor.as_ref());
    page
}

/// The home form with `code` and `key` filled in, the visitor's rooms
/// listed, and the name they used most recently as a guess at the next.
async fn home_page(app: &App, visitor: Option<&Visitor>, code: String, key: String) -> Response {
    let your_rooms = your_rooms(app, visitor, None).await;
    let view = HomeView {
        name: your_rooms
            .first()
            .map_or_else(String::new, |r| r.name.clone()),
        code,
        key,
        your_rooms,
        ..HomeView::default()
    };
    html(StatusCode::OK, app.pages.home(&view))
}

/// GET /join/ABCD-KEY — a private room's invite: the home form with the
/// code and key filled in. (Whether they open the room is only told by
/// joining, which answers a wrong key as it does an unknown code.)
pub async fn invite(invite: String, visitor: Option<Visitor>, app: App) -> Response {
    let (code, key) = invite.split_once('-').unwrap_or((&invite, ""));
    home_page(&app, visitor.as_ref(), code.to_string(), key.to_string()).await
}

/// POST / (form: name, code, action=create|join) — joins the room (a new
/// one for `create`) and answers 303 to it with the session cookie set, or
/// the form again with what was typed and why not.
pub async fn enter(
    visitor: Option<Visitor>,
    key: VisitorKey,
    client: Client,
    body: Bytes,
    app: App,
) -> Response {
    let form: HomeForm = match body::form(&body) {
        Ok(form) => form,
        Err(err) => return err.into_response(),
    };
    let session = visitor.map(|v| v.id);
    match enter_room(&form, session, key, &app).await {
        Ok((code, id)) => {
            let mut response = see_other(&format!("/rooms/{code}"));
            set_cookie(&mut response, &app, client, id);
            response
        }
        Err(err) => home_again(&app, form, err),
    }
}

/// The home form again, with what was typed and why it was refused: 422
/// for what was typed, any other error with its own status.
fn home_again(app: &App, form: HomeForm, err: ApiError) -> Response {
    let status = match &err {
        ApiError::Invalid(_) | ApiError::RoomNotFound(_) => StatusCode::UNPROCESSABLE_ENTITY,
        other => other.status(),
    };
    let view = HomeView {
        name: form.name.unwrap_or_default(),
        code: form.code.unwrap_or_default(),
        key: form.key.unwrap_or_default(),
        error: Some(err.message()),
        ..HomeView::default()
    };
    html(status, app.pages.home(&view))
}

/// The name is checked first, so a refused form never creates a room.
async fn enter_room(
    form: &HomeForm,
    session: Option<SessionId>,
    key: VisitorKey,
    app: &App,
) -> Result<(RoomCode, SessionId), ApiError> {
    let name = Name::parse(form.name.as_deref().unwrap_or_default())?;
    let code_typed = form.code.as_deref().is_some_and(|c| !c.trim().is_empty());
    // Enter in a field submits with the first button (create); with a code
    // typed and no button named, joining is what was meant.
    let join = match form.action.as_deref() {
        Some("create") => false,
        Some("join") => true,
        _ => code_typed,
    };
    let (code, room_key) = if join {
        let code = RoomCode::parse(form.code.as_deref().unwrap_or_default())?;
        (code, form.key.clone())
    } else if form.private.is_some() {
        let (code, room_key) = app.registry.create_private_room(key).await?;
        (code, Some(room_key.as_str().to_string()))
    } else {
        (app.registry.create_room(key).await?, None)
    };
    let part = Participation { name, watch: false };
    let room_key = room_key.as_deref();
    let (id, _) = app
        .registry
        .join(&code, session, &part, room_key, key)
        .await?;
    Ok((code, id))
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

/// POST /rooms/CODE/join (form or JSON: name, watch) — 201
/// `{"room":"ABCD","name":"bot","token":"…"}` with the session cookie set
/// (the same session if the request named one); a browser form gets 303
/// to the room instead.
#[allow(clippy::too_many_arguments)] // one argument per part of the request
pub async fn join(
    code: RoomCode,
    content_type: Option<String>,
    wants: Wants,
    visitor: Option<Visitor>,
    key: VisitorKey,
    client: Client,
    body: Bytes,
    app: App,
) -> Response {
    let joined = async {
        let input: JoinInput = body::parse(content_type.as_deref(), &body)?;
        let name = Name::parse(input.name.as_deref().unwrap_or_default())?;
        let part = Participation {
            name,
            watch: input.watch.unwrap_or(false),
        };
        let session = visitor.map(|v| v.id);
        let room_key = input.key.as_deref();
        let joined = app
            .registry
            .join(&code, session, &part, room_key, key)
            .await?;
        Ok::<_, ApiError>(joined)
    };
    let (id, part) = match joined.await {
        Ok(joined) => joined,
        Err(err) => return err.into_response(),
    };
    let mut response = match wants {
        Wants::Html => see_other(&format!("/rooms/{code}")),
        Wants::Json => {
            #[derive(Serialize)]
            struct Joined<'a> {
                room: &'a str,
                name: &'a str,
                token: String,
            }
            let joined = Joined {
                room: code.as_str(),
                name: part.name.as_str(),
                token: id.to_string(),
            };
            let body = serde_json::to_string(&joined).expect("strings always serialize");
            json(StatusCode::CREATED, body)
        }
    };
    set_cookie(&mut response, &app, client, id);
    response
}

/// POST /rooms/CODE/leave — 204; the name is free again. A browser form
/// gets 303 to the home page.
pub async fn leave(code: RoomCode, wants: Wants, visitor: Option<Visitor>, app: App) -> Response {
    let Some(visitor) = visitor.filter(|v| v.session.in_room(&code).is_some()) else {
        return ApiError::NotParticipant.into_response();
    };
    match (app.registry.leave(visitor.id, &code).await, wants) {
        (Ok(()), Wants::Html) => see_other("/"),
        (Ok(()), Wants::Json) => StatusCode::NO_CONTENT.into_response(),
        (Err(err), _) => ApiError::from(err).into_response(),
    }
}

/// POST /device — a one-time link for this session's other device: 201
/// `{"link":"/device/SECRET","expires_in":600}`, or for a browser form the
/// page showing it.
pub async fn link_device(wants: Wants, visitor: Option<Visitor>, app: App) -> Response {
    let Some(visitor) = visitor else {
        return ApiError::NotParticipant.into_response();
    };
    let secret = match app.registry.link_device(visitor.id).await {
        Ok(secret) => secret,
        Err(err) => return ApiError::from(err).into_response(),
    };
    let link = format!("/device/{secret}");
    match wants {
        Wants::Html => html(StatusCode::OK, app.pages.device(Some(&link), "")),
        Wants::Json => {
            let body = serde_json::json!({ "link": link, "expires_in": 600 });
            json(StatusCode::CREATED, body.to_string())
        }
    }
}

/// GET /device/SECRET — the button that uses the link. (Opening the link
/// uses nothing, so a link preview cannot spend it.)
pub async fn device_page(secret: String, app: App) -> Response {
    let action = format!("/device/{}", secret_path(&secret));
    html(StatusCode::OK, app.pages.device(None, &action))
}

/// POST /device/SECRET — signs this browser in to the link's session: 303
/// to the home page (its rooms) with the cookie set; a link used, too old
/// or made up is a 404 page.
pub async fn use_device_link(secret: String, client: Client, app: App) -> Response {
    match app.registry.use_device_link(&secret).await {
        Ok(Some(id)) => {
            let mut response = see_other("/");
            set_cookie(&mut response, &app, client, id);
            response
        }
        Ok(None) => html(
            StatusCode::NOT_FOUND,
            app.pages.not_found(
                "This link was used already, is more than ten minutes old, or never was.",
            ),
        ),
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// A secret as it may go back into a path: what we make is hex, so
/// anything else is dropped.
fn secret_path(secret: &str) -> String {
    secret.chars().filter(char::is_ascii_hexdigit).collect()
}

/// GET /rooms/CODE — the room page for a participant; others are sent to
/// the home form with the code filled in (for a private room, they get the
/// unknown room's 404: its code alone is no way in).
pub async fn room_page(
    code: RoomCode,
    visitor: Option<Visitor>,
    client: Client,
    host: Option<String>,
    app: App,
) -> Response {
    let private = match app.registry.room_key(&code).await {
        Ok(key) => key.is_some(),
        Err(err) => return room_error(&app, &code, err.into()),
    };
    let me = match participant(visitor.as_ref(), &code) {
        Ok(me) => me,
        Err(_) if private => return room_error(&app, &code, ApiError::RoomNotFound(code.clone())),
        Err(_) => return see_other(&format!("/?code={code}")),
    };
    let others = your_rooms(&app, visitor.as_ref(), Some(&code)).await;
    let page = Page {
        me: &me.name,
        host,
        status: StatusCode::OK,
        draft: String::new(),
        error: None,
        your_rooms: others,
    };
    let mut page = render_room(&app, &code, page).await;
    keep_cookie(&mut page, &app, client, visitor.as_ref());
    page
}

/// The visitor's rooms for a page's "your rooms" list, but `except` (the
/// room shown). A failure to read them (Redis away) only leaves the list
/// out: the page itself is what was asked for.
async fn your_rooms(
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
        .map(|(code, part, last)| YourRoom {
            code: code.to_string(),
            name: part.name.to_string(),
            last,
        })
        .collect()
}

/// POST /rooms/CODE/messages (form or JSON: text) — 201 with the stored
/// message, sent as the participant's name; a browser form without script
/// gets 303 back to the room.
#[allow(clippy::too_many_arguments)] // one argument per part of the request
pub async fn post_message(
    code: RoomCode,
    content_type: Option<String>,
    wants: Wants,
    visitor: Option<Visitor>,
    key: VisitorKey,
    host: Option<String>,
    body: Bytes,
    app: App,
) -> Response {
    let (id, me) = match visitor
        .as_ref()
        .map(|v| (v.id, participant(Some(v), &code)))
    {
        Some((id, Ok(me))) => (id, me),
        Some((_, Err(err))) => return err.into_response(),
        None => return ApiError::NotParticipant.into_response(),
    };
    let input: MessageInput = match body::parse(content_type.as_deref(), &body) {
        Ok(input) => input,
        Err(err) => return err.into_response(),
    };
    match (post(&app, &code, (id, me), key, &input).await, wants) {
        (Ok(_), Wants::Html) => see_other(&format!("/rooms/{code}")),
        (Ok(message), Wants::Json) => json(StatusCode::CREATED, message.json.clone()),
        (Err(err @ ApiError::RoomNotFound(_)), Wants::Html) => room_error(&app, &code, err),
        (Err(err @ (ApiError::Invalid(_) | ApiError::TooMany(..))), Wants::Html) => {
            // The room again with the text kept, so nothing typed is lost.
            let page = Page {
                me: &me.name,
                host,
                status: err.status(),
                draft: input.text.unwrap_or_default(),
                error: Some(err.message()),
                your_rooms: Vec::new(),
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

/// Stores one message: 404 for a room gone comes before 422 for bad
/// content.
async fn post(
    app: &App,
    code: &RoomCode,
    (id, me): (SessionId, &Participation),
    key: VisitorKey,
    input: &MessageInput,
) -> Result<Arc<Recorded>, ApiError> {
    app.registry.require_room(code).await?;
    may_send(me, input.name.as_deref())?;
    let text = Text::parse(input.text.as_deref().unwrap_or_default())?;
    Ok(app.registry.post(code, id, &text, key).await?)
}

/// Whether the participant may send: a message is always from them (the
/// backend names them as it stores it). A `name` in the body is refused
/// unless it is theirs (a script that sends one learns at once that it is
/// not believed); a watcher may not speak.
fn may_send(me: &Participation, claimed: Option<&str>) -> Result<(), ApiError> {
    if me.watch {
        return Err(ApiError::Forbidden(
            "Watchers cannot post: join as a member to speak.".into(),
        ));
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
/// oldest first: the N after ID, or the newest N without `since`.
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
    match app.registry.history(&code, query.since, limit).await {
        Ok(events) => {
            let items: Vec<&str> = events.iter().map(|e| e.json.as_str()).collect();
            json(StatusCode::OK, format!("[{}]", items.join(",")))
        }
        Err(err) => ApiError::from(err).into_response(),
    }
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
    let subscription = match app.registry.subscribe(&code, since, key).await {
        Ok(subscription) => subscription,
        Err(err) => return ApiError::from(err).into_response(),
    };
    let stream = RoomStream::new(subscription, app.keep_alive);
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

/// GET /healthz — 200 `{"status":"ok"}`; with Redis, 503 and
/// `"redis":"down"` while this node cannot reach it.
pub async fn healthz(app: App) -> Response {
    match app.registry.reachable() {
        None => json(StatusCode::OK, r#"{"status":"ok"}"#.to_string()),
        Some(true) => json(
            StatusCode::OK,
            r#"{"status":"ok","redis":"up"}"#.to_string(),
        ),
        Some(false) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"degraded","redis":"down"}"#.to_string(),
        ),
    }
}

/// GET /metrics — the OpenMetrics text exposition, labelled as such to a
/// scraper that asks for it, else as Prometheus text (which reads it).
pub async fn metrics(accept: Option<String>, app: App) -> Response {
    let registry = &app.registry;
    let text = registry.metrics().render(registry.gauges());
    let openmetrics = accept.is_some_and(|a| a.contains("application/openmetrics-text"));
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    let mut response = warp::reply::with_status(text, StatusCode::OK).into_response();
    set_header(&mut response, header::CONTENT_TYPE, content_type);
    response
}

/// Any other GET: a 404 page for browsers, JSON for scripts.
pub async fn not_found(wants: Wants, app: App) -> Response {
    match wants {
        Wants::Html => html(
            StatusCode::NOT_FOUND,
            app.pages.not_found("There is no page at this address."),
        ),
        Wants::Json => crate::error::json_error(StatusCode::NOT_FOUND, "Not found."),
    }
}

/// The visitor's part in `code`; 401 for anyone who has not joined it
/// (whether or not the room exists, so a refusal tells nothing about it).
fn participant<'a>(
    visitor: Option<&'a Visitor>,
    code: &RoomCode,
) -> Result<&'a Participation, ApiError> {
    visitor
        .and_then(|v| v.session.in_room(code))
        .ok_or(ApiError::NotParticipant)
}

/// Sets the session cookie: Secure when the site is served over HTTPS.
fn set_cookie(response: &mut Response, app: &App, client: Client, id: SessionId) {
    let secure = app.secure_cookies || client.https;
    let cookie = id.set_cookie(secure, app.session_ttl);
    set_header(response, header::SET_COOKIE, &cookie);
}

/// Sends the cookie again with a fresh Max-Age when a page is used by it:
/// the server keeps a session `--session-ttl` after its last use, and the
/// browser must not drop the cookie sooner.
fn keep_cookie(response: &mut Response, app: &App, client: Client, visitor: Option<&Visitor>) {
    if let Some(visitor) = visitor.filter(|v| v.by_cookie) {
        set_cookie(response, app, client, visitor.id);
    }
}

/// What a room page is rendered with, besides the room.
struct Page<'a> {
    me: &'a Name,
    host: Option<String>,
    status: StatusCode,
    /// Text to put back in the message box, and why it was refused.
    draft: String,
    error: Option<String>,
    your_rooms: Vec<YourRoom>,
}

async fn render_room(app: &App, code: &RoomCode, page: Page<'_>) -> Response {
    let Page {
        me,
        host,
        status,
        draft,
        error,
        your_rooms,
    } = page;
    // Either may fail if the room expired since it was found, or if Redis
    // went away.
    let history = match app.registry.history(code, None, usize::MAX).await {
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
    let host = host.unwrap_or_else(|| "localhost".into());
    let invite = match key {
        Some(key) => format!("http://{host}/join/{code}-{}", key.as_str()),
        None => format!("http://{host}/?code={code}"),
    };
    let view = RoomView {
        draft,
        error,
        your_rooms,
        ..RoomView::new(code, invite, me, members, &history)
    };
    html(status, app.pages.room(&view))
}

/// The error page for a room: 404 when it does not exist, else the error's
/// own status (a 503 with Retry-After while Redis is away).
fn room_error(app: &App, code: &RoomCode, err: ApiError) -> Response {
    let err = match err {
        ApiError::RoomNotFound(_) => ApiError::RoomNotFound(code.clone()),
        other => other,
    };
    let mut page = html(err.status(), app.pages.not_found(&err.message()));
    if let Some(secs) = err.retry_after() {
        set_header(&mut page, header::RETRY_AFTER, &secs.to_string());
    }
    page
}

/// Pages load scripts, styles and images only from this site, run no
/// inline script, and are never framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn html(status: StatusCode, page: Result<String, handlebars::RenderError>) -> Response {
    match page {
        Ok(page) => {
            let mut response =
                warp::reply::with_status(warp::reply::html(page), status).into_response();
            set_header(
                &mut response,
                "content-security-policy",
                CONTENT_SECURITY_POLICY,
            );
            response
        }
        Err(err) => {
            error!("rendering a page failed: {err}");
            ApiError::Internal.into_response()
        }
    }
}

/// A JSON body that is already encoded.
fn json(status: StatusCode, body: String) -> Response {
    let mut response = warp::reply::with_status(body, status).into_response();
    set_header(&mut response, header::CONTENT_TYPE, "application/json");
    response
}

fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    set_header(&mut response, header::LOCATION, location);
    response
}

/// `value` is always built by this crate from checked parts (codes, ids).
fn set_header(response: &mut Response, name: impl header::IntoHeaderName, value: &str) {
    let value = HeaderValue::from_str(value).expect("header values are built from checked parts");
    response.headers_mut().insert(name, value);
}
