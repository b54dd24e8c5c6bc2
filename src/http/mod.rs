//! The connections: accept, serve HTTP/1.1 through the warp routes, log
//! and count each response, and shut down gracefully.
//!
//! warp's own `serve` is replaced by this small loop for two reasons: an
//! SSE response body must be the stream's own (shared, pre-encoded frames,
//! several per write), which warp's body type cannot hold; and the
//! connection settings (buffer sizes, vectored writes) become ours to set.
//!
//! On a plain connection every request's head is read by [`direct`],
//! which answers streams and messages itself (no hyper buffers held for a
//! stream's life) and hands any other request to hyper, one request at a
//! time, through [`socket`]. A TLS connection ([`tls`]) is hyper's
//! throughout, HTTP/2 or HTTP/1.1. Every response is finished by
//! [`response`], whichever path sends it.

pub mod direct;
mod per_address;
mod response;
mod socket;
mod tls;
mod wire;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use ipnet::IpNet;
use log::{debug, error, log, warn, Level};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tower_service::Service;
use warp::http::{Method, Request, Response, StatusCode};

use crate::client::Client;
use crate::error::Reason;
use crate::limits::{MAX_HEAD, MAX_URI};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::stream::{Handoff, RoomStream};
use direct::Arrival;
use socket::Socket;

pub use per_address::PerAddress;
pub use tls::Tls;

type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// How long things on a connection may take.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For a request to arrive whole, head and body, on either path: past
    /// it, 408 and close (slowloris); also how long a kept-alive
    /// connection may sit idle (then it closes without a word).
    pub request: Duration,
    /// For the peer to take a write.
    pub write: Duration,
    /// For open connections to finish once shutdown starts; then they are
    /// left to close with the process.
    pub shutdown: Duration,
}

/// The most a connection buffers.
const MAX_BUFFER: usize = 128 * 1024;

