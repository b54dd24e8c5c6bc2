//! Every route as a warp filter, one function per endpoint, its route in its
//! doc line. Limits sit here at the edge; handlers get parsed input.

use std::convert::Infallible;

use serde::de::DeserializeOwned;
use warp::http::{HeaderMap, HeaderValue, Method};
use warp::hyper::body::Bytes;
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::app::App;
use crate::body;
use crate::client::{Client, Visitor, VisitorKey};
use crate::error::{self, ApiError};
use crate::handlers::{self, Wants};
use crate::limits::BODY_LIMIT;
use crate::model::RoomCode;
use crate::session::{self, SessionId};
use crate::site::Site;

/// All routes, with JSON errors for rejections. (The request log, the
/// metrics and the headers every response carries are `http`'s, which
/// sees every response.)
pub fn routes(app: App) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    home(app.clone())
        .or(enter(app.clone()))
        .or(create_room(app.clone()))
        .or(invite(app.clone()))
        .or(link_device(app.clone()))
        .or(device_page(app.clone()))
        .or(use_device_link(app.clone()))
        .or(room_page(app.clone()))
        .or(join(app.clone()))
        .or(leave(app.clone()))
        .or(post_message(app.clone()))
        .or(typing(app.clone()))
        .or(edit_message(app.clone()))
        .or(delete_message(app.clone()))
        .or(react(app.clone()))
        .or(edit_form(app.clone()))
        .or(delete_form(app.clone()))
        .or(list_messages(app.clone()))
        .or(events(app.clone()))
        .or(multiplexed(app.clone()))
        .or(healthz(app.clone()))
        .or(metrics(app.clone()))
        .or(crate::assets::route())
        .or(not_found(app))
        .recover(error::recover)
}

/// GET /?code=ABCD
fn home(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path::end()
        .and(warp::get())
        .and(query::<handlers::HomeQuery>())
        .and(visitor(&app))
        .and(client())
        .and(with_app(app))
        .then(handlers::home)
}

/// POST / with a form body
fn enter(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path::end()
        .and(warp::post())
        .and(only_this_site(&app))
        .and(caller(&app))
        .and(client())
        .and(body())
        .and(with_app(app))
        .then(handlers::enter)
}

/// POST /rooms, with no body or `{"private":true}` (form or JSON)
fn create_room(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("rooms")
        .and(warp::post())
        .and(only_this_site(&app))
        .and(header("content-type"))
        .and(caller(&app))
        .map(|content_type, _visitor: Option<Visitor>, key: VisitorKey| (content_type, key))
        .untuple_one()
        .and(optional_body())
        .and(with_app(app))
        .then(handlers::create_room)
}

/// POST /device
fn link_device(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("device")
        .and(warp::post())
        .and(only_this_site(&app))
        .and(wants())
        .and(visitor(&app))
        .and(with_app(app))
        .then(handlers::link_device)
}

/// GET /device/SECRET
fn device_page(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("device" / String)
        .and(warp::get())
        .and(with_app(app))
        .then(handlers::device_page)
}

/// POST /device/SECRET
fn use_device_link(
    app: App,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("device" / String)
        .and(warp::post())
        .and(only_this_site(&app))
        .and(client())
        .and(with_app(app))
        .then(handlers::use_device_link)
}

/// GET /join/ABCD-KEY
fn invite(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("join" / String)
        .and(warp::get())
        .and(visitor(&app))
        .and(with_app(app))
        .then(handlers::invite)
}

/// GET /rooms/CODE, ?before=ID (older events), ?q=WORDS (a search)
fn room_page(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("rooms" / RoomCode)
        .and(warp::get())
        .and(query::<handlers::RoomQuery>())
        .and(visitor(&app))
        .and(client())
        .and(site(&app))
        .and(with_app(app))
        .then(handlers::room_page)
}

/// POST /rooms/CODE/join with a form or JSON body (name, watch)
fn join(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("rooms" / RoomCode / "join")
        .and(warp::post())
        .and(only_this_site(&app))
        .and(header("content-type"))
        .and(wants())
        .and(caller(&app))
        .and(client())
        .and(body())
        .and(with_app(app))
        .then(handlers::join)
}

/// POST /rooms/CODE/leave
fn leave(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("rooms" / RoomCode / "leave")
        .and(warp::post())
        .and(only_this_site(&app))
        .and(wants())
        .and(visitor(&app))
        .and(with_app(app))
        .then(handlers::leave)
}

