//! The one place a response is finished and encoded, whichever path sends
//! it: the headers every response carries, and the bytes on the wire for
//! answers written on the socket itself ([`super::direct`]).

use std::cell::RefCell;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use http_body_util::BodyExt;
use warp::http::header::{self, HeaderName, HeaderValue};
use warp::http::StatusCode;
use warp::reply::Response;

/// Headers on every response: no content sniffing, and no full address
/// leaked to other sites.
const DEFAULT_HEADERS: [(&str, &str); 2] = [
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
];

/// Headers the encoder writes itself, from how the body is sent: a
/// handler's own copy would be doubled.
const FRAMING: [HeaderName; 3] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
];

/// Adds the headers every response carries (a handler's own value wins).
pub fn finish(response: &mut Response) {
    let headers = response.headers_mut();
    for (name, value) in DEFAULT_HEADERS {
        if !headers.contains_key(name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
}

/// A refusal of the request itself (it cannot be read, or is too large),
/// as JSON, finished.
pub fn refusal(status: StatusCode, message: &str) -> Response {
    let mut response = crate::error::json_error(status, message);
    finish(&mut response);
    response
}

/// The response as it goes on the wire: the head, then (unless
/// `streaming`, when the body follows in chunks) the whole body; `close`
/// says the connection ends after it.
pub async fn encode(response: Response, streaming: bool, close: bool) -> Vec<u8> {
    let (parts, body) = response.into_parts();
    // A whole answer (a message, an error) is small; a stream's own body
    // is empty.
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    encode_parts(&parts, &body, streaming, close)
}

/// A refusal (see [`refusal`]) on the wire, ending the connection, made
/// where nothing may wait (a socket's read that found the request late, a
/// connection over its address's cap); with `Retry-After` if given.
pub fn refusal_bytes(status: StatusCode, message: &str, retry_after: Option<u64>) -> Vec<u8> {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = Response::new(Default::default());
    *response.status_mut() = status;
    let json = HeaderValue::from_static("application/json");
    response.headers_mut().insert(header::CONTENT_TYPE, json);
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    finish(&mut response);
    let (parts, _) = response.into_parts();
    encode_parts(&parts, body.as_bytes(), false, true)
}

fn encode_parts(
    parts: &warp::http::response::Parts,
    body: &[u8],
    streaming: bool,
    close: bool,
) -> Vec<u8> {
    let mut wire = Vec::with_capacity(256 + body.len());
    let reason = parts.status.canonical_reason().unwrap_or("");
    let _ = write!(wire, "HTTP/1.1 {} {reason}\r\n", parts.status.as_u16());
    DATE.with_borrow_mut(|date| wire.extend_from_slice(date.now()));
    for (name, value) in &parts.headers {
        if FRAMING.contains(name) {
            continue;
        }
        wire.extend_from_slice(name.as_str().as_bytes());
        wire.extend_from_slice(b": ");
        wire.extend_from_slice(value.as_bytes());
        wire.extend_from_slice(b"\r\n");
    }
    if streaming {
        wire.extend_from_slice(b"transfer-encoding: chunked\r\n");
    } else {
        let _ = write!(wire, "content-length: {}\r\n", body.len());
    }
    if close {
        wire.extend_from_slice(b"connection: close\r\n");
    }
    wire.extend_from_slice(b"\r\n");
    wire.extend_from_slice(body);
    wire
}

thread_local! {
    /// Each worker thread's `Date` header, remade when the second turns.
    static DATE: RefCell<DateLine> = RefCell::new(DateLine::default());
}

/// A `date: ...\r\n` header line and the second it was made for.
#[derive(Default)]
struct DateLine {
    second: u64,
    line: Vec<u8>,
}

impl DateLine {
    fn now(&mut self) -> &[u8] {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second || self.line.is_empty() {
            self.second = second;
            self.line = format!("date: {}\r\n", httpdate::fmt_http_date(now)).into_bytes();
        }
        &self.line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::reply::Reply;

    #[tokio::test]
    async fn a_handlers_framing_headers_are_never_doubled() {
        let mut response = "hi".into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("99"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        finish(&mut response);
        let wire = String::from_utf8(encode(response, false, true).await).unwrap();
        assert_eq!(wire.matches("content-length").count(), 1, "{wire}");
        assert!(wire.contains("content-length: 2\r\n"), "{wire}");
        assert_eq!(wire.matches("connection").count(), 1, "{wire}");
        assert!(wire.contains("x-content-type-options: nosniff\r\n"));
        assert!(wire.contains("referrer-policy: same-origin\r\n"));
        assert!(wire.ends_with("\r\n\r\nhi"));
    }
}
