//! What roomcast writes on a socket itself, for the requests
//! [`super::direct`] reads: a whole answer in one write (a message, an
//! error), or a stream's head and then its chunks, each in one vectored
//! write, until the stream ends, the peer goes, or a write is not taken
//! within the write timeout.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::response::encode;
use crate::stream::RoomStream;

/// Answers on the socket: the head, then the stream's frames until it
/// ends or the peer goes; an answer without a stream (an error) is sent
/// whole. The connection is closed after either.
pub async fn answer(
    mut socket: TcpStream,
    response: warp::reply::Response,
    stream: Option<RoomStream>,
    write_timeout: Duration,
) {
    let head = encode(response, stream.is_some(), true).await;
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

/// Answers a message whole, in one write. Returns whether the connection
/// is kept for the next request: not if `close` or the write failed.
pub async fn reply(
    socket: &mut TcpStream,
    response: warp::reply::Response,
    close: bool,
    write_timeout: Duration,
) -> bool {
    let answer = encode(response, false, close).await;
    if send(socket, &answer, write_timeout).await.is_ok() && !close {
        return true;
    }
    let _ = socket.shutdown().await;
    false
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
                return Poll::Ready(Woke::Frame(frame));
            }
            socket.poll_read_ready(cx).map(Woke::Readable)
        })
        .await;
        match next {
            Woke::Frame(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    send_chunk(socket, &data, write_timeout).await?;
                }
            }
            // The stream ended: lagged, room gone, shutdown.
            Woke::Frame(_) => return Ok(()),
            Woke::Readable(ready) => {
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
enum Woke {
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
