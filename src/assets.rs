//! The static files under /assets/, compiled into the binary so it runs
//! from any directory.

use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};
use warp::Filter;

/// (name, content type, body)
const ASSETS: [(&str, &str, &str); 3] = [
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
        "icon.svg",
        "image/svg+xml",
        include_str!("../assets/icon.svg"),
    ),
];

/// GET /assets/NAME
pub fn route() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("assets" / String)
        .and(warp::get())
        .and_then(|name: String| async move {
            match ASSETS.iter().find(|(n, _, _)| *n == name) {
                Some(&(_, content_type, body)) => Ok(asset(content_type, body)),
                None => Err(warp::reject::not_found()),
            }
        })
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = warp::reply::with_status(body, StatusCode::OK).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Revalidate each time: the files change with each release and are small.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
