//! One error type for the HTTP API, each variant with its status, and the
//! `recover` that turns warp's own rejections into the same JSON shape:
//! `{"error":"..."}`.

use std::convert::Infallible;
use std::time::Duration;

use log::error;
use warp::http::{header, StatusCode};
use warp::reject;
use warp::reply::{Reply, Response};

use crate::limits::BODY_LIMIT;
use crate::model::{Invalid, RoomCode};
use crate::rooms::RoomError;

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECS: u64 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 400: the request cannot be read (bad JSON, bad UTF-8, wrong types).
    Malformed(String),
    /// 401: the request carries no credential that joined this room.
    NotParticipant,
    /// 403: a participant asked for what their part does not allow.
    Forbidden(String),
    /// 404: no such room.
    RoomNotFound(RoomCode),
    /// 404: the room has no message with this id (any more).
    MessageNotFound(u64),
    /// 410: the room ended, on this day (UTC, `2026-12-03`).
    RoomEnded(RoomCode, String),
    /// 409: the name is someone else's, or this session is in the room
    /// under another name.
    Conflict(String),
    /// 415: neither JSON nor a form.
    UnsupportedType,
    /// 422: well-formed, but the content is refused (empty text, long name).
    Invalid(Invalid),
    /// 429: this visitor is over a limit; retry after the given time.
    TooMany(&'static str, String, Duration),
    /// 503: the server cannot take it now; retry later.
    Unavailable(&'static str, String),
    /// 500: a bug on our side; logged, never shown in detail.
    Internal,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Malformed(_) => StatusCode::BAD_REQUEST,
            ApiError::NotParticipant => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::RoomNotFound(_) | ApiError::MessageNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::RoomEnded(..) => StatusCode::GONE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::UnsupportedType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooMany(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(..) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Why, in a word, for /metrics (`roomcast_refusals_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::Malformed(_) => "malformed",
            ApiError::NotParticipant => "not_participant",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::RoomNotFound(_) => "no_room",
            ApiError::MessageNotFound(_) => "no_message",
            ApiError::RoomEnded(..) => "room_ended",
            ApiError::Conflict(_) => "conflict",
            ApiError::UnsupportedType => "media_type",
            ApiError::Invalid(_) => "invalid",
            ApiError::TooMany(reason, ..) | ApiError::Unavailable(reason, _) => reason,
            ApiError::Internal => "internal",
        }
    }

    /// The sentence shown to people and scripts.
    pub fn message(&self) -> String {
        match self {
            ApiError::Malformed(why) => format!("Malformed request: {why}"),
            ApiError::NotParticipant => "join the room first".into(),
            ApiError::RoomNotFound(code) => format!("Room {code} does not exist."),
            ApiError::MessageNotFound(id) => format!(
                "This room has no message {id}: it was deleted, or is older than what the room keeps."
            ),
            ApiError::RoomEnded(code, day) => format!(
                "Room {code} ended on {day}: nobody was in it for a long time, and its messages are gone."
            ),
            ApiError::Conflict(why) | ApiError::Forbidden(why) => why.clone(),
            ApiError::UnsupportedType => {
                "Send application/json or application/x-www-form-urlencoded.".into()
            }
            ApiError::Invalid(why) => why.to_string(),
            ApiError::TooMany(_, why, _) | ApiError::Unavailable(_, why) => why.clone(),
            ApiError::Internal => "Something went wrong on our side.".into(),
        }
    }
}

impl From<Invalid> for ApiError {
    fn from(why: Invalid) -> ApiError {
        ApiError::Invalid(why)
    }
}

impl From<RoomError> for ApiError {
    fn from(err: RoomError) -> ApiError {
        match err {
            RoomError::NotFound(code) => ApiError::RoomNotFound(code),
            RoomError::Ended(code, at_ms) => ApiError::RoomEnded(code, day_of(at_ms)),
            RoomError::NoFreeCode => ApiError::Unavailable(
                "no_free_code",
                "No free room code right now; try again.".into(),
            ),
            RoomError::ShuttingDown => ApiError::Unavailable(
                "shutting_down",
                "The server is restarting; try again shortly.".into(),
            ),
            RoomError::RateLimited(wait) => ApiError::TooMany(
                "rate_limited",
                "Slow down: too many requests. Try again in a moment.".into(),
                wait,
            ),
            RoomError::Guessing(wait) => ApiError::TooMany(
                "guessing",
                "Too many codes that are no room came from your address; try again later.".into(),
                wait,
            ),
            RoomError::TooManyStreamsForVisitor => ApiError::TooMany(
                "streams_per_visitor",
                "Too many open streams from you; close some first.".into(),
                Duration::from_secs(RETRY_AFTER_SECS),
            ),
            RoomError::NameTaken(name) => ApiError::Conflict(format!(
                "The name {name} is taken in this room; please choose another."
            )),
            RoomError::AlreadyIn(name) => ApiError::Conflict(format!(
                "You are in this room already, as {name}; leave it first to take another name."
            )),
            RoomError::NotParticipant => ApiError::NotParticipant,
            RoomError::NoSuchMessage(id) => ApiError::MessageNotFound(id),
            RoomError::NotYours => ApiError::Forbidden(
                "Only its sender can edit or delete a message.".into(),
            ),
            RoomError::KeyReused => ApiError::Invalid(Invalid(
                "This Idempotency-Key was sent before with another message; make a new key for each message.".into(),
            )),
            RoomError::KeyInFlight => ApiError::Conflict(
                "A message with this Idempotency-Key is being stored right now; send it again in a moment to learn its outcome.".into(),
            ),
            RoomError::TooManyRooms => ApiError::Unavailable(
                "max_rooms",
                "There are too many rooms right now; try again later.".into(),
            ),
            RoomError::TooManyStreams => ApiError::Unavailable(
                "max_streams",
                "The server has no room for more streams right now; try again shortly.".into(),
            ),
            RoomError::Busy => {
                ApiError::Unavailable("busy", "The server is busy; try again shortly.".into())
            }
            RoomError::Unreachable => ApiError::Unavailable(
                "unreachable",
                "The chat's store is out of reach for a moment; try again shortly.".into(),
            ),
            RoomError::Store(why) => {
                log::error!("store failure answered with 503: {why}");
                ApiError::Unavailable(
                    "store",
                    "The message could not be stored; try again.".into(),
                )
            }
        }
    }
}

impl ApiError {
    /// Seconds to put in Retry-After, for a 429 or a 503.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            // Round up: a client that waits what it was told gets through.
            ApiError::TooMany(_, _, wait) => Some(wait.as_secs_f64().ceil().max(1.0) as u64),
            ApiError::Unavailable(..) => Some(RETRY_AFTER_SECS),
            _ => None,
        }
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let mut response = json_error(self.status(), &self.message());
        response.extensions_mut().insert(Reason(self.reason()));
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        if self == ApiError::NotParticipant {
            // A script learns here how to present what joining gave it.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Why a request was refused, in a word, carried by the response to the
/// connection layer, which counts it (see [`crate::metrics`]).
#[derive(Debug, Clone, Copy)]
pub struct Reason(pub &'static str);

/// `{"error": message}` with `status`.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message });
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

/// A state-changing request a browser says came from another site.
#[derive(Debug)]
pub struct CrossSite;

impl reject::Reject for CrossSite {}

/// An error found while reading the request (the session, with Redis out
/// of reach; an address barred from naming codes), answered as that error.
#[derive(Debug)]
pub struct Refusal(pub ApiError);

impl reject::Reject for Refusal {}

/// Why a body over [`BODY_LIMIT`] is refused (413), on every path.
pub fn too_large() -> String {
    format!("The request body is over {} KiB.", BODY_LIMIT / 1024)
}

/// Turns warp's rejections (no route, wrong method, body limits, bad
/// query strings) into JSON errors.
pub async fn recover(rejection: warp::Rejection) -> Result<Response, Infallible> {
    if let Some(Refusal(err)) = rejection.find::<Refusal>() {
        return Ok(err.clone().into_response());
    }
    let (status, reason, message) = if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "not_found", "Not found.".to_string())
    } else if rejection.find::<CrossSite>().is_some() {
        (
            StatusCode::FORBIDDEN,
            "cross_site",
            "This request must come from this site's own pages.".to_string(),
        )
    } else if rejection.find::<reject::PayloadTooLarge>().is_some() {
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large", too_large())
    } else if rejection.find::<reject::LengthRequired>().is_some() {
        (
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "Send a Content-Length header with the body.".to_string(),
        )
    } else if rejection.find::<reject::UnsupportedMediaType>().is_some() {
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "media_type",
            ApiError::UnsupportedType.message(),
        )
    } else if let Some(err) = rejection.find::<reject::InvalidQuery>() {
        (
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("Malformed request: {err}."),
        )
    } else if let Some(err) = rejection.find::<reject::InvalidHeader>() {
        (
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("Malformed request: {err}."),
        )
    } else if rejection.find::<reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method",
            "Method not allowed here.".to_string(),
        )
    } else {
        error!("unhandled rejection: {rejection:?}");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            ApiError::Internal.message(),
        )
    };
    let mut response = json_error(status, &message);
    response.extensions_mut().insert(Reason(reason));
    Ok(response)
}

/// The day (UTC) of a time in ms since the epoch: `2026-12-03`.
fn day_of(at_ms: u64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_millis(at_ms);
    let mut day = humantime::format_rfc3339_seconds(at).to_string();
    day.truncate("2026-12-03".len());
    day
}
