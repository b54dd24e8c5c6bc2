//! The home page: GET / (and an invite's GET /join/CODE-KEY) shows the
//! form; POST / joins or creates a room from it.

use serde::Deserialize;
use warp::http::StatusCode;
use warp::hyper::body::Bytes;
use warp::reply::{Reply, Response};

use crate::app::App;
use crate::body;
use crate::client::{Client, Visitor, VisitorKey};
use crate::error::ApiError;
use crate::model::{Name, RoomCode};
use crate::pages::HomeView;
use crate::session::{Participation, SessionId};

use super::respond::*;
use super::rooms::your_rooms;

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
        ApiError::Invalid(_) | ApiError::RoomNotFound(_) | ApiError::RoomEnded(..) => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        other => other.status(),
    };
    let view = HomeView {
        code_error: is_the_codes(&err, &form),
        name: form.name.unwrap_or_default(),
        code: form.code.unwrap_or_default(),
        key: form.key.unwrap_or_default(),
        error: Some(err.message()),
        ..HomeView::default()
    };
    refused_page(html(status, app.pages.home(&view)), &err)
}

/// Whether `err` is about the code typed: no such room, or (the name is
/// checked first, so with a good name) a code that is missing or no code.
fn is_the_codes(err: &ApiError, form: &HomeForm) -> bool {
    let name_ok = || Name::parse(form.name.as_deref().unwrap_or_default()).is_ok();
    match err {
        ApiError::RoomNotFound(_) | ApiError::RoomEnded(..) => true,
        ApiError::Invalid(_) => name_ok(),
        _ => false,
    }
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
    // The join below would refuse an address barred for guessing: refuse
    // it before a room is made for nothing.
    app.registry.may_name_a_code(key.address)?;
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
