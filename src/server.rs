//! The connections: accept, serve HTTP/1.1 through the warp routes, log
//! and count each response, and shut down gracefully.
//!
//! warp's own `serve` is replaced by this small loop for two reasons: an
//! SSE response body must be the stream's own (shared, pre-encoded frames,
//! several per write), which warp's body type cannot hold; and the
//! connection settings (buffer sizes, vectored writes) become ours to set.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use ipnet::IpNet;
use log::{error, info};
use tokio::net::TcpListener;
use tower_service::Service;
use warp::http::{HeaderMap, Request, Response};

use crate::metrics::Metrics;
use crate::stream::Handoff;

/// Who is at the other end, as the routes see it: the peer, or what a
/// trusted proxy says about the client behind it.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub ip: IpAddr,
    /// The request came over HTTPS (as a trusted proxy says).
    pub https: bool,
}

impl Client {
    /// For a request from `peer`: the X-Forwarded-* headers count only if
    /// `peer` is a trusted proxy. The client is then the nearest address in
    /// X-Forwarded-For that is not itself a trusted proxy.
    pub fn of(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Client {
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
        if !is_trusted(&peer) {
            return Client {
                ip: peer,
                https: false,
            };
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|hop| hop.trim().parse().ok())
            .collect();
        let ip = forwarded
            .iter()
            .rev()
            .find(|ip| !is_trusted(ip))
            .or(forwarded.first())
            .copied()
            .unwrap_or(peer);
        let proto = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok());
        // The last value is the one the nearest proxy set.
        let https = proto
            .and_then(|p| p.rsplit(',').next())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
        Client { ip, https }
    }
}

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
    trusted: Arc<[IpNet]>,
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
        let (routes, metrics, trusted) = (routes.clone(), metrics.clone(), trusted.clone());
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let client = Client::of(peer.ip(), request.headers(), &trusted);
            respond(routes.clone(), metrics.clone(), client, request)
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
    client: Client,
    mut request: Request<Incoming>,
) -> Result<Response<Body>, Infallible>
where
    S: Service<Request<Incoming>, Response = warp::reply::Response, Error = Infallible>,
{
    let started = Instant::now();
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
    Ok(match stream {
        Some(stream) => response.map(|_| stream.map_err(|never| match never {}).boxed_unsync()),
        None => response.map(|body| body.map_err(Into::into).boxed_unsync()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let forwarded = headers(&[
            ("x-forwarded-for", "6.6.6.6, 203.0.113.9"),
            ("x-forwarded-for", "10.0.0.7"),
            ("x-forwarded-proto", "https"),
        ]);
        let client = Client::of(proxy, &forwarded, &trusted);
        assert_eq!(
            client.ip,
            "203.0.113.9".parse::<IpAddr>().unwrap(),
            "nearest untrusted hop"
        );
        assert!(client.https);

        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        let client = Client::of(stranger, &forwarded, &trusted);
        assert_eq!(client.ip, stranger, "a stranger's headers are ignored");
        assert!(!client.https);

        let plain = Client::of(
            proxy,
            &headers(&[("x-forwarded-proto", "https, http")]),
            &trusted,
        );
        assert!(!plain.https, "the nearest proxy's word counts");
        assert_eq!(plain.ip, proxy, "no X-Forwarded-For: the proxy itself");
    }
}
