//! The two requests that make up nearly all of a chat's traffic, read here
//! and answered on the socket itself ([`super::wire`]) rather than by
//! hyper: a stream
//! (`GET /rooms/CODE/events`, what `curl -N`, scripts and most EventSource
//! reconnects send, or a page's multiplexed `GET /events`) and a message (`POST /rooms/CODE/messages`). The head
//! is read and parsed once here, the request goes through the same routes,
//! and the answer is written straight to the socket.
//!
//! Why: hyper keeps an 8 KiB read buffer and an 8 KiB write buffer for the
//! life of every connection, which for an idle stream was most of its
//! memory, and frames a chunked body in three pieces per write; for posts,
//! hyper's dispatch was a seventh of the server's time.
//!
//! A stream goes out chunked, as from hyper, each chunk in one vectored
//! write, and the connection closes after it (`Connection: close`). A
//! message is answered whole in one write and the connection kept for the
//! next request, which is read here too.
//!
//! Every request's head is read here first. One that cannot be read, or
//! is too large, is refused here (400, 431) and the connection closed, so
//! hyper never answers on its own. Any other request (another route, a
//! chunked body, a body over the limit, `Expect`, HTTP/1.0) goes to hyper
//! with the bytes already read put back in front, for that one request;
//! the next comes back here. (A chunked body's end is hyper's to find, so
//! after one, hyper closes the connection.)

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::Full;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use warp::http::header::{HeaderName, HeaderValue};
use warp::http::{Method, Request, StatusCode, Uri, Version};

use crate::limits::{BODY_LIMIT, MAX_HEAD, MAX_HEADERS};
use crate::shutdown::Shutdown;

/// How the requests served here begin: anything else is hyper's.
const PREFIXES: [&[u8]; 3] = [b"GET /rooms/", b"GET /events", b"POST /rooms/"];

/// What the next bytes of a connection turned out to be.
pub enum Next {
    /// A stream request, parsed.
    Stream(Request<Full<Bytes>>),
    /// A message, with its body; `close` if the client asked to close the
    /// connection after it.
    Post {
        request: Request<Full<Bytes>>,
        close: bool,
    },
    /// Anything else: what was read of it is still in the buffer, for hyper.
    Other,
}

