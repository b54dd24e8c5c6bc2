//! Streams that own their socket. A connection whose first request is
//! `GET /rooms/CODE/events` (what `curl -N`, scripts and most EventSource
//! reconnects send) is answered here rather than by hyper: the head is read
//! and parsed once, the request goes through the same routes, and the
//! stream's frames are written straight to the socket, one write each.
//!
//! Why: hyper keeps an 8 KiB read buffer and an 8 KiB write buffer for the
//! life of every connection, which for an idle stream was most of its
//! memory, and frames a chunked body in three pieces per write.
//!
//! The stream goes out chunked, as from hyper, each chunk in one vectored
//! write, and the connection closes after it (`Connection: close`). Anything
//! else (another first request, a head that does not parse, one that is
//! too large) goes to hyper with the bytes already read put back in front,
//! so hyper answers it as it always did.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warp::http::{HeaderValue, Request, Version};

use crate::stream::RoomStream;

/// The only first request served here.
const PREFIX: &[u8] = b"GET /rooms/";

/// The most head bytes read here; a larger head goes to hyper (and 431).
const MAX_HEAD: usize = 16 * 1024;

/// The most headers parsed here; more go to hyper.
const MAX_HEADERS: usize = 64;

/// What the first bytes of a connection turned out to be.
pub enum First {
    /// A stream request, parsed.
    Stream(Request<Empty<Bytes>>),
    /// Anything else, with the bytes read so far (to put back for hyper).
    Other(Bytes),
    /// The peer went away or sent nothing in time.
    Gone,
}

/// Reads the connection's first request head if it is a stream request,
/// for at most `timeout`.
pub async fn first_request(socket: &mut TcpStream, timeout: Duration) -> First {
    let mut read = BytesMut::with_capacity(1024);
    let reading = async {
        loop {
            match socket.read_buf(&mut read).await {
                Ok(0) | Err(_) => return First::Gone,
                Ok(_) => {}
            }
            let start = &read[..read.len().min(PREFIX.len())];
            if !PREFIX.starts_with(start) {
                return First::Other(Bytes::new());
            }
            if read.len() > MAX_HEAD {
                return First::Other(Bytes::new());
            }
            if read.len() >= PREFIX.len() {
                if let Some(parsed) = parse(&read) {
                    return parsed;
                }
            }
            if read.capacity() == read.len() {
                read.reserve(read.len());
            }
        }
    };
    match tokio::time::timeout(timeout, reading).await {
        Ok(First::Other(_)) => First::Other(read.freeze()),
        Ok(first) => first,
        Err(_) => First::Gone,
    }
}

/// The request if the head is complete and a stream request; `Other` if
/// it is complete and anything else (or malformed); `None` if incomplete.
fn parse(head: &[u8]) -> Option<First> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let other = || Some(First::Other(Bytes::new()));
    match parsed.parse(head) {
        Ok(httparse::Status::Partial) => return None,
        Ok(httparse::Status::Complete(len)) if len == head.len() => {}
        // A body or a pipelined request after the head: hyper's business.
        Ok(httparse::Status::Complete(_)) | Err(_) => return other(),
    }
    let path = parsed.path.unwrap_or_default();
    let route = path.split('?').next().unwrap_or_default();
    let is_stream = route
        .strip_prefix("/rooms/")
        .and_then(|rest| rest.strip_suffix("/events"))
        .is_some_and(|code| !code.contains('/'));
    if !is_stream || parsed.version != Some(1) {
        return other();
    }
    let mut request = Request::builder()
        .method("GET")
        .uri(path)
        .version(Version::HTTP_11);
    for header in parsed.headers.iter() {
        let Ok(value) = HeaderValue::from_bytes(header.value) else {
            return other();
        };
        request = request.header(header.name, value);
    }
    match request.body(Empty::new()) {
        Ok(request) => Some(First::Stream(request)),
        Err(_) => other(),
    }
}

/// Answers on the socket: the head, then the stream's frames until it
/// ends or the peer goes; an answer without a stream (an error) is sent
/// whole. The connection is closed after either.
pub async fn answer(
    mut socket: TcpStream,
    response: warp::reply::Response,
    stream: Option<RoomStream>,
    write_timeout: Duration,
) {
    let head = head(response, stream.is_some()).await;
    if send(&socket, &head, write_timeout).await.is_err() {
        return;
    }
    drop(head);
    if let Some(stream) = stream {
        if follow(&socket, stream, write_timeout).await.is_ok() {
            // The last chunk: the stream ended here, not by accident.
            let _ = send(&socket, b"0\r\n\r\n", write_timeout).await;
        }
    }
    // Tell the peer we are done; it may already be gone.
    let _ = socket.shutdown().await;
}

