//! The connections: accept, serve HTTP/1.1 through the warp routes, log
//! and count each response, and shut down gracefully.
//!
//! warp's own `serve` is replaced by this small loop for two reasons: an
//! SSE response body must be the stream's own (shared, pre-encoded frames,
//! several per write), which warp's body type cannot hold; and the
//! connection settings (buffer sizes, vectored writes) become ours to set.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use log::{error, info};
use tokio::net::TcpListener;
use tower_service::Service;
use warp::http::{Request, Response};

use crate::metrics::Metrics;
use crate::stream::Handoff;

/// The client's address, for the routes (per-visitor limits).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::IpAddr);

type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// How long to wait for a request's headers before closing the connection.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `routes` on `listener` until `stop` resolves, then stops
/// accepting and waits for open connections to finish (streams end on
/// their own when shutdown starts).
pub async fn serve<S>(
    listener: TcpListener,
    routes: S,
    metrics: std::sync::Arc<Metrics>,
    stop: impl Future<Output = ()>,
) where
    S: Service<Request<Incoming>, Response = warp::reply::Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
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
            () = &mut stop => break,
        };
        // Streams are latency-bound and small: no Nagle delay.
        let _ = socket.set_nodelay(true);
        let (routes, metrics) = (routes.clone(), metrics.clone());
        let service = hyper::service::service_fn(move |request| {
            respond(routes.clone(), metrics.clone(), peer, request)
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(socket), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that hangs up mid-response is the normal end of a
            // stream, not an error worth a log line.
            let _ = connection.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// One request through the routes; an SSE stream handed off by its
/// handler becomes the response body.
async fn respond<S>(
    mut routes: S,
    metrics: std::sync::Arc<Metrics>,
    peer: SocketAddr,
    mut request: Request<Incoming>,
) -> Result<Response<Body>, Infallible>
where
    S: Service<Request<Incoming>, Response = warp::reply::Response, Error = Infallible>,
{
    let started = Instant::now();
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    request.extensions_mut().insert(Peer(peer.ip()));
    let Ok(mut response) = routes.call(request).await;
    let elapsed = started.elapsed();
    metrics.responded(&method, &path, response.status(), elapsed);
    info!(
        target: "roomcast::http",
        "{peer} \"{method} {path}\" {} {elapsed:?}",
        response.status().as_u16()
    );
    let stream = response
        .extensions_mut()
        .remove::<Handoff>()
        .and_then(Handoff::take);
    Ok(match stream {
        Some(stream) => response.map(|_| stream.map_err(|never| match never {}).boxed_unsync()),
        None => response.map(|body| body.map_err(Into::into).boxed_unsync()),
    })
}