/// POST /rooms/CODE/messages with a form or JSON body
fn post_message(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("rooms" / RoomCode / "messages")
        .and(warp::post())
        .and(only_this_site(&app))
        .and(warp::header::optional::<String>("content-type"))
        .and(header_given("idempotency-key"))
        .and(wants())
        .and(caller(&app))
        .and(site(&app))
        .and(body())
        .and(with_app(app))
        .then(handlers::post_message)
}

/// POST /rooms/CODE/typing
fn typing(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("rooms" / RoomCode / "typing")
        .and(warp::post())
        .and(only_this_site(&app))
        .and(visitor(&app))
        .and(with_app(app))
        .then(handlers::typing)
}

/// What every change of a message is asked with: its room and id, who
/// asks, from this site only.
fn asked(
    app: &App,
    method: warp::filters::BoxedFilter<()>,
    end: &'static str,
) -> impl Filter<Extract = (handlers::Asked,), Error = warp::Rejection> + Clone {
    warp::path!("rooms" / RoomCode / "messages" / u64 / ..)
        .and(end_with(end))
        .and(method)
        .and(only_this_site(app))
        .and(caller(app))
        .map(|code, target, visitor, key| handlers::Asked {
            code,
            target,
            visitor,
            key,
        })
}

/// The rest of the path: nothing, or one more segment.
fn end_with(end: &'static str) -> warp::filters::BoxedFilter<()> {
    if end.is_empty() {
        warp::path::end().boxed()
    } else {
        warp::path(end).and(warp::path::end()).boxed()
    }
}

/// PATCH /rooms/CODE/messages/ID with a form or JSON body
fn edit_message(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    asked(&app, warp::patch().boxed(), "")
        .and(warp::header::optional::<String>("content-type"))
        .and(body())
        .and(with_app(app))
        .then(handlers::edit_message)
}

/// DELETE /rooms/CODE/messages/ID
fn delete_message(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    asked(&app, warp::delete().boxed(), "")
        .and(with_app(app))
        .then(handlers::delete_message)
}

/// POST /rooms/CODE/messages/ID/reactions with a form or JSON body
fn react(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    asked(&app, warp::post().boxed(), "reactions")
        .and(warp::header::optional::<String>("content-type"))
        .and(wants())
        .and(site(&app))
        .and(body())
        .and(with_app(app))
        .then(handlers::react)
}

/// POST /rooms/CODE/messages/ID/edit with a form body (no script)
fn edit_form(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    asked(&app, warp::post().boxed(), "edit")
        .and(site(&app))
        .and(body())
        .and(with_app(app))
        .then(handlers::edit_form)
}

/// POST /rooms/CODE/messages/ID/delete (no script)
fn delete_form(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    asked(&app, warp::post().boxed(), "delete")
        .and(site(&app))
        .and(optional_body())
        .and(with_app(app))
        .then(|asked, site, _body, app| handlers::delete_form(asked, site, app))
}

/// GET /rooms/CODE/messages?since=ID&limit=N, or ?before=ID&limit=N
fn list_messages(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("rooms" / RoomCode / "messages")
        .and(warp::get())
        .and(query::<handlers::HistoryQuery>())
        .and(visitor(&app))
        .and(with_app(app))
        .then(handlers::list_messages)
}

/// GET /rooms/CODE/events?since=ID (Last-Event-ID honoured)
fn events(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("rooms" / RoomCode / "events")
        .and(warp::get())
        .and(query::<handlers::StreamQuery>())
        .and(last_event_id())
        .and(caller(&app))
        .and(with_app(app))
        .then(handlers::open_stream)
}

/// GET /events?rooms=ABCD,EFGH&since=CURSOR (Last-Event-ID honoured)
fn multiplexed(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("events")
        .and(warp::get())
        .and(query::<handlers::MultiplexedQuery>())
        .and(last_event_cursor())
        .and(caller(&app))
        .and(with_app(app))
        .then(handlers::open_multiplexed)
}

/// GET /healthz
fn healthz(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("healthz")
        .and(warp::get())
        .and(with_app(app))
        .then(handlers::healthz)
}

/// GET /metrics
fn metrics(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("metrics")
        .and(warp::get())
        .and(header("accept"))
        .and(with_app(app))
        .then(handlers::metrics)
}

