//! Wiring: opens the store and the registry, builds pages and routes,
//! serves them on a bound listener, and shuts everything down in order when
//! the signal comes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use log::info;
use tokio::net::TcpListener;

use crate::cluster::{self, reader, Cluster};
use crate::config::Config;
use crate::limits::Rate;
use crate::pages::Pages;
use crate::rooms::{Registry, Settings};
use crate::routes;
use crate::server;
use crate::shutdown;
use crate::store::sqlite::SqliteStore;
use crate::store::StoreError;

/// What every handler may use; cheap to clone.
#[derive(Clone)]
pub struct App {
    pub registry: Registry,
    pub pages: Arc<Pages>,
    pub keep_alive: Duration,
    /// Always mark the session cookie Secure.
    pub secure_cookies: bool,
}

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
    trusted_proxies: Arc<[ipnet::IpNet]>,
    write_timeout: Duration,
}

impl Server {
    /// Opens the store named by `--db` and loads its rooms, or with
    /// `--redis` connects to Redis. A file that cannot be opened, is not a
    /// database, or is in use, or a Redis that cannot be reached, is an
    /// error here, before anything is served.
    pub async fn open(config: &Config) -> Result<Server, StoreError> {
        let settings = Settings {
            history: config.history as usize,
            max_streams: config
                .max_streams
                .unwrap_or_else(streams_the_fd_limit_allows),
            max_streams_per_visitor: config.max_streams_per_visitor,
            max_rooms: config.max_rooms,
            post_rate: Rate {
                burst: config.post_burst,
                per_second: config.post_rate,
            },
            room_rate: Rate {
                burst: config.room_burst,
                per_second: config.room_rate,
            },
            leave_grace: config.leave_grace,
            room_ttl: config.room_ttl,
        };
        let registry = match &config.redis {
            Some(url) => {
                let cluster_settings = cluster::Settings {
                    history: settings.history,
                    room_ttl: settings.room_ttl,
                    leave_grace: settings.leave_grace,
                };
                let cluster = Cluster::connect(url, cluster_settings)
                    .await
                    .map_err(StoreError)?;
                Registry::open_shared(settings, cluster)
            }
            None => {
                let db = config.db.clone();
                tokio::task::spawn_blocking(move || {
                    let store = SqliteStore::open(&db)?;
                    Registry::open(settings, Box::new(store))
                })
                .await
                .map_err(|err| StoreError(format!("opening the store failed: {err}")))??
            }
        };
        Ok(Server {
            registry,
            keep_alive: config.keep_alive,
            secure_cookies: config.secure_cookies,
            trusted_proxies: config.trusted_proxies.clone().into(),
            write_timeout: config.write_timeout,
        })
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
        let sweeper = tokio::spawn(registry.clone().run_sweeper(shutdown.clone()));
        let reader = registry.cluster().map(|cluster| {
            let reading = reader::run(cluster.clone(), registry.clone(), shutdown.clone());
            tokio::spawn(reading)
        });
        let app = App {
            registry: registry.clone(),
            pages: Arc::new(Pages::new()),
            keep_alive: self.keep_alive,
            secure_cookies: self.secure_cookies,
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
        let (trusted, write_timeout) = (self.trusted_proxies, self.write_timeout);
        server::serve(listener, routes, metrics, trusted, write_timeout, shutdown).await;
        // The sweeper and reader have seen the same signal; they only ever
        // end, never fail.
        let _ = sweeper.await;
        if let Some(reader) = reader {
            let _ = reader.await;
        }
        registry.finish().await;
        info!("stopped");
    }
}
