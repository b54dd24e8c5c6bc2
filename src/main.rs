//! The `roomcast` binary: flags, logging, bind, serve until SIGINT/SIGTERM.

// The routes are one warp filter of many `or`s: its type is deep enough
// that the release build's check of it passes the default limit of 128.
#![recursion_limit = "256"]

use std::process::ExitCode;

use clap::Parser;
use log::warn;
use roomcast::{Config, Server};

/// jemalloc, with a background thread that hands freed pages back to the
/// system within a second or so: with glibc's allocator a soak run's peak
/// stayed resident for good after everyone left (see README, Soak).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc reads its options from this symbol at start.
#[repr(transparent)]
pub struct MallocConf(*const std::ffi::c_char);
// SAFETY: it points at a string constant, never written.
unsafe impl Sync for MallocConf {}

#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: MallocConf =
    MallocConf(c"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let mut logger = pretty_env_logger::formatted_timed_builder();
    let filters = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    logger.parse_filters(&filters);
    logger.init();

    // Every stream holds a socket: allow as many as the hard limit permits.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => log::info!("open-file limit: {limit}"),
        Err(err) => warn!("could not raise the open-file limit: {err}"),
    }

    let server = match Server::open(&config).await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("roomcast: {err}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match roomcast::http::listen(config.bind) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("roomcast: cannot listen on {}: {err}", config.bind);
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("roomcast listening on {}://{addr}", server.scheme()),
        Err(err) => {
            eprintln!("roomcast: cannot read the bound address: {err}");
            return ExitCode::FAILURE;
        }
    }
    server.run(listener, stop_signal()).await;
    ExitCode::SUCCESS
}

/// SIGINT (Ctrl-C) or SIGTERM, whichever comes first.
async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(err) => {
                warn!("cannot listen for SIGTERM ({err}); only Ctrl-C stops the server");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
