//! A connection's socket as hyper sees it, for one request at a time:
//! the bytes already read come first, reading stops where the request
//! ends (so the next request comes back to [`super::direct`]), the rest of
//! the request must arrive before a deadline, and a write the peer takes
//! no data for within the write timeout fails. Also [`TimedWrites`], the
//! same write timeout under a TLS connection. The crate's only I/O
//! wrappers.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use warp::http::StatusCode;

use super::direct::LATE;
use super::response::refusal_bytes;
use crate::metrics::Metrics;

pub struct Socket {
    socket: TcpStream,
    /// Read already, not yet handed on.
    replay: Bytes,
    /// Bytes of the request still to hand on; `None`: the rest of the
    /// connection.
    remaining: Option<usize>,
    /// When the request must have arrived whole.
    read_deadline: Pin<Box<Sleep>>,
    /// The request did not arrive in time: it was answered 408 (if no
    /// answer had begun), and nothing more is written.
    expired: bool,
    /// Some of an answer went out.
    wrote: bool,
    stall: Stall,
    /// Where a late request is counted.
    metrics: Arc<Metrics>,
}

/// A write the peer takes no data for within `timeout` fails: a stalled
/// subscriber is closed (its client resumes from history later) instead
/// of holding its buffers forever.
struct Stall {
    timeout: Duration,
    /// Running while a write is blocked.
    blocked: Option<Pin<Box<Sleep>>>,
}

impl Stall {
    fn new(timeout: Duration) -> Stall {
        Stall {
            timeout,
            blocked: None,
        }
    }

    /// Passes a ready write through; on a blocked one, starts (or checks)
    /// the timeout.
    fn check<R>(&mut self, poll: Poll<io::Result<R>>, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        if poll.is_ready() {
            self.blocked = None;
            return poll;
        }
        let timeout = self.timeout;
        let deadline = self
            .blocked
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer took no data for the write timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Socket {
    pub fn new(
        socket: TcpStream,
        replay: Bytes,
        remaining: Option<usize>,
        read_by: Instant,
        (write_timeout, metrics): (Duration, Arc<Metrics>),
    ) -> Socket {
        Socket {
            socket,
            replay,
            remaining,
            read_deadline: Box::pin(tokio::time::sleep_until(read_by)),
            expired: false,
            wrote: false,
            stall: Stall::new(write_timeout),
            metrics,
        }
    }

    /// The socket back, with what was read past the request, if the
    /// request was read to its end (else the connection cannot go on).
    pub fn into_next(self) -> Option<(TcpStream, BytesMut)> {
        (self.remaining == Some(0)).then(|| (self.socket, BytesMut::from(&self.replay[..])))
    }

    /// Writes, unless the request came too late, within the write
    /// timeout.
    fn write_with<R>(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if self.expired {
            return Poll::Ready(Err(late()));
        }
        let poll = write(Pin::new(&mut self.socket), cx);
        self.stall.check(poll, cx)
    }
}

fn late() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the request did not arrive whole in time",
    )
}

impl hyper::rt::Read for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let allowed = this.remaining.unwrap_or(usize::MAX).min(buf.remaining());
        if allowed == 0 {
            return Poll::Ready(Ok(())); // The request's end: no more for hyper.
        }
        let taken = if this.replay.is_empty() {
            let mut scratch = [0u8; 8 * 1024];
            let mut read = ReadBuf::new(&mut scratch[..allowed.min(8 * 1024)]);
            match Pin::new(&mut this.socket).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    buf.put_slice(read.filled());
                    read.filled().len()
                }
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => {
                    // Waiting on the rest of the request (once it is all
                    // here, reads end above without waiting).
                    if this.read_deadline.as_mut().poll(cx).is_ready() {
                        this.expired = true;
                        this.metrics.refused("request_timeout");
                        if !this.wrote {
                            // As on the fast path. A few hundred bytes into
                            // an empty send buffer: a try is enough.
                            let late = refusal_bytes(StatusCode::REQUEST_TIMEOUT, LATE, None);
                            let _ = this.socket.try_write(&late);
                        }
                        return Poll::Ready(Err(late()));
                    }
                    return Poll::Pending;
                }
            }
        } else {
            let replayed = this.replay.split_to(allowed.min(this.replay.len()));
            buf.put_slice(&replayed);
            replayed.len()
        };
        if let Some(remaining) = &mut this.remaining {
            *remaining -= taken;
        }
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for Socket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.wrote |= !buf.is_empty();
        self.write_with(cx, |socket, cx| socket.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.wrote |= bufs.iter().any(|b| !b.is_empty());
        self.write_with(cx, |socket, cx| socket.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.write_with(cx, |socket, cx| socket.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_shutdown(cx)
    }
}

/// A TLS connection's socket: reads pass through; a write the peer takes
/// no data for within the write timeout fails, as on [`Socket`] (hyper's
/// HTTP/1.1 has no timer of its own for it).
pub struct TimedWrites {
    socket: TcpStream,
    stall: Stall,
}

impl TimedWrites {
    pub fn new(socket: TcpStream, write_timeout: Duration) -> TimedWrites {
        TimedWrites {
            socket,
            stall: Stall::new(write_timeout),
        }
    }
}

impl AsyncRead for TimedWrites {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_read(cx, buf)
    }
}

impl AsyncWrite for TimedWrites {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.socket).poll_write(cx, buf);
        this.stall.check(poll, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.socket).poll_write_vectored(cx, bufs);
        this.stall.check(poll, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.socket).poll_flush(cx);
        this.stall.check(poll, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_shutdown(cx)
    }
}