/// The response's head (and whole body, for an answer without a stream),
/// as it goes on the wire.
async fn head(response: warp::reply::Response, streaming: bool) -> Vec<u8> {
    let (parts, body) = response.into_parts();
    // Error answers are small and whole; a stream's own body is empty.
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut head = Vec::with_capacity(512);
    let reason = parts.status.canonical_reason().unwrap_or("");
    head.extend_from_slice(format!("HTTP/1.1 {} {reason}\r\n", parts.status.as_u16()).as_bytes());
    for (name, value) in &parts.headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if streaming {
        head.extend_from_slice(b"transfer-encoding: chunked\r\n");
    } else {
        head.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    head.extend_from_slice(&body);
    head
}

/// Writes each chunk the stream gives as it comes, until the stream ends
/// (Ok), or the peer hangs up or takes no write within `write_timeout`.
async fn follow(
    socket: &TcpStream,
    mut stream: RoomStream,
    write_timeout: Duration,
) -> io::Result<()> {
    let mut scratch = [0u8; 64];
    loop {
        // Polled by hand rather than by `select!`, which would make and
        // drop a readiness future (two locks on the socket's waiter list)
        // on every frame: `poll_read_ready` keeps one waker slot instead.
        let next = std::future::poll_fn(|cx| {
            if let Poll::Ready(frame) = Pin::new(&mut stream).poll_frame(cx) {
                return Poll::Ready(Next::Frame(frame));
            }
            socket.poll_read_ready(cx).map(Next::Readable)
        })
        .await;
        match next {
            Next::Frame(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    send_chunk(socket, &data, write_timeout).await?;
                }
            }
            // The stream ended: lagged, room gone, shutdown.
            Next::Frame(_) => return Ok(()),
            Next::Readable(ready) => {
                ready?;
                // A client sends nothing more on a stream; end of file (or
                // an error) means it went away.
                match socket.try_read(&mut scratch) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(_) => {}
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    Err(err) => return Err(err),
                }
            }
        }
    }
}

/// What woke a stream's connection.
enum Next {
    Frame(Option<Result<Frame<Bytes>, Infallible>>),
    Readable(io::Result<()>),
}

/// One chunk of the body: size line, data and CRLF in one vectored write
/// when the socket takes it all (it nearly always does).
async fn send_chunk(socket: &TcpStream, data: &[u8], timeout: Duration) -> io::Result<()> {
    let mut size = [0u8; 20];
    let size_len = {
        let mut cursor = io::Cursor::new(&mut size[..]);
        io::Write::write_fmt(&mut cursor, format_args!("{:x}\r\n", data.len()))?;
        cursor.position() as usize
    };
    let parts = [&size[..size_len], data, b"\r\n"];
    let total: usize = parts.iter().map(|p| p.len()).sum();
    loop {
        let slices = parts.map(io::IoSlice::new);
        match socket.try_write_vectored(&slices) {
            Ok(written) if written == total => return Ok(()),
            Ok(written) => {
                // A partial write: send the rest as one piece.
                let rest: Vec<u8> = parts.concat();
                return send(socket, &rest[written..], timeout).await;
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                writable(socket, timeout).await?
            }
            Err(err) => return Err(err),
        }
    }
}

/// Writes all of `bytes`: at once when the socket takes them (no timer),
/// else waiting for room at most `timeout` at a time.
async fn send(socket: &TcpStream, mut bytes: &[u8], timeout: Duration) -> io::Result<()> {
    while !bytes.is_empty() {
        match socket.try_write(bytes) {
            Ok(written) => bytes = &bytes[written..],
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                writable(socket, timeout).await?
            }
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Waits until the socket takes writes again, for at most `timeout`: a
/// client that stopped reading is let go, and resumes from history later.
async fn writable(socket: &TcpStream, timeout: Duration) -> io::Result<()> {
    match tokio::time::timeout(timeout, socket.writable()).await {
        Ok(ready) => ready,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "write timeout")),
    }
}

/// A socket for hyper with the bytes already read from it put back in
/// front.
pub struct Replay<T> {
    read: Bytes,
    io: T,
}

impl<T> Replay<T> {
    pub fn new(read: Bytes, io: T) -> Replay<T> {
        Replay { read, io }
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for Replay<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        if self.read.is_empty() {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        let n = self.read.len().min(buf.remaining());
        let replayed = self.read.split_to(n);
        buf.put_slice(&replayed);
        Poll::Ready(Ok(()))
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for Replay<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(head: &str) -> Option<First> {
        parse(head.as_bytes())
    }

    #[test]
    fn only_a_complete_stream_request_is_taken() {
        let stream =
            "GET /rooms/ABCD/events?since=3 HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 4\r\n\r\n";
        match first(stream) {
            Some(First::Stream(request)) => {
                assert_eq!(request.uri().path(), "/rooms/ABCD/events");
                assert_eq!(request.uri().query(), Some("since=3"));
                assert_eq!(request.headers()["last-event-id"], "4");
            }
            _ => panic!("not taken"),
        }
        assert!(first("GET /rooms/ABCD/events HTTP/1.1\r\nHost: x\r\n").is_none());
        for other in [
            "GET /rooms/ABCD/messages HTTP/1.1\r\n\r\n",
            "GET /rooms/AB/CD/events HTTP/1.1\r\n\r\n",
            "GET /rooms/ABCD/events HTTP/1.0\r\n\r\n",
            "GET /rooms/ABCD/events HTTP/1.1\r\nbad header\r\n\r\n",
            "GET /rooms/ABCD/events HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        ] {
            assert!(matches!(first(other), Some(First::Other(_))), "{other:?}");
        }
    }
}