/// Connections the kernel may hold waiting for `accept` (it caps this at
/// `net.core.somaxconn`). `TcpListener::bind`'s 128 overflowed under a
/// burst of 500 connects: the kernel dropped SYNs, and those clients
/// waited a second to try again.
const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr` with room for a burst of connects
/// ([`LISTEN_BACKLOG`]).
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // A restart can bind while the last run's connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// How the listener meets its connections.
pub struct Edge {
    /// Proxies whose X-Forwarded-* are believed.
    pub trusted: Arc<[IpNet]>,
    pub timeouts: Timeouts,
    pub per_address: PerAddress,
    /// HTTPS, when a certificate was given; else plain HTTP.
    pub tls: Option<Tls>,
}

/// Serves `routes` on `listener` until `shutdown` starts, then stops
/// accepting and waits for open connections to finish (streams end on
/// their own when shutdown starts; a connection waiting for its next
/// request closes).
pub async fn serve<S>(
    listener: TcpListener,
    routes: S,
    metrics: Arc<Metrics>,
    edge: Edge,
    mut shutdown: Shutdown,
) where
    S: Routes<Incoming> + Routes<Full<Bytes>> + Clone + Send + 'static,
    <S as Service<Request<Incoming>>>::Future: Send,
    <S as Service<Request<Full<Bytes>>>>::Future: Send,
{
    let Edge {
        trusted,
        timeouts,
        per_address,
        tls,
    } = edge;
    let connection = Connection {
        routes,
        metrics,
        trusted,
        write_timeout: timeouts.write,
        request_timeout: timeouts.request,
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
        let Some(counted) = per_address.admit(peer.ip(), &connection.trusted) else {
            connection.metrics.refused("connections_per_address");
            if tls.is_none() {
                tokio::spawn(refuse_busy(socket, connection.write_timeout));
            }
            // Over TLS a plain-text answer would be garbage before the
            // handshake: the connection just closes (dropped here).
            continue;
        };
        // Streams are latency-bound and small: no Nagle delay.
        let _ = socket.set_nodelay(true);
        // Shutdown waits for this connection while it holds the watcher.
        let (watcher, connection, tls) = (graceful.watcher(), connection.clone(), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => connection.serve(socket, peer, watcher).await,
                Some(tls) => connection.serve_tls(&tls, socket, peer, watcher).await,
            }
            drop(counted);
        });
    }
    drop(listener);
    if tokio::time::timeout(timeouts.shutdown, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            "connections still open {:?} after shutdown began (half-sent requests, most likely): closing them",
            timeouts.shutdown
        );
    }
}

/// Answers a connection over its address's cap: 503 with Retry-After,
/// then close.
async fn refuse_busy(mut socket: TcpStream, write_timeout: Duration) {
    let busy = response::refusal_bytes(
        StatusCode::SERVICE_UNAVAILABLE,
        "Too many connections from your address; close some and try again.",
        Some(1),
    );
    let _ = tokio::time::timeout(write_timeout, socket.write_all(&busy)).await;
    let _ = socket.shutdown().await;
}

/// What every connection is served with.
#[derive(Clone)]
struct Connection<S> {
    routes: S,
    metrics: Arc<Metrics>,
    trusted: Arc<[IpNet]>,
    write_timeout: Duration,
    request_timeout: Duration,
    /// Ends a wait for the next request on a connection.
    shutdown: Shutdown,
}

impl<S> Connection<S>
where
    S: Routes<Incoming> + Routes<Full<Bytes>> + Clone + Send + 'static,
    <S as Service<Request<Incoming>>>::Future: Send,
    <S as Service<Request<Full<Bytes>>>>::Future: Send,
{
    /// One connection, request after request, until the peer or shutdown
    /// ends it: streams and messages are answered by [`direct`]; any other
    /// request goes through hyper, and the next comes back here.
    async fn serve(mut self, mut socket: TcpStream, peer: SocketAddr, watcher: Watcher) {
        let mut read = BytesMut::new();
        loop {
            let started = Instant::now();
            let next = direct::next_request(
                &mut socket,
                &mut read,
                self.request_timeout,
                &mut self.shutdown,
            );
            match next.await {
                Arrival::Gone => return,
                Arrival::Stream(request) => {
                    // Nothing more is read: the buffer is not kept for the
                    // stream's life.
                    drop(read);
                    let (response, stream) = self.route(peer, request).await;
                    wire::answer(socket, response, stream, self.write_timeout).await;
                    drop(watcher); // Held until the stream is done.
                    return;
                }
                Arrival::Post { request, close } => {
                    let (response, _) = self.route(peer, request).await;
                    let replied = wire::reply(&mut socket, response, close, self.write_timeout);
                    if !replied.await {
                        return;
                    }
                }
                Arrival::Refused(status, message) => {
                    self.metrics.refused(match status {
                        StatusCode::REQUEST_TIMEOUT => "request_timeout",
                        StatusCode::BAD_REQUEST => "malformed",
                        _ => "too_large",
                    });
                    let refusal = response::refusal(status, message);
                    wire::reply(&mut socket, refusal, true, self.write_timeout).await;
                    return;
                }
                Arrival::Hyper { length, close } => {
                    let deadline = (started + self.request_timeout).into();
                    let io = Socket::new(
                        socket,
                        read.split().freeze(),
                        length,
                        deadline,
                        (self.write_timeout, self.metrics.clone()),
                    );
                    // Boxed, so hyper's large connection state is not part
                    // of this task's own future.
                    let Some(next) = Box::pin(self.with_hyper(io, peer, length.is_some())).await
                    else {
                        return;
                    };
                    (socket, read) = next;
                    if close {
                        let _ = socket.shutdown().await;
                        return;
                    }
                }
            }
        }
    }

    /// One TLS connection: the handshake within the request timeout, then
    /// every request through hyper ([`tls`]) until the peer or shutdown
    /// ends it.
    async fn serve_tls(self, tls: &Tls, socket: TcpStream, peer: SocketAddr, watcher: Watcher) {
        let accepted = tls.accept(socket, self.write_timeout, self.request_timeout);
        let io = match accepted.await {
            Ok(io) => io,
            Err(tls::Refused::Handshake(err)) => {
                debug!("TLS handshake with {peer} failed: {err}");
                return;
            }
            Err(tls::Refused::Late) => {
                self.metrics.refused("request_timeout");
                return;
            }
        };
        let (routes, metrics, trusted) = (self.routes, self.metrics, self.trusted);
        let within = self.request_timeout;
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let client = Client {
                https: true,
                ..Client::of(peer.ip(), request.headers(), &trusted)
            };
            tls::name_host(&mut request);
            let (routes, metrics) = (routes.clone(), metrics.clone());
            // Boxed, as on plain connections. The body is read whole
            // first, within the request timeout, as on the fast path:
            // hyper's HTTP/2 has no such timer, and a hundred slow bodies
            // on one connection would each hold their buffers.
            Box::pin(async move {
                match tls::read_whole(request, within).await {
                    Ok(request) => respond(routes, metrics, client, request).await,
                    Err(unread) => {
                        let (status, reason, message) = unread.refusal();
                        metrics.refused(reason);
                        let refusal = response::refusal(status, &message);
                        Ok(refusal.map(|body| body.map_err(Into::into).boxed_unsync()))
                    }
                }
            })
        });
        let served = tls::serve(io, service, self.request_timeout, MAX_BUFFER, watcher);
        // A peer that hangs up is the normal end of a connection.
        if let Err(err) = served.await {
            debug!("connection from {peer} ended: {err}");
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

    /// One request through hyper, on `io`, which ends where the request
    /// does; the socket back, with what followed, if the connection goes
    /// on (`keep_alive`: else hyper says it ends, as after a chunked body,
    /// whose end only hyper finds).
    async fn with_hyper(
        &mut self,
        io: Socket,
        peer: SocketAddr,
        keep_alive: bool,
    ) -> Option<(TcpStream, BytesMut)> {
        let (routes, metrics, trusted) = (
            self.routes.clone(),
            self.metrics.clone(),
            self.trusted.clone(),
        );
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let client = Client::of(peer.ip(), request.headers(), &trusted);
            // Boxed: hyper keeps a slot the size of the service's future
            // for the whole connection, and through warp's filters that
            // future is 3.6 KB; a stream would hold it idle all its life.
            Box::pin(respond(routes.clone(), metrics.clone(), client, request))
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .max_buf_size(MAX_BUFFER)
            .keep_alive(keep_alive)
            // The request's end reads as the end of input: the answer must
            // still go out.
            .half_close(true)
            .serve_connection(io, service)
            .without_shutdown();
        // A client that hangs up mid-response is the normal end of a
        // stream, not an error worth a log line.
        let parts = connection.await.ok()?;
        if !keep_alive || !parts.read_buf.is_empty() {
            return None;
        }
        parts.io.into_next()
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
async fn respond<S: Routes<B>, B>(
    routes: S,
    metrics: Arc<Metrics>,
    client: Client,
    request: Request<B>,
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
    // HEAD is answered as GET would be, on every GET route; hyper, which
    // saw the HEAD, sends the head only.
    if method == Method::HEAD {
        *request.method_mut() = Method::GET;
    }
    request.extensions_mut().insert(client);
    let Ok(mut response) = routes.call(request).await;
    response::finish(&mut response);
    if let Some(Reason(reason)) = response.extensions().get::<Reason>() {
        metrics.refused(reason);
    }
    let elapsed = started.elapsed();
    metrics.responded(&method, &path, response.status(), elapsed);
    log!(
        target: "roomcast::http",
        log_level(response.status(), &path),
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

/// How loud a request's log line is: a 404 or a static file at debug (a
/// prober's guesses must not fill the log: 70 MB in 8 s once), anything
/// else at info.
fn log_level(status: StatusCode, path: &str) -> Level {
    if status == StatusCode::NOT_FOUND || path.starts_with("/assets/") {
        Level::Debug
    } else {
        Level::Info
    }
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
    Some(response::refusal(status, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_and_static_files_log_quietly() {
        assert_eq!(
            log_level(StatusCode::NOT_FOUND, "/rooms/ZZZZ"),
            Level::Debug
        );
        assert_eq!(log_level(StatusCode::OK, "/assets/app.js"), Level::Debug);
        assert_eq!(
            log_level(StatusCode::CREATED, "/rooms/ABCD/messages"),
            Level::Info
        );
        assert_eq!(log_level(StatusCode::FORBIDDEN, "/"), Level::Info);
    }
}
