//! What every handler shares: the participant check, the session cookie,
//! and how a response is made.

use log::error;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};

use crate::app::App;
use crate::client::{Client, Visitor};
use crate::error::{ApiError, Reason};
use crate::model::RoomCode;
use crate::session::{Participation, SessionId};

/// What the client asked for: a page (a browser form without script) or JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wants {
    Html,
    Json,
}

/// The visitor's part in `code`; 401 for anyone who has not joined it
/// (whether or not the room exists, so a refusal tells nothing about it).
pub(super) fn participant<'a>(
    visitor: Option<&'a Visitor>,
    code: &RoomCode,
) -> Result<&'a Participation, ApiError> {
    visitor
        .and_then(|v| v.session.in_room(code))
        .ok_or(ApiError::NotParticipant)
}

/// The participant asking, with their session (401 for anyone else).
pub(super) fn asking<'a>(
    visitor: Option<&'a Visitor>,
    code: &RoomCode,
) -> Result<(SessionId, &'a Participation), ApiError> {
    let visitor = visitor.ok_or(ApiError::NotParticipant)?;
    Ok((visitor.id, participant(Some(visitor), code)?))
}

/// Sets the session cookie: Secure when the site is served over HTTPS.
pub(super) fn set_cookie(response: &mut Response, app: &App, client: Client, id: SessionId) {
    let secure = client.over_https(app.secure_cookies);
    let cookie = id.set_cookie(secure, app.session_ttl);
    set_header(response, header::SET_COOKIE, &cookie);
}

/// Sends the cookie again with a fresh Max-Age when a page is used by it:
/// the server keeps a session `--session-ttl` after its last use, and the
/// browser must not drop the cookie sooner.
pub(super) fn keep_cookie(
    response: &mut Response,
    app: &App,
    client: Client,
    visitor: Option<&Visitor>,
) {
    if let Some(visitor) = visitor.filter(|v| v.by_cookie) {
        set_cookie(response, app, client, visitor.id);
    }
}

/// Pages load scripts, styles and images only from this site, run no
/// inline script, and are never framed.
pub(super) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub(super) fn html(status: StatusCode, page: Result<String, handlebars::RenderError>) -> Response {
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
/// A page that tells of `err`: its Retry-After, if it has one, and its
/// reason for /metrics.
pub(super) fn refused_page(mut page: Response, err: &ApiError) -> Response {
    if let Some(secs) = err.retry_after() {
        set_header(&mut page, header::RETRY_AFTER, &secs.to_string());
    }
    page.extensions_mut().insert(Reason(err.reason()));
    page
}

pub(super) fn json(status: StatusCode, body: String) -> Response {
    let mut response = warp::reply::with_status(body, status).into_response();
    set_header(&mut response, header::CONTENT_TYPE, "application/json");
    response
}

pub(super) fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    set_header(&mut response, header::LOCATION, location);
    response
}

/// `value` is always built by this crate from checked parts (codes, ids).
pub(super) fn set_header(response: &mut Response, name: impl header::IntoHeaderName, value: &str) {
    let value = HeaderValue::from_str(value).expect("header values are built from checked parts");
    response.headers_mut().insert(name, value);
}