/// What came next on a connection.
// Moved once from `next_request` into a match: boxing the request would
// cost an allocation per request instead.
#[allow(clippy::large_enum_variant)]
pub enum Arrival {
    /// A stream request, served here.
    Stream(Request<Full<Bytes>>),
    /// A message, served here; `close` as in [`Next::Post`].
    Post {
        request: Request<Full<Bytes>>,
        close: bool,
    },
    /// A request for hyper, at the front of the buffer: `length` bytes of
    /// head and body (`None`: a chunked body, whose end hyper finds);
    /// `close` if the connection ends after it.
    Hyper { length: Option<usize>, close: bool },
    /// A request that cannot be served, answered with this and closed.
    Refused(StatusCode, &'static str),
    /// The peer went away, sent nothing in time, or the server is shutting
    /// down and no request had begun.
    Gone,
}

/// Said when a request was not whole in time.
pub const LATE: &str = "The request did not arrive whole in time.";

/// Reads the connection's next request into `read` (which keeps whatever
/// follows it) for at most `timeout`: a request served here whole, the
/// head of one for hyper, or 408 for one begun and not finished in time.
/// A request already here whole is taken even once shutdown has started;
/// waiting for more bytes ends when it starts (a request that had only
/// begun gets no answer: nothing of it was acted on), so a client that
/// always leaves the next request unfinished cannot hold shutdown up.
pub async fn next_request(
    socket: &mut TcpStream,
    read: &mut BytesMut,
    timeout: Duration,
    shutdown: &mut Shutdown,
) -> Arrival {
    let reading = async {
        loop {
            match take(read) {
                Some(Next::Other) => {
                    if let Some(arrival) = handover(read) {
                        return arrival;
                    }
                }
                Some(Next::Stream(request)) => return Arrival::Stream(request),
                Some(Next::Post { request, close }) => return Arrival::Post { request, close },
                None => {}
            }
            if read.capacity() == read.len() {
                read.reserve(read.len().max(1024));
            }
            match socket.read_buf(read).await {
                Ok(0) | Err(_) => return Arrival::Gone,
                Ok(_) => {}
            }
        }
    };
    let arrived = tokio::select! {
        biased;
        next = tokio::time::timeout(timeout, reading) => Some(next.ok()),
        () = shutdown.wait() => None,
    };
    match arrived {
        Some(Some(arrival)) => arrival,
        // Part of a request came, not all of it: 408. A connection idle
        // between requests just closes.
        Some(None) if !read.is_empty() => Arrival::Refused(StatusCode::REQUEST_TIMEOUT, LATE),
        _ => Arrival::Gone,
    }
}

/// What to do with the request at the front of `read` that is not served
/// here, once its head is in; `None` if more must be read to tell.
/// (Public for the fuzz target.)
pub fn handover(read: &BytesMut) -> Option<Arrival> {
    const MALFORMED: &str = "Malformed request: the request could not be read.";
    const TOO_LARGE: &str = "The request headers are too large.";
    const ONE_HOST: &str = "Malformed request: send exactly one Host header.";
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let refused = |status, why| Some(Arrival::Refused(status, why));
    let head_len = match parsed.parse(read) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if read.len() <= MAX_HEAD => return None,
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            return refused(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, TOO_LARGE)
        }
        Err(_) => return refused(StatusCode::BAD_REQUEST, MALFORMED),
    };
    if head_len > MAX_HEAD {
        return refused(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, TOO_LARGE);
    }
    let path = parsed.path.unwrap_or_default();
    let readable = path.parse::<Uri>().is_ok()
        && Method::from_bytes(parsed.method.unwrap_or_default().as_bytes()).is_ok()
        && parsed.headers.iter().all(|h| {
            HeaderName::from_bytes(h.name.as_bytes()).is_ok()
                && HeaderValue::from_bytes(h.value).is_ok()
        });
    let http10 = parsed.version == Some(0);
    if !one_host(parsed.headers, http10) {
        return refused(StatusCode::BAD_REQUEST, ONE_HOST);
    }
    let Some(body) = body_framing(parsed.headers, http10).filter(|_| readable) else {
        return refused(StatusCode::BAD_REQUEST, MALFORMED);
    };
    let close = wants_close(parsed.headers, http10);
    let length = match body {
        // A length no request could have (it would not fit in memory).
        Some(length) => match head_len.checked_add(length) {
            Some(total) => Some(total),
            None => {
                return refused(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "The request body is too large.",
                )
            }
        },
        None => None,
    };
    Some(Arrival::Hyper { length, close })
}

/// A body's length from its headers: `Some(n)` for a Content-Length (or
/// none: 0), `None` for a chunked body; refused (`None` outside) wherever
/// hyper would refuse it, so hyper never answers on its own: a
/// Transfer-Encoding that is not chunked, is not plain text, or comes with
/// HTTP/1.0; both at once; a length that is not digits, or lengths that
/// disagree.
fn body_framing(headers: &[httparse::Header<'_>], http10: bool) -> Option<Option<usize>> {
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for header in headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = header.value.trim_ascii();
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let value = std::str::from_utf8(value).ok()?.parse::<usize>().ok()?;
            if length.is_some_and(|seen| seen != value) {
                return None;
            }
            length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            let text = header
                .value
                .iter()
                .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b));
            let last = header.value.rsplit(|&b| b == b',').next()?;
            let is_chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
            if chunked || http10 || !text || !is_chunked {
                return None;
            }
            chunked = true;
        }
    }
    match (chunked, length) {
        (true, Some(_)) => None,
        (true, None) => Some(None),
        (false, length) => Some(Some(length.unwrap_or(0))),
    }
}