/// Any other GET. Other methods fall through as "not found", the weakest
/// rejection, so a route that exists for another method still answers 405.
fn not_found(app: App) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::method()
        .and_then(|method: Method| async move {
            match method {
                Method::GET => Ok(()),
                _ => Err(warp::reject::not_found()),
            }
        })
        .untuple_one()
        .and(wants())
        .and(with_app(app))
        .then(handlers::not_found)
}

/// The query string parsed into `T`; a malformed one reaches the handler as
/// an error, so it answers 400 on its own route (a rejection here would let
/// the catch-all GET answer 404 instead).
fn query<T: DeserializeOwned + Send + 'static>(
) -> impl Filter<Extract = (Result<T, ApiError>,), Error = Infallible> + Clone {
    warp::query::raw()
        .or(warp::any().map(String::new))
        .unify()
        .map(|raw: String| body::query(&raw))
}

fn with_app(app: App) -> impl Filter<Extract = (App,), Error = Infallible> + Clone {
    warp::any().map(move || app.clone())
}

/// The body, at most 16 KiB (413 past that; 411 without a length).
fn body() -> impl Filter<Extract = (Bytes,), Error = warp::Rejection> + Clone {
    warp::body::content_length_limit(BODY_LIMIT).and(warp::body::bytes())
}

/// The body if the request has one (as [`body`]), else empty: `curl -X
/// POST` sends no Content-Length at all.
fn optional_body() -> impl Filter<Extract = (Bytes,), Error = warp::Rejection> + Clone {
    let none = header("content-length")
        .and(header("transfer-encoding"))
        .and_then(
            |length: Option<String>, chunked: Option<String>| async move {
                match (length, chunked) {
                    (None, None) => Ok(Bytes::new()),
                    // The weakest rejection: `body`'s own (413, 411) wins.
                    _ => Err(warp::reject::not_found()),
                }
            },
        );
    body().or(none).unify()
}

/// The session the request names, if it is a live one: by
/// `Authorization: Bearer TOKEN` (a script), else by the session cookie
/// (a browser). (With Redis, a lookup there; while it is out of reach, 503.)
fn visitor(
    app: &App,
) -> impl Filter<Extract = (Option<Visitor>,), Error = warp::Rejection> + Clone {
    let registry = app.registry.clone();
    credential(app.secure_cookies).and_then(move |credential: Option<(SessionId, bool)>| {
        let registry = registry.clone();
        async move {
            let Some((id, by_cookie)) = credential else {
                return Ok(None);
            };
            match registry.session(id).await {
                Ok(session) => Ok(session.map(|session| Visitor {
                    id,
                    session,
                    by_cookie,
                })),
                Err(err) => Err(warp::reject::custom(error::Refusal(err.into()))),
            }
        }
    })
}

/// The session id a request presents, and whether by cookie: its bearer
/// token, else its session cookie (see [`session::from_cookies`]: over
/// HTTPS only the `__Host-` one). One that is not an id at all counts as
/// none (and so is refused wherever a session is needed), never as a
/// malformed request.
fn credential(
    secure_cookies: bool,
) -> impl Filter<Extract = (Option<(SessionId, bool)>,), Error = Infallible> + Clone {
    // The Cookie header as bytes: one cookie that is not ASCII (another
    // subdomain can set one) must not make the session's unreadable.
    let cookie_header = warp::header::value("cookie")
        .map(Some)
        .or(warp::any().map(|| None))
        .unify();
    header("authorization")
        .and(cookie_header)
        .and(client())
        .map(
            move |authorization: Option<String>, cookies: Option<HeaderValue>, client: Client| {
                let bearer = authorization.as_deref().and_then(|value| {
                    let (scheme, token) = value.trim().split_once(' ')?;
                    scheme
                        .eq_ignore_ascii_case("bearer")
                        .then_some(token.trim())
                });
                if let Some(token) = bearer {
                    return token.parse().ok().map(|id| (id, false));
                }
                let secure = client.over_https(secure_cookies);
                let cookies = String::from_utf8_lossy(cookies?.as_bytes()).into_owned();
                session::from_cookies(&cookies, secure).map(|id| (id, true))
            },
        )
}

