//! What serves operators and strays: /healthz, /metrics, and the 404.

use warp::http::{header, StatusCode};
use warp::reply::{Reply, Response};

use crate::app::App;
use crate::error::Reason;

use super::respond::*;

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
    let mut response = match wants {
        Wants::Html => html(
            StatusCode::NOT_FOUND,
            app.pages.not_found("There is no page at this address."),
        ),
        Wants::Json => crate::error::json_error(StatusCode::NOT_FOUND, "Not found."),
    };
    response.extensions_mut().insert(Reason("not_found"));
    response
}
