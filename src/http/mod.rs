//! The connections: accept, serve HTTP/1.1 through the warp routes, log
//! and count each response, and shut down gracefully.
//!
//! warp's own `serve` is replaced by this small loop for two reasons: an
//! SSE response body must be the stream's own (shared, pre-encoded frames,
//! several per write), which warp's body type cannot hold; and the
//! connection settings (buffer sizes, vectored writes) become ours to set.
//!
//! A connection that opens with a stream request is served by [`direct`]
//! (no hyper buffers held for the stream's life); every other goes to
//! hyper.

pub mod direct;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use ipnet::IpNet;
use log::{error, info};
use tokio::net::{TcpListener, TcpStream};
use tower_service::Service;
use warp::http::{Request, Response, StatusCode};

use crate::client::Client;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::stream::{Handoff, RoomStream};
use direct::{Next, Replay};

type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// How long to wait for a request's headers before closing the connection;
/// this also closes keep-alive connections left idle (slowloris).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// The most a connection buffers.
const MAX_BUFFER: usize = 128 * 1024;

/// The most header bytes a request may send; past it, 431. (hyper also
/// refuses more than 100 headers.)
const MAX_HEAD: usize = 16 * 1024;

/// The longest request target accepted; past it, 414.
const MAX_URI: usize = 8 * 1024;

/// Serves `routes` on `listener` until `shutdown` starts, then stops
/// accepting and waits for open connections to finish (streams end on
/// their own when shutdown starts; a connection waiting for its next
/// request closes).
pub async fn serve<S>(
    listener: TcpListener,
    routes: S,
    metrics: Arc<Metrics>,
    trusted: Arc<[IpNet]>,
    write_timeout: Duration,
    mut shutdown: Shutdown,
) where
    S: Routes<Incoming> + Routes<Full<Bytes>> + Clone + Send + 'static,
    <S as Service<Request<Incoming>>>::Future: Send,
    <S as Service<Request<Full<Bytes>>>>::Future: Send,
{
    let connection = Connection {
        routes,
        metrics,
        trusted,
        write_timeout,
        shutdown: shutdown.clone(),
    };
    let graceful = GracefulShutdown::new();
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, most likely: wait rather than
                    // spin, and let open streams close.
                    error!("accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.wait() => break,
        };
        // Streams are latency-bound and small: no Nagle delay.
        let _ = socket.set_nodelay(true);
        // Shutdown waits for this connection while it holds the watcher.
        let watcher = graceful.watcher();
        tokio::spawn(connection.clone().serve(socket, peer, watcher));
    }
    drop(listener);
    graceful.shutdown().await;
}

/// What every connection is served with.
#[derive(Clone)]
struct Connection<S> {
    routes: S,
    metrics: Arc<Metrics>,
    trusted: Arc<[IpNet]>,
    write_timeout: Duration,
    /// Ends a wait for the next request on a connection.
    shutdown: Shutdown,
}

impl<S> Connection<S>
where
    S: Routes<Incoming> + Routes<Full<Bytes>> + Clone + Send + 'static,
    <S as Service<Request<Incoming>>>::Future: Send,
    <S as Service<Request<Full<Bytes>>>>::Future: Send,
{
    /// One connection: streams and messages are answered by [`direct`],
    /// request after request, until the peer or shutdown ends it; at the
    /// first request of any other kind, hyper takes over for the rest.
    async fn serve(mut self, mut socket: TcpStream, peer: SocketAddr, watcher: Watcher) {
        let mut read = BytesMut::new();
        loop {
            let next =
                direct::next_request(&mut socket, &mut read, HEADER_TIMEOUT, &mut self.shutdown);
            match next.await {
                Next::Gone => return,
                Next::Stream(request) => {
                    // Nothing more is read: the buffer is not kept for the
                    // stream's life.
                    drop(read);
                    let (response, stream) = self.route(peer, request).await;
                    direct::answer(socket, response, stream, self.write_timeout).await;
                    drop(watcher); // Held until the stream is done.
                    return;
                }
                Next::Post { request, close } => {
                    let (response, _) = self.route(peer, request).await;
                    let replied = direct::reply(&mut socket, response, close, self.write_timeout);
                    if !replied.await {
                        return;
                    }
                }
                // Boxed, so hyper's large connection state is not part of
                // this task's own future.
                Next::Other => {
                    let hyper = self.with_hyper(socket, peer, read.freeze(), watcher);
                    return Box::pin(hyper).await;
                }
            }
        }
    }

    /// A request read by [`direct`], through the routes. Boxed, so the
    /// routes' 3.6 KB future is not part of the connection's task for as
    /// long as a stream lasts.
    fn route(
        &self,
        peer: SocketAddr,
        request: Request<Full<Bytes>>,
    ) -> Pin<Box<impl Future<Output = (warp::reply::Response, Option<RoomStream>)> + Send + '_>>
    {
        let client = Client::of(peer.ip(), request.headers(), &self.trusted);
        Box::pin(route(self.routes.clone(), &self.metrics, client, request))
    }

    /// The connection through hyper, `read` being what was read already.
    async fn with_hyper(self, socket: TcpStream, peer: SocketAddr, read: Bytes, watcher: Watcher) {
        let Connection {
            routes,
            metrics,
            trusted,
            write_timeout,
            ..
        } = self;
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let client = Client::of(peer.ip(), request.headers(), &trusted);
            // Boxed: hyper keeps a slot the size of the service's future
            // for the whole connection, and through warp's filters that
            // future is 3.6 KB; a stream would hold it idle all its life.
            Box::pin(respond(routes.clone(), metrics.clone(), client, request))
        });
        let io = WriteDeadline::new(TokioIo::new(socket), write_timeout);
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .max_buf_size(MAX_BUFFER)
            .serve_connection(Replay::new(read, io), service);
        // A client that hangs up mid-response is the normal end of a
        // stream, not an error worth a log line.
        let _ = watcher.watch(connection).await;
    }
}

