//! Wiring: opens the store and the registry, builds pages and routes,
//! serves them on a bound listener ([`crate::http`]), and shuts everything
//! down in order when the signal comes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use log::info;
use tokio::net::TcpListener;

use crate::app::App;
use crate::config::Config;
use crate::http;
use crate::pages::Pages;
use crate::rooms::redis::client::Redis;
use crate::rooms::Registry;
use crate::routes;
use crate::shutdown;
use crate::site::Origin;
use crate::store::sqlite::SqliteStore;
use crate::store::StoreError;

/// Open files kept back from streams: the listener, the store, logs, and
/// connections that post or load pages.
const FD_RESERVE: u64 = 256;

/// Every stream holds a socket, so the open-file limit bounds them.
fn streams_the_fd_limit_allows() -> usize {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
    soft.saturating_sub(FD_RESERVE).max(1) as usize
}

/// A server whose store is open and rooms loaded, ready to serve.
pub struct Server {
    registry: Registry,
    keep_alive: Duration,
    secure_cookies: bool,
    public_url: Option<Origin>,
    session_ttl: Duration,
    trusted_proxies: Arc<[ipnet::IpNet]>,
    write_timeout: Duration,
    request_timeout: Duration,
    shutdown_timeout: Duration,
    max_connections_per_address: u32,
    tls: Option<http::Tls>,
}

impl Server {
    /// Reads the TLS certificate, if any, opens the store named by `--db`
    /// and loads its rooms, or with `--redis` connects to Redis. A
    /// certificate that cannot be read, a file that cannot be opened, is
    /// not a database, or is in use, or a Redis that cannot be reached, is
    /// an error here, before anything is served.
    pub async fn open(config: &Config) -> Result<Server, StoreError> {
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(http::Tls::load(cert, key).map_err(StoreError)?),
            _ => None,
        };
        let settings = config.settings(streams_the_fd_limit_allows);
        let registry = match &config.redis {
            Some(url) => {
                let redis = Redis::connect(url, settings.clone())
                    .await
                    .map_err(StoreError)?;
                Registry::open_redis(settings, redis)
            }
            None => {
                let db = config.db.clone();
                tokio::task::spawn_blocking(move || {
                    let store = SqliteStore::open(&db)?;
                    Registry::open_local(settings, Box::new(store))
                })
                .await
                .map_err(|err| StoreError(format!("opening the store failed: {err}")))??
            }
        };
        Ok(Server {
            registry,
            keep_alive: config.keep_alive,
            secure_cookies: config.secure_cookies,
            public_url: config.public_url.clone(),
            session_ttl: config.session_ttl,
            trusted_proxies: config.trusted_proxies.clone().into(),
            write_timeout: config.write_timeout,
            request_timeout: config.request_timeout,
            shutdown_timeout: config.shutdown_timeout,
            max_connections_per_address: config.max_connections_per_address,
            tls,
        })
    }

    /// How visitors reach it: `https` with a certificate, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Serves on `listener` until `signal` resolves, then stops accepting,
    /// ends every open stream, waits for in-flight requests, lets the
    /// writer store what is queued, and returns.
    pub async fn run(
        self,
        listener: TcpListener,
        signal: impl Future<Output = ()> + Send + 'static,
    ) {
        let (trigger, shutdown) = shutdown::channel();
        let registry = self.registry;
        let tasks = registry.spawn_tasks(shutdown.clone());
        let app = App {
            registry: registry.clone(),
            pages: Arc::new(Pages::load()),
            keep_alive: self.keep_alive,
            secure_cookies: self.secure_cookies,
            public_url: self.public_url,
            session_ttl: self.session_ttl,
        };
        let closing = registry.clone();
        tokio::spawn(async move {
            signal.await;
            info!("shutting down: ending open streams");
            closing.close();
            trigger.start();
        });
        let metrics = registry.metrics().clone();
        let routes = warp::service(routes::routes(app));
        let edge = http::Edge {
            trusted: self.trusted_proxies,
            timeouts: http::Timeouts {
                request: self.request_timeout,
                write: self.write_timeout,
                shutdown: self.shutdown_timeout,
            },
            per_address: http::PerAddress::new(self.max_connections_per_address as usize),
            tls: self.tls,
        };
        http::serve(listener, routes, metrics, edge, shutdown).await;
        // The sweeper and reader have seen the same signal; they only ever
        // end, never fail.
        for task in tasks {
            let _ = task.await;
        }
        registry.finish().await;
        info!("stopped");
    }
}
