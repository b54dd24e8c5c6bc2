//! Taking part: POST /rooms/CODE/join and /leave, and the device link
//! that takes a session to another device (POST /device, GET and POST
//! /device/SECRET).

use serde::{Deserialize, Serialize};
use warp::http::StatusCode;
use warp::hyper::body::Bytes;
use warp::reply::{Reply, Response};

use crate::app::App;
use crate::body;
use crate::client::{Client, Visitor, VisitorKey};
use crate::error::ApiError;
use crate::model::{Name, RoomCode};
use crate::session::Participation;

use super::respond::*;

#[derive(Debug, Default, Deserialize)]
pub struct JoinInput {
    name: Option<String>,
    watch: Option<bool>,
    key: Option<String>,
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
        let joined = app.registry.join(&code, session, &part, room_key, key);
        Ok::<_, ApiError>(joined.await?)
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