/// Whether the request names its host once: HTTP/1.1 must send exactly
/// one Host header; HTTP/1.0 may send none, but never two (which host
/// would the answer, or an invite link, be for?).
fn one_host(headers: &[httparse::Header<'_>], http10: bool) -> bool {
    let hosts = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .count();
    hosts == 1 || (http10 && hosts == 0)
}

/// Whether the client asks to close the connection after this request:
/// `Connection: close`, or HTTP/1.0 without `keep-alive`.
fn wants_close(headers: &[httparse::Header<'_>], http10: bool) -> bool {
    let has = |token: &[u8]| {
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
            .flat_map(|h| h.value.split(|&b| b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
    };
    has(b"close") || (http10 && !has(b"keep-alive"))
}

/// The request at the front of `read` if it is complete and served here
/// (taken out of `read`); `Other` if it is anything else (left in place);
/// `None` if more must be read to tell. (Public for the fuzz target.)
pub fn take(read: &mut BytesMut) -> Option<Next> {
    if read.is_empty() {
        return None;
    }
    let start = |prefix: &[u8]| prefix.starts_with(&read[..read.len().min(prefix.len())]);
    if !PREFIXES.iter().any(|prefix| start(prefix)) {
        return Some(Next::Other);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(read) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if read.len() <= MAX_HEAD => return None,
        Ok(httparse::Status::Partial) | Err(_) => return Some(Next::Other),
    };
    let (method, path) = (
        parsed.method.unwrap_or_default(),
        parsed.path.unwrap_or_default(),
    );
    // Routed by the path as `http` reads it, as warp will see it.
    let Ok(uri) = path.parse::<Uri>() else {
        return Some(Next::Other);
    };
    let in_room = |tail: &str| {
        uri.path()
            .strip_prefix("/rooms/")
            .and_then(|rest| rest.strip_suffix(tail))
            .is_some_and(|code| !code.contains('/'))
    };
    if parsed.version != Some(1) || !one_host(parsed.headers, false) {
        return Some(Next::Other);
    }
    let next = if method == "GET" && (in_room("/events") || uri.path() == "/events") {
        // A stream is the connection's last request: anything after it
        // (pipelined) is hyper's business.
        if head_len != read.len() {
            return Some(Next::Other);
        }
        let Some(request) = build(Method::GET, uri, parsed.headers, Bytes::new()) else {
            return Some(Next::Other);
        };
        read.clear();
        Next::Stream(request)
    } else if method == "POST" && in_room("/messages") {
        let Some(Framing { length, close }) = framing(parsed.headers) else {
            return Some(Next::Other);
        };
        if read.len() < head_len + length {
            return None;
        }
        // Built before the bytes are taken, so `Other` leaves them intact.
        let body = Bytes::copy_from_slice(&read[head_len..head_len + length]);
        let Some(request) = build(Method::POST, uri, parsed.headers, body) else {
            return Some(Next::Other);
        };
        let _ = read.split_to(head_len + length);
        Next::Post { request, close }
    } else {
        Next::Other
    };
    Some(next)
}

/// How a message's body is framed, when it is simple enough to read here:
/// one Content-Length within the body limit, no Transfer-Encoding and no
/// Expect (hyper answers `100 Continue`, or 413 before the body is sent).
struct Framing {
    length: usize,
    /// `Connection: close`
    close: bool,
}

fn framing(headers: &[httparse::Header<'_>]) -> Option<Framing> {
    let mut length = None;
    for header in headers {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value).ok()?;
            // A second Content-Length, even an equal one, is hyper's call.
            if length.is_some() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            length = Some(value.parse::<usize>().ok()?);
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("expect")
        {
            return None;
        }
    }
    let length = length?;
    let close = wants_close(headers, false);
    (length as u64 <= BODY_LIMIT).then_some(Framing { length, close })
}

/// The request as the routes take it; `None` if a header is not one
/// `http` accepts (hyper's to answer, then).
fn build(
    method: Method,
    uri: Uri,
    headers: &[httparse::Header<'_>],
    body: Bytes,
) -> Option<Request<Full<Bytes>>> {
    // Filled in place: `Request::builder` moves itself on every header.
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    let map = request.headers_mut();
    map.reserve(headers.len());
    for header in headers {
        let name = HeaderName::from_bytes(header.name.as_bytes()).ok()?;
        map.append(name, HeaderValue::from_bytes(header.value).ok()?);
    }
    Some(request)
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    /// What `take` makes of `bytes`, and what it leaves in the buffer.
    fn taken(bytes: &str) -> (Option<Next>, String) {
        let mut read = BytesMut::from(bytes);
        let next = take(&mut read);
        (next, String::from_utf8(read.to_vec()).unwrap())
    }

    #[test]
    fn only_a_complete_stream_request_is_taken() {
        let stream =
            "GET /rooms/ABCD/events?since=3 HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 4\r\n\r\n";
        match taken(stream) {
            (Some(Next::Stream(request)), rest) => {
                assert_eq!(request.uri().path(), "/rooms/ABCD/events");
                assert_eq!(request.uri().query(), Some("since=3"));
                assert_eq!(request.headers()["last-event-id"], "4");
                assert_eq!(rest, "");
            }
            _ => panic!("not taken"),
        }
        assert!(taken("GET /rooms/ABCD/events HTTP/1.1\r\nHost: x\r\n")
            .0
            .is_none());
        // A page's multiplexed stream is taken too: it is the one a whole
        // browser holds open.
        let multiplexed = "GET /events?rooms=ABCD,EFGH HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(matches!(taken(multiplexed).0, Some(Next::Stream(_))));
        assert!(matches!(
            taken("GET /eventsX HTTP/1.1\r\nHost: x\r\n\r\n").0,
            Some(Next::Other)
        ));
        assert!(taken("GET /ro").0.is_none());
        for other in [
            "GET /rooms/ABCD/messages HTTP/1.1\r\n\r\n",
            "GET /rooms/AB/CD/events HTTP/1.1\r\n\r\n",
            "GET /rooms/ABCD/events HTTP/1.0\r\n\r\n",
            "GET /rooms/ABCD/events HTTP/1.1\r\nbad header\r\n\r\n",
            "GET /rooms/ABCD/events HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            "GET /healthz HTTP/1.1\r\n\r\n",
            // Routed by the path without its fragment, as warp sees it.
            "GET /rooms/AB#CD/events HTTP/1.1\r\n\r\n",
        ] {
            let (next, rest) = taken(other);
            assert!(matches!(next, Some(Next::Other)), "{other:?}");
            assert_eq!(rest, other, "left for hyper");
        }
    }

    /// What `handover` makes of `bytes`.
    fn handed(bytes: &str) -> Option<Arrival> {
        handover(&BytesMut::from(bytes))
    }

    #[test]
    fn requests_for_hyper_are_measured_or_refused() {
        let head = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n";
        assert!(matches!(
            handed(head),
            Some(Arrival::Hyper { length: Some(n), close: false }) if n == head.len() + 5
        ));
        let chunked = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(
            handed(chunked),
            Some(Arrival::Hyper { length: None, .. })
        ));
        let old = "GET / HTTP/1.0\r\n\r\n"; // 1.0 may name no host
        assert!(matches!(
            handed(old),
            Some(Arrival::Hyper { close: true, .. })
        ));
        assert!(
            handed("GET / HTTP/1.1\r\nHost: x\r\n").is_none(),
            "not all here"
        );
        let huge = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            usize::MAX
        );
        assert!(matches!(
            handed(&huge),
            Some(Arrival::Refused(StatusCode::PAYLOAD_TOO_LARGE, _))
        ));
        for bad in [
            "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "GET /a\x7fb HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 5\u{a0}\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: \u{80}, chunked\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n",
        ] {
            assert!(
                matches!(
                    handed(bad),
                    Some(Arrival::Refused(StatusCode::BAD_REQUEST, _))
                ),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_simple_message_is_taken_with_its_body_and_what_follows_is_kept() {
        let post = "POST /rooms/ABCD/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"text\":\"h\"}";
        let pipelined = format!("{post}GET /healthz HTTP/1.1\r\n\r\n");
        match taken(&pipelined) {
            (Some(Next::Post { request, close }), rest) => {
                assert_eq!(request.method(), Method::POST);
                assert_eq!(request.uri().path(), "/rooms/ABCD/messages");
                assert_eq!(request.headers()["content-type"], "application/json");
                assert!(!close);
                assert_eq!(rest, "GET /healthz HTTP/1.1\r\n\r\n");
                let body = request.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(body, r#"{"text":"h"}"#);
            }
            _ => panic!("not taken"),
        }
        // The body not all here yet: wait for it.
        assert!(taken(&post[..post.len() - 3]).0.is_none());
        let closing = post.replace("Host: x", "Host: x\r\nConnection: keep-alive, Close");
        assert!(matches!(
            taken(&closing).0,
            Some(Next::Post { close: true, .. })
        ));
        // Framings hyper knows better: left for it, bytes and all.
        for other in [
            post.replace("Content-Length: 12", "Transfer-Encoding: chunked"),
            post.replace(
                "Content-Length: 12",
                "Content-Length: 12\r\nContent-Length: 12",
            ),
            post.replace("Content-Length: 12", "Content-Length: +12"),
            post.replace("Host: x", "Host: x\r\nExpect: 100-continue"),
            post.replace(
                "Content-Length: 12",
                &format!("Content-Length: {}", BODY_LIMIT + 1),
            ),
            post.replace("HTTP/1.1", "HTTP/1.0"),
            post.replace("ABCD/messages", "ABCD/events"),
            post.replace("Content-Length: 12\r\n", ""),
        ] {
            let (next, rest) = taken(&other);
            assert!(matches!(next, Some(Next::Other)), "{other:?}");
            assert_eq!(rest, other, "left for hyper");
        }
    }
}
