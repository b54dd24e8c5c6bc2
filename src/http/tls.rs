//! HTTPS (`--tls-cert`, `--tls-key`): the certificate, and each TLS
//! connection served by hyper as HTTP/2 or HTTP/1.1, whichever ALPN
//! chose. Over HTTP/2 a browser's tabs share one connection, so the
//! six-connections-per-site limit of HTTP/1.1 no longer applies.
//!
//! The fast path ([`super::direct`]) is for plain connections only; on
//! these every request goes through hyper, its body read whole within the
//! request timeout ([`read_whole`]), then through the same routes the
//! fast path serves. Shutdown ends streams in band as everywhere, then
//! hyper says goodbye (GOAWAY) and the connection closes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::net::TcpStream;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use warp::http::header::{HeaderValue, HOST};
use warp::http::{Request, Response, StatusCode};

use super::direct::LATE;
use super::socket::TimedWrites;
use crate::error::too_large;
use crate::limits::BODY_LIMIT;

/// Streams one HTTP/2 connection may carry at once (as Chrome allows
/// itself): a browser's tabs, its page loads and posts.
const MAX_STREAMS_PER_CONNECTION: u32 = 100;

/// How often an idle HTTP/2 connection is pinged: a peer that answers
/// none within [`PING_TIMEOUT`] is gone, or reads nothing, and is closed.
const PING_INTERVAL: Duration = Duration::from_secs(20);
const PING_TIMEOUT: Duration = Duration::from_secs(20);

/// The certificate and key HTTPS is served with.
#[derive(Clone)]
pub struct Tls(TlsAcceptor);

impl Tls {
    /// Reads the certificate chain (PEM, the server's own first) and its
    /// private key (PEM: PKCS#8, PKCS#1 or SEC1); either unreadable, or a
    /// key that is not the certificate's, is an error here, before
    /// anything is served.
    pub fn load(cert: &std::path::Path, key: &std::path::Path) -> Result<Tls, String> {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))
        };
        let chain = CertificateDer::pem_slice_iter(&read(cert)?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| format!("{} is not a PEM certificate: {err}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!("{} holds no certificate", cert.display()));
        }
        let private = PrivateKeyDer::from_pem_slice(&read(key)?)
            .map_err(|err| format!("{} is not a PEM private key: {err}", key.display()))?;
        let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|err| format!("TLS: {err}"))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|err| format!("TLS: the certificate and key do not go together: {err}"))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls(TlsAcceptor::from(Arc::new(config))))
    }

    /// The handshake on `socket`, within `timeout`.
    pub async fn accept(
        &self,
        socket: TcpStream,
        write_timeout: Duration,
        timeout: Duration,
    ) -> Result<TlsStream<TimedWrites>, Refused> {
        let socket = TimedWrites::new(socket, write_timeout);
        match tokio::time::timeout(timeout, self.0.accept(socket)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(err)) => Err(Refused::Handshake(err)),
            Err(_) => Err(Refused::Late),
        }
    }
}

/// Why a TLS connection never got to HTTP.
pub enum Refused {
    /// The handshake failed (not TLS, no common cipher, a bad SNI).
    Handshake(std::io::Error),
    /// It did not finish within the request timeout.
    Late,
}

/// Serves `service` on the TLS connection `io` as HTTP/2 or HTTP/1.1 (as
/// ALPN chose) until the peer or shutdown (`watcher`) ends it. An HTTP/1.1
/// head must arrive within `request_timeout`; an HTTP/2 peer must answer
/// pings.
pub async fn serve<S, B>(
    io: TlsStream<TimedWrites>,
    service: S,
    request_timeout: Duration,
    max_buffer: usize,
    watcher: Watcher,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .max_buf_size(max_buffer)
        .header_read_timeout(request_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .keep_alive_interval(PING_INTERVAL)
        .keep_alive_timeout(PING_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    watcher.watch(connection).await
}

/// Why a request's body was not read.
pub enum Unread {
    /// It did not arrive whole within the request timeout.
    Late,
    /// It is over the body limit.
    TooLarge,
    /// The peer broke it off (or sent a malformed one).
    Broken,
}

impl Unread {
    /// The answer: status, refusal reason (for /metrics), message.
    pub fn refusal(&self) -> (StatusCode, &'static str, String) {
        match self {
            Unread::Late => (StatusCode::REQUEST_TIMEOUT, "request_timeout", LATE.into()),
            Unread::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", too_large()),
            Unread::Broken => (
                StatusCode::BAD_REQUEST,
                "malformed",
                "The request body was cut off.".into(),
            ),
        }
    }
}

/// `request` with its whole body, read within `within` and at most
/// [`BODY_LIMIT`] bytes, so the routes see it as they see a request of the
/// fast path. (The routes still refuse a body over the limit by its
/// Content-Length; this stops one that claims less, or none.)
pub async fn read_whole(
    request: Request<Incoming>,
    within: Duration,
) -> Result<Request<Full<Bytes>>, Unread> {
    let (head, body) = request.into_parts();
    let read = Limited::new(body, BODY_LIMIT as usize).collect();
    let body = match tokio::time::timeout(within, read).await {
        Err(_) => return Err(Unread::Late),
        Ok(Err(err)) if err.is::<LengthLimitError>() => return Err(Unread::TooLarge),
        Ok(Err(_)) => return Err(Unread::Broken),
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    Ok(Request::from_parts(head, Full::new(body)))
}

/// An HTTP/2 request names its site in the `:authority` pseudo-header, not
/// in Host; the routes (links, the Origin check) read Host, so it is
/// filled in from there.
pub fn name_host<B>(request: &mut Request<B>) {
    if request.headers().contains_key(HOST) {
        return;
    }
    let authority = request.uri().authority().map(|a| a.as_str().to_owned());
    if let Some(value) = authority.and_then(|a| HeaderValue::from_str(&a).ok()) {
        request.headers_mut().insert(HOST, value);
    }
}