/// Refuses (403) a state-changing request a browser says comes from
/// anywhere but this site's own pages, cookie or not: without a cookie,
/// another site could sign a visitor in to a room of its choosing (login
/// CSRF). `Sec-Fetch-Site` decides when a browser sends it (`same-origin`,
/// or `none` for one the user typed); else an `Origin` must be this site's
/// own, scheme and host (see [`Site`]). Scripts send neither and are not
/// affected; a bearer token cannot be sent by another site's page anyway.
///
/// Reads just the headers it needs: cloning the whole header map on every
/// post was measurable.
fn only_this_site(app: &App) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    let (public, https) = (app.public_url.clone(), app.secure_cookies);
    header("sec-fetch-site")
        .and(header("origin"))
        .and(header("host"))
        .and(header("x-forwarded-host"))
        .and(client())
        .and_then(
            move |fetch_site: Option<String>,
                  origin: Option<String>,
                  host: Option<String>,
                  forwarded: Option<String>,
                  client: Client| {
                let ours = match (fetch_site.as_deref(), origin) {
                    (Some(site), _) => site == "same-origin" || site == "none",
                    (None, Some(origin)) => Site::of(
                        public.as_ref(),
                        client,
                        host.as_deref(),
                        forwarded.as_deref(),
                        https,
                    )
                    .is(&origin),
                    (None, None) => true,
                };
                async move {
                    if ours {
                        Ok(())
                    } else {
                        Err(warp::reject::custom(error::CrossSite))
                    }
                }
            },
        )
        .untuple_one()
}

/// This site as the request sees it (see [`Site`]).
fn site(app: &App) -> impl Filter<Extract = (Site,), Error = Infallible> + Clone {
    let (public, https) = (app.public_url.clone(), app.secure_cookies);
    header("host")
        .and(header("x-forwarded-host"))
        .and(client())
        .map(
            move |host: Option<String>, forwarded: Option<String>, client: Client| {
                Site::of(
                    public.as_ref(),
                    client,
                    host.as_deref(),
                    forwarded.as_deref(),
                    https,
                )
            },
        )
}

/// A header's value as text, if it is there and readable; an unreadable
/// one counts as absent, never as an error.
fn header(
    name: &'static str,
) -> impl Filter<Extract = (Option<String>,), Error = Infallible> + Clone {
    warp::header::optional::<String>(name)
        .or(warp::any().map(|| None))
        .unify()
}

/// A header's value as text, if it is there; one that is there but is not
/// visible ASCII reads as empty text, which its parser refuses (400), so a
/// client never has it silently ignored.
fn header_given(
    name: &'static str,
) -> impl Filter<Extract = (Option<String>,), Error = Infallible> + Clone {
    warp::header::optional::<String>(name)
        .or(warp::any().map(|| Some(String::new())))
        .unify()
}

/// The session, if any, and the key its limits are counted under: the
/// session, else the client's address.
fn caller(
    app: &App,
) -> impl Filter<Extract = (Option<Visitor>, VisitorKey), Error = warp::Rejection> + Clone {
    visitor(app)
        .and(client())
        .map(|visitor: Option<Visitor>, client: Client| {
            let key = VisitorKey::of(visitor.as_ref(), client);
            (visitor, key)
        })
        .untuple_one()
}

/// The client the connection loop saw (always there when served by it).
fn client() -> impl Filter<Extract = (Client,), Error = Infallible> + Clone {
    warp::ext::optional::<Client>().map(|client: Option<Client>| {
        client.unwrap_or(Client {
            ip: std::net::Ipv4Addr::UNSPECIFIED.into(),
            https: false,
            via_proxy: false,
        })
    })
}

/// Whether the client reads pages (Accept names text/html) or JSON.
fn wants() -> impl Filter<Extract = (Wants,), Error = Infallible> + Clone {
    header("accept").map(|accept: Option<String>| match accept {
        Some(accept) if accept.contains("text/html") => Wants::Html,
        _ => Wants::Json,
    })
}

/// `Last-Event-ID`, read leniently (see [`body::resume_point`]).
/// The `Last-Event-ID` of a multiplexed stream, as sent: its handler reads
/// the cursor (bytes that are not text fail that reading, not this one).
fn last_event_cursor() -> impl Filter<Extract = (Option<String>,), Error = Infallible> + Clone {
    warp::header::headers_cloned().map(|headers: HeaderMap| {
        let header = headers.get("last-event-id")?;
        Some(String::from_utf8_lossy(header.as_bytes()).into_owned())
    })
}

fn last_event_id() -> impl Filter<Extract = (Option<u64>,), Error = Infallible> + Clone {
    warp::header::headers_cloned().map(|headers: HeaderMap| {
        headers
            .get("last-event-id")
            .and_then(|v| body::resume_point(v.as_bytes()))
    })
}
