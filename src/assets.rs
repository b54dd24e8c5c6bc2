//! The static files under /assets/, compiled into the binary so it runs
//! from any directory.

use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};
use warp::Filter;

/// (name, content type, body)
const ASSETS: [(&str, &str, &str); 4] = [
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../assets/style.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    ),
    (
        "hub.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/hub.js"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_str!("../assets/icon.svg"),
    ),
];

/// GET /assets/NAME, answering 304 when If-None-Match has its ETag.
pub fn route() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("assets" / String)
        .and(warp::get())
        .and(warp::header::optional::<String>("if-none-match"))
        .and_then(|name: String, cached: Option<String>| async move {
            match ASSETS.iter().find(|(n, _, _)| *n == name) {
                Some(&(_, content_type, body)) => Ok(asset(content_type, body, cached.as_deref())),
                None => Err(warp::reject::not_found()),
            }
        })
}

/// A strong validator for `body`: it changes whenever the file does.
fn etag(body: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    body.hash(&mut hasher);
    format!("\"{:016x}\"", hasher.finish())
}

fn asset(content_type: &'static str, body: &'static str, cached: Option<&str>) -> Response {
    let tag = etag(body);
    let fresh = cached.is_some_and(|c| c.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        warp::reply::with_status(body, StatusCode::OK).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Revalidate each time (cheap with the ETag): files change with releases.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&tag).expect("hex in quotes"),
    );
    response
}
