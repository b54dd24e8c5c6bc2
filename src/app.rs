//! Wiring: builds the registry, pages and routes, serves them on a bound
//! listener, and shuts everything down in order when the signal comes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use log::info;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::pages::Pages;
use crate::rooms::{Registry, Settings};
use crate::routes;
use crate::shutdown::{self, Shutdown};

/// What every handler may use; cheap to clone.
#[derive(Clone)]
pub struct App {
    pub registry: Registry,
    pub pages: Arc<Pages>,
    pub shutdown: Shutdown,
    pub keep_alive: Duration,
}

/// Serves on `listener` until `signal` resolves, then stops accepting, ends
/// every open stream, waits for in-flight requests, and returns.
pub async fn run(
    listener: TcpListener,
    config: &Config,
    signal: impl Future<Output = ()> + Send + 'static,
) {
    let (trigger, shutdown) = shutdown::channel();
    let registry = Registry::new(Settings {
        history: config.history as usize,
        leave_grace: config.leave_grace,
        room_ttl: config.room_ttl,
    });
    let sweeper = tokio::spawn(registry.clone().run_sweeper(shutdown.clone()));
    let app = App {
        registry: registry.clone(),
        pages: Arc::new(Pages::new()),
        shutdown,
        keep_alive: config.keep_alive,
    };
    let stop = async move {
        signal.await;
        info!("shutting down: ending open streams");
        registry.close();
        trigger.start();
    };
    warp::serve(routes::routes(app))
        .incoming(listener)
        .graceful(stop)
        .run()
        .await;
    // The sweeper has seen the same signal; it only ever ends, never fails.
    let _ = sweeper.await;
    info!("stopped");
}