/// The routes, as a service for requests with a body of type `B`.
pub trait Routes<B>:
    Service<Request<B>, Response = warp::reply::Response, Error = Infallible>
{
}

impl<T, B> Routes<B> for T where
    T: Service<Request<B>, Response = warp::reply::Response, Error = Infallible>
{
}

/// One request through hyper: an SSE stream handed off by its handler
/// becomes the response body.
async fn respond<S: Routes<Incoming>>(
    routes: S,
    metrics: Arc<Metrics>,
    client: Client,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (response, stream) = route(routes, &metrics, client, request).await;
    Ok(match stream {
        Some(stream) => response.map(|_| stream.map_err(|never| match never {}).boxed_unsync()),
        None => response.map(|body| body.map_err(Into::into).boxed_unsync()),
    })
}

/// One request through the routes, logged and counted: the response, and
/// the stream its handler handed off, if any. A target or head over the
/// limits is refused here (414, 431) before any route sees it.
async fn route<S: Routes<B>, B>(
    mut routes: S,
    metrics: &Metrics,
    client: Client,
    mut request: Request<B>,
) -> (warp::reply::Response, Option<RoomStream>) {
    let started = Instant::now();
    if let Some(refusal) = refusal(&request) {
        return (refusal, None);
    }
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    request.extensions_mut().insert(client);
    let Ok(mut response) = routes.call(request).await;
    let elapsed = started.elapsed();
    metrics.responded(&method, &path, response.status(), elapsed);
    info!(
        target: "roomcast::http",
        "{} \"{method} {path}\" {} {elapsed:?}",
        client.ip,
        response.status().as_u16()
    );
    let stream = response
        .extensions_mut()
        .remove::<Handoff>()
        .and_then(Handoff::take);
    (response, stream)
}

/// 414 for a request target over [`MAX_URI`], 431 for headers over
/// [`MAX_HEAD`].
fn refusal<B>(request: &Request<B>) -> Option<warp::reply::Response> {
    let head: usize = request
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum();
    let uri = request.uri();
    // Requests name a path (origin form), else a whole address: count what
    // was sent without writing it out again.
    let uri_len = uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.scheme_str().map_or(0, str::len);
    let (status, message) = if uri_len > MAX_URI {
        (StatusCode::URI_TOO_LONG, "The address is too long.")
    } else if head > MAX_HEAD {
        (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "The request headers are too large.",
        )
    } else {
        return None;
    };
    Some(crate::error::json_error(status, message))
}

/// A connection's socket that gives up on a write the peer has not taken
/// for `timeout`: a stalled subscriber is closed (its client resumes from
/// history later) instead of holding its buffers forever. The timer only
/// exists while a write is blocked.
struct WriteDeadline<T> {
    io: T,
    timeout: Duration,
    blocked: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> WriteDeadline<T> {
    fn new(io: T, timeout: Duration) -> WriteDeadline<T> {
        WriteDeadline {
            io,
            timeout,
            blocked: None,
        }
    }

    /// Passes a ready write through; on a blocked one, starts (or checks)
    /// the deadline.
    fn watch<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
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

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for WriteDeadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for WriteDeadline<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
